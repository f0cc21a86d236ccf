"""`python -m xcs_bc profile script.py [args]`: run an untouched script under `xcs.capture()`.

The script (or ``-m module``) runs as ``python script.py`` would run it: as `__main__`, with
`sys.argv` set to the script and its arguments and its folder first on `sys.path`.  Its own
output is left alone; once it ends (returns, exits or raises), the profiler writes the capture's
report: the slow calls the script made, wherever in its functions, the groups that could have
overlapped, the critical path, the speedup bound and the functions worth wrapping in `xcs.jit`,
with the dataflow graph and an SVG picture on request.  Everything `xcs.capture()` traces
through is traced through here: the script's own functions, down to the calls of installed
packages and C functions (see `observe.reach`).
"""

from __future__ import annotations

import builtins
import html
import importlib.util
import os
import sys
import time
import traceback
import types
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from xcs_bc.analyze.report import format_report
from xcs_bc.capture import capture
from xcs_bc.errors import ConfigError
from xcs_bc.ir import ComputationGraph

__all__ = ["Profile", "Target", "profile", "write_html"]


@dataclass(frozen=True)
class Target:
    """What to run: a script's path, or (`module` True) a module's name as ``python -m`` takes it."""

    name: str
    args: tuple[str, ...] = ()
    module: bool = False


@dataclass
class Profile:
    """A profiled run: the graph of its slow calls (named after the script), the exit status the
    script's run would give, and how long it took."""

    target: Target
    graph: ComputationGraph
    status: int
    seconds: float

    def summary(self) -> str:
        kind = "module" if self.target.module else "script"
        took = f"{self.seconds:.2f} s (exit status {self.status})"
        return f"xcs_bc profile: {kind} {self.target.name} ran in {took}"

    def report(self) -> str:
        return format_report(self.graph)


def profile(
    target: Target, *, min_call_ms: float = 1.0, leaves: Sequence[str] = (), through: Sequence[str] = ()
) -> Profile:
    """Run `target` under `xcs.capture()`; its exception, if any, is printed as Python prints it.

    Raises `ConfigError` when the script or module cannot be found or compiled (nothing ran)."""
    cap = capture(min_call_ms=min_call_ms, leaves=leaves, through=through)
    code, main, path_entry = _load(target)
    saved_argv, saved_path, saved_main = sys.argv, list(sys.path), sys.modules.get("__main__")
    sys.argv = [main.__file__ or target.name, *target.args]
    sys.path[:1] = [path_entry]  # (where `python script.py` puts the script's folder)
    sys.modules["__main__"] = main
    status = 0
    started = time.perf_counter()
    try:
        with cap:
            exec(code, main.__dict__)  # the script's frame: followed into as a function exec calls back
    except SystemExit as exit_:
        status = _exit_status(exit_.code)
    except Exception as error:  # noqa: BLE001 - the script's own: printed as Python would, the report follows
        below = (
            error.__traceback__.tb_next if error.__traceback__ is not None else None
        )  # (from the script on)
        traceback.print_exception(type(error), error, below)
        status = 1
    finally:
        seconds = time.perf_counter() - started
        sys.argv, sys.path[:] = saved_argv, saved_path
        if saved_main is not None:
            sys.modules["__main__"] = saved_main
    graph = cap.graph  # (the block is the profiler's: the graph takes the script's name, and no inputs)
    named = ComputationGraph(
        list(graph.operations), (), graph.outputs, {**graph.metadata, "name": target.name}
    )
    return Profile(target, named, status, seconds)


def _load(target: Target) -> tuple[types.CodeType, types.ModuleType, str]:
    """The code to run, the `__main__` module it runs in, and what `sys.path[0]` is for it."""
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = builtins
    if target.module:
        spec = _module_spec(target.name)
        loader = spec.loader
        get_code = getattr(loader, "get_code", None)
        code = get_code(spec.name) if get_code is not None else None
        if not isinstance(code, types.CodeType):
            raise ConfigError(
                f"module {target.name!r} has no Python code to run (a built-in or extension module?)"
            )
        main.__file__ = spec.origin
        main.__dict__.update(__spec__=spec, __package__=spec.parent, __loader__=loader)
        return code, main, os.getcwd()
    path = Path(target.name)
    try:
        source = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read the script {target.name!r}: {error.strerror or error}") from error
    try:
        code = compile(source, str(path), "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as error:
        raise ConfigError(f"cannot compile the script {target.name!r}: {error}") from error
    main.__file__ = str(path)
    return code, main, str(path.resolve().parent)


def _module_spec(name: str) -> importlib.machinery.ModuleSpec:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError) as error:
        raise ConfigError(f"cannot find module {name!r}: {error}") from error
    if spec is None:
        raise ConfigError(f"no module named {name!r} (is it installed, or on sys.path from here?)")
    if spec.submodule_search_locations is not None:  # a package: `python -m pkg` runs pkg.__main__
        return _module_spec(f"{name}.__main__")
    return spec


def _exit_status(code: object) -> int:
    """What `sys.exit(code)` makes the process exit with."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def write_html(run: Profile, path: str) -> None:
    """One self-contained HTML page: the report, the picture and the graph's SSA text."""
    title = html.escape(run.summary())
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>"
        f"{title}</title></head>\n<body>\n<h1>{title}</h1>\n"
        f"<pre>{html.escape(run.report())}</pre>\n"
        f"{run.graph.to_svg()}\n"
        f"<h2>Graph</h2>\n<pre>{html.escape(str(run.graph))}</pre>\n</body></html>\n"
    )
    Path(path).write_text(page, encoding="utf-8")

"""Command line: `python -m xcs_bc demo` runs the demo, `python -m xcs_bc profile script.py` profiles a
script; `python -m xcs_bc --help` lists the commands."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from xcs_bc.demo import latency_from_env, print_demo
from xcs_bc.errors import ConfigError

USAGE = """\
usage: python -m xcs_bc COMMAND

commands:
  demo     run an example legacy pipeline of fake model calls under xcs.capture()
           and print its dataflow graph and report (set XCS_BC_DEMO_LATENCY to the
           seconds each fake call takes; default 0.1)
  profile  run an untouched script under xcs.capture() and report its slow calls:
           python -m xcs_bc profile [OPTIONS] script.py [ARGS...]
           python -m xcs_bc profile [OPTIONS] -m module [ARGS...]

profile options (before the script):
  --min-call-ms MS  a call taking this many milliseconds or more is a slow call (default 1.0)
  --leaves MODULES  comma-separated modules whose functions are leaves, not traced through
  --through MODULES comma-separated installed modules to trace through all the same
  --graph           print the dataflow graph (SSA text) before the report
  -o, --output FILE write the report (and graph) to FILE instead of standard output
  --svg FILE        write a picture of the dataflow and timeline as SVG
  --html FILE       write one HTML page with the report, the picture and the graph

The profiled script's own output is left alone; its exit status is the profiler's.

options:
  -h, --help  show this message and exit"""

_HELP = ("-h", "--help", "help")
_VALUED = {"--min-call-ms", "--leaves", "--through", "-o", "--output", "--svg", "--html"}


def _error(message: str) -> int:
    """Print the usage line and `message` to stderr, like argparse; return exit status 2."""
    print(f"{USAGE.splitlines()[0]}\nxcs_bc: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command in `argv` (default: `sys.argv[1:]`); return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in _HELP:
        print(USAGE)
        return 0
    command, rest = args[0], args[1:]
    if rest and rest[0] in _HELP:
        print(USAGE)
        return 0
    if command == "profile":
        return _profile(rest)
    if command != "demo":
        return _error(
            f"unknown command {command!r}; the commands are 'demo' and 'profile' (python -m xcs_bc --help)"
        )
    if rest:
        return _error(f"'demo' takes no arguments, got {' '.join(rest)!r}")
    try:
        latency = latency_from_env()
    except ConfigError as error:
        return _error(str(error))
    print_demo(latency)
    return 0


def _profile(args: list[str]) -> int:
    from xcs_bc.capture import check_min_call_ms
    from xcs_bc.profiler import Target, profile, write_html

    options: dict[str, str] = {}
    graph = False
    while args and args[0].startswith("-") and args[0] != "-m":
        option = args.pop(0)
        if option == "--graph":
            graph = True
            continue
        if option not in _VALUED:
            return _error(f"unknown profile option {option!r} (python -m xcs_bc --help)")
        if not args:
            return _error(f"{option} needs a value")
        options["--output" if option == "-o" else option] = args.pop(0)
    module = bool(args) and args[0] == "-m"
    if module:
        args.pop(0)
    if not args:
        return _error("profile needs a script (python -m xcs_bc profile script.py) or -m module")
    target = Target(args[0], tuple(args[1:]), module)
    try:
        min_call_ms = check_min_call_ms(_number(options.get("--min-call-ms", "1.0")))
        run = profile(
            target,
            min_call_ms=min_call_ms,
            leaves=_names(options.get("--leaves")),
            through=_names(options.get("--through")),
        )
    except ConfigError as error:
        return _error(str(error))
    text = "\n\n".join([run.summary(), *([str(run.graph)] if graph else []), run.report()])
    if "--output" in options:
        Path(options["--output"]).write_text(text + "\n", encoding="utf-8")
    else:
        print(f"\n{text}")
    if "--svg" in options:
        Path(options["--svg"]).write_text(run.graph.to_svg(), encoding="utf-8")
    if "--html" in options:
        write_html(run, options["--html"])
    return run.status


def _number(text: str) -> object:
    try:
        return float(text)
    except ValueError:
        return text  # (refused by check_min_call_ms, which says what it takes)


def _names(text: str | None) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()] if text else []


if __name__ == "__main__":
    sys.exit(main())

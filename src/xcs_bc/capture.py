"""`xcs.capture()`: observe any block of plain code and show its dataflow graph.

    with xcs.capture(min_call_ms=1.0) as cap:
        ...untouched code...
    print(cap.graph)      # the SSA graph of the slow calls
    print(cap.report())   # sequential time, critical path, speedup bound, groups

The block runs exactly as it would without the capture (only slower, while
every instruction is observed).  An exception inside the block propagates
unchanged; `cap.graph` then holds the graph up to that point.
"""

from __future__ import annotations

import math
import sys
import types
from collections.abc import Iterable
from typing import Any, Literal

from xcs_bc.build.builder import GraphBuilder
from xcs_bc.errors import CaptureError, ConfigError
from xcs_bc.ir import ComputationGraph
from xcs_bc.observe.hooks import CallEvent, Session
from xcs_bc.observe.reach import Reach


def check_min_call_ms(min_call_ms: object) -> float:
    """Validate the slow-call threshold shared by `capture` and `jit`."""
    if isinstance(min_call_ms, bool) or not isinstance(min_call_ms, (int, float)):
        raise ConfigError(f"min_call_ms must be a number of milliseconds, got {min_call_ms!r}")
    if not math.isfinite(min_call_ms) or min_call_ms < 0:
        raise ConfigError(
            f"min_call_ms must be a finite number >= 0, got {min_call_ms!r}; 1.0 is a good default"
        )
    return float(min_call_ms)


class capture:  # noqa: N801 - a context manager used like a function, as `contextlib` names them
    """Record the calls of a block of code and build its dataflow graph.

        with xcs.capture(min_call_ms=1.0) as cap:
            ...untouched code...
        cap.graph, cap.events, cap.report()

    The block runs exactly as it would without the capture, only slower while every
    instruction is observed.  The capture traces through the Python functions the block
    calls (and those they call, at any depth) down to the *leaves*: calls of C functions,
    of the standard library, of installed packages (an HTTP or LLM client), of generator
    and coroutine functions, and of what `leaves` names.  A leaf taking `min_call_ms` or
    more is a slow call, an operation of the graph; it keeps the stack of functions it was
    made in (`op.stack`), and the printed graph shows it under them.  Values flow between
    functions through arguments, returns, locals, attributes, containers and closures,
    with the same conservative rules as in the block.  An exception inside the block
    propagates unchanged, and the graph then holds the calls made up to that point.

    Inside a coroutine the block may await: ``await f(x)`` is one call of `f`, lasting until its
    await is done, with what the await gave as its result; any other await (a task, a future,
    ``async for``, ``async with``) is an operation of its own when it takes `min_call_ms` or more.
    While the block waits, the event loop runs other tasks; their code is not observed.

    Options:

    - `min_call_ms` (a number >= 0, default 1.0): a leaf call taking at least this many
      milliseconds is a slow call, an operation of the graph; faster calls are glue, seen
      only through the values they compute.  0 makes every leaf call an operation.
    - `leaves` (a list of module names and functions, default none): more leaves.  A
      module name covers its submodules (``leaves=["mypkg.llm"]``); a function (or method)
      is a leaf itself.  Name a wrapper of your own to see its calls as one operation.
    - `through` (a list of module names, default none): installed packages to trace
      through all the same (your own package, installed into site-packages).  `leaves`
      wins where both name a module.

    Results, once the block has ended:

    - `cap.graph`: the `xcs.ComputationGraph` of the slow calls (print it for its SSA text;
      `critical_path()`, `independent_sets()`, `levels()`, `dependencies(op)`);
    - `cap.events`: a list of `xcs.CallEvent`, every call the traced code made (the block's
      and that of the functions it was traced through), slow or not, in the order they
      ended (also available while the block runs);
    - `cap.report()`: a readable account: sequential time, critical path, speedup bound
      and the groups of independent calls.

    Errors: `xcs.ConfigError` (a `ValueError` and `TypeError`) when `min_call_ms` is not a
    finite number >= 0 (or is a bool), or `leaves` or `through` is not a list of module
    names (and, for `leaves`, functions), raised by `xcs.capture(...)` itself.  `xcs.CaptureError`
    (a `RuntimeError`) when entering the block: the object was already used (make one per
    block), the thread is already observed (captures and jit traces do not nest on one
    thread; on an event loop, one task's block is observed at a time), or on 3.12+ no
    `sys.monitoring` tool id is free (a profiler, debugger or coverage tool holds them all).
    `cap.graph` raises `CaptureError` before the block has ended, and when observation failed
    inside xcs_bc (the block itself still ran normally).
    """

    def __init__(
        self, min_call_ms: float = 1.0, *, leaves: Iterable[Any] = (), through: Iterable[str] = ()
    ) -> None:
        self.min_call_ms = check_min_call_ms(min_call_ms)
        self.reach = Reach(leaves, through)
        self._builder: GraphBuilder | None = None
        self._session: Session | None = None
        self._graph: ComputationGraph | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> capture:
        if self._builder is not None:
            raise CaptureError("this capture object was already used; create a new `xcs.capture()` per block")
        frame = sys._getframe(1)
        name = f"{frame.f_code.co_name}@{frame.f_lineno}"
        self._builder = GraphBuilder(min_call_ms=self.min_call_ms, name=name, reach=self.reach)
        session = self._session = Session(
            self._builder, frame=frame, code=frame.f_code, parent=None, unwatched=_EXIT_CODE
        )
        try:
            session.start()  # undoes itself when it fails
        except BaseException:
            session.stop()  # an interrupt just after start(): `__exit__` will not run
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> Literal[False]:
        session = self._session
        if session is not None:
            session.stop()  # idempotent, and completes even when interrupted
            self._session = None
            self._error = session.error
        assert self._builder is not None
        if self._error is None:
            try:
                self._graph = self._builder.finish(exc).graph
            except Exception as error:  # noqa: BLE001 - reported by `graph`, never raised into the block
                self._error = error
        return False  # never swallow the block's exception

    @property
    def graph(self) -> ComputationGraph:
        """The graph of the slow calls made in the block (available after the block ends)."""
        if self._error is not None and not isinstance(self._error, Exception):
            raise CaptureError(
                f"the capture was interrupted ({type(self._error).__name__}) while observing the block; "
                "no graph was built"
            ) from self._error
        if self._error is not None:
            raise CaptureError(
                f"observation failed inside xcs_bc ({type(self._error).__name__}: {self._error}); "
                "the block ran "
                "normally but no graph was built. This is a bug in xcs_bc: please report it with this message"
            ) from self._error
        if self._graph is None:
            raise CaptureError("the graph is ready when the `with xcs.capture()` block has ended")
        return self._graph

    @property
    def events(self) -> list[CallEvent]:
        """Every call the traced code made, slow or not, in the order they ended."""
        if self._builder is None:
            raise CaptureError("no events yet: use the capture in a `with` block first")
        return list(self._builder.events)

    def report(self) -> str:
        """A readable account: times, critical path, speedup bound and the groups of independent calls."""
        from xcs_bc.analyze.report import format_report

        return format_report(self.graph)


# nothing of the block runs after `__exit__` is called: watching its entry only widens the moment
# an interrupt could land between the block's end and the session's stop
_EXIT_CODE = frozenset({capture.__exit__.__code__})

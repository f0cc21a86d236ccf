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
from typing import Literal

from xcs_bc.build.builder import GraphBuilder
from xcs_bc.errors import CaptureError, ConfigError
from xcs_bc.ir import ComputationGraph
from xcs_bc.observe.hooks import CallEvent, Session, observe_frame


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

    A call that takes at least `min_call_ms` milliseconds is a slow call, an
    operation of the graph; faster calls are glue.
    """

    def __init__(self, min_call_ms: float = 1.0) -> None:
        self.min_call_ms = check_min_call_ms(min_call_ms)
        self._builder: GraphBuilder | None = None
        self._session: Session | None = None
        self._graph: ComputationGraph | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> capture:
        if self._builder is not None:
            raise CaptureError("this capture object was already used; create a new `xcs.capture()` per block")
        frame = sys._getframe(1)
        name = f"{frame.f_code.co_name}@{frame.f_lineno}"
        self._builder = GraphBuilder(min_call_ms=self.min_call_ms, name=name)
        self._session = observe_frame(self._builder, frame)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> Literal[False]:
        session, self._session = self._session, None
        if session is not None:
            session.stop()
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
        """Every call the block made from its own code, slow or not, in order."""
        if self._builder is None:
            raise CaptureError("no events yet: use the capture in a `with` block first")
        return list(self._builder.events)

    def report(self) -> str:
        """A readable account: times, critical path, speedup bound and the groups of independent calls."""
        from xcs_bc.analyze.report import format_report

        return format_report(self.graph)

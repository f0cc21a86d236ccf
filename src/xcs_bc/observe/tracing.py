"""The CPython 3.10 / 3.11 backend of `hooks`: `sys.settrace` with 'opcode' events on target frames.

A trace function installed before ours (coverage, a debugger) is chained: it gets every
event it asked for, with the local tracer it returns kept per frame, and never an 'opcode'
event unless it set `f_trace_opcodes` on that frame itself.  On stop, the global trace
function and each target frame's own tracer and `f_trace_opcodes` are put back exactly,
unless something replaced ours meanwhile (then theirs is left, and the session's `error`
says the events are incomplete).  `sys.setprofile` is never touched.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xcs_bc.errors import CaptureError

if TYPE_CHECKING:
    from xcs_bc.observe.hooks import Session

TraceFn = Callable[[types.FrameType, str, Any], Any]


@dataclass(slots=True)
class _FrameHook:
    """What a target frame had before ours: restored when the session stops."""

    previous: TraceFn | None  # the frame's own tracer (a debugger's, coverage's): chained, then put back
    opcodes: bool  # whether that tracer asked for 'opcode' events (f_trace_opcodes before ours)
    tracer: TraceFn | None = None  # ours
    followed: bool = False  # a callee's frame the listener follows into: its return goes to its caller


class Tracing:
    """settrace-based observation that chains to the trace function installed before it."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.global_tracer: TraceFn = self._global  # one bound method: `sys.gettrace() is` compares it
        self.previous: Any = None  # the trace function installed before ours
        self.installed = False
        self.frames: dict[types.FrameType, _FrameHook] = {}  # target frames running with our tracer

    def install(self) -> None:
        self.previous = sys.gettrace()
        root = self.session.root
        if root is not None:
            self._trace_target(root, root.f_trace)
        self.installed = True  # before settrace: uninstall() checks which tracer is really installed
        sys.settrace(self.global_tracer)

    def uninstall(self) -> None:
        if self.installed:
            if sys.gettrace() is self.global_tracer:
                sys.settrace(self.previous)
            elif self.session.error is None:
                # a debugger started, the program called settrace, or a trace function raised
                self.session.error = CaptureError(
                    "the trace function was replaced while observing: the observed events are incomplete"
                )
            self.installed = False
        for frame, hook in list(self.frames.items()):
            self._release(frame, hook)
        # the bound method refers to this object: kept, it would make a cycle holding the whole trace
        self.global_tracer = _detached

    def pause(self) -> bool:
        """Send no event at all until `resume()` (see `Session.pause`); False when ours is not the
        trace function installed, or chains to one installed before it (coverage must still see the
        lines of a call made meanwhile), and nothing was paused."""
        if not self.installed or self.previous is not None or sys.gettrace() is not self.global_tracer:
            return False
        sys.settrace(None)
        return True

    def resume(self) -> None:
        """Put ours back after `pause()`, unless the session ended or someone installed theirs."""
        if self.installed and sys.gettrace() is None:
            sys.settrace(self.global_tracer)

    def _release(self, frame: types.FrameType, hook: _FrameHook) -> None:
        if frame.f_trace is hook.tracer:  # unless a debugger put its own there meanwhile
            frame.f_trace = hook.previous
        frame.f_trace_opcodes = hook.opcodes
        self.frames.pop(frame, None)
        hook.tracer = None  # (the tracer refers to its hook)

    def _trace_target(self, frame: types.FrameType, previous_local: TraceFn | None) -> TraceFn:
        hook = _FrameHook(previous_local, frame.f_trace_opcodes)
        self.frames[frame] = hook  # recorded before the frame is changed
        tracer = hook.tracer = self._target_tracer(hook)
        frame.f_trace_opcodes = True
        frame.f_trace = tracer
        return tracer

    def _chain(self, tracer: TraceFn, frame: types.FrameType, event: str, arg: Any) -> Any:
        """Call a trace function installed before ours, and keep ours installed.

        coverage's C tracer, called from Python, re-installs itself at the C level, which would
        silently replace this observer: put ours back when that happens.
        """
        result = tracer(frame, event, arg)
        if sys.gettrace() is not self.global_tracer and self.installed:
            sys.settrace(self.global_tracer)
        return result

    def _global(self, frame: types.FrameType, event: str, arg: Any) -> TraceFn | None:
        previous_local = self._chain(self.previous, frame, event, arg) if self.previous is not None else None
        session = self.session
        if event != "call" or session.error is not None or frame.f_code in session.unwatched:
            return previous_local
        if session.claim_root(frame) or session.is_target(frame):
            return self._trace_target(frame, previous_local)
        caller = frame.f_back
        if caller is not None and session.is_target(caller):
            session.deliver(session.listener.entered, caller, frame)
            if session.error is None and session.listener.follows(frame):
                session.follow(frame.f_code)
                tracer = self._trace_target(frame, previous_local)
                self.frames[frame].followed = True
                return tracer
            if previous_local is None:
                frame.f_trace_lines = False
            return self._callee_tracer(caller, previous_local)
        return previous_local

    def _target_tracer(self, hook: _FrameHook) -> TraceFn:
        return _TargetTracer(self, hook)

    def _callee_tracer(self, caller: types.FrameType, previous_local: TraceFn | None) -> TraceFn:
        return _CalleeTracer(self, caller, previous_local)


def _detached(frame: types.FrameType, event: str, arg: Any) -> None:
    """Stands for a tracer that was uninstalled (never installed anywhere)."""


# The local trace functions are objects that return themselves, not closures: a closure that returns
# itself refers to itself through its cell, a cycle holding the session, the builder and the whole
# trace, which only a collection would free.


class _TargetTracer:
    """The trace function of a target frame: its instructions, exceptions and return."""

    __slots__ = ("tracing", "hook")

    def __init__(self, tracing: Tracing, hook: _FrameHook) -> None:
        self.tracing = tracing
        self.hook = hook

    def __call__(self, frame: types.FrameType, event: str, arg: Any) -> TraceFn:
        tracing, hook = self.tracing, self.hook
        session = tracing.session
        previous = hook.previous
        if previous is not None and (event != "opcode" or hook.opcodes):
            hook.previous = tracing._chain(previous, frame, event, arg)
        if event == "opcode":
            quieted = session.quieted
            if quieted is None or not quieted.drops(frame, frame.f_lasti):
                session.deliver(session.listener.instruction, frame, frame.f_lasti)
        elif event == "exception":
            session.deliver(session.listener.raised, frame, arg[1])
        elif event == "return":  # done, or a generator suspended: put the frame back, keep it not alive
            if hook.followed and frame.f_back is not None and frame.f_code.co_name != "__init__":
                session.deliver(session.listener.returned, frame.f_back, arg, frame.f_code)
            tracing._release(frame, hook)
        return self


class _CalleeTracer:
    """The trace function of a frame a target frame called: only its return is reported."""

    __slots__ = ("tracing", "caller", "previous_local")

    def __init__(self, tracing: Tracing, caller: types.FrameType, previous_local: TraceFn | None) -> None:
        self.tracing = tracing
        self.caller = caller
        self.previous_local = previous_local

    def __call__(self, frame: types.FrameType, event: str, arg: Any) -> TraceFn:
        if self.previous_local is not None:
            self.previous_local = self.tracing._chain(self.previous_local, frame, event, arg)
        if event == "return" and frame.f_code.co_name != "__init__":  # (a class's call gives the object)
            session = self.tracing.session
            session.deliver(session.listener.returned, self.caller, arg, frame.f_code)
        return self

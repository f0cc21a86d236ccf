"""Observe: report every instruction and call of the target frames to a listener.

Target frames are the frame being observed (a captured block's frame, or the
first frame of a jitted function's code called from a given parent frame)
and the comprehension / generator-expression frames nested in it.  Two
backends, chosen once in `_backend()`:

* CPython 3.12+: a `sys.monitoring` tool with *local* events on the target
  code objects only (INSTRUCTION, CALL), plus PY_START / PY_RETURN on the
  code of the Python functions the target calls, to read their bound
  arguments and return values.  Nothing else in the process is slowed down.
* CPython 3.10 / 3.11: `sys.settrace` with opcode events on target frames.
  A trace function installed before (coverage, a debugger) keeps receiving
  every event it would have received, and is reinstated on exit.

One session per thread at a time: a second `start()` on a thread that is
already observed raises `CaptureError`; sessions on different threads work
side by side.  `Session.stop()` clears every event and callback it set, on
every exit path.
"""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from xcs_bc._compat import PY312, nested_code
from xcs_bc.errors import CaptureError
from xcs_bc.ir import MISSING, Site
from xcs_bc.ir.values import peek_attr


@dataclass(slots=True)
class CallEvent:
    """One call made from a target frame.

    `args` holds the bound arguments of a Python callee (None for a C
    function: CPython does not expose a C call's arguments to observers);
    `result` is MISSING when the call raised or its value was not observable.
    """

    site: Site
    callee: Any
    args: dict[str, Any] | None
    result: Any
    exception: BaseException | None
    start: float
    end: float
    thread: int

    @property
    def duration(self) -> float:
        return self.end - self.start


class Listener(Protocol):
    def instruction(self, frame: types.FrameType, offset: int) -> None: ...
    def call(self, frame: types.FrameType, callee: Any, arg0: Any) -> None: ...
    def entered(self, caller: types.FrameType, callee_frame: types.FrameType) -> None: ...
    def returned(self, caller: types.FrameType, value: Any) -> None: ...
    def raised(self, frame: types.FrameType, exc: BaseException) -> None: ...


# sys.monitoring exists from 3.12; typed loosely so that one source type-checks for 3.10 too
_monitoring: Any = getattr(sys, "monitoring", None)

_sessions: dict[int, Session] = {}
_sessions_lock = threading.Lock()


def is_observing() -> bool:
    """True when the current thread is being observed (a capture or a jit trace is running)."""
    return threading.get_ident() in _sessions


class Session:
    """Observation of one target on one thread; `stop()` ends it and removes every hook."""

    def __init__(
        self,
        listener: Listener,
        *,
        frame: types.FrameType | None,
        code: types.CodeType,
        parent: types.FrameType | None,
    ) -> None:
        self.listener = listener
        self.thread = threading.get_ident()
        self.root = frame
        self.root_code = code
        self.parent = parent
        self.nested = frozenset(nested_code(code))
        self._known: dict[types.FrameType, bool] = {}
        self._backend: _Backend | None = None
        self.error: BaseException | None = None  # an internal error that ended observation early

    def deliver(self, method: Callable[..., None], *args: Any) -> None:
        """Call a listener method; an error of ours never reaches the observed code: it ends observing."""
        if self.error is not None:
            return
        try:
            method(*args)
        except Exception as exc:  # noqa: BLE001 - the user's program must run on regardless
            self.error = exc

    def is_target(self, frame: types.FrameType) -> bool:
        if frame is self.root:
            return True
        known = self._known.get(frame)
        if known is None:
            known = frame.f_code in self.nested and self._descends_from_root(frame)
            self._known[frame] = known
        return known

    def _descends_from_root(self, frame: types.FrameType) -> bool:
        parent = frame.f_back
        for _ in range(16):
            if parent is None:
                return False
            if parent is self.root:
                return True
            parent = parent.f_back
        return False

    def claim_root(self, frame: types.FrameType) -> bool:
        """In jit mode, the first frame of the target code called from the parent becomes the root."""
        if self.root is None and frame.f_code is self.root_code and frame.f_back is self.parent:
            self.root = frame
            return True
        return False

    def start(self) -> Session:
        with _sessions_lock:
            other = _sessions.get(self.thread)
            if other is not None:
                raise CaptureError(
                    f"this thread is already observed (tracing {other.root_code.co_name!r} at "
                    f"{other.root_code.co_filename}:{other.root_code.co_firstlineno}); captures cannot be "
                    "nested: end the outer `xcs.capture()` block first, or capture in another thread"
                )
            _sessions[self.thread] = self
        try:
            self._backend = _backend()(self)
            self._backend.install()
        except BaseException:
            with _sessions_lock:
                _sessions.pop(self.thread, None)
            raise
        return self

    def stop(self) -> None:
        backend, self._backend = self._backend, None
        try:
            if backend is not None:
                backend.uninstall()
        finally:
            with _sessions_lock:
                if _sessions.get(self.thread) is self:
                    del _sessions[self.thread]
            self._known.clear()


def observe_frame(listener: Listener, frame: types.FrameType) -> Session:
    """Observe `frame` (already running) from its next instruction on."""
    return Session(listener, frame=frame, code=frame.f_code, parent=None).start()


def observe_call(listener: Listener, code: types.CodeType, parent: types.FrameType) -> Session:
    """Observe the next frame of `code` that `parent` calls (a jitted function's body)."""
    return Session(listener, frame=None, code=code, parent=parent).start()


class _Backend(Protocol):
    def __init__(self, session: Session) -> None: ...
    def install(self) -> None: ...
    def uninstall(self) -> None: ...


def _backend() -> Callable[[Session], _Backend]:
    if PY312:
        return _Monitoring
    return _Tracing


# -- CPython 3.12+: sys.monitoring --------------------------------------------------------------


class _MonitoringTool:
    """The process-wide sys.monitoring tool shared by all sessions, held while any session runs."""

    _PREFERRED = (4, 3, 2, 0, 5, 1)  # unnamed ids first; then profiler, debugger, optimizer, coverage

    def __init__(self) -> None:
        self.tool_id: int | None = None
        self.users = 0
        self.masks: dict[types.CodeType, dict[int, int]] = {}  # code -> {id(session): event mask}
        self.lock = threading.Lock()

    def acquire(self) -> None:
        mon = _monitoring
        with self.lock:
            if self.users == 0:
                for tool_id in self._PREFERRED:
                    if mon.get_tool(tool_id) is None:
                        mon.use_tool_id(tool_id, "xcs_bc")
                        self.tool_id = tool_id
                        break
                else:
                    in_use = {i: mon.get_tool(i) for i in range(6)}
                    raise CaptureError(
                        f"no free sys.monitoring tool id (in use: {in_use}); stop a profiler, debugger or "
                        "coverage tool that holds one, then try again"
                    )
                ev = mon.events
                mon.register_callback(self.tool_id, ev.INSTRUCTION, _mon_instruction)
                mon.register_callback(self.tool_id, ev.CALL, _mon_call)
                mon.register_callback(self.tool_id, ev.PY_START, _mon_py_start)
                mon.register_callback(self.tool_id, ev.PY_RETURN, _mon_py_return)
            self.users += 1

    def release(self) -> None:
        mon = _monitoring
        with self.lock:
            self.users -= 1
            if self.users > 0 or self.tool_id is None:
                return
            tool_id, self.tool_id = self.tool_id, None
            # free_tool_id does not clear events or callbacks on 3.12/3.13: do it by hand
            for code in list(self.masks):
                mon.set_local_events(tool_id, code, 0)
            self.masks.clear()
            mon.set_events(tool_id, 0)
            ev = mon.events
            for event in (ev.INSTRUCTION, ev.CALL, ev.PY_START, ev.PY_RETURN):
                mon.register_callback(tool_id, event, None)
            mon.free_tool_id(tool_id)

    def set_mask(self, session: Session, code: types.CodeType, mask: int) -> None:
        with self.lock:
            per_code = self.masks.setdefault(code, {})
            if mask:
                per_code[id(session)] = per_code.get(id(session), 0) | mask
            else:
                per_code.pop(id(session), None)
            total = 0
            for m in per_code.values():
                total |= m
            if not per_code:
                del self.masks[code]
            if self.tool_id is not None:
                _monitoring.set_local_events(self.tool_id, code, total)


_tool = _MonitoringTool()


class _Monitoring:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.codes: set[types.CodeType] = set()

    def install(self) -> None:
        ev = _monitoring.events
        _tool.acquire()
        try:
            targets = ev.INSTRUCTION | ev.CALL
            root = self.session.root_code
            self._set(root, targets | (ev.PY_START if self.session.root is None else 0))
            for code in self.session.nested:
                self._set(code, targets)
        except BaseException:
            self.uninstall()
            raise

    def _set(self, code: types.CodeType, mask: int) -> None:
        self.codes.add(code)
        _tool.set_mask(self.session, code, mask)

    def watch_callee(self, code: types.CodeType) -> None:
        if code not in self.codes:
            ev = _monitoring.events
            self._set(code, ev.PY_START | ev.PY_RETURN)

    def uninstall(self) -> None:
        try:
            for code in self.codes:
                _tool.set_mask(self.session, code, 0)
            self.codes.clear()
        finally:
            _tool.release()


def _mon_session() -> Session | None:
    return _sessions.get(threading.get_ident())


def _mon_instruction(code: types.CodeType, offset: int) -> None:
    session = _mon_session()
    if session is not None:
        frame = sys._getframe(1)
        if session.is_target(frame):
            session.deliver(session.listener.instruction, frame, offset)


def _mon_call(code: types.CodeType, offset: int, callee: Any, arg0: Any) -> None:
    session = _mon_session()
    if session is None:
        return
    frame = sys._getframe(1)
    if not session.is_target(frame):
        return
    session.deliver(session.listener.call, frame, callee, MISSING if arg0 is _monitoring.MISSING else arg0)
    callee_code = _python_code(callee)
    backend = session._backend
    if callee_code is not None and isinstance(backend, _Monitoring) and callee_code not in session.nested:
        backend.watch_callee(callee_code)


def _mon_py_start(code: types.CodeType, offset: int) -> None:
    session = _mon_session()
    if session is None:
        return
    frame = sys._getframe(1)
    if session.claim_root(frame):
        return
    caller = frame.f_back
    if caller is not None and session.is_target(caller):
        session.deliver(session.listener.entered, caller, frame)


def _mon_py_return(code: types.CodeType, offset: int, value: Any) -> None:
    session = _mon_session()
    if session is None:
        return
    frame = sys._getframe(1)
    caller = frame.f_back
    if caller is not None and frame is not session.root and session.is_target(caller):
        session.deliver(session.listener.returned, caller, value)


def _python_code(callee: Any) -> types.CodeType | None:
    """The code object a call of `callee` starts running, when it is Python code."""
    func = getattr(callee, "__func__", callee)
    code = getattr(func, "__code__", None)
    if isinstance(code, types.CodeType):
        return code
    call = peek_attr(type(callee), "__call__")  # the class's own __call__, running no descriptor
    code = getattr(call, "__code__", None)
    return code if isinstance(code, types.CodeType) else None


# -- CPython 3.10 / 3.11: sys.settrace ------------------------------------------------------------

_TraceFn = Callable[[types.FrameType, str, Any], Any]


class _Tracing:
    """settrace-based observation that chains to the trace function installed before it."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.previous: Any = None  # the trace function installed before ours
        self.root_previous_local: Any = None  # the frame's own tracer before ours (coverage's, a debugger's)
        self.frames: list[types.FrameType] = []

    def install(self) -> None:
        self.previous = sys.gettrace()
        root = self.session.root
        if root is not None:
            self.root_previous_local = root.f_trace
            self._trace_target(root, root.f_trace)
        sys.settrace(self._global)

    def uninstall(self) -> None:
        sys.settrace(self.previous)
        for frame in self.frames:
            frame.f_trace_opcodes = False
            if frame is self.session.root:
                frame.f_trace = self.root_previous_local
        self.frames.clear()

    def _trace_target(self, frame: types.FrameType, previous_local: _TraceFn | None) -> _TraceFn:
        frame.f_trace_opcodes = True
        self.frames.append(frame)
        tracer = self._target_tracer(previous_local)
        frame.f_trace = tracer
        return tracer

    def _chain(self, tracer: _TraceFn, frame: types.FrameType, event: str, arg: Any) -> Any:
        """Call a trace function installed before ours, and keep ours installed.

        coverage's C tracer, called from Python, re-installs itself at the C level, which would
        silently replace this observer: put ours back when that happens.
        """
        result = tracer(frame, event, arg)
        if sys.gettrace() is not self._global:
            sys.settrace(self._global)
        return result

    def _global(self, frame: types.FrameType, event: str, arg: Any) -> _TraceFn | None:
        previous_local = self._chain(self.previous, frame, event, arg) if self.previous is not None else None
        if event != "call":
            return previous_local
        session = self.session
        if session.claim_root(frame) or session.is_target(frame):
            return self._trace_target(frame, previous_local)
        caller = frame.f_back
        if caller is not None and session.is_target(caller):
            session.deliver(session.listener.entered, caller, frame)
            if previous_local is None:
                frame.f_trace_lines = False
            return self._callee_tracer(caller, previous_local)
        return previous_local

    def _target_tracer(self, previous_local: _TraceFn | None) -> _TraceFn:
        session = self.session
        listener = session.listener

        def trace(frame: types.FrameType, event: str, arg: Any) -> _TraceFn:
            nonlocal previous_local
            if previous_local is not None:
                previous_local = self._chain(previous_local, frame, event, arg)
            if event == "opcode":
                session.deliver(listener.instruction, frame, frame.f_lasti)
            elif event == "exception":
                session.deliver(listener.raised, frame, arg[1])
            return trace

        return trace

    def _callee_tracer(self, caller: types.FrameType, previous_local: _TraceFn | None) -> _TraceFn:
        session = self.session
        listener = session.listener

        def trace(frame: types.FrameType, event: str, arg: Any) -> _TraceFn | None:
            nonlocal previous_local
            if previous_local is not None:
                previous_local = self._chain(previous_local, frame, event, arg)
            if event == "return":
                session.deliver(listener.returned, caller, arg)
            return trace

        return trace

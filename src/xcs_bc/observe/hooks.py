"""Observe: report every instruction and call of the target frames to a listener.

Target frames are the frame being observed (a captured block's frame, or the
first frame of a jitted function's code called from a given parent frame),
the frames of the Python functions the listener follows into (a capture
traces through the user's own functions: see `reach`), and the
comprehension / generator-expression frames nested in them.  Two backends,
chosen once in `_backend()`:

* CPython 3.12+: a `sys.monitoring` tool with *local* events on the target
  code objects only (INSTRUCTION, CALL), plus PY_START / PY_RETURN on the
  code of the Python functions the target calls, to read their bound
  arguments and return values; a followed function's code gets INSTRUCTION
  and CALL too, from its first PY_START on.  Nothing else in the process is slowed down,
  and no other tool's events are touched.
* CPython 3.10 / 3.11: `sys.settrace` with opcode events on target frames.

On both, the listener may ask for a span of a frame's events to be dropped (`Session.quiet`: the
later rounds of a long loop of glue, see `build.skipping`).
  A trace function installed before (coverage, a debugger) keeps receiving
  every event it asked for (never an 'opcode' event it did not ask for), and
  is reinstated on exit unless something replaced ours meanwhile.

One session per thread at a time: a second `start()` on a thread that is
already observed raises `CaptureError`, except that an explicit capture
takes the thread over from a jit trace (the trace ends early; its call runs
on unobserved), and that a first call's dispatcher may set its session aside
while a helper's own jitted function traces it (`Session.detached`).
Sessions on different threads work side by side.

Interrupts (Ctrl-C) may land between any two steps.  `start()` marks the
thread first and installs hooks after, recording every hook before it is
set; on any failure it undoes what it did.  `stop()` removes hooks first and
unmarks the thread last; each step is idempotent, and an interrupt during
`stop()` is held until the cleanup is done, then re-raised.  A session whose
`stop()` was never reached (an interrupt just before it) is found stale, its
frames gone from the thread's stack, and stopped by the next `start()` or
`is_observing()` on that thread.
"""

from __future__ import annotations

import contextlib
import dis
import functools
import sys
import threading
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from xcs_bc._compat import CO_GENERATOR_LIKE, PY312, nested_code
from xcs_bc.errors import CaptureError
from xcs_bc.ir import MISSING, Site
from xcs_bc.ir.values import class_lookup, peek_attr


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


@dataclass(frozen=True, slots=True)
class Quiet:
    """Events of a target frame the listener asked not to get (see `Session.quiet`): those of `frame`
    at `offsets`, and of the frames it calls directly that are not generators' (its comprehensions',
    on 3.10/3.11, and the functions it hands a built-in, like a sort key)."""

    frame: types.FrameType
    offsets: frozenset[int]

    def drops(self, frame: types.FrameType, offset: int) -> bool:
        if frame is self.frame:
            return offset in self.offsets
        # (a generator's frame goes on after the span: the listener must see it)
        return frame.f_back is self.frame and not frame.f_code.co_flags & CO_GENERATOR_LIKE


class Listener(Protocol):
    def instruction(self, frame: types.FrameType, offset: int) -> None: ...
    def call(self, frame: types.FrameType, callee: Any, arg0: Any) -> None: ...
    def entered(self, caller: types.FrameType, callee_frame: types.FrameType) -> None: ...
    def returned(self, caller: types.FrameType, value: Any, code: types.CodeType) -> None: ...
    def raised(self, frame: types.FrameType, exc: BaseException) -> None: ...
    # is `frame`, the frame of a Python callee `entered` just reported (or of a callee it followed
    # before), one the listener traces through?  Asked for frames of followed code only.
    def follows(self, frame: types.FrameType) -> bool: ...
    # the Python code the call instruction now pending in `frame` may start, beyond what the CALL
    # event's callee runs: the functions a built-in is handed (`sorted(xs, key=f)`), and on CPython
    # 3.12, which reports no CALL event for `f(*args, **kwargs)`, the callee's
    def pending_codes(self, frame: types.FrameType) -> tuple[types.CodeType, ...]: ...


# sys.monitoring exists from 3.12; typed loosely so that one source type-checks for 3.10 too
_monitoring: Any = getattr(sys, "monitoring", None)

_sessions: dict[int, Session] = {}
_sessions_lock = threading.Lock()
_STOP_ATTEMPTS = 8  # each interrupt during stop() costs one attempt; the steps are idempotent
_KNOWN_MAX = 4096  # comprehension frames remembered as targets or not; forgotten past this many


def is_observing() -> bool:
    """True when the current thread is being observed (a capture or a jit trace is running)."""
    session = _sessions.get(threading.get_ident())
    if session is None:
        return False
    if session.is_stale():
        session.stop()
        return False
    return True


class Session:
    """Observation of one target on one thread; `stop()` ends it and removes every hook.

    `yields` marks a jit trace: an explicit `xcs.capture()` started inside the traced
    call takes the thread over (the trace ends early, with `error` saying why).
    """

    def __init__(
        self,
        listener: Listener,
        *,
        frame: types.FrameType | None,
        code: types.CodeType,
        parent: types.FrameType | None,
        yields: bool = False,
        unwatched: frozenset[types.CodeType] = frozenset(),
    ) -> None:
        self.listener = listener
        self.thread = threading.get_ident()
        self.root = frame
        self.root_code = code
        self.parent = parent
        self.yields = yields
        self.unwatched = unwatched  # callees whose entry and return are not watched (the capture's exit)
        self.nested = set(nested_code(code))
        self._nested_ids = set(map(id, self.nested))  # (kept alive by `nested`)
        self.followed: set[types.CodeType] = set()  # code of the callees the listener followed into
        self._followed_ids: set[int] = set()  # (kept alive by `followed`)
        self._known: dict[types.FrameType, bool] = {}
        self._backend: _Backend | None = None
        self.error: BaseException | None = None  # what ended observation early (ours, or an interrupt)
        self.quieted: Quiet | None = None  # events the listener asked not to get (see `quiet`)

    def deliver(self, method: Callable[..., None], *args: Any) -> None:
        """Call a listener method; an error of ours never reaches the observed code: it ends observing."""
        if self.error is not None:
            return
        try:
            method(*args)
        except Exception as exc:  # noqa: BLE001 - the user's program must run on regardless
            self.error = exc
        except BaseException as exc:  # an interrupt: the listener is half-updated, observation is over
            self.error = exc
            raise

    def quiet(self, frame: types.FrameType, offsets: frozenset[int]) -> None:
        """Deliver no instruction or call events of `frame` at `offsets`, nor of the frames it calls
        directly (see `Quiet`), until `loud()`.  The listener learns where the frame went from its
        first event elsewhere; a Python function started is still reported (`entered`)."""
        self.quieted = Quiet(frame, offsets)

    def loud(self) -> None:
        """Deliver every event again."""
        self.quieted = None

    def is_target(self, frame: types.FrameType) -> bool:
        if frame is self.root:
            return True
        code_id = id(frame.f_code)
        if code_id in self._followed_ids and self.listener.follows(frame):
            return True
        if code_id not in self._nested_ids:
            # answered without remembering the frame: while a captured coroutine is suspended, the
            # other tasks' frames go by here, and remembering them would keep them alive
            return False
        known = self._known.get(frame)
        if known is None:
            known = self._descends_from_target(frame)
            if len(self._known) >= _KNOWN_MAX:  # (a helper's comprehension, run thousands of times)
                self._known.clear()
            self._known[frame] = known
        return known

    def _descends_from_target(self, frame: types.FrameType) -> bool:
        """A comprehension's frame is a target when a target frame made it or consumes it (maybe
        through frames between, a helper consuming it).  Not when another run of the target's code
        (or of the original of the clone a first call runs) comes first: the comprehension of a
        recursive call of the function (plain, or jitted and run plainly while it is observed) is
        that call's, which is not observed."""
        parent = frame.f_back
        for _ in range(16):
            if parent is None:
                return False
            if parent is self.root or (
                id(parent.f_code) in self._followed_ids and self.listener.follows(parent)
            ):
                return True
            if _same_function(parent.f_code, self.root_code) or id(parent.f_code) in self._followed_ids:
                return False
            parent = parent.f_back
        return False

    def follow(self, code: types.CodeType) -> bool:
        """The listener follows into frames of `code`: their comprehensions are targets too.  True
        the first time (the backend then watches the code's instructions)."""
        if id(code) in self._followed_ids:
            return False
        self.followed.add(code)
        self._followed_ids.add(id(code))
        for inner in nested_code(code):
            self.nested.add(inner)
            self._nested_ids.add(id(inner))
        return True

    def claim_root(self, frame: types.FrameType) -> bool:
        """In jit mode, the first frame of the target code called from the parent becomes the root."""
        if self.root is None and frame.f_code is self.root_code and frame.f_back is self.parent:
            self.root = frame
            return True
        return False

    def is_stale(self) -> bool:
        """True when the frame this session observes is gone from the current thread's stack.

        Its `stop()` was never reached (an interrupt landed just before it).  A suspended
        generator's frame is off the stack yet alive: such a session is never stale.
        """
        anchor = self.root if self.root is not None else self.parent
        if anchor is None or anchor.f_code.co_flags & CO_GENERATOR_LIKE:
            return False
        frame: types.FrameType | None = sys._getframe(1)
        while frame is not None:
            if frame is anchor:
                return False
            frame = frame.f_back
        return True

    def start(self) -> Session:
        """Mark the thread observed, then install the hooks; any failure or interrupt undoes both."""
        try:
            self._claim_thread()
            backend = _backend()(self)
            self._backend = backend  # recorded before install: stop() undoes a partial install
            backend.install()
        except BaseException:
            self.stop()
            raise
        return self

    def _claim_thread(self) -> None:
        other = _sessions.get(self.thread)
        if other is not None and other is not self:
            if other.is_stale():
                other.stop()
            elif other.yields and not self.yields:
                other.end(
                    CaptureError(
                        "an `xcs.capture()` block inside the traced call took over observing this thread"
                    )
                )
            else:
                code = other.root_code
                where = f"{code.co_name!r} at {code.co_filename}:{code.co_firstlineno}"
                if code.co_flags & CO_GENERATOR_LIKE:  # a block in a coroutine, waiting at an await
                    raise CaptureError(
                        f"this thread is already observed: an `xcs.capture()` block in {where} is under "
                        "way (around this one, or in another task on this event loop, waiting at an "
                        "await); one block is observed per thread at a time: end that block first, or "
                        "capture in one task at a time"
                    )
                raise CaptureError(
                    f"this thread is already observed (tracing {where}); captures cannot be "
                    "nested: end the outer `xcs.capture()` block first, or capture in another thread"
                )
        with _sessions_lock:
            _sessions[self.thread] = self

    def pause(self) -> bool:
        """Stop the events of this thread while code of ours that the listener needs no event of runs
        in an observed frame's call (a first call's dispatcher, which tells the listener itself what
        the call did): on 3.10/3.11 the trace function is called for every frame that code starts.
        True when paused: `resume()` must follow, in a `finally`."""
        backend = self._backend
        return backend is not None and backend.pause()

    def resume(self) -> None:
        """Send events again after `pause()`."""
        backend = self._backend
        if backend is not None:
            backend.resume()

    @contextlib.contextmanager
    def detached(self) -> Iterator[bool]:
        """While code of ours runs in an observed frame's call with the events paused (see `pause`),
        the thread counts as not observed: a jitted helper called there may trace it with a session
        of its own (`execute.follow`).  The thread is this session's again after.  Not on 3.10/3.11
        while a trace function is installed (ours not paused, or one we chain to): it stays observed,
        and the context gives False."""
        detach = PY312 or sys.gettrace() is None
        if detach:
            with _sessions_lock:
                detach = _sessions.get(self.thread) is self
                if detach:
                    del _sessions[self.thread]
        try:
            yield detach
        finally:
            if detach:
                left = _sessions.get(self.thread)
                if left is not None and left is not self:  # (one an interrupt kept from stopping)
                    left.stop()
                with _sessions_lock:
                    _sessions[self.thread] = self

    def end(self, reason: BaseException) -> None:
        """Stop observing before the target is done; `error` says why."""
        if self.error is None:
            self.error = reason
        self.stop()

    def stop(self) -> None:
        """Remove every hook, then unmark the thread.  Idempotent; an interrupt is re-raised when done."""
        interrupted: BaseException | None = None
        for _ in range(_STOP_ATTEMPTS):
            try:
                self._teardown()
                break
            except BaseException as exc:  # noqa: BLE001 - finish cleaning up, then re-raise it
                if interrupted is None:
                    interrupted = exc
        if interrupted is not None:
            raise interrupted

    def _teardown(self) -> None:
        backend = self._backend
        if backend is not None:
            backend.uninstall()
            self._backend = None
        with _sessions_lock:
            if _sessions.get(self.thread) is self:
                del _sessions[self.thread]
        self._known.clear()
        self.quieted = None
        self.followed.clear()
        self._followed_ids.clear()
        # The frames it watched hold this session in a local (the jit's trace, the capture's block):
        # keeping them here would make a cycle that only a collection frees, with the whole trace in it.
        self.root = self.parent = None


def observe_call(listener: Listener, code: types.CodeType, parent: types.FrameType) -> Session:
    """Observe the next frame of `code` that `parent` calls (a jitted function's body)."""
    return Session(listener, frame=None, code=code, parent=parent, yields=True).start()


class _Backend(Protocol):
    def __init__(self, session: Session) -> None: ...
    def install(self) -> None: ...
    def uninstall(self) -> None: ...
    def pause(self) -> bool: ...
    def resume(self) -> None: ...


def _backend() -> Callable[[Session], _Backend]:
    if PY312:
        return _Monitoring
    from xcs_bc.observe.tracing import Tracing  # imports this module: loaded once a session starts

    return Tracing


# -- CPython 3.12+: sys.monitoring --------------------------------------------------------------


class _MonitoringTool:
    """The process-wide sys.monitoring tool shared by all sessions, held while any session runs.

    Every step records what it is about to do before doing it, so that `release()` (or the
    next `acquire()`) finds and undoes a step an interrupt cut short: the tool is found by
    its name, the sessions using it are a set, and a code object's events are cleared
    before it is forgotten.
    """

    NAME = "xcs_bc"
    _PREFERRED = (4, 3, 2, 0, 5, 1)  # unnamed ids first; then profiler, debugger, optimizer, coverage

    def __init__(self) -> None:
        self.tool_id: int | None = None
        self.users: set[Session] = set()
        self.masks: dict[types.CodeType, dict[Session, int]] = {}  # code -> {session: event mask}
        self.lock = threading.Lock()

    def acquire(self, session: Session) -> None:
        mon = _monitoring
        with self.lock:
            self.users.add(session)
            if self.tool_id is not None and mon.get_tool(self.tool_id) == self.NAME:
                return
            tool_id = self._take_id()
            ev = mon.events
            mon.register_callback(tool_id, ev.INSTRUCTION, _mon_instruction)
            mon.register_callback(tool_id, ev.CALL, _mon_call)
            mon.register_callback(tool_id, ev.PY_START, _mon_py_start)
            mon.register_callback(tool_id, ev.PY_RETURN, _mon_py_return)
            self.tool_id = tool_id  # last: a tool id without its callbacks is never used

    def _take_id(self) -> int:
        mon = _monitoring
        ours = self._named_id()
        if ours is not None:  # taken by an acquire() an interrupt cut short
            return ours
        for tool_id in self._PREFERRED:
            if mon.get_tool(tool_id) is None:
                mon.use_tool_id(tool_id, self.NAME)
                return tool_id
        in_use = ", ".join(f"{i}: {mon.get_tool(i)!r}" for i in range(6))
        raise CaptureError(
            f"no free sys.monitoring tool id (in use: {in_use}); stop a profiler, debugger or "
            "coverage tool that holds one, or free one with sys.monitoring.free_tool_id(id), then try again"
        )

    def _named_id(self) -> int | None:
        for tool_id in range(6):
            if _monitoring.get_tool(tool_id) == self.NAME:
                return tool_id
        return None

    def release(self, session: Session) -> None:
        mon = _monitoring
        with self.lock:
            self.users.discard(session)
            if self.users:
                return
            self.tool_id = None
            tool_id = self._named_id()
            if tool_id is not None:
                # free_tool_id does not clear events or callbacks on 3.12/3.13: do it by hand
                for code in list(self.masks):
                    mon.set_local_events(tool_id, code, 0)
                    del self.masks[code]
                mon.set_events(tool_id, 0)
                ev = mon.events
                for event in (ev.INSTRUCTION, ev.CALL, ev.PY_START, ev.PY_RETURN):
                    mon.register_callback(tool_id, event, None)
                mon.free_tool_id(tool_id)
            self.masks.clear()

    def set_mask(self, session: Session, code: types.CodeType, mask: int) -> None:
        with self.lock:
            per_code = self.masks.setdefault(code, {})  # recorded before the events are set
            if mask:
                per_code[session] = per_code.get(session, 0) | mask
            else:
                per_code.pop(session, None)
            total = 0
            for m in per_code.values():
                total |= m
            if self.tool_id is not None:
                _monitoring.set_local_events(self.tool_id, code, total)
            if not per_code:
                del self.masks[code]  # forgotten only once its events are cleared


_tool = _MonitoringTool()


class _Monitoring:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.codes: set[types.CodeType] = set()

    def install(self) -> None:
        ev = _monitoring.events
        _tool.acquire(self.session)
        targets = ev.INSTRUCTION | ev.CALL
        root = self.session.root_code
        self._set(root, targets | (ev.PY_START if self.session.root is None else 0))
        for code in self.session.nested:
            self._set(code, targets)

    def _set(self, code: types.CodeType, mask: int) -> None:
        self.codes.add(code)
        _tool.set_mask(self.session, code, mask)

    def pause(self) -> bool:
        return False  # (its events are local to the code it watches: other code sends none)

    def resume(self) -> None:
        pass

    def watch_callee(self, code: types.CodeType) -> None:
        if code not in self.codes:
            ev = _monitoring.events
            self._set(code, ev.PY_START | ev.PY_RETURN)

    def follow(self, code: types.CodeType) -> None:
        """Watch the instructions of a callee's code, from its frame that is starting on (events set
        on a code object apply to its running frames at their next instruction)."""
        if self.session.follow(code):
            ev = _monitoring.events
            self._set(code, ev.INSTRUCTION | ev.CALL | ev.PY_START | ev.PY_RETURN)
            for inner in nested_code(code):
                self._set(inner, ev.INSTRUCTION | ev.CALL)

    def uninstall(self) -> None:
        for code in list(self.codes):
            _tool.set_mask(self.session, code, 0)
            self.codes.discard(code)
        _tool.release(self.session)


def _mon_session() -> Session | None:
    return _sessions.get(threading.get_ident())


def _mon_instruction(code: types.CodeType, offset: int) -> None:
    session = _mon_session()
    if session is not None:
        frame = sys._getframe(1)
        quieted = session.quieted
        if quieted is not None and quieted.drops(frame, offset):
            return
        if session.is_target(frame):
            session.deliver(session.listener.instruction, frame, offset)
            if _STAR_CALLS_UNREPORTED and offset in _star_calls(code):
                for started in session.listener.pending_codes(frame):
                    _watch_code(session, started)


def _mon_call(code: types.CodeType, offset: int, callee: Any, arg0: Any) -> None:
    session = _mon_session()
    if session is None:
        return
    frame = sys._getframe(1)
    if not session.is_target(frame):
        return
    quieted = session.quieted
    if quieted is None or not quieted.drops(frame, offset):
        arg = MISSING if arg0 is _monitoring.MISSING else arg0
        session.deliver(session.listener.call, frame, callee, arg)
    callee_code = _python_code(callee)
    if callee_code is not None:
        _watch_code(session, callee_code)
    elif isinstance(callee, (types.BuiltinFunctionType, type)):
        for started in session.listener.pending_codes(frame):  # (a capture follows its call-backs)
            _watch_code(session, started)


def _watch_code(session: Session, code: types.CodeType) -> None:
    """A target frame's call may start `code`: watch its start and return."""
    backend = session._backend
    if isinstance(backend, _Monitoring) and code not in session.nested and code not in session.unwatched:
        backend.watch_callee(code)


_STAR_CALLS_UNREPORTED = sys.version_info[:2] == (3, 12)  # (3.13 reports them)


@functools.lru_cache(maxsize=4096)
def _star_calls(code: types.CodeType) -> frozenset[int]:
    """The offsets of the `f(*args, **kwargs)` calls of `code`."""
    return frozenset(ins.offset for ins in dis.get_instructions(code) if ins.opname == "CALL_FUNCTION_EX")


def _same_function(code: types.CodeType, other: types.CodeType) -> bool:
    """Is `code` the code of the same function as `other` (itself, or the clone the first call runs
    in its place: same file, first line and name)?"""
    return code is other or (
        code.co_firstlineno == other.co_firstlineno
        and code.co_name == other.co_name
        and code.co_filename == other.co_filename
    )


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
        backend = session._backend
        if session.error is None and session.listener.follows(frame) and isinstance(backend, _Monitoring):
            backend.follow(frame.f_code)


def _mon_py_return(code: types.CodeType, offset: int, value: Any) -> None:
    session = _mon_session()
    if session is None:
        return
    frame = sys._getframe(1)
    caller = frame.f_back
    if code.co_name == "__init__":
        return  # (a class's call gives the new object, not what its `__init__` returns)
    if caller is not None and frame is not session.root and session.is_target(caller):
        session.deliver(session.listener.returned, caller, value, code)
        backend = session._backend
        if type(value) is types.CoroutineType and isinstance(backend, _Monitoring):
            # a wrapper that returned a coroutine (`AsyncOpenAI`'s methods): the target awaits it
            # next, and its return, the await's value, is reported only if its code is watched
            backend.watch_callee(value.cr_code)


def _python_code(callee: Any) -> types.CodeType | None:
    """The code object a call of `callee` starts running, when it is Python code (for a class, its
    `__init__`'s)."""
    if isinstance(callee, type):
        init = class_lookup(callee, "__init__")
        return init.__code__ if isinstance(init, types.FunctionType) else None
    func = getattr(callee, "__func__", callee)
    code = getattr(func, "__code__", None)
    if isinstance(code, types.CodeType):
        return code
    call = peek_attr(type(callee), "__call__")  # the class's own __call__, running no descriptor
    code = getattr(call, "__code__", None)
    return code if isinstance(code, types.CodeType) else None

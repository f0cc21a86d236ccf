"""The jit and captures next to other observers: the user's own capture, debuggers, profilers, tools.

* a capture inside a jitted function wins over the jit's trace (that call runs on unobserved);
* a jitted function called inside a capture runs plainly;
* no free sys.monitoring tool id: the jitted call runs plainly, an explicit capture says why;
* a user's trace or profile function: the jit runs plainly (the hook sees the plain function);
  a capture chains to a tracer and never hands it 'opcode' events it did not ask for;
* a user's sys.monitoring tool keeps its events on the same function, during and after a trace.
"""

from __future__ import annotations

import bdb
import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from typing import Any

import pytest

import pipelines as P
import xcs_bc as xcs
from xcs_bc.errors import CaptureError
from xcs_bc.observe import hooks as observe

PY312 = sys.version_info >= (3, 12)
MIN_MS = P.MIN_CALL_MS


def two_calls(topic: str) -> str:
    first = P.llm(topic)
    second = P.judge(topic)
    return first + second


def captures_inside(topic: str) -> tuple[str, list[str]]:
    with xcs.capture(min_call_ms=MIN_MS) as cap:
        first = P.llm(topic)
        second = P.judge(topic)
    return first + second, [op.name for op in cap.graph.operations]


# -- a capture inside a jitted function, a jitted function inside a capture -----------------------


def test_a_capture_inside_a_jitted_function_wins_over_the_trace() -> None:
    fast = xcs.jit(captures_inside, min_call_ms=MIN_MS)
    for topic in ("a", "b", "c"):
        assert fast(topic) == captures_inside(topic)  # the user's capture sees both calls, every time
        assert not observe.is_observing()
    assert "took over observing this thread" in fast.explain()


def test_a_jitted_function_inside_a_capture_runs_plainly_and_is_captured_as_one_call() -> None:
    fast = xcs.jit(two_calls, min_call_ms=MIN_MS)
    with xcs.capture(min_call_ms=MIN_MS) as cap:
        result = fast("a")
    assert result == two_calls("a")
    assert fast.stats.plain_runs == 1 and fast.stats.traces == 0
    assert [op.name for op in cap.graph.operations] == ["two_calls"]


# -- no free sys.monitoring tool id ---------------------------------------------------------------


@contextmanager
def _all_tool_ids_taken() -> Iterator[list[int]]:
    free = [i for i in range(6) if sys.monitoring.get_tool(i) is None]
    for i in free:
        sys.monitoring.use_tool_id(i, "test-blocker")
    try:
        yield free
    finally:
        for i in free:
            sys.monitoring.free_tool_id(i)


@pytest.mark.skipif(not PY312, reason="sys.monitoring tool ids exist from 3.12")
def test_no_free_tool_id_runs_the_jitted_call_plainly_and_explains_why() -> None:
    fast = xcs.jit(two_calls, min_call_ms=MIN_MS)
    with _all_tool_ids_taken():
        assert fast("a") == two_calls("a")
        assert fast("b") == two_calls("b")
        assert not observe.is_observing()
    assert fast.stats.plain_runs == 2 and fast.stats.traces == 0
    assert "no free sys.monitoring tool id" in fast.explain()
    assert fast("c") == two_calls("c")  # ids free again: traced
    assert fast.stats.traces == 1


@pytest.mark.skipif(not PY312, reason="sys.monitoring tool ids exist from 3.12")
def test_no_free_tool_id_makes_an_explicit_capture_say_which_ids_are_taken_and_how_to_free_one() -> None:
    with _all_tool_ids_taken() as taken:
        with pytest.raises(CaptureError) as error:
            with xcs.capture():
                pass  # pragma: no cover
    message = str(error.value)
    assert f"{taken[0]}: 'test-blocker'" in message and "sys.monitoring.free_tool_id" in message


# -- a user's trace and profile functions ---------------------------------------------------------


@contextmanager
def _installed(*, trace: Any = None, profile: Any = None) -> Iterator[None]:
    before = sys.gettrace(), sys.getprofile()
    if trace is not None:
        sys.settrace(trace)
    if profile is not None:
        sys.setprofile(profile)
    try:
        yield
    finally:
        sys.settrace(before[0])
        sys.setprofile(before[1])


def _profiled(run: Any) -> list[str]:
    calls: list[str] = []

    def profiler(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_name == "__call__":
            callee = frame.f_locals.get("self")
            if isinstance(callee, P.FakeLLM):
                calls.append(callee.name)

    with _installed(profile=profiler):
        run()
    assert sys.getprofile() is None
    return calls


def test_a_users_profiler_sees_every_call_of_a_jitted_function() -> None:
    fast = xcs.jit(two_calls, min_call_ms=MIN_MS)
    fast("warm")  # traced without the profiler: the next calls would replay
    plain = _profiled(lambda: [two_calls(t) for t in ("a", "b")])
    jitted = _profiled(lambda: [fast(t) for t in ("a", "b")])
    assert jitted == plain == ["llm", "judge", "llm", "judge"]
    assert fast.stats.plain_runs == 2
    assert "a profile function is installed" in fast.explain()


def test_a_users_tracer_makes_the_jit_run_plainly_and_is_restored_exactly() -> None:
    seen: list[str] = []

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code is two_calls.__code__:
            seen.append(event)
        return tracer

    fast = xcs.jit(two_calls, min_call_ms=MIN_MS)
    with _installed(trace=tracer):
        assert fast("a") == two_calls("a")
        assert sys.gettrace() is tracer
    assert "opcode" not in seen and seen.count("call") == 2
    assert fast.stats.plain_runs == 1 and fast.stats.traces == 0
    assert "a trace function is installed" in fast.explain()


def test_a_stepping_debugger_never_gets_opcode_events_from_a_capture() -> None:
    """bdb prints "unknown debugging event: 'opcode'" for events it did not ask for."""
    events: list[str] = []

    class Stepper(bdb.Bdb):
        def trace_dispatch(self, frame: Any, event: str, arg: Any) -> Any:
            events.append(event)
            return super().trace_dispatch(frame, event, arg)

        def user_line(self, frame: Any) -> None:
            self.set_step()

    stepper = Stepper()
    stepper.reset()
    out = io.StringIO()
    with redirect_stdout(out), _installed(trace=stepper.trace_dispatch):
        sys._getframe().f_trace = stepper.trace_dispatch
        stepper.set_step()
        with xcs.capture(min_call_ms=MIN_MS) as cap:
            first = P.llm("a")
            P.judge(first)
        stepper.set_continue()
    assert "opcode" not in events and "line" in events
    assert "unknown debugging event" not in out.getvalue()
    assert [op.name for op in cap.graph.operations] == ["llm", "judge"]


def test_a_capture_restores_the_frames_own_tracer_and_opcode_setting() -> None:
    def tracer(frame: Any, event: str, arg: Any) -> Any:
        return tracer

    frame = sys._getframe()
    with _installed(trace=tracer):
        frame.f_trace = tracer
        with xcs.capture(min_call_ms=MIN_MS):
            P.llm("a")
        assert frame.f_trace is tracer and frame.f_trace_opcodes is False
        assert sys.gettrace() is tracer


# -- a user's sys.monitoring tool on the same function (3.12+) ------------------------------------


@contextmanager
def _user_tool(lines: list[int], code: Any) -> Iterator[int]:
    mon = sys.monitoring
    tool = next(i for i in (0, 1, 2, 3, 4, 5) if mon.get_tool(i) is None)
    mon.use_tool_id(tool, "test-user-tool")

    def on_line(line_code: Any, line: int) -> None:
        if line_code is code:
            lines.append(line)

    mon.register_callback(tool, mon.events.LINE, on_line)
    try:
        yield tool
    finally:
        mon.set_local_events(tool, code, 0)
        mon.set_events(tool, 0)
        mon.register_callback(tool, mon.events.LINE, None)
        mon.free_tool_id(tool)


def arms_then_calls(topic: str, arm: Any) -> str:
    arm()
    first = P.llm(topic)
    second = P.judge(first)
    return second


@pytest.mark.skipif(not PY312, reason="sys.monitoring is 3.12+")
def test_a_users_tool_keeps_its_line_events_during_and_after_a_trace() -> None:
    mon = sys.monitoring
    code = arms_then_calls.__code__
    first_line = code.co_firstlineno
    body = [first_line + 1, first_line + 2, first_line + 3, first_line + 4]
    lines: list[int] = []
    fast = xcs.jit(arms_then_calls, min_call_ms=MIN_MS)
    expected = {topic: arms_then_calls(topic, lambda: None) for topic in ("a", "b")}
    with _user_tool(lines, code) as tool:

        def arm() -> None:  # the user's tool starts watching while the trace runs
            mon.set_local_events(tool, code, mon.events.LINE)

        assert fast("a", arm) == expected["a"]
        assert fast.stats.traces == 1
        assert lines == body[1:]  # every line after arming, during the trace
        assert mon.get_local_events(tool, code) == mon.events.LINE  # not disabled by us
        lines.clear()
        assert fast("b", arm) == expected["b"]
        assert lines == body  # after the trace: the call ran plainly, every line seen
        assert fast.stats.plain_runs == 1
        assert "has events on arms_then_calls" in fast.explain()
    assert [mon.get_tool(i) for i in range(6)].count("xcs_bc") == 0


@pytest.mark.skipif(not PY312, reason="sys.monitoring is 3.12+")
def test_a_users_global_events_are_left_alone_by_a_trace() -> None:
    mon = sys.monitoring
    started: list[str] = []
    fast = xcs.jit(two_calls, min_call_ms=MIN_MS)
    tool = next(i for i in range(6) if mon.get_tool(i) is None)
    mon.use_tool_id(tool, "test-global-tool")

    def on_start(code: Any, offset: int) -> Any:
        if code is two_calls.__code__:
            started.append(code.co_name)
        return None

    mon.register_callback(tool, mon.events.PY_START, on_start)
    mon.set_events(tool, mon.events.PY_START)
    try:
        fast("a")  # traced: global events of another tool do not stop the jit
        fast("b")
        assert mon.get_events(tool) == mon.events.PY_START
        assert mon.register_callback(tool, mon.events.PY_START, on_start) is on_start
        assert started == ["two_calls", "two_calls"] or fast.stats.replays == 1
        assert fast.stats.traces == 1
    finally:
        mon.set_events(tool, 0)
        mon.register_callback(tool, mon.events.PY_START, None)
        mon.free_tool_id(tool)

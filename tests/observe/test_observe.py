"""Observe stage: hooks scoped to the target frames, cleaned up on every exit, coexisting with others."""

from __future__ import annotations

import contextlib
import sys
import threading

import pytest

import pipelines as P
import xcs_bc as xcs
from xcs_bc.errors import CaptureError
from xcs_bc.observe import hooks as observe


def _xcs_tool_ids() -> list[int]:
    if sys.version_info < (3, 12):
        return []
    return [i for i in range(6) if sys.monitoring.get_tool(i) == "xcs_bc"]


def test_events_record_site_callee_arguments_result_times_and_thread() -> None:
    with xcs.capture(min_call_ms=P.MIN_CALL_MS) as cap:
        answer = P.llm("hello", temperature=0)
        size = len(answer)
    slow = [e for e in cap.events if e.callee is P.llm]
    assert len(slow) == 1
    (event,) = slow
    assert event.site.line == sys._getframe().f_lineno - 5
    assert event.args == {"prompt": "hello", "kwargs": {"temperature": 0}}
    assert event.result == answer == "llm(hello; temperature=0)"
    assert event.exception is None
    assert event.thread == threading.get_ident()
    assert 0 < event.start < event.end and event.duration >= P.LATENCY * 0.9
    assert size == len(answer)
    # fast calls are events too, but not operations
    assert any(e.callee is len for e in cap.events)
    assert [op.name for op in cap.graph.operations] == ["llm"]


def test_a_call_that_raises_records_its_exception() -> None:
    failer = P.FakeLLM("failer", P.LATENCY, fail_on="x")
    with xcs.capture(min_call_ms=P.MIN_CALL_MS) as cap:
        try:
            failer("x")
        except RuntimeError as exc:
            caught = exc
    (event,) = [e for e in cap.events if e.callee is failer]
    assert event.exception is caught
    assert cap.graph.operations[0].metadata["exception"] is caught


def _raises_through(failer: P.FakeLLM, prompt: str) -> str:
    return failer(prompt)


def test_a_call_that_raises_records_its_exception_not_one_handled_further_out() -> None:
    # 3.11+ make the exception readable only once the handler has started: read earlier, it is the
    # one the code around the block is handling
    failer = P.FakeLLM("failer", P.LATENCY, fail_on="x")
    caught: list[BaseException] = []
    try:
        raise IndexError("handled around the block")
    except IndexError as outer:
        with xcs.capture(min_call_ms=P.MIN_CALL_MS) as cap:
            try:
                failer("x")
            except RuntimeError as exc:
                caught.append(exc)
            try:
                _raises_through(failer, "x")  # raised in a helper the capture follows into
            except RuntimeError as exc:
                caught.append(exc)
            try:
                try:
                    failer("x")
                finally:
                    failer("finally")
            except RuntimeError as exc:
                caught.append(exc)
            with contextlib.suppress(RuntimeError):
                failer("x")
        assert sys.exc_info()[1] is outer
    recorded = [e.exception for e in cap.events if e.callee is failer and e.exception is not None]
    assert len(recorded) == 4 and len(caught) == 3
    assert recorded[:3] == caught  # (the suppressed one is not held anywhere else)
    assert all(str(exc) == "failer failed on 'x'" for exc in recorded)
    raised = [op.metadata["exception"] for op in cap.graph.operations if "exception" in op.metadata]
    assert raised == recorded


def test_hooks_are_removed_after_the_block() -> None:
    before_trace = sys.gettrace()
    with xcs.capture() as cap:
        inside = _xcs_tool_ids()
        P.llm("a")
    assert sys.gettrace() is before_trace
    assert _xcs_tool_ids() == []
    assert not observe.is_observing()
    if sys.version_info >= (3, 12):
        assert len(inside) == 1
    assert len(cap.graph.operations) == 1


def test_hooks_are_removed_when_the_block_raises() -> None:
    before_trace = sys.gettrace()
    with pytest.raises(KeyError, match="missing"):
        with xcs.capture() as cap:
            P.llm("a")
            {}["missing"]
    assert sys.gettrace() is before_trace
    assert _xcs_tool_ids() == []
    assert not observe.is_observing()
    assert isinstance(cap.graph.metadata["exception"], KeyError)


def test_nested_capture_on_one_thread_raises_a_clear_error_and_the_outer_one_works() -> None:
    with xcs.capture(min_call_ms=P.MIN_CALL_MS) as outer:
        P.llm("a")
        with pytest.raises(CaptureError, match="already observed"):
            with xcs.capture():
                pass  # pragma: no cover - never entered
        P.llm("b")
    assert [op.args[0].value for op in outer.graph.operations] == ["a", "b"]
    assert not observe.is_observing()


def test_captures_in_two_threads_at_once_both_work() -> None:
    barrier = threading.Barrier(2, timeout=10)
    graphs: dict[str, xcs.ComputationGraph] = {}

    def worker(name: str) -> None:
        with xcs.capture(min_call_ms=P.MIN_CALL_MS) as cap:
            barrier.wait()  # both captures are active now
            first = P.llm(name)
            P.judge(first)
            barrier.wait()
        graphs[name] = cap.graph

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("t1", "t2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name, graph in graphs.items():
        ops = [op for op in graph.operations if op.name != "Barrier.wait"]  # waiting is slow too
        assert [op.name for op in ops] == ["llm", "judge"]
        assert ops[0].args[0].value == name
        assert graph.dependencies(ops[1]) == {ops[0]}
    assert _xcs_tool_ids() == []


def test_a_trace_function_installed_before_keeps_working() -> None:
    """A debugger or coverage tool (settrace) still sees the lines run inside the block."""
    seen: list[int] = []
    code = test_a_trace_function_installed_before_keeps_working.__code__

    def tracer(frame, event, arg):  # type: ignore[no-untyped-def]
        if frame.f_code is code and event == "line":
            seen.append(frame.f_lineno)
        return tracer

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        sys._getframe().f_trace = tracer
        with xcs.capture(min_call_ms=P.MIN_CALL_MS) as cap:
            first = P.llm("a")  # line L
            second = P.llm(first)  # line L + 1
        after = len(first + second)  # line L + 2
    finally:
        sys.settrace(previous)
    line = cap.graph.operations[0].site.line
    assert {line, line + 1, line + 2} <= set(seen)
    assert after > 0
    assert [op.name for op in cap.graph.operations] == ["llm", "llm"]


def test_coverage_still_measures_the_block() -> None:
    coverage = pytest.importorskip("coverage")
    cov = coverage.Coverage(data_file=None, include=[P.__file__])
    cov.start()
    try:
        cap, _ = P.map_loop(["a", "b"])
    finally:
        cov.stop()
    lines = set(cov.get_data().lines(P.__file__) or ())
    body = {op.site.line for op in cap.graph.operations}
    assert body and body <= lines, f"lines {sorted(body)} inside the capture were not measured"


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring tool ids exist from 3.12")
def test_no_free_monitoring_tool_id_is_a_clear_error() -> None:
    taken = [i for i in range(6) if sys.monitoring.get_tool(i) is None]
    for i in taken:
        sys.monitoring.use_tool_id(i, "test-blocker")
    try:
        with pytest.raises(CaptureError, match="no free sys.monitoring tool id"):
            with xcs.capture():
                pass  # pragma: no cover
        assert not observe.is_observing()
    finally:
        for i in taken:
            sys.monitoring.free_tool_id(i)
    with xcs.capture() as cap:  # and it works again afterwards
        P.llm("a")
    assert len(cap.graph.operations) == 1


def test_only_the_target_frames_are_observed() -> None:
    """Calls made inside a leaf are not events of the block: the leaf's call is.  A helper traced
    through is no event: the calls made inside it are."""
    with xcs.capture(min_call_ms=P.MIN_CALL_MS, leaves=[P.summarize_twice]) as cap:
        P.summarize_twice("doc")
    callees = [e.callee for e in cap.events]
    assert P.summarize_twice in callees and P.llm not in callees
    with xcs.capture(min_call_ms=P.MIN_CALL_MS) as cap:
        P.summarize_twice("doc")
    assert [e.callee for e in cap.events] == [P.llm, P.llm]


def test_a_paused_session_sends_no_event_until_it_resumes() -> None:
    """`Session.pause()` (a first call's dispatcher serving a call) stops this thread's events on
    3.10/3.11, where the trace function is called for every frame started; on 3.12+ the events are
    local to the watched code and nothing needs pausing."""
    assert sys.gettrace() is None, "run without a trace function installed (see the test below)"
    with xcs.capture(min_call_ms=P.MIN_CALL_MS) as cap:
        session = cap._session
        assert session is not None
        paused = session.pause()
        try:
            assert paused is (sys.version_info < (3, 12))
            if paused:
                assert sys.gettrace() is None
                P.llm("not seen")
        finally:
            if paused:
                session.resume()
        P.llm("seen")
    assert [e.args for e in cap.events if e.callee is P.llm] == [{"prompt": "seen", "kwargs": {}}]


def test_a_session_chaining_to_a_trace_function_installed_before_is_not_paused() -> None:
    """Coverage (or a debugger) installed before the session must still see the lines of a call made
    while a first call's dispatcher serves it: the session then does not pause."""
    seen: list[str] = []

    def tracer(frame, event, arg):  # type: ignore[no-untyped-def]
        seen.append(frame.f_code.co_name)
        return None

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        with xcs.capture() as cap:
            session = cap._session
            assert session is not None
            paused = session.pause()
            P.llm("seen by the tracer")
    finally:
        sys.settrace(previous)
    assert paused is False and "__call__" in seen


def test_a_session_that_ended_while_paused_is_not_put_back() -> None:
    before = sys.gettrace()
    with xcs.capture() as cap:
        session = cap._session
        assert session is not None
        paused = session.pause()
        session.end(CaptureError("ended while paused"))
        session.resume()
        assert sys.gettrace() is before
    assert paused is (sys.version_info < (3, 12))
    assert sys.gettrace() is before and not observe.is_observing()

"""Tests of xcs_bc.testing: the public fake slow calls users test their pipelines with."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import xcs_bc.testing as testing
from xcs_bc.errors import ConfigError, XCSError
from xcs_bc.testing import CallLog, FakeLLM, FakeLLMError, slow


def test_public_names() -> None:
    assert sorted(testing.__all__) == ["CallLog", "FakeLLM", "FakeLLMError", "slow"]


# --- FakeLLM -------------------------------------------------------------------------------------


def test_answer_text_and_counts() -> None:
    llm = FakeLLM("gpt", latency=0.001)
    assert llm("hello") == "gpt(hello)"
    assert llm(42) == "gpt(42)"
    assert llm.call_count == 2
    assert llm.calls == [("hello", {}), (42, {})]


def test_defaults() -> None:
    llm = FakeLLM()
    assert (llm.name, llm.latency, llm.fail_on) == ("llm", 0.05, None)
    assert repr(llm) == "FakeLLM('llm', latency=0.05)"
    assert repr(FakeLLM("x", 0, fail_on="bad")) == "FakeLLM('x', latency=0.0, fail_on='bad')"


def test_kwargs_are_appended_with_sorted_keys() -> None:
    llm = FakeLLM("m", latency=0)
    assert llm("p", temperature=0, model="small") == "m(p; model=small, temperature=0)"
    assert llm("p", b=1, a=2) == llm("p", a=2, b=1) == "m(p; a=2, b=1)"
    assert llm.render("q", {"z": 1}) == "m(q; z=1)"
    assert llm.call_count == 3  # render() is not a call


def test_calls_is_a_copy() -> None:
    llm = FakeLLM(latency=0)
    kwargs = {"t": 1}
    llm("a", **kwargs)
    calls = llm.calls
    calls.clear()
    assert llm.calls == [("a", {"t": 1})]
    llm.calls[0][1]["t"] = 99  # the recorded kwargs dict is the fake's own
    kwargs["t"] = 5
    assert llm.call_count == 1


def test_sleeps_for_latency() -> None:
    llm = FakeLLM(latency=0.02)
    start = time.perf_counter()
    llm("x")
    assert time.perf_counter() - start >= 0.019


def test_names_itself_for_tools() -> None:
    llm = FakeLLM("summarizer", latency=0)
    assert llm.__name__ == "summarizer"
    assert llm.__qualname__ == "summarizer"
    assert FakeLLM(latency=0).__name__ == "llm"


def test_fail_on_raises_after_sleeping_and_counts_the_call() -> None:
    llm = FakeLLM("judge", latency=0.01, fail_on="BOOM")
    assert llm("fine") == "judge(fine)"
    start = time.perf_counter()
    with pytest.raises(FakeLLMError, match=r"^judge failed on 'a BOOM here'$"):
        llm("a BOOM here")
    assert time.perf_counter() - start >= 0.009
    assert llm.call_count == 2
    assert llm.calls[-1] == ("a BOOM here", {})


def test_fake_error_is_a_user_error_not_an_xcs_error() -> None:
    assert issubclass(FakeLLMError, RuntimeError)
    assert not issubclass(FakeLLMError, XCSError)


def test_fail_on_matches_str_of_non_str_prompt() -> None:
    llm = FakeLLM(latency=0, fail_on="7")
    with pytest.raises(FakeLLMError, match=r"failed on 17"):
        llm(17)


def test_reset() -> None:
    llm = FakeLLM(latency=0)
    llm("a")
    llm.reset()
    assert (llm.calls, llm.call_count, llm.max_concurrency) == ([], 0, 0)
    llm("b")
    assert llm.calls == [("b", {})]


def test_max_concurrency_sequential_is_one() -> None:
    llm = FakeLLM(latency=0.001)
    assert llm.max_concurrency == 0
    for i in range(3):
        llm(i)
    assert llm.max_concurrency == 1


def test_max_concurrency_with_thread_pool() -> None:
    llm = FakeLLM(latency=0.02)
    # A barrier makes sure all four calls really start together.
    barrier = threading.Barrier(4)

    def call(i: int) -> str:
        barrier.wait(timeout=5)
        return llm(f"q{i}")

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(call, range(4)))
    assert answers == [f"llm(q{i})" for i in range(4)]
    assert llm.max_concurrency == 4
    assert llm.call_count == 4
    assert sorted(p for p, _ in llm.calls) == ["q0", "q1", "q2", "q3"]


def test_call_count_is_exact_under_contention() -> None:
    llm = FakeLLM(latency=0)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(llm, range(400)))
    assert llm.call_count == 400
    assert 1 <= llm.max_concurrency <= 8


def test_reset_while_calls_in_flight_keeps_counting_them() -> None:
    llm = FakeLLM(latency=0.05)
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(llm, "slow")
        while llm.call_count == 0:
            time.sleep(0.001)
        llm.reset()
        assert llm.max_concurrency == 1  # the call still running
        llm("now")  # overlaps the running call
        future.result()
    assert llm.max_concurrency == 2
    assert llm.calls == [("now", {})]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": 3}, r"name must be a non-empty str, got 3"),
        ({"name": ""}, r"name must be a non-empty str, got ''"),
        ({"latency": -0.1}, r"seconds >= 0, got -0.1 \(float\); pass e\.g\. latency=0\.05"),
        ({"latency": float("nan")}, r"got nan"),
        ({"latency": float("inf")}, r"got inf"),
        ({"latency": "0.1"}, r"latency must be a finite number of seconds >= 0, got '0.1' \(str\)"),
        ({"latency": True}, r"got True \(bool\)"),
        ({"fail_on": ""}, r"fail_on must be a non-empty str or None, got ''.*pass None"),
        ({"fail_on": 5}, r"fail_on must be a non-empty str or None, got 5"),
    ],
)
def test_constructor_validation(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        FakeLLM(**kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)  # what a user would catch
    assert isinstance(info.value, XCSError)


# --- slow ----------------------------------------------------------------------------------------


def test_slow_decorator_counts_and_returns() -> None:
    @slow(0.001)
    def add(x: int, y: int = 1) -> int:
        """Add two ints."""
        return x + y

    assert add(1) == 2
    assert add(2, y=5) == 7
    assert add.call_count == 2  # type: ignore[attr-defined]
    assert add.calls == [((1,), {}), ((2,), {"y": 5})]  # type: ignore[attr-defined]
    assert add.__name__ == "add"
    assert add.__doc__ == "Add two ints."
    assert add.__wrapped__(1, 1) == 2  # type: ignore[attr-defined]
    add.reset()  # type: ignore[attr-defined]
    assert (add.call_count, add.calls, add.max_concurrency) == (0, [], 0)  # type: ignore[attr-defined]


def test_slow_sleeps_before_calling() -> None:
    seen: list[float] = []
    start = time.perf_counter()

    @slow(0.02)
    def mark() -> None:
        seen.append(time.perf_counter() - start)

    mark()
    assert seen[0] >= 0.019


def test_slow_propagates_exceptions_and_counts_them() -> None:
    @slow(0)
    def boom() -> None:
        raise KeyError("k")

    with pytest.raises(KeyError):
        boom()
    assert boom.call_count == 1  # type: ignore[attr-defined]


def test_slow_tracks_concurrency_and_each_wrapper_separately() -> None:
    @slow(0.02)
    def a(i: int) -> int:
        return i

    @slow(0)
    def b(i: int) -> int:
        return -i

    barrier = threading.Barrier(3)

    def call(i: int) -> int:
        barrier.wait(timeout=5)
        return a(i)

    with ThreadPoolExecutor(max_workers=3) as pool:
        assert list(pool.map(call, range(3))) == [0, 1, 2]
    assert b(1) == -1
    assert a.max_concurrency == 3  # type: ignore[attr-defined]
    assert (a.call_count, b.call_count) == (3, 1)  # type: ignore[attr-defined]


def test_slow_works_on_methods() -> None:
    class Client:
        @slow(0)
        def ask(self, q: str) -> str:
            return q.upper()

    client = Client()
    assert client.ask("hi") == "HI"
    assert Client.ask.call_count == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("latency", [-1, "fast", None, float("nan")])
def test_slow_validation(latency: object) -> None:
    with pytest.raises(ConfigError, match=r"slow\(\): latency must be"):
        slow(latency)  # type: ignore[arg-type]


# --- CallLog -------------------------------------------------------------------------------------


def test_call_log_ignores_order_but_not_multiplicity() -> None:
    llm = FakeLLM(latency=0)
    llm("a")
    llm("b", t=1)
    first = CallLog.snapshot(llm)
    llm.reset()
    llm("b", t=1)
    llm("a")
    assert CallLog.snapshot(llm) == first
    assert len(first) == 2
    llm("a")
    assert CallLog.snapshot(llm) != first
    assert CallLog.snapshot(llm) == CallLog(["llm(a)", "llm(a)", "llm(b; t=1)"])


def test_call_log_several_fakes_and_slow_functions() -> None:
    one, two = FakeLLM("one", latency=0), FakeLLM("two", latency=0)

    @slow(0)
    def tool(x: object, *, mode: str = "m") -> object:
        return x

    one("p")
    two("p")
    tool("q", mode="fast")
    log = CallLog.snapshot(one, two, tool)
    assert log == CallLog(["one(p)", "two(p)", "tool('q', mode='fast')"])
    assert repr(log) == "CallLog(['one(p)', \"tool('q', mode='fast')\", 'two(p)'])"
    assert (log == "one(p)") is False
    with pytest.raises(TypeError):
        hash(log)


def test_call_log_rejects_other_objects() -> None:
    with pytest.raises(ConfigError, match=r"expected FakeLLM or @slow functions, got 3"):
        CallLog.snapshot(3)

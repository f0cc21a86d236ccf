"""Limits per API (`execute.limits`, `execute.apis`): which limit a call counts against, room in
flight and per minute, overloads withdrawn and made again, and the calls of a run that stops.

The APIs here are fakes: `Busy` answers like a provider with a cap on requests in flight (an
exception named `RateLimitError` past it), and counts what it answered.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import openai
import pytest
import requests

import xcs_bc as xcs
from xcs_bc.execute import apis, limits
from xcs_bc.execute.limits import Limit, Withdrawn, answered, issue_ahead, limit_for

MIN_MS = 20.0


class RateLimitError(Exception):
    """What a provider raises for "too many requests" (recognised by its name, like openai's)."""


class Refused(Exception):
    """What `Busy` raises for a prompt it will not answer (a user's error, not an overload)."""


class Busy:
    """A slow API that refuses a request arriving while `cap` others are answered, and raises `Refused`
    for a prompt containing `fail_on`."""

    def __init__(
        self, cap: int, latency: float = 0.05, fail_on: str | None = None, gate: threading.Event | None = None
    ) -> None:
        self.cap = cap
        self.latency = latency
        self.fail_on = fail_on
        self.gate = gate  # when given, every request waits for it before it is looked at
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self.refused = 0
        self.answered: Counter[str] = Counter()
        self.arrivals: list[tuple[str, float]] = []

    def __call__(self, prompt: str) -> str:
        if self.gate is not None:
            self.gate.wait(5)
        with self.lock:
            self.arrivals.append((prompt, time.monotonic()))
            if self.fail_on is not None and self.fail_on in prompt:
                raise Refused(prompt)
            if self.in_flight >= self.cap:
                self.refused += 1
                raise RateLimitError(f"too many requests: {prompt}")
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            time.sleep(self.latency)
        finally:
            with self.lock:
                self.in_flight -= 1
                self.answered[prompt] += 1
        return f"<{prompt}>"


def fan_out(api: Any, prompts: list[str]) -> list[str]:
    answers = []
    for prompt in prompts:
        answers.append(api(prompt))
    return answers


def fresh(n: int, tag: str = "") -> list[str]:
    fresh.k = getattr(fresh, "k", 0) + 1  # type: ignore[attr-defined]
    return [f"{tag}q{fresh.k}.{i}" for i in range(n)]  # type: ignore[attr-defined]


# -- which limit a call counts against -------------------------------------------------------------


def test_an_sdk_clients_calls_count_against_its_host_and_a_named_client_against_its_own() -> None:
    client = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="t")
    create = client.chat.completions.create
    by_host = limit_for(create, (), {"model": "m"})
    assert by_host.name == "127.0.0.1:9" and by_host.concurrency == limits.DEFAULT_HOST_CONCURRENCY
    assert limit_for(client.chat.completions.create, (), {}) is by_host  # one limit per host

    def summarize(client: Any, doc: str) -> str:
        return doc

    assert limit_for(summarize, (client, "doc"), {}) is by_host  # handed the client: its host
    assert limit_for(summarize, ("doc",), {}) is limits._others

    mine = xcs.limit(client, concurrency=2)
    assert limit_for(client.chat.completions.create, (), {}) is mine  # a resource of the client
    assert limit_for(summarize, (), {"client": client}) is mine
    host = xcs.limit("http://127.0.0.1:9/v1", per_minute=100)
    other = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="t")
    assert limit_for(other.chat.completions.create, (), {}) is host  # the host named, as a URL
    assert limit_for(client.chat.completions.create, (), {}) is mine  # the client named comes first


def test_callables_methods_and_functions_of_a_class_can_be_named() -> None:
    class Tool:
        def run(self, x: str) -> str:
            return x

    a, b = Tool(), Tool()
    bound = xcs.limit(a.run, concurrency=1)
    assert limit_for(a.run, ("x",), {}) is bound  # a bound method: made anew at each access
    assert limit_for(b.run, ("x",), {}) is limits._others
    every = xcs.limit(Tool.run, concurrency=2)
    assert limit_for(b.run, ("x",), {}) is every  # a function of the class: the method of every object
    assert limit_for(a.run, ("x",), {}) is bound  # (the bound method named is more specific)
    shared = xcs.limit(fan_out, len, concurrency=3)
    assert limit_for(fan_out, (), {}) is limit_for(len, (), {}) is shared
    assert "fan_out" in shared.name and "len" in shared.name


def test_http_clients_count_against_the_host_of_their_url() -> None:
    assert limit_for(requests.get, ("https://Search.Example.com/q?x=1",), {}).name == "search.example.com"
    session = requests.Session()
    assert limit_for(session.post, (), {"url": "http://h:8080/a"}).name == "h:8080"
    assert limit_for(session.request, ("GET", "http://h:8080/b"), {}).name == "h:8080"
    assert limit_for(session.close, (), {}) is limits._others


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (RateLimitError("slow down"), True),
        (openai.RateLimitError.__new__(openai.RateLimitError), True),
        (type("HTTPError", (Exception,), {})(), False),
        (ValueError("429"), False),  # the text says nothing: only a status or a class does
        (KeyError("x"), False),
        ("a plain answer", False),
    ],
)
def test_overloaded_reads_classes_and_status_codes(outcome: Any, expected: bool) -> None:
    assert apis.overloaded(outcome) is expected


def test_an_exception_or_response_with_an_overload_status_is_an_overload() -> None:
    class StatusError(Exception):
        def __init__(self, status: int) -> None:
            self.status_code = status

    class Response:
        def __init__(self, status: int) -> None:
            self.status_code = status

    class Wrapped(Exception):
        def __init__(self, status: int) -> None:
            self.response = Response(status)

    assert apis.overloaded(StatusError(429)) and apis.overloaded(StatusError(503))
    assert not apis.overloaded(StatusError(400))
    assert apis.overloaded(Wrapped(529)) and not apis.overloaded(Wrapped(200))
    assert not apis.overloaded(Response(429))  # a returned object: only an HTTP library's response
    Response.__module__ = "requests.models"
    assert apis.overloaded(Response(429)) and not apis.overloaded(Response(200))
    assert apis.overloaded(KeyError("busy"), (KeyError,))  # a class the user named


@pytest.mark.parametrize(
    ("targets", "options", "message"),
    [
        ((), {}, "at least one target"),
        (("h",), {"concurrency": 0}, "concurrency must be an int >= 1"),
        (("h",), {"concurrency": True}, "concurrency must be an int >= 1"),
        (("h",), {"concurrency": 2.0}, "concurrency must be an int >= 1"),
        (("h",), {"per_minute": 0}, "per_minute must be a number > 0"),
        (("h",), {"per_minute": "60"}, "per_minute must be a number > 0"),
        (("h",), {"overload": RateLimitError}, "overload must be a list of exception classes"),
        (("h",), {"overload": [int]}, "overload must be a list of exception classes"),
        (("",), {}, "names no host"),
        (("not a host",), {}, "names no host"),
        ((None,), {}, "cannot limit calls to None"),
        ((3,), {}, "cannot limit calls to 3"),
    ],
)
def test_bad_limits_are_refused_with_the_fix(targets: tuple[Any, ...], options: Any, message: str) -> None:
    before = (dict(limits._targets), dict(limits._hosts))
    with pytest.raises(xcs.ConfigError, match=message):
        xcs.limit(*targets, **options)
    assert (limits._targets, limits._hosts) == before  # nothing half-done


# -- room --------------------------------------------------------------------------------------------


def test_calls_in_their_turn_and_ahead_never_exceed_the_concurrency() -> None:
    api = Busy(cap=3)
    limit = Limit("busy", concurrency=3)
    pool = ThreadPoolExecutor(8)
    rejected: list[int] = []

    def in_turn(prompt: str) -> str:
        return str(limit.call(api, (prompt,), {}, lambda: rejected.append(1)))

    futures = [limit.issue(pool.submit, api, (f"ahead {i}",), {}, in_process=True) for i in range(10)]
    answers = list(pool.map(in_turn, [f"turn {i}" for i in range(6)]))
    assert [f.result() for f in futures] == [f"<ahead {i}>" for i in range(10)]
    assert answers == [f"<turn {i}>" for i in range(6)]
    assert api.refused == 0 and api.peak == limit.peak == 3 and not rejected
    assert limit.in_flight == 0 and limit.calls == 16


def test_at_most_per_minute_calls_start_in_any_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "_MINUTE", 0.4)  # a short "minute"
    limit = Limit("rate", per_minute=3)
    starts: list[float] = []
    lock = threading.Lock()

    def call(_: int) -> None:
        with lock:
            starts.append(time.monotonic())

    pool = ThreadPoolExecutor(4)
    begun = time.monotonic()
    futures = [limit.issue(pool.submit, call, (i,), {}, in_process=True) for i in range(4)]
    limit.call(call, (9,), {}, lambda: None)  # the run's own call waits its turn too (first in line)
    for future in futures:
        future.result(timeout=5)
    starts.sort()
    assert len(starts) == 5
    assert all(t - begun < 0.3 for t in starts[:3])
    assert all(t - begun >= 0.39 for t in starts[3:])  # the 4th and 5th wait for the minute to pass


def test_a_cancelled_call_issued_ahead_is_never_made_and_gives_its_room_back() -> None:
    limit = Limit("one", concurrency=1)
    gate = threading.Event()
    made: list[str] = []

    def call(x: str) -> str:
        made.append(x)
        gate.wait(5)
        return x

    pool = ThreadPoolExecutor(4)
    first = limit.issue(pool.submit, call, ("first",), {}, in_process=True)
    queued = limit.issue(pool.submit, call, ("queued",), {}, in_process=True)
    assert queued.cancel()  # waiting for room: cancelled, never made
    gate.set()
    assert first.result(timeout=5) == "first"
    pool.shutdown(wait=True)
    assert made == ["first"] and limit.in_flight == 0 and limit.calls == 1


def test_an_interrupt_while_waiting_for_room_leaves_the_limit_as_it_was() -> None:
    limit = Limit("one", concurrency=1)
    gate = threading.Event()
    pool = ThreadPoolExecutor(2)
    held = limit.issue(pool.submit, gate.wait, (5,), {}, in_process=True)
    while limit.in_flight == 0:
        time.sleep(0.001)
    # a real SIGINT (`_thread.interrupt_main` only sets a flag, which a blocked lock never looks at:
    # the interrupt would show only when `held` ends, 5 s on, and under load after the call returned)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    main = threading.main_thread().ident
    assert main is not None
    try:
        threading.Timer(0.1, signal.pthread_kill, (main, signal.SIGINT)).start()
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            limit.call(time.sleep, (0,), {}, lambda: None)  # waits for the room `held` takes
        assert time.monotonic() - started < 4  # (interrupted, not let in when `held` gave up)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert not limit._waiting  # its place in line is given up
    gate.set()
    held.result(timeout=5)
    assert limit.call(len, ("abc",), {}, lambda: None) == 3  # the room came back
    assert limit.in_flight == 0


def test_an_executor_that_is_shut_down_withdraws_the_call() -> None:
    pool = ThreadPoolExecutor(1)
    pool.shutdown()
    future = Limit("x").issue(pool.submit, len, ("abc",), {}, in_process=True)
    assert not answered(future) and isinstance(future.exception(), Withdrawn)


# -- overloads -----------------------------------------------------------------------------------------


def test_an_overload_halves_the_window_once_and_successes_widen_it_again() -> None:
    gate = threading.Event()
    api = Busy(cap=2, latency=0.05, gate=gate)
    limit = Limit("busy", concurrency=8)
    pool = ThreadPoolExecutor(8)
    futures = [limit.issue(pool.submit, api, (f"p{i}",), {}, in_process=True) for i in range(8)]
    gate.set()  # the 8 requests arrive together
    outcomes = [f.exception(timeout=5) for f in futures]
    refused = [o for o in outcomes if isinstance(o, Withdrawn)]
    assert len(refused) == 6 == limit.rejected and all(
        isinstance(o.rejected, RateLimitError) for o in refused
    )
    # halved once (8 -> 4) for the calls that met the same overload, not six times; the two answered
    # widen it by 1/window each
    assert 4 <= limit.window < 5
    api.gate = None
    for i in range(12):
        limit.issue(pool.submit, api, (f"r{i}",), {}, in_process=True).result(timeout=5)
    assert 4 < limit.window <= 8


def test_a_call_in_its_turn_is_made_again_only_when_calls_issued_ahead_overlapped_it() -> None:
    api = Busy(cap=1, latency=0.05)
    limit = Limit("busy")
    counted: list[int] = []
    # alone: the API's answer is the plain run's own, raised as it is
    api.in_flight = 1  # someone else's request holds the API: the plain run would meet this too
    with pytest.raises(RateLimitError):
        limit.call(api, ("alone",), {}, lambda: counted.append(1))
    api.in_flight = 0
    assert not counted and api.refused == 1
    # a call issued ahead is in flight: the overload may be ours; made again once none is in flight
    # (under another limit: the overload above narrowed this one to one call at a time)
    limit = Limit("busy again")
    pool = ThreadPoolExecutor(2)
    ahead = limit.issue(pool.submit, api, ("ahead",), {}, in_process=True)
    while api.in_flight == 0:
        time.sleep(0.001)
    assert limit.call(api, ("turn",), {}, lambda: counted.append(1)) == "<turn>"
    assert ahead.result(timeout=5) == "<ahead>"
    assert counted == [1] and api.answered == Counter({"ahead": 1, "turn": 1})
    assert limits._alone.held == 0


# -- jitted functions ----------------------------------------------------------------------------------


def test_a_jitted_fan_out_against_an_overloaded_api_behaves_like_plain() -> None:
    api = Busy(cap=3, latency=0.05)
    fast = xcs.jit(fan_out, min_call_ms=MIN_MS)
    fast(api, fresh(8))
    for _ in range(3):
        prompts = fresh(8)
        api.answered.clear()
        assert fast(api, prompts) == [f"<{p}>" for p in prompts]
        assert api.answered == Counter(prompts)  # every prompt answered exactly once
    rejected = fast.stats.rejected
    assert rejected > 0 and fast.stats.rejected_by_callee == {"Busy.__call__": rejected}
    assert fast.stats.wasted == 0 and fast.stats.mispredictions == 0
    assert f"rejected as overloaded, made again: Busy.__call__ x{rejected}" in fast.explain()


def test_a_named_limit_keeps_a_jitted_function_within_the_api_cap_under_threads() -> None:
    api = Busy(cap=3, latency=0.03)
    xcs.limit(api, concurrency=3)
    fast = xcs.jit(fan_out, min_call_ms=MIN_MS)
    fast(api, fresh(6))  # traced on one thread (a traced call's own calls go one at a time)
    api.answered.clear()
    batches = [fresh(6) for _ in range(8)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda prompts: fast(api, prompts), batches))
    assert results == [[f"<{p}>" for p in prompts] for prompts in batches]
    assert api.refused == 0 and api.peak == 3 and fast.stats.rejected == 0
    assert api.answered == Counter(p for prompts in batches for p in prompts)


def test_calls_waiting_for_room_are_never_made_once_the_run_has_raised() -> None:
    api = Busy(cap=8, latency=0.05, fail_on="boom")
    xcs.limit(api, concurrency=1)
    fast = xcs.jit(fan_out, min_call_ms=MIN_MS)
    fast(api, fresh(6))
    prompts = fresh(6)
    prompts[1] += " boom"
    api.arrivals.clear()
    with pytest.raises(Refused):
        fast(api, prompts)
    raised = time.monotonic()
    time.sleep(0.3)
    # one call at a time: the second raised at once, the third went while the run waited for the
    # first; when the run raised at the second, the calls still waiting for room never went
    made = [prompt for prompt, _ in api.arrivals]
    assert made[:2] == prompts[:2] and len(made) <= 4
    assert all(at < raised for _, at in api.arrivals)
    assert fast.stats.wasted <= 2


def test_calls_issued_ahead_on_another_executor_are_limited_and_cancellable() -> None:
    class Elsewhere:
        """An executor that is not a thread pool of this process (as Ray or Dask would be)."""

        def __init__(self) -> None:
            self.pool = ThreadPoolExecutor(8)
            self.futures: list[Future[Any]] = []

        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
            future = self.pool.submit(fn, *args, **kwargs)
            self.futures.append(future)
            return future

    api = Busy(cap=2, latency=0.03)
    xcs.limit(api, concurrency=2)
    executor = Elsewhere()
    fast = xcs.jit(fan_out, executor=executor, min_call_ms=MIN_MS)
    fast(api, fresh(6))
    prompts = fresh(6)
    api.answered.clear()
    assert fast(api, prompts) == [f"<{p}>" for p in prompts]
    assert api.refused == 0 and api.peak == 2 and api.answered == Counter(prompts)
    assert issue_ahead(executor, None, False, api, ("x",), {}).result(timeout=5) == "<x>"  # type: ignore[arg-type]


def test_jitted_functions_calling_jitted_functions_under_one_tight_limit_never_wait_for_themselves() -> None:
    api = Busy(cap=8, latency=0.02)

    def ask_twice(api: Any, prompt: str) -> list[str]:
        return [api(f"{prompt} a"), api(f"{prompt} b")]

    inner = xcs.jit(ask_twice, min_call_ms=MIN_MS)

    def outer(api: Any, prompts: list[str]) -> list[list[str]]:
        answers = []
        for prompt in prompts:
            answers.append(inner(api, prompt))
        return answers

    # the outer calls of `inner` hold the only room; the calls `inner` makes within them go on
    xcs.limit(api, inner, concurrency=1)
    fast = xcs.jit(outer, min_call_ms=MIN_MS)
    fast(api, fresh(3))
    prompts = fresh(3)
    box: list[Any] = []
    thread = threading.Thread(target=lambda: box.append(fast(api, prompts)), daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "deadlocked"
    assert box == [[[f"<{p} a>", f"<{p} b>"] for p in prompts]]
    assert api.refused == 0

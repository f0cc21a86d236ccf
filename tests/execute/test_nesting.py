"""Nested and recursive jitted functions, full pools: a replay never waits for a pool slot.

A call issued ahead may wait for calls of its own (a jitted function calling another one on the same
pool, or itself).  If the real run waited for a call still queued behind the very workers that wait
for it, nothing would move: so the run makes a planned call itself when the pool has not started it.
Every test runs the jitted call in a thread and fails, rather than hang, when it does not finish.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import xcs_bc as xcs
from xcs_bc.execute.executor import DEFAULT_MAX_WORKERS, default_executor
from xcs_bc.testing import CallLog, FakeLLM, FakeLLMError

MIN_MS = 1.0
TIMEOUT = 30.0  # seconds: far above what any of these takes when it works
_fresh = itertools.count()


def fresh(prefix: str = "d") -> str:
    return f"{prefix}{next(_fresh)}"


def finishes(call: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    """Run `call` in a daemon thread: its result, or a failure if it is still running after `timeout`."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test below
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"still running after {timeout} s: deadlocked"
    if "error" in box:
        raise box["error"]
    return box["result"]


def test_nested_jitted_functions_sharing_a_two_worker_pool() -> None:
    llm = FakeLLM("llm", 0.005)
    pool = ThreadPoolExecutor(2)
    try:

        def per_doc(doc: str) -> list[str]:
            return [llm(f"a {doc}"), llm(f"b {doc}"), llm(f"c {doc}")]

        inner = xcs.jit(per_doc, executor=pool, min_call_ms=MIN_MS)

        def all_docs(docs: list[str]) -> list[list[str]]:
            return [inner(d) for d in docs]

        outer = xcs.jit(all_docs, executor=pool, min_call_ms=MIN_MS)
        for _ in range(3):
            docs = [fresh() for _ in range(4)]
            llm.reset()
            expected = all_docs(docs)
            plain_calls = CallLog.snapshot(llm)
            llm.reset()
            assert finishes(lambda docs=docs: outer(docs)) == expected
            assert CallLog.snapshot(llm) == plain_calls
        assert outer.stats.replays == 2 and outer.stats.served > 0
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # (waiting would hang if it had deadlocked)


def test_six_hundred_nested_calls_on_the_default_pool() -> None:
    llm = FakeLLM("llm", 0.002)

    def per_doc(doc: str) -> str:
        return llm(f"a {doc}") + llm(f"b {doc}")

    inner = xcs.jit(per_doc, min_call_ms=MIN_MS)

    def all_docs(docs: list[str]) -> list[str]:
        return [inner(d) for d in docs]

    outer = xcs.jit(all_docs, min_call_ms=MIN_MS)
    outer([fresh(), fresh()])  # traced with two items; the loop is replayed for any length
    docs = [fresh() for _ in range(600)]
    expected = all_docs(docs)
    llm.reset()
    assert finishes(lambda: outer(docs)) == expected
    assert llm.call_count == 1200
    assert outer.stats.replays == 1 and outer.stats.resized == 1


llm_rec = FakeLLM("rec", 0.002)


def walk(items: tuple[str, ...]) -> list[str]:
    first = llm_rec(items[0])
    second = llm_rec(items[0] + "!")
    rest = fast_walk(items[1:]) if len(items) > 1 else []
    return [first, second, *rest]


fast_walk = xcs.jit(walk, max_workers=2, min_call_ms=MIN_MS)


def test_recursion_to_depth_eight_on_a_two_worker_pool() -> None:
    for _ in range(3):
        items = tuple(fresh("r") for _ in range(8))
        llm_rec.reset()
        expected = walk(items)
        plain_calls = CallLog.snapshot(llm_rec)
        llm_rec.reset()
        assert finishes(lambda items=items: fast_walk(items)) == expected
        assert CallLog.snapshot(llm_rec) == plain_calls
    assert fast_walk.stats.replays > 0 and fast_walk.stats.served > 0


def test_a_replay_completes_while_every_worker_of_the_default_pool_is_blocked() -> None:
    llm = FakeLLM("llm", 0.005)

    def three(q: str) -> list[str]:
        return [llm(f"a {q}"), llm(f"b {q}"), llm(f"c {q}")]

    fast = xcs.jit(three, min_call_ms=MIN_MS)
    fast(fresh())
    release = threading.Event()
    blockers = [default_executor().submit(release.wait) for _ in range(DEFAULT_MAX_WORKERS)]
    try:
        q = fresh()
        assert finishes(lambda: fast(q), timeout=10) == three(q)
        assert fast.stats.replays == 1
    finally:
        release.set()
    for blocker in blockers:
        assert blocker.result(timeout=10) is True


class NeverStarts:
    """An executor that queues calls and never runs them: a pool whose workers are all busy."""

    def __init__(self) -> None:
        self.futures: list[Future[Any]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self.futures.append(future)
        return future


def test_planned_calls_not_started_are_made_in_place_or_cancelled_at_the_end() -> None:
    llm = FakeLLM("llm", 0.002, fail_on="b boom")  # only the second call of `four` fails on "boom"
    executor = NeverStarts()

    def four(q: str) -> list[str]:
        return [llm(f"a {q}"), llm(f"b {q}"), llm(f"c {q}"), llm(f"d {q}")]

    fast = xcs.jit(four, executor=executor, min_call_ms=MIN_MS)
    fast(fresh())
    q = fresh()
    assert finishes(lambda: fast(q)) == four(q)
    assert fast.stats.served == 4 and fast.stats.wasted == 0  # each made by the run itself
    assert len(executor.futures) == 4 and all(f.cancelled() for f in executor.futures)

    # the run raises at its second call: the two calls after it were issued, never started, and are
    # cancelled, so the jitted call makes exactly the plain call's calls
    executor.futures.clear()
    q = fresh("boom ")
    llm.reset()
    try:
        four(q)
    except FakeLLMError:
        pass
    plain_calls = CallLog.snapshot(llm)
    assert len(plain_calls) == 2
    llm.reset()
    try:
        finishes(lambda: fast(q))
    except FakeLLMError:
        pass
    else:
        raise AssertionError("the jitted call must raise like the plain one")
    assert CallLog.snapshot(llm) == plain_calls
    assert len(executor.futures) == 4 and all(f.cancelled() for f in executor.futures)
    assert fast.stats.replays == 2 and fast.stats.wasted == 0


_NEVER_NEEDED = """
import time
import xcs_bc as xcs
from xcs_bc.testing import FakeLLM, FakeLLMError

first = FakeLLM("first", 0.05, fail_on="fail")

class Seen:  # (on an object: a helper changing a global list runs in its turn)
    started = []

def sleeper(q):
    Seen.started.append(q)
    time.sleep(60 if "fail" in q else 0.02)
    return q

def f(q):
    a = first(q)
    b = sleeper(q)
    return a + b

fast = xcs.jit(f)
fast("warm")
try:
    fast("fail now")
except FakeLLMError:
    pass
assert Seen.started[-1] == "fail now", Seen.started  # the call the plain run never reaches is running
print("wasted", fast.stats.wasted, flush=True)
"""


def test_the_interpreter_exits_while_a_call_the_run_never_needed_is_still_running() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_NEVER_NEEDED)],
        capture_output=True,
        text=True,
        env=env,
        timeout=50,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "wasted 1"
    assert time.monotonic() - started < 20  # not the 60 s the never-needed call sleeps


# -- a jitted function calling itself ------------------------------------------------------------------

_ask = FakeLLM("ask", 0.01)


def _tails(xs: list[str]) -> str:
    rest = tails(xs[1:]) if len(xs) > 1 else ""  # the global: the jitted function, as @xcs.jit makes it
    answers = (_ask(x) for x in xs)  # a generator expression: its frames are its own run's
    rounds = []
    while len(rounds) < 2:  # a loop: on 3.12+ the first call runs a clone of the function
        rounds.append(_ask(" ".join(_ask(c) for c in xs[:2])))
    return rest + next(answers, "") + "|".join(answers) + "/".join(rounds)


tails: Callable[[list[str]], str] = _tails


def test_a_jitted_function_calling_itself_makes_each_levels_calls_once() -> None:
    # The trace of the outer call must not take the comprehension of the call it makes of itself
    # for its own (a frame of its code, but another run of it): its replay would issue that
    # level's calls ahead, and the inner call, a jitted call of its own, makes them again.
    global tails
    jitted = xcs.jit(_tails, min_call_ms=MIN_MS)
    # (on 3.12+ the first call runs a clone of the function, and the recursive calls the original,
    # whose frames must count as another run all the same)
    for xs in (["a", "b", "c", "d", "e"], ["c", "d"], ["e", "f"], ["g", "h", "i"], ["j", "k", "l"]):
        tails = _tails
        _ask.reset()
        expected = _tails(list(xs))
        plain_calls = CallLog.snapshot(_ask)
        tails = jitted
        _ask.reset()
        try:
            assert jitted(list(xs)) == expected
        finally:
            tails = _tails
        assert CallLog.snapshot(_ask) == plain_calls
    assert jitted.stats.wasted == 0 and jitted.stats.mispredictions == 0, jitted.explain()
    assert jitted.stats.served > 0

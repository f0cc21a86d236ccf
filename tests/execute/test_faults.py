"""Faults and wrong results the replay must not produce: a callee gets exactly what the plain run passes.

Each test runs the plain function and its jitted replay on the same inputs and compares results (and,
where it matters, the calls made), after the situation that once made the replay differ: a value equal
to the planned one but of another type, an executor shut down or living in another process.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import pytest

import xcs_bc as xcs
from xcs_bc.plan.slices import same_value
from xcs_bc.testing import slow

MIN_MS = 5.0
_fresh = itertools.count()


def fresh(prefix: str = "q") -> str:
    return f"{prefix}{next(_fresh)}"


# -- 1. a value == the planned one is not necessarily the same value ---------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (1, True),
        (0, 0.0),
        (1, 1.0),
        (0.0, -0.0),
        (0j, -0j),
        ((1, "gpt"), (True, "gpt")),
        ([0], [0.0]),
        ({"t": 0}, {"t": 0.0}),
        ({1: "k"}, {True: "k"}),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}),  # == but a callee iterating them sees another order
        ({1, 2}, {1.0, 2}),
        (frozenset({1}), frozenset({True})),
        ([(1, [2])], [(1, [2.0])]),
        (range(0), range(5, 5)),
        (slice(1), slice(True)),
    ],
)
def test_same_value_tells_apart_equal_values_a_callee_can_distinguish(a: Any, b: Any) -> None:
    assert a == b  # what the dispatcher used to rely on
    assert not same_value(a, b) and not same_value(b, a)


def test_same_value_accepts_equal_data_and_identical_objects() -> None:
    class Loud:
        def __eq__(self, other: object) -> bool:
            raise AssertionError("same_value must not run user code")

        __hash__ = object.__hash__

    loud = Loud()
    nan = math.nan
    pairs = [
        ((1, "gpt", None), (1, "gpt", None)),
        ({"t": 0.5, "m": [1, b"x"]}, {"t": 0.5, "m": [1, b"x"]}),
        ({"a", "b"}, {"a", "b"}),
        ([loud, nan], [loud, nan]),
        ("x".upper, "x".upper),
        (-0.0, -0.0),
    ]
    for a, b in pairs:
        assert same_value(a, b), (a, b)
    assert not same_value(Loud(), Loud()) and not same_value([Loud()], [Loud()])
    deep: list[Any] = []
    for _ in range(5000):
        deep = [deep]
    other: list[Any] = []
    for _ in range(5000):
        other = [other]
    assert not same_value(deep, other)  # too deep to compare: not provably the same, no RecursionError


@slow(0.01)
def api(q: str, opts: Any) -> list[Any]:
    return ["b", q, opts]


VALUE: Any = 1
NEXT: Any = 1


# Lists, dicts and sets are not issued ahead after a helper not known to be pure (it might change
# them), so the dispatcher meets them only with equal contents: same_value's tests cover them.
def set_value() -> None:  # a helper not known to be pure: the planned call was built before it ran
    # (through the module's namespace, which no reading of its bytecode names: a `global VALUE`
    # assignment would keep the call in its turn from the start, see test_module_state)
    vars(sys.modules[__name__])["VALUE"] = NEXT


def in_tuple(q: str) -> Any:
    set_value()
    return api(q, (VALUE, "gpt"))


def bare(q: str) -> Any:
    set_value()
    return api(q, VALUE)


@pytest.mark.parametrize("fn", [in_tuple, bare])
@pytest.mark.parametrize(("before", "after"), [(1, True), (0, 0.0), (1, 1.0), (0.0, -0.0), (True, 1)])
def test_a_callee_receives_exactly_what_the_plain_run_passes(
    fn: Callable[[str], Any], before: Any, after: Any
) -> None:
    global VALUE, NEXT
    VALUE = NEXT = before
    fast = xcs.jit(fn, min_call_ms=MIN_MS)
    fast(fresh())  # traced
    q = fresh()
    assert fast(q) == fn(q)
    assert fast.stats.served == 1  # the call is planned and served while nothing changes
    NEXT = after  # now the helper changes the value after the planned call was built
    q = fresh()
    VALUE = before
    expected = fn(q)
    VALUE = before
    got = fast(q)
    assert repr(got) == repr(expected)  # repr tells 1 from True, 0 from 0.0 and -0.0
    assert fast.stats.mispredictions == 1 and fast.stats.served == 1


# -- 2. an executor that cancels or refuses planned calls ----------------------------------------------


POOL: list[ThreadPoolExecutor] = []


@slow(0.02)
def stops_the_pool(q: str) -> str:
    if "stop" in q:
        POOL[0].shutdown(wait=False, cancel_futures=True)
    return f"stopped({q})"


@slow(0.02)
def step(q: str) -> str:
    return f"step({q})"


def three_steps(q: str) -> list[str]:
    return [stops_the_pool(q), step(q + "1"), step(q + "2")]


def test_calls_cancelled_by_an_executor_shut_down_during_the_run_are_made_in_place() -> None:
    pool = ThreadPoolExecutor(1)  # one worker: the two steps are still queued when the first call stops it
    POOL[:] = [pool]
    try:
        fast = xcs.jit(three_steps, executor=pool, min_call_ms=MIN_MS)
        fast(fresh())
        q = fresh("stop ")
        step.reset()
        assert fast(q) == [f"stopped({q})", f"step({q}1)", f"step({q}2)"]
        assert step.call_count == 2  # each made once, by the run itself
        # the executor now refuses new work: the next replay makes every call in place
        q = fresh("stop ")
        assert fast(q) == three_steps(q)
        assert fast.stats.replays == 2 and fast.stats.in_place == 3
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


# -- 3. an executor in other processes ------------------------------------------------------------


def square(x: int) -> int:  # module level: a process pool can pickle it
    time.sleep(0.01)
    return x * x


def squares(n: int) -> list[int]:
    return [square(n), square(n + 1), square(n + 2)]


def test_a_process_pool_runs_the_planned_calls_and_gives_the_plain_results() -> None:
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        fast = xcs.jit(squares, executor=pool, min_call_ms=MIN_MS)
        assert [fast(n) for n in (1, 2, 3)] == [squares(n) for n in (1, 2, 3)]
        assert fast.stats.replays == 2 and fast.stats.served == 6 and fast.stats.in_place == 0

        def local_square(x: int) -> int:  # a local function cannot be pickled: it runs in place
            time.sleep(0.01)
            return x * x

        def local_squares(n: int) -> list[int]:
            return [local_square(n), local_square(n + 1)]

        fast_local = xcs.jit(local_squares, executor=pool, min_call_ms=MIN_MS)
        assert [fast_local(n) for n in (1, 2, 3)] == [local_squares(n) for n in (1, 2, 3)]
        assert fast_local.stats.replays == 2 and fast_local.stats.in_place == 4


# -- 6. KeyboardInterrupt at any point of a replay ------------------------------------------------------


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@slow(0.001)
def quick(q: str) -> str:
    return f"quick({q})"


def many(q: str) -> list[str]:
    first = [quick(f"{q} {i}") for i in range(20)]
    return [*first, quick(" ".join(first))]


def many_at_once(q: str) -> list[str]:
    """What `many(q)` returns, from `quick`'s own function without its 21 sleeps: the test's oracle, which
    would otherwise take most of each round's time."""
    answer = quick.__wrapped__
    first = [answer(f"{q} {i}") for i in range(20)]
    return [*first, answer(" ".join(first))]


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer (POSIX)")
def test_a_keyboard_interrupt_anywhere_in_a_replay_surfaces_as_such_and_leaves_nothing_locked() -> None:
    rng = random.Random(20240611)
    assert many_at_once("q") == many("q")
    fast = xcs.jit(many, min_call_ms=0.5)
    fast(fresh())
    previous = signal.signal(signal.SIGALRM, _interrupt)
    interrupted = 0
    try:
        for _ in range(250):
            q = fresh()
            try:
                signal.setitimer(signal.ITIMER_REAL, rng.uniform(0.0001, 0.015))
                try:
                    fast(q)
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            except KeyboardInterrupt:  # any other exception fails the test
                interrupted += 1
            follow = fresh()
            box: list[Any] = []
            thread = threading.Thread(
                target=lambda follow=follow, box=box: box.append(fast(follow)), daemon=True
            )
            thread.start()
            thread.join(10)
            assert not thread.is_alive(), "a jitted call after an interrupt hangs: something stayed locked"
            assert box == [many_at_once(follow)]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert interrupted > 30  # the interrupts did land in replays
    assert fast.stats.replays > 250

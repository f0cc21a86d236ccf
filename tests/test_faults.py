"""Faults and wrong results the replay must not produce: a callee gets exactly what the plain run passes.

Each test runs the plain function and its jitted replay on the same inputs and compares results (and,
where it matters, the calls made), after the situation that once made the replay differ: a value equal
to the planned one but of another type, an executor shut down or living in another process.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import pytest

import xcs_bc as xcs
from xcs_bc.plan.slices import same_value
from xcs_bc.testing import slow

MIN_MS = 5.0
_fresh = itertools.count()


def fresh() -> str:
    return f"q{next(_fresh)}"


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
    global VALUE
    VALUE = NEXT


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

"""Helpers the function defines itself (`def one(d): ...`, `f = lambda d: ...`) and calls slowly.

A replay cannot make the function object again (another object would not be the callee), but it can
read it from the frame once the run has defined it: the calls after the first go ahead.  Only when
the helper sees the same thing whenever it is called: no closure, or a closure over values assigned
once and immutable.  A helper whose cells the run changes between calls (`prefix = "B"` after the
def, `nonlocal n; n += 1`, a list appended to) runs each call in its turn.  Every run is compared
with the plain one (`likeplain`); nothing is wasted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import xcs_bc as xcs
from likeplain import LATENCY, fresh, no_waste, run_both
from xcs_bc.testing import FakeLLM

llm = FakeLLM("llm", LATENCY)


def nested_def(docs: list[str]) -> list[str]:
    def one(d: str) -> str:
        return llm(f"Summarize: {d}")

    return [one(d) for d in docs]


def nested_lambda(docs: list[str]) -> list[str]:
    ask = lambda d: llm(f"Ask: {d}")  # noqa: E731 - the form legacy code has
    return [ask(d) for d in docs]


def closure_over_a_setting(docs: list[str], style: str) -> list[str]:
    model = "small"

    def one(d: str) -> str:
        return llm(f"{style} ({model}): {d}")

    return [one(d) for d in docs]


@pytest.mark.parametrize(
    ("fn", "extra"),
    [(nested_def, ()), (nested_lambda, ()), (closure_over_a_setting, ("terse",))],
    ids=["def", "lambda", "closure"],
)
def test_a_helper_the_function_defines_is_called_ahead_once_defined(
    fn: Callable[..., Any], extra: tuple[Any, ...]
) -> None:
    fast = xcs.jit(fn)
    for _ in range(3):
        run_both(fn, fast, [fresh() for _ in range(4)], *extra, watch=[llm])
    no_waste(fast)
    llm.reset()
    fast([fresh() for _ in range(4)], *extra)
    assert llm.max_concurrency == 4, fast.explain()


def prefix_changes(docs: list[str]) -> list[str]:
    prefix = "A"

    def one(d: str) -> str:
        return llm(f"{prefix}: {d}")

    first = one(docs[0])
    prefix = "B"
    return [first, one(docs[1])]


def counts_its_calls(docs: list[str]) -> list[str]:
    n = 0

    def one(d: str) -> str:
        nonlocal n
        n += 1
        return llm(f"{n}: {d}")

    return [one(d) for d in docs]


def reads_a_growing_list(docs: list[str]) -> list[str]:
    seen: list[str] = []

    def one(d: str) -> str:
        return llm(f"{len(seen)}: {d}")

    out = []
    for d in docs:
        out.append(one(d))
        seen.append(d)
    return out


@pytest.mark.parametrize("fn", [prefix_changes, counts_its_calls, reads_a_growing_list])
def test_a_helper_whose_closure_the_run_changes_is_called_in_its_turn(fn: Callable[..., Any]) -> None:
    fast = xcs.jit(fn)
    for _ in range(3):
        run_both(fn, fast, [fresh() for _ in range(3)], watch=[llm])
    no_waste(fast)
    assert fast.stats.served == 0, fast.explain()

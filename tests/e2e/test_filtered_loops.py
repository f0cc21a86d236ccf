"""A loop over `filter(None, docs)` (or a pure built-in predicate, `filter(str.strip, docs)`) is a
loop over the list it keeps: its later rounds go ahead on the first call, every round at once on
replays, at any length.  Each test compares outcomes and calls with the plain run's."""

from __future__ import annotations

from typing import Any

import pytest

import xcs_bc as xcs
from likeplain import fresh, no_waste, run_both_fresh
from xcs_bc.testing import FakeLLM

llm = FakeLLM("llm", 0.03)


def docs_of(n: int, blanks: int = 2) -> list[str]:
    return [fresh("d") for _ in range(n)] + [""] * blanks + [f"  {fresh('s')}  "]


def kept(docs: list[str]) -> list[str]:
    return [llm(d) for d in filter(None, docs)]


def stripped(docs: list[str]) -> list[str]:
    out = []
    for d in filter(str.strip, docs):
        out.append(llm(f"Summarize: {d}"))
    return out


def then_combined(docs: list[str]) -> str:
    notes = [llm(d) for d in filter(None, docs)]
    return llm(" | ".join(notes))


@pytest.mark.parametrize("fn", [kept, stripped, then_combined])
def test_a_loop_over_a_filter_goes_ahead_on_the_first_call_and_on_replays(fn: Any) -> None:
    fast = xcs.jit(fn)
    for call, n in enumerate([4, 6, 3, 5]):
        docs = docs_of(n)
        run_both_fresh(fn, fast, lambda docs=docs: (list(docs),), watch=[llm])
        assert llm.max_concurrency >= (n if call == 0 else n + 1), (call, fast.explain())
    assert fast.stats.traces == 1, fast.explain()
    no_waste(fast)


def by_a_lambda(docs: list[str]) -> list[str]:
    return [llm(d) for d in filter(lambda d: len(d) > 3, docs)]


def over_a_generator(docs: list[str]) -> list[str]:
    return [llm(d) for d in filter(None, (d.strip() for d in docs))]


@pytest.mark.parametrize("fn", [by_a_lambda, over_a_generator])
def test_other_filters_keep_their_calls_exact(fn: Any) -> None:
    fast = xcs.jit(fn)
    for n in (4, 6, 3):
        docs = docs_of(n)
        run_both_fresh(fn, fast, lambda docs=docs: (list(docs),), watch=[llm])


def test_a_predicate_that_raises_raises_as_in_the_plain_run() -> None:
    fast = xcs.jit(stripped)
    for docs in (docs_of(3), [*docs_of(2), 7, *docs_of(2)], docs_of(4)):  # str.strip(7): TypeError
        run_both_fresh(stripped, fast, lambda docs=docs: (list(docs),), watch=[llm])

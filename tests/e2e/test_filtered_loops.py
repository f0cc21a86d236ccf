"""A loop over `filter(pred, docs)`, `map(fn, docs)` or `sorted(docs, key=fn)`, the function None (a
filter's), a built-in known to be pure (`str.strip`) or a function of the user's known to be pure
(`keep`, `lambda d: len(d) > 3`, made again from its code when made in the function), is a loop over
the list it gives: its later rounds go ahead on the first call, every round at once on replays, at
any length.  Each test compares outcomes and calls with the plain run's."""

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
    return [llm(d) for d in filter(lambda d: len(d.strip()) > 1, docs)]


def keep(d: str) -> bool:
    return bool(d.strip()) and not d.startswith("#")


def by_a_function(docs: list[str]) -> list[str]:
    out = []
    for d in filter(keep, docs):
        out.append(llm(f"Summarize: {d}"))
    return out


def mapped_by_a_lambda(docs: list[str]) -> list[str]:
    return [llm(p) for p in map(lambda d: "Summarize: " + d.strip(), docs)]


def sorted_by_a_key(docs: list[str]) -> str:
    notes = [llm(d) for d in sorted(docs, key=lambda d: (len(d), d))]
    return llm(" | ".join(notes))


@pytest.mark.parametrize("fn", [by_a_lambda, by_a_function, mapped_by_a_lambda, sorted_by_a_key])
def test_a_loop_over_what_a_pure_function_of_the_user_s_picks_goes_ahead(fn: Any) -> None:
    fast = xcs.jit(fn)
    for call, n in enumerate([4, 6, 3, 5]):
        docs = docs_of(n)
        run_both_fresh(fn, fast, lambda docs=docs: (list(docs),), watch=[llm])
        assert llm.max_concurrency >= (n - 1 if call == 0 else n), (call, fast.explain())
    assert fast.stats.traces == 1, fast.explain()
    no_waste(fast)


def over_a_generator(docs: list[str]) -> list[str]:
    return [llm(d) for d in filter(None, (d.strip() for d in docs))]


def by_a_closure(docs: list[str]) -> list[str]:
    shortest = min(len(d) for d in docs)
    return [llm(d) for d in filter(lambda d: len(d) > shortest, docs)]  # (reads a local: a closure)


def by_a_slow_verdict(docs: list[str]) -> list[str]:
    return [llm(d) for d in filter(lambda d: llm(f"Relevant? {d}").endswith(")"), docs)]


LONGER_THAN = 0


def longer(d: str) -> bool:
    return len(d) > LONGER_THAN


def rebinds_what_the_predicate_reads(docs: list[str]) -> list[str]:
    global LONGER_THAN
    LONGER_THAN = 0
    out = []
    for d in filter(longer, docs):
        out.append(llm(d))
        LONGER_THAN = len(d)  # the filter's next items are judged by the new bound
    return out


def has_a_digit(d: str) -> bool:
    i = 0
    while i < len(d):  # (a `while` loop: not run ahead on items the run may never reach)
        if d[i].isdigit():
            return True
        i += 1
    return False


def by_a_while_loop(docs: list[str]) -> list[str]:
    return [llm(d) for d in filter(has_a_digit, docs)]


@pytest.mark.parametrize(
    "fn",
    [over_a_generator, by_a_closure, by_a_slow_verdict, rebinds_what_the_predicate_reads, by_a_while_loop],
)
def test_other_filters_keep_their_calls_exact(fn: Any) -> None:
    fast = xcs.jit(fn)
    for n in (4, 6, 3):
        docs = docs_of(n)
        run_both_fresh(fn, fast, lambda docs=docs: (list(docs),), watch=[llm])
    no_waste(fast)


def test_a_predicate_that_raises_raises_as_in_the_plain_run() -> None:
    fast = xcs.jit(stripped)
    for docs in (docs_of(3), [*docs_of(2), 7, *docs_of(2)], docs_of(4)):  # str.strip(7): TypeError
        run_both_fresh(stripped, fast, lambda docs=docs: (list(docs),), watch=[llm])

"""A `for` loop left in the middle, by `break` or by `return` from inside it.

Where only branches a guard checks led there (a retry's `break` once the call returned, `if
doc.startswith("#"): return ...`), a replay whose guards hold leaves it in the same round: what comes
after it goes ahead, under a guard that the sequence has more items than the rounds it took.  Where a
result decided it (`if "yes" in llm(d): break`), or the loop walks an iterator, nothing from the loop
on is issued ahead.  Each test compares outcomes and calls with the plain run's, on several inputs.
"""

from __future__ import annotations

from typing import Any

import pytest

import xcs_bc as xcs
from likeplain import fresh, no_waste, run_both_fresh
from pipelines_legacy import FlakyLLM
from xcs_bc.testing import FakeLLM

llm = FakeLLM("llm", 0.03)
flaky = FlakyLLM("flaky", 0.03)  # times out the first time it sees a prompt with "flaky" in it


def retried(docs: list[str]) -> str:
    notes = []
    for doc in docs:
        for _attempt in range(3):
            try:
                note = flaky(f"Summarize: {doc}")
                break
            except TimeoutError:
                pass
        else:
            note = f"<no summary of {doc}>"
        notes.append(note)
    return llm("\n".join(notes))


def docs_of(n: int, flaky_at: int | None = None) -> list[str]:
    return [fresh("flaky d" if k == flaky_at else "d") for k in range(n)]


def test_a_retry_loop_left_by_break_lets_every_document_go_at_once() -> None:
    fast = xcs.jit(retried)
    for n, flaky_at in [(3, None), (5, None), (4, 1), (2, None), (6, 5)]:
        docs = docs_of(n, flaky_at)
        run_both_fresh(retried, fast, lambda docs=docs: (list(docs),), watch=[flaky, llm])
        if fast.stats.replays and flaky_at is None:
            assert flaky.max_concurrency == n, fast.explain()
    assert fast.stats.traces == 1, fast.explain()
    no_waste(fast)


def renamed_on_timeout(docs: list[str]) -> list[str]:
    out = []
    for doc in docs:
        for _attempt in range(2):
            try:
                summary = flaky(f"Summarize: {doc}")
                break
            except TimeoutError:
                doc = doc.replace("flaky", "short")  # what a later round reads changes
        out.append(llm(f"Title for {doc}: {summary}"))
    return out


def first_heading(docs: list[str]) -> str:
    for doc in docs:
        if doc.startswith("#"):
            return llm(f"Heading: {doc}")
    return llm("no heading")


def until_yes(docs: list[str]) -> str:
    answer = ""
    for doc in docs:
        answer = llm(f"Check: {doc}")
        if "yes" in answer:
            break
    return llm(f"Final: {answer}")


def after_b(docs: list[str]) -> list[str]:
    rest = iter(docs)
    for doc in rest:
        if doc == "b":
            break
    return [llm(d) for d in rest]


def titled(docs: list[str]) -> list[str]:
    out = []
    for doc in docs:
        title = "untitled"
        for line in doc.splitlines():
            if line.startswith("TITLE "):
                title = line[6:]
                break
        out.append(llm(f"{title}: {doc}"))
    return out


CASES: dict[str, tuple[Any, list[list[str]]]] = {
    "a handler changes what later rounds read": (
        renamed_on_timeout,
        [["a", "b"], ["c", "flaky d", "e"], ["f", "g", "h"], ["flaky i", "j"]],
    ),
    "return where a value says": (
        first_heading,
        [["a", "#b", "c"], ["x", "#y", "z", "w"], ["#x"], ["a", "b", "c"], ["a", "b", "#c", "#d"]],
    ),
    "break where a result says": (
        until_yes,
        [["a", "yes b", "c"], ["p", "yes q", "r"], ["yes"], ["a", "b", "yes c"], ["a", "b"]],
    ),
    "break out of a loop over an iterator": (
        after_b,
        [["a", "b", "c", "d"], ["a", "b", "x", "y"], ["b", "x"], ["a", "c", "b", "d", "e"], ["a"]],
    ),
    "break in an inner loop": (
        titled,
        [
            ["TITLE a\nbody", "x\nTITLE b\ny"],
            ["TITLE c\nbody", "x\nTITLE d\ny"],
            ["no title", "TITLE e", "x\ny\nTITLE f"],
            ["TITLE g\nbody", "TITLE h", "x\nTITLE i", "TITLE j\ny", "", "TITLE k"],
        ],
    ),
    "a retry's break": (retried, [["a", "b", "c", "d"], ["e", "flaky f", "g", "h"], ["flaky i", "j", "k"]]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_loops_left_early_behave_like_plain(case: str) -> None:
    fn, inputs = CASES[case]
    fast = xcs.jit(fn)
    for docs in inputs:
        run_both_fresh(fn, fast, lambda docs=docs: (list(docs),), watch=[flaky, llm])
    no_waste(fast)


@pytest.mark.parametrize("case", list(CASES))
def test_loops_left_early_behave_like_plain_on_the_first_call(case: str) -> None:
    fn, inputs = CASES[case]
    for docs in inputs:
        fast = xcs.jit(fn)
        run_both_fresh(fn, fast, lambda docs=docs: (list(docs),), watch=[flaky, llm])
        no_waste(fast)


@pytest.mark.parametrize("fn", [retried, titled])
def test_rounds_after_a_loop_left_by_break_go_ahead_on_the_first_call(fn: Any) -> None:
    """Round 1 alone, then every later round at once: its inner loop is left where round 1 left its
    own (the branches on values it took go the same way, and it has the items)."""
    docs = [f"TITLE {fresh()}\nbody" for _ in range(5)]
    fast = xcs.jit(fn)
    run_both_fresh(fn, fast, lambda: (list(docs),), watch=[flaky, llm])
    assert (flaky if fn is retried else llm).max_concurrency == 4, fast.explain()
    no_waste(fast)


def test_a_loop_left_where_a_value_says_replays_its_plan() -> None:
    fast = xcs.jit(first_heading)
    for docs in (["a", "#b", "c"], ["x", "#y", "z", "w"]):
        docs = [doc + fresh(" ") for doc in docs]
        run_both_fresh(first_heading, fast, lambda docs=docs: (list(docs),), watch=[llm])
    # the second call left the loop in the same round (docs[1] starts with "#"): served from the plan
    assert fast.stats.traces == 1 and fast.stats.replays == 1 and fast.stats.served == 1, fast.explain()

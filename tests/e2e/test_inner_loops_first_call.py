"""On the first call, a loop whose rounds each run an inner loop over a sequence of the round's own
item (`for w in doc.split()`, a comprehension over it, `enumerate()` or `zip()` of such), as many
rounds as that sequence has: from the outer loop's second round, every later round's calls go at
once, each inner loop made for its own length.  Where that could differ from the plain run (a
branch in the inner rounds, a local they assign read after them, a call reading their results),
the later rounds go one at a time as before.  Each test compares outcomes and calls with the plain
run's on the first call."""

from __future__ import annotations

from typing import Any

import pytest

import xcs_bc as xcs
from likeplain import no_waste, run_both_fresh
from xcs_bc.testing import FakeLLM

llm = FakeLLM("llm", 0.03)
judge = FakeLLM("judge", 0.03)


def words(docs: list[str]) -> list[str]:
    out = []
    for d in docs:
        for w in d.split():
            out.append(llm(f"{w} of {d}"))
    return out


def comprehension(docs: list[str]) -> list[str]:
    out: list[str] = []
    for d in docs:
        out += [llm(w) for w in d.split()]
    return out


def numbered(docs: list[str]) -> list[str]:
    out = []
    for d in docs:
        for i, w in enumerate(d.split(), 1):
            out.append(llm(f"{i}/{len(d.split())}: {w}"))
    return out


def paired(docs: list[str]) -> list[str]:
    out = []
    for d in docs:
        ws = d.split()
        for a, b in zip(ws, ws[1:]):  # noqa: B905 - the shortest: one pair less than words
            out.append(llm(f"{a} then {b}"))
    return out


def then_combined(docs: list[str]) -> str:
    out = []
    for d in docs:
        for w in d.split():
            out.append(llm(w))
    return judge(" | ".join(out))


GO_AT_ONCE = [words, comprehension, numbered, paired, then_combined]


def counted(docs: list[str]) -> list[str]:
    out = []
    for d in docs:
        n = 0
        for _w in d.split():
            n += 1
        out.append(llm(f"{n} words: {d}"))
    return out


def last_word(docs: list[str]) -> list[str]:
    out = []
    for d in docs:
        w = ""
        for w in d.split():  # noqa: B007 - the last word is what the call reads
            llm(w)
        out.append(judge(f"last: {w}"))
    return out


def per_doc_combine(docs: list[str]) -> list[str]:
    out = []
    for d in docs:
        notes = [llm(w) for w in d.split()]
        out.append(judge(" | ".join(notes)))
    return out


def skipping(docs: list[str]) -> list[str]:
    out = []
    for d in docs:
        for w in d.split():
            if w.startswith("#"):
                continue
            out.append(llm(w))
    return out


def stopping(docs: list[str]) -> list[str]:
    out = []
    for d in docs:
        for w in d.split():
            if w == "stop":
                break
            out.append(llm(w))
    return out


ONE_AT_A_TIME = [counted, last_word, per_doc_combine, skipping, stopping]

INPUTS = [
    ["a b c", "d e", "f g h i", "j", "k l m n o", "p q"],
    ["a b", "c d e f", "", "g h i", "#j k l", "m stop n", "o p q"],
    ["a b c", "d e f", "g h i", "j k l"],
]


@pytest.mark.parametrize("fn", GO_AT_ONCE + ONE_AT_A_TIME, ids=lambda fn: fn.__name__)
@pytest.mark.parametrize("docs", INPUTS, ids=["lengths", "edges", "equal"])
def test_inner_loops_of_the_round_s_own_behave_like_plain_on_the_first_call(fn: Any, docs: list[str]) -> None:
    fast = xcs.jit(fn)
    run_both_fresh(fn, fast, lambda: (list(docs),), watch=[llm, judge])
    no_waste(fast)


@pytest.mark.parametrize("fn", GO_AT_ONCE, ids=lambda fn: fn.__name__)
def test_later_rounds_with_inner_loops_of_their_own_length_go_at_once(fn: Any) -> None:
    docs = INPUTS[0]
    fast = xcs.jit(fn)
    run_both_fresh(fn, fast, lambda: (list(docs),), watch=[llm, judge])
    # the first document's calls, then every later document's at once (paired: a word less each)
    later = sum(max(len(d.split()) - (fn is paired), 0) for d in docs[1:])
    assert llm.max_concurrency >= later, fast.explain()
    no_waste(fast)

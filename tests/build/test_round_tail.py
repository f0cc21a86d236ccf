"""`arms.round_tail` and `loopshape.handled_out`: what the rest of a loop's round may do, read from the
bytecode, and whether a `try` inside a loop may leave it (see `execute.first`)."""

from __future__ import annotations

from typing import Any

import pytest

from handler_loops import STOPPED_BY_A_HANDLER, falling_back, while_falling_back, while_flagged
from xcs_bc.build.arms import Tail, round_tail
from xcs_bc.build.codeinfo import code_info
from xcs_bc.build.loopshape import handled_out, while_heads
from xcs_bc.build.skipping import loop_body

llm: Any = None
METRICS: list[Any] = []


def tail_of(fn: Any) -> Tail | None:
    """The tail of the first loop of `fn`, from its first conditional jump after the FOR_ITER."""
    info = code_info(fn.__code__)
    head = next(offset for offset in info.order if info.instrs[offset].opname == "FOR_ITER")
    body = loop_body(info, head)
    assert body is not None
    branch = next(
        offset
        for offset in info.order
        if offset > head and offset in body.offsets and "_IF_" in info.instrs[offset].opname
    )
    return round_tail(info, branch, body.offsets, head)


def keeps_the_best(cands):
    best = None
    for c in cands:
        score = llm(c)
        if best is None or score > best[0]:
            best = (score, c)
    return best


def keeps_and_counts(docs):
    kept, n = [], 0
    for d in docs:
        verdict = llm(d)
        if verdict.strip().lower() == "yes":
            kept.append(d)
            n += 1
    return kept, n


def appends_to_a_global(docs):
    for d in docs:
        verdict = llm(d)
        if verdict:
            METRICS.append(d)


def breaks(docs):
    for d in docs:
        verdict = llm(d)
        if verdict:
            break


def sets_an_attribute(docs, box):
    for d in docs:
        verdict = llm(d)
        if verdict:
            box.last = d


def changes_an_item_of_an_item(docs, rows):
    for d in docs:
        verdict = llm(d)
        if verdict:
            rows[0].append(d)


def hands_a_method_on(docs):
    notes = []
    for d in docs:
        verdict = llm(f"{d} {len(notes)}")
        if verdict:
            list(map(notes.append, [d]))


def hands_a_global_s_method_on(docs):
    for d in docs:
        verdict = llm(d)
        if verdict:
            list(map(METRICS.append, [d]))


def test_a_tail_says_what_it_assigns_changes_and_calls() -> None:
    best = tail_of(keeps_the_best)
    assert best is not None and best.stores == {"best"} and not best.changed and not best.calls
    kept = tail_of(keeps_and_counts)
    assert kept is not None and kept.stores == {"n"} and kept.changed >= {"kept", "n"} and not kept.calls
    metrics = tail_of(appends_to_a_global)
    assert metrics is not None and metrics.calls == {("global", "METRICS", "append")}
    attribute = tail_of(sets_an_attribute)
    assert attribute is not None and attribute.changed == {"box"}  # (not a container the glue built)
    handed = tail_of(hands_a_method_on)  # (`map` calls the method it is handed: the list changes)
    assert handed is not None and handed.changed == {"notes"}


@pytest.mark.parametrize("fn", [breaks, changes_an_item_of_an_item, hands_a_global_s_method_on])
def test_a_tail_that_leaves_the_loop_or_changes_what_no_local_names_is_not_read(fn: Any) -> None:
    assert tail_of(fn) is None


def breaks_in_a_handler(docs):
    for d in docs:
        try:
            int(llm(d))
        except ValueError:
            break


def returns_in_a_handler(docs):
    for d in docs:
        try:
            int(llm(d))
        except ValueError:
            return None
    return docs


def goes_on_in_a_handler(docs):
    out = []
    for d in docs:
        try:
            out.append(int(llm(d)))
        except ValueError:
            out.append(0)
    return out


def handled_around_the_loop(docs):
    out = []
    try:
        for d in docs:
            out.append(int(llm(d)))
    except ValueError:
        return None
    return out


def marks_what_the_next_round_reads(docs):
    out, seen = [], {}
    for d in docs:
        if d in seen:
            continue
        try:
            out.append(llm(d))
        except ValueError:
            seen[d] = False
    return out


def counts_what_only_the_end_reads(docs):
    out, failures = [], 0
    for d in docs:
        try:
            out.append(llm(d))
        except ValueError:
            failures += 1
            out.append(None)
    return out, failures


def defaults_what_the_round_sets(docs):
    out = []
    for d in docs:
        ok = True
        try:
            r = llm(d)
        except ValueError as e:
            r, ok = str(e), False
        if ok:
            out.append(r)
    return out


FAILED = False


def flags_through_a_global(docs):
    global FAILED
    FAILED, out = False, []
    for d in docs:
        if FAILED:
            break
        try:
            out.append(llm(d))
        except ValueError:
            mark_failed()
    return out


def mark_failed():
    global FAILED
    FAILED = True


@pytest.mark.parametrize(
    ("fn", "leaves"),
    [
        (breaks_in_a_handler, True),
        (returns_in_a_handler, True),
        (flags_through_a_global, True),
        (marks_what_the_next_round_reads, True),
        *((fn, True) for fn in STOPPED_BY_A_HANDLER if fn is not while_flagged),
        (goes_on_in_a_handler, False),
        (handled_around_the_loop, False),
        (counts_what_only_the_end_reads, False),
        (defaults_what_the_round_sets, False),
        (falling_back, False),
    ],
)
def test_a_try_inside_a_loop_may_leave_it(fn: Any, leaves: bool) -> None:
    """A handler that leaves the loop, or goes back into it having changed what a later round reads
    before it assigns it (a flag, a count, a list of errors, a mark in a dict): the later rounds may
    not run, or not alike.  Adding to the results, or what only the end reads, is no such change."""
    info = code_info(fn.__code__)
    head = next(offset for offset in info.order if info.instrs[offset].opname == "FOR_ITER")
    assert handled_out(info, head) is leaves


def while_breaks_on_a_flag(docs):
    i, ok, out = 0, True, []
    while i < len(docs):
        if not ok:
            break
        try:
            out.append(llm(docs[i]))
        except ValueError:
            ok = False
        i += 1
    return out


@pytest.mark.parametrize(
    ("fn", "leaves"), [(while_flagged, True), (while_breaks_on_a_flag, True), (while_falling_back, False)]
)
def test_a_try_inside_a_while_loop_may_leave_it_too(fn: Any, leaves: bool) -> None:
    """The rounds of a `while` loop start where its backward jumps go (`while_heads`, from the call's
    offset): the same question, on the loop's own way out (its condition, a `break`)."""
    info = code_info(fn.__code__)
    call = next(offset for offset in info.order if info.instrs[offset].argval == "append")
    heads = while_heads(info, call)
    assert heads and {handled_out(info, head) for head in heads} == {leaves}

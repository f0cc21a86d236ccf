"""The first call of a jitted function: traced, with the later rounds of its loops issued ahead.

Each test calls a fresh jitted function once (so that call is the trace) and compares it with the
plain function: the same result or exception and the same calls (`likeplain`), and, where the
first round predicts the others, the later rounds' calls at once.  Where a round may go another
way than the first (a branch, a list changed in place, a consumer that may stop), nothing goes
ahead and the first call runs one call after another, as before.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import time
import types
import warnings
from collections import Counter
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest

import xcs_bc as xcs
from likeplain import LATENCY, Tool, fakes, fresh, no_waste, outcome, plain_outcome, run_both, run_both_fresh
from xcs_bc.execute import first
from xcs_bc.testing import CallLog, FakeLLM, FakeLLMError

(llm,) = fakes("llm")
(flaky,) = fakes("flaky", fail_on="BAD")
search = Tool("search", lambda prompt: [f"hit {i} of {prompt}" for i in range(prompt.count("*"))])


def summarize(docs):
    out = []
    for d in docs:
        out.append(llm(f"Summarize: {d}"))
    return out


def summarize_comprehension(docs):
    return [llm(f"Summarize: {d.upper()}") for d in docs]


def map_then_combine(docs):
    parts = [llm(d) for d in docs]
    return llm(" | ".join(parts))


def read_every_hit(query):
    hits = search(query)
    notes = [llm(f"Read {h}") for h in hits]
    return llm("\n".join(notes))


def keyword_calls(docs, style):
    return [llm(d, style=style, n=len(d)) for d in docs]


def first_call(fn, *args):
    """A fresh jitted `fn` called once, checked against the plain call; the jitted function."""
    fast = xcs.jit(fn)
    llm.reset()
    run_both(fn, fast, *args, watch=[llm, search])
    assert fast.stats.traces == 1
    return fast


@pytest.mark.parametrize("fn", [summarize, summarize_comprehension, map_then_combine])
def test_a_map_over_the_inputs_issues_its_later_rounds_on_the_first_call(fn) -> None:
    docs = [fresh() for _ in range(8)]
    fast = first_call(fn, docs)
    assert llm.max_concurrency >= 6, fast.explain()  # rounds 2-8 went at once
    assert fast.stats.served_in_trace >= 5
    no_waste(fast)
    # the plan made from that trace is the one a plain trace makes: the next call replays it
    run_both(fn, fast, [fresh() for _ in range(5)], watch=[llm])
    assert fast.stats.traces == 1 and fast.stats.replays == 1


def test_a_loop_over_a_results_items_goes_at_once_on_the_first_call() -> None:
    fast = first_call(read_every_hit, fresh("q") + " *****")
    assert llm.max_concurrency >= 4
    no_waste(fast)


def test_keyword_arguments_and_the_first_call() -> None:
    fast = first_call(keyword_calls, [fresh() for _ in range(5)], "short")
    assert llm.max_concurrency >= 4
    no_waste(fast)


def test_a_method_whose_loop_goes_at_once() -> None:
    class Summarizer:
        def __init__(self, model: FakeLLM) -> None:
            self.model = model

        def run(self, docs: list[str]) -> list[str]:
            return [self.model(f"S: {d}") for d in docs]

    fast = xcs.jit(Summarizer.run)
    bot = Summarizer(llm)
    docs = [fresh() for _ in range(6)]
    llm.reset()
    assert fast(bot, docs) == Summarizer(llm).run(docs)
    assert llm.max_concurrency >= 4 and fast.stats.served_in_trace >= 3


def branch_on_item(docs):
    out = []
    for d in docs:
        if "skip" in d:
            continue
        out.append(llm(d))
    return out


def shrinking(docs):
    out = []
    for d in docs:
        out.append(llm(d))
        docs.pop()
    return out


def stops_early(docs):
    return any("yes" in llm(d) for d in docs)


def helper_in_the_loop(docs):
    out = []
    for d in docs:
        _note(d)
        out.append(llm(d))
    return out


NOTES: list[str] = []


def _note(text):  # not known to be pure: it changes a global list
    NOTES.append(text)


def breaks_on_a_result(docs):
    out = []
    for d in docs:
        answer = llm(d)
        if "stop" in answer:
            break
        out.append(answer)
    return out


@pytest.mark.parametrize(
    ("fn", "docs"),
    [
        (shrinking, ["a", "b", "c", "d", "e", "f"]),
        (stops_early, ["a", "b", "yes", "c", "d"]),
        (helper_in_the_loop, ["a", "b", "c", "d"]),
        (breaks_on_a_result, ["a", "b", "stop c", "d", "e"]),
    ],
    ids=["list-shrinks", "any-stops-early", "helper-not-pure", "break-on-result"],
)
def test_rounds_that_may_go_another_way_are_not_predicted(fn, docs) -> None:
    """The first round changed the list it walks, ran in a generator its consumer may stop, called a
    function not known to be pure or branched on a result: nothing goes ahead, the calls are the
    plain ones."""
    fast = xcs.jit(fn)
    llm.reset()
    run_both_fresh_list(fn, fast, docs)
    assert llm.max_concurrency == 1
    assert fast.stats.served_in_trace == 0
    no_waste(fast)


def run_both_fresh_list(fn, fast, docs) -> None:
    """`run_both` on a copy of `docs` for each run (one of the functions changes its list)."""
    run_both_fresh(fn, fast, lambda: (list(docs),), watch=[llm])


def test_a_round_that_raises_raises_at_the_same_point() -> None:
    """Round 3's call raises: the first call raises there, like the plain one; the later rounds'
    calls issued ahead were made for nothing and are counted in stats.wasted."""
    (failing,) = fakes("failing", fail_on="boom")

    def each(docs):
        return [failing(d) for d in docs]

    docs = ["a", "b", "boom c", "d", "e", "f"]
    failing.reset()
    expected = plain_outcome(each, (docs,), [failing])
    plain_calls = CallLog.snapshot(failing).counts
    failing.reset()
    fast = xcs.jit(each)
    got = outcome(fast, docs)
    time.sleep(3 * LATENCY)  # calls issued ahead and still running have logged themselves
    assert got == expected and got[1] is FakeLLMError
    made = CallLog.snapshot(failing).counts
    assert not plain_calls - made  # every call the plain run made
    assert sum((made - plain_calls).values()) == fast.stats.wasted  # the others are owned up to


def test_a_prediction_that_does_not_hold_is_made_in_place() -> None:
    """Fault injection: every later round predicted as the first (the item never replaced).  The
    real calls differ from the ones issued ahead: each is made in place, the calls issued for that
    site are dropped at the first difference, and the result and the calls needed are the plain ones;
    the calls made for nothing are owned up to in stats.wasted."""
    docs = [fresh() for _ in range(6)]
    llm.reset()
    expected = plain_outcome(summarize, (docs,), [llm])
    plain_calls = CallLog.snapshot(llm).counts
    llm.reset()
    fast = xcs.jit(summarize)
    with mock.patch.object(first, "_with_item", lambda refs, item, other: refs):
        got = outcome(fast, docs)
    time.sleep(3 * LATENCY)
    assert got == expected
    made = CallLog.snapshot(llm).counts
    assert not plain_calls - made
    assert sum((made - plain_calls).values()) == fast.stats.wasted
    assert fast.stats.served_in_trace == 0


def create(model, messages):
    """A chat client's call: it reads the last message it is handed."""
    return llm(f"[{model}] {messages[-1]['content']}")


def chat_inline(question, models):
    return [create(model=m, messages=[{"role": "user", "content": question}]) for m in models]


def chat_history(question, models):
    history = []
    out = []
    for m in models:
        history.append({"role": "user", "content": m})
        out.append(create(model=m, messages=history))
    return out


def test_messages_displayed_in_the_call_go_ahead_and_kept_ones_do_not() -> None:
    models = [fresh("model") for _ in range(5)]
    fast = first_call(chat_inline, fresh("q"), models)
    assert llm.max_concurrency >= 3 and fast.stats.served_in_trace >= 2
    no_waste(fast)
    fast = first_call(chat_history, fresh("q"), models)  # the list the calls get is the function's
    assert llm.max_concurrency == 1 and fast.stats.served_in_trace == 0
    no_waste(fast)


# -- loops inside the loop ----------------------------------------------------------------------------

ASPECTS = ("cost", "risk", "time")


def aspects(docs):
    out = []
    for d in docs:
        for aspect in ASPECTS:
            out.append(llm(f"{aspect} of {d}"))
    return out


def aspects_then_verdict(docs, scales):
    verdicts = []
    for d in docs:
        notes = []
        for aspect in ASPECTS:
            for scale in scales:
                notes.append(llm(f"{aspect} of {d} on {scale}"))
        verdicts.append(" / ".join(notes))
    return verdicts


def test_loops_over_the_same_list_inside_a_loop_go_at_once_from_its_second_round() -> None:
    """Its first round shows the inner loop's calls (that loop's later rounds go at once), and then
    every later document's calls, the inner loop's included, go at once: three rounds of latency in
    all, not one a document; the inner loop issues nothing more in those rounds."""
    docs = [fresh() for _ in range(5)]
    fast = first_call(aspects, docs)
    assert llm.max_concurrency >= 3 * 4 - 1, fast.explain()
    assert fast.stats.served_in_trace >= 3 * 4 - 1
    assert "issued 14 calls" in fast.explain()  # 2 for the first document's inner loop, then 3 x 4
    no_waste(fast)
    fast = first_call(aspects_then_verdict, [fresh() for _ in range(4)], ["low", "high"])
    assert llm.max_concurrency >= 6 * 3 - 1, fast.explain()
    no_waste(fast)
    run_both(aspects, fast := xcs.jit(aspects), docs, watch=[llm])  # and replays as before
    run_both(aspects, fast, [fresh() for _ in range(3)], watch=[llm])
    assert fast.stats.traces == 1 and fast.stats.replays == 1


def by_part(docs):
    out = []
    for d in docs:
        for part in d.split("|"):  # a list each document makes its own
            out.append(llm(f"{part} of {d}"))
    return out


def inner_branch(docs):
    out = []
    for d in docs:
        for aspect in ASPECTS:
            if aspect in d:  # each document may take another arm
                continue
            out.append(llm(f"{aspect} of {d}"))
    return out


def inner_break(docs):
    out = []
    for d in docs:
        for aspect in ASPECTS:
            out.append(llm(f"{aspect} of {d}"))
            if "stop" in d:
                break
    return out


def inner_first_only(docs):
    out = []
    for d in docs:
        for aspect in ASPECTS:
            out.append(llm(f"{aspect} of {d}"))
            break  # in every round: the loop is left under way
    return out


def test_an_inner_loop_over_a_list_each_round_makes_runs_its_own_length_in_later_rounds() -> None:
    """Each round's inner loop walks the round's own parts (`d.split("|")`): from the second round,
    every later document's calls go at once, each inner loop as long as its document's parts (see
    tests/e2e/test_inner_loops_first_call.py); results and calls are the plain ones."""
    fast = xcs.jit(by_part)
    llm.reset()
    run_both_fresh_list(by_part, fast, ["a|b|c", "d|e|f", "g|h", "i|j|k|l", "m|n|o"])
    assert llm.max_concurrency >= 12, fast.explain()  # the 12 calls of the last four documents
    no_waste(fast)


def test_an_inner_loop_every_round_leaves_by_break_lets_the_outer_rounds_go_at_once() -> None:
    """The first round left its inner loop by a `break` no result decided, in its first round: every
    later round leaves its own there too (a guard: ASPECTS has an item), so they go at once."""
    fast = xcs.jit(inner_first_only)
    llm.reset()
    run_both_fresh_list(inner_first_only, fast, ["a", "b", "c", "d", "e"])
    assert llm.max_concurrency == 4, fast.explain()
    no_waste(fast)


def test_a_later_round_s_inner_loop_that_raises_raises_at_the_same_point() -> None:
    (failing,) = fakes("failing", fail_on="boom")

    def each(docs):
        out = []
        for d in docs:
            for aspect in ASPECTS:
                out.append(failing(f"{aspect} of {d}"))
        return out

    docs = ["a", "b", "c", "boom d", "e"]
    failing.reset()
    expected = plain_outcome(each, (docs,), [failing])
    plain_calls = CallLog.snapshot(failing).counts
    failing.reset()
    fast = xcs.jit(each)
    got = outcome(fast, docs)
    time.sleep(3 * LATENCY)
    assert got == expected and got[1] is FakeLLMError
    made = CallLog.snapshot(failing).counts
    assert not plain_calls - made
    assert sum((made - plain_calls).values()) == fast.stats.wasted > 0


# -- state a round carries into the next ----------------------------------------------------------


def counter_in_prompt(docs):
    i = 0
    out = []
    for d in docs:
        i += 1  # noqa: SIM113 - the shape under test: a counter the prompt reads
        out.append(llm(f"{i}: {d}"))
    return out


def previous_item(docs):
    prev = ""
    out = []
    for d in docs:
        out.append(llm(prev + d))
        prev = d
    return out


def growing_list(docs):
    seen = []
    out = []
    for d in docs:
        seen.append(d)
        out.append(llm(" ".join(seen)))
    return out


def first_of_a_growing_list(docs):
    seen = []
    out = []
    for d in docs:
        seen.append(d)
        out.append(llm(seen[0] + d))
    return out


def growing_string(docs):
    text = ""
    out = []
    for d in docs:
        text += d
        out.append(llm(text))
    return out


def growing_tuple(docs):
    kept = ()
    out = []
    for d in docs:
        kept = kept + (d,)
        out.append(llm(str(kept)))
    return out


def parameter_rebound(docs, text):
    out = []
    for d in docs:
        text = text + d
        out.append(llm(text[:40]))
    return out


def result_fed_back(docs):
    last = "start"
    out = []
    for d in docs:
        last = llm(last[:8] + d)
        out.append(last)
    return out


def swapped(docs):
    a, b = "x", "y"
    out = []
    for d in docs:
        a, b = b, a
        out.append(llm(a + d))
    return out


def nested_container(docs):
    history = [[]]
    out = []
    for d in docs:
        history[0].append(d)
        out.append(llm(f"{len(history[0])} {d}"))
    return out


def length_of_a_growing_list(docs):
    seen = []
    out = []
    for d in docs:
        seen.append(d)
        out.append(llm(f"{len(seen)} {d}"))
    return out


def read_then_changed(docs):
    config = {"last": "none"}
    out = []
    for d in docs:
        out.append(llm(config["last"] + d))
        config["last"] = d
    return out


def memo_read_by_get(docs):
    memo = {}
    out = []
    for d in docs:
        answer = memo.get(d)
        if answer is None:
            answer = llm(d)
            memo[d] = answer
        out.append(answer)
    return out


def seen_counted(docs):
    seen = []
    out = []
    for d in docs:
        if seen.count(d) == 0:
            out.append(llm(d))
        seen.append(d)
    return out


def numbered_by_get(docs):
    seen = {}
    out = []
    for d in docs:
        out.append(llm(f"{d}{seen.get(d, 0)}"))
        seen[d] = seen.get(d, 0) + 1
    return out


def noted_through_map(docs):
    notes = []
    out = []
    for d in docs:
        answer = llm(f"{d} {len(notes)}")
        if answer:
            list(map(notes.append, [d]))  # (`map` calls the method it is handed)
        out.append(answer)
    return out


JOINED: list[str] = []


def global_list_grown(docs):
    global JOINED  # noqa: PLW0603 - the shape under test: a list the function keeps in a global
    JOINED = []
    out = []
    for d in docs:
        JOINED.append(d)
        out.append(llm(" ".join(JOINED)))
    return out


def last_three_in_prompt(docs):
    last = collections.deque(maxlen=3)
    for d in docs:
        last.append(llm(f"{d} after {' '.join(last)}"))
    return list(last)


def newest_first_read(docs):
    recent = collections.deque()
    for d in docs:
        recent.appendleft(llm(d + (recent[0] if recent else "")))
    return list(recent)


def rotated_then_read(docs):
    ring = collections.deque(["x", "y", "z"])
    out = []
    for d in docs:
        ring.rotate(1)
        out.append(llm(f"{d} {ring[0]}"))
    return out


CARRIED = [
    (last_three_in_prompt, ()),
    (newest_first_read, ()),
    (rotated_then_read, ()),
    (global_list_grown, ()),
    (length_of_a_growing_list, ()),
    (read_then_changed, ()),
    (counter_in_prompt, ()),
    (previous_item, ()),
    (growing_list, ()),
    (first_of_a_growing_list, ()),
    (growing_string, ()),
    (growing_tuple, ()),
    (parameter_rebound, ("t:",)),
    (result_fed_back, ()),
    (swapped, ()),
    (nested_container, ()),
    (memo_read_by_get, ()),  # (a method of the container reads it: `memo.get(d)`, `seen.count(d)`)
    (seen_counted, ()),
    (numbered_by_get, ()),
    (noted_through_map, ()),
]


def submitted(fast, fn, docs, extra=(), watch=()):
    """Run the plain `fn` and `fast` (a fresh jit of it: this is its first call) on copies of `docs` (a
    list, a dict or a string; `watch`: fakes it calls beside `llm` and `flaky`):
    the same outcome and calls, and every call the first call issued ahead is one the plain run
    made (as many times at most).  Gives those calls, each as the tuple of its arguments."""
    fakes_ = [llm, flaky, *watch]
    for fake in fakes_:
        fake.reset()
    plain_outcome(fn, (type(docs)(docs), *extra), fakes_)
    plain_prompts = Counter(prompt for fake in fakes_ for prompt, _ in fake.calls)
    issued = []
    submit = first.FirstCall._submit

    def spy(self, key, name, values, kwnames, *rest):
        issued.append(tuple(values[1:]))
        return submit(self, key, name, values, kwnames, *rest)

    with mock.patch.object(first.FirstCall, "_submit", spy):
        run_both_fresh(fn, fast, lambda: (type(docs)(docs), *extra), watch=fakes_)
    assert Counter(call[0] for call in issued) - plain_prompts == Counter()  # (none twice: a multiset)
    return issued


@pytest.mark.parametrize(("fn", "extra"), CARRIED, ids=[fn.__name__ for fn, _ in CARRIED])
def test_a_round_that_reads_what_the_round_before_left_is_not_predicted(fn, extra) -> None:
    """The first round read a local and assigned it, or read a container it changed in place: the
    next round reads another value, so its recipe made again for another item would be a call the
    plain run never makes.  Nothing is issued ahead (it was: `1: b`, `1: c`... while the run made
    `2: b`, `3: c`), and the calls are the plain ones."""
    fast = xcs.jit(fn)
    assert submitted(fast, fn, [fresh() for _ in range(6)], extra) == []
    assert fast.stats.served_in_trace == 0 and fast.stats.wasted == 0


def total_of_results(docs):
    total = 0
    for d in docs:
        total += len(llm(d))
    return total


def results_added_up(docs):
    text = ""
    for d in docs:
        text += llm(d)
    return text


def counted_apart(docs):
    n = 0
    out = []
    for d in docs:
        n += 1
        out.append(llm(d.upper()))
    return out, n


def list_made_in_the_round(docs):
    out = []
    for d in docs:
        parts = []
        parts.append(d)
        parts.append("!")
        out.append(llm(" ".join(parts)))
    return out


def results_by_item(docs):
    found = {}
    for d in docs:
        found[d] = llm(d)
    return found


def list_rebound(docs):
    out = []
    for d in docs:
        out = out + [llm(d)]
    return out


@pytest.mark.parametrize(
    "fn",
    [
        total_of_results,
        results_added_up,
        counted_apart,
        list_made_in_the_round,
        results_by_item,
        list_rebound,
    ],
)
def test_state_the_calls_do_not_read_keeps_the_rounds_at_once(fn) -> None:
    """Accumulators, counters and containers the round's calls never read carry nothing a recipe
    reads: the later rounds still go at once."""
    docs = [fresh() for _ in range(6)]
    fast = xcs.jit(fn)
    assert len(submitted(fast, fn, docs)) == 5
    assert fast.stats.served_in_trace >= 4 and llm.max_concurrency >= 4
    no_waste(fast)


# -- branches on the item --------------------------------------------------------------------------


def two_prompts(docs):
    out = []
    for d in docs:
        if len(d) > 3:  # noqa: SIM108 - two arms, each assigning the prompt
            prompt = "long " + d
        else:
            prompt = "short " + d
        out.append(llm(prompt))
    return out


def filtered_comprehension(docs):
    return [llm(d) for d in docs if d.strip()]


def both_tests(docs):
    out = []
    for d in docs:
        if d and d[0] != "#":
            out.append(llm(d))
    return out


@pytest.mark.parametrize(
    ("fn", "docs", "issued"),
    [
        (branch_on_item, ["a", "skip b", "c", "d", "skip e", "f"], 3),
        (two_prompts, ["abcd", "ab", "abcde", "x", "wxyz", "pq"], 2),
        (filtered_comprehension, ["a", "b", " ", "c", "", "d"], 3),
        (both_tests, ["a", "#b", "", "c", "d", "#e"], 2),
        # the inner loop's own rounds in the first document (2), the outer rounds alike (3 x 3), and
        # in the document that goes another way, its inner loop's rounds alike ("time of risk c")
        (inner_branch, ["a", "b", "risk c", "d", "e"], 12),
        # (that document's inner loop is left by break in its first round: nothing more)
        (inner_break, ["a", "b", "stop c", "d", "e"], 11),
    ],
    ids=["continue", "two-arms", "comprehension-filter", "and", "branch-inside", "break-inside"],
)
def test_rounds_that_take_the_first_round_s_branches_go_at_once(fn, docs, issued) -> None:
    """The first round branched on its item: each later round whose item takes every branch the same
    way (the recipes of the conditions, made again for its item) is issued at once; one that goes
    another way makes its calls in its turn, and since the arm it takes assigns nothing a later
    round reads before assigning it (a `continue`, `prompt = ...` in both arms, a `break` out of an
    inner loop), the rounds after it still go."""
    fast = xcs.jit(fn)
    made = submitted(fast, fn, docs)
    assert len(made) == issued, made
    assert fast.stats.served_in_trace >= issued - 3 and llm.max_concurrency >= 2
    no_waste(fast)


def stops_at_a_word(docs):
    out = []
    for d in docs:
        if d == "STOP":
            break
        out.append(llm(d))
    return out


def mode_switch(docs):
    mode = "a"
    out = []
    for d in docs:
        if d == "B":
            mode = "b"  # read by every round after it
        out.append(llm(mode + d))
    return out


def known_or_asked(docs, known):
    out = []
    for d in docs:
        answer = known.get(d)
        if answer is None:
            out.append(llm(d))
        else:
            out.append(answer)  # a call in the other arm: it may change what later rounds read
    return out


@pytest.mark.parametrize(
    ("fn", "docs", "extra", "issued"),
    [
        (stops_at_a_word, ["a", "b", "c", "STOP", "d", "e"], (), 2),
        (mode_switch, ["a", "c", "B", "d", "e"], (), 1),
        (known_or_asked, ["a", "b", "c", "d", "e"], ({"c": "C"},), 1),
    ],
    ids=["break", "assigns-a-local-read-later", "calls-in-the-other-arm"],
)
def test_rounds_after_one_that_may_leave_another_state_are_not_issued(fn, docs, extra, issued) -> None:
    """A round that goes another way through an arm that leaves the loop, assigns a local the later
    rounds read, or makes a call: the rounds before it went at once, and none after it is issued
    (the plain run never makes `d` and `e`'s calls after STOP)."""
    fast = xcs.jit(fn)
    made = submitted(fast, fn, docs, extra)
    assert len(made) == issued, made
    no_waste(fast)


def deduplicated(docs):
    seen = set()
    out = []
    for d in docs:
        if d in seen:
            continue
        seen.add(d)
        out.append(llm(d))
    return out


def test_a_branch_on_state_the_round_changes_is_not_predicted() -> None:
    """`d in seen` reads a set the round adds to: its recipe made again for a later item says nothing
    of that round's set, so nothing goes ahead (it would have issued the duplicate's call)."""
    fast = xcs.jit(deduplicated)
    assert submitted(fast, deduplicated, ["a", "b", "a", "c", "b", "d"]) == []
    assert fast.stats.served_in_trace == 0


# -- enumerate(), zip() and range() ----------------------------------------------------------------


def numbered(docs):
    out = []
    for i, d in enumerate(docs, start=1):
        out.append(llm(f"{i}. {d}"))
    return out


def paired(docs, styles):
    return [llm(f"{d} in {s} style") for d, s in zip(docs, styles, strict=True)]


def attempts(docs):
    return [llm(f"attempt {i} at {docs[0]}") for i in range(4)]


def by_index(docs):
    out = []
    for i in range(len(docs)):
        out.append(llm(docs[i]))
    return out


def each_with_the_first(docs):
    out = []
    for _, d in enumerate(docs):
        out.append(llm(d + docs[0]))  # a literal index: the same item in every round
    return out


@pytest.mark.parametrize(
    ("fn", "extra", "issued"),
    [
        (numbered, (), 5),
        (paired, (["short", "long", "plain", "dry", "wry", "fun"],), 5),
        (attempts, (), 3),
        (by_index, (), 5),
    ],
    ids=["enumerate", "zip", "range", "range-len-index"],
)
def test_loops_over_enumerate_zip_and_range_go_at_once(fn, extra, issued) -> None:
    """The round's item is a counter and paths into the sequences walked in lockstep: each later
    round's is made the same way (`handlers.iteration.round_item`) and put in the first's place."""
    fast = xcs.jit(fn)
    assert len(submitted(fast, fn, [fresh() for _ in range(6)], extra)) == issued
    assert fast.stats.served_in_trace >= issued - 1
    no_waste(fast)


def numbered_by_index(docs):
    out = []
    for i, d in enumerate(docs):
        out.append(llm(d + docs[i]))
    return out


def test_an_item_read_by_the_counter_is_not_predicted() -> None:
    """`docs[i]` with `i` enumerate()'s counter reads in round 0 the path `docs[0]`, which names no
    counter: made again for round k it would still read `docs[0]`.  Such a loop's rounds run in
    their turn.  (A range()'s item is a path into the range the recipes make again: `docs[i]` then
    names it, see `by_index`.)"""
    fast = xcs.jit(numbered_by_index)
    assert submitted(fast, numbered_by_index, [fresh() for _ in range(6)]) == []


def test_a_literal_index_is_the_same_item_in_every_round() -> None:
    fast = xcs.jit(each_with_the_first)
    assert len(submitted(fast, each_with_the_first, [fresh() for _ in range(6)])) == 5
    no_waste(fast)


def all_pairs(docs):
    out = []
    for a in docs:
        for b in docs:
            out.append(llm(a + b))
    return out


def test_loops_over_the_same_list_one_inside_the_other_are_not_predicted() -> None:
    """`for a in docs: for b in docs`: in the first round both items are the path `docs[0]`, so a
    round's recipe made again for another item of one loop would move the other's too (it issued
    `bb` for the round that makes `ba`).  Neither loop is predicted."""
    fast = xcs.jit(all_pairs)
    assert submitted(fast, all_pairs, [fresh() for _ in range(4)]) == []
    no_waste(fast)


def shrinks_after_a_change(docs, flag):
    if flag:
        docs.append("extra")  # (the list is now one the code changed: its ref is the glue's own)
    out = []
    for _ in docs:
        del docs[0]
        out.append(llm("a"))
    return out


def test_a_list_the_round_shrinks_is_not_predicted_even_after_an_earlier_change() -> None:
    """Found by the campaign: a list the code had changed before the loop reads as a container of
    its own, whose changes are not effects; the round then deleted from the list it walks, and the
    first call issued a round for every item, while the loop ran half as many (calls wasted)."""
    fast = xcs.jit(shrinks_after_a_change)
    assert submitted(fast, shrinks_after_a_change, [fresh() for _ in range(5)], (True,)) == []
    no_waste(fast)


# -- dicts and their views ---------------------------------------------------------------------------


def summaries_by_name(docs):
    out = {}
    for name, text in docs.items():
        out[name] = llm(f"Summarize {name}: {text}")
    return out


def by_key(docs):
    return [llm(f"{name}: {docs[name]}") for name in docs]


def by_value(docs):
    out = []
    for text in docs.values():
        out.append(llm(text))
    return out


def numbered_items(docs):
    return [llm(f"{i}. {name}={text}") for i, (name, text) in enumerate(docs.items())]


def by_name_in_another(docs, notes):
    return [llm(notes[name]) for name in docs.keys()]  # noqa: SIM118 - the view is what is walked


def named(n):
    return {f"doc{k}": fresh() for k in range(n)}


@pytest.mark.parametrize(
    ("fn", "extra"),
    [
        (summaries_by_name, ()),
        (by_key, ()),
        (by_value, ()),
        (numbered_items, ()),
        (by_name_in_another, ({f"doc{k}": f"note {k}" for k in range(6)},)),
    ],
    ids=["items", "keys", "values", "enumerate-items", "keys-into-another"],
)
def test_loops_over_a_dict_and_its_views_go_at_once(fn, extra) -> None:
    """A dict's iteration runs no user code and its order is fixed while it is not changed: round k's
    item is the k-th the dict (or `items()`, `keys()`, `values()`) yields, read by the recipes."""
    fast = xcs.jit(fn)
    assert len(submitted(fast, fn, named(6), extra)) == 5
    assert fast.stats.served_in_trace >= 4
    no_waste(fast)


def written_back(docs):
    for name, text in docs.items():
        docs[name] = llm(text)
    return docs


def next_rewritten(docs):
    names = list(docs)
    out = []
    for i, (_, text) in enumerate(docs.items()):
        if i + 1 < len(names):
            docs[names[i + 1]] = text + "!"  # the next round's item is another
        out.append(llm(text))
    return out


def _retitle(docs, name):  # not known to be pure: it changes the dict it is handed
    docs[name] = docs[name].upper()


def changed_by_a_helper(docs):
    names = list(docs)
    out = []
    for name in docs:
        out.append(llm(docs[name]))
        _retitle(docs, names[-1])
    return out


@pytest.mark.parametrize("fn", [written_back, next_rewritten, changed_by_a_helper])
def test_a_dict_the_round_changes_is_not_predicted(fn) -> None:
    """A round that changes the dict it walks (through its view too) may change the next round's
    item: nothing is issued ahead on the first call, and the replays of the plan (its loop seen
    changing the dict) issue nothing they would waste."""
    fast = xcs.jit(fn)
    assert submitted(fast, fn, named(6)) == []
    assert fast.stats.served_in_trace == 0
    docs = named(6)
    run_both_fresh(fn, fast, lambda: (dict(docs),), watch=[llm])
    no_waste(fast)


# -- calls of a round that read its earlier results ---------------------------------------------------


def summarize_then_refine(docs):
    out = []
    for d in docs:
        summary = llm(f"Summarize: {d}")
        out.append(llm(f"Refine: {summary.upper()}"))
    return out


def two_drafts_then_pick(docs):
    out = []
    for d in docs:
        a = llm(f"Draft A: {d}")
        b = llm(f"Draft B: {d}")
        out.append(llm(f"Pick: {a} or {b}"))
    return out


def refine_in_a_comprehension(docs):
    return [llm(f"Refine: {s}") for s in [llm(d) for d in docs]]


@pytest.mark.parametrize(
    ("fn", "issued"),
    [(summarize_then_refine, 10), (two_drafts_then_pick, 15)],
    ids=["summarize-refine", "two-then-pick"],
)
def test_a_round_whose_calls_read_its_results_goes_at_once(fn, issued) -> None:
    """Round k's first calls go once the second round starts; a call reading round k's results goes
    when they return (on the worker that made the last of them), before the run reaches round k."""
    fast = xcs.jit(fn)
    # (the run may take the round starting now's first call over before a worker starts it: then it
    # makes it, and the calls that read it, in their turn)
    assert issued - 2 <= len(submitted(fast, fn, [fresh() for _ in range(6)])) <= issued
    assert fast.stats.served_in_trace >= issued - 4
    no_waste(fast)


def test_a_chained_first_call_takes_about_two_rounds_per_step() -> None:
    docs = [fresh() for _ in range(8)]
    fast = xcs.jit(summarize_then_refine)
    start = time.perf_counter()
    run_both(summarize_then_refine, fast, docs, watch=[llm])
    # plain: 16 calls one after another; here round 0, then round 1 with every later round beside it
    assert time.perf_counter() - start < 8 * LATENCY + 16 * LATENCY
    assert llm.max_concurrency >= 7


def refined_unless_it_failed(docs):
    out = []
    for d in docs:
        try:
            summary = flaky(f"Summarize: {d}")
        except FakeLLMError:
            summary = "nothing"
        out.append(llm(f"Refine: {summary}"))
    return out


def refined_until_it_fails(docs):
    return [llm(f"Refine: {flaky(d)}") for d in docs]


def test_a_later_round_whose_first_call_raises_issues_nothing_that_reads_it() -> None:
    """Round 3's first call raises and the run goes on (`summary = "nothing"`): its refine is not
    issued ahead, and the run makes what the plain run makes, `Refine: nothing`."""
    docs = [fresh() for _ in range(6)]
    docs[3] = "BAD " + docs[3]
    fast = xcs.jit(refined_unless_it_failed)
    made = submitted(fast, refined_unless_it_failed, docs)
    assert len(made) >= 8 and ("Refine: nothing",) not in made
    no_waste(fast)


def test_a_later_round_that_raises_in_a_chain_raises_at_the_same_point() -> None:
    """`llm(f"Refine: {flaky(d)}")` with round 3's `flaky` raising: the first call raises there, like
    the plain one.  No refine of round 3 is issued; the later rounds' calls issued ahead were made for
    nothing and are counted in stats.wasted (see `test_a_round_that_raises_raises_at_the_same_point`)."""
    docs = [fresh() for _ in range(6)]
    docs[3] = "BAD " + docs[3]
    llm.reset()
    flaky.reset()
    expected = plain_outcome(refined_until_it_fails, (docs,), [llm, flaky])
    plain_calls = CallLog.snapshot(llm, flaky).counts
    llm.reset()
    flaky.reset()
    fast = xcs.jit(refined_until_it_fails)
    got = outcome(fast, docs)
    time.sleep(3 * LATENCY)  # calls issued ahead and still running have logged themselves
    assert got == expected and got[1] is FakeLLMError
    made = CallLog.snapshot(llm, flaky).counts
    assert not plain_calls - made
    assert sum((made - plain_calls).values()) == fast.stats.wasted
    assert not any("BAD" in str(key) for key in made - plain_calls)


# -- logging in the round -------------------------------------------------------------------------------

log = logging.getLogger("xcs_bc.tests.first_call")


def logged(docs):
    out = []
    for i, d in enumerate(docs):
        log.info("document %d: %s", i, d)
        out.append(llm(f"Summarize: {d}"))
        logging.debug("done with %s", d)
    return out


def timed_and_logged(docs):
    out = []
    for d in docs:
        t0 = time.perf_counter()
        out.append(llm(f"Summarize: {d}"))
        log.info("took %.1f ms", (time.perf_counter() - t0) * 1000)
    return out


def stamped(docs):
    return [llm(f"{d} at {time.time_ns()}") for d in docs]


def test_a_round_that_reads_a_clock_goes_at_once_and_a_call_that_reads_it_does_not() -> None:
    """A clock read changes nothing: timing a round keeps its calls at once.  Its value is the run's
    own: a prompt that reads it is never made again by a recipe, so that call runs in its turn."""
    fast = xcs.jit(timed_and_logged)
    assert len(submitted(fast, timed_and_logged, [fresh() for _ in range(6)])) == 5
    no_waste(fast)
    docs = [fresh() for _ in range(6)]
    fast = xcs.jit(stamped)
    llm.reset()
    result = fast(docs)
    assert [prompt for prompt, _ in llm.calls] == [p[len("llm(") : -1] for p in result]
    assert fast.stats.served_in_trace == 0 and fast.stats.wasted == 0


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.levelname} {record.getMessage()} {record.funcName}")


@contextlib.contextmanager
def _logging_to(kept: _Kept) -> Iterator[None]:
    log.addHandler(kept)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(kept)


def _first_call_logs_like_plain(kept: _Kept, docs: list[str]) -> tuple[Any, list[str]]:
    """The first call of a fresh jit of `logged` issues its 5 later rounds ahead and logs what the plain
    run logs; gives the jit and the plain run's lines."""
    logged(docs)
    plain_lines, kept.lines = kept.lines, []
    fast = xcs.jit(logged)
    assert len(submitted(fast, logged, docs)) == 5
    assert kept.lines == plain_lines * 3  # (`submitted` runs the plain function twice, then the jit)
    return fast, plain_lines


def test_a_round_that_logs_goes_at_once_and_logs_what_the_plain_run_logs() -> None:
    """A logger's methods write to its handlers, which no slow call reads back (like `print`): the
    rounds go ahead, and the real run still makes every logging call, in order, from its own frame."""
    kept = _Kept()
    with _logging_to(kept):
        fast, _ = _first_call_logs_like_plain(kept, [fresh() for _ in range(6)])
        no_waste(fast)


def warned(docs):
    out = []
    for d in docs:
        if len(d) > 3:
            warnings.warn(f"long document: {d}", stacklevel=1)
        out.append(llm(f"Summarize: {d}"))
    return out


def _warnings_of(fn, docs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn(docs)
    return [(str(w.message), w.category, w.filename, w.lineno) for w in caught]


def test_a_round_that_warns_goes_at_once_and_warns_where_the_plain_run_does() -> None:
    """`warnings.warn` writes to stderr (or raises, as a filter says), which no slow call reads back:
    the rounds go ahead (they went one at a time), and the real run still makes every warning, from
    its own line."""
    docs = [fresh() for _ in range(6)]
    plain = _warnings_of(warned, docs)
    assert len(plain) == 6
    fast = xcs.jit(warned)
    assert _warnings_of(fast, docs) == plain
    assert fast.stats.served_in_trace >= 4
    no_waste(fast)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert len(submitted(xcs.jit(warned), warned, [fresh() for _ in range(6)])) == 5


class _SlowKept(_Kept):
    """A handler that takes milliseconds (a file on a slow disk, a socket), keeping where each record
    says it was logged from and on which thread."""

    def emit(self, record: logging.LogRecord) -> None:
        time.sleep(0.003)
        self.lines.append(f"{record.getMessage()} {record.funcName}:{record.lineno} {record.threadName}")


def test_a_slow_log_handler_keeps_each_logging_call_in_the_frame_that_makes_it() -> None:
    """Logging reads its caller's frame (the function and line a record names): a logging call that
    takes milliseconds is no slow call to issue ahead or make through a dispatcher.  The first call and
    the replays log what the plain run logs, from the same lines, on the same thread, and the rounds'
    own calls still go ahead (nothing did when the first round's `log.info` was slow: the round then
    held a call that could not be issued)."""
    kept = _SlowKept()
    with _logging_to(kept):
        docs = [fresh() for _ in range(6)]
        fast, plain_lines = _first_call_logs_like_plain(kept, docs)
        kept.lines = []
        for _ in range(2):
            assert fast(list(docs)) == logged(list(docs))
        assert kept.lines == plain_lines * 4
        assert fast.stats.replays == 2 and fast.stats.served >= 10
        no_waste(fast)


class _Counting(logging.Logger):  # a logger of a class of its own may keep what it logs
    pass


def test_a_logger_of_a_class_of_its_own_keeps_the_rounds_one_at_a_time() -> None:
    own = _Counting("xcs_bc.tests.own")

    def each(docs):
        out = []
        for d in docs:
            own.info("doc %s", d)
            out.append(llm(d))
        return out

    fast = xcs.jit(each)
    assert submitted(fast, each, [fresh() for _ in range(6)]) == []


# -- helpers the function defines -----------------------------------------------------------------------


def helper_defined_here(docs):
    def prompt(d):
        return f"Summarize: {d}"

    return [llm(prompt(d)) for d in docs]


def lambda_defined_here(docs, style):
    ask = lambda d: f"Summarize in {style} style: {d}"  # noqa: E731 - the shape under test
    out = []
    for d in docs:
        out.append(llm(ask(d)))
    return out


@pytest.mark.parametrize(("fn", "extra"), [(helper_defined_here, ()), (lambda_defined_here, ("dry",))])
def test_a_helper_defined_before_the_loop_is_called_for_every_round(fn, extra) -> None:
    """A function the code made before the loop, whose closure holds what it held then, is the same
    in every round: each later round's prompt is made by calling it with that round's item."""
    fast = xcs.jit(fn)
    assert len(submitted(fast, fn, [fresh() for _ in range(6)], extra)) == 5
    no_waste(fast)


def closure_over_a_changing_local(docs):
    last = "start"

    def prompt(d):
        return f"{last} then {d}"

    out = []
    for d in docs:
        out.append(llm(prompt(d)))
        last = d
    return out


def helper_made_each_round(docs):
    out = []
    for d in docs:
        ask = lambda: f"Summarize: {d}"  # noqa: E731, B023 - the shape under test
        out.append(llm(ask()))
    return out


def helper_rebound_on_a_word(docs):
    def prompt(d):
        return f"Summarize: {d}"

    out = []
    for d in docs:
        if d == "switch":

            def prompt(d):
                return f"Shorten: {d}"

        out.append(llm(prompt(d)))
    return out


@pytest.mark.parametrize(
    ("fn", "docs"),
    [
        (closure_over_a_changing_local, None),
        (helper_made_each_round, None),
        (helper_rebound_on_a_word, ["a", "b", "switch", "c", "d", "e"]),
    ],
    ids=["closure-over-changing-local", "made-each-round", "rebound-on-a-word"],
)
def test_a_helper_whose_calls_may_change_from_round_to_round_issues_no_wrong_call(fn, docs) -> None:
    """Its closure reads a local the rounds assign, it is made anew each round, or a later round
    rebinds it: whatever the first call issues ahead is a call the plain run makes."""
    fast = xcs.jit(fn)
    submitted(fast, fn, docs or [fresh() for _ in range(6)])
    no_waste(fast)


# -- lists built in the function ------------------------------------------------------------------------

(judge,) = fakes("judge")
records = Tool("records", lambda prompt: {"text": f"record of {prompt}", "n": len(prompt)})


def ensemble(question):
    models = ["a", "b", "c", "d", "e", "f"]
    answers = {m: llm(question, model=m) for m in models}
    return judge(" | ".join(answers.values()))


def judged_candidates(question):
    candidates = [llm(f"{question}, try {i}") for i in range(6)]
    scores = [judge(f"Score: {c}") for c in candidates]
    return max(zip(scores, candidates, strict=True))


def prompts_listed(docs):
    prompts = [f"Summarize: {docs[0]}", f"Criticize: {docs[1]}", f"Title: {docs[2]}", f"Tag: {docs[3]}"]
    out = []
    for p in prompts:
        out.append(llm(p))
    return out


@pytest.mark.parametrize(
    ("fn", "issued"),
    [(ensemble, 5), (judged_candidates, 10), (prompts_listed, 3)],
    ids=["ensemble", "judge-candidates", "prompts"],
)
def test_a_loop_over_a_list_built_in_the_function_goes_at_once(fn, issued) -> None:
    """Round k's item is the list's k-th: the loop variable's ref (a copy of the first item's) is put
    in its place."""
    fast = xcs.jit(fn)
    arg = [fresh() for _ in range(6)] if fn is prompts_listed else fresh()
    assert len(submitted(fast, fn, arg, watch=[judge])) == issued
    no_waste(fast)


def joined_with_all(docs):
    parts = [d.upper() for d in docs]
    return [llm(p + " in " + "".join(parts)) for p in parts]


def with_the_first_model(question):
    models = ["a", "b", "c", "d", "e"]
    return [llm(question, model=m, reference=models[0]) for m in models]


def with_a_local_it_holds(question):
    a = llm(question + " a")
    candidates = [a, llm(question + " b"), llm(question + " c"), llm(question + " d")]
    return [judge(f"{c} against {a}") for c in candidates]


def a_field_of_each(question):
    found = [records(f"{question} {i}") for i in range(5)]
    return [llm(r["text"]) for r in found]


class _Found:
    def __init__(self, text: str) -> None:
        self.text = text


finder = Tool("finder", lambda prompt: _Found(f"found for {prompt}"))


def an_attribute_of_each(question):
    found = [finder(f"{question} {i}") for i in range(5)]
    out = []
    for r in found:
        out.append(llm(r.text))
    return out


def pairs_listed(question):
    pairs = [("a", 1), ("b", 2), ("c", 3), ("d", 4)]
    return [llm(f"{question} {name} {n}") for name, n in pairs]


@pytest.mark.parametrize(
    "fn",
    [
        joined_with_all,
        with_the_first_model,
        with_a_local_it_holds,
        a_field_of_each,
        an_attribute_of_each,
        pairs_listed,
    ],
)
def test_an_item_of_a_list_built_here_read_another_way_issues_no_wrong_call(fn) -> None:
    """The list's items are refs other values hold too: read through the list (`"".join(parts)`,
    `models[0]`), through another local (`a`), as a path (`r["text"]`) or unpacked from a tuple
    displayed here.  Whatever the first call issues is a call the plain run makes."""
    fast = xcs.jit(fn)
    arg = [fresh() for _ in range(6)] if fn is joined_with_all else fresh()
    submitted(fast, fn, arg, watch=[judge, records, finder])
    no_waste(fast)


# -- the rest of a round, after its calls -----------------------------------------------------------


def best_of(docs):
    best = None
    for d in docs:
        score = len(llm(d))
        if best is None or score > best[0]:
            best = (score, d)
    return best


def kept_if_good(docs):
    kept = []
    n = 0
    for d in docs:
        answer = llm(d)
        if "good" in answer:
            kept.append(d)
            n += 1
        elif not answer.strip().lower().startswith("llm"):
            print("odd", answer)
    return kept, n


def tallied(docs):
    counts = {}
    for d in docs:
        answer = llm(d)
        label = "yes" if "y" in answer else "no"
        counts[label] = counts.get(label, 0) + 1
    return counts


def kept_by_a_checksum(docs):
    kept = []
    for d in docs:
        verdict = llm(f"Relevant? {d}")
        if sum(map(ord, verdict)) % 2:  # (a pure built-in handed to map)
            kept.append(d)
    return kept


def summarized_and_flagged(docs):
    out = []
    flagged = 0
    for d in docs:
        out.append(llm(f"Summarize: {d}"))
        if d.endswith("!"):
            flagged += 1
    return out, flagged


@pytest.mark.parametrize(
    ("fn", "docs"),
    [
        (best_of, ["a", "bbb", "cc", "dddd", "e", "ff"]),
        (summarized_and_flagged, ["a", "b!", "c", "d!", "e"]),
        (kept_if_good, ["a", "good b", "c", "good d", "e"]),
        (tallied, ["a", "y", "b", "yy", "c"]),
        (kept_by_a_checksum, ["a", "b", "c", "d", "e"]),
    ],
    ids=["keeps-the-best", "counts-on-the-item", "keeps-the-good", "tallies", "hands-a-pure-function"],
)
def test_branches_on_results_after_the_round_s_calls_keep_the_rounds_at_once(fn, docs) -> None:
    """A round that branches on its results, or on its item, once its calls are made (a judge keeping
    the best, a filter, a tally) changes only what no code before its calls reads: every later round's
    calls go at once, whichever way each round then goes, and the first call equals the plain one."""
    fast = xcs.jit(fn)
    assert len(submitted(fast, fn, docs)) == len(docs) - 1
    assert fast.stats.served_in_trace >= len(docs) - 2 and llm.max_concurrency >= 3
    no_waste(fast)


def refined_unless_skipped(docs):
    out = []
    for d in docs:
        verdict = llm(f"Judge: {d}")
        if "skip" in verdict:
            continue
        out.append(llm(f"Refine: {verdict}"))
    return out


def expanded_if_good(docs):
    kept = []
    for d in docs:
        verdict = judge(d)
        if "good" in verdict:
            kept.append(llm(f"Expand: {d}"))
    return kept


class Assistant:
    """Two methods of one object, a round asking `judge` and, for some items, `expand`; and a cache
    of answers, looked up before a call and filled after it."""

    def __init__(self):
        self.mode = "short"
        self.answers = {}

    def judge(self, prompt):
        return judge(prompt)

    def judge_in_mode(self, d):
        return judge(f"[{self.mode}] {d}")

    def expand(self, d):
        return llm(f"Expand: {d}")

    def switch(self, mode):
        self.mode = mode

    def lookup(self, d):
        return judge(f"Look up {d}") and self.answers.get(d)

    def keep(self, d, answer):
        self.answers[d] = answer


ASSISTANT = Assistant()


def expanded_by_the_same_assistant(docs):
    kept = []
    for d in docs:
        if "good" in ASSISTANT.judge(d):
            kept.append(ASSISTANT.expand(d))
    return kept


@pytest.mark.parametrize(
    ("fn", "docs"),
    [
        (refined_unless_skipped, ["a", "skip b", "c", "skip d", "e", "f"]),
        (refined_unless_skipped, ["skip a", "b", "c", "skip d", "e", "f"]),
        (expanded_if_good, ["good a", "b", "good c", "d", "good e", "f"]),
        (expanded_by_the_same_assistant, ["good a", "b", "good c", "d", "good e", "f"]),
    ],
    ids=["same-callee", "same-callee-first-round-skipped", "another-callee", "another-method"],
)
def test_a_round_s_calls_before_a_branch_on_their_results_go_at_once(fn, docs) -> None:
    """`verdict = judge(d)`, then `if "good" in verdict: kept.append(llm(...))`: the calls before the
    branch go at once for every later round; those after it, which the branch decides, are made in
    their turn.  The first round called their callee, so what it changes was traced.  They went one
    round at a time."""
    fast = xcs.jit(fn)
    issued = submitted(fast, fn, docs, watch=(judge,))
    assert len(issued) == len(docs) - 1  # (the calls before the branch, one per later round)
    assert fast.stats.served_in_trace >= len(docs) - 2
    no_waste(fast)


def expanded_with_a_mode(docs):
    mode = "short"
    out = []
    for d in docs:
        verdict = judge(f"{mode}: {d}")
        if "long" in verdict:
            mode = llm(f"Mode after {d}")  # (what the next round's call reads)
        out.append(verdict)
    return out


def expanded_from_the_history(docs):
    history = [llm("Start")]  # (llm is a callee the run made slow calls of)
    out = []
    for d in docs:
        verdict = judge(f"{d} after {len(history)}")
        if "good" in verdict:
            out.append(llm(f"Expand: {d}", context=history))  # (a slow call may change what it is handed)
    return out


def expanded_from_the_history_inside(docs):
    history = [llm("Start")]
    out = []
    for d in docs:
        verdict = judge(f"{d} after {len(history)}")
        if "good" in verdict:
            out.append(llm(f"Expand: {d}", context=[history, d]))  # (the list inside what it is handed)
    return out


class Settings:
    mode = "short"


SETTINGS = Settings()


def judged_in_a_mode(d):
    return judge(f"[{SETTINGS.mode}] {d}")


def expanded_in_a_mode(d):
    SETTINGS.mode = d  # (state the calls before the branch read, not handed to them)
    return llm(f"Expand: {d}")


def expanded_and_switched(docs):
    SETTINGS.mode = "short"
    out = []
    for d in docs:
        if "good" in judged_in_a_mode(d):
            out.append(expanded_in_a_mode(d))
    return out


def switched_by_the_assistant(docs):
    ASSISTANT.mode = "short"
    out = []
    for d in docs:
        verdict = ASSISTANT.judge_in_mode(d)
        if "long" in verdict:
            ASSISTANT.switch("long")  # (a method of the object the run made slow calls on)
        out.append(verdict)
    return out


def answered_through_a_cache(docs):
    ASSISTANT.answers.clear()
    out = [llm("Intro")]
    for d in docs:
        answer = ASSISTANT.lookup(d)
        if not answer:
            answer = llm(f"Answer: {d}")
            ASSISTANT.keep(d, answer)  # (what a later round's lookup reads)
        out.append(answer)
    return out


def expanded_in_a_closure(docs):
    mode = "short"

    def expand(d):
        nonlocal mode
        mode = d
        return llm(f"Expand: {d}")

    out = [expand("warm")]
    mode = "short"
    for d in docs:
        if "good" in judge(f"{mode}: {d}"):
            out.append(expand(d))
    return out


def replied_and_escalated(docs):
    escalated = []

    def reply(prompt):
        if "urgent" in prompt:
            escalated.append(prompt)  # (a list of the function around it, which the calls read)
        return llm(prompt)

    out = []
    for d in docs:
        if "good" in judge(f"{d} ({len(escalated)} escalated)"):
            out.append(reply(f"Reply to {d}"))
    return out


class Bot:
    """A callable object that changes its own settings for some prompts."""

    def __init__(self):
        self.settings = {"tone": "neutral"}

    def __call__(self, prompt):
        if "urgent" in prompt:
            self.settings["tone"] = "formal"
        return llm(prompt)


def replied_by_a_bot(docs):
    bot = Bot()
    out = []
    for d in docs:
        if "good" in judge(f"({bot.settings['tone']}) {d}"):
            out.append(bot(f"Reply to {d}"))
    return out


def noted(prompt, sink=None):
    """A slow call that adds its prompt to the list it is handed."""
    if sink is not None:
        sink.append(prompt)
    return llm(prompt)


def noted_through_a_box(docs):
    history = []
    box = {"h": history}
    for d in docs:
        verdict = noted(f"{d} after {len(history)}")
        if "good" in verdict:
            noted(f"Noted {d}", box["h"])  # (the list the calls before the branch read, by an item)
    return history


def printed_to_a_sink(docs):
    lines = []
    sink = types.SimpleNamespace(write=lines.append, flush=lambda: None)
    for d in docs:
        verdict = judge(f"{d} after {len(lines)}")
        if "good" in verdict:
            print(verdict, file=sink)  # (print calls the sink's write: lines.append)
    return lines


def judged_with_notes(d):
    return judge(f"{d} ({len(NOTES)} notes)")  # (reads the global list the helper below changes)


def expanded_and_noted(d):
    NOTES.append(d)
    return llm(f"Expand: {d}")


def noted_after_the_branch(docs):
    NOTES.clear()
    out = []
    for d in docs:
        if "good" in judged_with_notes(d):
            out.append(expanded_and_noted(d))
    return out


def expanded_until_stopped(docs):
    out = []
    for d in docs:
        verdict = judge(d)
        if "stop" in verdict:
            out.append(llm(f"Why stop at {d}?"))
            break
    return out


@pytest.mark.parametrize(
    ("fn", "docs"),
    [
        (expanded_if_good, ["a", "good b", "c", "d"]),
        (expanded_with_a_mode, ["a", "long b", "c", "d"]),
        (expanded_from_the_history, ["a", "good b", "c", "good d"]),
        (expanded_from_the_history_inside, ["a", "good b", "c", "good d"]),
        (expanded_and_switched, ["good a", "b", "good c", "d", "e"]),
        (switched_by_the_assistant, ["a", "long b", "c", "d", "e"]),
        (answered_through_a_cache, ["a", "b", "c", "b", "c", "b"]),
        (expanded_in_a_closure, ["good a", "b", "good c", "d"]),
        (printed_to_a_sink, ["good a", "b", "good c", "d"]),
        (noted_through_a_box, ["a", "good b", "c", "d"]),
        (replied_and_escalated, ["good a", "good urgent b", "c", "d", "e"]),
        (replied_by_a_bot, ["good a", "good urgent b", "c", "d", "e"]),
        (noted_after_the_branch, ["good a", "b", "good c", "d"]),
        (expanded_until_stopped, ["a", "stop b", "c", "d"]),
    ],
    ids=["not-called-in-the-first-round", "assigns-what-the-calls-read", "hands-what-the-calls-read",
         "hands-it-inside-a-list", "a-helper-storing-an-attribute", "a-method-storing-an-attribute",
         "a-cache-filled-after-the-branch", "a-closure-s-cell", "a-sink-s-write", "handed-through-an-item", "a-closure-s-list", "a-callable-object-s-dict",
         "a-helper-changing-a-global",
         "leaves-the-loop"],
)  # fmt: skip
def test_a_branch_whose_calls_may_change_the_next_round_keeps_the_rounds_one_at_a_time(fn, docs) -> None:
    """After the branch: a call the first round's tail did not make (it may change anything), a
    result assigned to what the next round's call reads, a list the calls read handed to a slow call
    (which may change it), a helper or a method storing what a later call reads (an attribute, a
    cache's entry, a closure's cell), `print` to an object whose `write` changes a list, or a
    `break`: the next round's call may differ, or never be made.  Nothing goes ahead, and the first
    call is the plain one (the hunts that found the helper, method, cache, cell, sink and item
    shapes saw them served stale answers or make extra calls)."""
    fast = xcs.jit(fn)
    assert submitted(fast, fn, docs, watch=(judge,)) == []
    assert fast.stats.served_in_trace == 0 and fast.stats.wasted == 0


def grouped_by_answer(docs):
    groups = {}
    for d in docs:
        label = llm(d)
        groups.setdefault(label.split("(")[0], []).append(d)
    return groups


def grouped_by_item(docs):
    groups = {}
    for d in docs:
        groups.setdefault(d[:1], []).append(llm(d))
    return groups


def grouped_in_a_defaultdict(docs):
    groups = collections.defaultdict(list)
    for d in docs:
        label = llm(d)
        groups[label[:5]].append(d)
    return dict(groups)


def counted_in_a_defaultdict(docs):
    seen = collections.defaultdict(list)
    for d in docs:
        label = llm(d)
        seen[label].append(len(d))
    return sorted(seen.items())


def tallied_in_a_counter(docs):
    votes = collections.Counter()
    for d in docs:
        votes[llm(d)[:5]] += 1
    return votes.most_common(2)


def tallied_in_a_defaultdict(docs):
    votes = collections.defaultdict(int)
    for d in docs:
        votes[llm(d)[:5]] += 1
    return sorted(votes.items())


def kept_in_order(docs):
    firsts = collections.OrderedDict()
    for d in docs:
        firsts.setdefault(llm(d)[:5], d)
    return list(firsts.items())


def last_three_kept(docs):
    last = collections.deque(maxlen=3)
    for d in docs:
        last.append(llm(d))
    return list(last)


def newest_first(docs):
    recent = collections.deque()
    for d in docs:
        recent.appendleft(llm(d))
    return list(recent)


@pytest.mark.parametrize(
    "fn",
    [
        grouped_by_answer,
        grouped_by_item,
        grouped_in_a_defaultdict,
        counted_in_a_defaultdict,
        tallied_in_a_counter,
        tallied_in_a_defaultdict,
        kept_in_order,
        last_three_kept,
        newest_first,
    ],
)
def test_a_round_that_groups_in_a_dict_goes_at_once(fn) -> None:
    """`groups.setdefault(key, []).append(x)`, `groups[key].append(x)` on a defaultdict: on 3.10 and
    3.11 no event gives the list `.append` is called on; it is read back from the dict, so that every
    version knows the append changes only a list the function made, and the later rounds go at once.
    A tally in a `Counter()` or a `defaultdict(int)` made in the function (`votes[answer] += 1`) is the
    function's own container as a `{}` is: the rounds go at once (they went one at a time), and so is a
    `deque` it appends to without reading it (`deque(maxlen=3).append(llm(d))`)."""
    fast = xcs.jit(fn)
    docs = ["a1", "b1", "a2", "c1", "b2"]
    assert len(submitted(fast, fn, docs)) == len(docs) - 1
    assert fast.stats.served_in_trace >= len(docs) - 2 and llm.max_concurrency >= 3
    no_waste(fast)


class _Key:
    """A dict key compared by a user's `__eq__`, which counts its calls."""

    compared = 0

    def __init__(self, text):
        self.text = text

    def __hash__(self):
        return hash(self.text)

    def __eq__(self, other):
        _Key.compared += 1
        return isinstance(other, _Key | str) and self.text == str(other)

    def __str__(self):
        return self.text


def grouped_beside_user_keys(docs, groups):
    for d in docs:
        groups.setdefault(d[:1], []).append(llm(d))
    return sorted(str(key) for key in groups)


def test_reading_setdefault_back_never_runs_a_key_s_eq() -> None:
    """Read back from a dict holding a user's key, setdefault's result could run that key's `__eq__` one
    more time than the plain run does: such a dict is not looked into."""

    def run(call):
        _Key.compared = 0
        got = call(["a1", "b1", "a2"], {_Key("a"): [], _Key("z"): []})
        return got, _Key.compared

    plain = run(grouped_beside_user_keys)
    assert plain[1] > 0  # ("a" hashes like _Key("a"): the plain run compares them)
    assert run(xcs.jit(grouped_beside_user_keys)) == plain


def prefix_set_by_a_result(docs):
    prefix = ""
    out = []
    for d in docs:
        answer = llm(prefix + d)
        if "switch" in answer:
            prefix = "switched: "
        out.append(answer)
    return out


def seen_after_a_result(docs):
    seen = set()
    out = []
    for d in docs:
        if d in seen:
            continue
        answer = llm(d)
        if "keep" in answer:
            seen.add(d)
        out.append(answer)
    return out


def noted_through_another_name(docs):
    notes = []
    view = notes
    out = []
    for d in docs:
        answer = llm(f"{len(view)} {d}")
        if "note" in answer:
            notes.append(d)
        out.append(answer)
    return out


def _louder(style):  # changes what it is handed: not known to be pure
    style["tone"] = "loud"


def tone_changed_by_a_helper(docs):
    style = {"tone": "plain"}
    out = []
    for d in docs:
        answer = llm(f"{style['tone']}: {d}")
        if "switch" in answer:
            _louder(style)
        out.append(answer)
    return out


def stops_on_a_parse_error(docs):
    out = []
    for d in docs:
        answer = llm(d)
        try:
            out.append(int(answer[-2]))
        except ValueError:
            break
    return out


def prefix_set_later(docs):
    prefix = ""
    n = 0
    out = []
    for d in docs:
        out.append(llm(prefix + d))
        n += 1  # noqa: SIM113 - a count the rounds carry, on purpose
        if n == 3:
            prefix = "late: "
    return out


def noted_later_through_another_name(docs):
    notes = []
    view = notes
    n = 0
    out = []
    for d in docs:
        out.append(llm(f"{len(view)} {d}"))
        n += 1  # noqa: SIM113 - a count the rounds carry, on purpose
        if n == 3:
            notes.append(d)
    return out


def tone_changed_later_by_a_helper(docs):
    style = {"tone": "plain"}
    n = 0
    out = []
    for d in docs:
        out.append(llm(f"{style['tone']}: {d}"))
        n += 1  # noqa: SIM113 - a count the rounds carry, on purpose
        if n == 3:
            _louder(style)
    return out


@pytest.mark.parametrize(
    ("fn", "docs"),
    [
        (prefix_set_later, ["a", "b", "c", "d", "e"]),
        (noted_later_through_another_name, ["a", "b", "c", "d", "e"]),
        (tone_changed_later_by_a_helper, ["a", "b", "c", "d", "e"]),
        (prefix_set_by_a_result, ["a", "b", "switch c", "d", "e"]),
        (seen_after_a_result, ["a", "keep b", "keep b", "c", "d"]),
        (noted_through_another_name, ["a", "b", "note c", "d", "e"]),
        (tone_changed_by_a_helper, ["a", "b", "switch c", "d", "e"]),
        (stops_on_a_parse_error, ["1", "2", "x", "4", "5"]),
        (breaks_on_a_result, ["a", "b", "stop c", "d", "e"]),
    ],
    ids=[
        "assigns-what-calls-read",
        "changes-an-alias",
        "helper",
        "on-a-result-assigns-what-calls-read",
        "on-a-result-adds-to-what-a-test-reads",
        "on-a-result-changes-an-alias",
        "on-a-result-helper",
        "handler",
        "break",
    ],
)
def test_the_rest_of_a_round_that_may_change_what_later_calls_read_keeps_them_in_turn(fn, docs) -> None:
    """The rest of the round (after a branch on what the round carries, or on a result) may assign a
    local its calls read, change a container they read (by another name too), call a helper that
    changes what they read, or leave the loop (a handler of the round's own that breaks, a `break`):
    in the first round it did not, in a later round it does.  Nothing is issued ahead (the calls the
    rounds after that one would have made differ)."""
    fast = xcs.jit(fn)
    assert submitted(fast, fn, docs) == []
    assert fast.stats.served_in_trace == 0
    no_waste(fast)


def grown_after_a_result(docs):
    todo = list(docs)
    out = []
    for d in todo:
        answer = llm(d)
        if "more" in answer and len(todo) < 8:
            todo.append(d + " again")
        out.append(answer)
    return out


def shrunk_after_the_call(docs):
    todo = list(docs)
    out = []
    n = 0
    for d in todo:
        out.append(llm(d))
        n += 1  # noqa: SIM113 - a count the rounds carry, on purpose
        if n == 2:
            todo.pop()
    return out


@pytest.mark.parametrize(
    ("fn", "docs"),
    [(grown_after_a_result, ["a", "b", "more c", "d"]), (shrunk_after_the_call, ["a", "b", "c", "d", "e"])],
    ids=["grows", "shrinks"],
)
def test_the_rest_of_a_round_that_may_change_the_list_walked_keeps_the_rounds_in_turn(fn, docs) -> None:
    """The rest of a later round adds to the list the loop walks, or takes from it: the rounds issued
    ahead would not be the plain run's.  Nothing is issued ahead."""
    fast = xcs.jit(fn)
    assert submitted(fast, fn, docs) == []
    no_waste(fast)


# -- objects the rounds change that a callee reads ------------------------------------------------

HISTORY: list[str] = []


def logged_globally(docs):
    HISTORY.clear()
    out = []
    for d in docs:
        answer = llm(d)
        HISTORY.append(answer)
        out.append(answer)
    return out, list(HISTORY)


def test_a_round_that_adds_to_a_global_list_no_call_reads_goes_at_once() -> None:
    """`METRICS.append(row)` after the round's call: the list is the module's, but no call of the
    round reads it, so the later rounds go at once, and the list ends as in the plain run."""
    docs = [fresh() for _ in range(6)]
    fast = xcs.jit(logged_globally)
    assert len(submitted(fast, logged_globally, docs)) == 5
    assert fast.stats.served_in_trace >= 4 and llm.max_concurrency >= 4
    no_waste(fast)


def _asked_with_history(prompt):
    return llm(f"{prompt} after {len(HISTORY)}")


class _Recorder:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def __call__(self, prompt: str) -> str:
        return llm(f"{prompt} #{len(self.log)}")


RECORDER = _Recorder(HISTORY)


def history_read_by_the_callee(docs):
    HISTORY.clear()
    out = []
    for d in docs:
        out.append(_asked_with_history(d))
        HISTORY.append(d)
    return out


def history_held_by_the_callee(docs):
    HISTORY.clear()
    out = []
    for d in docs:
        out.append(RECORDER(d))
        HISTORY.append(d)
    return out


def notes_held_by_a_local_callee(docs):
    notes: list[str] = []
    ask = _Recorder(notes)
    out = []
    for d in docs:
        out.append(ask(d))
        notes.append(d)
    return out


@pytest.mark.parametrize(
    "fn", [history_read_by_the_callee, history_held_by_the_callee, notes_held_by_a_local_callee]
)
def test_a_round_that_changes_what_its_callee_reads_keeps_the_rounds_in_turn(fn) -> None:
    """The round adds to a list its callee reads: through its module's globals, or as an object it
    holds (a client keeping the list).  A later round's call issued ahead would run before the rounds
    before it added to the list: nothing is issued ahead."""
    fast = xcs.jit(fn)
    assert submitted(fast, fn, [fresh() for _ in range(5)]) == []
    no_waste(fast)


# -- a generator expression its consumer takes whole ------------------------------------------------


def joined_generator(docs):
    return "\n".join(llm(f"Summarize: {d}") for d in docs)


def listed_generator(docs):
    return list(llm(d) for d in docs)


def summed_generator(docs):
    return sum(len(llm(d)) for d in docs)


def sorted_generator(docs):
    return sorted(llm(d.upper()) for d in docs if d)


@pytest.mark.parametrize("fn", [joined_generator, listed_generator, summed_generator, sorted_generator])
def test_a_generator_expression_its_consumer_takes_whole_goes_at_once_from_its_second_round(fn) -> None:
    fast = first_call(fn, [fresh() for _ in range(6)])
    assert fast.stats.served_in_trace == 4, fast.explain()  # (rounds 3 to 6: the second is the next call)
    assert llm.max_concurrency > 1
    no_waste(fast)


def any_generator(docs):
    return any("stop" in llm(d) for d in docs)


def next_generator(docs):
    return next(answer for answer in (llm(d) for d in docs) if "stop" in answer)


def keyed_generator(docs):
    return max((llm(d) for d in docs), key=len)  # (a key runs between the rounds)


def extended_generator(docs):
    out = ["header"]
    out.extend(llm(f"{len(out)}: {d}") for d in docs)  # (each answer is in `out` before the next call)
    return out


def looped_generator(docs):
    out = []
    for answer in (llm(d) for d in docs):
        if "stop" in answer:
            break
        out.append(answer)
    return out


@pytest.mark.parametrize(
    "fn", [any_generator, next_generator, keyed_generator, extended_generator, looped_generator]
)
def test_a_generator_expression_its_consumer_may_stop_or_read_keeps_its_rounds_one_at_a_time(fn) -> None:
    fast = first_call(fn, ["a", "b", "stop c", "d", "e"])
    assert fast.stats.served_in_trace == 0, fast.explain()
    assert llm.max_concurrency == 1
    no_waste(fast)

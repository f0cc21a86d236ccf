"""The first call of a jitted function: traced, with the later rounds of its loops issued ahead.

Each test calls a fresh jitted function once (so that call is the trace) and compares it with the
plain function: the same result or exception and the same calls (`likeplain`), and, where the
first round predicts the others, the later rounds' calls at once.  Where a round may go another
way than the first (a branch, a list changed in place, a consumer that may stop), nothing goes
ahead and the first call runs one call after another, as before.
"""

from __future__ import annotations

import time
from unittest import mock

import pytest

import xcs_bc as xcs
from likeplain import LATENCY, Tool, fakes, fresh, no_waste, outcome, plain_outcome, run_both, run_both_fresh
from xcs_bc.execute import first
from xcs_bc.testing import CallLog, FakeLLM, FakeLLMError

(llm,) = fakes("llm")
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
        (branch_on_item, ["a", "skip b", "c", "d", "skip e"]),
        (shrinking, ["a", "b", "c", "d", "e", "f"]),
        (stops_early, ["a", "b", "yes", "c", "d"]),
        (helper_in_the_loop, ["a", "b", "c", "d"]),
        (breaks_on_a_result, ["a", "b", "stop c", "d", "e"]),
    ],
    ids=["branch-on-item", "list-shrinks", "any-stops-early", "helper-not-pure", "break-on-result"],
)
def test_rounds_that_may_go_another_way_are_not_predicted(fn, docs) -> None:
    """The first round took a branch, changed the list it walks, ran in a generator its consumer may
    stop, or called a function not known to be pure: nothing goes ahead, the calls are the plain ones."""
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
    with mock.patch.object(first, "_with_item", lambda refs, item, state, k, sequence: refs):
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


@pytest.mark.parametrize(
    ("fn", "docs"),
    [
        (inner_first_only, ["a", "b", "c", "d", "e"]),
        (by_part, ["a|b|c", "d|e|f", "g|h", "i|j|k|l", "m|n|o"]),
        (inner_branch, ["a", "b", "risk c", "d", "e"]),
        (inner_break, ["a", "b", "stop c", "d", "e"]),
    ],
    ids=["left-by-break", "its-own-list", "branch-inside", "break-inside"],
)
def test_an_inner_loop_that_may_go_another_way_keeps_the_outer_rounds_one_at_a_time(fn, docs) -> None:
    """An inner loop over a list each round makes, or a round whose inner loop may branch or stop:
    the outer rounds are not predicted from the first (the inner loop's own later rounds still may
    go at once); results and calls are the plain ones, nothing is wasted."""
    fast = xcs.jit(fn)
    llm.reset()
    run_both_fresh_list(fn, fast, docs)
    assert llm.max_concurrency <= 3, fast.explain()  # never a later document's calls at once
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

"""A slow call whose callee holds, or that is handed, an object the code changes in place between
calls: issued ahead, it would see the object as it was before the change, and its result would not
be the plain run's.  Such a call runs in its turn (`CallFacts.stale`); a call on another object keeps
going ahead."""

from __future__ import annotations

import xcs_bc as xcs
from likeplain import fakes, fresh, no_waste, run_both_fresh

(llm,) = fakes("llm")


class Agent:
    def __init__(self) -> None:
        self.log: list[str] = []

    def ask(self, d: str) -> str:
        return llm(f"{d} after {len(self.log)} notes")

    def run(self, docs: list[str]) -> list[str]:
        out = []
        for d in docs:
            self.log.append(d)  # the code changes what `self.ask` reads
            out.append(self.ask(d))
        return out


class Doc:
    def __init__(self, text: str) -> None:
        self.text = text
        self.seen = False


def describe(doc: Doc) -> str:
    return llm(f"{doc.text} (seen: {doc.seen})")


def mark_then_describe(docs: list[Doc]) -> list[str]:
    out = []
    for doc in docs:
        doc.seen = True
        out.append(describe(doc))
    return out


def closure_over_notes(docs: list[str]) -> list[str]:
    notes: list[str] = []

    def ask(d: str) -> str:
        return llm(f"{d} after {len(notes)} notes")

    out = []
    for d in docs:
        notes.append(d)
        out.append(ask(d))
    return out


def _check(fn, make, fast) -> None:
    """`make(texts)`: the arguments for these texts, made anew for each run (the code changes them)."""
    for _ in range(3):  # the trace, then replays on fresh inputs
        texts = [fresh() for _ in range(4)]
        run_both_fresh(fn, fast, lambda texts=texts: make(texts), watch=[llm])
    no_waste(fast)


def test_a_method_reading_what_the_code_changed_in_its_object_runs_in_its_turn() -> None:
    agent, twin = Agent(), Agent()
    fast = xcs.jit(agent.run)
    for _ in range(3):
        docs = [fresh() for _ in range(4)]
        agent.log.clear()
        twin.log.clear()
        llm.reset()
        expected = twin.run(docs)
        plain_calls = sorted(prompt for prompt, _ in llm.calls)
        llm.reset()
        assert fast(docs) == expected  # (it was served `... after 1 notes` four times)
        assert sorted(prompt for prompt, _ in llm.calls) == plain_calls
    assert "the code changed in place before the call" in fast.explain()
    no_waste(fast)


def test_a_call_handed_an_object_the_code_changed_runs_in_its_turn() -> None:
    fast = xcs.jit(mark_then_describe)
    _check(mark_then_describe, lambda texts: ([Doc(text) for text in texts],), fast)


def test_a_closure_reading_a_list_the_code_grows_runs_in_its_turn() -> None:
    fast = xcs.jit(closure_over_notes)
    _check(closure_over_notes, lambda texts: (list(texts),), fast)


class Counting:
    """A counter on one object, the calls on another: the calls still go ahead."""

    def __init__(self) -> None:
        self.requests = 0

    def run(self, docs: list[str]) -> list[str]:
        out = []
        for d in docs:
            self.requests += 1
            out.append(llm(f"Summarize: {d}"))
        return out


def test_a_counter_the_calls_do_not_hold_keeps_them_ahead() -> None:
    counting = Counting()
    fast = xcs.jit(counting.run)
    docs = [fresh() for _ in range(4)]
    run_both_fresh(counting.run, fast, lambda: (list(docs),), watch=[llm])
    docs = [fresh() for _ in range(4)]
    run_both_fresh(counting.run, fast, lambda: (list(docs),), watch=[llm])
    assert fast.stats.served == 4
    no_waste(fast)

"""A slow call whose callee holds, or that is handed, an object the code changes in place between
calls: issued ahead, it would see the object as it was before the change, and its result would not
be the plain run's.  Such a call runs in its turn (`CallFacts.stale`); a call on another object keeps
going ahead."""

from __future__ import annotations

import functools
from typing import Any
from unittest import mock

import xcs_bc as xcs
from likeplain import LATENCY, fakes, fresh, no_waste, run_both_fresh
from xcs_bc.testing import FakeLLM

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


class NotesReader(FakeLLM):
    """A slow callable object that answers with how many notes the list it holds has."""

    def __init__(self, notes: list[str]) -> None:
        super().__init__("reader", LATENCY)
        self.notes = notes

    def render(self, prompt: object, kwargs: dict[str, Any]) -> str:
        return f"{prompt} after {len(self.notes)} notes"


def object_holding_notes(docs: list[str]) -> list[str]:
    notes: list[str] = []
    reader = NotesReader(notes)
    out = []
    for d in docs:
        out.append(reader(d))
        notes.append(d)  # what the reader of the next round reads
    return out


def _notes_of(fake: FakeLLM, prompt: object, kwargs: dict[str, Any]) -> str:
    return f"{prompt} after {len(kwargs['notes'])} notes"


def partial_over_notes(docs: list[str]) -> list[str]:
    notes: list[str] = []
    ask = functools.partial(llm, notes=notes)
    out = []
    for d in docs:
        out.append(ask(d))
        notes.append(d)
    return out


def _runs(fn, lengths=(3, 2, 4, 3)) -> list[tuple[list[str], list[str]]]:
    """(plain result, jitted result) for the trace and replays on inputs of these lengths (the traced
    one again, and others: a shape-general plan)."""
    fast = xcs.jit(fn)
    runs = []
    for n in lengths:
        docs = [fresh() for _ in range(n)]
        runs.append((fn(list(docs)), fast(list(docs))))
    no_waste(fast)
    return runs


def test_an_object_made_in_the_function_holding_a_list_the_code_grows_reads_it_in_its_turn() -> None:
    """`reader = Reader(notes)`, then `reader(d)` and `notes.append(d)` in each round: the list is one
    the code built, which a recipe follows item by item when it is handed to a call, but the reader
    holds the very object: a call issued ahead would read it as it was before earlier rounds grew it."""
    for plain, jitted in _runs(object_holding_notes):
        assert jitted == plain
        assert [answer.rsplit(" after ", 1)[1] for answer in plain] == [
            f"{k} notes" for k in range(len(plain))
        ]


def test_a_partial_over_a_list_the_code_grows_reads_it_in_its_turn() -> None:
    with mock.patch.object(type(llm), "render", _notes_of):
        for plain, jitted in _runs(partial_over_notes):
            assert jitted == plain


HISTORY: list[str] = []


class HistoryReader(FakeLLM):
    """A slow callable object whose `__call__` reads a module's list."""

    def __call__(self, prompt: object, **kwargs: Any) -> str:
        return super().__call__(f"{prompt} after {len(HISTORY)}")


history_reader = HistoryReader("history_reader", LATENCY)


def remembered(docs: list[str]) -> list[str]:
    out = []
    for d in docs:
        out.append(history_reader(d))
        HISTORY.append(d)
    return out


def test_a_callable_object_reading_a_global_the_loop_grows_runs_in_its_turn() -> None:
    """The code `__call__` runs is read for the module state it reads, as a function's or a method's
    is, on the first call (each round changes HISTORY) and on replays."""
    for _ in range(3):  # a fresh jit: its first call
        _like_plain_from_an_empty_history(remembered, xcs.jit(remembered), 5)
    fast = xcs.jit(remembered)
    for n in (3, 2, 4, 3):  # the trace, then replays
        _like_plain_from_an_empty_history(remembered, fast, n)
    no_waste(fast)


def _like_plain_from_an_empty_history(fn: Any, fast: Any, n: int) -> None:
    """`fn` and `fast` on the same `n` fresh documents, each run from an empty HISTORY: one result."""
    docs = [fresh() for _ in range(n)]
    HISTORY.clear()
    plain = fn(list(docs))
    HISTORY.clear()
    assert fast(list(docs)) == plain


def _with_history(prompt: object) -> str:
    return f"{prompt} after {len(HISTORY)}"


class Responder(FakeLLM):
    """A slow callable object answering through a function it holds (`self.respond`)."""

    def __init__(self, name: str, respond: Any) -> None:
        super().__init__(name, LATENCY)
        self.respond = respond

    def render(self, prompt: object, kwargs: dict[str, Any]) -> str:
        return self.respond(prompt)


responder = Responder("responder", _with_history)


def remembered_through_a_handler(docs: list[str]) -> list[str]:
    out = []
    for d in docs:
        out.append(responder(d))
        HISTORY.append(d)
    return out


def test_a_callable_object_reading_a_global_through_its_methods_or_a_function_it_holds() -> None:
    """`__call__` reaching the global through `self.render(...)` and `self.respond(...)`: calls through
    the object, which a walk of its code alone does not follow."""
    fast = xcs.jit(remembered_through_a_handler)
    for n in (3, 2, 4):
        _like_plain_from_an_empty_history(remembered_through_a_handler, fast, n)
    no_waste(fast)


CALL_LOG: list[str] = []


class GlobalLogger(FakeLLM):
    """A slow callable object that logs its calls in a module's list, as test fakes and clients do."""

    def __call__(self, prompt: object, **kwargs: Any) -> str:
        CALL_LOG.append(str(prompt))
        return super().__call__(prompt, **kwargs)


global_logger = GlobalLogger("global_logger", LATENCY)


def logged_map(docs: list[str]) -> list[str]:
    return [global_logger(f"Summarize: {d}") for d in docs]


def test_a_callable_object_logging_its_calls_in_a_global_still_goes_ahead() -> None:
    """What a callable object's `__call__` changes is the call's own effect (its log's order is the
    order the calls run in, as a client's own counters are): only what it reads keeps it in its turn."""
    fast = xcs.jit(logged_map)
    for _ in range(2):
        docs = [fresh() for _ in range(4)]
        run_both_fresh(logged_map, fast, lambda docs=docs: (list(docs),), watch=[global_logger])
    assert global_logger.max_concurrency >= 3  # (the replay's four calls at once)
    no_waste(fast)

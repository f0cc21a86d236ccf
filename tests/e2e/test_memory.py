"""Memory: what a jitted function keeps of the calls it traced and replayed.

A plan keeps what its guards and recipes need, never the arguments, results or exceptions of the
trace it was made from: a 50 MB document passed to a traced call is freed once the call has
returned, although up to `cache_size` plans live as long as the function.  Checked with weak
references to objects of classes that support them (the tests collect garbage first, so that
only what is still referenced counts).
"""

from __future__ import annotations

import gc
import time
import weakref
from typing import Any

import xcs_bc as xcs

MIN_MS = 1.0
LATENCY = 0.005


class Document:
    """An argument with a large payload."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.payload = bytearray(1_000_000)


class Reply:
    """A slow call's result."""

    def __init__(self, text: str) -> None:
        self.text = text


class Service:
    """A slow callee that remembers (weakly) every reply it made."""

    def __init__(self) -> None:
        self.replies: list[weakref.ref[Reply]] = []

    def __call__(self, prompt: str) -> Reply:
        time.sleep(LATENCY)
        reply = Reply(f"re: {prompt}")
        self.replies.append(weakref.ref(reply))
        return reply


service = Service()


def summarize(doc: Document, notes: list[str]) -> str:
    first = service(doc.text)
    second = service(f"{doc.text}!")
    extra = [service(note).text for note in notes]
    return first.text + second.text + "".join(extra)


def _alive(refs: list[weakref.ref[Any]]) -> int:
    gc.collect()
    return sum(ref() is not None for ref in refs)


def test_the_plan_keeps_no_argument_or_result_of_the_traced_call() -> None:
    fast = xcs.jit(summarize, min_call_ms=MIN_MS)
    service.replies.clear()
    doc = Document("first")
    assert fast(doc, ["a", "b"]) == "re: firstre: first!re: are: b"
    seen = weakref.ref(doc)
    del doc
    assert fast.stats.traces == 1
    assert len(service.replies) == 4
    assert _alive([seen]) == 0
    assert _alive(service.replies) == 0
    assert "plan 0: 4 slow calls" in fast.explain()  # the plan was made, and is kept


def test_replays_and_many_plans_keep_no_argument_or_result() -> None:
    fast = xcs.jit(summarize, min_call_ms=MIN_MS, cache_size=4)
    service.replies.clear()
    docs: list[weakref.ref[Any]] = []
    for round_ in range(3):
        for notes in (["a"], ["a", "b"], []):  # three shapes: traced, then replayed
            doc = Document(f"doc {round_}")
            expected = f"re: doc {round_}re: doc {round_}!" + "".join(f"re: {n}" for n in notes)
            assert fast(doc, notes) == expected
            docs.append(weakref.ref(doc))
            del doc
    assert fast.stats.replays >= 3
    assert _alive(docs) == 0
    assert _alive(service.replies) == 0


def test_a_guard_keeps_only_what_it_compares_with() -> None:
    fast = xcs.jit(summarize, min_call_ms=MIN_MS)
    doc = Document("typed")
    fast(doc, ["a", "b"])
    seen = weakref.ref(doc)
    del doc
    explained = fast.explain()
    assert "guard: type(doc) is Document" in explained
    assert _alive([seen]) == 0


def test_a_traced_call_that_raised_keeps_no_frame_alive() -> None:
    def failing(doc: Document) -> str:
        reply = service(doc.text)
        if reply.text:
            raise ValueError("no")
        return reply.text

    fast = xcs.jit(failing, min_call_ms=MIN_MS)
    doc = Document("boom")
    seen = weakref.ref(doc)
    try:
        fast(doc)
    except ValueError:
        pass
    del doc
    assert _alive([seen]) == 0


def test_a_trace_and_a_capture_leave_no_cyclic_garbage() -> None:
    """The builder, its frames and the session let go of each other when they finish: a trace of a
    thousand calls leaves (almost) nothing for the cyclic collector (it left some 11,000 objects,
    so that the next allocation-heavy code paid a long collection)."""
    from xcs_bc.testing import FakeLLM

    llm = FakeLLM("llm", 0.0)

    def answer(docs: list[str]) -> str:
        return llm(" ".join([llm(d) for d in docs]))

    docs = [f"d{k}" for k in range(1000)]
    gc.collect()
    fast = xcs.jit(answer, min_call_ms=0.0)
    fast(docs)
    assert fast.stats.traces == 1
    after_trace = gc.collect()
    with xcs.capture(min_call_ms=0.0) as cap:
        llm(" ".join([llm(d) for d in docs]))
    assert [op.name for op in cap.graph.operations].count("llm") == 1001
    after_capture = gc.collect()
    assert after_trace < 500 and after_capture < 500, (after_trace, after_capture)

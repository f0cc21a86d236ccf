"""An attribute store changes one attribute: the object's other attributes read as they were.

`self.requests += 1` (a metrics counter) before `self.client.complete(...)` leaves `self.client`
as it was, so the calls after the store are planned as if it had not run.  Only where the store
can set nothing else: a class's own `__setattr__`, a property or another data descriptor, or a
`__getattr__` / `__getattribute__` that could compute one attribute from another keep the whole
object changed.  Each test compares results and calls with the plain run (`likeplain`) while the
object's state changes between calls, and checks that nothing was wasted or mispredicted.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

import xcs_bc as xcs
from likeplain import LATENCY, no_waste, run_both_fresh
from xcs_bc.testing import FakeLLM

llm = FakeLLM("llm", LATENCY)
other = FakeLLM("other", LATENCY)


class Counting:
    """Counts its requests, and sends them with its client."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.requests = 0
        self.last = ""

    def summarize_all(self, docs: list[str]) -> list[str]:
        out = []
        for doc in docs:
            self.requests += 1
            self.last = doc
            out.append(self.client(f"Summarize {doc}"))
        return out

    def reset(self) -> None:
        self.requests, self.last = 0, ""

    def report(self, docs: list[str]) -> str:
        parts = self.summarize_all(docs)
        return self.client(f"{self.requests} requests, last {self.last}: {' '.join(parts)}")


def test_a_counter_on_self_leaves_the_client_as_it_was_and_the_calls_go_at_once() -> None:
    service = Counting(llm)
    fast = xcs.jit(service.summarize_all, min_call_ms=10)
    for docs in (["a", "b", "c"], ["d", "e", "f"], ["g", "h"]):
        run_both_fresh(service.summarize_all, fast, lambda docs=docs: (list(docs),), watch=[llm])
    llm.reset()
    fast(["x", "y", "z"])
    assert llm.max_concurrency == 3, fast.explain()
    no_waste(fast)


def test_the_attributes_a_store_set_are_read_after_it() -> None:
    service = Counting(llm)
    fast = xcs.jit(service.report, min_call_ms=10)
    for docs in (["a", "b"], ["c", "d"], ["e"], ["f", "g", "h"]):

        def fresh(docs: list[str] = docs) -> tuple[list[str]]:
            service.reset()  # each run counts from 0, plainly and jitted
            return (list(docs),)

        run_both_fresh(service.report, fast, fresh, watch=[llm])
    no_waste(fast)


class Rerouting:
    """A property whose setter changes another attribute: the client."""

    def __init__(self) -> None:
        self.client = llm
        self._mode = "fast"

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        self._mode = value
        self.client = other if value == "careful" else llm

    def answer(self, q: str) -> str:
        self.mode = "careful" if "?" in q else "fast"
        return self.client(q)


class Hooked:
    """A `__setattr__` of its own that changes another attribute."""

    def __init__(self) -> None:
        self.client = llm
        self.tries = 0

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name == "tries" and value > 1:
            object.__setattr__(self, "client", other)

    def reset(self) -> None:
        object.__setattr__(self, "tries", 0)
        object.__setattr__(self, "client", llm)

    def answer(self, q: str) -> str:
        self.tries += 1
        return self.client(q)


class Computed:
    """`__getattr__` computes the client from another attribute."""

    def __init__(self) -> None:
        self.careful = False

    def __getattr__(self, name: str) -> Any:
        if name == "client":
            return other if self.careful else llm
        raise AttributeError(name)

    def answer(self, q: str) -> str:
        self.careful = "?" in q
        return self.client(q)


@pytest.mark.parametrize("make", [Rerouting, Computed], ids=["property", "__getattr__"])
def test_a_store_that_may_set_more_keeps_the_whole_object_changed(make: Any) -> None:
    obj = make()
    fast = xcs.jit(obj.answer, min_call_ms=10)
    for q in ["a", "b", "c?", "d", "e?"]:

        def fresh(q: str = q) -> tuple[str]:
            obj.__init__()  # each run starts on the first client: the store in the run picks another
            return (q,)

        run_both_fresh(obj.answer, fast, fresh, watch=[llm, other])
    no_waste(fast)
    if make is Rerouting:  # (the reason names the store)
        assert "the last change before the call: the code at test_attribute_stores.py:" in fast.explain()


def test_a_store_through_a_setattr_of_the_class_keeps_the_whole_object_changed() -> None:
    hooked = Hooked()
    fast = xcs.jit(hooked.answer, min_call_ms=10)
    for tries in (0, 0, 1, 0, 1):  # the second try goes to the other client

        def fresh(tries: int = tries) -> tuple[str]:
            hooked.reset()
            object.__setattr__(hooked, "tries", tries)
            return ("q",)

        run_both_fresh(hooked.answer, fast, fresh, watch=[llm, other])
    no_waste(fast)


class WithCallbacks:
    """Callbacks kept on the object that read it: a closure and a `partial` over it."""

    def __init__(self) -> None:
        self.tone = "plain"
        self.by_closure = self._closure()
        self.by_partial = functools.partial(WithCallbacks.ask, self)

    def _closure(self) -> Any:
        owner = self

        def ask(q: str) -> str:
            return str(llm(f"{owner.tone}: {q}"))

        return ask

    def ask(self, q: str) -> str:
        return str(llm(f"{self.tone}: {q}"))

    def answer(self, q: str) -> tuple[str, str, str]:
        context = str(llm(f"context {q}"))  # (the callbacks would go meanwhile, before the store)
        self.tone = "careful" if "?" in q else "plain"
        return context, self.by_closure(q), self.by_partial(q)


def test_a_callback_that_reaches_the_object_reads_the_attributes_set_before_it() -> None:
    obj = WithCallbacks()
    fast = xcs.jit(obj.answer, min_call_ms=10)
    for q in ["a", "b", "c?", "d", "e?"]:

        def fresh(q: str = q) -> tuple[str]:
            obj.tone = "plain"
            return (q,)

        run_both_fresh(obj.answer, fast, fresh, watch=[llm])
    no_waste(fast)

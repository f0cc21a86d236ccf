"""Effect classes of glue calls, and safe peeking at values (no user code runs)."""

from __future__ import annotations

import collections
import functools
import inspect
import json
import logging
import time
from typing import Any

import pytest

import pipelines as P
from xcs_bc import MISSING
from xcs_bc.build import purity
from xcs_bc.build.purity import Effect, classify, is_immutable, module_state, reaches
from xcs_bc.ir.values import peek_attr, peek_item


@pytest.mark.parametrize(
    ("callee", "effect"),
    [
        (len, Effect.PURE),
        (json.dumps, Effect.PURE),
        ("a,b".split, Effect.PURE),
        (", ".join, Effect.PURE),
        (str.format, Effect.PURE),
        ([].append, Effect.MUTATES_INPUTS),
        ({}.update, Effect.MUTATES_INPUTS),
        ({}.get, Effect.PURE),
        (open, Effect.UNKNOWN),
        (P.build_prompt, Effect.PURE),
        (P.remember, Effect.UNKNOWN),  # changes a global list
        (P.summarize_twice, Effect.UNKNOWN),  # calls a callable object not known to be pure
        (P.llm, Effect.UNKNOWN),
        (time.perf_counter, Effect.CLOCK),
        (time.time, Effect.CLOCK),
        (time.sleep, Effect.UNKNOWN),
        (logging.getLogger("xcs_bc.tests").info, Effect.PURE),  # writes where no slow call reads
        (logging.warning, Effect.PURE),
        (logging.LoggerAdapter(logging.getLogger("xcs_bc.tests"), {}).info, Effect.UNKNOWN),
        (logging.getLogger("xcs_bc.tests").addHandler, Effect.UNKNOWN),
    ],
)
def test_classify(callee: object, effect: Effect) -> None:
    assert classify(callee) is effect


def test_helpers_that_store_outside_their_locals_are_not_pure() -> None:
    class Box:
        value = 0

    def set_attr(box: Box) -> int:
        box.value = 1
        return 1

    def uses_closure() -> str:
        return prefix + "x"

    prefix = "p"
    assert classify(set_attr) is Effect.UNKNOWN
    # a closure variable is read like a global: classified by what the cell holds now (rebinding it is
    # honoured on the next question, see test_purity_rebinding.py)
    assert classify(uses_closure) is Effect.PURE
    prefix = []  # type: ignore[assignment]
    assert classify(uses_closure) is Effect.UNKNOWN  # a mutable object anyone holding it may change


def _apply(fn, x):  # type: ignore[no-untyped-def]
    return fn(x)


def _first_handler(handlers, x):  # type: ignore[no-untyped-def]
    return handlers[0](x)


def _run_with_keywords(obj, x):  # type: ignore[no-untyped-def]
    return obj.run(x, k=1)  # (LOAD_ATTR, not LOAD_METHOD, on 3.10)


def _pure_shapes(items, text):  # type: ignore[no-untyped-def]
    cleaned = [item.strip().lower() for item in items]
    return json.dumps({"n": len(cleaned), "t": text.upper()}, sort_keys=True) + " ".join(sorted(cleaned))


@pytest.mark.parametrize("helper", [_apply, _first_handler, _run_with_keywords])
def test_a_helper_calling_what_it_is_handed_is_not_pure(helper: object) -> None:
    """Its callable is none of the names the scan checks: it may do anything, on every version."""
    assert classify(helper) is Effect.UNKNOWN


def test_a_helper_calling_builtins_methods_and_module_functions_stays_pure() -> None:
    assert classify(_pure_shapes) is Effect.PURE


@pytest.mark.parametrize(
    ("value", "immutable"),
    [("s", True), (1, True), (None, True), ((1, "a"), True), ((1, []), False), ([], False), ({}, False)],
)
def test_is_immutable(value: object, immutable: bool) -> None:
    assert is_immutable(value) is immutable


def test_peek_reads_plain_data_and_never_runs_user_code() -> None:
    calls: list[str] = []

    class Record:
        __slots__ = ("title", "_body")

        def __init__(self) -> None:
            self.title = "t"
            self._body = "b"

        @property
        def body(self) -> str:
            calls.append("body")
            return self._body

        def method(self) -> str:
            return "m"

    class Lazy:
        def __getattr__(self, name: str) -> str:
            calls.append(name)
            return name

    record = Record()
    assert peek_attr(record, "title") == "t"
    assert peek_attr(record, "body") is MISSING
    assert peek_attr(record, "method")() == "m"
    assert peek_attr(Lazy(), "anything") is MISSING
    assert peek_attr(P.Doc("x", "y"), "body") == "y"
    assert peek_attr(json, "dumps") is json.dumps
    assert calls == []
    assert peek_item([1, 2], 1) == 2 and peek_item({"a": 1}, "a") == 1
    assert peek_item({"a": 1}, "b") is MISSING

    class Tricky(dict):  # type: ignore[type-arg]
        def __missing__(self, key: str) -> str:
            calls.append(key)
            return key

    assert peek_item(Tricky(), "k") is MISSING and calls == []


class _Agent:
    def __init__(self) -> None:
        self.notes: list[str] = []
        self.index: dict[str, int] = {}

    def gather(self, topic: str) -> None:
        self.notes = [topic]

    def gather_through_a_helper(self, topic: str) -> None:
        self._save([topic])

    def _save(self, notes: list[str]) -> None:
        self.notes = notes

    def report(self, topic: str) -> str:
        return topic + "; ".join(self.notes)

    def add(self, topic: str) -> None:
        self.notes.append(topic)

    def remember(self, topic: str) -> None:
        self.index[topic] = len(self.notes)

    def local_work(self, topic: str) -> list[str]:
        out = []
        out.append(topic)  # a local list: not the object's state
        return out

    def __call__(self, topic: str) -> None:
        self.notes = [topic]


def test_a_method_that_sets_attributes_of_its_object_is_seen() -> None:
    from xcs_bc.build.purity import sets_attributes

    agent = _Agent()
    assert sets_attributes(agent.gather) and sets_attributes(agent.gather_through_a_helper)
    assert sets_attributes(agent.add) and sets_attributes(agent.remember) and sets_attributes(agent)
    assert not sets_attributes(agent.report) and not sets_attributes(agent.local_work)
    assert not sets_attributes(len) and not sets_attributes(str.upper) and not sets_attributes(_Agent)


def _chain_of_helpers(n: int) -> dict[str, object]:
    """A namespace where `f0` reads `CONFIG` and calls `f1` ... calls `f{n-1}`, which loads `TARGET`."""
    source = "def f0(x):\n    return CONFIG.get(x, f1(x))\n"
    source += "\n".join(f"def f{i}(x):\n    return f{i + 1}(x)" for i in range(1, n - 1))
    source += f"\ndef f{n - 1}(x):\n    return TARGET(x)"
    namespace: dict[str, object] = {"TARGET": len, "CONFIG": {}}
    exec(source, namespace)
    return namespace


def test_reaches_follows_helpers_through_globals_and_says_yes_past_its_bound() -> None:
    near = _chain_of_helpers(10)
    assert reaches(near["f0"], len)
    assert not reaches(near["f0"], print)
    far = _chain_of_helpers(100)  # (more code than the walk reads: it cannot rule the target out)
    assert reaches(far["f0"], print)


def test_module_state_reads_helpers_transitively_and_assumes_every_change_past_its_bound() -> None:
    near = module_state(_chain_of_helpers(10)["f0"])
    assert [name for _, name in near.reads] == ["CONFIG"]
    assert near.writes == ()
    far = module_state(_chain_of_helpers(100)["f0"])  # (code it did not read may change CONFIG)
    assert [name for _, name in far.writes] == ["CONFIG"]


@pytest.mark.parametrize(
    ("callee", "args", "kwnames", "empty"),
    [
        (collections.Counter, (), (), True),
        (collections.OrderedDict, (), (), True),
        (collections.defaultdict, (), (), True),
        (collections.defaultdict, (list,), (), True),
        (collections.defaultdict, (int,), (), True),
        (collections.deque, (3,), ("maxlen",), True),
        (collections.Counter, ("abca",), (), False),  # (counts what it is handed)
        (collections.defaultdict, (lambda: 0,), (), False),  # (a factory of the user's)
        (collections.deque, ([1, 2],), (), False),
        (collections.deque, ("3",), ("maxlen",), False),
        (dict, (), (), False),  # (pure already: see classify)
    ],
)
def test_new_empty_containers_of_the_standard_library_are_told(
    callee: Any, args: tuple[Any, ...], kwnames: tuple[str, ...], empty: bool
) -> None:
    assert purity.makes_empty_container(callee, args, kwnames) is empty


class _Wraps:
    __wrapped__ = len  # (a class attribute)


class _Guarded:
    @property
    def __wrapped__(self) -> Any:  # a data descriptor: an instance's own entry does not shadow it
        raise AssertionError("no property runs")


def _guarded() -> _Guarded:
    obj = _Guarded()
    obj.__dict__["__wrapped__"] = len
    return obj


def _own() -> object:
    obj = P.FakeLLM("own", 0)
    obj.__wrapped__ = len  # type: ignore[attr-defined]
    return obj


@pytest.mark.parametrize(
    "value",
    [
        functools.lru_cache(maxsize=None)(len),
        functools.wraps(len)(lambda x: x),
        _Wraps,
        _Wraps(),
        _guarded(),
        _own(),
        P.FakeLLM("plain", 0),
        logging,
        len,
        "text",
    ],
    ids=lambda value: type(value).__name__,
)
def test_wrapped_is_what_getattr_static_finds(value: Any) -> None:
    try:
        expected = inspect.getattr_static(value, "__wrapped__")
    except AttributeError:
        expected = MISSING
    assert purity._wrapped(value) is expected

"""A cached purity classification never goes stale: rebinding what a helper reads is honoured.

A helper's classification depends on the globals, builtins, closure cells, module attributes,
class attributes and `__code__` of the helpers it calls.  Rebinding any of them to something
impure must make the next question answer UNKNOWN, or a recipe would run impure code ahead of
its turn.  The last test checks exactly that through `xcs.jit`.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any

import pytest

import xcs_bc as xcs
from xcs_bc.build import purity
from xcs_bc.build.purity import Effect, classify, sets_attributes
from xcs_bc.testing import CallLog, slow

THIS = sys.modules[__name__]
LATENCY = 0.03
EVENTS: list[tuple[str, str]] = []  # side effects, in the order they happened


def style(text: str) -> str:
    return text.upper()


def recording_style(text: str) -> str:
    EVENTS.append(("style", text))
    return text.upper()


def fmt(text: str) -> str:
    return style(text) + "!"


def outer_fmt(text: str) -> str:
    return "<" + fmt(text) + ">"  # a helper of a helper: fmt calls style


def measure(text: str) -> int:
    return len(text)


def dump(value: object) -> str:
    return codec.dumps(value)


codec = types.ModuleType("codec")
codec.dumps = str  # type: ignore[attr-defined]


def test_a_rebound_global_is_honoured_on_the_next_call(monkeypatch: pytest.MonkeyPatch) -> None:
    assert classify(fmt) is Effect.PURE
    monkeypatch.setattr(THIS, "style", recording_style)
    assert classify(fmt) is Effect.UNKNOWN
    monkeypatch.setattr(THIS, "style", lambda text: text.lower())
    assert classify(fmt) is Effect.PURE


def test_a_rebound_global_of_a_helper_of_a_helper_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    assert classify(outer_fmt) is Effect.PURE
    assert classify(fmt) is Effect.PURE  # cached on its own too
    monkeypatch.setattr(THIS, "style", recording_style)
    assert classify(outer_fmt) is Effect.UNKNOWN
    monkeypatch.undo()
    assert classify(outer_fmt) is Effect.PURE


def test_a_global_shadowing_a_builtin_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    assert classify(measure) is Effect.PURE
    monkeypatch.setattr(THIS, "len", lambda text: EVENTS.append(("len", text)) or 0, raising=False)
    assert classify(measure) is Effect.UNKNOWN
    monkeypatch.undo()
    assert classify(measure) is Effect.PURE


def test_a_rebound_module_attribute_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    assert classify(dump) is Effect.PURE
    monkeypatch.setattr(codec, "dumps", recording_style)
    assert classify(dump) is Effect.UNKNOWN
    monkeypatch.undo()
    assert classify(dump) is Effect.PURE


def test_a_helper_given_impure_code_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    def shout(text: str) -> str:
        return text.upper()

    def helper(text: str) -> str:
        return shout(text)

    assert classify(helper) is Effect.PURE
    monkeypatch.setattr(shout, "__code__", recording_style.__code__)  # same function object
    assert classify(helper) is Effect.UNKNOWN


def _closure_pair() -> tuple[Callable[[str], str], Callable[[Callable[[str], str]], None]]:
    """A helper calling closure variable `style_cell`, and a setter rebinding it (`nonlocal`)."""
    style_cell: Callable[[str], str] = str.upper

    def helper(text: str) -> str:
        return style_cell(text)

    def rebind(new: Callable[[str], str]) -> None:
        nonlocal style_cell
        style_cell = new

    return helper, rebind


def test_a_rebound_closure_cell_is_honoured() -> None:
    helper, rebind = _closure_pair()
    assert classify(helper) is Effect.PURE
    rebind(recording_style)
    assert classify(helper) is Effect.UNKNOWN
    rebind(style)
    assert classify(helper) is Effect.PURE


def test_a_closure_cell_of_a_helper_of_a_helper_is_honoured() -> None:
    inner, rebind = _closure_pair()

    def helper(text: str) -> str:
        return "<" + inner(text) + ">"

    assert classify(helper) is Effect.PURE
    rebind(recording_style)
    assert classify(helper) is Effect.UNKNOWN


def test_a_cell_filled_later_is_honoured() -> None:
    def helper(text: str) -> str:
        return later(text)

    assert classify(helper) is Effect.UNKNOWN  # `later` is not bound yet: an empty cell
    later = style
    assert classify(helper) is Effect.PURE
    assert later is style


def test_functions_of_one_code_with_different_cells_are_classified_each() -> None:
    pure_helper, _ = _closure_pair()
    impure_helper, rebind = _closure_pair()
    rebind(recording_style)
    for _ in range(2):  # alternating: each answer is checked against its own cells
        assert classify(pure_helper) is Effect.PURE
        assert classify(impure_helper) is Effect.UNKNOWN


def test_an_unchanged_classification_is_not_recomputed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert classify(outer_fmt) is Effect.PURE
    read: list[object] = []
    real = purity.dis.get_instructions

    def counting(code: Any, *args: Any, **kwargs: Any) -> Any:
        read.append(code)
        return real(code, *args, **kwargs)

    monkeypatch.setattr(purity.dis, "get_instructions", counting)
    for _ in range(3):
        assert classify(outer_fmt) is Effect.PURE
    assert read == []  # served from the cache: only identities were compared
    monkeypatch.setattr(THIS, "style", recording_style)
    assert classify(outer_fmt) is Effect.UNKNOWN
    assert read  # classified afresh


class _Notebook:
    def __init__(self) -> None:
        self.notes: list[str] = []

    def _keep(self, note: str) -> str:
        return note.strip()

    def write(self, note: str) -> str:
        return self._keep(note)


def _storing_keep(self: _Notebook, note: str) -> str:
    self.notes = [note]
    return note


def test_sets_attributes_honours_a_rebound_method(monkeypatch: pytest.MonkeyPatch) -> None:
    book = _Notebook()
    assert not sets_attributes(book.write)
    monkeypatch.setattr(_Notebook, "_keep", _storing_keep)
    assert sets_attributes(book.write)  # write calls self._keep, which now stores on self
    monkeypatch.undo()
    assert not sets_attributes(book.write)


# -- end to end: a recipe never runs a helper that became impure ahead of its turn ---------------


@slow(LATENCY)
def llm(prompt: str) -> str:
    EVENTS.append(("llm", prompt))
    return f"<{prompt}>"


def answer(topic: str) -> tuple[str, str]:
    intro = llm(f"intro {topic}")
    detail = llm(fmt(topic))  # independent of intro: its recipe computes fmt(topic) ahead
    return intro, detail


def _run(fn: Callable[[str], tuple[str, str]], topic: str) -> tuple[object, CallLog, list[tuple[str, str]]]:
    EVENTS.clear()
    llm.reset()  # type: ignore[attr-defined]
    result = fn(topic)
    return result, CallLog.snapshot(llm), list(EVENTS)


def test_jit_does_not_run_a_helper_ahead_once_its_global_became_impure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fast = xcs.jit(answer, min_call_ms=10.0)
    for topic in ("trace", "replay"):
        expected, plain_calls, _ = _run(answer, topic)
        got, jit_calls, _ = _run(fast, topic)
        assert got == expected and jit_calls == plain_calls
    assert fast.stats.traces == 1 and fast.stats.replays == 1
    assert fast.stats.served == 2  # with a pure style, both calls were issued ahead

    monkeypatch.setattr(THIS, "style", recording_style)
    for topic in ("impure", "again"):
        expected, plain_calls, plain_events = _run(answer, topic)
        assert plain_events == [("llm", f"intro {topic}"), ("style", topic), ("llm", f"{topic.upper()}!")]
        got, jit_calls, jit_events = _run(fast, topic)
        assert got == expected and jit_calls == plain_calls
        assert jit_events == plain_events  # a recipe running fmt ahead would put style first
    assert fast.stats.traces == 1  # the same plan: only the recipe's helper is refused

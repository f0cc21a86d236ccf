"""A long loop of glue runs its later rounds unobserved (`build.skipping`): the jitted run still
behaves like the plain one, whatever those rounds do, and a round that does what only observed
code may do (a slow call, a Python function) ends the trace instead of being missed."""

from __future__ import annotations

import itertools
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import xcs_bc as xcs
from likeplain import fakes, run_both_fresh
from xcs_bc.build import skipping
from xcs_bc.observe import hooks

llm, helper_llm = fakes("llm", "helper_llm")
WATCH = [llm, helper_llm]
_round = itertools.count()
TALLY: dict[str, int] = {}


@pytest.fixture
def quiets(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many loops ran rounds unobserved (`Session.quiet` calls), per test; no loop is kept
    observed in full by an earlier test's trace (tests share functions)."""
    seen: list[int] = []
    monkeypatch.setattr(skipping, "_OBSERVED_IN_FULL", weakref.WeakKeyDictionary())
    original = hooks.Session.quiet

    def counting(self: hooks.Session, *args: Any) -> None:
        seen.append(1)
        original(self, *args)

    monkeypatch.setattr(hooks.Session, "quiet", counting)
    yield seen


def words(n: int, *, at: dict[int, str] | None = None) -> list[str]:
    """n words no earlier run used, with `at[i]` put at index i."""
    k = next(_round)
    out = [f"w{(i * 7 + k) % 97}x{k}." for i in range(n)]
    for i, word in (at or {}).items():
        out[i] = word
    return out


def same(items: list[Any]) -> Callable[[], tuple[Any, ...]]:
    """Arguments for the plain run and the jitted run: a copy of `items` each."""
    return lambda: (list(items),)


def docs(count: int, n: int = 100, **kw: Any) -> Callable[[], tuple[Any, ...]]:
    return same([" ".join(words(n, **kw)) for _ in range(count)])


def check(fn: Callable[..., Any], make: Callable[[], tuple[Any, ...]], calls: int = 3) -> Any:
    """`fn` jitted, called `calls` times on fresh inputs made by `make`, each like the plain run."""
    fast = xcs.jit(fn)
    for _ in range(calls):
        run_both_fresh(fn, fast, make(), watch=WATCH)
    return fast


# -- what the unobserved rounds compute reaches later calls, never a stale value -------------------


def counted(texts: list[str]) -> list[str]:
    out = []
    for text in texts:
        total, longest, shouted = 0, "", []
        for w in text.split():
            total += len(w)
            if len(w) > len(longest):
                longest = w
            shouted.append(w.upper())
        out.append(llm(f"{total} {longest} {shouted[-1]} {len(shouted)}"))
    return out


def test_values_the_unobserved_rounds_made_reach_the_calls_after_them(quiets: list[int]) -> None:
    fast = check(counted, lambda: docs(3))
    assert quiets, "the 100-word loops ran every round observed"
    assert fast.stats.traces >= 1 and fast.stats.mispredictions == 0, fast.explain()


def comprehension_inside(texts: list[str]) -> list[str]:
    out = []
    for text in texts:
        parts = 0
        for w in text.split():
            pieces = [p.strip("x") for p in w.split("x")]
            parts += len(pieces)
        out.append(llm(f"{text[:8]} {parts}"))
    return out


def test_a_comprehension_inside_the_unobserved_rounds(quiets: list[int]) -> None:
    check(comprehension_inside, lambda: docs(2))
    assert quiets


def tally(texts: list[str]) -> list[str]:
    out = []
    for text in texts:
        for w in text.split()[:80]:
            TALLY[w[:2]] = TALLY.get(w[:2], 0) + 1
        out.append(report(text[:6]))
    return out


def report(prefix: str) -> str:
    """A slow helper reading the global TALLY, which the loop before it changed in place."""
    return helper_llm(f"{prefix} {sorted(TALLY.items())[:3]}")


def test_a_global_the_unobserved_rounds_changed_is_read_after_them(quiets: list[int]) -> None:
    def fresh() -> Callable[[], tuple[Any, ...]]:
        made = docs(3)

        def make() -> tuple[Any, ...]:
            TALLY.clear()
            return made()

        return make

    fast = check(tally, fresh)
    assert quiets
    assert fast.stats.wasted == 0, fast.explain()


# -- how the loop is left ------------------------------------------------------------------------


def first_stop(texts: list[str]) -> list[str]:
    out = []
    for text in texts:
        found = "none"
        for w in text.split():
            if w.startswith("stop"):
                found = w
                break
        out.append(llm(f"{text[:5]} {found}"))
    return out


def test_a_break_in_an_unobserved_round(quiets: list[int]) -> None:
    check(first_stop, lambda: same([" ".join(words(100, at={70: "stop7"})), " ".join(words(90))]))
    assert quiets


def returns_inside(items: list[str]) -> str:
    for w in items:
        if w == "ask":
            return llm(f"asked after {items[0]}")
    return llm(f"none in {items[0]}")


@pytest.mark.parametrize("at", [{75: "ask"}, {}])
def test_a_return_in_an_unobserved_round(quiets: list[int], at: dict[int, str]) -> None:
    check(returns_inside, lambda: same(words(100, at=at)))
    assert quiets


def parses(items: list[str]) -> str:
    total = 0
    try:
        for w in items:
            total += int(w)
    except ValueError as exc:
        return llm(f"bad {exc} after {total}")
    return llm(f"sum {total}")


def raises_out(items: list[str]) -> str:
    total = 0
    for w in items:
        total += int(w)
    return llm(f"sum {total}")


def numbers(n: int, bad: int | None) -> Callable[[], tuple[Any, ...]]:
    k = next(_round)
    items = [str(i + k) for i in range(n)]
    if bad is not None:
        items[bad] = f"x{k}"
    return same(items)


@pytest.mark.parametrize("fn", [parses, raises_out])
@pytest.mark.parametrize("bad", [80, None])
def test_an_exception_in_an_unobserved_round(
    quiets: list[int], fn: Callable[..., Any], bad: int | None
) -> None:
    check(fn, lambda: numbers(100, bad))
    assert quiets


# -- what only observed code may do ends the trace, and the loop is observed in full after -------


def late_call(items: list[str]) -> list[str]:
    out = []
    for w in items:
        if w == "ask":
            out.append(llm(f"ask {items[0]}"))
        else:
            out.append(w.lower())
    return out


def late_nap(items: list[str]) -> list[str]:
    out = []
    for w in items:
        if w == "nap":
            time.sleep(0.02)  # a slow step no event names: only its time tells
        out.append(w.lower())
    return [llm(f"{len(out)} {out[0]}")]


def test_a_python_call_in_an_unobserved_round_ends_the_trace(quiets: list[int]) -> None:
    fast = xcs.jit(late_call)
    run_both_fresh(late_call, fast, same(words(100, at={80: "ask"})), watch=WATCH)
    assert quiets
    assert "run unobserved started a Python function" in fast.explain(), fast.explain()
    assert fast.stats.traces == 1
    quiets.clear()
    for _ in range(2):  # traced again, that loop observed in full this time: a plan
        run_both_fresh(late_call, fast, same(words(100, at={80: "ask"})), watch=WATCH)
    assert not quiets
    assert fast.stats.traces == 2 and fast.stats.replays == 1, fast.explain()


def test_a_slow_c_call_in_an_unobserved_round_keeps_the_plan(quiets: list[int]) -> None:
    """It starts no Python function, so nothing tells it from the glue around it (its time alone would
    not: a paused thread looks the same): it is part of the one step, the trace makes its plan,
    and the replay makes it in its turn."""
    fast = xcs.jit(late_nap)
    for _ in range(2):
        run_both_fresh(late_nap, fast, same(words(100, at={80: "nap"})), watch=WATCH)
    assert quiets
    assert fast.stats.traces == 1 and fast.stats.replays == 1, fast.explain()
    assert not skipping._OBSERVED_IN_FULL.get(late_nap.__code__), "a slow C call ended the unobserved rounds"


def test_a_short_loop_is_observed_in_full(quiets: list[int]) -> None:
    """Its values may feed recipes (a list of pieces): at most 64 items run every round observed."""
    check(counted, lambda: docs(2, n=60))
    assert not quiets


def test_glue_alone_gets_no_plan_but_stays_exact() -> None:
    """The unobserved rounds are the whole function: no call, the same result."""

    def glue(text: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for w in text.split():
            counts[w] = counts.get(w, 0) + 1
        return counts

    fast = xcs.jit(glue)
    for _ in range(3):
        text = " ".join(words(200))
        assert fast(text) == glue(text)


# -- what only a later round did, which the trace never saw ----------------------------------------


def adjusted(items: list[str]) -> str:
    count = len(items)
    for w in items:
        if w.startswith("z"):
            count -= 1  # assigned in no round the trace saw: still no recipe says `len(items)`
    return llm(f"{count} of {items[0]}")


def noted(items: list[str]) -> str:
    notes = [items[0]]
    for w in items:
        if w.startswith("z"):
            notes.append(w)  # changed in place in no round the trace saw
    return llm(f"{notes}")


@pytest.mark.parametrize("fn", [adjusted, noted])
def test_what_only_an_unseen_round_did_is_never_recomputed_stale(
    quiets: list[int], fn: Callable[..., Any]
) -> None:
    fast = xcs.jit(fn)
    for at in ({}, {80: "zed"}, {}, {90: "zoo"}):  # traced without a "z": replays meet one
        run_both_fresh(fn, fast, same(words(100, at=at)), watch=WATCH)
    assert quiets
    assert fast.stats.wasted == 0 and fast.stats.mispredictions == 0, fast.explain()


def resumes_a_generator(items: list[str]) -> list[str]:
    upper = (w.upper() for w in items)  # a generator made before the loop, resumed in its rounds
    for w in items:
        if w.startswith("z"):
            next(upper)
    return [llm(f"{rest}") for rest in list(upper)[:3]]


def test_a_generator_resumed_in_an_unobserved_round_ends_the_trace(quiets: list[int]) -> None:
    """Its frame goes on after the loop: the builder must have seen every item it gave."""
    fast = xcs.jit(resumes_a_generator)
    for at in ({}, {80: "zed"}, {70: "zap", 90: "zoo"}):
        run_both_fresh(resumes_a_generator, fast, same(words(100, at=at)), watch=WATCH)
    assert quiets
    assert fast.stats.wasted == 0 and fast.stats.mispredictions == 0, fast.explain()

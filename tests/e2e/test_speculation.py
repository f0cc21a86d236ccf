"""Opt-in speculation (`xcs.jit(fn, speculate=...)`): calls under branches on results go on a guess.

What must hold: results and exceptions equal the plain run's; every call the plain run makes is
made once; the only extra calls are to callees the user allowed, and each one is counted in
`stats.wasted` (a guess cancelled before it started makes no call); at most
`max_wasted_per_call` per call; a callee not allowed is never called on a guess.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

import xcs_bc as xcs
from likeplain import LATENCY, Tool, fresh, outcome, plain_outcome
from xcs_bc.testing import CallLog, FakeLLM, FakeLLMError

exists = Tool("exists", lambda prompt: f"+{prompt.partition(' in ')[0]}" in prompt)
describe = FakeLLM("describe", LATENCY)  # not allowed in the tests that name `exists` only


def tv_and_phone(image):
    has_tv = exists(f"television in {image}")
    if not has_tv:
        has_tv = exists(f"tv in {image}")
    has_phone = exists(f"telephone in {image}")
    if not has_phone:
        a = exists(f"cell phone in {image}")
        b = exists(f"mobile phone in {image}")
        has_phone = a or b
    return f"tv: {has_tv}, phone: {has_phone}"


def either(image):
    return exists(f"knife block in {image}") or exists(f"knife rack in {image}")


def tv_described(image):
    if not exists(f"television in {image}"):
        return describe(f"what is in {image}?")
    return "a television"


def checks_then_answers(questions):
    answers = []
    for q in questions:
        if exists(f"math in {q}"):
            answers.append(describe(q))
    return answers


def extra_calls(
    fn: Any, fast: Any, arg: Any, watch: list[FakeLLM], reset: Callable[[], Any] = lambda: None
) -> Counter[str]:
    """Call `fast` and the plain `fn` on `arg`: the same outcome, every plain call made; returns the
    calls the jitted run made beyond the plain run's, by fake (after those still running ended).
    `reset` is called before each run."""
    for fake in watch:
        fake.reset()
    reset()
    expected = plain_outcome(fn, (arg,), watch)
    plain_calls = {fake.name: CallLog.snapshot(fake).counts for fake in watch}
    for fake in watch:
        fake.reset()
    reset()
    wasted = fast.stats.wasted
    got = outcome(fast, arg)
    time.sleep(3 * LATENCY)  # a wasted guess still running has logged its call by now
    assert got == expected
    jit_calls = {fake.name: CallLog.snapshot(fake).counts for fake in watch}
    extra: Counter[str] = Counter()
    for name, calls in jit_calls.items():
        assert not plain_calls[name] - calls, f"the jitted run left out calls of {name}"
        extra[name] += sum((calls - plain_calls[name]).values())
    assert sum(extra.values()) == fast.stats.wasted - wasted, fast.explain()
    return +extra


def test_every_check_goes_at_once_on_a_guess() -> None:
    """Traced on an image holding nothing (every check made), each replay issues all five checks at
    once, whatever the image holds; the guesses a replay did not need are wasted and counted."""
    fast = xcs.jit(tv_and_phone, speculate=True)
    extra_calls(tv_and_phone, fast, fresh("image "), [exists])
    wasted = Counter[str]()
    for holds in ["", "+tv +cell phone", "+television +telephone", "+tv +mobile phone", ""]:
        exists.reset()
        wasted += extra_calls(tv_and_phone, fast, fresh("image ") + holds, [exists])
        assert exists.max_concurrency == 5, fast.explain()
    assert fast.stats.mispredictions == 0
    assert fast.stats.speculated > 0
    assert wasted["exists"] == fast.stats.wasted_by_callee.get("exists", 0) > 0
    explained = fast.explain()
    assert "speculates on every slow call (at most 8 guesses pending or lost per call)" in explained
    assert f"wasted: exists x{fast.stats.wasted}" in explained
    assert "on a guess once the inputs are known, if its callee is allowed" in explained


def test_without_speculation_a_check_waits_for_its_branch() -> None:
    fast = xcs.jit(tv_and_phone)
    extra_calls(tv_and_phone, fast, fresh("image "), [exists])
    exists.reset()
    assert not extra_calls(tv_and_phone, fast, fresh("image "), [exists])
    assert exists.max_concurrency <= 3  # the two first checks, then the three under the branches
    assert fast.stats.speculated == 0


def test_both_sides_of_an_or_go_at_once() -> None:
    fast = xcs.jit(either, speculate=[exists])
    extra_calls(either, fast, fresh("kitchen "), [exists])  # traced: the first side was false
    exists.reset()
    assert not extra_calls(either, fast, fresh("kitchen ") + " +knife rack", [exists])
    assert exists.max_concurrency == 2
    # the left side holds: the guess of the right side is not used
    extra = extra_calls(either, fast, fresh("kitchen ") + " +knife block", [exists])
    assert extra["exists"] <= 1 and fast.stats.mispredictions == 0


def test_a_callee_not_named_is_never_called_on_a_guess() -> None:
    """`speculate=[exists]`: `describe`, under the same kind of branch, waits for it, so it is called
    exactly as often as in the plain run."""
    fast = xcs.jit(tv_described, speculate=[exists])
    extra_calls(tv_described, fast, fresh("room "), [exists, describe])  # traced without a television
    for holds in ["+television", "", "+television"]:
        extra = extra_calls(tv_described, fast, fresh("room ") + holds, [exists, describe])
        assert extra["describe"] == 0
    assert fast.stats.speculated == 0  # describe was the only call under a branch


def test_a_callee_named_by_its_class_function_covers_every_object() -> None:
    class Vision:
        def __init__(self) -> None:
            self.model = FakeLLM("vision", LATENCY)

        def exists(self, thing: str, image: str) -> bool:
            return bool(self.model(f"{thing} in {image}")) and f"+{thing}" in image

        def check(self, image: str) -> str:
            return "tv" if self.exists("television", image) or self.exists("tv", image) else "none"

    vision = Vision()
    fast = xcs.jit(Vision.check, speculate=[Vision.exists])
    fast(vision, fresh("room "))  # traced: neither is there (the model is not even called)
    vision.model.reset()
    assert fast(vision, fresh("room ") + " +tv +television") == "tv"
    assert fast.stats.speculated >= 1, fast.explain()


def test_the_cap_bounds_guesses_and_waste() -> None:
    fast = xcs.jit(tv_and_phone, speculate=True, max_wasted_per_call=1)
    extra_calls(tv_and_phone, fast, fresh("image "), [exists])
    for holds in ["+television +telephone", "", "+tv +cell phone"]:
        exists.reset()
        extra = extra_calls(tv_and_phone, fast, fresh("image ") + holds, [exists])
        assert extra["exists"] <= 1  # a confirmed guess frees its place: the cap bounds the waste


def test_a_guess_that_raises_raises_only_where_the_run_makes_the_call() -> None:
    broken = FakeLLM("broken", LATENCY, fail_on="boom")

    def guarded(text):
        if not exists(f"fine in {text}"):
            return broken(f"fix {text}")
        return "fine"

    fast = xcs.jit(guarded, speculate=True)
    extra_calls(guarded, fast, fresh("doc "), [exists, broken])
    for text in ["boom +fine", "boom", "ok", "boom +fine"]:
        extra_calls(guarded, fast, fresh("doc ") + text, [exists, broken])
    with pytest.raises(FakeLLMError):
        fast(fresh("doc ") + "boom")


@pytest.mark.parametrize("memoized", [True, False], ids=["lru_cache", "plain-callee"])
def test_a_memoized_callee_is_never_called_on_a_guess(memoized: bool) -> None:
    """A guess would fill a cache entry the plain run does not: the call waits for its branch."""
    model = FakeLLM("cached", LATENCY)
    remembered = functools.lru_cache(maxsize=None)(model) if memoized else model

    def lookup(word):
        if not exists(f"known in {word}"):
            return remembered(word)
        return "known"

    clear = getattr(remembered, "cache_clear", lambda: None)
    fast = xcs.jit(lookup, speculate=True)
    fast(fresh("word "))
    for word in ["+known", "", "+known"]:
        extra_calls(lookup, fast, fresh("word ") + word, [exists, model], clear)
    assert (fast.stats.speculated == 0) is memoized, fast.explain()


def test_rounds_whose_branches_flip_are_guesses_not_mispredictions() -> None:
    fast = xcs.jit(checks_then_answers, speculate=True)
    extra_calls(
        checks_then_answers, fast, [fresh("q +math"), fresh("q"), fresh("q +math")], [exists, describe]
    )
    for pattern in [(0, 1, 1), (1, 1, 1), (0, 0, 0), (1, 0, 1)]:
        questions = [fresh("q") + (" +math" if math else "") for math in pattern]
        extra_calls(checks_then_answers, fast, questions, [exists, describe])
    assert fast.stats.mispredictions == 0, fast.explain()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"speculate": "exists"}, "speculate must be True, False or a list of the callees"),
        ({"speculate": []}, "speculate=[] names no callee"),
        ({"speculate": [exists, "describe"]}, "speculate names 'describe', which is not callable"),
        ({"speculate": 1}, "speculate must be True, False or a list"),
        ({"max_wasted_per_call": 0}, "max_wasted_per_call must be an int >= 1, got 0"),
        ({"max_wasted_per_call": True}, "max_wasted_per_call must be an int >= 1, got True"),
        ({"max_wasted_per_call": 2.0}, "max_wasted_per_call must be an int >= 1, got 2.0"),
    ],
)
def test_bad_speculation_options_are_refused_up_front(options: dict[str, Any], message: str) -> None:
    with pytest.raises(xcs.ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        xcs.jit(tv_and_phone, **options)
    with pytest.raises(xcs.ConfigError):
        xcs.jit(**options)(tv_and_phone)

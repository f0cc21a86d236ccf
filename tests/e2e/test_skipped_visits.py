"""A replay whose run reaches a call site fewer times than planned before a call issued for it: a
round raised and the loop went on (`except ...: continue`), or an inner loop ran fewer rounds.  The
call issued for a later visit is this very call: served, the visits skipped are dropped, and no call
is made twice (it was made ahead, then again in place)."""

from __future__ import annotations

from typing import Any

import pytest

import xcs_bc as xcs
from handler_loops import GOING_ON_AFTER_A_HANDLER, STOPPED_BY_A_HANDLER, checker
from likeplain import LATENCY, fresh, no_waste, run_both_fresh
from xcs_bc.testing import FakeLLM, FakeLLMError

writer = FakeLLM("writer", LATENCY)


def checked_then_written(docs: list[str]) -> list[str]:
    out = []
    for d in docs:
        try:
            verdict = checker(d)
        except FakeLLMError:
            continue
        out.append(writer(verdict))
    return out


def checked_else_written(docs: list[str]) -> list[str]:
    out = []
    for d in docs:
        try:
            verdict = checker(d)
        except FakeLLMError:
            out.append("skipped")
        else:
            out.append(writer(verdict))
    return out


def test_a_round_that_raised_and_went_on_leaves_the_later_rounds_served() -> None:
    for fn in (checked_then_written, checked_else_written):
        fast = xcs.jit(fn)
        for docs in (
            [fresh(), fresh()],  # traced: no round raises
            [f"BAD {fresh()}", fresh(), fresh(), f"BAD {fresh()}"],  # the first and last rounds raise
            [fresh(), f"BAD {fresh()}", fresh()],
        ):
            run_both_fresh(fn, fast, lambda docs=docs: (list(docs),), watch=[checker, writer])
        no_waste(fast)


class Validator(FakeLLM):
    """Answers "ok" to prompts whose length is a multiple of 4, else "retry"."""

    def render(self, prompt: object, kwargs: dict[str, Any]) -> str:
        return "ok" if len(str(prompt)) % 4 == 0 else "retry"


validator = Validator("validator", LATENCY)


def retried(questions: list[str]) -> list[tuple[str, int, str]]:
    out = []
    for q in questions:
        for attempt in range(3):
            answer = validator(f"{q}#{attempt}")
            if answer == "ok":
                break
        out.append((q, attempt, answer))
    return out


def test_an_inner_retry_loop_that_ran_fewer_rounds_makes_no_call_twice() -> None:
    fast = xcs.jit(retried)
    for questions in (["ab", "c", "def"], ["x", "yyyy"], ["p", "q", "rr", "s"], ["abc", "d", "e"]):
        run_both_fresh(retried, fast, lambda qs=questions: (list(qs),), watch=[validator])
    no_waste(fast)


def until_a_check_fails(docs: list[str]) -> list[str]:
    out = []
    for d in docs:
        try:
            out.append(checker(d))
        except FakeLLMError:
            break
    return out


def test_later_rounds_of_a_loop_a_handler_may_leave_wait_for_the_rounds_before_them() -> None:
    """`except ...: break`: a round that raises ends the loop, and the plain run never makes the later
    rounds' calls, which a replay must not have issued ahead either (they were made, and wasted)."""
    fast = xcs.jit(until_a_check_fails)
    for docs in ([fresh(), fresh(), fresh()], [fresh(), f"BAD {fresh()}", fresh()], [fresh(), fresh()]):
        run_both_fresh(until_a_check_fails, fast, lambda docs=docs: (list(docs),), watch=[checker])
    no_waste(fast)
    assert "which a `try` in it may leave" in fast.explain()


@pytest.mark.parametrize("fn", STOPPED_BY_A_HANDLER)
@pytest.mark.parametrize("first_bad", [False, True])
def test_a_handler_setting_what_the_next_round_reads_makes_no_call_the_plain_run_does_not(
    fn: Any, first_bad: bool
) -> None:
    """`except ...: ok = False` with `if not ok: break`, a count of failures, a list of errors, a
    `break` on a condition, a flag a nested function sets, a `while` loop's condition, a flag
    computed from what the `try` body or the handler left: a round that raises changes the rounds
    after it, whose calls the plain run does not make.  They wait for the
    rounds before them, on the first call (traced on documents that all pass, or not) and in
    replays, and nothing is wasted."""

    def bad_at(*at: int, n: int = 6) -> list[str]:
        return [f"BAD {fresh()}" if k in at else fresh() for k in range(n)]

    fast = xcs.jit(fn)
    for docs in (bad_at(1, 2) if first_bad else bad_at(), bad_at(1, 3), bad_at(), bad_at(0, 4), bad_at(2, 3)):
        run_both_fresh(fn, fast, lambda docs=docs: (list(docs),), watch=[checker])
    no_waste(fast)


@pytest.mark.parametrize("fn", GOING_ON_AFTER_A_HANDLER)
def test_a_loop_whose_handler_goes_on_replays_its_rounds_at_once(fn: Any) -> None:
    """A fallback value changes nothing a later round reads: its replays still issue every round.
    (On 3.12+ a handler's way back into the loop is placed after the code and jumps back: no loop.)"""
    fast = xcs.jit(fn)
    for docs in ([fresh() for _ in range(5)], [fresh(), f"BAD {fresh()}", fresh(), fresh(), fresh()]):
        run_both_fresh(fn, fast, lambda docs=docs: (list(docs),), watch=[checker])
    assert fast.stats.served >= 4
    no_waste(fast)

"""What `xcs.jit` says through the standard `logging` module (logger `xcs_bc`).

At debug level: every trace and why it was made, and every note `explain()` keeps (guard misses,
lessons, retirements).  At info level, once: that a function found nothing to issue ahead, naming a
call and why it waits its turn, and that a function now runs plainly.
"""

from __future__ import annotations

import logging

import pytest

import xcs_bc as xcs
from likeplain import LATENCY, fresh
from xcs_bc.testing import FakeLLM

llm = FakeLLM("llm", LATENCY)


class Counter:
    """A helper not known to be pure: what it returns depends on how often it was called."""

    def __init__(self) -> None:
        self.n = 0

    def next(self) -> int:
        self.n += 1
        return self.n


counter = Counter()


def numbered(topics: list[str]) -> list[str]:
    # no recipe can say the numbers: nothing goes ahead (and a loop of another length is traced again)
    return [llm(f"#{counter.next()}: {topic}") for topic in topics]


def pair(a: str, b: str) -> list[str]:
    return [llm(a), llm(b)]


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "xcs_bc" and r.levelno == level]


def test_a_function_with_nothing_to_issue_ahead_says_why_once_then_that_it_runs_plainly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="xcs_bc")
    # (a 10 ms threshold against 30 ms calls: on a loaded machine `counter.next()` stays glue)
    fast = xcs.jit(numbered, min_call_ms=10)
    for n in (2, 3, 4, 5, 2):  # three lengths traced, then it runs plainly
        fast([fresh("t") for _ in range(n)])
    said = records(caplog, logging.INFO)
    assert len(said) == 2, said
    assert said[0].startswith("xcs.jit(numbered) found nothing to issue ahead: %0 llm at ")
    assert "runs in its turn, because" in said[0]
    assert said[1] == (
        "xcs.jit(numbered): 3 traces in a row made no plan that issues a call ahead (see the notes); "
        "it now runs plainly"
    )


def test_traces_and_guard_misses_are_logged_at_debug_level(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="xcs_bc")
    fast = xcs.jit(pair)
    fast(fresh(), fresh())
    fast(fresh(), fresh())  # replayed: nothing logged
    fast(fresh(), 2)  # another type: a guard miss, traced again
    said = records(caplog, logging.DEBUG)
    assert said[0] == "xcs.jit(pair): tracing this call (no plan applies)"
    assert len([line for line in said if line.startswith("xcs.jit(pair): tracing this call")]) == 2
    assert "xcs.jit(pair): guard miss, traced again: type(b) is str, but got int" in said
    assert not records(caplog, logging.INFO)

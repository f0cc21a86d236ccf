"""A planned call whose prediction was wrong once is not issued ahead again.

A helper the builder cannot see into (not known to be pure) may change what a later call reads:
a global counter, a config dict, changed in a way no reading of its bytecode names (through the
module's namespace here; C code, a registry object).  The first replay issues that call with the old value, the
dispatcher sees the real call differ and makes it in place (correct, one call wasted); from then
on the plan runs it in its turn, so no replay makes a call the plain run does not.
"""

from __future__ import annotations

import sys
from typing import Any

import xcs_bc as xcs
from likeplain import fakes, fresh
from xcs_bc.testing import CallLog

MIN_MS = 10.0
(api,) = fakes("api")
REQUEST_ID = 0
CONFIG = {"model": "a"}


def _bump() -> None:  # through the module's namespace: no reading of its bytecode names REQUEST_ID
    vars(sys.modules[__name__])["REQUEST_ID"] += 1


def _switch(model: str) -> None:  # (`CONFIG["model"] = model` would name CONFIG: see test_module_state)
    vars(sys.modules[__name__])["CONFIG"]["model"] = model


def numbered(q: str) -> tuple[str, str]:
    first = api(f"first {q}")
    _bump()
    return first, api(f"{q} req-{REQUEST_ID}")


def configured(q: str, model: str) -> tuple[str, str]:
    first = api(f"first {q}")
    _switch(model)
    return first, api(q, model=CONFIG["model"])


def _check(fn: Any, make_args: Any) -> None:
    fast = xcs.jit(fn, min_call_ms=MIN_MS)
    global REQUEST_ID
    for _ in range(5):
        start = REQUEST_ID
        expected_args = make_args()
        CONFIG["model"] = "a"  # plain and jitted start from the same state
        plain = fn(*expected_args)
        REQUEST_ID, CONFIG["model"] = start, "a"
        api.reset()
        assert fast(*expected_args) == plain
    assert fast.stats.traces == 1 and fast.stats.replays == 4
    assert fast.stats.mispredictions == 1 and fast.stats.wasted <= 1  # the first replay only
    assert "was mispredicted" in fast.explain()


def test_a_global_a_helper_bumps_is_mispredicted_once_then_read_in_turn() -> None:
    _check(numbered, lambda: (fresh(),))


def test_a_config_dict_a_helper_changes_is_mispredicted_once_then_read_in_turn() -> None:
    _check(configured, lambda: (fresh(), fresh("model")))


def test_after_learning_each_replay_makes_exactly_the_plain_calls() -> None:
    fast = xcs.jit(configured, min_call_ms=MIN_MS)
    for _ in range(2):  # trace, then the replay that learns
        CONFIG["model"] = "a"
        fast(fresh(), fresh("model"))
    for _ in range(3):
        q, model = fresh(), fresh("model")
        CONFIG["model"] = "a"
        api.reset()
        configured(q, model)
        plain_calls = CallLog.snapshot(api)
        CONFIG["model"] = "a"
        api.reset()
        fast(q, model)
        assert CallLog.snapshot(api) == plain_calls and len(plain_calls) == 2
    assert fast.stats.mispredictions == 1


COUNTER = 0


def counted(q: str) -> str:
    global COUNTER
    first = api(f"first {q}")
    COUNTER += 1
    return api(f"{first} req-{COUNTER}")  # its recipe waits for `first`: evaluated after the run moved on


def test_a_global_the_function_itself_assigns_is_read_as_it_was_when_the_call_began() -> None:
    fast = xcs.jit(counted, min_call_ms=MIN_MS)
    for _ in range(6):
        q = fresh()
        start = COUNTER
        plain = counted(q)
        globals()["COUNTER"] = start
        assert fast(q) == plain
    assert fast.stats.replays == 5 and fast.stats.served == 10
    assert fast.stats.mispredictions == 0 and fast.stats.wasted == 0


def _bump_named() -> None:
    global REQUEST_ID
    REQUEST_ID += 1


def numbered_named(q: str) -> tuple[str, str]:
    first = api(f"first {q}")
    _bump_named()
    return first, api(f"{q} req-{REQUEST_ID}")


def test_a_global_a_helper_assigns_by_name_is_read_in_turn_without_a_misprediction() -> None:
    fast = xcs.jit(numbered_named, min_call_ms=MIN_MS)
    global REQUEST_ID
    for _ in range(4):
        q, start = fresh(), REQUEST_ID
        plain = numbered_named(q)
        REQUEST_ID = start
        assert fast(q) == plain
    assert fast.stats.replays == 3 and fast.stats.mispredictions == 0 and fast.stats.wasted == 0

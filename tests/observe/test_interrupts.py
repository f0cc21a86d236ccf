"""Ctrl-C at any moment of an observation leaves no hook installed and the thread free.

Two kinds of interrupts: one injected at every primitive step a session's start and stop
take (each `sys.monitoring` call on 3.12+, each `sys.settrace`/`sys.gettrace` on
3.10/3.11), just before and just after it; and a seeded fuzz where a timer signal raises
KeyboardInterrupt at a random moment while captures and jit traces run back to back.
After each: no hook of ours is left, the thread is not marked observed, and a capture
works again.
"""

from __future__ import annotations

import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import xcs_bc as xcs
from xcs_bc.observe import hooks

PY312 = sys.version_info >= (3, 12)


def helper(x: int) -> int:
    return x + 1


def target(x: int) -> int:
    total = helper(x)
    return sum([helper(i) for i in range(2)]) + total


def looped(x: int) -> list[int]:  # a helper the jit follows into on its first call
    return [helper(i) for i in range(x)]


def following(x: int) -> int:
    return sum(looped(x)) + helper(x)


def _capture_block() -> None:
    with xcs.capture(min_call_ms=0):
        helper(1)
        helper(2)


def _jit_trace() -> None:
    xcs.jit(target, min_call_ms=0)(3)  # a new jitted function: its first call is traced


def _jit_trace_following() -> None:
    xcs.jit(following, min_call_ms=0)(3)  # traced, and `looped` traced inside it by a session of its own


class Clean:
    """What the thread's hooks were before; `check()` asserts that they are so again."""

    def __init__(self) -> None:
        self.trace = sys.gettrace()
        self.profile = sys.getprofile()
        self.free_ids = [i for i in range(6) if sys.monitoring.get_tool(i) is None] if PY312 else []
        self.stale = 0  # sessions found stale (their stop() never reached) and stopped by is_observing()

    def check(self) -> None:
        if threading.get_ident() in hooks._sessions:
            self.stale += 1
        assert not hooks.is_observing()
        assert threading.get_ident() not in hooks._sessions
        assert sys.gettrace() is self.trace
        assert sys.getprofile() is self.profile
        if PY312:
            mon = sys.monitoring
            assert [mon.get_tool(i) for i in self.free_ids] == [None] * len(self.free_ids)
            assert not hooks._tool.users and not hooks._tool.masks and hooks._tool.tool_id is None
            for tool_id in self.free_ids:
                assert mon.get_events(tool_id) == 0
                for code in (target.__code__, helper.__code__, *_nested(target.__code__)):
                    assert mon.get_local_events(tool_id, code) == 0
        with xcs.capture(min_call_ms=0, leaves=[helper]) as cap:  # and a capture works again
            helper(5)
        assert [op.name for op in cap.graph.operations] == ["helper"], (cap.graph, cap.events)


def _nested(code: Any) -> list[Any]:
    return [c for c in code.co_consts if hasattr(c, "co_code")]


# -- an interrupt injected at every primitive step ------------------------------------------------


class _Injector:
    """Counts primitive calls; raises KeyboardInterrupt just before or just after call number `at`."""

    def __init__(self, at: int = -1, after: bool = False) -> None:
        self.at = at
        self.after = after
        self.count = 0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def step(*args: Any) -> Any:
            number = self.count
            self.count += 1
            if number == self.at and not self.after:
                raise KeyboardInterrupt(f"before step {number}")
            result = fn(*args)
            if number == self.at and self.after:
                raise KeyboardInterrupt(f"after step {number}")
            return result

        return step


class _MonitoringProxy:
    def __init__(self, injector: _Injector) -> None:
        self._injector = injector

    def __getattr__(self, name: str) -> Any:
        value = getattr(sys.monitoring, name)
        return self._injector.wrap(value) if callable(value) and name != "events" else value


@contextmanager
def _injected(injector: _Injector, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with monkeypatch.context() as patch:
        if PY312:
            patch.setattr(hooks, "_monitoring", _MonitoringProxy(injector))
        else:
            patch.setattr(sys, "settrace", injector.wrap(sys.settrace))
            patch.setattr(sys, "gettrace", injector.wrap(sys.gettrace))
        yield


@pytest.mark.parametrize(
    "work", [_capture_block, _jit_trace, _jit_trace_following], ids=["capture", "jit", "jit following"]
)
def test_an_interrupt_at_every_step_of_start_and_stop_leaves_nothing_behind(
    work: Callable[[], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    clean = Clean()
    counter = _Injector()
    with _injected(counter, monkeypatch):
        work()
    clean.check()
    steps = counter.count
    assert steps >= 2  # at least install and uninstall
    interrupted = 0
    for at in range(steps):
        for after in (False, True):
            injector = _Injector(at, after)
            with _injected(injector, monkeypatch):
                try:
                    work()
                except KeyboardInterrupt:
                    interrupted += 1
            clean.check()
    assert interrupted == 2 * steps  # every injected interrupt reached the caller
    assert clean.stale == 0  # start and stop undid everything themselves


# -- a seeded fuzz of real signals at random moments ----------------------------------------------


class _Interrupt(Exception):
    pass


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer (POSIX)")
def test_random_interrupts_during_captures_and_traces_leave_nothing_behind() -> None:
    rng = random.Random(20240611)
    clean = Clean()
    previous = signal.signal(signal.SIGALRM, _raise_keyboard_interrupt)
    interrupts = lost = 0
    deadline = time.monotonic() + 8.0
    try:
        for _ in range(400):
            if time.monotonic() > deadline:
                break
            try:
                signal.setitimer(signal.ITIMER_REAL, rng.uniform(0.00002, 0.002))
                # until the signal lands (a KeyboardInterrupt raised in a finalizer or a weakref
                # callback is reported and dropped by CPython itself, "Exception ignored in ...": a
                # lost signal ends the round after 1 s instead of hanging the test; it was seen once,
                # its cause not established)
                give_up = time.monotonic() + 1.0
                while time.monotonic() < give_up:
                    _capture_block()
                    _jit_trace()
                    _jit_trace_following()
                lost += 1
            except KeyboardInterrupt:
                interrupts += 1
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            clean.check()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert interrupts >= 200, interrupts
    assert lost <= 2, (lost, interrupts)
    # an interrupt at the entry of stop() itself (before its first line) cannot be caught there:
    # the next is_observing() finds that session stale and stops it; that must stay rare
    assert clean.stale <= interrupts // 10, (clean.stale, interrupts)

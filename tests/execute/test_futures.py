"""LeanFuture: the standard Future's behaviour, with a plain lock in place of its Condition."""

from __future__ import annotations

import concurrent.futures as cf
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from xcs_bc.execute.executor import ThreadPool
from xcs_bc.execute.futures import LeanFuture

BOTH = pytest.mark.parametrize("make", [cf.Future, LeanFuture], ids=["Future", "LeanFuture"])


def _outcome(step: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "returned", step()
    except BaseException as exc:  # noqa: BLE001 - the outcome is what is compared
        return "raised", type(exc)


def _story(make: Callable[[], cf.Future[Any]]) -> list[Any]:
    """What a future answers through its life: pending, running, cancelled, finished, failed."""
    seen: list[Any] = []
    pending = make()
    called: list[str] = []
    pending.add_done_callback(lambda f: called.append("pending"))
    seen += [pending.done(), pending.running(), pending.cancelled(), _outcome(lambda: pending.result(0))]
    seen += [pending.cancel(), pending.cancel(), pending.done(), pending.cancelled(), list(called)]
    seen += [_outcome(pending.result), _outcome(pending.exception), pending.set_running_or_notify_cancel()]
    seen.append(_outcome(lambda: pending.set_result(1)))
    running = make()
    seen += [running.set_running_or_notify_cancel(), running.running(), running.cancel()]
    seen.append(_outcome(lambda: running.exception(0.01)))
    running.set_result("x")
    late: list[Any] = []
    running.add_done_callback(late.append)  # (already done: called at once)
    seen += [running.result(), running.exception(), running.done(), late == [running]]
    seen += [_outcome(lambda: running.set_result("y")), _outcome(running.set_running_or_notify_cancel)]
    failed = make()
    failed.set_running_or_notify_cancel()
    failed.set_exception(ValueError("no"))
    seen += [_outcome(failed.result), type(failed.exception()), failed.cancel()]
    return seen


def test_a_lean_future_answers_as_the_standard_one_does() -> None:
    assert _story(LeanFuture) == _story(cf.Future)


@BOTH
def test_result_wakes_every_thread_waiting_on_it(make: Callable[[], cf.Future[Any]]) -> None:
    future = make()
    got: list[Any] = []
    waiters = [threading.Thread(target=lambda: got.append(future.result(timeout=5))) for _ in range(4)]
    for waiter in waiters:
        waiter.start()
    time.sleep(0.05)
    future.set_result(7)
    for waiter in waiters:
        waiter.join(5)
    assert got == [7, 7, 7, 7]


@BOTH
def test_a_cancel_wakes_a_thread_waiting_on_it(make: Callable[[], cf.Future[Any]]) -> None:
    future = make()
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(_outcome(lambda: future.result(timeout=5))))
    waiter.start()
    time.sleep(0.05)
    assert future.cancel()
    waiter.join(5)
    assert got == [("raised", cf.CancelledError)]


def test_wait_and_as_completed_take_lean_futures() -> None:
    pool = ThreadPool(4)
    release = threading.Event()
    futures = [pool.submit(lambda n=n: release.wait(5) and n) for n in range(4)]
    assert all(type(future) is LeanFuture for future in futures)
    done, not_done = cf.wait(futures, timeout=0.05)
    assert not done and len(not_done) == 4
    release.set()
    assert sorted(future.result() for future in cf.as_completed(futures, timeout=5)) == [0, 1, 2, 3]
    done, not_done = cf.wait(futures, timeout=5)
    assert len(done) == 4 and not not_done
    pool.shutdown()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer (POSIX)")
def test_an_interrupt_while_waiting_leaves_the_future_whole() -> None:
    """A KeyboardInterrupt in result() leaves no lock held: the future still ends, and another
    result() gets its value."""
    future = LeanFuture()
    previous = signal.signal(signal.SIGALRM, _interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            future.result(timeout=5)
        assert time.monotonic() - started < 2  # (the signal ended the wait, not the timeout)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    threading.Timer(0.05, lambda: future.set_result("late")).start()
    assert future.result(timeout=5) == "late"
    assert future._condition.acquire(blocking=False)  # (the state lock is free)
    future._condition.release()

"""A `concurrent.futures.Future` whose state changes take a plain lock.

The standard Future guards every method, even `done()`, with a
`threading.Condition`, whose `with` runs two Python-level methods; a served
call of a replay asks its future about eleven such questions (a worker starts
and finishes it, its callback reads the outcome, the run takes it over, waits
and reads the result).  `LeanFuture` keeps the same states and fields, so
`concurrent.futures.wait` and `as_completed` work on it unchanged, but
guards them with a `_thread.lock`, reads its state without a lock where a
single read is enough, and wakes the threads blocked in `result()` or
`exception()` by releasing a lock each of them holds.  Those waits are
interrupt-safe: a KeyboardInterrupt in one leaves nothing half-locked.
"""

from __future__ import annotations

import _thread
from concurrent.futures import CancelledError, Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures._base import (
    CANCELLED,
    CANCELLED_AND_NOTIFIED,
    FINISHED,
    LOGGER,
    PENDING,
    RUNNING,
)
from typing import Any

_ENDED = (CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED)
_CANCELLED = (CANCELLED, CANCELLED_AND_NOTIFIED)


class LeanFuture(Future[Any]):
    """A Future for calls issued on threads of this process (see the module's docstring)."""

    def __init__(self) -> None:  # (Future.__init__ would make the Condition this class avoids)
        self._condition = _thread.allocate_lock()  # type: ignore[assignment]
        self._state = PENDING
        self._result: Any = None
        self._exception: BaseException | None = None
        self._waiters: list[Any] = []  # those of concurrent.futures.wait and as_completed
        self._done_callbacks: list[Any] = []
        self._sleepers: list[_thread.LockType] = []  # one held lock per thread blocked in result()

    # -- asking -----------------------------------------------------------------------------------

    def cancelled(self) -> bool:
        return self._state in _CANCELLED

    def running(self) -> bool:
        return self._state == RUNNING

    def done(self) -> bool:
        return self._state in _ENDED

    def result(self, timeout: float | None = None) -> Any:
        if self._state != FINISHED:
            self._wait(timeout)
        if self._exception is not None:
            _raise(self._exception)
        return self._result

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if self._state != FINISHED:
            self._wait(timeout)
        return self._exception

    def _wait(self, timeout: float | None) -> None:
        """Block until the future has ended (CancelledError if cancelled, TimeoutError at `timeout`)."""
        with self._condition:
            ended = self._state in _ENDED
            if not ended:
                sleeper = _thread.allocate_lock()
                sleeper.acquire()
                self._sleepers.append(sleeper)
        if not ended and not sleeper.acquire(timeout=-1 if timeout is None else max(timeout, 0.0)):
            with self._condition:
                if sleeper in self._sleepers:
                    self._sleepers.remove(sleeper)
        if self._state in _CANCELLED:
            raise CancelledError
        if self._state != FINISHED:
            raise FutureTimeout

    def add_done_callback(self, fn: Any) -> None:
        with self._condition:
            if self._state not in _ENDED:
                self._done_callbacks.append(fn)
                return
        _call_back(fn, self)

    # -- changing ---------------------------------------------------------------------------------

    def cancel(self) -> bool:
        with self._condition:
            if self._state in (RUNNING, FINISHED):
                return False
            if self._state in _CANCELLED:
                return True
            self._state = CANCELLED
            sleepers, self._sleepers = self._sleepers, []
        self._ended(sleepers)
        return True

    def set_running_or_notify_cancel(self) -> bool:
        with self._condition:
            if self._state == CANCELLED:
                self._state = CANCELLED_AND_NOTIFIED
                for waiter in self._waiters:
                    waiter.add_cancelled(self)
                return False
            if self._state == PENDING:
                self._state = RUNNING
                return True
        LOGGER.critical("Future %s in unexpected state: %s", id(self), self._state)
        raise RuntimeError("Future in unexpected state")

    def set_result(self, result: Any) -> None:
        with self._condition:
            ended = self._state in _ENDED
            if not ended:
                self._result = result
                self._state = FINISHED
                for waiter in self._waiters:
                    waiter.add_result(self)
                sleepers, self._sleepers = self._sleepers, []
        if ended:  # (raised outside the lock: the message's repr takes it, and it is not reentrant)
            raise InvalidStateError(f"{self._state}: {self!r}")
        self._ended(sleepers)

    def set_exception(self, exception: BaseException | None) -> None:
        with self._condition:
            ended = self._state in _ENDED
            if not ended:
                self._exception = exception
                self._state = FINISHED
                for waiter in self._waiters:
                    waiter.add_exception(self)
                sleepers, self._sleepers = self._sleepers, []
        if ended:  # (raised outside the lock: the message's repr takes it, and it is not reentrant)
            raise InvalidStateError(f"{self._state}: {self!r}")
        self._ended(sleepers)

    def _ended(self, sleepers: list[_thread.LockType]) -> None:
        """Wake the threads blocked in result() and call the callbacks (outside the lock)."""
        for sleeper in sleepers:
            sleeper.release()
        for callback in self._done_callbacks:
            _call_back(callback, self)


def _call_back(fn: Any, future: Future[Any]) -> None:
    try:
        fn(future)
    except Exception:  # (as Future does: a failing callback is logged, the others still run)
        LOGGER.exception("exception calling callback for %r", future)


def _raise(exception: BaseException) -> None:
    """Raise the call's exception (a function of its own, so that no frame holding the future stays
    in the traceback: the future holds the exception, which would hold the future)."""
    raise exception

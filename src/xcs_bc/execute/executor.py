"""Where planned calls run: anything with `submit(fn, *args) -> Future`.

The default is one thread pool for the whole process, sized for IO-bound calls
rather than for the number of CPU cores (slow calls spend their time waiting
on the network), created on first use.  `xcs.jit(max_workers=N)` gives a
function a pool of its own; any object following the `Executor` protocol (a
`concurrent.futures` executor, or an adapter for Ray or Dask) can be passed as
`executor=`.  Its futures must keep `Future.cancel()`'s promise: a future
cancelled while pending is never run (the replay relies on it to make such a
call itself rather than wait for a pool slot).

The pools xcs makes (`ThreadPool`) differ from `ThreadPoolExecutor` in two ways:

- Their workers do not keep the interpreter alive.  A call issued ahead that
  the real run never reached (it raised earlier, took another branch) may still
  be running when the program ends; the plain program would never have made it,
  so it must not delay the exit.  Every call the real run does reach has
  returned before the jitted call returns, so nothing it needs is lost.
- `submit` never blocks and holds its lock over no Python-level wait, so a
  KeyboardInterrupt in the main thread cannot leave the pool locked (starting a
  `threading.Thread` waits on an Event, whose `Condition.wait` an interrupt can
  leave with its lock released twice).

`wait_done` waits for a future in the same interrupt-safe way.
"""

from __future__ import annotations

import _thread
import atexit
import contextlib
import os
import queue
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Executor as _StdExecutor
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol, runtime_checkable

DEFAULT_MAX_WORKERS = 512
"""The shared pool's bound: its threads start as ready calls arrive, so its width follows the work
(256 independent calls run at once), and leave after `IDLE_SECONDS` without one.  Per-API limits
(`xcs.limit`, and the defaults of known clients) bound each API well below it."""

IDLE_SECONDS = 30.0


@runtime_checkable
class Executor(Protocol):
    """What xcs_bc needs from an executor: run `fn(*args)` somewhere and return a Future."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]: ...


_Item = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class ThreadPool(_StdExecutor):
    """Up to `max_workers` daemon threads, started as work arrives; one that has had nothing to do
    for `IDLE_SECONDS` leaves (the pool shrinks back after a burst)."""

    def __init__(self, max_workers: int) -> None:
        self._max_workers = max_workers
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._workers = 0
        self._idle = 0  # workers waiting for an item that no submit has counted on yet
        self._shutdown = False
        self._stopped = threading.Event()  # set once every worker has left after a shutdown

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:  # (no call in here can block or run Python code that waits)
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._queue.put((future, fn, args, kwargs))
            if self._idle:
                self._idle -= 1
            elif self._workers < self._max_workers:
                self._workers += 1
                _thread.start_new_thread(self._work, ())  # a daemon thread, started without waiting
        return future

    def _work(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()  # more work queued: take it without counting as idle
            except queue.Empty:
                with self._lock:
                    self._idle += 1
                item = self._wait_for_work()
            if item is None:
                break
            _run(*item)
            del item
        with self._lock:
            self._workers -= 1
            if not self._workers and self._shutdown:
                self._stopped.set()

    def _wait_for_work(self) -> _Item | None:
        """The next item; None to leave: at shutdown, or after `IDLE_SECONDS` with nothing to do.

        An idle worker may leave only while `_idle` counts one no submit has counted on: a submit
        that found an idle worker decremented `_idle`, and its item is on its way to one of them."""
        while True:
            try:
                return self._queue.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._idle and not self._shutdown:
                        self._idle -= 1
                        return None

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            workers = self._workers
            if not workers:
                self._stopped.set()
        if cancel_futures:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        for _ in range(workers):
            self._queue.put(None)
        if wait:
            self._stopped.wait()


def _run(future: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if not future.set_running_or_notify_cancel():
        return  # cancelled while queued: never run
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - the future carries it to whoever waits for it
        future.set_exception(exc)
    else:
        future.set_result(result)


def runs_in_process(executor: Executor) -> bool:
    """Does `executor` run calls on threads of this process?  Only then can a call carry its
    contextvars (a Context cannot be pickled, nor can it cross to another process or machine)."""
    return isinstance(executor, (ThreadPool, ThreadPoolExecutor))


def can_submit(
    executor: Executor, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> bool:
    """Can `executor` take this call?  A process pool pickles it in a background thread, and a failure
    there would surface as the call's own exception: a call that cannot be pickled is not issued."""
    process = sys.modules.get("concurrent.futures.process")  # (not imported: no process pool exists)
    if process is None or not isinstance(executor, process.ProcessPoolExecutor):
        return True
    from multiprocessing.reduction import ForkingPickler  # noqa: PLC0415 - only with a process pool

    try:
        ForkingPickler.dumps((fn, args, kwargs))
    except Exception:  # noqa: BLE001 - any pickling failure: the call runs in place
        return False
    return True


def wait_done(future: Future[Any]) -> None:
    """Block until `future` is done.  A KeyboardInterrupt leaves nothing locked: the wait is one
    blocking acquire of a fresh lock that the future's callback releases (Future.result() waits in
    Condition.wait, which an interrupt can leave with its lock released and then released again)."""
    if future.done():
        return
    done = _thread.allocate_lock()
    done.acquire()
    future.add_done_callback(lambda _: done.release())
    with waiting():
        done.acquire()


# On the thread running an async function's twin (`trampoline`), the event loop waits while the
# twin runs; while the twin waits here for a call issued ahead or for room under a limit, the loop
# must run: those calls may be tasks on it.  The hook frees it for the wait.
_waits = threading.local()


def set_waiting_hook(hook: Callable[[], contextlib.AbstractContextManager[None]] | None) -> None:
    _waits.hook = hook


def waiting() -> contextlib.AbstractContextManager[None]:
    """What a wait of the jit on this thread runs in (see `set_waiting_hook`)."""
    hook = getattr(_waits, "hook", None)
    return contextlib.nullcontext() if hook is None else hook()


_default: ThreadPool | None = None
_lock = threading.Lock()


def default_executor() -> ThreadPool:
    """The process-wide pool (created on first use)."""
    global _default
    with _lock:
        if _default is None:
            _default = ThreadPool(DEFAULT_MAX_WORKERS)
        return _default


def thread_pool(max_workers: int) -> ThreadPool:
    """A pool of its own for one jitted function; shut down at exit like the default one."""
    pool = ThreadPool(max_workers)
    atexit.register(pool.shutdown, wait=False, cancel_futures=True)
    return pool


@atexit.register
def _shutdown_default() -> None:
    with _lock:
        if _default is not None:
            _default.shutdown(wait=False, cancel_futures=True)


def _forget_default_in_child() -> None:
    """A forked child has none of the parent's worker threads: it makes a pool of its own."""
    global _default, _lock
    _default = None
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_default_in_child)

"""Where planned calls run: anything with `submit(fn, *args) -> Future`.

The default is one thread pool for the whole process, sized for IO-bound calls
rather than for the number of CPU cores (slow calls spend their time waiting
on the network), created on first use and shut down at interpreter exit.
`xcs.jit(max_workers=N)` gives a function a pool of its own; any object
following the `Executor` protocol (a `concurrent.futures` executor, or an
adapter for Ray or Dask) can be passed as `executor=`.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol, runtime_checkable

DEFAULT_MAX_WORKERS = 64


@runtime_checkable
class Executor(Protocol):
    """What xcs_bc needs from an executor: run `fn(*args)` somewhere and return a Future."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]: ...


_default: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def default_executor() -> ThreadPoolExecutor:
    """The process-wide pool (created on first use)."""
    global _default
    with _lock:
        if _default is None:
            _default = ThreadPoolExecutor(max_workers=DEFAULT_MAX_WORKERS, thread_name_prefix="xcs_bc")
        return _default


def thread_pool(max_workers: int) -> ThreadPoolExecutor:
    """A pool of its own for one jitted function; shut down at exit like the default one."""
    pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="xcs_bc")
    atexit.register(pool.shutdown, wait=False, cancel_futures=True)
    return pool


@atexit.register
def _shutdown_default() -> None:
    with _lock:
        if _default is not None:
            _default.shutdown(wait=False, cancel_futures=True)

"""Run a jitted function over many inputs: `fast.map(items, *args, concurrency=8, progress=False)`.

It behaves like `[fast(item, *args, **kwargs) for item in items]`, with the
items' calls running `concurrency` at a time on threads of their own:

- the first item runs alone, so that its call is the one traced and the
  others replay its plan (rather than each tracing the function at once);
- results come back in the items' order;
- when an item raises, no item after it starts, and the exception of the first
  item (in the items' order) that raised is raised, as the loop would raise
  it; items after it that were already running finish, and their results are
  dropped (the loop would not have run them: their calls are the cost, like
  calls issued ahead that the run did not need);
- a KeyboardInterrupt stops starting items and is raised at once.

Limits per API (`xcs.limit`) hold across the items, since every call of every
item goes through them.  `progress=True` writes `name: done/total` to stderr
as items finish; a callable is called with (done, total) instead.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

from xcs_bc.errors import ConfigError
from xcs_bc.execute.executor import ThreadPool, wait_done

Progress = bool | Callable[[int, int], Any]


def check_options(concurrency: Any, progress: Any) -> None:
    """ConfigError for a `concurrency` that is not an int >= 1, or a `progress` that is neither a bool
    nor a callable."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(f"concurrency must be an int >= 1, got {concurrency!r}")
    if not isinstance(progress, bool) and not callable(progress):
        raise ConfigError(f"progress must be True, False or a callable(done, total), got {progress!r}")


def run_many(
    fn: Callable[..., Any],
    name: str,
    items: Iterable[Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    concurrency: int,
    progress: Progress,
) -> list[Any]:
    """`[fn(item, *args, **kwargs) for item in items]`, `concurrency` items at a time (see the module)."""
    check_options(concurrency, progress)
    todo = list(items)
    total = len(todo)
    report = _reporter(name, total, progress)
    if not todo:
        return []
    results: list[Any] = [fn(todo[0], *args, **kwargs)]  # alone: the traced call
    report(1)
    if total == 1:
        return results
    pool = ThreadPool(min(concurrency, total - 1))
    lock = threading.Lock()
    first_raised = [total]  # the index of the first item (in order) that raised: none after it starts
    done = [1]

    def one(index: int, item: Any) -> Any:
        with lock:
            if index > first_raised[0]:
                raise _NotStarted
        try:
            return fn(item, *args, **kwargs)
        except BaseException:
            with lock:
                first_raised[0] = min(first_raised[0], index)
            raise
        finally:
            with lock:
                done[0] += 1
                count = done[0]
            report(count)

    futures: list[Future[Any]] = [pool.submit(one, index, item) for index, item in enumerate(todo) if index]
    try:
        for future in futures:  # (in the items' order: the first exception met is the loop's)
            wait_done(future)
            results.append(future.result())
        return results
    finally:
        with lock:
            first_raised[0] = -1  # (returned, raised or interrupted: nothing more starts)
        for future in futures:
            future.cancel()
        pool.shutdown(wait=False)
        if progress is True:
            sys.stderr.write("\n")


class _NotStarted(Exception):
    """An item not started because an earlier one raised (never raised to the caller: the earlier
    item's exception is met first)."""


def _reporter(name: str, total: int, progress: Progress) -> Callable[[int], None]:
    if progress is False:
        return lambda done: None
    if progress is True:

        def write(done: int) -> None:
            sys.stderr.write(f"\r{name}: {done}/{total}")
            sys.stderr.flush()

        return write
    return lambda done: progress(done, total)

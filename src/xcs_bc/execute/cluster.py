"""Calls issued ahead as tasks of a Dask cluster: `xcs.jit(fn, executor=xcs.DaskExecutor(client))`.

`DaskExecutor` follows the `Executor` protocol over a `distributed.Client`
(`pip install xcs-bc[dask]`).  What differs from a thread pool, and why:

- A call is handed to the cluster only if it can be pickled (with
  cloudpickle, as Dask does); otherwise `submit` raises and the replay makes
  the call in its turn, on the caller's thread.  A pickling error is never
  served to the run as the call's own exception.
- Once handed over, a call cannot be cancelled: Dask may be running it.  Its
  future is running from the start, so the run waits for it rather than make
  the call a second time.  Calls still waiting for room under a limit
  (`xcs.limit`) are cancelled when the run ends, as with any executor.
- A task Dask cancels or loses is not served either: the run makes the call.
- The call runs on a worker: it gets its own copy of the callee and arguments
  in a cluster with worker processes (an in-process `LocalCluster` shares
  them), and it does not see the run's contextvars.  The result comes back
  pickled when it crosses processes: a result that cannot be pickled fails on
  the worker, and that failure reaches the run as the call's error (not told
  apart from the call's own; documented: such calls need results that pickle).

It pays when the slow calls are CPU-heavy tools or local model inference that
one machine cannot run enough of at once; for calls to a remote API a thread
pool costs less per call (docs/jit.md, "Executors").
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from xcs_bc.errors import ConfigError
from xcs_bc.execute.limits import Withdrawn


class DaskExecutor:
    """Calls issued ahead as tasks of a `distributed.Client` (see `xcs_bc.execute.cluster`)."""

    def __init__(self, client: Any) -> None:
        if not callable(getattr(client, "submit", None)):
            raise ConfigError(f"DaskExecutor needs a distributed.Client, got {client!r}")
        try:
            import cloudpickle  # noqa: PLC0415 - an optional dependency, with distributed
        except ImportError as exc:  # pragma: no cover - distributed depends on it
            raise ConfigError("DaskExecutor needs dask.distributed: pip install xcs-bc[dask]") from exc
        self.client = client
        self._dumps: Callable[[Any], bytes] = cloudpickle.dumps

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Hand `fn(*args, **kwargs)` to the cluster; raises (nothing handed over) when it cannot be
        pickled."""
        self._dumps((fn, args, kwargs))
        task = self.client.submit(fn, *args, pure=False, **kwargs)
        future: Future[Any] = Future()
        future.set_running_or_notify_cancel()  # (handed over: Dask may be running it)
        task.add_done_callback(functools.partial(_arrived, future))
        return future

    def __repr__(self) -> str:
        return f"DaskExecutor({self.client!r})"


def _arrived(future: Future[Any], task: Any) -> None:
    """A task came back: its result, its exception, or (cancelled or lost by Dask) `Withdrawn`."""
    status = task.status
    if status == "finished":
        future.set_result(task.result())
    elif status == "error":
        future.set_exception(task.exception())
    else:
        future.set_exception(Withdrawn())

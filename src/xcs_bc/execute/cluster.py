"""Calls issued ahead as tasks of a cluster: `xcs.DaskExecutor(client)` and `xcs.RayExecutor()`.

Both follow the `Executor` protocol: `DaskExecutor` over a `distributed.Client`
(`pip install xcs-bc[dask]`), `RayExecutor` over the Ray instance `ray.init()`
started or joined (`pip install xcs-bc[ray]`).  What differs from a thread
pool, and why:

- A call is handed to the cluster only if it can be pickled (with
  cloudpickle, as both do); otherwise `submit` raises and the replay makes
  the call in its turn, on the caller's thread.  A pickling error is never
  served to the run as the call's own exception.
- Once handed over, a call cannot be cancelled: the cluster may be running
  it.  Its future is running from the start, so the run waits for it rather
  than make the call a second time.  Calls still waiting for room under a
  limit (`xcs.limit`) are cancelled when the run ends, as with any executor.
- A task the cluster cancels or loses (a worker died) is not served either:
  the run makes the call.  Ray retries no task (``max_retries=0`` unless the
  user asks otherwise), so a call is made once by the cluster, not again by
  Ray behind the run's back.
- The call runs on a worker: it gets its own copy of the callee and arguments
  in a cluster with worker processes (Ray's always are; an in-process Dask
  `LocalCluster` shares them), and it does not see the run's contextvars.
  The result comes back pickled when it crosses processes: a result that
  cannot be pickled fails on the worker, and that failure reaches the run as
  the call's error (not told apart from the call's own; documented: such
  calls need results that pickle).  An exception the call raises on a Ray
  worker reaches the run as that exception (`RayTaskError.cause`), not as
  Ray's wrapper.

They pay when the slow calls are CPU-heavy tools or local model inference that
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
        future = _handed()
        task.add_done_callback(functools.partial(_dask_arrived, future))
        return future

    def __repr__(self) -> str:
        return f"DaskExecutor({self.client!r})"


def _handed() -> Future[Any]:
    """The future of a call handed to a cluster: running from the start (it cannot be taken back)."""
    future: Future[Any] = Future()
    future.set_running_or_notify_cancel()
    return future


def _dask_arrived(future: Future[Any], task: Any) -> None:
    """A task came back: its result, its exception, or (cancelled or lost by Dask) `Withdrawn`."""
    status = task.status
    if status == "finished":
        future.set_result(task.result())
    elif status == "error":
        future.set_exception(task.exception())
    else:
        future.set_exception(Withdrawn())


class RayExecutor:
    """Calls issued ahead as Ray tasks (see `xcs_bc.execute.cluster`).

    Start or join Ray first (`ray.init()`, `ray.init(address=...)`).  `options` are Ray's task
    options (`num_cpus=0.25`, `resources={...}`, ...), given to every call; Ray's default of one
    CPU per task lets only as many calls run at once as the cluster has CPUs.
    """

    def __init__(self, **options: Any) -> None:
        try:
            import ray  # noqa: PLC0415 - an optional dependency
        except ImportError as exc:
            raise ConfigError("RayExecutor needs ray: pip install xcs-bc[ray]") from exc
        if not ray.is_initialized():
            raise ConfigError(
                "RayExecutor needs a running Ray: call ray.init() (or ray.init(address=...)) first"
            )
        self.options = {"max_retries": 0, **options}
        try:
            self._task = ray.remote(_call).options(**self.options)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"RayExecutor: Ray refused the task options {options!r}: {exc}") from exc
        self._dumps: Callable[[Any], bytes] = ray.cloudpickle.dumps
        self._task_error: type[BaseException] = ray.exceptions.RayTaskError

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Hand `fn(*args, **kwargs)` to Ray; raises (nothing handed over) when it cannot be pickled."""
        self._dumps((fn, args, kwargs))
        ref = self._task.remote(fn, args, kwargs)
        future = _handed()
        ref.future().add_done_callback(functools.partial(_ray_arrived, future, self._task_error))
        return future

    def __repr__(self) -> str:
        return f"RayExecutor({', '.join(f'{k}={v!r}' for k, v in self.options.items())})"


def _call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """What a Ray task runs (a module's function: workers import it rather than unpickle code)."""
    return fn(*args, **kwargs)


def _ray_arrived(future: Future[Any], task_error: type[BaseException], task: Future[Any]) -> None:
    """A task came back: its result; the call's own exception (Ray wraps it in a RayTaskError whose
    `cause` it is); or, for any other failure (a task cancelled, a worker or node lost), `Withdrawn`."""
    try:
        value = task.result()
    except BaseException as exc:  # noqa: BLE001 - every outcome is handed on, none is lost
        cause = getattr(exc, "cause", None) if isinstance(exc, task_error) else None
        if isinstance(cause, BaseException):
            future.set_exception(cause)
        elif isinstance(exc, task_error):  # (a cause Ray could not bring back: its wrapper, as Ray raises it)
            future.set_exception(exc)
        else:
            future.set_exception(Withdrawn())
    else:
        future.set_result(value)

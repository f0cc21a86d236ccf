"""`xcs.DaskExecutor`: calls issued ahead as tasks of a real `dask.distributed` cluster.

The tests start a `LocalCluster` themselves: a real scheduler and worker, in this process
(`processes=False`), so what the tasks record is seen by the tests.  With worker processes the
tasks would record into copies.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from distributed import Client, LocalCluster

import xcs_bc as xcs
from xcs_bc.testing import FakeLLM

MIN_MS = 20.0


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with (
        LocalCluster(processes=False, n_workers=1, threads_per_worker=8, dashboard_address=None) as cluster,
        Client(cluster) as dask_client,
    ):
        yield dask_client


class _Seen:
    """What `tool` was asked, on any worker thread (`calls`), and how many of its calls ran at once
    (`running`: now, and the most).  Kept on an object, not in module globals: a helper changing a
    global list is one the jit runs in its turn (it would change it out of order), and what this
    file tests is how the cluster runs calls issued ahead."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.running = [0, 0]
        self.lock = threading.Lock()


_seen = _Seen()
_calls = _seen.calls
_running = _seen.running


def tool(prompt: str) -> str:
    """A slow tool that can be pickled (by reference: it is a module's function), as a cluster needs."""
    with _seen.lock:
        _seen.running[0] += 1
        _seen.running[1] = max(_seen.running)
    try:
        time.sleep(0.05)
        if "bad" in prompt:
            raise ValueError(f"tool refused {prompt}")
        _seen.calls.append(prompt)
        return f"tool({prompt})"
    finally:
        with _seen.lock:
            _seen.running[0] -= 1


def fan_out(docs: list[str]) -> str:
    notes = []
    for doc in docs:
        notes.append(tool(f"Summarize: {doc}"))
    return tool("Combine: " + " | ".join(notes))


def test_a_jitted_fan_out_runs_its_calls_on_the_cluster_like_plain(client: Client) -> None:
    fast = xcs.jit(fan_out, executor=xcs.DaskExecutor(client), min_call_ms=MIN_MS)
    fast(["warm a", "warm b"])
    for k in range(2):
        docs = [f"doc {k}.{i}" for i in range(6)]
        _calls.clear()
        expected = fan_out(docs)
        plain_calls = sorted(_calls)
        _calls.clear()
        _running[1] = 0
        assert fast(docs) == expected
        assert sorted(_calls) == plain_calls  # each call once
        assert _running[1] > 1  # the map's calls ran at once on the worker's threads
    assert fast.stats.served == 14 and fast.stats.mispredictions == 0


def test_a_call_that_cannot_be_pickled_runs_in_its_turn(client: Client) -> None:
    # a lock cannot be pickled (nor can an API client, which holds locks and sockets): the call is
    # never handed to the cluster, and no pickling error reaches the run
    guard = threading.Lock()
    slow = FakeLLM("llm", 0.03)

    def locked(prompt: str, lock: Any) -> str:
        with lock:
            return slow(prompt)

    def two(a: str, b: str, lock: Any) -> list[str]:
        return [locked(a, lock), locked(b, lock)]

    fast = xcs.jit(two, executor=xcs.DaskExecutor(client), min_call_ms=MIN_MS)
    fast("x", "y", guard)
    assert fast("p", "q", guard) == ["llm(p)", "llm(q)"]
    assert fast.stats.in_place >= 2  # made by the run, not served from the cluster


def test_a_task_that_raises_raises_at_its_call_site(client: Client) -> None:
    fast = xcs.jit(fan_out, executor=xcs.DaskExecutor(client), min_call_ms=MIN_MS)
    fast(["a", "b", "c"])
    with pytest.raises(ValueError, match="tool refused Summarize: bad"):
        fast(["ok", "bad", "fine"])


def test_a_dask_executor_needs_a_client() -> None:
    with pytest.raises(xcs.ConfigError, match="needs a distributed.Client"):
        xcs.DaskExecutor(object())

"""`xcs.RayExecutor`: calls issued ahead as tasks of a real local Ray instance.

The tests start Ray themselves (`ray.init(address="local")`: a new head and its worker processes,
never one another process started).  Ray's tasks always run in worker processes, so the calls
they make are recorded in a log file (appended one line at a time) rather than in a list, and
this module's functions are pickled by value (the workers cannot import a test module).
"""

from __future__ import annotations

import os
import pathlib
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import ray

import xcs_bc as xcs
from xcs_bc.testing import FakeLLM

MIN_MS = 20.0


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # (no report is sent from a test run)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        yield
    finally:
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        ray.shutdown()


def tool(prompt: str, log: str) -> str:
    """A slow tool that records, in the file `log`, each call with when it started and ended."""
    started = time.time()
    time.sleep(0.1)
    if "bad" in prompt:
        raise ValueError(f"tool refused {prompt}")
    with open(log, "a") as out:
        out.write(f"{prompt}\t{started}\t{time.time()}\t{os.getpid()}\n")
    return f"tool({prompt})"


def fan_out(docs: list[str], log: str) -> str:
    notes = []
    for doc in docs:
        notes.append(tool(f"Summarize: {doc}", log))
    return tool("Combine: " + " | ".join(notes), log)


def _calls(log: pathlib.Path) -> list[list[str]]:
    lines = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return [line.split("\t") for line in lines]


def _most_at_once(calls: list[list[str]]) -> int:
    edges = sorted([(float(c[1]), 1) for c in calls] + [(float(c[2]), -1) for c in calls])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def test_a_jitted_fan_out_runs_its_calls_as_ray_tasks_like_plain(
    local_ray: None, tmp_path: pathlib.Path
) -> None:
    log = tmp_path / "calls.log"
    fast = xcs.jit(fan_out, executor=xcs.RayExecutor(num_cpus=0.25), min_call_ms=MIN_MS)
    fast(["warm a", "warm b"], str(log))
    for k in range(2):
        docs = [f"doc {k}.{i}" for i in range(6)]
        _calls(log)
        expected = fan_out(docs, str(log))
        plain = _calls(log)
        assert fast(docs, str(log)) == expected
        made = _calls(log)
        assert sorted(c[0] for c in made) == sorted(c[0] for c in plain)  # each call once
        assert _most_at_once(made) > 1  # the map's calls ran at once
        assert {c[3] for c in made} - {str(os.getpid())}  # some on Ray's worker processes
    assert fast.stats.served == 14 and fast.stats.mispredictions == 0


def test_a_call_raising_on_a_worker_raises_its_own_exception_at_its_call_site(
    local_ray: None, tmp_path: pathlib.Path
) -> None:
    log = str(tmp_path / "calls.log")
    fast = xcs.jit(fan_out, executor=xcs.RayExecutor(num_cpus=0.25), min_call_ms=MIN_MS)
    fast(["a", "b", "c"], log)
    with pytest.raises(ValueError, match="tool refused Summarize: bad") as raised:
        fast(["ok", "bad", "fine"], log)
    assert type(raised.value) is ValueError  # the call's own exception, not Ray's wrapper of it
    assert fast.stats.served >= 2


def crashing_tool(prompt: str, driver: int, log: str) -> str:
    """Kills the Ray worker process it runs on (noting that in `log` first); made by the run's own
    process, it answers."""
    time.sleep(0.05)
    if os.getpid() != driver:
        with open(log, "a") as out:
            out.write(f"{prompt}\t{os.getpid()}\n")
        os._exit(1)
    return f"tool({prompt})"


def two_crashing(a: str, b: str, driver: int, log: str) -> list[str]:
    return [crashing_tool(a, driver, log), crashing_tool(b, driver, log)]


def test_a_task_whose_worker_died_is_made_by_the_run_not_served(
    local_ray: None, tmp_path: pathlib.Path
) -> None:
    log = tmp_path / "crashes.log"
    fast = xcs.jit(two_crashing, executor=xcs.RayExecutor(num_cpus=0.25), min_call_ms=MIN_MS)
    fast("x", "y", os.getpid(), str(log))
    # both calls went to Ray and killed their workers (Ray retried neither); no WorkerCrashedError
    # reached the run: it made both calls itself, and only this process answers
    assert fast("p", "q", os.getpid(), str(log)) == ["tool(p)", "tool(q)"]
    assert sorted(line.split("\t")[0] for line in log.read_text().splitlines()) == ["p", "q"]


def test_a_call_that_cannot_be_pickled_runs_in_its_turn(local_ray: None) -> None:
    guard = threading.Lock()  # a lock cannot be pickled (nor can an API client)
    slow = FakeLLM("llm", 0.03)

    def locked(prompt: str, lock: Any) -> str:
        with lock:
            return slow(prompt)

    def two(a: str, b: str, lock: Any) -> list[str]:
        return [locked(a, lock), locked(b, lock)]

    fast = xcs.jit(two, executor=xcs.RayExecutor(num_cpus=0.25), min_call_ms=MIN_MS)
    fast("x", "y", guard)
    assert fast("p", "q", guard) == ["llm(p)", "llm(q)"]
    assert fast.stats.in_place >= 2  # made by the run, not by Ray


def test_a_ray_executor_needs_ray_running_and_options_ray_takes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with pytest.raises(xcs.ConfigError, match=r"call ray.init\(\)"):
        xcs.RayExecutor()
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    with pytest.raises(xcs.ConfigError, match="Ray refused the task options"):
        xcs.RayExecutor(no_such_option=1)

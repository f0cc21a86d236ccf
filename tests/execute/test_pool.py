"""The thread pools xcs makes: width that follows the work, and workers that leave when idle."""

from __future__ import annotations

import threading
import time

import pytest

import xcs_bc as xcs
from likeplain import fresh
from xcs_bc.execute import executor
from xcs_bc.execute.executor import ThreadPool, default_executor
from xcs_bc.testing import FakeLLM


def test_the_default_pool_runs_256_ready_calls_at_once() -> None:
    meet = threading.Barrier(256)  # broken (BrokenBarrierError) unless all 256 wait at the same time
    futures = [default_executor().submit(meet.wait, 10) for _ in range(256)]
    assert sorted(future.result(timeout=20) for future in futures) == list(range(256))


def test_a_jitted_fan_out_is_not_held_to_a_fixed_width() -> None:
    """256 independent calls on the default pool: far more than the 64 threads it once had run at
    once (all 256 where issuing them takes less than one call's latency)."""
    llm = FakeLLM("llm", 0.5)

    def fan_out(topic: str, n: int) -> list[str]:
        return [llm(f"{topic} {i}") for i in range(n)]

    fast = xcs.jit(fan_out, min_call_ms=20.0)
    fast(fresh(), 3)  # the trace; its loop's template serves any length
    llm.reset()
    topic = fresh()
    assert fast(topic, 256) == [f"llm({topic} {i})" for i in range(256)]
    assert fast.stats.served == 256 and llm.max_concurrency > 128, llm.max_concurrency


def test_idle_workers_leave_and_the_pool_starts_new_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executor, "IDLE_SECONDS", 0.05)
    pool = ThreadPool(8)
    release = threading.Event()
    blocked = [pool.submit(release.wait) for _ in range(8)]
    assert pool._workers == 8
    release.set()
    assert all(future.result(timeout=5) for future in blocked)
    deadline = time.monotonic() + 5
    while pool._workers and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pool._workers == 0 and pool._idle == 0  # all gone, none counted on
    assert [pool.submit(lambda x: x * 2, n).result(timeout=5) for n in range(3)] == [0, 2, 4]
    slow = pool.submit(time.sleep, 0.2)
    pool.shutdown(wait=True)  # waits for the worker started after the others left
    assert slow.done()


def test_a_worker_counted_on_by_a_submit_does_not_leave(monkeypatch: pytest.MonkeyPatch) -> None:
    """Items submitted while workers are timing out are all run: an idle worker leaves only while
    no submit counts on it."""
    monkeypatch.setattr(executor, "IDLE_SECONDS", 0.001)
    pool = ThreadPool(4)
    results = []
    for round_ in range(200):
        futures = [pool.submit(lambda r=round_, k=k: (r, k)) for k in range(3)]
        results += [future.result(timeout=5) for future in futures]
        time.sleep(0.0005 * (round_ % 4))
    assert len(results) == 600
    pool.shutdown(wait=True)

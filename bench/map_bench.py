"""`fast.map`: a jitted 5-call pipeline over many inputs, against the loop and a hand-written pool.

    PYTHONPATH=src python bench/map_bench.py            # 1,000 inputs, 20 ms per fake call
    PYTHONPATH=src python bench/map_bench.py --quick    # 200 inputs

The pipeline makes 4 independent calls (a summary, keywords, a title, a sentiment) and one that
combines them.  Versions, on the same fresh inputs: the plain loop; a hand-written
`ThreadPoolExecutor(8).map` over the items (each item still sequential inside: what a user writes
without rewriting the pipeline); the same pool over a hand-parallel pipeline (its 4 calls on a
second pool: the practical limit for 8 items at once); and `xcs.jit(pipeline).map(items,
concurrency=8)` (a fresh jit: its first item is traced).  Results and call logs must equal the
loop's.  Throughput in items per second; per-item overhead is the jit's time over the hand-parallel
pool's, per item.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import xcs_bc as xcs
from xcs_bc.testing import CallLog, FakeLLM

LATENCY = 0.02
llm = FakeLLM("llm", LATENCY)
ITEMS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="handwritten-items")
CALLS = ThreadPoolExecutor(max_workers=32, thread_name_prefix="handwritten-calls")


def pipeline(doc):
    summary = llm(f"Summarize: {doc}")
    keywords = llm(f"Keywords: {doc}")
    title = llm(f"Title: {doc}")
    mood = llm(f"Sentiment: {doc}")
    return llm(f"Combine: {title} | {summary} | {keywords} | {mood}")


def pipeline_parallel(doc):
    prompts = [f"Summarize: {doc}", f"Keywords: {doc}", f"Title: {doc}", f"Sentiment: {doc}"]
    summary, keywords, title, mood = CALLS.map(llm, prompts)
    return llm(f"Combine: {title} | {summary} | {keywords} | {mood}")


def tool(prompt, sleep=True):
    """A slow call that can be pickled (a module's function, by reference), as a Dask cluster needs:
    an API client (FakeLLM too) holds locks and cannot be; it would run in its turn."""
    if sleep:
        time.sleep(LATENCY)
    return f"tool({prompt})"


def tool_pipeline(doc, sleep=True):
    summary = tool(f"Summarize: {doc}", sleep)
    keywords = tool(f"Keywords: {doc}", sleep)
    title = tool(f"Title: {doc}", sleep)
    mood = tool(f"Sentiment: {doc}", sleep)
    return tool(f"Combine: {title} | {summary} | {keywords} | {mood}", sleep)


def cluster_rows(docs: list[str]) -> list[tuple[str, float, bool]]:
    """The tool pipeline with fast.map, its calls on threads, on a Dask LocalCluster (a real
    scheduler and worker with 32 threads, in this process) and on a local Ray instance (a head and
    worker processes, 32 tasks at once; started and warmed up before the clock starts):
    (name, seconds, results as expected).  A cluster whose package is missing gives no row."""
    expected = [tool_pipeline(d, sleep=False) for d in docs]
    rows = []

    def row(name: str, fast: Any) -> None:
        start = time.perf_counter()
        got = fast.map(docs, concurrency=8)
        rows.append((name, time.perf_counter() - start, got == expected))

    row("fast.map, tool calls on threads", xcs.jit(tool_pipeline))
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        pass
    else:
        with (
            LocalCluster(
                processes=False, n_workers=1, threads_per_worker=32, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            row("fast.map, tool calls on Dask", xcs.jit(tool_pipeline, executor=xcs.DaskExecutor(client)))
    try:
        import ray
    except ImportError:
        return rows
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    cpus = os.cpu_count() or 1
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    try:
        executor = xcs.RayExecutor(num_cpus=cpus / 32)  # 32 tasks at once, as the threads above
        ray.get([ray.remote(tool).options(num_cpus=cpus / 32).remote("warm-up") for _ in range(64)])
        row("fast.map, tool calls on Ray", xcs.jit(tool_pipeline, executor=executor))
    finally:
        ray.shutdown()
    return rows


def timed(run: Callable[[list[str]], list[Any]], docs: list[str]) -> tuple[float, list[Any], CallLog]:
    llm.reset()
    start = time.perf_counter()
    result = run(docs)
    return time.perf_counter() - start, result, CallLog.snapshot(llm)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 inputs")
    n = 200 if parser.parse_args().quick else 1000
    docs = [f"document {i}" for i in range(n)]
    versions: list[tuple[str, Callable[[list[str]], list[Any]]]] = [
        ("plain loop", lambda d: [pipeline(x) for x in d]),
        ("pool of 8 items", lambda d: list(ITEMS.map(pipeline, d))),
        ("pool of 8 items, calls by hand", lambda d: list(ITEMS.map(pipeline_parallel, d))),
        ("fast.map, concurrency=8", lambda d: xcs.jit(pipeline).map(d, concurrency=8)),
    ]
    print(
        f"fast.map benchmark: CPython {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} cores; {n} inputs, 5 calls each (4 independent), {LATENCY * 1000:.0f} ms per call\n"
    )
    header = f"{'version':34}{'seconds':>9}{'items/s':>9}{'x plain':>9}"
    print(header)
    print("-" * len(header))
    timed(versions[1][1], docs[:16])  # warm-up: the pools' threads
    results = {}
    seconds = {}
    for name, run in versions:
        seconds[name], value, log = timed(run, docs)
        results[name] = (value, log)
        print(
            f"{name:34}{seconds[name]:9.2f}{n / seconds[name]:9.1f}{seconds['plain loop'] / seconds[name]:8.2f}x"
        )
    ideal = seconds["pool of 8 items, calls by hand"]
    jit = seconds["fast.map, concurrency=8"]
    print(f"\nfast.map over the hand-parallel pool: {jit / ideal * 100:.0f}% of its time, "
          f"{(jit - ideal) / n * 1000:+.2f} ms per item")  # fmt: skip
    print("\nthe same pipeline over a picklable tool, its calls on threads, on Dask and on Ray:")
    for name, spent, right in cluster_rows(docs):
        print(f"{name:34}{spent:9.2f}{n / spent:9.1f}{seconds['plain loop'] / spent:8.2f}x")
        extra = (spent - ideal) / n * 1000
        print(f"  {extra:+.2f} ms per item over the hand-parallel pool ({extra / 5:+.2f} ms per call)")
        if not right:
            print(f"{name}: results differ from the plain loop's", file=sys.stderr)
            results[name] = (None, None)
    bad = [name for name, value in results.items() if value != results["plain loop"]]
    for name in bad:
        print(f"{name}: results or calls differ from the plain loop's", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

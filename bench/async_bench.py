"""`xcs.jit` of async functions against the plain coroutine and a hand-written `asyncio.gather`.

    PYTHONPATH=src python bench/async_bench.py            # 5 timed rounds per row
    PYTHONPATH=src python bench/async_bench.py --quick    # 2 rounds

Two pipelines over a fake async client whose calls sleep 100 ms on the loop: a loop of 8 awaited
calls, and two stages (a draft per document, then a check per draft, then one call combining the
checks).  Rows: the plain coroutine; the same pipeline written with `asyncio.gather` by hand (the
practical limit); `xcs.jit` of the plain coroutine, once traced (its first call, timed apart),
then replayed.  Results and calls must equal the plain coroutine's.  The column "of gather"
is the jit's speedup over plain as a share of gather's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import xcs_bc as xcs

LATENCY = 0.1


class Log:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def record(self, prompt: str) -> None:
        self.calls.append(prompt)


class AsyncLLM:
    """A fake async client: 100 ms on the loop per call, its calls logged."""

    def __init__(self) -> None:
        self.log = Log()

    async def complete(self, prompt: str) -> str:
        self.log.record(prompt)
        await asyncio.sleep(LATENCY)
        return f"llm({prompt})"


llm = AsyncLLM()


async def loop_of_8(docs: list[str]) -> list[str]:
    out = []
    for doc in docs:
        out.append(await llm.complete(f"Summarize: {doc}"))
    return out


async def loop_of_8_gather(docs: list[str]) -> list[str]:
    return list(await asyncio.gather(*(llm.complete(f"Summarize: {doc}") for doc in docs)))


async def two_stages(docs: list[str]) -> str:
    drafts = [await llm.complete(f"Draft: {doc}") for doc in docs]
    checks = []
    for draft in drafts:
        checks.append(await llm.complete(f"Check: {draft}"))
    return await llm.complete("Combine: " + " | ".join(checks))


async def two_stages_gather(docs: list[str]) -> str:
    drafts = await asyncio.gather(*(llm.complete(f"Draft: {doc}") for doc in docs))
    checks = await asyncio.gather(*(llm.complete(f"Check: {draft}") for draft in drafts))
    return await llm.complete("Combine: " + " | ".join(checks))


Pipeline = Callable[[list[str]], Awaitable[Any]]


async def timed(fn: Pipeline, docs: list[str]) -> tuple[float, Any, list[str]]:
    llm.log = Log()
    start = time.perf_counter()
    value = await fn(docs)
    return time.perf_counter() - start, value, sorted(llm.log.calls)


async def scenario(name: str, plain: Pipeline, gather: Pipeline, rounds: int) -> bool:
    fast = xcs.jit(plain)
    first_docs = [f"first {i}" for i in range(8)]
    first, value, calls = await timed(fast, first_docs)
    right = (value, calls) == (await timed(plain, first_docs))[1:]
    seconds: dict[str, list[float]] = {"plain": [], "asyncio.gather by hand": [], "xcs.jit, replayed": []}
    for k in range(rounds):
        docs = [f"doc {k}.{i}" for i in range(8)]
        spent, expected, expected_calls = await timed(plain, docs)
        seconds["plain"].append(spent)
        spent, value, _ = await timed(gather, docs)
        seconds["asyncio.gather by hand"].append(spent)
        right &= value == expected
        spent, value, calls = await timed(fast, docs)
        seconds["xcs.jit, replayed"].append(spent)
        right &= (value, calls) == (expected, expected_calls)
    median = {row: statistics.median(times) for row, times in seconds.items()}
    limit = median["plain"] / median["asyncio.gather by hand"]
    print(f"\n{name}")
    for row, spent in [*median.items(), ("xcs.jit, first call (traced)", first)]:
        share = (median["plain"] / spent - 1) / (limit - 1) * 100 if limit > 1 else 100.0
        print(f"  {row:32}{spent:8.3f} s{median['plain'] / spent:8.2f}x  {share:5.0f}% of gather")
    print(f"  results and calls equal the plain coroutine's: {right}")
    return right


async def main(rounds: int) -> bool:
    print(
        f"async benchmark: CPython {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores; "
        f"{LATENCY * 1000:.0f} ms per call; medians of {rounds} rounds"
    )
    ok = await scenario("loop of 8 awaited calls", loop_of_8, loop_of_8_gather, rounds)
    ok &= await scenario("two stages over 8 documents, then combine", two_stages, two_stages_gather, rounds)
    return ok


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 timed rounds per row")
    sys.exit(0 if asyncio.run(main(2 if parser.parse_args().quick else 5)) else 1)

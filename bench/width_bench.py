"""Width that follows the work: N independent calls, by hand and through `xcs.jit` with default settings.

    PYTHONPATH=src python bench/width_bench.py            # median of 3
    PYTHONPATH=src python bench/width_bench.py --quick    # median of 1

For each latency (10 and 50 ms) and N (8 to 1,024), a fan-out of N independent fake calls (a
`FakeLLM`, sleeping) runs as a hand-written `ThreadPoolExecutor` sized to the work (N workers,
one `submit` per call, then every `.result()`) and as the jitted function with default settings
(the shared pool).  Each is warmed by one untimed round at the largest N (the pool's threads
started, the jit's plan traced at a small N: its loop's template serves every length).  A cell
is the fraction of ideal, one call's latency / the time taken; plain (N times the latency) is not
run.  Target: 256 independent 50 ms calls at 80% of ideal or more.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import xcs_bc as xcs
from xcs_bc.testing import FakeLLM

SIZES = (8, 32, 128, 256, 512, 1024)
LATENCIES = (0.010, 0.050)


def by_hand(pool: ThreadPoolExecutor, llm: FakeLLM, topic: str, n: int) -> list[str]:
    futures = [pool.submit(llm, f"{topic} {i}") for i in range(n)]
    return [future.result() for future in futures]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    rounds = 1 if parser.parse_args().quick else 3
    print(
        f"width: CPython {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores; "
        f"fraction of ideal (one call's latency / time taken), median of {rounds}"
    )
    print()
    print(f"{'latency':>8} {'N':>6} {'pool sized to N':>16} {'xcs.jit default':>16}")
    failed = False
    for latency in LATENCIES:
        llm = FakeLLM("llm", latency)

        def fan_out(topic: str, n: int, llm: FakeLLM = llm) -> list[str]:
            return [llm(f"{topic} {i}") for i in range(n)]

        fast = xcs.jit(fan_out, min_call_ms=latency * 1000 / 5)
        fast("trace", 3)
        fast("warm", max(SIZES))
        pools = {n: ThreadPoolExecutor(max_workers=n) for n in SIZES}
        for n in SIZES:
            by_hand(pools[n], llm, "warm", n)
        for n in SIZES:
            hand, jit = [], []
            for k in range(rounds):
                start = time.perf_counter()
                expected = by_hand(pools[n], llm, f"h{k}", n)
                hand.append(time.perf_counter() - start)
                start = time.perf_counter()
                got = fast(f"h{k}", n)
                jit.append(time.perf_counter() - start)
                failed |= got != expected
            print(
                f"{latency * 1000:>6.0f}ms {n:>6} {latency / statistics.median(hand):>15.0%} "
                f"{latency / statistics.median(jit):>15.0%}"
            )
        for pool in pools.values():
            pool.shutdown()
    if failed:
        print("a jitted result differed from the hand-written one's", file=sys.stderr)
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())

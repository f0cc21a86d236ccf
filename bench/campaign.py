"""A campaign of generated programs: each one jitted and compared with the plain function.

    tox -e campaign-py312                                  # 10,000 programs, seed 0, on CPython 3.12
    tox -e campaign-py310 -- --programs 500 --seed 7
    PYTHONPATH=src python bench/campaign.py                # in a checkout with the test extras installed

Programs come from the grammar of the property tests (`tests/strategies.py`) with every feature on
(`test_jit_generated.CAMPAIGN_GRAMMAR`): the extended forms, maps taken whole, helpers with loops of slow calls (followed by the jit), inputs resized in place, free `break`s,
hidden changes of a global list, the recent forms, helpers rebinding a global or changing a global
dict before a call, a slow helper doing both after its call, a jitted function calling a jitted
function, f calling the jitted f, a recursive helper, and flags equal but of another type (True, 1,
1.0), and rounds that go on after their last call (a branch on its result that counts, keeps,
changes what the next rounds read, or breaks).  Each program is called on a sequence of inputs: 3-4 of any shape (half of the programs) or
5-6 of other list lengths than the traced one; a quarter of them may call `judge` on a guess
(``speculate=[judge]``).  Every call is compared with the plain function's
(`test_jit_generated.check_program`): the result or the exception, the calls made to each fake (a
multiset), the state the impure helpers leave behind, and the jit's own account of the calls it
made that the plain run does not make (``stats.wasted``).

Hypothesis draws the programs from fixed seeds, in chunks of `--chunk` programs (seed, seed + 1, ...),
so a campaign is repeatable on one version (the timing of slow calls may still decide, rarely,
whether a call counts as slow).  A failure stops its chunk: it is shrunk to a minimal program and
printed, the next chunk goes on, and the exit status is 1: keep it as a regression test.  Ctrl-C
stops a campaign early and prints what it ran so far.  Each program runs with an address space of
`--memory-gb` (a program whose plain run takes more is a generator's bug, and fails).  The campaign runs outside CI (about 20 minutes per version on a 2-core machine);
its counts per version are in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import TextIO

from hypothesis import HealthCheck, Phase, given, note, seed, settings
from hypothesis import strategies as st

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path[:0] = [str(TESTS), str(TESTS / "e2e")]  # the grammar and the checks of the property tests

from test_jit_generated import CAMPAIGN_GRAMMAR, STAT_COUNTERS, check_program  # noqa: E402

from strategies import Inputs, Program, input_sequences, length_sequences, programs  # noqa: E402

SPECULATE = (False, False, False, ("judge",))  # a quarter may call judge on a guess


def campaign(count: int, seed_value: int, totals: Counter[str], log: TextIO | None = None) -> None:
    """Run `count` generated programs from `seed_value`, adding what they did to `totals` (and writing
    each program to `log` before it runs: the last one there is the one that never came back)."""

    @seed(seed_value)
    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(
        programs(CAMPAIGN_GRAMMAR),
        st.one_of(input_sequences(lookalikes=True), length_sequences()),
        st.sampled_from(SPECULATE),
    )
    def one(program: Program, sequence: list[Inputs], speculate: bool | tuple[str, ...]) -> None:
        note(program.source)
        note(f"speculate={speculate!r}")
        if log is not None:
            log.write(f"# program {totals['programs'] + 1}: {sequence!r}, speculate={speculate!r}\n")
            log.write(program.source + "\n")
            log.flush()
        deltas = check_program(program, sequence, speculate=speculate)
        totals["programs"] += 1
        totals["calls"] += len(deltas)
        totals["speculating"] += bool(speculate)
        for delta in deltas:
            totals.update({name: delta[name] for name in STAT_COUNTERS})
        if totals["programs"] % 500 == 0:
            print(f"  {totals['programs']} programs ...", flush=True)

    one()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--programs", type=int, default=10_000, help="how many programs (default 10,000)")
    parser.add_argument("--seed", type=int, default=0, help="the seed Hypothesis draws from (default 0)")
    parser.add_argument(
        "--memory-gb",
        type=float,
        default=8.0,
        help="the address space a program may take (default 8 GB): past it, a MemoryError fails it",
    )
    parser.add_argument(
        "--chunk", type=int, default=1000, help="programs per seed (default 1,000): see above"
    )
    parser.add_argument("--log", type=argparse.FileType("w"), help="write each program there before it runs")
    args = parser.parse_args()
    limit = int(args.memory_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    version = platform.python_version()
    chunks = -(-args.programs // args.chunk)
    print(
        f"xcs_bc campaign: CPython {version} on {platform.machine()}, {os.cpu_count()} cores; "
        f"{args.programs} programs in {chunks} chunks of {args.chunk}, seeds {args.seed}..{args.seed + chunks - 1}",
        flush=True,
    )
    started = time.monotonic()
    totals: Counter[str] = Counter()
    failures = 0
    for chunk in range(chunks):
        count = min(args.chunk, args.programs - chunk * args.chunk)
        ran: Counter[str] = Counter()  # (counted only for a chunk that ends: a failure's shrinking reruns)
        try:
            campaign(count, args.seed + chunk, ran, args.log)
            totals.update(ran)
        except KeyboardInterrupt:  # stopped early: what ran so far is still a count
            totals.update(ran)
            print(f"interrupted after {totals['programs']} programs", flush=True)
            break
        except Exception as exc:  # noqa: BLE001 - the shrunk failure is the report; the next chunk goes on
            failures += 1
            print(f"FAILED in chunk {chunk} (seed {args.seed + chunk}):", flush=True)
            print("".join(traceback.format_exception(exc)), flush=True)  # (a flaky one holds the failure)
    seconds = time.monotonic() - started
    print(
        f"{totals['programs']} programs passed, {totals['calls']} calls compared with plain; "
        f"{failures} chunks stopped by a failure, not counted ({seconds:.0f} s; "
        f"{totals['speculating']} programs speculating)"
    )
    print("  " + ", ".join(f"{name} {totals[name]}" for name in STAT_COUNTERS))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

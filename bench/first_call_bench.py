"""The first call of `xcs.jit`: how close a function called once comes to hand-written pool code.

    PYTHONPATH=src python bench/first_call_bench.py            # latency 0.05 s, median of 5
    PYTHONPATH=src python bench/first_call_bench.py --quick    # latency 0.01 s, median of 2

Every timed jit call is the FIRST call of a freshly jitted function (the trace): while it runs,
a loop whose first round shows how its calls are made has its later rounds issued at once
(`xcs_bc.execute.first`).  Each round makes fresh inputs and runs three versions on them in a
rotating order: the plain sequential code, a hand-written `ThreadPoolExecutor` version, and
`xcs.jit(plain)` called once; the jit's result and calls must equal the plain run's.

Target per row: the first call reaches at least 80% of plain / (hand-written + one round's
latency): a loop's first round runs alone before the others can be predicted (a round of
"each then refined" is two calls, the second reading the first's result).  A row without
a loop ("chain of 4") must not be more than 5% slower than plain.  In "judge 8, expand the relevant"
a round's second call comes after a branch on its first call's result: on a first call the judges
go at once and each expansion is made in its turn, so its target is 80% of plain / (one round, the
judges at once, then the expansions one after another).

The last row measures tracing overhead on glue: a function that runs thousands of pure-Python
instructions around 4 slow calls in a loop whose rounds each walk their document's own words (so
nothing goes ahead); its first call against the plain call.  The target there is at most 1.5x plain.

Exit status 1 when any result or call log differs from the plain run's; the PASS/MISS marks
report speed, they do not assert it.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import decided_at_run_time as decided
import xcs_bc as xcs
from xcs_bc.testing import CallLog, FakeLLM

llm = FakeLLM("llm", 0.05)
search = FakeLLM("search", 0.05)
FAKES = [llm, search, decided.summarizer, decided.combiner]
POOL = ThreadPoolExecutor(max_workers=64, thread_name_prefix="handwritten-first")
_counter = itertools.count()


def summarize(docs):
    out = []
    for d in docs:
        out.append(llm(f"Summarize: {d}"))
    return out


def summarize_pool(docs):
    return list(POOL.map(lambda d: llm(f"Summarize: {d}"), docs))


def summarize_joined(docs):
    return "\n".join(llm(f"Summarize: {d}") for d in docs)


def summarize_mapped(docs):
    # the calls are made by list()'s C code, through map: no call site of the function's own
    return list(map(lambda d: llm(f"Summarize: {d}"), docs))


def summarize_nonblank(docs):
    out = []
    for d in docs:
        if not d.strip():
            continue
        out.append(llm(f"Summarize: {d}"))
    return out


def summarize_nonblank_pool(docs):
    return list(POOL.map(lambda d: llm(f"Summarize: {d}"), [d for d in docs if d.strip()]))


def summarize_filtered(docs):
    return [llm(f"Summarize: {d}") for d in filter(None, docs)]


def summarize_filtered_pool(docs):
    return list(POOL.map(lambda d: llm(f"Summarize: {d}"), [d for d in docs if d]))


def summarize_named(docs):
    out = {}
    for name, text in docs.items():
        out[name] = llm(f"Summarize {name}: {text}")
    return out


def summarize_named_pool(docs):
    futures = {name: POOL.submit(llm, f"Summarize {name}: {text}") for name, text in docs.items()}
    return {name: future.result() for name, future in futures.items()}


def summarize_refine(docs):
    out = []
    for d in docs:
        summary = llm(f"Summarize: {d}")
        out.append(llm(f"Refine: {summary}"))
    return out


def summarize_refine_pool(docs):
    return list(POOL.map(lambda d: llm(f"Refine: {llm(f'Summarize: {d}')}"), docs))


def judge_best(candidates):
    best = None
    for c in candidates:
        score = sum(map(ord, llm(f"Rate: {c}"))) % 7
        if best is None or score > best[0]:
            best = (score, c)
    return best


def judge_best_pool(candidates):
    scores = list(POOL.map(lambda c: sum(map(ord, llm(f"Rate: {c}"))) % 7, candidates))
    best = None
    for score, c in zip(scores, candidates, strict=True):
        if best is None or score > best[0]:
            best = (score, c)
    return best


def keep_relevant(docs):
    kept = []
    for d in docs:
        verdict = llm(f"Relevant? {d}")
        if sum(map(ord, verdict)) % 2:
            kept.append(d)
    return kept


def keep_relevant_pool(docs):
    verdicts = list(POOL.map(lambda d: llm(f"Relevant? {d}"), docs))
    return [d for d, verdict in zip(docs, verdicts, strict=True) if sum(map(ord, verdict)) % 2]


def _relevant(verdict: str) -> bool:
    return sum(map(ord, verdict)) % 2 == 1


def expand_relevant(docs):
    out = []
    for d in docs:
        verdict = llm(f"Relevant? {d}")
        if _relevant(verdict):
            out.append(llm(f"Expand: {d}"))
    return out


def expand_relevant_pool(docs):
    verdicts = list(POOL.map(lambda d: llm(f"Relevant? {d}"), docs))
    kept = [d for d, verdict in zip(docs, verdicts, strict=True) if _relevant(verdict)]
    return list(POOL.map(lambda d: llm(f"Expand: {d}"), kept))


def expanded_in_turn(docs) -> int:
    """How many of `expand_relevant`'s calls come after its branch on a result (made in their turn)."""
    return sum(_relevant(llm.render(f"Relevant? {d}", {})) for d in docs)


def tally_votes(docs):
    votes = Counter()
    for d in docs:
        votes[llm(f"Vote on: {d}")[-2:]] += 1
    return votes.most_common(3)


def tally_votes_pool(docs):
    return Counter(answer[-2:] for answer in POOL.map(lambda d: llm(f"Vote on: {d}"), docs)).most_common(3)


def map_combine(docs):
    parts = [llm(f"Summarize: {d}") for d in docs]
    return llm("Combine: " + " | ".join(parts))


def map_combine_pool(docs):
    parts = list(POOL.map(lambda d: llm(f"Summarize: {d}"), docs))
    return llm("Combine: " + " | ".join(parts))


def chunks(text, size=40):  # a generator of the user's: its body is pure, so a loop walks its items
    for start in range(0, len(text), size):
        yield text[start : start + size]


def map_chunks_combine(doc):
    notes = [llm(f"Summarize: {c}") for c in chunks(doc)]
    return llm("Combine: " + " | ".join(notes))


def map_chunks_combine_pool(doc):
    return map_combine_pool([doc[start : start + 40] for start in range(0, len(doc), 40)])


def _summarize_all(docs):  # a helper of the user's, not jitted: the jit follows into it
    return [llm(f"Summarize: {d}") for d in docs]


def map_combine_in_a_helper(docs):
    return llm("Combine: " + " | ".join(_summarize_all(docs)))


def research(query):
    hits = search(query).split()
    notes = [llm(f"Read {h}") for h in hits]
    return llm("Write: " + "\n".join(notes))


def research_pool(query):
    hits = search(query).split()
    notes = list(POOL.map(lambda h: llm(f"Read {h}"), hits))
    return llm("Write: " + "\n".join(notes))


def aspects(docs):
    out = []
    for d in docs:
        for aspect in ("cost", "risk", "time"):
            out.append(llm(f"{aspect} of {d}"))
    return out


def aspects_pool(docs):
    pairs = [(d, aspect) for d in docs for aspect in ("cost", "risk", "time")]
    return list(POOL.map(lambda p: llm(f"{p[1]} of {p[0]}"), pairs))


def sections(docs):  # an inner loop as long as its document's sections: 3, 2, 4, 3, 2
    out = []
    for d in docs:
        for section in d.split("|"):
            out.append(llm(f"Summarize: {section}"))
    return out


def sections_pool(docs):
    parts = [section for d in docs for section in d.split("|")]
    return list(POOL.map(lambda section: llm(f"Summarize: {section}"), parts))


def chain(topic):
    a = llm(f"Outline {topic}")
    b = llm(f"Draft {a}")
    c = llm(f"Edit {b}")
    return llm(f"Title {c}")


def glue_heavy(docs):
    out = []
    for d in docs:
        counts: dict[str, int] = {}
        for w in d.split():
            w = w.strip(".,").lower()
            counts[w] = counts.get(w, 0) + 1
        top = sorted(counts, key=counts.get, reverse=True)[:5]
        out.append(llm(f"Summarize {top}: {d[:60]}"))
    return out


def fresh_docs(n: int, words: int = 0, blank_every: int = 0) -> Callable[[], list[str]]:
    def make() -> list[str]:
        k = next(_counter)
        if words:
            return [" ".join(f"w{(i * 7 + j + k) % 97}." for i in range(words)) for j in range(n)]
        if blank_every:  # (the first is never blank: the first round makes the call)
            return ["" if j % blank_every == blank_every - 1 else f"doc {k}.{j}" for j in range(n)]
        return [f"doc {k}.{j}" for j in range(n)]

    return make


def fresh_sectioned(counts: tuple[int, ...]) -> Callable[[], list[str]]:
    def make() -> list[str]:
        k = next(_counter)
        return ["|".join(f"doc {k}.{j} section {i}" for i in range(n)) for j, n in enumerate(counts)]

    return make


def fresh_text(chunks: int) -> Callable[[], str]:
    """A document of `chunks` pieces of 40 characters, new each time."""
    return lambda: "".join(f"section {next(_counter)} of the report".ljust(40, ".") for _ in range(chunks))


def fresh_query() -> str:
    return f"q{next(_counter)} a b c d e f"  # the fake search answers "search(qN a b c d e f)": 7 hits


@dataclass
class Scenario:
    name: str
    plain: Callable[[Any], Any]
    pool: Callable[[Any], Any] | None
    make_input: Callable[[], Any]
    kind: str = "loop"  # "loop": the 80% target; "chain": no slower than plain; "glue": tracing cost
    round_calls: int = 1  # calls one after another in a loop's round (its first runs alone)
    # ("branch") how many calls, for an input, a round makes after a branch on its result: on a first
    # call they are made in their turn, one after another
    in_turn: Callable[[Any], int] | None = None


SCENARIOS = [
    Scenario("map of 8 documents", summarize, summarize_pool, fresh_docs(8)),
    Scenario("map of 32 documents", summarize, summarize_pool, fresh_docs(32)),
    Scenario("list(map(...)) of 8 documents", summarize_mapped, summarize_pool, fresh_docs(8)),
    Scenario('"".join(generator) of 8 documents', summarize_joined, summarize_pool, fresh_docs(8)),
    Scenario(
        "map of 8, 2 blank skipped", summarize_nonblank, summarize_nonblank_pool, fresh_docs(8, blank_every=3)
    ),
    Scenario(
        "filter(None, 8 docs), 2 blank",
        summarize_filtered,
        summarize_filtered_pool,
        fresh_docs(8, blank_every=3),
    ),
    Scenario(
        "map of a dict's 8 items",
        summarize_named,
        summarize_named_pool,
        lambda: {f"doc{j}": text for j, text in enumerate(fresh_docs(8)())},
    ),
    Scenario(
        "map of 8, each then refined", summarize_refine, summarize_refine_pool, fresh_docs(8), round_calls=2
    ),
    Scenario("judge 8, keep the best", judge_best, judge_best_pool, fresh_docs(8)),
    Scenario("filter 8 by a verdict", keep_relevant, keep_relevant_pool, fresh_docs(8)),
    Scenario("tally 8 votes in a Counter", tally_votes, tally_votes_pool, fresh_docs(8)),
    Scenario(
        "judge 8, expand the relevant",
        expand_relevant,
        expand_relevant_pool,
        fresh_docs(8),
        kind="branch",
        in_turn=expanded_in_turn,
    ),
    Scenario("map of 8, then combine", map_combine, map_combine_pool, fresh_docs(8)),
    Scenario("8 in retry loops, then combine", decided.retried, decided.retried_pool, fresh_docs(8)),
    Scenario(
        "8 chunks of a generator, then combine", map_chunks_combine, map_chunks_combine_pool, fresh_text(8)
    ),
    Scenario("map of 8 in a helper, then combine", map_combine_in_a_helper, map_combine_pool, fresh_docs(8)),
    Scenario("search, read every hit", research, research_pool, fresh_query),
    Scenario("nested: 4 docs x 3 aspects", aspects, aspects_pool, fresh_docs(4)),
    Scenario("nested: 5 docs of 2-4 sections", sections, sections_pool, fresh_sectioned((3, 2, 4, 3, 2))),
    Scenario("chain of 4 (no loop)", chain, None, lambda: f"topic {next(_counter)}", kind="chain"),
    Scenario("glue: 4 docs x 150 words", glue_heavy, None, fresh_docs(4, words=150), kind="glue"),
]


@dataclass
class Row:
    scenario: Scenario
    times: dict[str, list[float]] = field(default_factory=lambda: {"plain": [], "pool": [], "jit": []})
    served: int = 0
    in_turn: list[int] = field(default_factory=list)  # ("branch") per round, see Scenario.in_turn
    problems: list[str] = field(default_factory=list)

    def ms(self, which: str) -> float:
        values = self.times[which]
        return statistics.median(values) * 1000 if values else float("nan")


def timed(fn: Callable[[Any], Any], arg: Any) -> tuple[float, Any, CallLog]:
    for fake in FAKES:
        fake.reset()
    start = time.perf_counter()
    try:
        value: Any = ("ok", fn(arg))
    except Exception as exc:  # noqa: BLE001 - compared with the plain run's
        value = ("raised", type(exc), str(exc))
    return time.perf_counter() - start, value, CallLog.snapshot(*FAKES)


def measure(scenario: Scenario, repeat: int) -> Row:
    row = Row(scenario)
    versions: list[tuple[str, Callable[[Any], Any] | None]] = [
        ("plain", scenario.plain),
        ("pool", scenario.pool),
    ]
    versions.append(("jit", None))  # a fresh xcs.jit(plain) each round: its first call is timed
    timed(scenario.plain, scenario.make_input())  # warm-up: imports, the pool's threads
    for round_ in range(repeat):
        arg = scenario.make_input()
        if scenario.in_turn is not None:
            row.in_turn.append(scenario.in_turn(arg))
        shift = round_ % len(versions)
        results: dict[str, tuple[Any, CallLog]] = {}
        for name, fn in versions[shift:] + versions[:shift]:
            if name == "pool" and fn is None:
                continue
            if name == "jit":
                jitted = xcs.jit(scenario.plain)
                seconds, value, log = timed(jitted, arg)
                row.served += jitted.stats.served_in_trace
            else:
                assert fn is not None
                seconds, value, log = timed(fn, arg)
            row.times[name].append(seconds)
            results[name] = (value, log)
        if results["jit"] != results["plain"]:
            row.problems.append(f"{scenario.name}, round {round_}: the first call differs from plain")
    return row


def verdict(row: Row, latency_ms: float) -> str:
    plain, jit = row.ms("plain"), row.ms("jit")
    if row.scenario.kind == "chain":
        return f"{'PASS' if jit <= plain * 1.05 else 'MISS'} (jit {jit / plain - 1:+.1%} vs plain, <= +5%)"
    if row.scenario.kind == "glue":
        return f"{'PASS' if jit <= plain * 1.5 else 'MISS'} (first call {jit / plain:.2f}x plain, <= 1.5x)"
    if row.scenario.kind == "branch":  # the first round, every later round's first call, then those in turn
        target = 0.8 * plain / (latency_ms * (2 + statistics.mean(row.in_turn)))
        return f"{'PASS' if plain / jit >= target else 'MISS'} (>= {target:.2f}x, calls after the branch in turn)"
    target = 0.8 * plain / (row.ms("pool") + latency_ms * row.scenario.round_calls)
    return f"{'PASS' if plain / jit >= target else 'MISS'} (>= {target:.2f}x)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per fake call (0.05)")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds per row; medians reported (5)")
    parser.add_argument("--quick", action="store_true", help="smoke test: --latency 0.01 --repeat 2")
    parser.add_argument("--only", default="", help="run only the rows whose name contains this text")
    args = parser.parse_args(argv)
    if args.quick:
        args.latency, args.repeat = 0.01, 2
    for fake in FAKES:
        fake.latency = args.latency
    print(
        f"xcs.jit first-call benchmark: CPython {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} cores; fake call latency {args.latency * 1000:g} ms, median of {args.repeat} rounds"
    )
    print()
    header = (
        f"{'scenario':<28} {'plain ms':>9} {'threadpool ms':>13} {'first call ms':>13} "
        f"{'pool x':>7} {'jit x':>6} {'served':>7}  target"
    )
    print(header)
    print("-" * len(header))
    rows = [measure(scenario, args.repeat) for scenario in SCENARIOS if args.only in scenario.name]
    for row in rows:
        plain, pool, jit = row.ms("plain"), row.ms("pool"), row.ms("jit")
        pool_x = f"{plain / pool:>6.2f}x" if row.times["pool"] else f"{'-':>7}"
        print(
            f"{row.scenario.name:<28} {plain:>9.1f} {pool:>13.1f} {jit:>13.1f} {pool_x} "
            f"{plain / jit:>5.2f}x {row.served:>7}  {verdict(row, args.latency * 1000)}"
        )
    print()
    print("served: calls of the timed first calls served from later rounds issued ahead (all rounds).")
    problems = [problem for row in rows for problem in row.problems]
    if problems:
        print("CORRECTNESS FAILURES:")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

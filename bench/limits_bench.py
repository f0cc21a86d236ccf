"""Limits that hold against a real API: the `openai` client and a local server that answers 429
when more than 3 requests are in flight, 0.1 s per request.

    PYTHONPATH=src:tests python bench/limits_bench.py            # median of 5
    PYTHONPATH=src:tests python bench/limits_bench.py --quick    # median of 2

Each round makes fresh documents and runs, in a rotating order: the plain sequential code, a
hand-written `ThreadPoolExecutor` version holding a `threading.Semaphore(3)` around each request
(what a careful user writes), and the jitted function (traced once before the rounds), with
`xcs.limit(client, concurrency=3)`.  A last column runs the jit with no limit named (the host's
default lets 16 go at once): the server refuses what exceeds 3, and the library must never serve
a refusal (`stats.rejected` counts them).  The client has `max_retries=0`: nothing hides a 429.

Targets per row: no error in any version, the server refuses nothing for the jit with the limit
named, and its speedup is at least 90% of the hand-written one's.  Exit status 1 when a result
differs from the plain run's or a version raised.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai

import xcs_bc as xcs
from openai_server import FakeOpenAIServer

CAP = 3  # the server answers this many requests at once, and 429 past it
LATENCY = 0.1
POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="handwritten-limits")
SEMAPHORE = threading.Semaphore(CAP)


def ask(client: Any, model: str, content: str) -> str:
    response = client.chat.completions.create(model=model, messages=[{"role": "user", "content": content}])
    return str(response.choices[0].message.content)


def summarize_docs(client, docs):
    summaries = []
    for doc in docs:
        response = client.chat.completions.create(
            model="summarizer", messages=[{"role": "user", "content": f"Summarize: {doc}"}]
        )
        summaries.append(response.choices[0].message.content)
    combined = client.chat.completions.create(
        model="writer", messages=[{"role": "user", "content": " | ".join(summaries)}]
    )
    return combined.choices[0].message.content


def summarize_docs_pool(client, docs):
    def one(doc: str) -> str:
        with SEMAPHORE:
            return ask(client, "summarizer", f"Summarize: {doc}")

    summaries = list(POOL.map(one, docs))
    with SEMAPHORE:
        return ask(client, "writer", " | ".join(summaries))


def ensemble(client, question):
    answers = []
    for model in ("alpha", "beta", "gamma", "delta", "epsilon", "zeta"):
        response = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": question}]
        )
        answers.append(response.choices[0].message.content)
    verdict = client.chat.completions.create(
        model="judge", messages=[{"role": "user", "content": "Best?\n" + "\n".join(answers)}]
    )
    return verdict.choices[0].message.content


def ensemble_pool(client, question):
    def one(model: str) -> str:
        with SEMAPHORE:
            return ask(client, model, question)

    answers = list(POOL.map(one, ("alpha", "beta", "gamma", "delta", "epsilon", "zeta")))
    with SEMAPHORE:
        return ask(client, "judge", "Best?\n" + "\n".join(answers))


_made = [0]


def fresh_docs(n: int) -> Callable[[], list[str]]:
    def make() -> list[str]:
        _made[0] += 1
        return [f"document {_made[0]}.{i}" for i in range(n)]

    return make


def fresh_question() -> str:
    _made[0] += 1
    return f"question {_made[0]}: which is best?"


SCENARIOS: list[tuple[str, Callable[..., Any], Callable[..., Any], Callable[[], Any]]] = [
    ("map of 8, then combine", summarize_docs, summarize_docs_pool, fresh_docs(8)),
    ("map of 16, then combine", summarize_docs, summarize_docs_pool, fresh_docs(16)),
    ("ensemble of 6, then judge", ensemble, ensemble_pool, fresh_question),
]


def run(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    try:
        value: Any = ("ok", fn(*args))
    except Exception as exc:  # noqa: BLE001 - reported in the table
        value = ("raised", f"{type(exc).__name__}: {exc}")
    return time.perf_counter() - start, value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="median of 2 rounds")
    options = parser.parse_args()
    repeat = 2 if options.quick else 5
    print(
        f"xcs.limit benchmark: CPython {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} cores; server: {CAP} requests at once (429 past it), {LATENCY * 1000:.0f} ms "
        f"each; median of {repeat} rounds\n"
    )
    header = (
        f"{'scenario':28}{'plain ms':>9}{'pool+sem ms':>12}{'jit ms':>8}{'pool x':>8}{'jit x':>7}"
        f"{'429s':>6}  {'target':<22}{'no limit ms':>12}{'429s':>6}{'rejected':>9}"
    )
    print(header)
    print("-" * len(header))
    failed = False
    with FakeOpenAIServer(latency=LATENCY, max_in_flight=CAP) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="bench", max_retries=0)
        limited = openai.OpenAI(base_url=server.base_url, api_key="bench", max_retries=0)
        xcs.limit(limited, concurrency=CAP)
        for name, plain, pool, make in SCENARIOS:
            with_limit = xcs.jit(plain)
            without = xcs.jit(plain)
            with_limit(limited, make())  # traced once: the rounds time replays
            without(client, make())
            times: dict[str, list[float]] = {"plain": [], "pool": [], "jit": [], "none": []}
            refused = {"jit": 0, "none": 0}
            versions = [("plain", plain, client), ("pool", pool, client), ("jit", with_limit, limited)]
            versions.append(("none", without, client))
            for round_ in range(repeat):
                arg = make()
                shift = round_ % len(versions)
                values = {}
                for key, fn, api in versions[shift:] + versions[:shift]:
                    before = server.rejected
                    seconds, values[key] = run(fn, api, arg)
                    times[key].append(seconds)
                    if key in refused:
                        refused[key] += server.rejected - before
                for key, value in values.items():
                    if value != values["plain"] or value[0] != "ok":
                        failed = True
                        print(f"  {name}, round {round_}: {key} gave {value!r}", file=sys.stderr)
            ms = {key: statistics.median(values) * 1000 for key, values in times.items()}
            pool_x, jit_x = ms["plain"] / ms["pool"], ms["plain"] / ms["jit"]
            ok = refused["jit"] == 0 and jit_x >= 0.9 * pool_x
            mark = f"{'PASS' if ok else 'MISS'} (>= {0.9 * pool_x:.2f}x)"
            print(
                f"{name:28}{ms['plain']:9.1f}{ms['pool']:12.1f}{ms['jit']:8.1f}{pool_x:7.2f}x{jit_x:6.2f}x"
                f"{refused['jit']:6d}  {mark:<22}{ms['none']:12.1f}{refused['none']:6d}"
                f"{without.stats.rejected:9d}"
            )
    print(
        "\n429s: requests the server refused during the timed rounds; rejected: attempts the jit without "
        "a limit\nmade again (all rounds, its trace too).  Every version's results equal the plain run's."
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

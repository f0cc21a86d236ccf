"""`python -m xcs_bc demo`: capture an example legacy pipeline and show what xcs_bc finds in it.

`run_demo()` runs a small document-review pipeline, written the way such
orchestration code usually is (loops with `append`, f-string prompts,
`"\\n".join`), inside `with xcs.capture() as cap:` and returns the capture.
The model calls are `FakeLLM`s that sleep `latency` seconds, so the demo needs
no network and finishes in about a second.  `print_demo()` prints an
introduction, the captured code, the graph and the report.
"""

from __future__ import annotations

import inspect
import math
import os
import sys
import textwrap
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

import xcs_bc as xcs
from xcs_bc.errors import ConfigError
from xcs_bc.testing import FakeLLM

__all__ = [
    "DEFAULT_LATENCY",
    "LATENCY_ENV",
    "JitRun",
    "latency_from_env",
    "print_demo",
    "review",
    "run_demo",
    "run_jit_demo",
]

DEFAULT_LATENCY = 0.1
"""Seconds each fake model call sleeps."""

LATENCY_ENV = "XCS_BC_DEMO_LATENCY"
"""Environment variable that overrides `DEFAULT_LATENCY` for `python -m xcs_bc demo`."""

QUESTION = "Can we move the billing service to the new database this quarter?"

DOCS = [
    {"title": "Migration plan", "text": "Dual writes for two weeks, then a cutover on a Sunday night."},
    {"title": "Load test", "text": "The new cluster held 3x the peak billing traffic at p99 < 40 ms."},
    {"title": "Incident 2023-114", "text": "A schema change locked the invoices table for 9 minutes."},
    {"title": "Team calendar", "text": "Two of the four billing engineers are on leave in the last month."},
]


def run_demo(latency: float = DEFAULT_LATENCY) -> xcs.capture:
    """Run the example pipeline under `xcs.capture()` and return the capture.

    Every fake model call sleeps `latency` seconds; a call counts as slow (an
    operation of the graph) when it takes at least half of that.
    """
    if isinstance(latency, bool) or not isinstance(latency, (int, float)) or not 0 < latency < math.inf:
        raise ConfigError(f"run_demo: latency must be a number of seconds > 0, got {latency!r}; e.g. 0.1")
    models = [FakeLLM("model_a", latency), FakeLLM("model_b", latency), FakeLLM("model_c", latency)]
    summarizer = FakeLLM("summarizer", latency)
    judge = FakeLLM("judge", latency)
    writer = FakeLLM("writer", latency)
    question, docs = QUESTION, DOCS
    min_call_ms = latency * 1000 / 2

    # The block below is the body of a legacy pipeline, unchanged: only the `with` line is new.
    with xcs.capture(min_call_ms=min_call_ms) as cap:
        drafts = []
        for model in models:
            drafts.append(model(f"Answer in three sentences: {question}"))
        summaries = []
        for doc in docs:
            summaries.append(summarizer(f"Summarize '{doc['title']}' for a reviewer:\n{doc['text']}"))
        verdict = judge("Which answer is the most accurate?\n" + "\n".join(drafts))
        report = writer(f"Question: {question}\nBest answer: {verdict}\nEvidence:\n" + "\n".join(summaries))
    assert report.startswith("writer(")  # the pipeline's result; the demo shows its graph instead
    return cap


def review(question: str, docs: list[dict[str, str]], models: list[FakeLLM], summarizer: FakeLLM,
           judge: FakeLLM, writer: FakeLLM) -> str:  # fmt: skip
    """The same pipeline as a legacy function: what `xcs.jit` takes as it is."""
    drafts = []
    for model in models:
        drafts.append(model(f"Answer in three sentences: {question}"))
    summaries = []
    for doc in docs:
        summaries.append(summarizer(f"Summarize '{doc['title']}' for a reviewer:\n{doc['text']}"))
    verdict = judge("Which answer is the most accurate?\n" + "\n".join(drafts))
    return writer(f"Question: {question}\nBest answer: {verdict}\nEvidence:\n" + "\n".join(summaries))


@dataclass(frozen=True)
class JitRun:
    """One call of `review` in the jit demo: plain and jitted wall times on the same fresh question."""

    question: str
    plain_seconds: float
    jit_seconds: float
    traced: bool
    same_result: bool


def run_jit_demo(
    latency: float = DEFAULT_LATENCY, calls: int = 3
) -> tuple[list[JitRun], xcs.JittedFunction[..., str]]:
    """Call `review` plainly and through `xcs.jit` on `calls` fresh questions; time both."""
    models = [FakeLLM("model_a", latency), FakeLLM("model_b", latency), FakeLLM("model_c", latency)]
    fakes = {"summarizer": FakeLLM("summarizer", latency), "judge": FakeLLM("judge", latency)}
    writer = FakeLLM("writer", latency)
    fast = xcs.jit(review, min_call_ms=latency * 1000 / 2)
    runs = []
    for n in range(calls):
        question = f"{QUESTION} (variant {n + 1})"
        args = (question, DOCS, models, fakes["summarizer"], fakes["judge"], writer)
        start = time.perf_counter()
        plain = review(*args)
        middle = time.perf_counter()
        jitted = fast(*args)
        end = time.perf_counter()
        runs.append(JitRun(question, middle - start, end - middle, n == 0, plain == jitted))
    return runs, fast


def latency_from_env(environ: Mapping[str, str] | None = None) -> float:
    """Seconds per fake call from `XCS_BC_DEMO_LATENCY`, else `DEFAULT_LATENCY`; ConfigError unless > 0."""
    text = (os.environ if environ is None else environ).get(LATENCY_ENV, "").strip()
    if not text:
        return DEFAULT_LATENCY
    try:
        latency = float(text)
    except ValueError:
        latency = math.nan
    if not 0 < latency < math.inf:
        raise ConfigError(
            f"{LATENCY_ENV}={text!r} is not a number of seconds > 0; unset it, or set e.g. {LATENCY_ENV}=0.05"
        )
    return latency


def _captured_block() -> list[str]:
    """The source lines of the `with xcs.capture()` block of `run_demo`, numbered like the graph's sites."""
    try:
        lines, first = inspect.getsourcelines(run_demo)
    except (OSError, TypeError):  # no source (a zipped or frozen install): skip the listing
        return []
    start = next((i for i, line in enumerate(lines) if "with xcs.capture(" in line), None)
    if start is None:
        return []
    indent = _indent(lines[start])
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > indent):
        end += 1
    return [f"  {first + i:4} | {lines[i][indent:].rstrip()}" for i in range(start, end)]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _intro(latency: float) -> str:
    min_call_ms = latency * 1000 / 2
    return textwrap.fill(
        "xcs_bc demo. The code below is ordinary orchestration code of the kind many LLM applications "
        "run: three models draft an answer to a question, a summarizer reads four documents one after "
        "another in a for loop, a judge picks the best draft, and a writer combines the verdict with the "
        "summaries. Nothing in it was changed for xcs_bc: it runs inside `with xcs.capture() as cap:`, "
        "which watches the block's bytecode as it runs on the real values and records which call used "
        f"which result. The models are fakes (xcs_bc.testing.FakeLLM) that sleep {latency:g} s per call "
        f"(set {LATENCY_ENV} to change it); every call that takes at least {min_call_ms:g} ms is a slow "
        "call, one operation of the graph. The graph is printed in SSA form, one line per slow call with "
        "its source line, followed by the groups of calls that could run at the same time; the report "
        "then says how much faster the block could be. Last, the same pipeline written as a function runs "
        "plainly and through `xcs.jit`, which traces the first call and, from the second call on, "
        "issues the independent calls at the same time.",
        width=100,
    )


def print_demo(latency: float = DEFAULT_LATENCY, out: TextIO | None = None) -> xcs.capture:
    """Run the demo and print the introduction, the captured code, the graph and the report."""
    out = sys.stdout if out is None else out
    cap = run_demo(latency)
    block = _captured_block()
    sections = [_intro(latency)]
    if block:
        sections.append(f"The captured block ({os.path.basename(__file__)}):\n\n" + "\n".join(block))
    sections.append(f"The graph, print(cap.graph):\n\n{cap.graph}")
    sections.append(f"The report, print(cap.report()):\n\n{cap.report()}")
    runs, fast = run_jit_demo(latency)
    rows = [f"  {'call':<6} {'plain':>9} {'xcs.jit':>9}  {'':8} same result"]
    for n, run in enumerate(runs, 1):
        note = "(traced)" if run.traced else "(replay)"
        plain_ms, jit_ms = run.plain_seconds * 1000, run.jit_seconds * 1000
        rows.append(f"  {n:<6} {plain_ms:7.0f}ms {jit_ms:7.0f}ms  {note:8} {run.same_result}")
    sections.append(
        "The same pipeline as a function, fast = xcs.jit(review), each call on a new question:\n\n"
        + "\n".join(rows)
        + f"\n\n{fast.stats}"
    )
    print("\n\n".join(sections), file=out)
    return cap

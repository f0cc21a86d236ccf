"""How much slower code runs while `xcs.capture()` observes every instruction.

    python bench/capture_overhead.py

Prints, per Python version, the time per loop iteration of a glue-heavy loop (string formatting,
list appends, a dict lookup, a pure helper call) run plainly and under capture, and their ratio;
then the same loop inside a function the block calls, whose helper is not pure (it changes a list
it is handed), so that the capture traces through both, instruction by instruction.  Capture is a
diagnostic: it is meant to be run once on a real pipeline, where slow calls dominate.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

import xcs_bc as xcs


def prompt_for(doc: str) -> str:
    return f"Summarize: {doc.strip()}"


def noted(doc: str, log: list[str]) -> str:
    log.append(doc)  # not pure: the capture looks inside
    return f"Summarize: {doc.strip()}"


def glue(docs: list[str]) -> list[str]:
    out = []
    lookup = {"a": 1}
    for doc in docs:
        text = prompt_for(doc) + str(lookup.get("a"))
        out.append(text.upper())
    return out


def glue_through(docs: list[str]) -> list[str]:
    out: list[str] = []
    log: list[str] = []
    lookup = {"a": 1}
    for doc in docs:
        text = noted(doc, log) + str(lookup.get("a"))
        out.append(text.upper())
    return out


def run_captured(docs: list[str]) -> float:
    start = time.perf_counter()
    with xcs.capture():
        out = []
        lookup = {"a": 1}
        for doc in docs:
            text = prompt_for(doc) + str(lookup.get("a"))
            out.append(text.upper())
    return time.perf_counter() - start


def timed(fn: Callable[[list[str]], list[str]], docs: list[str], captured: bool) -> float:
    start = time.perf_counter()
    if captured:
        with xcs.capture():
            fn(docs)
    else:
        fn(docs)
    return time.perf_counter() - start


def main() -> None:
    docs = [f" doc {i} " for i in range(2000)]
    n = len(docs)
    print(f"CPython {platform.python_version()}, {os.cpu_count()} cores: {n} iterations of glue")
    rows = [
        (
            "in the block",
            lambda: min(timed(glue, docs, False) for _ in range(5)),
            lambda: min(run_captured(docs) for _ in range(5)),
        ),
        (
            "in a function the block calls",
            lambda: min(timed(glue_through, docs, False) for _ in range(5)),
            lambda: min(timed(glue_through, docs, True) for _ in range(5)),
        ),
    ]
    for label, plain_time, captured_time in rows:
        plain, captured = plain_time(), captured_time()
        print(f"  {label}:")
        print(f"    plain     {plain / n * 1e6:8.2f} us/iteration")
        print(f"    captured  {captured / n * 1e6:8.2f} us/iteration  ({captured / plain:.0f}x)")


if __name__ == "__main__":
    main()

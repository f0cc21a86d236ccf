"""How much slower a block runs while `xcs.capture()` observes every instruction.

    python bench/capture_overhead.py

Prints, per Python version, the time per loop iteration of a glue-heavy loop (string formatting,
list appends, a dict lookup, a pure helper call) run plainly and under capture, and their ratio.
Capture is a diagnostic: it is meant to be run once on a real pipeline, where slow calls dominate.
"""

from __future__ import annotations

import platform
import time

import xcs_bc as xcs


def prompt_for(doc: str) -> str:
    return f"Summarize: {doc.strip()}"


def glue(docs: list[str]) -> list[str]:
    out = []
    lookup = {"a": 1}
    for doc in docs:
        text = prompt_for(doc) + str(lookup.get("a"))
        out.append(text.upper())
    return out


def run_plain(docs: list[str]) -> float:
    start = time.perf_counter()
    glue(docs)
    return time.perf_counter() - start


def run_captured(docs: list[str]) -> float:
    start = time.perf_counter()
    with xcs.capture():
        out = []
        lookup = {"a": 1}
        for doc in docs:
            text = prompt_for(doc) + str(lookup.get("a"))
            out.append(text.upper())
    return time.perf_counter() - start


def main() -> None:
    docs = [f" doc {i} " for i in range(2000)]
    plain = min(run_plain(docs) for _ in range(5))
    captured = min(run_captured(docs) for _ in range(5))
    n = len(docs)
    print(f"CPython {platform.python_version()}: {n} iterations of glue")
    print(f"  plain     {plain / n * 1e6:8.2f} us/iteration")
    print(f"  captured  {captured / n * 1e6:8.2f} us/iteration  ({captured / plain:.0f}x)")


if __name__ == "__main__":
    main()

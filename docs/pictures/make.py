"""Draw the pictures of docs/pictures/ (run from the repository root):

    PYTHONPATH=src python docs/pictures/make.py

- `capture.svg`: `xcs.capture()` around a call of an untouched function (`review`, below): the
  dataflow of the slow calls made inside it, and their timeline as run and as they could run;
- `replay.svg`: the same function under `xcs.jit`, its second call's replay (`fast.last_replay`)
  beside the traced first call.

The slow calls are `xcs_bc.testing.FakeLLM`s of 50 ms; times change a little from run to run.
"""

from __future__ import annotations

from pathlib import Path

import xcs_bc as xcs
from xcs_bc.testing import FakeLLM

HERE = Path(__file__).parent
llm = FakeLLM("llm", latency=0.05)
judge = FakeLLM("judge", latency=0.05)


def summarize(doc):  # untyped on purpose: it stands for legacy code
    return llm(f"Summarize {doc}")


def review(docs):
    summaries = [summarize(doc) for doc in docs]
    verdict = judge("Pick the best: " + " | ".join(summaries))
    return llm(f"Polish: {verdict}")


def main() -> None:
    docs = ["the Q3 report", "the board memo", "the incident log"]
    with xcs.capture() as cap:
        review(docs)
    (HERE / "capture.svg").write_text(cap.graph.to_svg())
    fast = xcs.jit(review)
    fast(docs)
    fast(docs)
    assert fast.last_replay is not None
    (HERE / "replay.svg").write_text(fast.last_replay.to_svg())
    print(cap.graph)
    print(fast.last_replay)


if __name__ == "__main__":
    main()

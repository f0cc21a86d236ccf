"""`fast.map(items, ...)`: a jitted pipeline over many inputs, like the plain loop over them."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import xcs_bc as xcs
from xcs_bc.testing import CallLog, FakeLLM, FakeLLMError

MIN_MS = 20.0


def make_fakes(latency: float = 0.03, fail_on: str | None = None) -> tuple[FakeLLM, FakeLLM]:
    return FakeLLM("summary", latency, fail_on=fail_on), FakeLLM("title", latency)


def pipeline(doc: str, summary: FakeLLM, title: FakeLLM, style: str = "short") -> str:
    """Two independent calls per document, then glue."""
    s = summary(f"{style} summary of {doc}")
    t = title(f"title of {doc}")
    return f"{t}: {s}"


def test_map_gives_the_loops_results_in_order_with_one_trace() -> None:
    summary, title = make_fakes()
    docs = [f"doc {i}" for i in range(10)]
    expected = [pipeline(d, summary, title, style="long") for d in docs]
    plain_calls = CallLog.snapshot(summary, title)
    summary.reset()
    title.reset()
    fast = xcs.jit(pipeline, min_call_ms=MIN_MS)
    assert fast.map(docs, summary, title, concurrency=3, style="long") == expected
    assert CallLog.snapshot(summary, title) == plain_calls  # the loop's calls, each once
    assert fast.stats.traces == 1 and fast.stats.replays == 9  # the first item alone, then replays
    # at most 3 items at once, each making its 2 calls at once
    assert summary.max_concurrency <= 3 and title.max_concurrency <= 3
    assert summary.max_concurrency + title.max_concurrency > 2  # (items did overlap)


def test_an_item_that_raises_stops_the_items_after_it_like_the_loop() -> None:
    summary, title = make_fakes(fail_on="doc 4")
    docs = [f"doc {i}" for i in range(10)]
    fast = xcs.jit(pipeline, min_call_ms=MIN_MS)
    with pytest.raises(FakeLLMError, match="doc 4"):
        fast.map(docs, summary, title, concurrency=1)
    # one item at a time: the items before it made their calls, none after it started (doc 4's own
    # title call went ahead within its replay: a call issued ahead the run did not reach, as always)
    made = CallLog.snapshot(summary, title)
    expected = [f"summary(short summary of doc {i})" for i in range(5)] + [
        f"title(title of doc {i})" for i in range(5)
    ]
    assert made == CallLog(expected)
    assert fast.stats.wasted == 1


def test_the_first_item_in_order_that_raised_is_raised_not_the_first_in_time() -> None:
    slow = FakeLLM("summary", 0.03, fail_on="doc 2")  # doc 2 fails after its latency
    title = FakeLLM("title", 0.03)

    def summary(prompt: str) -> str:
        if "doc 5" in prompt:
            raise KeyError("doc 5")  # at once, well before doc 2's failure
        return slow(prompt)

    fast = xcs.jit(pipeline, min_call_ms=MIN_MS)
    with pytest.raises(FakeLLMError, match="doc 2"):
        fast.map([f"doc {i}" for i in range(8)], summary, title, concurrency=8)


def test_progress_is_reported_as_items_finish(capsys: pytest.CaptureFixture[str]) -> None:
    summary, title = make_fakes(latency=0.025)
    fast = xcs.jit(pipeline, min_call_ms=MIN_MS)
    seen: list[tuple[int, int]] = []
    lock = threading.Lock()

    def record(done: int, total: int) -> None:
        with lock:
            seen.append((done, total))

    fast.map([f"d{i}" for i in range(6)], summary, title, progress=record)
    assert sorted(seen) == [(k, 6) for k in range(1, 7)]
    fast.map([f"e{i}" for i in range(3)], summary, title, progress=True)
    err = capsys.readouterr().err
    assert err.endswith("pipeline: 3/3\n") and "pipeline: 1/3" in err


def test_no_items_and_one_item() -> None:
    summary, title = make_fakes()
    fast = xcs.jit(pipeline, min_call_ms=MIN_MS)
    assert fast.map([], summary, title) == []
    assert fast.map(iter(["only"]), summary, title) == [pipeline("only", summary, title)]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"concurrency": 0}, "concurrency must be an int >= 1"),
        ({"concurrency": True}, "concurrency must be an int >= 1"),
        ({"concurrency": 2.5}, "concurrency must be an int >= 1"),
        ({"progress": "yes"}, "progress must be True, False or a callable"),
    ],
)
def test_bad_options_are_refused_before_any_item_runs(options: dict[str, Any], message: str) -> None:
    summary, title = make_fakes()
    fast = xcs.jit(pipeline, min_call_ms=MIN_MS)
    with pytest.raises(xcs.ConfigError, match=message):
        fast.map(["a", "b"], summary, title, **options)
    assert summary.call_count == 0


def test_a_limit_holds_across_the_items() -> None:
    summary, title = make_fakes(latency=0.02)
    limit = xcs.limit(summary, title, concurrency=2)
    fast = xcs.jit(pipeline, min_call_ms=MIN_MS)
    docs = [f"doc {i}" for i in range(8)]
    assert fast.map(docs, summary, title, concurrency=8) == [pipeline(d, summary, title) for d in docs]
    # the replayed items' 14 calls went through the limit (the traced item's, one at a time, do not)
    assert limit.calls == 14 and limit.peak == 2
    assert summary.max_concurrency <= 2 and title.max_concurrency <= 2

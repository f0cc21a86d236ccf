"""`fast.last_replay`: when each slow call of the last replayed call ran, ahead or in turn."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET

import xcs_bc as xcs
from xcs_bc.testing import FakeLLM

LATENCY = 0.05


def test_the_last_replay_shows_its_calls_overlapping_beside_the_traced_run() -> None:
    draft = FakeLLM("draft", LATENCY)
    judge = FakeLLM("judge", LATENCY)

    def review(question: str) -> str:
        drafts = [draft(f"{question} #{k}") for k in range(3)]
        return judge(" | ".join(drafts))

    fast = xcs.jit(review)
    assert fast.last_replay is None  # nothing replayed yet
    fast("q")
    fast("r")
    timeline = fast.last_replay
    assert timeline is not None
    assert [span.name for span in timeline.spans] == ["draft", "draft", "draft", "judge"]
    drafts, last = timeline.spans[:3], timeline.spans[3]
    assert sum(span.ahead for span in timeline.spans) >= 2  # (a call not started yet is taken over)
    assert max(span.start for span in drafts) < min(span.end for span in drafts)  # they overlapped
    assert last.start >= max(span.end for span in drafts) - 0.005  # the judge needs them all
    assert all(span.traced is not None for span in timeline.spans)
    assert timeline.seconds < 0.75 * timeline.traced_seconds or timeline.seconds < 3.0 * LATENCY
    # names, sites, times and threads only: nothing of the run's arguments or results is kept
    fields = {field.name for field in dataclasses.fields(timeline.spans[0])}
    assert fields == {"name", "site", "start", "end", "worker", "ahead", "traced"}
    text = str(timeline)
    assert text.startswith(
        "replay of test_the_last_replay_shows_its_calls_overlapping_beside_the_traced_run."
    )
    assert text.count("\n") == 4 and "ahead" in text
    svg = ET.fromstring(timeline.to_svg())
    titles = [node.text or "" for node in svg.iter() if node.tag.endswith("title")]
    assert sum(title.startswith("traced:") for title in titles) == 4
    assert sum(title.startswith("replay:") for title in titles) == 4
    assert "&lt;locals&gt;" in timeline.to_svg()  # (the function's qualified name, escaped)

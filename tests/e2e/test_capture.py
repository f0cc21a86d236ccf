"""The public `xcs.capture()` API: errors, exceptions, module-level blocks, golden IR dumps, the report."""

from __future__ import annotations

import math
import textwrap
import time

import pytest

import pipelines as P
import xcs_bc as xcs
from likeplain import Tool
from xcs_bc.errors import CaptureError, ConfigError
from xcs_bc.ir import passes

# Golden SSA dumps: identical on CPython 3.10, 3.11, 3.12 and 3.13 (a difference is an observation bug).
GOLDEN = {
    "branches": """\
graph branches@86(x):
  %0 = call judge(x)                           # pipelines.py:87
  %1 = call llm('other ' + x) if('yes' in %0)  # pipelines.py:91
  %2 = call m0(x)                              # pipelines.py:92
parallel %0, %2""",
    "chain": """\
graph chain@78(x):
  %0 = call llm(x)                      # pipelines.py:79
  %1 = call llm(%0 + '!')               # pipelines.py:80
  %2 = call judge(%1.upper())           # pipelines.py:81""",
    "comprehensions": """\
graph comprehensions@44(docs):
  %0 = call llm(docs[0])                # pipelines.py:45
  %1 = call llm(docs[1])                # pipelines.py:45
  %2 = call judge(docs[0])              # pipelines.py:46
  %3 = call judge(docs[1])              # pipelines.py:46
  %4 = call llm(%0)                     # pipelines.py:47
  %5 = call llm(%1)                     # pipelines.py:47
parallel %0, %1, %2, %3
parallel %4, %5""",
    "ensemble": """\
graph ensemble@28(models, prompt):
  %0 = call m0(prompt)                  # pipelines.py:31
  %1 = call m1(prompt)                  # pipelines.py:31
  %2 = call m2(prompt)                  # pipelines.py:31
parallel %0, %1, %2""",
    "judge": """\
graph judge_containers@65(question):
  %0 = call m0(question)                             # pipelines.py:66
  %1 = call m1(question)                             # pipelines.py:67
  %2 = call m2(question)                             # pipelines.py:68
  %3 = call judge(tuple(%0, %1))                     # pipelines.py:71
  %4 = call judge(list(%0, %2))                      # pipelines.py:72
  %5 = call judge(f"{format(%1)} or {format(%2)}?")  # pipelines.py:73
parallel %0, %1, %2
parallel %3, %4, %5""",
}

RUNS = {
    "ensemble": lambda: P.ensemble("q", P.MODELS)[0],
    "judge": lambda: P.judge_containers("q")[0],
    "branches": lambda: P.branches("x")[0],
    "comprehensions": lambda: P.comprehensions(["a", "b"])[0],
    "chain": lambda: P.chain("x")[0],
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_ssa_dump_is_identical_on_every_version(name: str) -> None:
    cap = RUNS[name]()
    assert str(cap.graph) == GOLDEN[name]


def test_the_block_runs_exactly_as_plain_code() -> None:
    def pipeline(docs: list[str]) -> list[str]:
        return [P.judge(P.llm(d)) for d in docs]

    P.llm.reset()
    plain = pipeline(["a", "b"])
    plain_calls = P.llm.calls
    P.llm.reset()
    with xcs.capture() as cap:
        captured = pipeline(["a", "b"])
    assert captured == plain and P.llm.calls == plain_calls
    # `pipeline` is traced through: its slow calls are the operations
    assert [op.name for op in cap.graph.operations] == ["llm", "judge", "llm", "judge"]
    P.llm.reset()
    with xcs.capture(leaves=[pipeline]) as cap:
        captured = pipeline(["a", "b"])
    assert captured == plain and P.llm.calls == plain_calls
    # a leaf: one operation
    assert [op.name for op in cap.graph.operations] == [
        "test_the_block_runs_exactly_as_plain_code.<locals>.pipeline"
    ]


def test_an_exception_propagates_unchanged_and_the_graph_is_kept() -> None:
    error = ValueError("bad input")

    def explode() -> None:
        raise error

    with pytest.raises(ValueError) as info:
        with xcs.capture(min_call_ms=P.MIN_CALL_MS) as cap:
            P.llm("before")
            explode()
    assert info.value is error  # the very object: not wrapped, not copied
    assert info.value.__traceback__ is not None
    assert [op.name for op in cap.graph.operations] == ["llm"]
    assert cap.graph.metadata["exception"] is error
    assert str(cap.graph).endswith("raised ValueError")


def test_graph_before_the_block_ends_is_a_clear_error() -> None:
    # min_call_ms high: raising and catching the error can take over 1 ms on a loaded machine, and
    # would then be recorded as a slow call (this flaked once on 3.10 in CI)
    with xcs.capture(min_call_ms=10_000) as cap:
        with pytest.raises(CaptureError, match="block has ended"):
            cap.graph  # noqa: B018
    assert cap.graph.operations == []


def test_a_capture_object_is_used_once() -> None:
    cap = xcs.capture()
    with cap:
        pass
    with pytest.raises(CaptureError, match="already used"):
        with cap:
            pass  # pragma: no cover


@pytest.mark.parametrize("bad", [-1, math.nan, math.inf, "1", None, True])
def test_min_call_ms_is_validated(bad: object) -> None:
    with pytest.raises(ConfigError, match="min_call_ms"):
        xcs.capture(min_call_ms=bad)  # type: ignore[arg-type]
    assert issubclass(ConfigError, ValueError)


def test_min_call_ms_decides_what_is_a_slow_call() -> None:
    with xcs.capture(min_call_ms=P.LATENCY * 1000 * 5) as cap:
        P.llm("fast enough now")
    assert cap.graph.operations == []
    assert "nothing to parallelize" in cap.report() or "no call" in cap.report()


def test_capture_at_module_level() -> None:
    source = textwrap.dedent(
        """
        import xcs_bc as xcs
        from pipelines import llm, judge, MIN_CALL_MS
        docs = ["a", "b"]
        with xcs.capture(min_call_ms=MIN_CALL_MS) as cap:
            out = []
            for d in docs:
                out.append(llm(d))
            verdict = judge(" ".join(out))
        """
    )
    namespace: dict[str, object] = {"__name__": "legacy_script"}
    exec(compile(source, "legacy_script.py", "exec"), namespace)
    graph = namespace["cap"].graph  # type: ignore[attr-defined]
    assert [op.name for op in graph.operations] == ["llm", "llm", "judge"]
    deps = {op.id: sorted(d.id for d in graph.dependencies(op)) for op in graph.operations}
    assert deps == {0: [], 1: [], 2: [0, 1]}
    assert namespace["verdict"] == "judge(llm(a) llm(b))"
    assert graph.metadata["resyncs"] == []


def test_report_names_groups_patterns_and_the_speedup_bound() -> None:
    cap, _ = P.two_maps_then_combine(["a", "b", "c"])
    report = cap.report()
    assert "6 calls at pipelines.py:180-181 are independent" in report
    assert "map" in report and "speedup bound" in report
    bound = passes.speedup_bound(cap.graph)
    # 7 calls of equal latency, 6 of them independent: at best 7 latencies become 2
    assert 2.5 < bound <= 3.6


def test_report_of_a_pure_chain_reports_no_group() -> None:
    cap, _ = P.chain("x")
    report = cap.report()
    assert "3 calls form a chain: llm -> llm -> judge" in report
    assert "No two calls can run at the same time" in report


def test_report_says_the_way_each_branch_on_a_result_went_and_what_jit_does() -> None:
    cap = P.branches("x")[0]
    assert (
        "  %1 llm at pipelines.py:91 runs only when 'yes' in %0 is False (%0 judge): "
        "xcs.jit issues it once that result arrives, if so"
    ) in cap.report()


def test_report_says_which_round_of_a_loop_over_a_result_a_call_is_in() -> None:
    search = Tool("search", lambda prompt: ["hit0", "hit1"])
    reader = xcs.testing.FakeLLM("reader", 0.01)
    with xcs.capture(leaves=[Tool.__call__]) as cap:  # (a stand-in for a library's tool)
        notes = [reader(h) for h in search("q")]
    assert len(notes) == 2
    report = cap.report()
    assert "%1 reader at test_capture.py" in report and "%0 is not empty (%0 search)" in report
    assert "%2 reader at test_capture.py" in report and "%0 has more than 1 items (%0 search)" in report


def test_a_captured_graph_draws_its_calls_as_they_ran_and_as_they_could() -> None:
    """The capture's times feed the SVG timeline: the calls ran one after another (grey bars in
    program order), and could have run in two rounds (blue bars: the summaries and judges at 0, the
    second llm calls after their summary)."""
    import xml.etree.ElementTree as ET

    cap = P.comprehensions(["a", "b"])[0]
    graph = cap.graph
    root = ET.fromstring(graph.to_svg())
    title = "{http://www.w3.org/2000/svg}title"

    def starts(color: str) -> list[float]:
        bars = [node for node in root.iter() if node.tag.endswith("rect") and node.get("fill") == color]
        return [float((bar.find(title).text or "").split(": ")[1].split("-")[0]) for bar in bars]

    ran, could = starts("#b8b8b8"), starts("#5b8def")
    assert ran == sorted(ran) and ran[0] == 0.0 and ran[-1] > 4 * P.LATENCY * 1000
    assert could[:4] == [0.0] * 4 and min(could[4:]) >= P.LATENCY * 1000
    assert graph.to_dot().count(" -> ") == 2 and graph.to_mermaid().count(" --> ") == 2


HEADERS = {"Authorization": "Bearer test"}


def post(url: str, headers: dict[str, str]) -> str:
    """A request helper: slow, and handed a dict it could change (as far as the capture knows)."""
    time.sleep(P.LATENCY)
    return f"{url}:{len(headers)}"


def test_calls_held_back_only_by_a_shared_dict_are_named_with_the_fix() -> None:
    with xcs.capture(min_call_ms=P.MIN_CALL_MS, leaves=[post]) as cap:  # `post` stands for requests.post
        post("one", headers=HEADERS)
        post("two", headers=HEADERS)
        post("three", headers=HEADERS)
    report = cap.report()
    assert "or an object an earlier call was handed (see below)" in report
    assert "3 calls form a chain: post -> post -> post; only a shared object keeps them apart" in report
    line = cap.graph.operations[1].site.line
    assert (
        f"  %1 post at test_capture.py:{line} waits for %0 post only because the dict HEADERS was handed "
        "to it, and a call may change what it is handed: give each call its own (`dict(HEADERS)`), or "
        "build it inside the call, and they can overlap"
    ) in report
    assert "waits for %0 post and %1 post only because the dict HEADERS was handed to them" in report

    with xcs.capture(min_call_ms=P.MIN_CALL_MS) as fixed:  # the advice taken
        post("one", headers=dict(HEADERS))
        post("two", headers=dict(HEADERS))
        post("three", headers=dict(HEADERS))
    assert len(fixed.graph.independent_sets()[0]) == 3
    assert "shared object" not in fixed.report()

"""The report for people: timing, groups with their patterns, chains, control and unknown provenance."""

from __future__ import annotations

from irfactory import (
    GraphFactory,
    chain_graph,
    control_graph,
    empty_graph,
    ensemble_graph,
    judge_graph,
    map_graph,
    two_maps_graph,
    unknown_graph,
)
from xcs_bc.analyze.report import format_report
from xcs_bc.ir import ComputationGraph


def test_judge_report() -> None:
    graph = judge_graph(durations=(1.0, 3.0, 2.0), wall_time=7.0)
    assert format_report(graph) == (
        "graph judge_pipeline: 3 slow calls\n"
        "  sequential     6000.0 ms  the slow calls one after another\n"
        "  wall time      7000.0 ms  the whole run\n"
        "  critical path  5000.0 ms  %1 gen_b (judge.py:11) -> %2 judge (judge.py:12)\n"
        "  speedup bound       1.2x  if every call started as soon as its inputs were ready\n"
        "\n"
        "Calls by callee:\n"
        "  gen_a: 1 call, 1000.0 ms\n"
        "  gen_b: 1 call, 3000.0 ms\n"
        "  judge: 1 call, 2000.0 ms\n"
        "\n"
        "Calls that can run at the same time:\n"
        "  2 calls at judge.py:10-11 are independent: gen_a, gen_b (%0, %1)\n"
        "    ensemble: 2 independent calls receive the same arguments: an ensemble of gen_a, gen_b\n"
        "\n"
        "Calls that combine independent results:\n"
        "  judge at judge.py:12 combines 2 independent results: %0 gen_a, %1 gen_b"
    )


def test_map_report_names_the_iterated_input() -> None:
    text = format_report(map_graph(8, duration=0.25))
    assert "  8 calls at pipeline.py:14 are independent: summarize x8 (%0-%7)\n" in text
    assert "    map: 8 calls at pipeline.py:14 are independent: a map of summarize over docs" in text
    assert "  speedup bound       8.0x  " in text
    assert "  wall time              ?  not recorded (taken as the sequential time)\n" in text


def test_ensemble_report() -> None:
    text = format_report(ensemble_graph(duration=0.0123))
    assert "  sequential       73.8 ms  " in text
    assert "  critical path    24.6 ms  %0 ask_gpt (pipeline.py:10) -> %5 vote (pipeline.py:15)\n" in text
    assert "an ensemble of ask_gpt, ask_claude, ask_gemini, ask_llama, ask_mistral" in text
    assert "vote at pipeline.py:15 combines 5 independent results" in text


def test_group_spanning_sites_and_two_maps() -> None:
    text = format_report(two_maps_graph())
    assert "  6 calls at pipeline.py:20-21 are independent: summarize x3, caption x3 (%0-%5)\n" in text
    assert "    map: 3 calls at pipeline.py:20 are independent: a map of summarize over docs\n" in text
    assert "    map: 3 calls at pipeline.py:21 are independent: a map of caption over self.images\n" in text


def test_chain_report_has_no_group() -> None:
    text = format_report(chain_graph(duration=0.1))
    assert "No two calls can run at the same time: each one needs a result of an earlier one." in text
    assert (
        "Chains:\n  4 calls form a chain: draft -> critique -> revise -> polish; they cannot overlap" in text
    )
    assert "  speedup bound       1.0x  " in text


def test_control_dependence_report() -> None:
    assert format_report(control_graph()).endswith(
        "Control dependencies:\n"
        "  %2 escalate at app.py:20 runs only when the branch on %0 == 'spam' goes this way (%0 classify): "
        "xcs.jit issues it once that result arrives, if so"
    )


def test_control_on_several_results() -> None:
    g = GraphFactory("steer", file="/x/app.py")
    x = g.input("x")
    a = g.call("a", x, line=1)
    b = g.call("b", x, line=2)
    c = g.call("c", x, line=3)
    g.call("d", x, line=9, control=[a, b, c])
    assert (
        "  %3 d at app.py:9 runs only when the branch on %0 goes this way, the branch on %1 goes this way "
        "and the branch on %2 goes this way (%0 a, %1 b, %2 c): xcs.jit issues it once those results arrive"
    ) in format_report(g.graph())


def test_unknown_provenance_is_explained() -> None:
    text = format_report(unknown_graph())
    assert "  3 calls at pipeline.py:1-4 are independent: a, b, d (%0, %1, %3)\n" in text
    assert text.endswith(
        "Unknown provenance:\n"
        "  %2 c at pipeline.py:3 reads a value of unknown origin, so it is assumed to need every earlier call"
    )


def test_empty_graph_says_so() -> None:
    assert format_report(empty_graph()) == (
        "graph quiet: no call took longer than 1.0 ms; nothing to parallelize\n"
        "  wall time        12.3 ms  the whole run"
    )
    assert (
        format_report(ComputationGraph([]))
        == "graph graph: no slow call was recorded; nothing to parallelize"
    )


def test_long_critical_path_is_elided() -> None:
    g = GraphFactory("long")
    value = g.input("x")
    for line in range(1, 11):
        value = g.call("step", value, line=line, duration=0.001)
    text = format_report(g.graph(wall_time=0.0105))
    assert (
        "  critical path    10.0 ms  %0 step (pipeline.py:1) -> %1 step (pipeline.py:2) -> %2 step (pipeline.py:3)"
        " -> ... 4 more ... -> %7 step (pipeline.py:8) -> %8 step (pipeline.py:9) -> %9 step (pipeline.py:10)\n"
    ) in text


def test_single_call() -> None:
    g = GraphFactory("one")
    g.call("f", g.input("x"), line=1, duration=0.002)
    text = format_report(g.graph(wall_time=0.003))
    assert text.startswith("graph one: 1 slow call\n")
    assert "No two calls can run at the same time" in text


def test_structure_depends_only_on_the_graph() -> None:
    def headings(text: str) -> list[str]:
        return [line for line in text.splitlines() if line and not line[0].isspace()]

    fast = judge_graph(durations=(0.001, 0.002, 0.003), wall_time=0.01)
    slow = judge_graph(durations=(2.0, 1.0, 0.5), wall_time=4.0)
    assert format_report(fast) == format_report(judge_graph(durations=(0.001, 0.002, 0.003), wall_time=0.01))
    assert headings(format_report(fast)) == headings(format_report(slow))


def test_a_captured_call_names_the_helper_whose_result_stopped_it() -> None:
    import xcs_bc as xcs
    from xcs_bc.testing import FakeLLM

    llm = FakeLLM("llm", 0.03)  # (30 ms against a 15 ms threshold: a loaded machine keeps `helper` fast)
    notes: list[str] = []

    def helper(text: str) -> str:  # not known to be pure: it changes `notes`
        notes.append(text)
        return text.upper()

    with xcs.capture(min_call_ms=15.0, leaves=[helper]) as cap:  # (traced through, it is seen to be safe)
        first = llm("a")
        prompt = helper(first)
        llm(prompt)
    assert "%1 llm at test_report.py:" in cap.report()
    assert "helper(), not known to be pure)" in cap.report()


def test_jit_explain_names_the_helper_whose_result_stopped_a_call() -> None:
    import xcs_bc as xcs
    from xcs_bc.testing import FakeLLM

    llm = FakeLLM("llm", 0.03)  # (see above)
    seen: list[str] = []

    def helper(text: str) -> str:
        seen.append(text)
        return text.upper()

    def pipeline(x: str) -> str:
        return llm(helper(x))

    fast = xcs.jit(pipeline, min_call_ms=15.0)
    fast("a")
    assert "helper(), which is not known to be pure" in fast.explain()

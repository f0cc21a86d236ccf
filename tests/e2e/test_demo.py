"""The demo: its captured pipeline has the expected graph, and `python -m xcs_bc` behaves as a CLI."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

import xcs_bc
from xcs_bc.__main__ import main
from xcs_bc.analyze import patterns
from xcs_bc.demo import DEFAULT_LATENCY, LATENCY_ENV, latency_from_env, print_demo, run_demo
from xcs_bc.errors import ConfigError
from xcs_bc.ir import ComputationGraph, Operation

LATENCY = 0.02


@pytest.fixture(scope="module")
def cap() -> xcs_bc.capture:
    return run_demo(latency=LATENCY)


@pytest.fixture(scope="module")
def graph(cap: xcs_bc.capture) -> ComputationGraph:
    return cap.graph


def ops_named(graph: ComputationGraph, *names: str) -> list[Operation]:
    return [op for op in graph.operations if op.name in names]


def test_operations_in_program_order(graph: ComputationGraph) -> None:
    assert [op.name for op in graph.operations] == [
        "model_a", "model_b", "model_c",
        "summarizer", "summarizer", "summarizer", "summarizer",
        "judge", "writer",
    ]  # fmt: skip
    assert all(op.duration >= LATENCY / 2 for op in graph.operations)


def test_ensemble_and_map_calls_need_nothing(graph: ComputationGraph) -> None:
    for op in ops_named(graph, "model_a", "model_b", "model_c", "summarizer"):
        assert graph.dependencies(op) == set(), op


def test_judge_needs_exactly_the_three_drafts(graph: ComputationGraph) -> None:
    (judge,) = ops_named(graph, "judge")
    assert graph.dependencies(judge) == set(ops_named(graph, "model_a", "model_b", "model_c"))


def test_writer_needs_the_verdict_and_every_summary(graph: ComputationGraph) -> None:
    (writer,) = ops_named(graph, "writer")
    assert graph.dependencies(writer) == set(ops_named(graph, "judge", "summarizer"))


def test_levels_groups_and_critical_path(graph: ComputationGraph) -> None:
    levels = graph.levels()
    assert [levels[op.id] for op in graph.operations] == [0, 0, 0, 0, 0, 0, 0, 1, 2]
    assert graph.independent_sets() == [set(graph.operations[:7])]
    path = [op.name for op in graph.critical_path().operations]
    assert path[1:] == ["judge", "writer"] and path[0] in ("model_a", "model_b", "model_c")


def test_patterns(graph: ComputationGraph) -> None:
    found = {(p.kind, tuple(op.name for op in p.operations)) for p in patterns.patterns(graph)}
    assert found == {
        ("map", ("model_a", "model_b", "model_c")),
        ("ensemble", ("model_a", "model_b", "model_c")),
        ("map", ("summarizer",) * 4),
        ("reduce", ("model_a", "model_b", "model_c", "judge")),
        ("reduce", ("summarizer",) * 4 + ("judge", "writer")),
    }


def test_graph_text_shows_sources_and_the_parallel_group(graph: ComputationGraph) -> None:
    text = str(graph)
    assert text.startswith("graph run_demo@")
    assert 'call model_a(f"Answer in three sentences: ' in text
    assert "docs[3]['title']" in text  # the map reads each doc through its path in `docs`
    assert text.endswith("parallel %0, %1, %2, %3, %4, %5, %6")
    assert "# demo.py:" in text


def test_report_mentions_the_groups(cap: xcs_bc.capture) -> None:
    report = cap.report()
    assert report.startswith("graph run_demo@")
    assert "9 slow calls" in report
    assert (
        "7 calls at demo.py:" in report
        and "are independent: model_a, model_b, model_c, summarizer x4" in report
    )
    assert "ensemble: 3 independent calls receive the same arguments" in report
    assert "map: 4 calls at demo.py:" in report and "a map of summarizer over docs" in report
    assert "judge at demo.py:" in report and "combines 3 independent results" in report
    assert "writer at demo.py:" in report and "combines 5 independent results" in report
    assert "Unknown provenance" not in report


def test_print_demo_prints_intro_code_graph_and_report() -> None:
    out = io.StringIO()
    print_demo(latency=LATENCY, out=out)
    text = out.getvalue()
    assert text.startswith("xcs_bc demo.")
    assert "| with xcs.capture(min_call_ms=min_call_ms) as cap:" in text
    assert "|     for doc in docs:" in text
    assert "The graph, print(cap.graph):\n\ngraph run_demo@" in text
    assert "The report, print(cap.report()):\n\ngraph run_demo@" in text
    assert "fast = xcs.jit(review)" in text and "(replay) True" in text


@pytest.mark.parametrize("latency", [0, -1, float("nan"), float("inf"), True, "0.1"])
def test_run_demo_rejects_a_bad_latency(latency: object) -> None:
    with pytest.raises(ConfigError, match="latency"):
        run_demo(latency=latency)  # type: ignore[arg-type]


def test_latency_from_env() -> None:
    assert latency_from_env({}) == DEFAULT_LATENCY
    assert latency_from_env({LATENCY_ENV: " "}) == DEFAULT_LATENCY
    assert latency_from_env({LATENCY_ENV: "0.01"}) == 0.01
    for bad in ("fast", "0", "-0.1", "nan", "inf"):
        with pytest.raises(ConfigError, match=LATENCY_ENV):
            latency_from_env({LATENCY_ENV: bad})


# --- the command line ------------------------------------------------------


@pytest.mark.parametrize("argv", [[], ["--help"], ["-h"], ["help"], ["demo", "--help"]])
def test_help_prints_usage(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert out.startswith("usage: python -m xcs_bc COMMAND") and "  demo " in out and not err


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["frobnicate"], "unknown command 'frobnicate'"), (["demo", "extra"], "'demo' takes no arguments")],
)
def test_bad_command_line_exits_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert not out and message in err and "usage:" in err


def test_bad_latency_env_exits_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(LATENCY_ENV, "fast")
    assert main(["demo"]) == 2
    assert f"{LATENCY_ENV}='fast' is not a number of seconds > 0" in capsys.readouterr().err


def run_module(*args: str, latency: str = "0.02") -> subprocess.CompletedProcess[str]:
    """`python -m xcs_bc ARGS` in a fresh interpreter that imports this same xcs_bc."""
    src = str(Path(xcs_bc.__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, LATENCY_ENV: latency}
    return subprocess.run(
        [sys.executable, "-m", "xcs_bc", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_python_m_xcs_bc_demo_exits_0() -> None:
    done = run_module("demo")
    assert done.returncode == 0, done.stderr
    assert "graph run_demo@" in done.stdout and "speedup bound" in done.stdout
    assert "parallel %0, %1, %2, %3, %4, %5, %6" in done.stdout


def test_python_m_xcs_bc_unknown_command_exits_2() -> None:
    done = run_module("frobnicate")
    assert done.returncode == 2
    assert "unknown command 'frobnicate'" in done.stderr and not done.stdout


def test_jit_demo_replays_with_the_same_results() -> None:
    from xcs_bc.demo import run_jit_demo

    runs, fast = run_jit_demo(latency=0.02, calls=3)
    assert [run.traced for run in runs] == [True, False, False]
    assert all(run.same_result for run in runs)
    assert fast.stats.traces == 1 and fast.stats.replays == 2
    assert fast.stats.served == 18 and fast.stats.in_place == 0 and fast.stats.wasted == 0

"""`analyze.wrapping`: which functions a captured run could wrap in `xcs.jit`, and what for."""

from __future__ import annotations

import dataclasses

import pytest

from irfactory import GraphFactory
from xcs_bc.analyze.report import format_report
from xcs_bc.analyze.wrapping import worth_wrapping
from xcs_bc.ir import Caller, ComputationGraph, Site

MS = 0.001


def at(function: str, call: int, line: int, module: str = "app") -> Caller:
    return Caller(function, module, Site("/src/app.py", line, "caller", 0), call)


def with_stacks(graph: ComputationGraph, stacks: list[tuple[Caller, ...]]) -> ComputationGraph:
    ops = [dataclasses.replace(op, stack=stack) for op, stack in zip(graph.operations, stacks, strict=True)]
    return ComputationGraph(ops, graph.inputs, graph.outputs, dict(graph.metadata))


def pipeline_graph() -> ComputationGraph:
    """`pipeline` makes a call, calls `analyze` twice (two independent calls each), then a last call
    that needs everything: 20 ms each."""
    g = GraphFactory("block")
    first = g.call("search", "q", line=1, duration=20 * MS)
    inner = [g.call("llm", f"part {i}", line=5, duration=20 * MS) for i in range(4)]
    g.call("llm", first, *inner, line=2, duration=20 * MS)
    pipe = at("pipeline", 1, 10)
    return with_stacks(
        g.graph(),
        [
            (pipe,),
            (pipe, at("analyze", 2, 3)),
            (pipe, at("analyze", 2, 3)),
            (pipe, at("analyze", 3, 3)),
            (pipe, at("analyze", 3, 3)),
            (pipe,),
        ],
    )


def test_a_functions_own_calls_and_each_helper_call_are_the_units() -> None:
    found = {wrap.function: wrap for wrap in worth_wrapping(pipeline_graph())}
    pipeline, analyze = found["pipeline"], found["analyze"]
    # pipeline: search 20 | analyze 40 | analyze 40, then the last call 20: 120 ms, 60 at best
    assert (pipeline.calls, pipeline.slow_calls) == (1, 6)
    assert pipeline.sequential == pytest.approx(0.120) and pipeline.bound == pytest.approx(0.060)
    # analyze, twice: two independent calls of 20 ms each time
    assert (analyze.calls, analyze.slow_calls) == (2, 4)
    assert analyze.saves == pytest.approx(0.040)
    assert [wrap.function for wrap in worth_wrapping(pipeline_graph())] == ["pipeline", "analyze"]
    assert pipeline.hint == "xcs.jit(app.pipeline)"


def test_a_function_whose_calls_form_a_chain_is_not_worth_wrapping() -> None:
    g = GraphFactory("block")
    a = g.call("llm", "q", line=1, duration=20 * MS)
    g.call("llm", a, line=2, duration=20 * MS)
    chain = at("chain", 1, 9, module="__main__")
    assert worth_wrapping(with_stacks(g.graph(), [(chain,), (chain,)])) == []
    b = g.call("llm", "r", line=3, duration=20 * MS)
    (wrap,) = worth_wrapping(with_stacks(g.graph(), [(chain,), (chain,), (chain,)]))
    assert wrap.hint == "xcs.jit(chain)"  # a script's function, as the script names it
    assert wrap.saves == pytest.approx(0.020) and b.deps


def test_the_report_names_them_and_a_graph_without_stacks_has_no_section() -> None:
    report = format_report(pipeline_graph())
    assert "Functions worth wrapping in xcs.jit" in report
    assert (
        "  xcs.jit(app.pipeline) could save up to 60.0 ms of 120.0 ms (1 call, 6 slow calls inside)" in report
    )
    assert (
        "  xcs.jit(app.analyze) could save up to 40.0 ms of 80.0 ms (2 calls, 4 slow calls inside)" in report
    )
    plain = ComputationGraph(
        [dataclasses.replace(op, stack=()) for op in pipeline_graph().operations], (), (), {"name": "block"}
    )
    assert "worth wrapping" not in format_report(plain)


class Client:
    """An object two helper calls are handed."""


def test_helper_calls_handed_the_same_object_wait_for_each_other_under_the_jit() -> None:
    shared, other = Client(), Client()
    graph = pipeline_graph()
    # both calls of analyze were handed `client`; the jit makes the second after the first
    graph.metadata["objects_handed"] = {2: (("client", shared),), 3: (("client", shared), ("cache", {}))}
    found = {wrap.function: wrap for wrap in worth_wrapping(graph)}
    pipeline = found["pipeline"]
    assert pipeline.bound == pytest.approx(0.060) and pipeline.today == pytest.approx(0.100)
    assert pipeline.saves_today == pytest.approx(0.020)
    assert pipeline.held == (
        "analyze (app.py:3) waits for the call before it, a helper call handed the same Client (`client`), "
        "which it may change (to the jit's plan a helper call is one call)"
    )
    report = format_report(graph)
    assert f"    of which the jit saves about 20.0 ms: {pipeline.held}" in report
    # handed objects of their own: the jit realizes the whole bound, and says nothing more
    graph.metadata["objects_handed"] = {2: (("client", shared),), 3: (("client", other),)}
    pipeline = {wrap.function: wrap for wrap in worth_wrapping(graph)}["pipeline"]
    assert pipeline.today == pytest.approx(pipeline.bound) and pipeline.held == ""
    assert "of which the jit saves" not in format_report(graph)


def test_an_own_call_reading_an_object_a_helper_was_handed_waits_for_it_under_the_jit() -> None:
    g = GraphFactory("block")
    client = Client()
    g.call("llm", "part", line=5, duration=20 * MS)  # made inside the helper
    g.call("llm", g.input("client", client), line=2, duration=20 * MS)  # the function's own call
    main = at("main", 1, 10)
    graph = with_stacks(g.graph(), [(main, at("ask", 2, 1)), (main,)])
    graph.metadata["objects_handed"] = {2: (("self", client),)}
    (wrap,) = worth_wrapping(graph)
    assert wrap.bound == pytest.approx(0.020) and wrap.today == pytest.approx(0.040)
    assert wrap.held.startswith(
        "llm (pipeline.py:2) waits for ask (app.py:1), a helper call handed the same Client"
    )

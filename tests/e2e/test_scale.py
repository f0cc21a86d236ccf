"""Scale: the analysis, printing and planning of long runs grow about linearly, and never recurse
as deep as a loop has rounds.

Growth is judged as a ratio of times between n and 4n operations, never as an absolute time:
something meant to be linear (or n log n) must take less than `LINEAR` times as long for four times
the size (a quadratic step takes 16 times as long, a cubic one 64).  Each time is the best of a few
repeats, and a ratio is measured again before it fails, so that a loaded machine does not fail it.

Depth: a loop that accumulates (`text = text + llm(d)`, `out[d] = llm(d)`, appending to a list)
hands its last call a value nested as deep as the loop has rounds.  Printing, checking, reporting,
planning and replaying it must work at any depth with the default recursion limit.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable

import pytest

import xcs_bc as xcs
from irfactory import GraphFactory, const, expr, it
from xcs_bc.analyze.report import format_report
from xcs_bc.ir import MAX_DEPTH, ComputationGraph, Operation, ValueRef
from xcs_bc.ir.check import check
from xcs_bc.ir.text import PRINT_DEPTH, format_value
from xcs_bc.plan.planner import make_plan
from xcs_bc.plan.recipes import RefusalKind
from xcs_bc.plan.slices import Env
from xcs_bc.testing import FakeLLM

LINEAR = 8.0
"""time(4n) / time(n) stays below this for linear and n log n work (quadratic gives about 16)."""

N = 1000
"""Operations in the smaller graph: big enough to show growth, small enough to take well under a second."""


def _best(work: Callable[[], object], repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def _growth(make: Callable[[int], ComputationGraph], measure: Callable[[ComputationGraph], object]) -> float:
    """time(2N) / time(N // 2) of `measure`, the smallest of three measurements (each a best of repeats)."""
    small, large = make(N // 2), make(2 * N)
    ratios = []
    for _ in range(3):
        ratio = _best(lambda: measure(large)) / _best(lambda: measure(small))
        if ratio < LINEAR:
            return ratio
        ratios.append(ratio)
    return min(ratios)


# -- graphs of n operations, built directly --------------------------------------------------------


def chain(n: int) -> ComputationGraph:
    """`x = step(x)` n times: each call needs the one before it."""
    g = GraphFactory("chain")
    x = g.input("x")
    for _ in range(n):
        x = g.call("step", x, line=3, duration=0.001)
    return g.graph(outputs=[x], wall_time=float(n) / 1000)


def map_reduce(n: int) -> ComputationGraph:
    """`[summarize(d) for d in docs]`, then one call reading every result."""
    g = GraphFactory("map_reduce")
    docs = g.input("docs")
    outs = [g.call("summarize", it(docs, k), line=4, duration=0.001) for k in range(n)]
    g.call("combine", expr("list", *outs), line=5, duration=0.001)
    return g.graph(wall_time=float(n) / 1000)


def steered(n: int) -> ComputationGraph:
    """Each call made only because the previous one's result steered a branch."""
    g = GraphFactory("steered")
    docs = g.input("docs")
    previous = g.call("first", docs, line=2)
    for k in range(n - 1):
        previous = g.call("step", it(docs, k), line=3, control=[expr("==", previous, "yes")], duration=0.001)
    return g.graph(wall_time=float(n) / 1000)


def accumulated(n: int) -> ComputationGraph:
    """`text = text + llm(d)` for n documents, then one call on the text (nested n deep)."""
    g = GraphFactory("accumulated")
    docs = g.input("docs")
    text: ValueRef = const("")
    for k in range(n):
        text = expr("+", text, g.call("llm", it(docs, k), line=3, duration=0.001))
    g.call("final", text, line=4)
    return g.graph(wall_time=float(n) / 1000)


SHAPES = {"chain": chain, "map_reduce": map_reduce, "steered": steered, "accumulated": accumulated}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_the_report_grows_linearly(shape: str) -> None:
    assert _growth(SHAPES[shape], format_report) < LINEAR


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_the_ssa_text_grows_linearly(shape: str) -> None:
    assert _growth(SHAPES[shape], str) < LINEAR


@pytest.mark.parametrize("shape", ["chain", "map_reduce", "steered"])
def test_the_validator_grows_linearly(shape: str) -> None:
    # (not "accumulated": there every `+` depends on all the calls before it, so the deps the
    # graph holds grow as n squared, and so does checking them)
    assert _growth(SHAPES[shape], check) < LINEAR


def test_the_report_of_a_long_chain_still_finds_the_chain() -> None:
    text = format_report(chain(2 * N))
    assert f"{2 * N} calls form a chain" in text
    assert "No two calls can run at the same time" in text


def test_the_report_of_a_captured_chain_grows_linearly() -> None:
    llm = FakeLLM("llm", latency=0.0)

    def captured(n: int) -> ComputationGraph:
        with xcs.capture(min_call_ms=0.0) as cap:
            x = "topic"
            for _ in range(n):
                x = llm(x)
        return cap.graph

    small, large = captured(N // 4), captured(N)
    assert [op.name for op in large.operations].count("llm") == N
    ratio = min(_best(lambda: format_report(large)) / _best(lambda: format_report(small)) for _ in range(3))
    assert ratio < LINEAR


# -- depth -------------------------------------------------------------------------------------------


def nested(depth: int) -> ComputationGraph:
    """One call, then a value that adds a constant to its result `depth` times, then a call on it."""
    g = GraphFactory("nested")
    value = g.call("first", g.input("x"), line=1)
    for k in range(depth):
        value = expr("+", value, const(k))
    g.call("last", value, line=2)
    return g.graph()


def test_a_value_knows_its_depth() -> None:
    value = nested(10).operations[1].args[0]
    assert value.depth == 10
    assert value.operands[1].depth == 0
    assert expr("list", value, const(1)).depth == 11


def test_a_deep_value_prints_checks_and_reports_with_the_default_recursion_limit() -> None:
    assert sys.getrecursionlimit() <= 1000 * 4  # the default (pytest leaves it alone)
    graph = nested(3 * sys.getrecursionlimit())  # deeper than any recursive walk could go
    check(graph)
    text = str(graph)
    assert re.search(r"  %1 = call last\(\(+\.\.\. \+ ", text)  # the inner part elided
    assert text.count("+") == PRINT_DEPTH + 1  # the outer levels kept
    assert format_report(graph).startswith("graph nested: 2 slow calls")
    assert graph.dependencies(graph.operations[1]) == {graph.operations[0]}


def test_a_shallow_value_prints_whole() -> None:
    graph = nested(PRINT_DEPTH)
    assert "..." not in format_value(graph.operations[1].args[0])


# -- real runs of loops that accumulate --------------------------------------------------------------

ROUNDS = 3000


def concatenate(llm: FakeLLM, docs: list[str]) -> str:
    text = ""
    for doc in docs:
        text = text + llm(doc)
    return llm(text)


def store(llm: FakeLLM, docs: list[str]) -> str:
    out = {}
    for doc in docs:
        out[doc] = llm(doc)
    return llm(str(len(out)))


def append_to(llm: FakeLLM, docs: list[str], answers: list[str]) -> str:
    for doc in docs:
        answers.append(llm(doc))
    return llm(" ".join(answers))


def _needs(graph: ComputationGraph, op: Operation) -> set[Operation]:
    """Every operation `op` needs, directly or through others (with min_call_ms=0, `str.join` is one)."""
    found: set[Operation] = set()
    todo = [op]
    while todo:
        for dep in graph.dependencies(todo.pop()):
            if dep not in found:
                found.add(dep)
                todo.append(dep)
    return found


def test_a_captured_concatenation_of_thousands_of_rounds_prints_with_exact_dependencies() -> None:
    llm = FakeLLM("llm", latency=0.0)
    docs = [f"d{k}" for k in range(ROUNDS)]
    with xcs.capture(min_call_ms=0.0) as cap:
        text = ""
        for doc in docs:
            text = text + llm(doc)
        llm(text)
    graph = cap.graph
    calls = [op for op in graph.operations if op.name == "llm"]
    last = calls[-1]
    assert len(calls) == ROUNDS + 1
    # (a pause of the tracer inside `+` can still record that `+` as a slow step of its own, whose
    # result the next rounds add to: so the depth is that of the rounds since the last such step)
    deepest = max((ref for op in graph.operations for ref in op.inputs), key=lambda ref: ref.depth)
    assert deepest.depth > 4 * PRINT_DEPTH
    assert re.match(r"\(+\.\.\. \+ %", format_value(deepest))  # the inner part elided
    assert _needs(graph, last) >= set(calls[:-1])  # exact, whatever the depth
    assert "call llm(" in str(graph)
    assert "reads a value" not in format_report(graph)


@pytest.mark.parametrize(
    ("latency", "min_call_ms", "rounds"), [(0.0, 0.0, ROUNDS), (0.001, 0.5, 400)], ids=["fast", "slow"]
)
@pytest.mark.parametrize("function", [concatenate, store, append_to])
def test_a_jitted_accumulating_loop_behaves_like_the_plain_one(
    function: Callable[..., str], latency: float, min_call_ms: float, rounds: int
) -> None:
    llm = FakeLLM("llm", latency=latency)
    docs = [f"d{k}" for k in range(rounds)]
    fast = xcs.jit(function, min_call_ms=min_call_ms)
    for _ in range(3):
        extra: list[list[str]] = [[]] if function is append_to else []
        plain_extra: list[list[str]] = [[]] if function is append_to else []
        assert fast(llm, docs, *extra) == function(llm, docs, *plain_extra)
        assert extra == plain_extra
    explained = fast.explain()
    assert "internal error" not in explained
    assert fast.stats.replays == 2


def test_a_call_on_a_value_nested_too_deep_runs_in_its_turn_and_says_why() -> None:
    graph = nested(MAX_DEPTH + 1)
    plan = make_plan(graph, [], Env({"x": "topic"}, {}, {}))
    first, last = plan.recipes
    assert not last.ahead
    assert last.refusal is not None and last.refusal.kind is RefusalKind.TOO_DEEP
    assert str(last.refusal) == (
        f"an argument is not computed ahead: it nests expressions {MAX_DEPTH + 1} levels deep "
        f"(a value accumulated over a loop's rounds, say), more than the {MAX_DEPTH} a recipe computes"
    )
    assert first.refusal is None or first.refusal.kind is not RefusalKind.TOO_DEEP
    refusal = make_plan(nested(MAX_DEPTH), [], Env({"x": "topic"}, {}, {})).recipes[1].refusal
    assert refusal is None or refusal.kind is not RefusalKind.TOO_DEEP


# -- tracing a container built from slow results -------------------------------------------------------


def _capture_seconds(form: str, n: int) -> float:
    llm = FakeLLM("llm", latency=0.0)
    docs = [f"d{k}" for k in range(n)]
    start = time.perf_counter()
    with xcs.capture(min_call_ms=0.0) as cap:
        if form == "list":
            built: object = [llm(d) for d in docs]
        elif form == "set":
            built = {llm(d) for d in docs}
        elif form == "dict":
            built = {d: llm(d) for d in docs}
        elif form == "star":
            built = [*[llm(d) for d in docs], "end"]
        else:
            appended: list[str] = []
            for d in docs:
                appended.append(llm(d))
            built = appended
    seconds = time.perf_counter() - start
    assert built and [op.name for op in cap.graph.operations].count("llm") == n
    return seconds


@pytest.mark.parametrize("form", ["list", "set", "dict", "star", "append"])
def test_tracing_a_container_built_from_slow_results_grows_linearly(form: str) -> None:
    # each item added used to rebuild the container's deps from every earlier item's (n^3 in all)
    n = N // 4
    ratios = []
    for _ in range(3):
        small = min(_capture_seconds(form, n) for _ in range(3))
        large = min(_capture_seconds(form, 4 * n) for _ in range(3))
        ratios.append(large / small)
        if ratios[-1] < LINEAR:
            break
    assert min(ratios) < LINEAR


def test_a_comprehension_of_slow_results_keeps_its_exact_dependencies() -> None:
    llm = FakeLLM("llm", latency=0.0)
    docs = [f"d{k}" for k in range(50)]
    with xcs.capture(min_call_ms=0.0) as cap:
        answers = [llm(d) for d in docs]
        llm(" | ".join(answers))
    calls = [op for op in cap.graph.operations if op.name == "llm"]
    assert len(calls) == 51
    assert _needs(cap.graph, calls[-1]) >= set(calls[:-1])
    assert all(not cap.graph.dependencies(op) for op in calls[:-1])

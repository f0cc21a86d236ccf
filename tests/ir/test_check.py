"""The IR validator: every scenario passes, and each invariant has a graph that breaks it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from irfactory import SCENARIOS, GraphFactory, cell, const, expr, glob, it
from xcs_bc.errors import IRError, XCSError
from xcs_bc.ir import MISSING, ComputationGraph, ExprKind, Site, Source, ValueRef
from xcs_bc.ir.check import check


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenarios_pass(name: str) -> None:
    check(SCENARIOS[name]())


def test_irerror_is_a_valueerror_and_an_xcserror() -> None:
    assert issubclass(IRError, XCSError)
    assert issubclass(IRError, ValueError)


def base() -> ComputationGraph:
    """%0 summarize(docs[0]), %1 summarize(docs[1]), %2 judge(%0, %1) at pipeline.py:14-16."""
    g = GraphFactory()
    docs = g.input("docs")
    a = g.call("summarize", it(docs, 0), line=14)
    b = g.call("summarize", it(docs, 1), line=15)
    g.call("judge", a, b, line=16, kw={"k": 3})
    return g.graph()


def with_op(index: int, **changes: Any) -> ComputationGraph:
    """`base()` with operation `index` changed."""
    graph = base()
    graph.operations[index] = dataclasses.replace(graph.operations[index], **changes)
    return graph


def with_input(index: int, position: int, ref: ValueRef) -> ComputationGraph:
    """`base()` with input `position` of operation `index` replaced by `ref`."""
    inputs = list(base().operations[index].inputs)
    inputs[position] = ref
    return with_op(index, inputs=tuple(inputs))


def output(op: int, deps: frozenset[int] | None = None) -> ValueRef:
    return ValueRef(Source.OUTPUT, op=op, deps=frozenset({op}) if deps is None else deps)


def test_base_passes() -> None:
    check(base())


BROKEN: dict[str, tuple[Callable[[], ComputationGraph], str]] = {
    "ids out of order": (
        lambda: ComputationGraph(list(reversed(base().operations))),
        "%2 judge at pipeline.py:16: is at index 0 of graph.operations; ids must be 0, 1, ... in list order",
    ),
    "ids with a gap": (
        lambda: with_op(2, id=3),
        "%3 judge at pipeline.py:16: is at index 2",
    ),
    "site line zero": (
        lambda: with_op(0, site=Site("/a/pipeline.py", 0, "run", 0)),
        "%0 summarize at pipeline.py:0: site line must be > 0, got 0",
    ),
    "no callee": (
        lambda: with_op(0, inputs=(), kwnames=()),
        "%0 summarize at pipeline.py:14: has no inputs; input 0 must be the callee",
    ),
    "too many keyword names": (
        lambda: with_op(0, kwnames=("a", "b")),
        "%0 summarize at pipeline.py:14: 2 keyword names but only 1 argument values",
    ),
    "repeated keyword name": (
        lambda: with_op(2, kwnames=("k", "k")),
        r"%2 judge at pipeline.py:16: a keyword name is repeated in \('k', 'k'\)",
    ),
    "negative duration": (
        lambda: with_op(1, metadata={"duration": -0.5}),
        "%1 summarize at pipeline.py:15: duration must be a number of seconds >= 0, got -0.5",
    ),
    "duration not a number": (
        lambda: with_op(1, metadata={"duration": "1s"}),
        "duration must be a number of seconds >= 0, got '1s'",
    ),
    "input depends on a later operation": (
        lambda: with_input(1, 1, output(2)),
        r"%1 summarize at pipeline.py:15: input 1 \(%2\) depends on %2, which is not an earlier operation"
        r" \(only %0..%0 are\)",
    ),
    "input depends on its own operation": (
        lambda: with_input(1, 1, ValueRef(Source.INPUT, name="docs", deps=frozenset({1}))),
        r"input 1 \(docs\) depends on %1, which is not an earlier operation",
    ),
    "input depends on a missing operation": (
        lambda: with_input(2, 1, output(9)),
        r"%2 judge at pipeline.py:16: input 1 \(%9\) depends on %9",
    ),
    "control depends on a later operation": (
        lambda: with_op(0, control=(output(1),)),
        r"%0 summarize at pipeline.py:14: control 0 \(%1\) depends on %1, but nothing comes before it",
    ),
    "nested operand without a name": (
        lambda: with_input(1, 1, expr("fstring", "x: ", expr("+", ValueRef(Source.INPUT), 1))),
        r"%1 summarize at pipeline.py:15: input 1 operand 1 operand 0 \(\): INPUT must have a name",
    ),
    "callee depends on a later operation": (
        lambda: with_input(0, 0, ValueRef(Source.OUTPUT, op=2, deps=frozenset({2}), path=())),
        r"%0 summarize at pipeline.py:14: input 0 \(%2\) depends on %2",
    ),
    "output of another operation": (
        lambda: with_op(1, outputs=(output(0),)),
        r"%1 summarize at pipeline.py:15: output 0 must be an OUTPUT value of %1, got %0",
    ),
    "output that is not an OUTPUT": (
        lambda: with_op(1, outputs=(const(3),)),
        r"output 0 must be an OUTPUT value of %1, got 3",
    ),
    "output not depending on its operation": (
        lambda: with_op(1, outputs=(output(1, frozenset()),)),
        r"%1 summarize at pipeline.py:15: output 0 \(%1\): OUTPUT of %1 must depend on %1",
    ),
    "OUTPUT without an operation": (
        lambda: with_input(2, 1, ValueRef(Source.OUTPUT)),
        r"input 1 \(%\?\): OUTPUT must name an operation before this one \(%0..%1\), got None",
    ),
    "OUTPUT of a later operation with earlier deps": (
        lambda: with_input(1, 1, ValueRef(Source.OUTPUT, op=2, deps=frozenset({0}))),
        r"input 1 \(%2\): OUTPUT must name an operation before this one \(%0..%0\), got 2",
    ),
    "OUTPUT not in its deps": (
        lambda: with_input(2, 1, output(0, frozenset({1}))),
        r"%2 judge at pipeline.py:16: input 1 \(%0\): OUTPUT of %0 must depend on %0",
    ),
    "UNKNOWN without a count": (
        lambda: with_input(2, 1, ValueRef(Source.UNKNOWN, deps=frozenset({0, 1}))),
        r"input 1 \(\?\): UNKNOWN must set op to the number of operations before it",
    ),
    "UNKNOWN missing an earlier operation": (
        lambda: with_input(2, 1, ValueRef(Source.UNKNOWN, op=2, deps=frozenset({1}))),
        r"%2 judge at pipeline.py:16: input 1 \(\?\): UNKNOWN after 2 operations must depend on all of them,"
        " not on %0",
    ),
    "EXPR missing an operand's deps": (
        lambda: with_input(
            2,
            1,
            ValueRef(Source.EXPR, kind=ExprKind.ADD, operands=(output(0), output(1)), deps=frozenset({0})),
        ),
        r"input 1 \(%0 \+ %1\): EXPR must depend on what its operands depend on, and misses %1",
    ),
    "EXPR without a kind": (
        lambda: with_input(2, 1, ValueRef(Source.EXPR, operands=(output(0),), deps=frozenset({0}))),
        r"EXPR must name its kind",
    ),
    "operands on a non-EXPR": (
        lambda: with_input(
            2, 1, ValueRef(Source.CONST, name="<self>", operands=(output(0),), deps=frozenset({0}))
        ),
        r"only EXPR values have operands, this is CONST",
    ),
    "kind on a non-EXPR": (
        lambda: with_input(0, 1, ValueRef(Source.INPUT, name="q", kind=ExprKind.ADD)),
        r"input 1 \(q\): only EXPR values have a kind, this is INPUT",
    ),
    "loop counter that is not a CONST": (
        lambda: with_input(0, 1, ValueRef(Source.INPUT, name="q", counter=True)),
        r"input 1 \(q\): only CONST values are loop counters, this is INPUT",
    ),
    "a plan's loop template in a graph": (
        lambda: with_input(2, 1, ValueRef(Source.OUTPUT, op=0, deps=frozenset({0}), loop=0)),
        r"input 1 \(%0\): a loop template .* is never part of a graph",
    ),
    "INPUT without a name": (
        lambda: with_input(0, 1, ValueRef(Source.INPUT)),
        r"%0 summarize at pipeline.py:14: input 1 \(\): INPUT must have a name",
    ),
    "GLOBAL without a name": (
        lambda: with_input(0, 0, ValueRef(Source.GLOBAL)),
        r"input 0 \(\): GLOBAL must have a name",
    ),
    "CELL without a name": (
        lambda: with_op(0, control=(ValueRef(Source.CELL, path=()),)),
        r"control 0 \(\): CELL must have a name",
    ),
    "CONST without a value": (
        lambda: with_input(0, 1, ValueRef(Source.CONST, value=MISSING)),
        r"%0 summarize at pipeline.py:14: input 1 \(MISSING\): CONST must carry its value",
    ),
    "not a ValueRef": (
        lambda: with_input(0, 1, "docs[0]"),  # type: ignore[arg-type]
        r"%0 summarize at pipeline.py:14: input 1 is a str, not a ValueRef",
    ),
    "graph input not an INPUT": (
        lambda: dataclasses.replace(base(), inputs=(glob("docs"),)),
        r"graph input 0 must be an INPUT value, got docs",
    ),
    "graph input depending on an operation": (
        lambda: dataclasses.replace(
            base(), inputs=(ValueRef(Source.INPUT, name="docs", deps=frozenset({0})),)
        ),
        r"graph input 0 \(docs\) depends on %0, but nothing comes before it",
    ),
    "graph output depending on a missing operation": (
        lambda: dataclasses.replace(base(), outputs=(output(3),)),
        r"graph output 0 \(%3\) depends on %3, which is not an earlier operation \(only %0..%2 are\)",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_invariant_fires(case: str) -> None:
    make, message = BROKEN[case]
    with pytest.raises(IRError, match=message):
        check(make())


def test_graph_outputs_may_depend_on_any_operation() -> None:
    graph = dataclasses.replace(base(), outputs=(expr("list", output(0), output(2)),))
    check(graph)


def test_unknown_may_depend_on_more_than_the_operations_before_it() -> None:
    # An effect (an object a later call mutated) may add dependencies; only missing ones are wrong.
    check(with_input(2, 1, ValueRef(Source.UNKNOWN, op=1, deps=frozenset({0, 1}))))


def test_shared_operands_are_checked_once_and_cells_and_globals_pass() -> None:
    shared = expr("+", output(0), 1)
    check(with_input(2, 1, expr("tuple", shared, shared, cell("client"), glob("llm"))))

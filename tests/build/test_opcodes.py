"""Every opcode has a decision: a handler that models it, or conservative (results UNKNOWN, operands changed).

An opcode the builder does not model must never make a slow call look independent of a call whose
result it reads: that would report (and replay) parallelism that is not there.
"""

from __future__ import annotations

import contextlib
import dis
import sys

import pytest

import xcs_bc as xcs
from pipelines import MIN_CALL_MS, judge, llm
from xcs_bc import ComputationGraph, Operation, Source
from xcs_bc.build.handlers.table import CONSERVATIVE, decision

COUNTER = 0
RESULT: object = None


def depends_on(graph: ComputationGraph, op: Operation) -> list[int]:
    return sorted(dep.id for dep in graph.dependencies(op))


def test_every_opcode_of_this_version_has_a_decision() -> None:
    undecided = sorted(name for name in dis.opmap if decision(name) is None)
    assert undecided == [], (
        f"opcodes of {sys.version_info[:2]} with no handler and not listed as CONSERVATIVE"
    )


@pytest.mark.parametrize(
    ("opname", "expected"),
    [
        ("STORE_SUBSCR", "handler"),
        ("STORE_GLOBAL", "handler"),
        ("DELETE_GLOBAL", "handler"),
        ("STORE_SLICE", "handler"),
        ("BINARY_SLICE", "handler"),
        ("IMPORT_NAME", "conservative"),
        ("LOAD_BUILD_CLASS", "conservative"),
        ("BEFORE_WITH", "conservative"),
        ("MATCH_CLASS", "conservative"),
        ("GET_AWAITABLE", "conservative"),
        ("CALL_FUNCTION_EX", "call"),
        ("NOT_AN_OPCODE", None),
    ],
)
def test_decisions_of_some_opcodes(opname: str, expected: str | None) -> None:
    assert decision(opname) == expected


def test_an_opcode_is_never_both_handled_and_conservative() -> None:
    assert not [name for name in CONSERVATIVE if decision(name) != "conservative"]


def test_a_slice_assignment_changes_the_list_a_later_call_reads() -> None:
    """`xs[0:1] = [a]` is STORE_SLICE on 3.12+ (STORE_SUBSCR of a slice before): the judge reads `a`."""
    xs = ["seed", "other"]
    with xcs.capture(min_call_ms=MIN_CALL_MS) as cap:
        a = llm("x")
        xs[0:1] = [a]
        verdict = judge(str(xs))
    assert verdict == "judge(['llm(x)', 'other'])"
    first, second = cap.graph.operations
    assert depends_on(cap.graph, second) == [first.id]
    assert cap.graph.independent_sets() == []
    assert "parallel" not in str(cap.graph)


def test_a_slice_read_is_a_pure_expression_of_its_container() -> None:
    with xcs.capture(min_call_ms=MIN_CALL_MS) as cap:
        a = llm("x")
        b = llm("y")
        head = [a, b][0:1]
        judge(str(head))
    assert depends_on(cap.graph, cap.graph.operations[2]) == [0, 1]


def test_a_with_statement_makes_unknown_values_that_depend_on_every_earlier_call() -> None:
    with xcs.capture(min_call_ms=MIN_CALL_MS) as cap:
        llm("x")
        with contextlib.nullcontext("fresh") as value:
            judge(value)
    first, second = cap.graph.operations
    assert second.args[0].source is Source.UNKNOWN  # `__enter__` ran code we do not follow
    assert depends_on(cap.graph, second) == [first.id]


class Box:
    """A context manager whose `__enter__` changes the object: what the block reads later sees it."""

    def __init__(self) -> None:
        self.label = "empty"
        self.inbox: list[str] = []

    def __enter__(self) -> Box:
        self.label = self.inbox[-1] if self.inbox else "empty"
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def test_an_unmodelled_opcode_changes_the_objects_it_takes() -> None:
    box = Box()
    with xcs.capture(min_call_ms=MIN_CALL_MS) as cap:
        box.inbox.append(llm("x"))
        with box:
            pass
        verdict = judge(box.label)
    assert verdict == "judge(llm(x))"
    first, second = cap.graph.operations
    assert depends_on(cap.graph, second) == [first.id]


def test_a_global_the_code_assigns_is_read_back_with_the_provenance_of_what_it_stored() -> None:
    global COUNTER
    COUNTER = 7
    with xcs.capture(min_call_ms=MIN_CALL_MS) as cap:
        for question in ("a", "b"):
            COUNTER += 1
            llm(f"req-{COUNTER}: {question}")
    assert COUNTER == 9
    prompts = [op.args[0] for op in cap.graph.operations]
    assert [p.value for p in prompts] == ["req-8: a", "req-9: b"]
    # the second prompt reads what the first round stored: the value the block began with, plus 1, plus 1
    text = str(cap.graph)
    assert "req-{format((COUNTER + 1) + 1)}" in text, text


def test_a_call_reading_a_global_another_call_stored_depends_on_it() -> None:
    global RESULT
    with xcs.capture(min_call_ms=MIN_CALL_MS) as cap:
        RESULT = llm("x")
        verdict = judge(RESULT)
    assert verdict == "judge(llm(x))"
    first, second = cap.graph.operations
    assert depends_on(cap.graph, second) == [first.id]


def test_a_deleted_global_no_longer_carries_what_was_stored() -> None:
    global RESULT
    with xcs.capture(min_call_ms=MIN_CALL_MS) as cap:
        RESULT = llm("x")
        del RESULT
        RESULT = "plain"
        judge(RESULT)
    first, second = cap.graph.operations
    assert depends_on(cap.graph, second) == []

"""The IR validator: every graph the builder makes must pass `check`.

The analysis passes, the planner and the printer rely on the invariants below
instead of re-checking them.  A graph that breaks one is a builder bug, and
`check` says which operation and what is wrong, e.g.
``%3 summarize at pipeline.py:14: input 1 (docs[3]) depends on %5, which is not earlier``.

Invariants:

- operation ids are 0, 1, ..., n-1 in list order; sites have a line > 0;
- an operation has an input 0: a CALL's callee, or the value an IMPLICIT step
  works on (an instruction that reads no value runs no user code, so it is never
  a slow step); at most `len(inputs) - 1` keyword names, no name twice, and a
  non-negative `duration` if it has one;
- every value an operation reads (inputs, control, and EXPR operands within
  them) depends only on earlier operations; the graph's inputs depend on
  none, its outputs on any;
- an operation's outputs are OUTPUT values of that operation;
- OUTPUT values name an earlier operation (or the producing one, for its own
  outputs) and depend on it;
- UNKNOWN values say how many operations preceded them (`op`) and depend on
  at least all of those;
- EXPR values have a kind (an `ExprKind`) and depend on at least what their
  operands depend on; only EXPR values have operands or a kind;
- INPUT, GLOBAL and CELL values have a name; CONST values have a value; only
  CONST values are loop counters, and no value is a plan's loop template.

Acyclicity follows: every dependency points at a smaller id.  A value shared by
several operations (a loop that accumulates hands each call all the earlier
ones) is checked once, with the smallest limit it is read under; the walk does
not recurse, whatever the depth.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from xcs_bc.errors import IRError
from xcs_bc.ir.refs import MISSING, ExprKind, Operation, Source, ValueRef
from xcs_bc.ir.text import format_value

if TYPE_CHECKING:
    from xcs_bc.ir.graph import ComputationGraph

__all__ = ["check"]


def check(graph: ComputationGraph) -> None:
    """Raise `IRError` naming the first operation or value that breaks an invariant of the IR."""
    _check_ids(graph)
    checked: _Checked = {}
    for op in graph.operations:
        _check_op(op, checked)
    for index, ref in enumerate(graph.inputs):
        where = f"graph input {index}"
        if not isinstance(ref, ValueRef) or ref.source is not Source.INPUT:
            raise IRError(f"{where} must be an INPUT value, got {_show(ref)}")
        _check_value(ref, limit=0, where=where, checked={})
    for index, ref in enumerate(graph.outputs):
        _check_value(ref, limit=len(graph.operations), where=f"graph output {index}", checked=checked)


_Checked = dict[int, int]
"""id of a value already checked (it and its operands) -> the limit it was checked with."""


def _label(op: Operation) -> str:
    """How messages name an operation: `%3 summarize at pipeline.py:14`."""
    return f"%{op.id} {op.name} at {op.site}"


def _show(ref: object) -> str:
    """A value as printed, or the type of something that is not a ValueRef."""
    return format_value(ref) if isinstance(ref, ValueRef) else f"a {type(ref).__name__}, not a ValueRef"


def _check_ids(graph: ComputationGraph) -> None:
    for index, op in enumerate(graph.operations):
        if op.id != index:
            raise IRError(
                f"{_label(op)}: is at index {index} of graph.operations; ids must be 0, 1, ... in list order"
            )


def _check_op(op: Operation, checked: _Checked) -> None:
    """The operation's own fields, then every value it reads or produces."""
    if op.site.line <= 0:
        raise IRError(f"{_label(op)}: site line must be > 0, got {op.site.line}")
    if not op.inputs:
        raise IRError(f"{_label(op)}: has no inputs; input 0 must be the callee")
    if len(op.kwnames) > len(op.inputs) - 1:
        raise IRError(
            f"{_label(op)}: {len(op.kwnames)} keyword names but only {len(op.inputs) - 1} argument values"
        )
    if len(set(op.kwnames)) != len(op.kwnames):
        raise IRError(f"{_label(op)}: a keyword name is repeated in {op.kwnames}")
    duration = op.metadata.get("duration", 0.0)
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not duration >= 0:
        raise IRError(f"{_label(op)}: duration must be a number of seconds >= 0, got {duration!r}")
    for index, ref in enumerate(op.inputs):
        _check_value(ref, limit=op.id, where=f"{_label(op)}: input {index}", checked=checked)
    for index, ref in enumerate(op.control):
        _check_value(ref, limit=op.id, where=f"{_label(op)}: control {index}", checked=checked)
    for index, ref in enumerate(op.outputs):
        _check_output(op, ref, where=f"{_label(op)}: output {index}", checked=checked)


def _check_output(op: Operation, ref: object, where: str, checked: _Checked) -> None:
    """An operation's own output: an OUTPUT value of this very operation."""
    if not isinstance(ref, ValueRef) or ref.source is not Source.OUTPUT or ref.op != op.id:
        raise IRError(f"{where} must be an OUTPUT value of %{op.id}, got {_show(ref)}")
    _check_value(ref, limit=op.id + 1, where=where, checked=checked)


def _check_value(ref: object, limit: int, where: str, checked: _Checked) -> None:
    """`ref` and its operands may depend only on operations with id < `limit`.

    Values in `checked` with a limit no larger are skipped (what held then holds now); the values
    checked here are added to it.
    """
    for path, value in _walk(ref, where, limit, checked):
        if not isinstance(value, ValueRef):
            raise IRError(f"{path} is {_show(value)}")
        later = sorted(dep for dep in value.deps if not (isinstance(dep, int) and 0 <= dep < limit))
        if later:
            raise IRError(f"{path} ({_show(value)}) depends on %{later[0]}, {_not_before(limit)}")
        _check_source(value, limit, path)


def _not_before(limit: int) -> str:
    if limit == 0:
        return "but nothing comes before it"
    return f"which is not an earlier operation (only %0..%{limit - 1} are)"


def _walk(ref: object, where: str, limit: int, checked: _Checked) -> Iterator[tuple[str, object]]:
    """`ref` and, depth first, its operands, each with where it is; shared operands once, and none
    `checked` already holds with a limit no larger than `limit` (the others it records)."""
    stack: list[tuple[str, object]] = [(where, ref)]
    while stack:
        path, value = stack.pop()
        if checked.get(id(value), limit + 1) <= limit:
            continue
        checked[id(value)] = limit
        yield path, value
        if isinstance(value, ValueRef):
            operands = list(enumerate(value.operands))
            stack.extend((f"{path} operand {index}", operand) for index, operand in reversed(operands))


def _check_source(ref: ValueRef, limit: int, where: str) -> None:
    """What each kind of provenance must carry."""
    if ref.operands and ref.source is not Source.EXPR:
        raise _bad(where, ref, f"only EXPR values have operands, this is {ref.source.name}")
    if ref.kind is not None and ref.source is not Source.EXPR:
        raise _bad(where, ref, f"only EXPR values have a kind, this is {ref.source.name}")
    if ref.counter and ref.source is not Source.CONST:
        raise _bad(where, ref, f"only CONST values are loop counters, this is {ref.source.name}")
    if ref.loop is not None:
        raise _bad(where, ref, "a loop template (a plan's, see plan.generalize) is never part of a graph")
    if ref.source is Source.OUTPUT:
        if ref.op is None or not 0 <= ref.op < limit:
            expected = f"an operation before this one (%0..%{limit - 1})"
            raise _bad(where, ref, f"OUTPUT must name {expected}, got {ref.op}")
        if ref.op not in ref.deps:
            raise _bad(where, ref, f"OUTPUT of %{ref.op} must depend on %{ref.op}")
    elif ref.source is Source.UNKNOWN:
        if ref.op is None:
            raise _bad(where, ref, "UNKNOWN must set op to the number of operations before it")
        missing = [] if ref.deps.issuperset(range(ref.op)) else sorted(set(range(ref.op)) - ref.deps)
        if missing:
            raise _bad(
                where,
                ref,
                f"UNKNOWN after {ref.op} operations must depend on all of them, not on %{missing[0]}",
            )
    elif ref.source is Source.EXPR:
        _check_expr(ref, where)
    elif ref.source is Source.CONST:
        if ref.value is MISSING:
            raise _bad(where, ref, "CONST must carry its value")
    elif not ref.name:
        raise _bad(where, ref, f"{ref.source.name} must have a name")


def _bad(where: str, ref: ValueRef, problem: str) -> IRError:
    """An error naming the place, the value as printed, and the problem."""
    return IRError(f"{where} ({_show(ref)}): {problem}")


def _check_expr(ref: ValueRef, where: str) -> None:
    if not isinstance(ref.kind, ExprKind):
        raise _bad(where, ref, "EXPR must name its kind (fstring, +, tuple, ...)")
    operands = [operand for operand in ref.operands if isinstance(operand, ValueRef)]  # others: _walk reports
    if all(operand.deps <= ref.deps for operand in operands):
        return
    missing = sorted(frozenset().union(*(operand.deps for operand in operands)) - ref.deps)
    if missing:
        raise _bad(where, ref, f"EXPR must depend on what its operands depend on, and misses %{missing[0]}")

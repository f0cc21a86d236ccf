"""Patterns: the shapes people recognise in a graph (map, ensemble, chain, reduce).

They are annotations for people (the capture report) and for shape-general
plans, never constraints: the dependencies of `xcs_bc.ir.passes` decide what
may run together.  Sets of operation ids are bitsets, as in the passes.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from xcs_bc.ir.passes import Direct, dependency_bits, reduction_bits, walk
from xcs_bc.ir.refs import MAX_DEPTH, Operation, Source, ValueRef

if TYPE_CHECKING:
    from xcs_bc.ir.graph import ComputationGraph

__all__ = ["PATTERN_KINDS", "Pattern", "patterns"]

PATTERN_KINDS = ("map", "ensemble", "chain", "reduce")
CHAIN_REASON = "they cannot overlap"  # how a chain's description ends (the report may say why instead)
"""Pattern kinds, in the order patterns that start at the same operation are listed."""

_LISTED_NAMES = 5
"""How many callee names a description spells out before it says "..."."""


@dataclass(frozen=True, slots=True)
class Pattern:
    """A shape people recognise in the graph; an annotation, not a constraint.

    `kind` is one of "map", "ensemble", "chain" or "reduce".  `operations` are
    in id order, except for "reduce", where the reducing operation comes last.
    """

    kind: str
    operations: tuple[Operation, ...]
    description: str


def patterns(graph: ComputationGraph, *, direct: Direct | None = None) -> list[Pattern]:
    """Maps, ensembles, chains and reduces in the graph, ordered by their first operation's id.

    `direct` is `dependency_bits(graph)`, when the caller has it already.
    """
    ancestors, immediate = reduction_bits(dependency_bits(graph) if direct is None else direct)
    found = [
        *_maps(graph.operations, ancestors),
        *_ensembles(graph.operations, ancestors),
        *_chains(graph.operations, immediate),
        *_reduces(graph.operations, immediate),
    ]
    return sorted(found, key=_pattern_order)


def _pattern_order(pattern: Pattern) -> tuple[int, int, list[int]]:
    """By first operation, then kind, then the operations: a total, deterministic order."""
    ids = [op.id for op in pattern.operations]
    return (ids[0], PATTERN_KINDS.index(pattern.kind), ids)


def _antichains(ops: Sequence[Operation], ancestors: dict[int, int]) -> list[list[Operation]]:
    """Split `ops` (id order) into groups of mutually independent operations, first fit.

    An operation joins the first group none of whose members it needs; an
    earlier operation cannot need a later one, so that one test suffices.
    First fit puts an operation in group k exactly when the longest run of
    operations of `ops` it needs, one after another, has k members (its height):
    it needs a member of every group before k, and no member of group k (that
    one would make its height k + 1).  So the group is found by a binary search
    over the groups' masks, not by trying every group: a chain of n calls at one
    site costs n log n mask tests, not n squared.
    """
    groups: list[list[Operation]] = []
    masks: list[int] = []
    for op in ops:
        needs = ancestors[op.id]
        low, high = 0, len(groups)  # needs a member of every group below `low`, of none from `high` on
        while low < high:
            middle = (low + high) // 2
            if needs & masks[middle]:
                low = middle + 1
            else:
                high = middle
        if low == len(groups):
            groups.append([])
            masks.append(0)
        groups[low].append(op)
        masks[low] |= 1 << op.id
    return groups


def _grouped(ops: Iterable[Operation], key: Iterable[Hashable]) -> list[list[Operation]]:
    """Operations with equal keys, in order of first appearance, each group in id order."""
    groups: dict[Hashable, list[Operation]] = {}
    for op, k in zip(ops, key, strict=True):
        groups.setdefault(k, []).append(op)
    return list(groups.values())


def _maps(ops: Sequence[Operation], ancestors: dict[int, int]) -> list[Pattern]:
    """Two or more mutually independent calls at one call site: a loop or comprehension."""
    found = []
    for same_site in _grouped(ops, (op.site for op in ops)):
        for group in _antichains(same_site, ancestors):
            if len(group) >= 2:
                found.append(Pattern("map", tuple(group), _describe_map(group)))
    return found


def _describe_map(group: Sequence[Operation]) -> str:
    base = _iterated_base(group)
    over = f" over {base}" if base else ""
    return f"{len(group)} calls at {group[0].site} are independent: a map of {_callees(group)}{over}"


def _callees(group: Sequence[Operation]) -> str:
    """The callee's name, or the distinct names (at most a few) when they differ."""
    names = list(dict.fromkeys(op.name for op in group))
    if len(names) > _LISTED_NAMES:
        return ", ".join(names[:_LISTED_NAMES]) + ", ..."
    return ", ".join(names)


def _iterated_base(group: Sequence[Operation]) -> str:
    """The container the calls iterate over, e.g. `docs` for `summarize(docs[k])`, or "".

    A base is a prefix of an INPUT or OUTPUT path that an "iter" or "item" step
    follows; it qualifies when every call reads through it and the keys differ.
    """
    per_op = [_bases(op) for op in group]
    for base, (text, key) in per_op[0].items():
        keys = [bases[base][1] if base in bases else None for bases in per_op]
        if all(k is not None for k in keys) and any(k != key for k in keys):
            return text
    return ""


def _bases(op: Operation) -> dict[Hashable, tuple[str, Hashable]]:
    """Every iterated base the inputs of `op` read through: its key -> (its text, the key read)."""
    found: dict[Hashable, tuple[str, Hashable]] = {}
    for ref in walk(op.inputs):
        if ref.source not in (Source.INPUT, Source.OUTPUT):
            continue
        head = ref.name if ref.source is Source.INPUT else f"%{ref.op}"
        for index, step in enumerate(ref.path):
            if step.kind in ("iter", "item"):
                prefix = ref.path[:index]
                base = (ref.source, ref.name, ref.op, tuple((s.kind, _hashable(s.key)) for s in prefix))
                text = head + "".join(str(s) for s in prefix)
                found.setdefault(base, (text, _hashable(step.key)))
    return found


def _ensembles(ops: Sequence[Operation], ancestors: dict[int, int]) -> list[Pattern]:
    """Two or more mutually independent calls on the same arguments but different callees or sites."""
    found = []
    with_args = [op for op in ops if len(op.inputs) > 1]
    for same_args in _grouped(with_args, (_args_key(op) for op in with_args)):
        for group in _antichains(same_args, ancestors):
            callers = {(op.name, _ref_key(op.inputs[0]), op.site) for op in group}
            if len(group) >= 2 and len(callers) >= 2:
                found.append(Pattern("ensemble", tuple(group), _describe_ensemble(group)))
    return found


def _describe_ensemble(group: Sequence[Operation]) -> str:
    names = {op.name for op in group}
    if len(names) == 1:
        sites = ", ".join(dict.fromkeys(str(op.site) for op in group))
        what = f"{group[0].name} at {sites}"
    else:
        what = _callees(group)
    return f"{len(group)} independent calls receive the same arguments: an ensemble of {what}"


def _args_key(op: Operation) -> Hashable:
    """The provenance of the arguments (not the callee), comparable across operations."""
    kwargs = op.kwargs
    return (
        tuple(_ref_key(ref) for ref in op.args),
        tuple(sorted((name, _ref_key(ref)) for name, ref in kwargs.items())),
    )


def _ref_key(ref: ValueRef) -> Hashable:
    """A structural key of a value's provenance: equal keys mean the same value.

    UNKNOWN values are never known to be equal, so each gets a key of its own, and
    so do values nested deeper than `MAX_DEPTH` (the key recurses; missing an
    ensemble is only a missed annotation).  CONST values compare by type and
    value.  `deps` are part of the key: the same name read before and after a
    call that may have changed it is not known to be the same value.
    """
    path = tuple((step.kind, _hashable(step.key)) for step in ref.path)
    if ref.source is Source.UNKNOWN or ref.depth > MAX_DEPTH:
        return (ref.source, id(ref))
    if ref.source is Source.CONST:
        return (ref.source, _hashable(ref.value), path)
    operands = tuple(_ref_key(operand) for operand in ref.operands)
    return (ref.source, ref.name, ref.kind, ref.op, path, operands, ref.deps)


def _hashable(value: object) -> Hashable:
    """`value` tagged with its type (so 1, 1.0 and True differ), or its repr when unhashable."""
    try:
        hash(value)
    except TypeError:
        return (type(value).__qualname__, "unhashable", repr(value))
    return (type(value).__qualname__, value)


def _chains(ops: Sequence[Operation], immediate: dict[int, list[int]]) -> list[Pattern]:
    """Maximal runs of three or more operations where each needs only the one before it.

    "Only" is read through the transitive reduction: a dependency that is
    already implied by another one (e.g. through an UNKNOWN value that
    depends on everything before it) does not count.  A link a -> b also
    needs b to be the only operation that follows a that way, so chains never
    fork.
    """
    by_id = {op.id: op for op in ops}
    followers: dict[int, list[int]] = {}
    for op in ops:
        preds = immediate[op.id]
        if len(preds) == 1:
            followers.setdefault(preds[0], []).append(op.id)
    after = {pred: nexts[0] for pred, nexts in followers.items() if len(nexts) == 1}
    heads = sorted(set(after) - set(after.values()))
    found = []
    for head in heads:
        run = [head]
        while run[-1] in after:
            run.append(after[run[-1]])
        if len(run) >= 3:
            chain = tuple(by_id[op_id] for op_id in run)
            names = " -> ".join(op.name for op in chain)
            description = f"{len(chain)} calls form a chain: {names}; {CHAIN_REASON}"
            found.append(Pattern("chain", chain, description))
    return found


def _reduces(ops: Sequence[Operation], immediate: dict[int, list[int]]) -> list[Pattern]:
    """Operations that combine the results of two or more mutually independent operations."""
    by_id = {op.id: op for op in ops}
    found = []
    for op in ops:
        preds = [by_id[pred] for pred in immediate[op.id]]
        if len(preds) >= 2:
            inputs = ", ".join(f"%{pred.id} {pred.name}" for pred in preds[:_LISTED_NAMES])
            inputs += ", ..." if len(preds) > _LISTED_NAMES else ""
            description = f"{op.name} at {op.site} combines {len(preds)} independent results: {inputs}"
            found.append(Pattern("reduce", (*preds, op), description))
    return found

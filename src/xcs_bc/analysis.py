"""Analysis passes: pure functions over a `ComputationGraph`.

Every question the later stages ask of a graph is answered here, from the
`deps` that the builder put on each `ValueRef`: which operations an operation
needs (`dependencies`), how early each could start (`levels`), which slow calls
can run together (`independent_sets`), the longest duration-weighted path and
the speedup it bounds (`critical_path`, `speedup_bound`), which branch results
an operation was reached through (`control_dependencies`), and the shapes
people recognise (`patterns`: map, ensemble, chain, reduce).

The passes trust the graph's invariants (`xcs_bc.check.check`): operation ids
are 0..n-1 in list order and every dependency is on an earlier operation.  A
graph that breaks them makes a pass raise `IRError` instead of answering
wrongly.  Internally, sets of operation ids are Python ints used as bitsets
(bit i = operation i): the transitive closure of a long run stays small and
fast that way.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from xcs_bc.check import IRError
from xcs_bc.ir import ComputationGraph, Operation, Source, ValueRef
from xcs_bc.values import unknown_origin

__all__ = [
    "CriticalPath",
    "Pattern",
    "control_dependencies",
    "critical_path",
    "dependencies",
    "independent_sets",
    "levels",
    "patterns",
    "reads_unknown",
    "sequential_seconds",
    "speedup_bound",
]

PATTERN_KINDS = ("map", "ensemble", "chain", "reduce")
"""Pattern kinds, in the order patterns that start at the same operation are listed."""

_LISTED_NAMES = 5
"""How many callee names a description spells out before it says "..."."""


@dataclass(frozen=True, slots=True)
class CriticalPath:
    """The longest duration-weighted dependency path: no schedule finishes sooner than `seconds`."""

    operations: tuple[Operation, ...]
    seconds: float


@dataclass(frozen=True, slots=True)
class Pattern:
    """A shape people recognise in the graph; an annotation, not a constraint.

    `kind` is one of "map", "ensemble", "chain" or "reduce".  `operations` are
    in id order, except for "reduce", where the reducing operation comes last.
    """

    kind: str
    operations: tuple[Operation, ...]
    description: str


# --- dependencies ----------------------------------------------------------


def dependencies(graph: ComputationGraph, op: Operation) -> set[Operation]:
    """The operations `op` needs directly: through its callee, arguments or branch conditions.

    A `ValueRef`'s `deps` already fold in everything the value depends on
    through glue code, so the union of the `deps` of `op.inputs` and
    `op.control` is the whole answer.
    """
    return {_find(graph, op, dep) for dep in _dep_ids(op)}


def control_dependencies(graph: ComputationGraph, op: Operation) -> set[Operation]:
    """The operations whose results fed the branch conditions through which `op` was reached."""
    ids = frozenset().union(*(ref.deps for ref in op.control))
    return {_find(graph, op, dep) for dep in ids}


def unknown_origins(op: Operation) -> list[str]:
    """The calls (to functions not known to be pure) whose results `op` reads, `helper()`, in order."""
    found = (unknown_origin(ref) for ref in _walk((*op.inputs, *op.control)))
    return list(dict.fromkeys(origin for origin in found if origin is not None))


def reads_unknown(op: Operation) -> bool:
    """Whether `op` reads a value of unknown provenance, and so is assumed to need every earlier operation."""
    return any(ref.source is Source.UNKNOWN for ref in _walk((*op.inputs, *op.control)))


def _dep_ids(op: Operation) -> frozenset[int]:
    """Ids of the operations `op` needs directly (data, effects and control)."""
    return frozenset().union(*(ref.deps for ref in op.inputs), *(ref.deps for ref in op.control))


def _find(graph: ComputationGraph, op: Operation, dep: int) -> Operation:
    """The operation with id `dep`, which `op` depends on."""
    ops = graph.operations
    if 0 <= dep < len(ops) and ops[dep].id == dep:  # ids are list positions in a checked graph
        return ops[dep]
    for other in ops:
        if other.id == dep:
            return other
    raise _ir_error(f"%{op.id} {op.name} at {op.site} depends on %{dep}, which is not in the graph")


def _ir_error(message: str) -> IRError:
    """An `IRError` for a graph that breaks the invariants the passes rely on."""
    return IRError(f"{message}; run xcs_bc.check.check(graph) on the builder's output")


def _direct(graph: ComputationGraph) -> dict[int, frozenset[int]]:
    """Direct dependency ids of every operation, checked to point only at earlier operations."""
    seen: set[int] = set()
    direct: dict[int, frozenset[int]] = {}
    for op in graph.operations:
        deps = _dep_ids(op)
        later = deps - seen
        if later:
            raise _ir_error(
                f"%{op.id} {op.name} at {op.site} depends on %{min(later)}, which is not an earlier operation"
            )
        direct[op.id] = deps
        seen.add(op.id)
    return direct


def _ancestors(direct: dict[int, frozenset[int]]) -> dict[int, int]:
    """Bitset of every operation each operation needs, directly or through others."""
    ancestors: dict[int, int] = {}
    for op_id, deps in direct.items():
        mask = 0
        for dep in deps:
            mask |= (1 << dep) | ancestors[dep]
        ancestors[op_id] = mask
    return ancestors


# --- levels and independent sets -------------------------------------------


def levels(graph: ComputationGraph) -> dict[int, int]:
    """ASAP level of every operation id: 0 if it needs nothing, else 1 + the deepest dependency's level."""
    result: dict[int, int] = {}
    for op_id, deps in _direct(graph).items():
        result[op_id] = 1 + max((result[dep] for dep in deps), default=-1)
    return result


def independent_sets(graph: ComputationGraph) -> list[set[Operation]]:
    """The slow calls that can run together: operations of one ASAP level, for levels of two or more.

    Two operations at the same level never depend on each other (a dependency
    puts an operation at least one level deeper), so each set is safe to run
    at once.  A pure chain gives `[]`.
    """
    by_level: dict[int, set[Operation]] = {}
    op_levels = levels(graph)
    for op in graph.operations:
        by_level.setdefault(op_levels[op.id], set()).add(op)
    return [by_level[level] for level in sorted(by_level) if len(by_level[level]) >= 2]


# --- critical path and speedup ---------------------------------------------


def sequential_seconds(graph: ComputationGraph) -> float:
    """Seconds the slow calls took one after another: the sum of their durations."""
    return sum(op.duration for op in graph.operations)


def critical_path(graph: ComputationGraph) -> CriticalPath:
    """The longest duration-weighted dependency path.

    Ties prefer the path with more operations (so a graph without durations
    still shows its longest chain), then the smaller ids, so the answer is
    deterministic.
    """
    by_id = {op.id: op for op in graph.operations}
    # best[i] = (finish seconds, operations on the path, -id) of the best path ending at i.
    best: dict[int, tuple[float, int, int]] = {}
    previous: dict[int, int | None] = {}
    for op_id, deps in _direct(graph).items():
        pred = max(deps, key=lambda dep: best[dep], default=None)
        finish, count = (0.0, 0) if pred is None else best[pred][:2]
        best[op_id] = (finish + by_id[op_id].duration, count + 1, -op_id)
        previous[op_id] = pred
    if not best:
        return CriticalPath((), 0.0)
    last = max(best, key=lambda op_id: best[op_id])
    path: list[Operation] = []
    end: int | None = last
    while end is not None:
        path.append(by_id[end])
        end = previous[end]
    return CriticalPath(tuple(reversed(path)), best[last][0])


def speedup_bound(graph: ComputationGraph) -> float:
    """How many times faster the run could be if every call started as soon as its inputs were ready.

    The time outside slow calls (`wall - sequential`) stays; the calls
    themselves shrink to the critical path.  Never below 1.0: a run that
    already overlapped its calls (wall < sequential) keeps no negative
    overhead, and an empty or zero-length run cannot get faster.
    """
    sequential = sequential_seconds(graph)
    recorded = graph.metadata.get("wall_time")
    wall = sequential if recorded is None else float(recorded)
    ideal = max(wall - sequential, 0.0) + critical_path(graph).seconds
    if wall <= 0.0 or ideal <= 0.0:
        return 1.0
    return max(1.0, wall / ideal)


# --- patterns --------------------------------------------------------------


def patterns(graph: ComputationGraph) -> list[Pattern]:
    """Maps, ensembles, chains and reduces in the graph, ordered by their first operation's id."""
    direct = _direct(graph)
    ancestors = _ancestors(direct)
    found = [
        *_maps(graph.operations, ancestors),
        *_ensembles(graph.operations, ancestors),
        *_chains(graph.operations, direct, ancestors),
        *_reduces(graph.operations, direct, ancestors),
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
    """
    groups: list[tuple[list[Operation], int]] = []
    for op in ops:
        for index, (members, mask) in enumerate(groups):
            if not ancestors[op.id] & mask:
                members.append(op)
                groups[index] = (members, mask | (1 << op.id))
                break
        else:
            groups.append(([op], 1 << op.id))
    return [members for members, _ in groups]


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
    for ref in _walk(op.inputs):
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


def _walk(refs: Iterable[ValueRef]) -> Iterator[ValueRef]:
    """The refs and, depth first, the operands of EXPR refs (each shared ref once)."""
    stack = list(reversed(tuple(refs)))
    seen: set[int] = set()
    while stack:
        ref = stack.pop()
        if id(ref) in seen:
            continue
        seen.add(id(ref))
        yield ref
        stack.extend(reversed(ref.operands))


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

    UNKNOWN values are never known to be equal, so each gets a key of its own.
    CONST values compare by type and value.  `deps` are part of the key: the
    same name read before and after a call that may have changed it is not
    known to be the same value.
    """
    path = tuple((step.kind, _hashable(step.key)) for step in ref.path)
    if ref.source is Source.UNKNOWN:
        return (ref.source, id(ref))
    if ref.source is Source.CONST:
        return (ref.source, _hashable(ref.value), path)
    operands = tuple(_ref_key(operand) for operand in ref.operands)
    return (ref.source, ref.name, ref.op, path, operands, ref.deps)


def _hashable(value: object) -> Hashable:
    """`value` tagged with its type (so 1, 1.0 and True differ), or its repr when unhashable."""
    try:
        hash(value)
    except TypeError:
        return (type(value).__qualname__, "unhashable", repr(value))
    return (type(value).__qualname__, value)


def _chains(
    ops: Sequence[Operation], direct: dict[int, frozenset[int]], ancestors: dict[int, int]
) -> list[Pattern]:
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
        preds = _immediate(direct[op.id], ancestors)
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
            description = f"{len(chain)} calls form a chain: {names}; they cannot overlap"
            found.append(Pattern("chain", chain, description))
    return found


def _immediate(deps: frozenset[int], ancestors: dict[int, int]) -> list[int]:
    """Dependencies not implied by another dependency (the transitive reduction), sorted.

    They are mutually independent: if one needed another, the other would be implied.
    """
    implied = 0
    for dep in deps:
        implied |= ancestors[dep]
    return sorted(dep for dep in deps if not implied >> dep & 1)


def _reduces(
    ops: Sequence[Operation], direct: dict[int, frozenset[int]], ancestors: dict[int, int]
) -> list[Pattern]:
    """Operations that combine the results of two or more mutually independent operations."""
    by_id = {op.id: op for op in ops}
    found = []
    for op in ops:
        preds = [by_id[pred] for pred in _immediate(direct[op.id], ancestors)]
        if len(preds) >= 2:
            inputs = ", ".join(f"%{pred.id} {pred.name}" for pred in preds[:_LISTED_NAMES])
            inputs += ", ..." if len(preds) > _LISTED_NAMES else ""
            description = f"{op.name} at {op.site} combines {len(preds)} independent results: {inputs}"
            found.append(Pattern("reduce", (*preds, op), description))
    return found

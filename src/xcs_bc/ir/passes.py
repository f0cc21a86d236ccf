"""Analysis passes: pure functions over a `ComputationGraph`.

Every question the later stages ask of a graph is answered here, from the
`deps` that the builder put on each `ValueRef`: which operations an operation
needs (`dependencies`), how early each could start (`levels`), which slow calls
can run together (`independent_sets`), the longest duration-weighted path and
the speedup it bounds (`critical_path`, `speedup_bound`), and which branch results
an operation was reached through (`control_dependencies`).  The shapes people
recognise (map, ensemble, chain, reduce) are found by `xcs_bc.analyze.patterns`.

The passes trust the graph's invariants (`xcs_bc.ir.check.check`): operation ids
are 0..n-1 in list order and every dependency is on an earlier operation.  A
graph that breaks them makes a pass raise `IRError` instead of answering
wrongly.  Internally, sets of operation ids are Python ints used as bitsets
(bit i = operation i): the transitive closure of a long run stays small and
fast that way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from xcs_bc.errors import IRError
from xcs_bc.ir.refs import Operation, Source, ValueRef
from xcs_bc.ir.values import unknown_origin

if TYPE_CHECKING:
    from xcs_bc.ir.graph import ComputationGraph

Direct = Mapping[int, frozenset[int]]
"""Direct dependency ids of every operation (`dependency_bits`); passes accept it precomputed."""

__all__ = [
    "CriticalPath",
    "control_dependencies",
    "critical_path",
    "dependencies",
    "independent_sets",
    "levels",
    "reads_unknown",
    "sequential_seconds",
    "speedup_bound",
    "fold",
    "walk",
]


@dataclass(frozen=True, slots=True)
class CriticalPath:
    """The longest duration-weighted dependency path: no schedule finishes sooner than `seconds`."""

    operations: tuple[Operation, ...]
    seconds: float


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
    found = (unknown_origin(ref) for ref in walk((*op.inputs, *op.control)))
    return list(dict.fromkeys(origin for origin in found if origin is not None))


def reads_unknown(op: Operation) -> bool:
    """Whether `op` reads a value of unknown provenance, and so is assumed to need every earlier operation."""
    return any(ref.source is Source.UNKNOWN for ref in walk((*op.inputs, *op.control)))


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
    return IRError(f"{message}; run xcs_bc.ir.check.check(graph) on the builder's output")


def dependency_bits(graph: ComputationGraph) -> dict[int, frozenset[int]]:
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


def reduction_bits(direct: Direct) -> tuple[dict[int, int], dict[int, list[int]]]:
    """Bitset of every operation each operation needs, directly or through others; and its
    immediate dependencies (the transitive reduction: those no other dependency implies), sorted.

    Dependencies are visited from the latest: one already implied by a later one adds nothing (its
    own ancestors are among that one's), so only the immediate ones are merged, and a run that reads
    a value of unknown origin (which depends on every earlier operation) costs one merge, not one
    per earlier operation.
    """
    ancestors: dict[int, int] = {}
    immediate: dict[int, list[int]] = {}
    for op_id, deps in direct.items():
        implied = 0
        kept: list[int] = []
        for dep in sorted(deps, reverse=True):
            if not implied >> dep & 1:
                kept.append(dep)
                implied |= ancestors[dep]
        for dep in kept:
            implied |= 1 << dep
        ancestors[op_id] = implied
        kept.reverse()
        immediate[op_id] = kept
    return ancestors, immediate


# --- levels and independent sets -------------------------------------------


def levels(graph: ComputationGraph, *, direct: Direct | None = None) -> dict[int, int]:
    """ASAP level of every operation id: 0 if it needs nothing, else 1 + the deepest dependency's level."""
    result: dict[int, int] = {}
    for op_id, deps in (dependency_bits(graph) if direct is None else direct).items():
        result[op_id] = 1 + max(map(result.__getitem__, deps), default=-1)
    return result


def independent_sets(graph: ComputationGraph, *, direct: Direct | None = None) -> list[set[Operation]]:
    """The slow calls that can run together: operations of one ASAP level, for levels of two or more.

    Two operations at the same level never depend on each other (a dependency
    puts an operation at least one level deeper), so each set is safe to run
    at once.  A pure chain gives `[]`.
    """
    by_level: dict[int, set[Operation]] = {}
    op_levels = levels(graph, direct=direct)
    for op in graph.operations:
        by_level.setdefault(op_levels[op.id], set()).add(op)
    return [by_level[level] for level in sorted(by_level) if len(by_level[level]) >= 2]


# --- critical path and speedup ---------------------------------------------


def sequential_seconds(graph: ComputationGraph) -> float:
    """Seconds the slow calls took one after another: the sum of their durations."""
    return sum(op.duration for op in graph.operations)


def critical_path(graph: ComputationGraph, *, direct: Direct | None = None) -> CriticalPath:
    """The longest duration-weighted dependency path.

    Ties prefer the path with more operations (so a graph without durations
    still shows its longest chain), then the smaller ids, so the answer is
    deterministic.
    """
    by_id = {op.id: op for op in graph.operations}
    # best[i] = (finish seconds, operations on the path, -id) of the best path ending at i.
    best: dict[int, tuple[float, int, int]] = {}
    previous: dict[int, int | None] = {}
    for op_id, deps in (dependency_bits(graph) if direct is None else direct).items():
        pred = max(deps, key=best.__getitem__, default=None)
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


def speedup_bound(graph: ComputationGraph, *, path: CriticalPath | None = None) -> float:
    """How many times faster the run could be if every call started as soon as its inputs were ready.

    The time outside slow calls (`wall - sequential`) stays; the calls
    themselves shrink to the critical path.  Never below 1.0: a run that
    already overlapped its calls (wall < sequential) keeps no negative
    overhead, and an empty or zero-length run cannot get faster.
    """
    sequential = sequential_seconds(graph)
    recorded = graph.metadata.get("wall_time")
    wall = sequential if recorded is None else float(recorded)
    ideal = max(wall - sequential, 0.0) + (critical_path(graph) if path is None else path).seconds
    if wall <= 0.0 or ideal <= 0.0:
        return 1.0
    return max(1.0, wall / ideal)


def walk(refs: Iterable[ValueRef]) -> Iterator[ValueRef]:
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


_T = TypeVar("_T")


def fold(
    root: ValueRef, done: MutableMapping[int, _T], visit: Callable[[ValueRef, tuple[_T, ...]], _T]
) -> _T:
    """`visit(ref, what its operands gave)` for `root` and, operands first, every ref under it, each
    shared ref once: `done` (by id of the ref) keeps what each gave, across calls that share it.
    Without recursion: values nest as deep as a loop has rounds.  The refs must stay alive while
    `done` is used (ids of dead objects are reused)."""
    if id(root) in done:  # (a shared ref, visited already: most of a plan's are)
        return done[id(root)]
    stack = [root]
    while stack:
        ref = stack[-1]
        if id(ref) in done:
            stack.pop()
            continue
        pending = [operand for operand in ref.operands if id(operand) not in done]
        if pending:
            stack.extend(pending)
            continue
        stack.pop()
        done[id(ref)] = visit(ref, tuple(done[id(operand)] for operand in ref.operands))
    return done[id(root)]

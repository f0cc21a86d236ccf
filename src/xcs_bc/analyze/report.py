"""A report for people: how long the slow calls took, and what could have overlapped.

`format_report(graph)` reads like::

    graph judge_pipeline: 3 slow calls
      sequential     6000.0 ms  the slow calls one after another
      wall time      7000.0 ms  the whole run
      critical path  5000.0 ms  %1 gen_b (judge.py:11) -> %2 judge (judge.py:12)
      speedup bound       1.2x  if every call started as soon as its inputs were ready

    Calls that can run at the same time:
      2 calls at judge.py:10-11 are independent: gen_a, gen_b (%0-%1)
        ensemble: 2 independent calls receive the same arguments: an ensemble of gen_a, gen_b

    Calls that combine independent results:
      judge at judge.py:12 combines 2 independent results: %0 gen_a, %1 gen_b

Then the calls per callee (how many, how long, the tokens their results report) and, where there
are some: the functions worth wrapping in `xcs.jit` (when the capture traced through functions),
the chains, the calls reached through a branch on a result, the calls held back only by
a mutable object an earlier call was handed (with the copy that frees them), and the calls that
read a value of unknown origin.

The numbers change from run to run; the structure (which sections, in which
order, which calls and patterns) depends only on the graph.  The dependencies
are computed once for every section, and values shared between calls are
walked once: the report of a run of n calls costs about n (log n) steps when
each call reads a few values, not n squared.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from xcs_bc.analyze import patterns
from xcs_bc.analyze.patterns import CHAIN_REASON, Pattern
from xcs_bc.analyze.wrapping import worth_wrapping
from xcs_bc.ir import MISSING, ComputationGraph, ExprKind, Operation, Site, Source, ValueRef, passes
from xcs_bc.ir.passes import Direct, fold
from xcs_bc.ir.text import format_value, op_names
from xcs_bc.ir.values import reported_tokens

__all__ = ["format_report"]

_PATH_ENDS = 3
"""A long critical path shows this many operations at each end."""


def format_report(graph: ComputationGraph) -> str:
    """The report: timing and speedup bound, parallel groups, patterns, chains, control dependencies."""
    if not graph.operations:
        return _empty_report(graph)
    names = op_names(graph)
    direct = passes.dependency_bits(graph)
    found = patterns.patterns(graph, direct=direct)
    handed = _Handed(names)
    sections = [
        _timing(graph, names, direct),
        _callees(graph),
        _groups(graph, found, names, direct, handed),
        _wrapping(graph),
        _listed("Calls that combine independent results:", found, "reduce"),
        _chains(found, handed),
        _control(graph, names),
        _shared(graph, names, handed),
        _unknown(graph, names),
    ]
    return "\n\n".join(section for section in sections if section)


def _empty_report(graph: ComputationGraph) -> str:
    """One clear sentence when nothing was slow enough to record."""
    name = graph.metadata.get("name", "graph")
    if "min_call_ms" in graph.metadata:
        why = f"no call took longer than {float(graph.metadata['min_call_ms']):.1f} ms"
    else:
        why = "no slow call was recorded"
    lines = [f"graph {name}: {why}; nothing to parallelize"]
    if "wall_time" in graph.metadata:
        lines.append(_row("wall time", _ms(float(graph.metadata["wall_time"])), "the whole run"))
    return "\n".join(lines)


def _ms(seconds: float) -> str:
    """Seconds as milliseconds with one decimal."""
    return f"{seconds * 1000:.1f} ms"


def _row(label: str, value: str, note: str) -> str:
    """One line of the timing table: label, right-aligned value, note."""
    return f"  {label:<14}{value:>10}  {note}"


def _timing(graph: ComputationGraph, names: Mapping[int, str], direct: Direct) -> str:
    """Sequential and wall time, the critical path, and the speedup bound they imply."""
    count = len(graph.operations)
    path = passes.critical_path(graph, direct=direct)
    wall = graph.metadata.get("wall_time")
    return "\n".join(
        [
            f"graph {graph.metadata.get('name', 'graph')}: {count} slow call{'s' if count != 1 else ''}",
            _row("sequential", _ms(passes.sequential_seconds(graph)), "the slow calls one after another"),
            _row("wall time", "?", "not recorded (taken as the sequential time)")
            if wall is None
            else _row("wall time", _ms(float(wall)), "the whole run"),
            _row("critical path", _ms(path.seconds), _path_text(path.operations, names)),
            _row(
                "speedup bound",
                f"{passes.speedup_bound(graph, path=path):.1f}x",
                "if every call started as soon as its inputs were ready",
            ),
        ]
    )


def _callees(graph: ComputationGraph) -> str:
    """Per callee, in order of first call: how many calls, how long they took together, and the
    tokens their results report (an `openai` response's `usage`), when they report some."""
    calls: dict[str, int] = {}
    seconds: dict[str, float] = {}
    tokens: dict[str, int] = {}
    for op in graph.operations:
        calls[op.name] = calls.get(op.name, 0) + 1
        seconds[op.name] = seconds.get(op.name, 0.0) + op.duration
        value = op.outputs[0].value if op.outputs else None
        tokens[op.name] = tokens.get(op.name, 0) + reported_tokens(value)
    lines = ["Calls by callee:"]
    for name, count in calls.items():
        spent = f", {tokens[name]:,} tokens" if tokens[name] else ""
        lines.append(f"  {name}: {count} call{'s' if count != 1 else ''}, {_ms(seconds[name])}{spent}")
    return "\n".join(lines)


_WRAPS_SHOWN = 5


def _wrapping(graph: ComputationGraph) -> str:
    """The functions the block called whose slow calls could overlap under `xcs.jit` (see `wrapping`)."""
    found = worth_wrapping(graph)
    if not found:
        return ""
    lines = [
        "Functions worth wrapping in xcs.jit (it issues ahead the calls a function makes itself, a helper "
        "call as one, where it can check a call's inputs ahead: its explain() names the calls it runs in "
        "their turn; this leaves out what the calls inside a helper gain, which it follows into):"
    ]
    for wrap in found[:_WRAPS_SHOWN]:
        calls = f"{wrap.calls} call{'s' if wrap.calls != 1 else ''}"
        lines.append(
            f"  {wrap.hint} could save up to {_ms(wrap.saves)} of {_ms(wrap.sequential)} "
            f"({calls}, {wrap.slow_calls} slow calls inside)"
        )
        if wrap.held:
            lines.append(f"    of which the jit saves about {_ms(wrap.saves_today)}: {wrap.held}")
    if len(found) > _WRAPS_SHOWN:
        lines.append(f"  ... and {len(found) - _WRAPS_SHOWN} more")
    return "\n".join(lines)


def _path_text(ops: Sequence[Operation], names: Mapping[int, str]) -> str:
    """`%0 draft (a.py:3) -> %4 judge (a.py:9)`, the middle elided when long."""
    shown = [f"{names[op.id]} {op.name} ({op.site})" for op in ops]
    if len(shown) > 2 * _PATH_ENDS + 1:
        hidden = len(shown) - 2 * _PATH_ENDS
        shown = [*shown[:_PATH_ENDS], f"... {hidden} more ...", *shown[-_PATH_ENDS:]]
    return " -> ".join(shown)


def _groups(
    graph: ComputationGraph,
    found: Sequence[Pattern],
    names: Mapping[int, str],
    direct: Direct,
    handed: _Handed,
) -> str:
    """Each independent set with its sites and callees, then the maps and ensembles it holds."""
    groups = [sorted(group, key=lambda op: op.id) for group in passes.independent_sets(graph, direct=direct)]
    if not groups:
        if any(handed.held(op) for op in graph.operations):
            return (
                "No two calls can run at the same time: each one needs a result of an earlier one, "
                "or an object an earlier call was handed (see below)."
            )
        return "No two calls can run at the same time: each one needs a result of an earlier one."
    lines = ["Calls that can run at the same time:"]
    shown: set[int] = set()
    for group in groups:
        ids = {op.id for op in group}
        sites = _sites_text(op.site for op in group)
        calls = f"{_callee_counts(group)} ({_name_ranges(group, names)})"
        lines.append(f"  {len(group)} calls at {sites} are independent: {calls}")
        for index, pattern in enumerate(found):
            overlaps = any(op.id in ids for op in pattern.operations)
            if pattern.kind in ("map", "ensemble") and overlaps and index not in shown:
                shown.add(index)
                lines.append(f"    {pattern.kind}: {pattern.description}")
    return "\n".join(lines)


def _listed(title: str, found: Sequence[Pattern], kind: str) -> str:
    """A titled list of the patterns of one kind, or nothing."""
    lines = [f"  {pattern.description}" for pattern in found if pattern.kind == kind]
    return "\n".join([title, *lines]) if lines else ""


def _chains(found: Sequence[Pattern], handed: _Handed) -> str:
    """The chains; one whose links are only objects handed to each call (see `_shared`) says so
    instead of that its calls cannot overlap."""
    lines = []
    for pattern in found:
        if pattern.kind != "chain":
            continue
        chain = pattern.operations
        links = [
            any(earlier.id in ids for ids in handed.held(op).values())
            for earlier, op in zip(chain, chain[1:], strict=False)
        ]
        text = pattern.description
        if all(links):
            text = text.replace(CHAIN_REASON, "only a shared object keeps them apart (see below)")
        elif any(links):
            text = text.replace(CHAIN_REASON, "some wait only for a shared object (see below)")
        lines.append(f"  {text}")
    return "\n".join(["Chains:", *lines]) if lines else ""


def _control(graph: ComputationGraph, names: Mapping[int, str]) -> str:
    """Calls that were made only because an earlier call's result steered a branch, with the branch
    in the code's terms and what `xcs.jit` does with such a call."""
    lines = []
    for op in graph.operations:
        steering = sorted(passes.control_dependencies(graph, op), key=lambda dep: dep.id)
        if steering:
            results = ", ".join(f"{names[dep.id]} {dep.name}" for dep in steering)
            outcomes = op.metadata.get("outcomes") or (None,) * len(op.control)
            pairs = zip(op.control, outcomes, strict=False)
            when = _and(list(dict.fromkeys(_when(ref, way, names) for ref, way in pairs)))
            arrive = "that result arrives" if len(steering) == 1 else "those results arrive"
            lines.append(
                f"  {names[op.id]} {op.name} at {op.site} runs only when {when} ({results}): "
                f"xcs.jit issues it once {arrive}, if so"
            )
    return "\n".join(["Control dependencies:", *lines]) if lines else ""


def _when(cond: ValueRef, way: tuple[Any, Any] | None, names: Mapping[int, str]) -> str:
    """A branch condition as the way the run went (`way`, see `build.trace.Condition`): `'math' in %0`
    is True, %0 is None, %0 has more than 2 items."""
    text = format_value(cond, names)
    kind, value = way if way is not None else (None, None)
    kind = getattr(kind, "value", kind)  # (a DecisionKind, named by value: analyze does not import build)
    if kind == "truth":
        return f"{text} is {bool(value)}"
    if kind == "none":
        return f"{text} is None" if value else f"{text} is not None"
    if kind == "more":
        return f"{text} has more than {value} items" if value else f"{text} is not empty"
    return f"the branch on {text} goes this way"


def _shared(graph: ComputationGraph, names: Mapping[int, str], handed: _Handed) -> str:
    """Calls that wait for earlier ones only because those were handed a mutable object they also
    get (a headers dict, a config list): a call may change what it is handed, so the later call
    must see it after, unless each gets its own."""
    lines = []
    for op in graph.operations:
        for obj, earlier in handed.held(op).items():
            before = _and([f"{names[dep]} {graph.operations[dep].name}" for dep in earlier])
            value = handed.objects[obj]
            what = f"the {type(value).__name__} {obj}" if value is not MISSING else obj
            copy = f"`{type(value).__name__}({obj})`" if type(value) in (dict, list, set) else "a copy"
            lines.append(
                f"  {names[op.id]} {op.name} at {op.site} waits for {before} only because {what} was "
                f"handed to {'it' if len(earlier) == 1 else 'them'}, and a call may change what it is "
                f"handed: give each call its own ({copy}), or build it inside the call, and they can overlap"
            )
    return "\n".join(["Held back by a shared object:", *lines]) if lines else ""


class _Handed:
    """For each operation, the earlier operations it needs only through objects they were handed
    (`effect(...)` values), by object; each shared value looked at once for the whole graph."""

    def __init__(self, names: Mapping[int, str]) -> None:
        self.names = names  # (the report's print names, for the objects' text)
        self.held_by: dict[int, dict[str, list[int]]] = {}
        self.done: dict[int, tuple[frozenset[int], dict[int, str]]] = {}
        self.keep: list[ValueRef] = []
        self.objects: dict[str, object] = {}  # an object's text -> its value (for the copy hint)

    def held(self, op: Operation) -> dict[str, list[int]]:
        """Object text -> the ids of the earlier operations `op` waits for only through it."""
        if op.id not in self.held_by:
            self.held_by[op.id] = self._held(op)
        return self.held_by[op.id]

    def _held(self, op: Operation) -> dict[str, list[int]]:
        data: set[int] = set().union(*(ref.deps for ref in op.control))
        shared: dict[int, str] = {}
        for ref in op.inputs:
            ref_data, ref_shared = fold(ref, self.done, self._visit)
            data |= ref_data
            shared.update(ref_shared)
        by_object: dict[str, list[int]] = {}
        for dep, obj in sorted(shared.items()):
            if dep not in data:
                by_object.setdefault(obj, []).append(dep)
        return by_object

    def _visit(
        self, ref: ValueRef, operands: tuple[tuple[frozenset[int], dict[int, str]], ...]
    ) -> tuple[frozenset[int], dict[int, str]]:
        self.keep.append(ref)
        if ref.source is not Source.EXPR:
            return ref.deps, {}
        if ref.kind is not ExprKind.EFFECT and all(
            data is operand.deps and not shared and data <= ref.deps
            for (data, shared), operand in zip(operands, ref.operands, strict=True)
        ):
            # (what the general case below gives, without a new set per level: `text = text + llm(d)`
            # nests as deep as its loop has rounds, and a union at each level would be quadratic)
            return ref.deps, {}
        data = frozenset().union(*(d for d, _ in operands))
        shared: dict[int, str] = {}
        for _, more in operands:
            shared.update(more)
        added = ref.deps - frozenset().union(*(operand.deps for operand in ref.operands))
        if ref.kind is not ExprKind.EFFECT or not ref.operands:
            return data | added, shared
        base = ref.operands[0]
        while base.kind is ExprKind.EFFECT and base.operands:
            base = base.operands[0]
        text = format_value(base, self.names)
        self.objects.setdefault(text, ref.value)
        for dep in added:
            shared.setdefault(dep, text)
        return data, shared


def _unknown(graph: ComputationGraph, names: Mapping[int, str]) -> str:
    """Calls that had to wait for everything before them because a value's origin was not found."""
    lines = []
    reads = _UnknownReads()
    for op in graph.operations:
        if op.id and reads.any(op):  # the first call has nothing before it to wait for
            origins = passes.unknown_origins(op)
            why = f" (it comes from {_and(origins)}, not known to be pure)" if origins else ""
            lines.append(
                f"  {names[op.id]} {op.name} at {op.site} reads a value of unknown origin{why},"
                " so it is assumed to need every earlier call"
            )
    return "\n".join(["Unknown provenance:", *lines]) if lines else ""


class _UnknownReads:
    """Which values hold one of unknown origin, each shared value looked at once for the whole graph
    (a loop that accumulates hands every call a value holding all the earlier ones)."""

    def __init__(self) -> None:
        self.found: dict[int, bool] = {}  # id(ref) -> does it hold an UNKNOWN value?
        self.keep: list[ValueRef] = []  # the refs whose ids are keys (alive while the report is made)

    def any(self, op: Operation) -> bool:
        """Does `op` read a value of unknown provenance (see `passes.reads_unknown`)?"""
        return any(self.holds(ref) for ref in (*op.inputs, *op.control))

    def holds(self, root: ValueRef) -> bool:
        return fold(root, self.found, self._holds)

    def _holds(self, ref: ValueRef, operands: tuple[bool, ...]) -> bool:
        self.keep.append(ref)
        # (a value of unknown origin made before any call holds nothing back: it needs no call)
        return (ref.source is Source.UNKNOWN and bool(ref.deps)) or any(operands)


def _and(items: Sequence[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _callee_counts(ops: Iterable[Operation]) -> str:
    """`summarize x8, judge`: each callee once, in order of first call, with its count."""
    counts: dict[str, int] = {}
    for op in ops:
        counts[op.name] = counts.get(op.name, 0) + 1
    return ", ".join(name if count == 1 else f"{name} x{count}" for name, count in counts.items())


def _name_ranges(ops: Sequence[Operation], names: Mapping[int, str]) -> str:
    """`%0-%7, %9`: print names, runs of three or more consecutive ids shortened."""
    runs: list[list[Operation]] = []
    for op in ops:
        if runs and op.id == runs[-1][-1].id + 1:
            runs[-1].append(op)
        else:
            runs.append([op])
    parts = []
    for run in runs:
        if len(run) >= 3:  # "%0, %1" reads better than "%0-%1"
            parts.append(f"{names[run[0].id]}-{names[run[-1].id]}")
        else:
            parts += [names[op.id] for op in run]
    return ", ".join(parts)


def _sites_text(sites: Iterable[Site]) -> str:
    """Call sites compactly: `pipeline.py:14-15` per file (first to last line), files sorted."""
    by_file: dict[str, set[int]] = {}
    for site in sites:
        file = str(site).rsplit(":", 1)[0]
        by_file.setdefault(file, set()).add(site.line)
    parts = []
    for file in sorted(by_file):
        lines = sorted(by_file[file])
        span = str(lines[0]) if len(lines) == 1 else f"{lines[0]}-{lines[-1]}"
        parts.append(f"{file}:{span}")
    return ", ".join(parts)

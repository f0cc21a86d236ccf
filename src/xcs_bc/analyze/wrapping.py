"""Analyze: which functions of a captured run are worth wrapping in `xcs.jit`, and what for.

A capture that traced through the user's functions knows, for every slow call, the functions it
was made in (`Operation.stack`).  A jitted function issues ahead the calls *its own code* makes;
a helper it calls is one call to it (the jit follows into the helper, whose own calls may then
overlap too: this estimate leaves that out, so it is a lower bound of what the jit saves).  So
for one call of a function `f`, the calls made in it are cut into units: each slow call `f`'s
own code made, and each call of a helper that made slow calls (lasting as long as those calls,
one after another).  Units run one after another take their sequential time; started as soon as
the units they need are done, they take their critical path.  The difference, added up over
`f`'s calls in the run, is what `xcs.jit(f)` could save at best.

What the jit realizes of it (`Wrap.today`): to the function's plan a helper is one call that may
change whatever mutable object it is handed, so a later unit handed (or reading) one of those
objects waits for that helper call: the capture report counts those waits (what each followed
call was handed is the graph's `metadata["objects_handed"]`, by call number), and names the
first (`Wrap.held`).  The jit may still run a call in its turn for reasons a capture cannot tell
(branches it cannot guard, values it cannot recompute: its `explain()` names them), and its
first call traces.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from xcs_bc.build import purity
from xcs_bc.ir import MISSING, ComputationGraph, Operation
from xcs_bc.ir.passes import walk

__all__ = ["Wrap", "worth_wrapping"]

_MIN_SHARE = 0.1
"""A function is worth wrapping when it could save this share of the time its slow calls take."""


@dataclass(frozen=True)
class Wrap:
    """What wrapping one function in `xcs.jit` could save in the captured run."""

    function: str  # qualified name
    module: str
    calls: int  # how many times the run called it
    slow_calls: int  # slow calls made inside it, at any depth
    sequential: float  # seconds its units take one after another
    bound: float  # seconds they take started as soon as what they need is done
    today: float  # seconds they take as the jit issues them (see the module's docstring)
    held: str  # the first unit the jit holds back that the bound does not, and why ("" when none)

    @property
    def saves(self) -> float:
        return self.sequential - self.bound

    @property
    def saves_today(self) -> float:
        return self.sequential - self.today

    @property
    def hint(self) -> str:
        """`xcs.jit(module.function)` as a user would write it (in a script, `xcs.jit(function)`)."""
        where = f"{self.module}." if self.module and self.module != "__main__" else ""
        return f"xcs.jit({where}{self.function})"


def worth_wrapping(graph: ComputationGraph) -> list[Wrap]:
    """The functions whose slow calls could overlap under `xcs.jit`, those that save most first."""
    depends = {op.id: {dep.id for dep in graph.dependencies(op)} for op in graph.operations}
    handed: dict[int, tuple[tuple[str, Any], ...]] = graph.metadata.get("objects_handed", {})
    # (module, function) -> that function's calls: the call's number -> (depth, its operations)
    calls: dict[tuple[str, str], dict[int, tuple[int, list[Operation]]]] = defaultdict(dict)
    for op in graph.operations:
        for depth, caller in enumerate(op.stack):
            calls[(caller.module, caller.function)].setdefault(caller.call, (depth, []))[1].append(op)
    found = []
    for (module, function), made in calls.items():
        sequential = bound = today = 0.0
        held = ""
        for depth, ops in made.values():
            times = _units(ops, depth, depends, handed)
            sequential += times.sequential
            bound += times.bound
            today += times.today
            held = held or times.held
        if sequential > 0 and sequential - bound >= _MIN_SHARE * sequential:
            slow = sum(len(ops) for _, ops in made.values())
            found.append(Wrap(function, module, len(made), slow, sequential, bound, today, held))
    # a function wins over the functions it calls that save as much (wrap the outermost)
    return sorted(found, key=lambda wrap: (-round(wrap.saves, 6), -wrap.slow_calls, wrap.function))


@dataclass(frozen=True)
class _Times:
    """One call's units: one after another, by the dataflow, as the jit issues them (and why not)."""

    sequential: float
    bound: float
    today: float
    held: str


def _units(
    ops: Iterable[Operation],
    depth: int,
    depends: dict[int, set[int]],
    handed: dict[int, tuple[tuple[str, Any], ...]],
) -> _Times:
    """The sequential time, the critical path, and the critical path as the jit issues them, of one
    call's units (see the module's docstring)."""
    unit_of: dict[int, tuple[int, int]] = {}
    seconds: dict[tuple[int, int], float] = {}  # (in the order the units started: a unit runs whole)
    label: dict[tuple[int, int], str] = {}
    objects: dict[tuple[int, int], dict[int, tuple[str, Any]]] = {}  # what it is handed, by id
    for op in ops:
        # its own call (0, op id), or the call of the helper it was made in (1, that call's number)
        helper = op.stack[depth + 1] if len(op.stack) > depth + 1 else None
        unit = (0, op.id) if helper is None else (1, helper.call)
        unit_of[op.id] = unit
        if unit not in seconds:
            if helper is None:
                label[unit] = f"{op.name} ({op.site})"
                objects[unit] = _read_objects(op)
            else:
                label[unit] = f"{helper.function} ({helper.site})"
                objects[unit] = {id(obj): (name, obj) for name, obj in handed.get(helper.call, ())}
        seconds[unit] = seconds.get(unit, 0.0) + op.duration
    needs: dict[tuple[int, int], set[tuple[int, int]]] = defaultdict(set)
    for op_id, unit in unit_of.items():
        needs[unit] |= {unit_of[dep] for dep in depends[op_id] if dep in unit_of and unit_of[dep] != unit}
    finish: dict[tuple[int, int], float] = {}
    finish_today: dict[tuple[int, int], float] = {}
    held = ""
    before: list[tuple[int, int]] = []
    for unit in seconds:  # what a unit needs ran before it
        finish[unit] = max((finish[need] for need in needs[unit]), default=0.0) + seconds[unit]
        waits = set(needs[unit])
        for earlier in before:  # a helper call may change what it was handed: the jit waits for it
            common = objects[earlier].keys() & objects[unit].keys()
            if earlier[0] == 1 and common:
                waits.add(earlier)
                if not held and earlier not in needs[unit]:
                    name, obj = objects[earlier][min(common)]
                    other = "the call before it" if label[earlier] == label[unit] else label[earlier]
                    held = (
                        f"{label[unit]} waits for {other}, a helper call handed the same "
                        f"{type(obj).__name__} (`{name}`), which it may change (to the jit's plan a "
                        "helper call is one call)"
                    )
        finish_today[unit] = max((finish_today[need] for need in waits), default=0.0) + seconds[unit]
        before.append(unit)
    return _Times(
        sum(seconds.values()),
        max(finish.values(), default=0.0),
        max(finish_today.values(), default=0.0),
        held,
    )


def _read_objects(op: Operation) -> dict[int, tuple[str, Any]]:
    """The mutable objects a slow call's arguments are or read, by id (its callee aside)."""
    found: dict[int, tuple[str, Any]] = {}
    for ref in walk(op.inputs[1:]):
        value = ref.value
        if ref.name and value is not MISSING and not purity.is_immutable(value):
            found.setdefault(id(value), (ref.name, value))
    return found

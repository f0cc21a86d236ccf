"""Analyze: which functions of a captured run are worth wrapping in `xcs.jit`, and what for.

A capture that traced through the user's functions knows, for every slow call, the functions it
was made in (`Operation.stack`).  A jitted function issues ahead the calls *its own code* makes;
a helper it calls is one call to it (the jit does not look inside).  So for one call of a function
`f`, the calls made in it are cut into units: each slow call `f`'s own code made, and each call of
a helper that made slow calls (lasting as long as those calls, one after another).  Units run one
after another take their sequential time; started as soon as the units they need are done, they
take their critical path.  The difference, added up over `f`'s calls in the run, is what
`xcs.jit(f)` could save at best: the jit still runs a call in its turn where it cannot prove the
call's inputs ahead (branches it cannot guard, values it cannot recompute), and its first call
traces.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from xcs_bc.ir import ComputationGraph, Operation

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

    @property
    def saves(self) -> float:
        return self.sequential - self.bound

    @property
    def hint(self) -> str:
        """`xcs.jit(module.function)` as a user would write it (in a script, `xcs.jit(function)`)."""
        where = f"{self.module}." if self.module and self.module != "__main__" else ""
        return f"xcs.jit({where}{self.function})"


def worth_wrapping(graph: ComputationGraph) -> list[Wrap]:
    """The functions whose slow calls could overlap under `xcs.jit`, those that save most first."""
    depends = {op.id: {dep.id for dep in graph.dependencies(op)} for op in graph.operations}
    # (module, function) -> that function's calls: the call's number -> (depth, its operations)
    calls: dict[tuple[str, str], dict[int, tuple[int, list[Operation]]]] = defaultdict(dict)
    for op in graph.operations:
        for depth, caller in enumerate(op.stack):
            calls[(caller.module, caller.function)].setdefault(caller.call, (depth, []))[1].append(op)
    found = []
    for (module, function), made in calls.items():
        sequential = bound = 0.0
        for depth, ops in made.values():
            run, path = _units(ops, depth, depends)
            sequential += run
            bound += path
        if sequential > 0 and sequential - bound >= _MIN_SHARE * sequential:
            slow = sum(len(ops) for _, ops in made.values())
            found.append(Wrap(function, module, len(made), slow, sequential, bound))
    # a function wins over the functions it calls that save as much (wrap the outermost)
    return sorted(found, key=lambda wrap: (-round(wrap.saves, 6), -wrap.slow_calls, wrap.function))


def _units(ops: Iterable[Operation], depth: int, depends: dict[int, set[int]]) -> tuple[float, float]:
    """The sequential time and the critical path of one call's units (see the module's docstring)."""
    unit_of: dict[int, tuple[int, int]] = {}
    seconds: dict[tuple[int, int], float] = {}  # (in the order the units started: a unit runs whole)
    for op in ops:
        # its own call (0, op id), or the call of the helper it was made in (1, that call's number)
        unit = (0, op.id) if len(op.stack) == depth + 1 else (1, op.stack[depth + 1].call)
        unit_of[op.id] = unit
        seconds[unit] = seconds.get(unit, 0.0) + op.duration
    needs: dict[tuple[int, int], set[tuple[int, int]]] = defaultdict(set)
    for op_id, unit in unit_of.items():
        needs[unit] |= {unit_of[dep] for dep in depends[op_id] if dep in unit_of and unit_of[dep] != unit}
    finish: dict[tuple[int, int], float] = {}
    for unit in seconds:  # what a unit needs ran before it
        finish[unit] = max((finish[need] for need in needs[unit]), default=0.0) + seconds[unit]
    return sum(seconds.values()), max(finish.values(), default=0.0)

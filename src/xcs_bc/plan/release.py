"""Release what a plan no longer needs of the trace it was made from.

While tracing, every `ValueRef` carries the object it stood for (`value`), every operation's
metadata the arguments and any exception (with its traceback, and so its frames), and every
recipe's `CallFacts` the callee.  Planning reads them: recipes are checked against them, guards
take the types and identities they need.  A jitted function keeps up to `cache_size` plans, and
so, without this step, the arguments and results of as many traced calls (a 50 MB document, a
client response, a frame's locals), for as long as the function lives.

`released(plan, loops)` makes the plan that is kept: the same graph, guards, recipes and loops,
built of values that keep only what a replay, `generalize` and `explain()` read:

- constants, globals and closure cells keep their value (the code's own constants, the
  callees a guard checks by identity, `zip` and `reversed` that tell a loop's shape; the
  objects live in the module or the closure anyway); every other value (inputs, results,
  expressions computed from them, values of unknown origin) drops it;
- operations keep their timing; an exception becomes its type (the SSA text prints only that);
  recipes keep the facts of their call (code object, `f(*seq)` or not, ...) but the callee;
- guards keep what they compare with: a type, a length, a truth value, the object a callee
  must be.

Dependencies (`deps`), paths and expressions are kept exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from xcs_bc.build.trace import Condition, LoopRecord
from xcs_bc.ir import MISSING, ComputationGraph, Operation, Source, ValueRef
from xcs_bc.ir.passes import fold
from xcs_bc.plan.guards import Guard
from xcs_bc.plan.planner import Plan
from xcs_bc.plan.recipes import Recipe

__all__ = ["lean_copies", "released"]

_KEPT_VALUES = frozenset({Source.CONST, Source.GLOBAL, Source.CELL})
_KEPT_METADATA = (
    "start",
    "end",
    "duration",
    "occurrence",
    "thread",
)
"""Operation metadata that is small and says what happened (timing).  The arguments and the
exception are not kept."""


def released(plan: Plan, loops: Sequence[LoopRecord]) -> tuple[Plan, tuple[LoopRecord, ...]]:
    """`plan` and `loops` rebuilt without the trace's objects they do not need (see the module)."""
    lean = _Lean()
    graph = plan.graph
    operations = [lean.operation(op) for op in graph.operations]
    lean_graph = ComputationGraph(
        operations,
        tuple(lean.ref(ref) for ref in graph.inputs),
        tuple(lean.ref(ref) for ref in graph.outputs),
        {
            key: _exception_type(value) if key == "exception" else value
            for key, value in graph.metadata.items()
        },
    )
    guards = {id(guard): lean.guard(guard) for guard in plan.guards}
    for guard in plan.decision_guards.values():
        guards.setdefault(id(guard), lean.guard(guard))
    recipes = tuple(lean.recipe(recipe, operations[recipe.op.id]) for recipe in plan.recipes)
    kept = dataclasses.replace(
        plan,
        graph=lean_graph,
        guards=tuple(guards[id(guard)] for guard in plan.guards),
        recipes=recipes,
        decision_guards=_same_keys(plan.decision_guards, guards),
        forks=tuple(
            dataclasses.replace(
                fork, condition=lean.condition(fork.condition), under=tuple(map(lean.condition, fork.under))
            )
            for fork in plan.forks
        ),
    )
    lean_loops = tuple(
        dataclasses.replace(
            record,
            iterable=lean.ref(record.iterable),
            sequences=tuple(lean.ref(ref) for ref in record.sequences),
        )
        for record in loops
    )
    return kept, lean_loops


def lean_copies(
    recipes: Sequence[Recipe], guards: Sequence[Guard]
) -> tuple[tuple[Recipe, ...], tuple[Guard, ...]]:
    """`recipes` (with their operations) and `guards` without the trace's objects, as in a kept plan:
    for those a plan takes on later (see `plan.learn`)."""
    lean = _Lean()
    return (
        tuple(lean.recipe(recipe, lean.operation(recipe.op)) for recipe in recipes),
        tuple(map(lean.guard, guards)),
    )


def _same_keys(decision_guards: Mapping[int, Guard], guards: Mapping[int, Guard]) -> dict[int, Guard]:
    """The decision guards, each replaced by its lean copy (the very one in the plan's guards)."""
    return {index: guards[id(guard)] for index, guard in decision_guards.items()}


def _exception_type(exception: Any) -> Any:
    """An exception's type (its traceback holds frames, and their locals); anything else as it is."""
    return type(exception) if isinstance(exception, BaseException) else exception


class _Lean:
    """Lean copies of values and operations; a value shared by several places is copied once."""

    def __init__(self) -> None:
        self.made: dict[int, ValueRef] = {}  # id of an original value -> its copy
        self.originals: list[ValueRef] = []  # keeps the ids above valid while the plan is rebuilt

    def ref(self, root: ValueRef) -> ValueRef:
        """`root` without the objects seen while tracing, but those of constants, globals and cells."""
        return fold(root, self.made, self._copy)

    def _copy(self, ref: ValueRef, operands: tuple[ValueRef, ...]) -> ValueRef:
        self.originals.append(ref)
        value = ref.value if ref.source in _KEPT_VALUES else MISSING
        # (`under` is for planning only: its conditions hold the trace's results)
        return ref.replaced(operands=operands, value=value, under=())

    def guard(self, guard: Guard) -> Guard:
        return dataclasses.replace(guard, ref=self.ref(guard.ref))

    def recipe(self, recipe: Recipe, op: Operation) -> Recipe:
        """`recipe` for the lean `op`: the facts of its call kept but the callee."""
        return dataclasses.replace(
            recipe,
            op=op,
            callee=self.ref(recipe.callee),
            args=tuple(map(self.ref, recipe.args)),
            when=tuple(map(self.guard, recipe.when)),
            facts=dataclasses.replace(
                recipe.facts, callee=MISSING, conditions=tuple(map(self.condition, recipe.facts.conditions))
            ),
        )

    def condition(self, condition: Condition) -> Condition:
        return Condition(self.ref(condition.cond), condition.outcome, condition.site)

    def operation(self, op: Operation) -> Operation:
        metadata = {key: op.metadata[key] for key in _KEPT_METADATA if key in op.metadata}
        if "exception" in op.metadata:
            metadata["exception"] = _exception_type(op.metadata["exception"])
        return dataclasses.replace(
            op,
            inputs=tuple(self.ref(ref) for ref in op.inputs),
            outputs=tuple(self.ref(ref) for ref in op.outputs),
            control=tuple(self.ref(ref) for ref in op.control),
            metadata=metadata,
        )

"""Read points: where a replay may read the locals of the function that a recipe needs.

A recipe that reads a value the function made itself (a local) cannot be computed from the inputs:
the replay reads it from the frame once the real run has made it, at an earlier call that every
replay reaches the same way and after which nothing could change it (`read_points`).
"""

from __future__ import annotations

from xcs_bc.ir import Local, OpType
from xcs_bc.ir.values import local_of
from xcs_bc.plan.recipes import Recipe, Refusal, RefusalKind

__all__ = ["local_names", "local_reads", "no_point", "read_points"]


def local_reads(recipe: Recipe) -> tuple[Local, ...]:
    """The locals of the function a recipe reads (which assignment of each), in a fixed order."""
    reads: dict[Local, None] = {}
    todo = list(recipe.refs)
    while todo:
        ref = todo.pop()
        found = local_of(ref)
        if found is not None:
            reads[found] = None
        todo.extend(ref.operands)
    return tuple(reads)


def read_points(recipes: tuple[Recipe, ...], cutoff: int) -> dict[int, tuple[int, ...]]:
    """Where a replay may read the locals a recipe needs: at call j (made before it, at a point every
    replay reaches the same way) when, in the trace, each local had had the very assignment the
    recipe reads, and nothing that might change that object (a function not known to be pure, a change
    in place of anything but a container the glue built) ran between j and the recipe's call.
    """
    ready: dict[int, list[int]] = {}
    reliable = _reliable_points(recipes, cutoff)
    for recipe in recipes:
        wanted = local_reads(recipe) if recipe.ahead else ()
        if not wanted:
            continue
        op = recipe.op
        for j in reliable:
            if j >= op.id:
                break
            point = recipes[j].facts
            if point.effects == recipe.facts.effects and all(
                point.assigned.get(local.name) == local.assignment for local in wanted
            ):
                ready.setdefault(j, []).append(op.id)
    return {j: tuple(v) for j, v in ready.items()}


def local_names(recipe: Recipe) -> str:
    """The locals a recipe reads from the function's frame, for people: `patch, record`."""
    return ", ".join(sorted({local.name for local in local_reads(recipe)}))


def no_point(recipe: Recipe) -> Refusal:
    names = local_names(recipe)
    return Refusal(
        RefusalKind.NO_POINT,
        f"it reads {names}, made by the function itself, and no earlier call is a point to read it at",
    )


def _reliable_points(recipes: tuple[Recipe, ...], cutoff: int) -> list[int]:
    """Calls a replay dispatches at the same point of the run as the trace made them: call sites all of
    whose calls so far were unconditional (else the n-th call at a site may be another one)."""
    points, shaky = [], set()
    for recipe in recipes:
        op = recipe.op
        key = (id(recipe.facts.code), op.site.offset)
        if op.op_type is not OpType.CALL or op.id >= cutoff or recipe.facts.conditions or key in shaky:
            shaky.add(key)
            continue
        points.append(op.id)
    return points

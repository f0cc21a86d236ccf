"""Learn: the arms of branches on results a plan's trace did not take, from a later trace that did.

A plan issues the calls under a branch on results only on the arm its trace took (`Recipe.when`).
A replay whose results go the other way at a branch whose other arm may make calls (a `Fork`) makes
those calls in their turn: exact, but one after another.  `strays` tells, once such a replay is over,
at which forks its results went the other way; the next call that fits the plan is then traced, and
`learn(plan, other)` adds to the plan the calls of that trace's plan (`other`) that lie on an arm the
plan's trace never took.

A call of `other` is learned when:

- one of the branches it is reached through went the other way than in the plan's trace, each branch
  before that one went the same way, and each after it is one inside the new arm;
- it was issued ahead in `other` (its recipe, its predicates and `other`'s guards say it is the call
  the run makes whenever they hold), reads no local from the frame and calls no `lru_cache` wrapper;
- every result it reads is one of the plan's own calls, or a call learned with it.

Its recipe is `other`'s, its results renumbered: each call of `other` that is one of the plan's own
is told by its code, its call site and its recipe (the same callee and arguments, as expressions of
the inputs and of results themselves told the same).  Its predicates keep it to its arm: on a run
that goes the plan's way at that branch it is never issued, and the plan's calls under the other arm
are not.  `other`'s guards join the plan's, so the plan applies only where both traces' hold.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import cast

from xcs_bc.build.purity import memo_wrapper
from xcs_bc.build.trace import Condition, DecisionKind
from xcs_bc.ir import OpType, Source, ValueRef
from xcs_bc.ir.passes import fold
from xcs_bc.plan.guards import Guard, holds, predicate, predicates
from xcs_bc.plan.planner import Plan, dependents_of
from xcs_bc.plan.readpoints import local_reads
from xcs_bc.plan.recipes import Recipe
from xcs_bc.plan.release import lean_copies
from xcs_bc.plan.slices import Env, same_value

__all__ = ["LESSONS", "learn", "strays"]

LESSONS = 3  # calls traced, at most, to learn the arms a plan's trace did not take

_ARMS = (DecisionKind.TRUTH, DecisionKind.NONE)  # branches with two arms (a loop's rounds are not learned)


def strays(plan: Plan, env: Env) -> set[int]:
    """The forks of `plan` (indices) at which a replay's results, in `env`, went the way its trace did
    not, among those not learned yet: each one the run reached (its own branches hold) and whose
    predicate fails."""
    out: set[int] = set()
    if plan.lessons >= LESSONS:
        return out
    for index, fork in enumerate(plan.forks):
        if index in plan.settled or index in plan.strayed:
            continue
        under, way = predicates(fork.under), predicate(fork.condition)
        if under is None or way is None:
            continue  # reached through a branch no predicate decides: whether the run got there is unknown
        try:
            if holds(under, env) and holds((way,), env) is False:
                out.add(index)
        except Exception:  # noqa: BLE001 - a bug of ours must not fail the call (this runs as it ends)
            continue
    return out


def learn(plan: Plan, other: Plan) -> Plan | None:
    """`plan` with the calls of `other` that lie on arms its trace did not take (see the module), or
    None when there are none.  `other` is a plan of the same function, not yet released."""
    traced = len(plan.graph.operations)
    if plan.cutoff < traced:
        return None  # after a branch no guard can check, nothing is issued ahead: nor learned
    numbers = _own_calls(plan, other)
    known = [
        *(fork.condition for fork in plan.forks),
        *(condition for fork in plan.forks for condition in fork.under),
        *(condition for recipe in plan.recipes for condition in recipe.facts.conditions),
    ]
    added: list[Recipe] = []
    arms: dict[int, list[Recipe]] = {}  # the fork (index in `known`) whose other arm a call is on
    for recipe in other.recipes:
        if recipe.op.id in numbers or not _learnable(recipe):
            continue
        flipped = _flipped(recipe.facts.conditions, known, numbers)
        if flipped is None:
            continue
        number = len(plan.recipes) + len(added)
        conditions = recipe.facts.conditions
        refs = _renumbered((*recipe.refs, *(condition.cond for condition in conditions)), numbers)
        if refs is None:
            continue  # it reads a result of `other` that is neither the plan's nor learned
        numbers[recipe.op.id] = number
        op = dataclasses.replace(recipe.op, id=number)
        n = len(recipe.refs)
        renumbered = zip(refs[n:], conditions, strict=True)
        facts = dataclasses.replace(
            recipe.facts, conditions=tuple(Condition(cond, c.outcome, c.site) for cond, c in renumbered)
        )
        added.append(dataclasses.replace(recipe.with_refs(refs[:n]), op=op, facts=facts))
        arms.setdefault(flipped, []).append(added[-1])
    if not added:
        return None
    recipes, guards = lean_copies(added, _new_guards(plan.guards, other.guards))
    every = plan.recipes + recipes
    forks = {index for index in arms if index < len(plan.forks)}  # (`known` starts with the forks)
    return dataclasses.replace(
        plan,
        guards=plan.guards + guards,
        recipes=every,
        dependents=dependents_of(every),
        mispredicted=set(plan.mispredicted),
        strayed=plan.strayed - forks,
        settled=plan.settled | forks,
        learned=plan.learned + tuple(_lesson(known[index], calls) for index, calls in arms.items()),
    )


def _learnable(recipe: Recipe) -> bool:
    return (
        recipe.ahead
        and recipe.op.op_type is OpType.CALL
        and not local_reads(recipe)
        and memo_wrapper(recipe.facts.callee) is None
    )


def _flipped(
    conditions: Sequence[Condition], known: Sequence[Condition], numbers: dict[int, int]
) -> int | None:
    """The branch (index in `known`) at which a call reached through `conditions` left the plan's
    trace, when every branch before it went the trace's way and every one after it is new (inside
    that arm); else None."""
    flipped: int | None = None
    for condition in conditions:
        if condition.outcome is None:
            return None  # reached through a branch no predicate decides: it was not issued ahead
        same = [
            index
            for index, seen in enumerate(known)
            if seen.outcome is not None
            and seen.outcome[0] is condition.outcome[0]
            and _same_ref(seen.cond, condition.cond, numbers)
        ]
        if any(known[index].outcome == condition.outcome for index in same):
            if flipped is None:
                continue  # the way the trace went too
            return None  # (a branch after the new arm's that the trace reached: not one inside it)
        if flipped is None and same and condition.outcome[0] in _ARMS:
            flipped = same[0]
        elif flipped is None:
            return None  # a loop's round the trace did not run, or a branch the trace never reached
    return flipped


def _own_calls(plan: Plan, other: Plan) -> dict[int, int]:
    """Which calls of `other` are the plan's own: op id in `other` -> op id in the plan."""
    numbers: dict[int, int] = {}
    free: dict[tuple[int, int], list[Recipe]] = {}  # (id of the code, offset) -> the plan's calls there
    for recipe in plan.recipes[: len(plan.graph.operations)]:
        free.setdefault(_where(recipe), []).append(recipe)
    for recipe in other.recipes:
        candidates = free.get(_where(recipe), [])
        for mine in candidates:
            if _same_recipe(mine, recipe, numbers):
                numbers[recipe.op.id] = mine.op.id
                candidates.remove(mine)
                break
    return numbers


def _where(recipe: Recipe) -> tuple[int, int]:
    return id(recipe.facts.code), recipe.op.site.offset


def _same_recipe(mine: Recipe, theirs: Recipe, numbers: dict[int, int]) -> bool:
    return (
        mine.op.op_type is theirs.op.op_type
        and mine.kwnames == theirs.kwnames
        and mine.facts.star == theirs.facts.star
        and len(mine.args) == len(theirs.args)
        and all(
            _same_ref(a, b, numbers)
            for a, b in zip((mine.callee, *mine.args), (theirs.callee, *theirs.args), strict=True)
        )
    )


def _same_ref(mine: ValueRef, theirs: ValueRef, numbers: dict[int, int]) -> bool:
    """Does `theirs`, a value of the other trace, stand for the value `mine` stands for in the plan:
    the same expression of the same inputs, constants, globals and results (`numbers` tells which
    results of the other trace are the plan's)?  Values of unknown origin are the same only when both
    are what one assignment of a local stored."""
    todo, seen = [(mine, theirs)], set()
    while todo:
        a, b = todo.pop()
        if (id(a), id(b)) in seen:
            continue
        seen.add((id(a), id(b)))
        if (a.source, a.name, a.kind, a.loop, a.counter, len(a.path), len(a.operands)) != (
            b.source,
            b.name,
            b.kind,
            b.loop,
            b.counter,
            len(b.path),
            len(b.operands),
        ):
            return False
        if any(x.kind != y.kind or not same_value(x.key, y.key) for x, y in zip(a.path, b.path, strict=True)):
            return False
        if a.source is Source.OUTPUT and (b.op is None or numbers.get(b.op) != a.op):
            return False
        if a.source is Source.UNKNOWN and (a.local is None or a.local != b.local):
            return False
        if a.source in (Source.CONST, Source.GLOBAL, Source.CELL) and not same_value(a.value, b.value):
            return False
        todo.extend(zip(a.operands, b.operands, strict=True))
    return True


def _renumbered(refs: tuple[ValueRef, ...], numbers: dict[int, int]) -> tuple[ValueRef, ...] | None:
    """`refs` reading the plan's results instead of the other trace's; None when one has no number."""

    def copy(ref: ValueRef, operands: tuple[ValueRef | None, ...]) -> ValueRef | None:
        if ref.source is Source.OUTPUT and ref.op not in numbers:
            return None
        if any(operand is None for operand in operands):
            return None
        op = numbers[ref.op] if ref.source is Source.OUTPUT and ref.op is not None else ref.op
        return dataclasses.replace(
            ref, operands=cast(tuple[ValueRef, ...], operands), op=op, deps=frozenset(), under=()
        )

    made: dict[int, ValueRef | None] = {}
    out = tuple(fold(ref, made, copy) for ref in refs)
    return None if any(ref is None for ref in out) else cast(tuple[ValueRef, ...], out)


def _new_guards(mine: Sequence[Guard], theirs: Sequence[Guard]) -> list[Guard]:
    """The other trace's guards the plan does not have already."""

    def same(a: Guard, b: Guard) -> bool:
        return a.kind is b.kind and same_value(a.expected, b.expected) and _same_ref(a.ref, b.ref, {})

    return [guard for guard in theirs if not any(same(g, guard) for g in mine)]


def _lesson(fork: Condition, calls: Sequence[Recipe]) -> str:
    """What explain() says was learned at one branch."""
    assert fork.outcome is not None
    kind, went = fork.outcome
    way = predicate(Condition(fork.cond, (kind, not went)))
    assert way is not None
    names = ", ".join(f"%{recipe.op.id} {recipe.op.name}" for recipe in calls)
    return f"the arm taken when {way.describe()} (from a later trace): {names}"

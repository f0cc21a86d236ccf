"""Shape-general plans: replay a traced loop for any number of items, without tracing again.

A trace over 4 documents makes a plan for exactly 4: its loop made 4 rounds of
calls, and a guard says `len(docs) == 4`.  When every round made the same calls
at the same sites, from the same expressions of the round's item (paths such as
`docs[k].text`, the `enumerate` counter, outputs of the round's own earlier
calls), the rounds are one *template*.  For a call with 7 documents the template
is instantiated 7 times, the calls after the loop are renumbered, and lists the
loop built (`[llm(d) for d in docs]`, `answers.append(...)`) get 7 items: a
`Schedule` for the new lengths, made without running anything.

The evidence is the trace itself: a loop is generalized only when it has at
least two rounds and every round agrees with the template, per-round branch
decisions included (they become per-round guards).  When the code reads, after
the loop, a local its rounds set (the loop variable, a counter, a flag), what
follows depends on how many rounds ran: for other lengths nothing from that read
on is issued ahead.  A call after the loop that reads a round by position
(`answers[0]`) is not issued ahead for other lengths either.  A loop over
zip(a, b) runs as many rounds as its shortest sequence (with strict=True, only
equal lengths: others raise).  A plan that issues nothing ahead is not
generalized.  And the dispatcher still compares
every planned call with the real one, so a template that is wrong for new data
costs a misprediction, never a wrong result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from xcs_bc.build.trace import LoopRecord
from xcs_bc.ir import ExprKind, Source, ValueRef
from xcs_bc.ir.text import format_value
from xcs_bc.plan.guards import Guard, Miss, MissKind, sequence_lengths, zip_shortest
from xcs_bc.plan.planner import Plan, Schedule, dependents_of
from xcs_bc.plan.recipes import Recipe, Refusal, RefusalKind
from xcs_bc.plan.slices import Env, same_value
from xcs_bc.plan.templates import (
    CannotInstantiate,
    Layout,
    TracedLoop,
    Unifier,
    fill,
    instance,
    round_templates,
)

_MAX_SCHEDULES = 16


@dataclass
class Generalization:
    """A plan's loops as templates; `fit` gives the schedule for the lengths a call brings."""

    plan: Plan
    loops: list[TracedLoop]
    guards: tuple[Guard, ...]  # the plan's guards but the generalized loops' own and per-round ones
    recipes: tuple[Recipe, ...]  # per traced op outside the loops: refs are templates
    _schedules: dict[tuple[int, ...], tuple[Schedule, tuple[Guard, ...]] | Miss] = dataclasses.field(
        default_factory=dict
    )

    def describe(self) -> list[str]:
        """A line per loop replayed for any length: where, what it walks, its calls per round."""
        lines = []
        for loop in self.loops:
            record = loop.record
            walks = ", ".join(format_value(s) for s in record.sequences) or "a list an earlier loop built"
            ahead = sum(recipe.ahead for recipe in loop.recipes)
            lines.append(
                f"loop at {record.site} over {walks}: any length ({_count(loop.body, 'call')} a round, "
                f"{ahead} issued ahead; {_count(len(loop.guards), 'guard')} a round)"
            )
        return lines

    def fit(self, env: Env) -> Schedule | Miss:
        """The schedule for `env`'s loop lengths, or why the plan does not apply."""
        for guard in self.guards:
            failure = guard.check(env)
            if failure is not None:
                return failure
        lengths: list[int] = []
        for loop in self.loops:
            if loop.follows is not None:
                lengths.append(lengths[loop.follows])
                continue
            found = sequence_lengths(loop.record.sequences, env)
            if isinstance(found, str):
                return Miss(MissKind.LOOP, f"the loop at {loop.record.site}{found}")
            sizes = set(found)
            if len(sizes) != 1 and not zip_shortest(loop.record.iterable):
                text = f"the loop at {loop.record.site} walks sequences of different lengths {sorted(sizes)}"
                return Miss(MissKind.LOOP, text, found=sorted(sizes))
            lengths.append(min(sizes))  # zip() stops at the shortest (zip(strict=True) raises: no plan)
        made = self._schedule(tuple(lengths))
        if isinstance(made, Miss):
            return made
        schedule, guards = made
        for guard in guards:
            failure = guard.check(env)
            if failure is not None:
                return failure
        return schedule

    def _schedule(self, lengths: tuple[int, ...]) -> tuple[Schedule, tuple[Guard, ...]] | Miss:
        made = self._schedules.get(lengths)
        if made is None:
            made = self._instantiate(lengths)
            if len(self._schedules) >= _MAX_SCHEDULES:
                self._schedules.pop(next(iter(self._schedules)))
            self._schedules[lengths] = made
        return made

    def _instantiate(self, lengths: tuple[int, ...]) -> tuple[Schedule, tuple[Guard, ...]] | Miss:
        layout = Layout(len(self.plan.recipes), self.loops, lengths)
        recipes: list[Recipe] = []
        for place in layout.places:
            if place.loop is None:
                recipes.append(instance(self.recipes[place.origin], None, layout))
            else:
                template = self.loops[place.loop].recipes[place.origin - self.loops[place.loop].start]
                recipes.append(instance(template, place.round, layout))
        guards: list[Guard] = []
        for number, loop in enumerate(self.loops):
            for k in range(lengths[number]):
                for guard in loop.guards:
                    try:
                        ref = fill(guard.ref, k, layout)
                    except CannotInstantiate:
                        text = f"the loop at {loop.record.site} cannot be checked for {lengths[number]} items"
                        return Miss(MissKind.LOOP, text, found=lengths[number])
                    guards.append(dataclasses.replace(guard, ref=ref))
        origin = tuple(place.origin for place in layout.places)
        schedule = Schedule(tuple(recipes), dependents_of(tuple(recipes)), origin, lengths)
        return schedule, tuple(guards)


def generalize(plan: Plan, loops: Sequence[LoopRecord], carried: Mapping[int, int]) -> Generalization | None:
    """The plan's top-level loops as templates, or None when no loop can be generalized.

    `carried` maps the loops (indices into `loops`) whose rounds assigned a local read after them to
    the number of ops made before that read.
    A plan that issues nothing ahead is not generalized: resized it would still issue nothing, and it
    would apply to lengths a new trace may find calls to issue for.
    """
    if not any(recipe.ahead for recipe in plan.recipes):
        return None
    number = {id(record): index for index, record in enumerate(loops)}
    candidates = _candidates(plan, loops)
    while candidates:
        # where the first local a loop's rounds set is read, and that loop
        reads = [
            (carried[n], loop.record.site) for loop in candidates if (n := number[id(loop.record)]) in carried
        ]
        cut, site = min(reads, key=lambda read: read[0], default=(len(plan.recipes), None))
        result = _attempt(plan, candidates, cut, str(site) if site is not None else "")
        if isinstance(result, Generalization):
            first = result.loops[0].start
            chosen = {id(loop.record) for loop in result.loops}
            unify = Unifier(result.loops)
            for record in loops:
                later = record.op_end > first or (record.op_starts and record.op_starts[0] >= first)
                built = not record.sequences or any(
                    unify.reads_round(sequence, loop)
                    for sequence in record.sequences
                    for loop in result.loops
                )
                if not record.depth and built and id(record) not in chosen and later:
                    # a loop over a list built here (or over what is read from one, `range(len(built))`),
                    # after a resized loop, that is not resized with it: its rounds could follow the
                    # new length, and its calls be misnumbered
                    return None
            return result
        candidates = [loop for number, loop in enumerate(candidates) if number != result]
    return None


def _candidates(plan: Plan, records: Sequence[LoopRecord]) -> list[TracedLoop]:
    """Loops not inside another loop, with two rounds or more, that made the same number of calls each
    round, all before the plan's cutoff."""
    out = []
    for record in records:
        starts = record.op_starts
        if record.depth or len(starts) < 2 or _walks_backwards(record.iterable):
            continue
        body = starts[1] - starts[0]
        bounds = (*starts, record.op_end)
        if (
            any(b - a != body for a, b in zip(bounds, bounds[1:], strict=False))
            or record.op_end > plan.cutoff
        ):
            continue
        out.append(TracedLoop(record, starts[0], body, len(starts)))
    out.sort(key=lambda loop: (loop.start, loop.record.decision_end))
    return out


def _walks_backwards(iterable: ValueRef) -> bool:
    """`reversed(xs)`: round k reads xs[-1 - k], which templates (k + offset) do not express; such a
    loop keeps its exact-length plan, and another length is traced."""
    return (
        iterable.source is Source.EXPR and bool(iterable.operands) and iterable.operands[0].value is reversed
    )


def _attempt(plan: Plan, loops: list[TracedLoop], cut: int, cut_loop: str) -> Generalization | int:
    """Templates for `loops`, or the number of the loop that cannot be generalized.  No call from op
    `cut` on is issued ahead (a local the rounds of the loop at `cut_loop` set was read there)."""
    loops = [dataclasses.replace(loop) for loop in loops]
    unify = Unifier(loops)
    round_guards: set[int] = set()
    for number, loop in enumerate(loops):
        record = loop.record
        if not record.sequences:  # over a list built earlier: as long as the loop that built it
            follows = _follows(record.iterable, unify, number)
            if follows is None:
                return number
            loop.follows = follows
        elif any(unify.reads_round(sequence, other) for sequence in record.sequences for other in loops):
            # `range(len(built))`: its length, read from a list an earlier loop built, is the traced one
            # in the recipe that reads it (the list as it was built), not the new one
            return number
        round_recipes = _round_recipes(plan, loop, unify, number)
        found = _round_guards(plan, loop, unify, number)
        if round_recipes is None or found is None:
            return number
        if loop.start + loop.body * loop.rounds > cut:
            round_recipes = tuple(_after_cut(recipe, cut_loop) for recipe in round_recipes)
        loop.recipes, (loop.guards, indices) = round_recipes, found
        round_guards |= indices | set(record.own_decisions)
    static = [guard for index, guard in plan.decision_guards.items() if index not in round_guards]
    for guard in static:
        for number, loop in enumerate(loops):
            if unify.reads_round(guard.ref, loop):
                return number  # a branch after the loop on the loop variable: its round depends on the length
    decision_guards = set(map(id, plan.decision_guards.values()))
    guards = tuple(g for g in plan.guards if id(g) not in decision_guards) + tuple(static)
    recipes: list[Recipe] = []
    for recipe in plan.recipes:
        if any(loop.owns(recipe.op.id) for loop in loops) or not recipe.ahead:
            recipes.append(recipe)
            continue
        if recipe.op.id >= cut:
            recipes.append(_after_cut(recipe, cut_loop))
            continue
        refs = _all([unify.rebase(ref) for ref in recipe.refs])
        if refs is None:
            sites = ", ".join(str(loop.record.site) for loop in loops)
            why = f"it reads the items of a loop (at {sites}) in a way that depends on the loop's length"
            recipes.append(
                dataclasses.replace(recipe, ahead=False, refusal=Refusal(RefusalKind.ITEMS_BY_LENGTH, why))
            )
        else:
            recipes.append(recipe.with_refs(tuple(refs)))
    return Generalization(plan, loops, guards, tuple(recipes))


def _after_cut(recipe: Recipe, loop: str) -> Recipe:
    why = f"it comes after the code read a local that the rounds of the loop at {loop} set"
    why += " (a counter, the loop variable)"
    refusal = Refusal(RefusalKind.AFTER_ROUNDS_LOCAL, f"{why}: for other lengths it runs in its turn")
    return dataclasses.replace(recipe, ahead=False, refusal=refusal)


def _follows(iterable: ValueRef, unify: Unifier, number: int) -> int | None:
    template = unify.rebase(iterable)
    if template is None or len(template.operands) != 1 or template.operands[0].kind is not ExprKind.EACH:
        return None
    loop = template.operands[0].loop
    return loop if loop is not None and loop < number else None


def _round_recipes(plan: Plan, loop: TracedLoop, unify: Unifier, number: int) -> tuple[Recipe, ...] | None:
    rounds = [
        [plan.recipes[loop.start + k * loop.body + o] for k in range(loop.rounds)] for o in range(loop.body)
    ]
    return round_templates(rounds, unify, number)


def _round_guards(
    plan: Plan, loop: TracedLoop, unify: Unifier, number: int
) -> tuple[tuple[Guard, ...], set[int]] | None:
    record = loop.record
    bounds = (*record.decision_starts, record.decision_end)
    per_round = [range(a, b) for a, b in zip(bounds, bounds[1:], strict=False)]
    if len({len(r) for r in per_round}) != 1:
        return None  # the rounds took different numbers of branches
    guards = []
    for position in range(len(per_round[0])):
        indices = [r[position] for r in per_round]
        if any(index not in plan.decision_guards for index in indices):
            return None  # a branch in the loop no guard can check
        rounds = [plan.decision_guards[index] for index in indices]
        first = rounds[0]
        if any(g.kind != first.kind or not same_value(g.expected, first.expected) for g in rounds):
            return None
        ref = unify.unify([g.ref for g in rounds], number)
        if ref is None:
            return None
        guards.append(dataclasses.replace(first, ref=ref))
    return tuple(guards), {index for r in per_round for index in r}


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _all(refs: list[ValueRef | None]) -> list[ValueRef] | None:
    """The refs, or None when any is None."""
    out = [ref for ref in refs if ref is not None]
    return out if len(out) == len(refs) else None

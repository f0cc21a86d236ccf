"""Plan: what a traced graph lets a later call do ahead of time, and when it applies.

`make_plan` gives every slow call of the trace a recipe (`recipes`: callee and arguments
recomputed on new inputs, or the `Refusal` that keeps it in its turn), takes back those a memoized
callee could race on (`memo`), finds where recipes that read the function's locals may read them
(`readpoints`), and collects the `guards` under which the plan applies: the types of the inputs it
reads, the identity of the callees it calls, and every branch decision of the trace that did not
depend on a slow call.  A call after a decision no guard can check is never issued ahead.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from xcs_bc.build.trace import CallFacts, Decision, Fork, LoopRecord, RunFacts
from xcs_bc.ir import ComputationGraph, Source, ValueRef
from xcs_bc.plan.guards import Guard, Miss, decision_guard, input_guards, why_cut_off, zip_guards
from xcs_bc.plan.memo import memo_sites_dispatched
from xcs_bc.plan.readpoints import local_reads, no_point, read_points
from xcs_bc.plan.recipes import Recipe, changeable_results, made_in_turn, make_recipe
from xcs_bc.plan.rounds import ResultLoop
from xcs_bc.plan.slices import Env

__all__ = ["Plan", "Schedule", "dependents_of", "make_plan"]


@dataclass(frozen=True)
class Schedule:
    """What one replay may issue ahead: a recipe per call it expects, in the order it expects them.

    `origin[i]` is the traced operation call i repeats (itself, unless `generalize` made the
    schedule for other loop lengths, then `lengths` says which).  `dependents` maps a call to the
    calls (indices here) whose recipes need its result.
    """

    recipes: tuple[Recipe, ...]
    dependents: Mapping[int, tuple[int, ...]]
    origin: tuple[int, ...]
    lengths: tuple[int, ...]
    ready_at: Mapping[int, tuple[int, ...]] = field(default_factory=dict)  # see Plan.ready_at

    @functools.cached_property
    def conditional(self) -> bool:
        """Does it issue calls under branches on results (`Recipe.when`)?"""
        return any(recipe.ahead and recipe.when for recipe in self.recipes)


@dataclass
class Plan:
    """A traced graph made reusable: guards, recipes, and the sites its clone dispatches."""

    graph: ComputationGraph
    guards: tuple[Guard, ...]
    recipes: tuple[Recipe, ...]
    cutoff: int  # operations from here on are never issued ahead
    cutoff_reason: str
    dependents: dict[int, tuple[int, ...]]  # op id -> planned ops whose recipes need its result
    decision_guards: dict[int, Guard]  # index in the decisions -> its guard (those before the cutoff)
    # call i -> planned calls that read the function's locals and may be issued when the run is at call i
    ready_at: dict[int, tuple[int, ...]] = field(default_factory=dict)
    mispredictions: int = 0
    replays: int = 0
    # traced op ids whose planned call was mispredicted once: from then on they run in their turn (a
    # helper not known to be pure may change what they read, e.g. a global counter or a config dict)
    mispredicted: set[int] = field(default_factory=set)
    # loops over results a replay may extend beyond their traced rounds (see `rounds`; set on the plan kept)
    result_loops: tuple[ResultLoop, ...] = ()
    # branches on results whose other arm may make calls (see `build.trace.Fork`): a replay whose
    # results go the other way at one adds its index to `strayed`, and a later call is traced to learn
    # that arm (see `learn`): its calls become recipes after the traced ones (`recipes[len(graph):]`)
    forks: tuple[Fork, ...] = ()
    strayed: set[int] = field(default_factory=set)
    settled: set[int] = field(default_factory=set)  # forks whose other arm was learned
    lessons: int = 0  # calls traced to learn an arm
    learned: tuple[str, ...] = ()  # what those taught, for explain()

    @functools.cached_property
    def schedule(self) -> Schedule:
        """The trace's own schedule: every recipe in trace order."""
        return Schedule(self.recipes, self.dependents, tuple(range(len(self.recipes))), (), self.ready_at)

    def check(self, env: Env) -> Miss | None:
        """None when every guard holds for `env`, else the first failure."""
        for guard in self.guards:
            failure = guard.check(env)
            if failure is not None:
                return failure
        return None


def make_plan(
    graph: ComputationGraph,
    decisions: list[Decision],
    env: Env,
    retained: Mapping[int, tuple[ValueRef, ...]] | None = None,
    loops: Sequence[LoopRecord] = (),
    calls: Sequence[CallFacts] = (),
    run: RunFacts | None = None,
    forks: Sequence[Fork] = (),
    unkept: Mapping[int, frozenset[int]] | None = None,
) -> Plan:
    """Guards and recipes for `graph`, checked against the trace's own inputs in `env`; `calls` and
    `run` are what the trace knew beside its values (see `build.trace.Trace`), by operation id."""
    env.outputs.update({op.id: op.outputs[0].value for op in graph.operations if op.outputs})
    cutoff, cutoff_reason = len(graph.operations), ""
    holding: dict[int, Guard] = {}
    zipped = zip_guards(decisions, loops, env)
    for index, decision in enumerate(decisions):
        guard = zipped.get(index) or decision_guard(decision)
        if guard is None or guard.check(env) is not None:
            if decision.before < cutoff:  # the earliest unguardable decision wins
                cutoff = decision.before
                cutoff_reason = why_cut_off(decision)
        else:
            holding[index] = guard
    # a guard for a decision after the cutoff is not needed: nothing after it is issued ahead
    checked = {index: guard for index, guard in holding.items() if decisions[index].before < cutoff}
    facts = tuple(calls) or tuple(CallFacts() for _ in graph.operations)
    turns = made_in_turn(graph, facts)
    tools = changeable_results(graph, turns)
    dead = unkept or {}
    ops = graph.operations
    made = tuple(
        make_recipe(
            op,
            facts[op.id],
            env,
            cutoff,
            _kept_after(retained or {}, dead.get(op.id)),
            turns,
            tools,
            ops,
            cutoff_reason,
        )
        for op in ops
    )
    recipes = memo_sites_dispatched(graph, made, cutoff, run or RunFacts())
    ready_at = read_points(recipes, cutoff)
    waiting = {op_id for planned in ready_at.values() for op_id in planned}
    final = tuple(
        replace(recipe, ahead=False, refusal=no_point(recipe))
        if recipe.ahead and local_reads(recipe) and recipe.op.id not in waiting
        else recipe
        for recipe in recipes
    )
    kept = list(checked.values())
    reads = [guard.ref for guard in kept]
    if not any(recipe.ahead for recipe in final):
        # A plan that issues nothing gains nothing from applying widely, and where it applies no
        # call is traced again: one traced with an empty list (no call, cutoff 0) would stand in for
        # every later list.  It keeps every decision a guard can check, and the types of the inputs
        # any decision read, so it applies only to calls that go the trace's way as far as can be told.
        # (Not those that read what a call brings no value for yet: the function's locals.)
        called = Env(env.args, env.globals, env.cells)
        kept += [g for i, g in holding.items() if i not in checked and g.check(called) is None]
        reads = [d.cond for d in decisions if d.cond is not None and d.cond.source is not Source.UNKNOWN]
    ahead = [recipe for recipe in recipes if recipe.ahead]
    roots = [ref for recipe in ahead for ref in (recipe.callee, *recipe.args)] + reads
    guards = input_guards(roots, [recipe.callee for recipe in ahead], env) + kept
    return Plan(
        graph,
        tuple(guards),
        final,
        cutoff,
        cutoff_reason,
        dependents_of(final),
        checked,
        ready_at,
        forks=tuple(forks),
    )


def _kept_after(
    retained: Mapping[int, tuple[ValueRef, ...]], unkept: frozenset[int] | None
) -> Mapping[int, tuple[ValueRef, ...]]:
    """The containers the function keeps and may read after a call: those it never reads again (see
    `build.trace.Trace.unkept`) are the callee's alone."""
    if not unkept:
        return retained
    return {key: operands for key, operands in retained.items() if key not in unkept}


def dependents_of(recipes: tuple[Recipe, ...]) -> dict[int, tuple[int, ...]]:
    """For each op, the planned ops (by index in `recipes`) whose recipes need its result."""
    dependents: dict[int, list[int]] = {}
    for index, recipe in enumerate(recipes):
        if recipe.ahead:
            for need in recipe.needs:
                dependents.setdefault(need, []).append(index)
    return {k: tuple(v) for k, v in dependents.items()}

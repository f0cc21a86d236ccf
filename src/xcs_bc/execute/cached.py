"""A plan ready to replay: its rewritten clone, and which planned call each call site serves.

`xcs.jit` keeps a few of these per function (newest first) and asks each, for a call, whether it
applies (`fit`): the plan's guards, or its generalization for other loop lengths.
"""

from __future__ import annotations

import copy
import types
from collections.abc import Mapping, Sequence

from xcs_bc.build.trace import LoopRecord
from xcs_bc.execute.callsites import SiteKey, code_tree, map_consumers
from xcs_bc.execute.fanout import Fanning, dispatcher
from xcs_bc.execute.rewrite import rewrite
from xcs_bc.ir import OpType
from xcs_bc.plan.generalize import generalize
from xcs_bc.plan.guards import Miss
from xcs_bc.plan.planner import Plan, Schedule
from xcs_bc.plan.rounds import result_loops
from xcs_bc.plan.slices import Env

__all__ = ["CachedPlan"]

_MAX_RESIZED = 16  # site tables kept per plan for other loop lengths than traced


class CachedPlan:
    """A plan with the clone that dispatches its sites, and which planned ops each site serves."""

    def __init__(
        self,
        plan: Plan,
        fn: types.FunctionType,
        loops: Sequence[LoopRecord],
        carried: Mapping[int, int],
        fanning: Fanning,
    ) -> None:
        self.plan = plan
        self.fanning = fanning
        self.general = generalize(plan, loops, carried)
        plan.result_loops = result_loops(plan.recipes)
        self._dispatch(fn)

    def learned(self, plan: Plan, fn: types.FunctionType) -> CachedPlan:
        """This plan once it has learned arms its trace did not take (`plan`, see `plan.learn`): the
        same generalization for other loop lengths (of its traced calls), a clone of its own."""
        new = copy.copy(self)
        new.plan = plan
        plan.result_loops = self.plan.result_loops
        new._dispatch(fn)
        return new

    def _dispatch(self, fn: types.FunctionType) -> None:
        """The sites the clone dispatches, which planned call each serves, and the clone."""
        plan = self.plan
        tree = code_tree(fn)
        paths = {id(code): path for path, code in tree.items()}
        self.keys: dict[int, SiteKey] = {}  # traced op id -> the call site the clone dispatches it at
        for op in plan.graph.operations:
            if op.op_type is not OpType.CALL:
                continue  # a slow attribute or operator: not a call site, nothing to dispatch
            path = paths.get(id(plan.recipes[op.id].facts.code))
            if path is not None:
                self.keys[op.id] = (path, op.site.offset)
        # calls learned from later traces (after the traced ones): served by value at their site, never
        # by their number there (see `Replay`), so that the traced calls' numbering stays as traced
        self.arm_sites: dict[int, SiteKey] = {}
        for recipe in plan.recipes[len(plan.graph.operations) :]:
            path = paths.get(id(recipe.facts.code))
            if path is not None:
                self.arm_sites[recipe.op.id] = (path, recipe.op.site.offset)
        self.sites = self._sites(plan.schedule)
        self._resized_sites: dict[tuple[int, ...], dict[SiteKey, list[int]]] = {}  # by loop lengths
        only = set(self.keys.values()) | set(self.arm_sites.values())
        # the planned calls that take a map whole, all made in their turn (one issued ahead would
        # consume the map itself): the map's calls go ahead (`execute.fanout`)
        consumers = {(path, offset) for path, code in tree.items() for offset in map_consumers(code)}
        consumers -= {key for op_id, key in self.keys.items() if plan.recipes[op_id].ahead}
        self.consumers = frozenset(consumers & only)
        # it issues nothing ahead
        self.idle = not self.consumers and not any(recipe.ahead for recipe in plan.recipes)
        rewritten = rewrite(fn, dispatcher(plan, self.consumers, self.fanning), only=only)
        self.clone = rewritten.function
        self.refused = rewritten.refused

    def overlaps(self) -> bool:
        """Can a replay of this plan make two calls at once: a loop of any length, a map taken whole, or
        a call issued ahead that does not wait for an earlier one?  (One call, or a chain of calls
        each reading the one before, cannot.)"""
        if self.consumers or self.general is not None:
            return True
        after: dict[int, frozenset[int]] = {}  # planned call -> every call it waits for, directly or not
        for recipe in self.plan.recipes:
            waits = frozenset(recipe.needs).union(*(after.get(need, ()) for need in recipe.needs))
            after[recipe.op.id] = waits
            if recipe.ahead and any(earlier not in waits for earlier in after if earlier != recipe.op.id):
                return True
        return False

    def _sites(self, schedule: Schedule) -> dict[SiteKey, list[int]]:
        """Which scheduled call each site's n-th call is."""
        sites: dict[SiteKey, list[int]] = {}
        for index, origin in enumerate(schedule.origin):
            key = self.keys.get(origin)  # (none for a learned call)
            if key is not None:
                sites.setdefault(key, []).append(index)
        return sites

    def fit(self, env: Env) -> tuple[Schedule, dict[SiteKey, list[int]]] | Miss:
        """The schedule (and its sites) for a call, or why this plan does not apply to it."""
        failure = self.plan.check(env)
        if failure is None:
            return self.plan.schedule, self.sites
        if self.general is None:
            return failure
        schedule = self.general.fit(env)
        if isinstance(schedule, Miss):
            return failure
        sites = self._resized_sites.get(schedule.lengths)
        if sites is None:
            if len(self._resized_sites) >= _MAX_RESIZED:
                self._resized_sites.clear()
            sites = self._resized_sites[schedule.lengths] = self._sites(schedule)
        return schedule, sites

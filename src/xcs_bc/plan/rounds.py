"""Rounds beyond the traced ones: a loop over a result, extended at run time for a longer result.

A loop over a sequence that depends on results (`for h in search(q)`) plans its traced rounds
under predicates (`len(hits) > k`, see `build.trace.Condition`): a shorter sequence issues fewer of
them.  A longer one has rounds the trace never saw.  When every traced round made the same calls
at the same sites from the same expressions of the round's item (two rounds or more, like
`generalize` asks of loops over inputs), the rounds are one template, and a replay that learns
the sequence's length instantiates it for the rounds beyond (`ResultLoop.round`): those calls are
issued at once instead of in their turn.

Only a loop inside no other loop over a result, whose calls are all calls (no slow attribute),
and only on a plan's own schedule (its ops keep their trace numbering: the new rounds' calls are
numbered after all of them, see `execute.replay`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from xcs_bc.build.trace import DecisionKind, LoopRecord
from xcs_bc.ir import OpType, ValueRef
from xcs_bc.ir.text import format_value
from xcs_bc.plan.recipes import Recipe, outputs_needed
from xcs_bc.plan.templates import TracedLoop, Unifier, instance, round_templates

__all__ = ["ResultLoop", "result_loops"]


@dataclass(frozen=True)
class ResultLoop:
    """A loop over a result as a template for rounds beyond the `traced` ones.

    `sequence` is what it walks (its length is the number of rounds, known once the results in
    `needs` are); round k's call at `offset` repeats traced op `start + k * body + offset`."""

    sequence: ValueRef
    needs: frozenset[int]
    start: int
    body: int
    traced: int
    templates: tuple[Recipe, ...]  # per offset in a round: refs are templates of loop 0

    def describe(self) -> str:
        """What `explain()` says of it."""
        site = self.templates[0].op.site
        calls = f"{self.body} call{'s' if self.body > 1 else ''} a round"
        return (
            f"loop at {site} over {format_value(self.sequence)}: any number of items ({calls}; rounds "
            f"beyond the {self.traced} traced are issued when {format_value(self.sequence)} is known)"
        )

    def round(self, k: int, first: int) -> list[Recipe]:
        """Round `k`'s recipes, its calls being numbered from `first` in the schedule."""
        return [instance(template, k, _Appended(k, first)) for template in self.templates]


class _Appended:
    """`Places` for one round numbered from `first`, after every traced op (which keeps its number)."""

    def __init__(self, k: int, first: int) -> None:
        self.lengths = (k + 1,)
        self.round_start = ({k: first},)
        self.moved: Mapping[int, int] = _Unmoved()


class _Unmoved(dict[int, int]):
    def __missing__(self, op: int) -> int:
        return op


def result_loops(recipes: Sequence[Recipe]) -> tuple[ResultLoop, ...]:
    """The top-level loops over results among `recipes` (a plan's, by op id) that can be extended."""
    rounds: dict[int, dict[int, list[int]]] = {}  # id(sequence) -> round k -> its ops
    sequences: dict[int, ValueRef] = {}
    nested: set[int] = set()
    for recipe in recipes:
        mores = [c for c in recipe.facts.conditions if c.outcome and c.outcome[0] is DecisionKind.MORE]
        nested.update(id(condition.cond) for condition in mores[1:])  # loops inside another: not extended
        if mores:
            condition = mores[0]  # the outermost: its round is this recipe's round
            sequences[id(condition.cond)] = condition.cond
            assert condition.outcome is not None
            rounds.setdefault(id(condition.cond), {}).setdefault(condition.outcome[1], []).append(
                recipe.op.id
            )
    out = []
    for key, by_round in rounds.items():
        if key not in nested:
            loop = _extensible(recipes, sequences[key], by_round)
            if loop is not None:
                out.append(loop)
    return tuple(out)


def _extensible(
    recipes: Sequence[Recipe], sequence: ValueRef, by_round: dict[int, list[int]]
) -> ResultLoop | None:
    traced = len(by_round)
    if traced < 2 or sorted(by_round) != list(range(traced)):
        return None
    start, body = by_round[0][0], len(by_round[0])
    for k, ops in by_round.items():
        if ops != list(range(start + k * body, start + (k + 1) * body)):
            return None  # rounds made different numbers of calls (or calls outside the loop came between)
    if any(recipes[op].op.op_type is not OpType.CALL for ops in by_round.values() for op in ops):
        return None  # a slow step that is not a call has no call site to serve it at
    op_starts = tuple(start + k * body for k in range(traced))
    record = LoopRecord(
        sequence, (sequence,), op_starts, start + traced * body, (), 0, (), recipes[start].op.site, 0
    )
    loop = TracedLoop(record, start, body, traced)
    own = [
        [_without_round(recipes[start + k * body + o], sequence) for k in range(traced)] for o in range(body)
    ]
    templates = round_templates(own, Unifier([loop]), 0)
    if templates is None or not any(template.ahead for template in templates):
        return None
    return ResultLoop(sequence, outputs_needed((sequence,)), start, body, traced, templates)


def _without_round(recipe: Recipe, sequence: ValueRef) -> Recipe:
    """The recipe without its loop's own round predicate (`len(sequence) > k`): a round is instantiated
    only for a k the sequence has."""
    when = tuple(guard for guard in recipe.when if guard.ref is not sequence)
    return recipe if len(when) == len(recipe.when) else dataclasses.replace(recipe, when=when)

"""Loop templates: a traced loop's rounds unified into one template, and instantiated for any length.

`Unifier` makes one template from the refs the rounds of a loop computed (`docs[k].text` with
`k` a leaf that is the round's index; an output at one offset of each round), and rebases the refs
read outside the loops onto the templates (a list the loop built becomes one `EACH` of its
template).  `Layout` says where each traced call lands when the loops run other lengths, and
`instance` gives a recipe's concrete refs for one round.  `generalize` decides when this applies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from xcs_bc.build.trace import LoopRecord
from xcs_bc.ir import MAX_DEPTH, MISSING, ExprKind, PathStep, Source, ValueRef
from xcs_bc.plan.guards import Guard
from xcs_bc.plan.recipes import Recipe, Refusal, RefusalKind
from xcs_bc.plan.slices import same_value

__all__ = [
    "CannotInstantiate",
    "Layout",
    "Places",
    "TracedLoop",
    "Unifier",
    "fill",
    "instance",
    "round_templates",
]


@dataclass(frozen=True)
class _Index:
    """A template leaf that is `k + offset` in round k (an iteration position, a counter)."""

    offset: int


class CannotInstantiate(Exception):
    pass


@dataclass
class TracedLoop:
    record: LoopRecord
    start: int  # first op of the first round
    body: int  # ops per round
    rounds: int  # rounds in the trace
    follows: int | None = None  # for a loop over a list an earlier loop built: that loop's number
    recipes: tuple[Recipe, ...] = ()  # per offset in the round: refs are templates
    guards: tuple[Guard, ...] = ()  # per round: refs are templates

    def owns(self, op: int) -> bool:
        return self.start <= op < self.start + self.body * self.rounds


class Unifier:
    """Makes templates from per-round refs, and rebases refs outside the loops onto templates."""

    def __init__(self, loops: list[TracedLoop]) -> None:
        self.loops = loops

    def unify(self, refs: Sequence[ValueRef], number: int) -> ValueRef | None:
        """One template for round k's ref `refs[k]` of loop `number`, or None."""
        first = refs[0]
        if any(
            r.depth > MAX_DEPTH  # unifying recurses: a value nested this deep is no template
            or r.source is not first.source
            or r.name != first.name
            or r.kind is not first.kind
            or r.counter is not first.counter
            or len(r.path) != len(first.path)
            or len(r.operands) != len(first.operands)
            for r in refs
        ):
            return None
        path = []
        for i, step in enumerate(first.path):
            if any(r.path[i].kind != step.kind for r in refs):
                return None
            key = _leaf([r.path[i].key for r in refs])
            if key is MISSING:
                return None
            path.append(PathStep(step.kind, key))
        operands = []
        for i in range(len(first.operands)):
            operand = self.unify([r.operands[i] for r in refs], number)
            if operand is None:
                return None
            operands.append(operand)
        value, op, loop = MISSING, first.op, None
        if first.source is Source.UNKNOWN:
            return None
        if first.source is Source.CONST:
            # a counter may be the round's index; any other constant must be the same in every round
            value = _leaf([r.value for r in refs]) if first.counter else _literal([r.value for r in refs])
            if value is MISSING:
                return None
        elif first.source is Source.OUTPUT:
            found = self._output([r.op for r in refs])
            if found is None:
                return None
            loop, op = found
        return ValueRef(
            first.source,
            first.name,
            tuple(path),
            tuple(operands),
            op,
            value=value,
            kind=first.kind,
            loop=loop,
            counter=first.counter,
        )

    def _output(self, ops: list[int | None]) -> tuple[int | None, int] | None:
        """The same op in every round (before the loops: no loop), or the op at one offset of each
        round k of a loop (that loop's number, the offset)."""
        if any(op is None for op in ops):
            return None
        if all(op == ops[0] for op in ops):
            op = ops[0]
            assert op is not None
            return None if any(loop.owns(op) for loop in self.loops) else (None, op)
        for number, loop in enumerate(self.loops):
            offsets = {op - (loop.start + k * loop.body) for k, op in enumerate(ops) if op is not None}
            if len(ops) <= loop.rounds and len(offsets) == 1 and 0 <= (offset := offsets.pop()) < loop.body:
                return number, offset
        return None

    def rebase(self, ref: ValueRef) -> ValueRef | None:
        """`ref` (read outside the loops) as a template, or None when it reads rounds by position."""
        if ref.depth > MAX_DEPTH:
            return None  # rebasing recurses: a value nested this deep is not planned (see slices.too_deep)
        if ref.source is Source.OUTPUT:
            return None if ref.op is None or any(loop.owns(ref.op) for loop in self.loops) else ref
        if ref.source is Source.CONST and ref.counter:
            return None  # a loop counter read after its loop: the last round's, which moves with the length
        if ref.source is Source.UNKNOWN:
            return ref
        if any(self._iter_step_on(ref, loop) for loop in self.loops):
            return None  # the loop variable after the loop
        if ref.source is not Source.EXPR:
            return ref
        for number, loop in enumerate(self.loops):
            if len(ref.operands) == loop.rounds and ref.kind in (ExprKind.LIST, ExprKind.TUPLE, ExprKind.SET):
                template = self.unify(ref.operands, number)
                if template is not None and self._touches(template, number):
                    each = ValueRef(Source.EXPR, operands=(template,), kind=ExprKind.EACH, loop=number)
                    return ValueRef(Source.EXPR, path=ref.path, operands=(each,), kind=ref.kind)
        operands = []
        for operand in ref.operands:
            rebased = self.rebase(operand)
            if rebased is None:
                return None
            operands.append(rebased)
        return ref.replaced(operands=tuple(operands), deps=frozenset())

    def reads_round(self, ref: ValueRef, loop: TracedLoop) -> bool:
        if ref.source is Source.CONST and ref.counter:
            return True
        return self._iter_step_on(ref, loop) or any(self.reads_round(o, loop) for o in ref.operands)

    def _iter_step_on(self, ref: ValueRef, loop: TracedLoop) -> bool:
        """Is `ref` an item iterating one of `loop`'s sequences gave (or a path into one)?"""
        bases = (*loop.record.sequences, loop.record.iterable)
        for i, step in enumerate(ref.path):
            if step.kind == "iter":
                base = ref.replaced(path=ref.path[:i], deps=frozenset())
                if any(_same(base, b) for b in bases):
                    return True
        return False

    def _touches(self, template: ValueRef, number: int) -> bool:
        """Does a template built from a list's items follow loop `number`'s rounds (not literal positions)?"""
        if template.source is Source.OUTPUT and template.loop == number:
            return True
        if any(isinstance(step.key, _Index) for step in template.path) and self._iter_step_on(
            template, self.loops[number]
        ):
            return True
        return any(self._touches(o, number) for o in template.operands)


def _literal(values: list[Any]) -> Any:
    """The value all rounds share, else MISSING."""
    first = values[0]
    return first if all(type(v) is type(first) and same_value(v, first) for v in values) else MISSING


def _leaf(values: list[Any]) -> Any:
    """The literal all rounds share, an `_Index` when round k holds k + offset, else MISSING."""
    first = values[0]
    if all(type(v) is type(first) and same_value(v, first) for v in values):
        return first
    if all(type(v) is int for v in values):
        offset = first
        if all(v - k == offset for k, v in enumerate(values)):
            return _Index(offset)
    return MISSING


def _same(a: ValueRef, b: ValueRef) -> bool:
    """Structural equality of provenance (ignoring deps and trace values, except constants')."""
    if a is b:
        return True
    return (
        a.source is b.source
        and a.name == b.name
        and a.kind is b.kind
        and a.loop == b.loop
        and a.counter is b.counter
        and a.origin == b.origin
        and a.local == b.local
        and a.op == b.op
        and a.path == b.path
        and len(a.operands) == len(b.operands)
        and (a.source is not Source.CONST or same_value(a.value, b.value))
        and all(_same(x, y) for x, y in zip(a.operands, b.operands, strict=True))
    )


# -- instantiating -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Place:
    origin: int  # the traced op this call repeats (for a loop's call: the same offset of round 0)
    loop: int | None
    round: int | None


class Places(Protocol):
    """Where traced ops land in a schedule: `round_start[loop][k]` is where round k of a loop begins,
    `moved[op]` where an op outside the loops went, `lengths[loop]` how many rounds a loop runs."""

    @property
    def lengths(self) -> Sequence[int]: ...

    @property
    def round_start(self) -> Sequence[Mapping[int, int]] | Sequence[Sequence[int]]: ...

    @property
    def moved(self) -> Mapping[int, int]: ...


class Layout:
    """Where each traced op lands when the loops run `lengths` rounds."""

    def __init__(self, n_ops: int, loops: list[TracedLoop], lengths: tuple[int, ...]) -> None:
        self.lengths = lengths
        self.places: list[_Place] = []
        self.moved: dict[int, int] = {}
        self.round_start: list[list[int]] = []
        op = 0
        for number, loop in enumerate(loops):
            while op < loop.start:
                self._keep(op)
                op += 1
            starts = []
            for k in range(lengths[number]):
                starts.append(len(self.places))
                self.places.extend(_Place(loop.start + offset, number, k) for offset in range(loop.body))
            self.round_start.append(starts)
            op = loop.start + loop.body * loop.rounds
        while op < n_ops:
            self._keep(op)
            op += 1

    def _keep(self, op: int) -> None:
        self.moved[op] = len(self.places)
        self.places.append(_Place(op, None, None))


def round_templates(
    rounds: Sequence[Sequence[Recipe]], unify: Unifier, number: int
) -> tuple[Recipe, ...] | None:
    """One template recipe per offset in a round of loop `number` (`rounds[offset][k]` is round k's
    recipe at that offset), or None when the rounds called different things.  A recipe not issued ahead
    in some round is not issued ahead in the template either."""
    out = []
    for same_place in rounds:
        first = same_place[0]
        if any(
            r.op.site != first.op.site
            or r.facts.code is not first.facts.code
            or r.kwnames != first.kwnames
            or len(r.args) != len(first.args)
            or [(g.kind, g.expected) for g in r.when] != [(g.kind, g.expected) for g in first.when]
            for r in same_place
        ):
            return None  # the rounds called different things
        not_ahead = next((r for r in same_place if not r.ahead), None)
        if not_ahead is not None:
            out.append(dataclasses.replace(first, ahead=False, refusal=not_ahead.refusal))
            continue
        slots = [[r.refs[i] for r in same_place] for i in range(len(first.refs))]
        refs = [unify.unify(slot, number) for slot in slots]
        if any(ref is None for ref in refs):
            site = unify.loops[number].record.site
            why = (
                f"its arguments differ between the rounds of the loop at {site} in more than the round's item"
            )
            out.append(
                dataclasses.replace(first, ahead=False, refusal=Refusal(RefusalKind.ROUNDS_DIFFER, why))
            )
        else:
            out.append(first.with_refs(tuple(ref for ref in refs if ref is not None)))
    return tuple(out)


def instance(recipe: Recipe, k: int | None, layout: Places) -> Recipe:
    if not recipe.ahead:
        return recipe
    try:
        refs = tuple(fill(ref, k, layout) for ref in recipe.refs)
    except CannotInstantiate:
        refusal = Refusal(RefusalKind.FEWER_ITEMS, "the loop it reads has fewer items this time")
        return dataclasses.replace(recipe, ahead=False, refusal=refusal)
    return recipe.with_refs(refs)


def fill(ref: ValueRef, k: int | None, layout: Places) -> ValueRef:
    """The concrete ref a template stands for in round `k` (None: outside the loops)."""
    path = tuple(PathStep(step.kind, _index(step.key, k)) for step in ref.path)
    if ref.source is Source.CONST:
        return ValueRef(Source.CONST, ref.name, path, value=_index(ref.value, k), counter=ref.counter)
    if ref.source is Source.OUTPUT:
        op = ref.op
        assert op is not None
        if ref.loop is not None:
            number = ref.loop
            if k is None or k >= layout.lengths[number]:
                raise CannotInstantiate
            op = layout.round_start[number][k] + op
        else:
            op = layout.moved[op]
        return ValueRef(Source.OUTPUT, "", path, op=op)
    operands: list[ValueRef] = []
    for operand in ref.operands:
        if operand.kind is ExprKind.EACH:
            assert operand.loop is not None
            operands.extend(fill(operand.operands[0], r, layout) for r in range(layout.lengths[operand.loop]))
        else:
            operands.append(fill(operand, k, layout))
    return ref.replaced(path=path, operands=tuple(operands), deps=frozenset())


def _index(leaf: Any, k: int | None) -> Any:
    if isinstance(leaf, _Index):
        if k is None:
            raise CannotInstantiate
        return k + leaf.offset
    return leaf

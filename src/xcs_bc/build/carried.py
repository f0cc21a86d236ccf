"""What a loop's first round carries into the next: the state the round read and changed.

A first call issues a loop's later rounds from the recipes of its first (`execute.first`).  A recipe
names the values the round read: the item, and what the frame held when the round began.  That is
the right recipe for round k only if what the round read of the frame is the same when round k
begins.  A round that reads a local and then assigns it (`i += 1`, `prev = d`, `text += d`,
`last = llm(last)`), or reads a container that it changes in place (`acc.append(d)` then
`" ".join(acc)`, `d in seen` then `seen.add(d)`), hands the next round another value: its recipes,
made again for another item, would give calls the plain run never makes.

`Carried` is what the first round changed of the state it began with, taken when the loop starts its
second round: the refs its locals had before the round assigned them, and the objects that were
there before it and that it changed in place (each with the refs it had before and after).
`read_by(refs)` tells whether a recipe reads any of it.  A recipe that does is not issued ahead; a
round that only adds to a container it never reads (`out.append(llm(d))`) carries nothing a recipe
reads.  Where the round read such a container's items as the refs they were built with
(`seen[0]` after `seen.append(d)` is the ref of `d`: see `Effects.read_contents`), no recipe shows
the read, so every recipe counts as reading it.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Sequence
from typing import Any

from xcs_bc.build import purity
from xcs_bc.build.effects import Effects, contents
from xcs_bc.build.frames import FrameState
from xcs_bc.build.loops import LoopState
from xcs_bc.ir import Source, ValueRef
from xcs_bc.ir.passes import walk

_REACH_MAX = 10_000  # objects looked at to tell whether a changed object was there before the round

_METHODS = (types.BuiltinMethodType, types.MethodType)  # bound to their object (`__self__`)

# refs named by what they stand for (a path into them is a new ref of the same source and name)
_NAMED = (Source.INPUT, Source.GLOBAL, Source.CELL, Source.OUTPUT)


class Carried:
    """The state a loop's first round began with and changed (see the module's docstring)."""

    def __init__(
        self,
        fs: FrameState,
        state: LoopState,
        changes: Sequence[tuple[Any, ValueRef, ValueRef]],
        contents_read: Sequence[Any],
    ) -> None:
        before = state.first_locals
        frame = id(fs.frame)
        assigned = {name for where, name in state.stored if where == frame}
        assigned |= {name for name, ref in before.items() if fs.locals.get(name) is not ref}
        self.refs: list[ValueRef] = [before[name] for name in assigned if name in before]
        # a parameter (or a local the block began with) first read in the round: its ref is made then
        self.names = {(source, name) for name in assigned for source in (Source.INPUT, Source.CELL)}
        self.objects: dict[int, Any] = {}
        changed = [(obj, old, new) for obj, old, new in changes if not purity.is_immutable(obj)]
        there = _there_before(state.first_values, {id(obj) for obj, _, _ in changed})
        for obj, old, new in changed:
            if id(obj) in there:
                self.objects[id(obj)] = obj
                self.refs += (old, new)
        self.operands = {id(ref.operands) for ref in self.refs if ref.source is Source.EXPR and ref.operands}
        self.read_unseen = any(self.objects.get(id(obj)) is obj for obj in contents_read)

    def read_by(self, refs: Iterable[ValueRef]) -> bool:
        """Does a value in `refs` (recipes of the round) read state the round changed?"""
        if self.read_unseen:
            return True
        if not (self.refs or self.names):
            return False
        ids = {id(ref) for ref in self.refs}
        for ref in walk(refs):
            if id(ref) in ids or (ref.source, ref.name) in self.names:
                return True
            obj = self.objects.get(id(ref.value))
            if obj is not None and obj is ref.value:
                return True
            owner = getattr(ref.value, "__self__", None) if type(ref.value) in _METHODS else None
            if owner is not None and self.objects.get(id(owner)) is owner:
                return True  # a method of it (`memo.get(d)`, `seen.count(d)`): what it gives reads it
            if ref.source is Source.EXPR:
                # a path into a container (`acc[0]`) is a copy of its ref: the same operands
                if ref.operands and id(ref.operands) in self.operands:
                    return True
            elif ref.source in _NAMED and any(_into(ref, old) for old in self.refs):
                return True
        return False


def carried(b: Effects, fs: FrameState, state: LoopState) -> Carried:
    """What the first round of `state`'s loop (in `fs`'s frame) changed of the state it began with,
    asked when the loop starts its second round."""
    changes = (b.changes or [])[state.first_changes :]
    return Carried(fs, state, changes, (b.contents_read or [])[state.first_reads :])


def _into(ref: ValueRef, old: ValueRef) -> bool:
    """Is `ref` the value `old` names, or a path into it (`text[:100]` of a parameter `text`)?"""
    return (
        ref.source is old.source
        and ref.name == old.name
        and ref.op == old.op
        and ref.path[: len(old.path)] == old.path
    )


def _there_before(values: tuple[Any, ...], wanted: set[int]) -> set[int]:
    """Which of the objects `wanted` (by id) the frame's locals held, a few containers down, when the
    round began.  Objects made in the round cannot be reached from them; past the objects looked
    at, every one counts as there before."""
    if not wanted:
        return set()
    found: set[int] = set()
    seen: set[int] = set()
    todo = [value for value in values if not purity.is_immutable(value)]
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if len(seen) > _REACH_MAX:
            return wanted
        if id(obj) in wanted:
            found.add(id(obj))
        todo.extend(item for item in contents(obj) if not purity.is_immutable(item))
    return found

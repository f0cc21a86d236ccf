"""Loop tracking: a loop under way (`LoopState`), the record of one that ran out, and how a
comprehension's or generator expression's frame is started by its maker and its consumer.

`Loops` is a part of `GraphBuilder` (a base class of it); the GET_ITER and FOR_ITER handlers
(`handlers.iteration`) open and close the loops.
"""

from __future__ import annotations

import inspect
import types
from dataclasses import dataclass, field
from typing import Any

from xcs_bc._compat import (
    CALL_OPS,
)
from xcs_bc.build.calls import Calls
from xcs_bc.build.codeinfo import Instr
from xcs_bc.build.effects import Watched
from xcs_bc.build.frames import FrameState, RoundMark
from xcs_bc.build.generators import Listed, generator_of, identity, same, takes_all
from xcs_bc.build.trace import Condition, Decision, DecisionKind, LoopRecord
from xcs_bc.ir import MISSING, ExprKind, Source, ValueRef
from xcs_bc.ir.values import (
    NULL,
    unknown,
)

# callees that take every item of the iterable they are handed (unless an item makes them raise)


@dataclass
class LoopState:
    """A loop under way: its iterator's ref, what it iterates, and where each item began."""

    iterator: ValueRef
    iterable: ValueRef
    ops_before: int
    starts_before: int = 0  # Python frames the observed code had started before it (see `skipping`)
    op_starts: list[int] = field(default_factory=list)
    decision_starts: list[int] = field(default_factory=list)
    stored: set[tuple[int, str]] = field(default_factory=set)  # (id(frame), local) assigned in its rounds
    watched: tuple[Watched, ...] = ()  # see GraphBuilder.snapshot
    listed: Listed | None = None  # a loop over a pure generator's listed items: what they came from
    rounds: ValueRef | None = None  # for a loop over a result: the sequence its rounds' conditions read
    # for GraphBuilder.on_round (see execute.first): the first round's item, its round_mark(), and
    # what the frame held when it began (see `build.carried`)
    first_item: ValueRef | None = None
    first_mark: RoundMark = RoundMark()
    first_locals: dict[str, ValueRef] = field(default_factory=dict)  # the builder's refs of its locals
    first_values: tuple[Any, ...] = ()  # and the objects they held (and the globals its code names)
    first_changes: int = 0  # len(GraphBuilder.changes)
    first_reads: int = 0  # len(GraphBuilder.contents_read)
    first_keys: int = 0  # len(GraphBuilder.counter_keys)
    head: int | None = None  # the offset of its FOR_ITER, once its first round began
    # the rounds (by index) whose calls a first call issued ahead, the calls of the loops inside them too
    issued: set[int] = field(default_factory=set)
    frame: types.FrameType | None = None  # the frame running the loop
    start: tuple[types.CodeType, Instr] | None = None  # its GET_ITER (a site made when needed)
    # the branches on results its frame ran under when it began (see `handlers.iteration.pop_top`)
    entered_under: tuple[Condition, ...] = ()


class Loops(Calls):
    """Records loops that ran out, and starts comprehension and generator-expression frames."""

    # set by GraphBuilder.__init__
    decisions: list[Decision]
    loops: list[LoopRecord]
    iters: dict[int, LoopState]
    _watch: dict[tuple[int, str], list[int]]
    _frames: dict[types.FrameType, FrameState]

    def walked_changed(self, state: LoopState) -> bool:
        """Did what the loop walks change under it so far (see `snapshot`), or, for a loop over a pure
        generator's listed items, a global its code reads get rebound?"""
        return self.changed(state.watched) or (state.listed is not None and state.listed.rebound())

    def record_loop(
        self,
        fs: FrameState,
        ins: Instr,
        state: LoopState,
        sequences: tuple[ValueRef, ...],
        own: tuple[int, ...],
    ) -> None:
        """A loop ran out: remember its rounds, and guard the length of the sequences it walked."""
        site = self._site(fs, ins)
        for key in state.stored:
            self._watch.setdefault(key, []).append(len(self.loops))
        self.loops.append(
            LoopRecord(
                state.iterable,
                sequences,
                tuple(state.op_starts),
                len(self.ops),
                tuple(state.decision_starts),
                len(self.decisions),
                own,
                site,
                len(self.iters),  # its own state is gone: what is left is the loops around it
            )
        )
        for sequence in sequences:
            # the loop's length decides every call made in it: the decision comes before them
            rounds = len(state.op_starts)
            self.decisions.append(Decision(DecisionKind.LENGTH, sequence, rounds, state.ops_before, site))

    def _link_nested(self, fs: FrameState, parent: FrameState) -> None:
        """A comprehension's `.0` is the iterator its maker was called with; a genexpr's comes with it
        (to the call that consumes it, or to the `for` loop that walks it)."""
        for ref in parent.operands:
            generator = generator_of(ref)
            if generator is not None:
                fs.generator = generator
                fs.locals[".0"] = generator.operands[0] if generator.operands else unknown(len(self.ops))
                return
        args = [ref for ref in parent.operands if ref is not NULL]
        fs.locals[".0"] = args[-1] if args else unknown(len(self.ops))

    def _started_by(self, fs: FrameState) -> tuple[Condition, ...]:
        """The conditions a comprehension's frame runs under once a frame has started or resumed it.

        The frame's that did: what it does is reached through its branches.  And a generator expression
        is run item by item by its consumer, which may stop early in code we do not see (any() at the
        first true item): unless the consumer surely asks for this item (see `_pulls`), the code up to
        the next one is reached through the consumer's choice, made on the items so far, and is not
        issued ahead.
        """
        back = fs.frame.f_back
        consumer = self._frames.get(back) if back is not None else None
        conds = consumer.conditions() if consumer is not None else ()
        if not fs.info.code.co_flags & inspect.CO_GENERATOR:
            return conds  # a list, set or dict comprehension's frame (3.10, 3.11): run at once, in full
        pulls = None
        if consumer is not None:
            consumer.resumes += 1
            pulls = self._pulls(consumer, fs.generator) if fs.generator is not None else None
        if pulls == "all" or (pulls == "first" and consumer is not None and consumer.resumes == 1):
            return conds
        yielded = self._yields.get(identity(fs.generator), []) if fs.generator is not None else []
        # (each item depends on the choice to ask for it: the last one's deps include the earlier choices)
        why = ValueRef(Source.EXPR, kind=ExprKind.CONSUMER, deps=yielded[-1].deps if yielded else frozenset())
        pending = consumer.pending if consumer is not None else None
        site = self._site(consumer, pending) if consumer is not None and pending is not None else None
        return (*conds, Condition(why, site=site))

    def _pulls(self, fs: FrameState, generator: ValueRef) -> str | None:
        """How the instruction pending in `fs` takes items from `generator`: "all" of them (a `for` loop,
        `[*gen]`, list(), sum(), "".join() ...), "first" (any(), all() and next() ask for one at least,
        then stop where they like), or None (unknown, or the generator is not handed to it itself: zip(),
        islice() and a helper function stop where they like too)."""
        ins = fs.pending
        if ins is None or not any(same(generator_of(ref), generator) for ref in fs.operands):
            return None
        if ins.opname in ("FOR_ITER", "LIST_EXTEND", "SET_UPDATE", "CALL_FUNCTION_EX"):
            return "all"  # a loop here stops by its own branches, which we see; `f(*gen)` makes a tuple
        if ins.opname not in CALL_OPS:
            return None
        callee_ref = self.call_layout(fs, ins, fs.operands)[0]
        callee = callee_ref.value if callee_ref.value is not MISSING else fs.callee
        if takes_all(callee):
            return "all"
        if any(callee is taker for taker in (any, all, next)):
            return "first"
        return None

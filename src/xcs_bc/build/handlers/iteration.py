"""Handlers for iteration: GET_ITER opens a loop, FOR_ITER takes its items and closes it (a
guard on the length of what it walked), with precise items for enumerate(), zip(), reversed()
and range() called in the code.
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Any

from xcs_bc.build import purity, skipping
from xcs_bc.build.codeinfo import Instr
from xcs_bc.build.displays import fixed, positional
from xcs_bc.build.effects import dict_view_of
from xcs_bc.build.frames import FrameState
from xcs_bc.build.generators import identity, remade_function
from xcs_bc.build.loops import LoopState
from xcs_bc.build.trace import Condition, Decision, DecisionKind
from xcs_bc.ir import MISSING, ExprKind, Source, ValueRef
from xcs_bc.ir.passes import walk
from xcs_bc.ir.values import (
    NULL,
    SIZED,
    const,
    copy_of,
    expr,
    index_const,
    peek_iter_item,
    step,
    unknown,
    with_deps,
    with_value,
)

if TYPE_CHECKING:
    from xcs_bc.build.builder import GraphBuilder


def get_iter(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    (ref,) = fs.pop(1)
    ref = _listed_iterator(b, fs, ref)
    it = expr(ExprKind.ITER, (ref,))
    state = LoopState(it, ref, len(b.ops), b.python_starts, frame=fs.frame, start=(fs.info.code, ins))
    walked = (ref, *lockstep(ref)[1])
    # (and the dict of `d.items()`: changed in place, its view yields other items)
    views = tuple(view for view in map(dict_view_of, walked) if view is not None)
    state.watched = b.snapshot(fs, (*walked, *views))
    # (and what a pure generator's items were listed from, see `Calls.listed_generator`)
    for sequence in walked:
        entry = b.listed.pop(identity(sequence), None)
        if entry is not None and entry[0] is sequence.operands:
            state.listed = entry[1]
            state.watched += entry[1].held
    state.entered_under = fs.conditions()
    b.iters[identity(it)] = state  # popped when the loop runs out, or is left (see `pop_top`)
    fs.push(it)


def for_iter(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    # what the round that ends here left behind, for a hook on loops' second rounds (execute.first)
    ended = b.round_mark() if b.on_round is not None else None
    (it,) = fs.pop(1)
    state = b.iters.get(identity(it))
    if state is not None and state.iterator.operands is not it.operands:
        state = None
    iterable = state.iterable if state is not None else it
    rounds = _round_sequence(b, state, iterable) if not jumped else None
    if rounds is not None:
        assert state is not None
        b.loop_round(fs, ins, rounds, len(state.op_starts))
    else:
        # whether there is another item depends on the iterable's length, not on its items' values
        b.branch(
            fs, ins, ValueRef(Source.EXPR, kind=ExprKind.LEN, deps=b.shape_deps(iterable)), jumped=jumped
        )
    if jumped:
        b.iters.pop(identity(it), None)
        # a list or tuple built here has the length earlier decisions gave it (a `*xs` in it is spread
        # into its items, under a guard, or kept whole, see `handlers.containers`)
        built = positional(iterable)
        # (recorded even under a branch on a result, e.g. a `break` that was not taken: a length
        # guard can only make a plan apply less often)
        if state is not None and b.walked_changed(state):
            # what it walked changed in place under it (`items.pop()` in its body): its length when the
            # run is over says nothing of how many rounds it made, so nothing from it on is issued ahead
            site = b._site(fs, ins)
            b.decisions.append(Decision(DecisionKind.CHANGED, None, True, state.ops_before, site))
        elif state is not None and not iterable.deps and not built:
            # anything else is a guard (on the sequences themselves when enumerate() or zip() walked
            # them), a set or dict built here too: equal items collapse
            sequences = tuple(lockstep(iterable)[1] or [iterable])
            own = tuple(range(len(b.decisions), len(b.decisions) + len(sequences)))
            b.record_loop(fs, ins, state, sequences, own)
        elif state is not None and built and not b.shape_deps(iterable):
            # a list built here (by an earlier loop, say) is as long as it was built: no guard
            b.record_loop(fs, ins, state, (), ())
        for _ in range(ins.jump_pushes):
            fs.push(NULL)
        return
    fs.push(it)
    if state is None:
        fs.push(unknown(len(b.ops)))
        return
    index = len(state.op_starts)
    state.op_starts.append(len(b.ops))
    state.decision_starts.append(len(b.decisions))
    if positional(iterable) and index < len(iterable.operands):
        # a ref of its own, with the item's value (the local it is stored in keeps this very ref): what
        # the loop variable holds is told apart from the same item read another way (`parts[0]`, a
        # local it was also stored in), see `execute.first`
        operand = b.read_contents(iterable).operands[index]
        value = peek_iter_item(iterable.value, index)
        item = copy_of(operand if value is MISSING else with_value(operand, value))
    elif iterable.source is Source.EXPR and iterable.kind is ExprKind.GENEXPR:
        item = unknown(len(b.ops))
    else:
        item = round_item(b, iterable, index)
    fs.push(item)
    if index in (skipping.OBSERVED_ROUNDS, skipping.LONG_LOOP):
        skipping.start(b, fs, ins, state)
    if b.on_round is None:
        return
    if index == 0:
        state.first_item, state.first_mark = item, b.round_mark()
        state.first_locals = dict(fs.locals)
        # (and the globals its code names: a list it assigned to one is there before the round too)
        module = fs.frame.f_globals
        named = (module[name] for name in fs.info.code.co_names if name in module)
        state.first_values = (*fs.frame.f_locals.values(), *named)
        state.first_changes = len(b.changes or ())
        state.first_reads = len(b.contents_read or ())
        state.first_keys = len(b.counter_keys or ())
        state.head = ins.offset
    elif index == 1 and ended is not None:  # its first round is observed: the rest may go ahead
        b.on_round(b, fs, state, ended)


def pop_top(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    """POP_TOP drops a value.  Dropping a loop's iterator is leaving the loop in the middle: `break`,
    or `return` from inside it (every version pops the iterator first; an exception leaves without)."""
    if fs.stack and fs.stack[-1].source is Source.EXPR and fs.stack[-1].kind is ExprKind.ITER:
        _left(b, fs, ins, fs.stack[-1])
    fs.pop(1)


# what makes a sequence whose length a guard can ask (an iterator's or a generator's cannot be)
_SIZED_MAKERS = (list, tuple, sorted, dict, set, frozenset, str, bytes, range)
_SIZED_METHODS = frozenset({"split", "rsplit", "splitlines", "keys", "values", "items", "copy"})


def _sized(ref: ValueRef) -> bool:
    """Is `ref` a built-in container (known by its value, or by what made it: `sorted(xs)`,
    `doc.splitlines()`, `d.items()`)?"""
    if ref.value is not MISSING:
        return type(ref.value) in SIZED
    if ref.source is not Source.EXPR or ref.kind not in (ExprKind.CALL, ExprKind.CALL_KW) or ref.path:
        return False
    if not ref.operands:
        return False
    callee = ref.operands[0].value
    if any(callee is maker for maker in _SIZED_MAKERS):
        return True
    owner = getattr(callee, "__self__", None)
    return type(owner) in SIZED and getattr(callee, "__name__", "") in _SIZED_METHODS


def _left(b: GraphBuilder, fs: FrameState, ins: Instr, it: ValueRef) -> None:
    """A loop left by break or return in round k.  When only branches a guard checks led there (its
    frame runs under the same branches on results as when the loop began: no result, no exception
    handled on a result's say-so, decided it), a replay whose guards hold leaves it in the same round:
    what comes after it is reached, and the loop is a guard that its sequences have more than k items.
    Else the loop stays open, and when the run ends nothing from its start on is issued ahead
    (`GraphBuilder.finish`)."""
    state = b.iters.get(identity(it))
    if state is None or state.iterator.operands is not it.operands or state.frame is not fs.frame:
        return
    if b.skipping is not None or not state.op_starts or b.walked_changed(state):
        return
    if not _same_conditions(state.entered_under, fs.conditions()):
        return
    iterable = state.iterable
    sequences: tuple[ValueRef, ...] = ()
    if not positional(iterable):  # (a list built here is as long as earlier decisions made it)
        if iterable.deps:
            return
        sequences = tuple(lockstep(iterable)[1] or [iterable])  # (range(...): itself, a maker of `_sized`)
        if not all(map(_sized, sequences)):
            return
    site = b._site(fs, ins)
    taken = len(state.op_starts) - 1  # the index of the round it was left in
    for sequence in sequences:
        b.decisions.append(Decision(DecisionKind.MORE, sequence, taken, state.ops_before, site))
    b.iters.pop(identity(it), None)


def _same_conditions(a: tuple[Condition, ...], b: tuple[Condition, ...]) -> bool:
    return len(a) == len(b) and all(
        x.cond is y.cond and x.outcome == y.outcome for x, y in zip(a, b, strict=True)
    )


_KEYWORDS: dict[Any, tuple[str, ...]] = {zip: ("strict",), enumerate: ("start",)}


def _listed_iterator(b: GraphBuilder, fs: FrameState, ref: ValueRef) -> ValueRef:
    """A loop over `filter(pred, xs)` or `map(fn, xs, ...)` walks `list(filter(pred, xs))` or
    `list(map(fn, xs, ...))`, when `pred` is None, the function a built-in known to be pure
    (`str.strip`) or a function of the user's known to be pure (`keep`, `lambda d: len(d) > 3`), and
    each `xs` a list, tuple, range or str: a list that recipes compute again from `xs` (as they do
    `sorted(xs)`), so that its rounds are those of a loop over a list.  The run's own iterator calls
    the function between rounds: what it reads is watched (`Listed`), as for a pure generator."""
    if ref.source is not Source.EXPR or ref.kind is not ExprKind.CALL or ref.path or len(ref.operands) < 3:
        return ref
    callee, function, *sequences = ref.operands
    making = callee.value
    if making not in (filter, map) or (making is filter and len(sequences) != 1):
        return ref
    if not all(type(sequence.value) in _WALKED for sequence in sequences):
        return ref
    fn = function.value
    if fn is MISSING:
        fn = remade_function(function, fs.frame.f_globals)
    if fn is None:
        if making is not filter or function.value is not None:
            return ref
    elif not purity.pure_callable(fn) or (
        isinstance(fn, types.FunctionType) and purity.loops_but_for(fn.__code__)
    ):
        return ref  # (a `while` loop could spin on an item the run's own iterator never reaches)
    held = b.snapshot_held((fn, *(sequence.value for sequence in sequences)))
    if held is None:
        return ref
    try:
        items = list(making(fn, *(sequence.value for sequence in sequences)))
    except Exception:  # noqa: BLE001 - (the run's own iterator raises it in its turn)
        return ref
    return b.keep_listed(expr(ExprKind.CALL, (const(list), ref), items), fn, held)


_WALKED = (list, tuple, range, str)


def _round_sequence(b: GraphBuilder, state: LoopState | None, iterable: ValueRef) -> ValueRef | None:
    """For a loop over one sequence whose length depends on results (`for h in search(q)`,
    `enumerate(answer.names)`, `text.split(";")`), the loop's own copy of that sequence, which its
    rounds' conditions read (see `GraphBuilder.loop_round`); else None."""
    if state is None or not b.shape_deps(iterable):
        return None
    if state.rounds is None:
        kind, sequences = lockstep(iterable)
        if kind is None:
            sequence = iterable
        elif kind in (enumerate, reversed) and len(sequences) == 1:
            sequence = sequences[0]
        elif kind is range and len(iterable.operands) == 2 and iterable.kind is ExprKind.CALL:
            sequence = iterable  # range(len(hits)): round k is reached through len(range(...)) > k
        else:
            return None  # zip() stops at its shortest sequence
        if not sequence.deps or _built_here(sequence):
            return None  # its length depends on results through branches or changes: no predicate says it
        state.rounds = copy_of(sequence)
    return state.rounds


def _built_here(ref: ValueRef) -> bool:
    """Is anything in `ref` a container the function built (its length is what the function put in it,
    maybe under branches: a recipe would rebuild the traced one), an object changed in place, or a
    value no recipe computes?"""
    return any(
        current.source is Source.UNKNOWN or (current.source is Source.EXPR and current.kind in _BUILT)
        for current in walk((ref,))
    )


_BUILT = frozenset({ExprKind.LIST, ExprKind.TUPLE, ExprKind.SET, ExprKind.DICT, ExprKind.EFFECT})


def round_item(b: GraphBuilder, iterable: ValueRef, index: int) -> ValueRef:
    """The ref of the index-th item of a loop over `iterable` (neither a display built here nor a
    generator expression): precise for enumerate(), zip(), reversed() and range() called in the code
    (`_lockstep_item`), else a path into it."""
    return _lockstep_item(b, iterable, index) or b.lookup(
        step(iterable, "iter", index, peek_iter_item(iterable.value, index))
    )


def lockstep(iterable: ValueRef) -> tuple[Any, list[ValueRef]]:
    """For `enumerate(xs)`, `zip(a, b)`, `reversed(xs)` and `range(...)` called in the code: the builtin
    and the sequences it walks."""
    if (
        iterable.source is Source.EXPR
        and iterable.kind in (ExprKind.CALL, ExprKind.CALL_KW)
        and iterable.operands
    ):
        callee, *args = iterable.operands
        if iterable.kind is ExprKind.CALL_KW:  # zip(a, b, strict=True), enumerate(xs, start=1)
            names = args.pop().value if args else ()
            if tuple(names) != _KEYWORDS.get(callee.value):
                return None, []
            args = args[:-1]
        callee = callee.value
        if iterable.path or not args:
            return None, []
        if callee in (enumerate, reversed):
            return callee, args[:1]
        if callee is zip:
            return callee, args
        if callee is range:
            return callee, []
    return None, []


def _enumerate_start(iterable: ValueRef) -> int | None:
    """The `start` of `enumerate(xs, start)` or `enumerate(xs, start=k)`: 0 when absent, None when it is
    not a constant (a counter from the inputs is not a fixed item of each round)."""
    operands = iterable.operands[2:-1] if iterable.kind is ExprKind.CALL_KW else iterable.operands[2:]
    if not operands:
        return 0
    start = operands[0]
    return start.value if start.source is Source.CONST and type(start.value) is int else None


def _lockstep_item(b: GraphBuilder, iterable: ValueRef, index: int) -> ValueRef | None:
    """The index-th item of `enumerate(xs)` is `(index, xs[index])`; of `zip(a, b)`, `(a[index], b[index])`;
    of `range(...)`, a constant: precise paths instead of "the index-th thing an iterator gave"."""
    kind, sequences = lockstep(iterable)
    if kind is range:
        bounds = iterable.operands[1:]
        if len(bounds) > 1 and not all(fixed(ref) for ref in (bounds[0], *bounds[2:])):
            return None  # range(start, ...) with a start or step from the inputs: item k is not a constant
        value = peek_iter_item(iterable.value, index) if iterable.value is not MISSING else MISSING
        return with_deps(index_const(value), iterable.deps) if isinstance(value, int) else None
    if kind is None:
        return None
    if kind is reversed:  # item k is xs[-1 - k], for a list, tuple, range or str (else no path)
        (seq,) = sequences
        if type(seq.value) not in (list, tuple, range, str) or index >= len(seq.value):
            return None
        return b.lookup(step(seq, "item", -1 - index, seq.value[-1 - index]))
    items = [b.lookup(step(seq, "iter", index, peek_iter_item(seq.value, index))) for seq in sequences]
    if kind is enumerate:
        start = _enumerate_start(iterable)
        if start is None:
            return None
        items.insert(0, index_const(start + index))
    return expr(ExprKind.TUPLE, items)

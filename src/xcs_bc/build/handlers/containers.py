"""Handlers for containers and subscripts: BUILD_*, LIST_APPEND and its kin, BINARY_SUBSCR,
STORE_SUBSCR, DELETE_SUBSCR, BINARY_SLICE, STORE_SLICE, LIST_TO_TUPLE, CALL_INTRINSIC_1,
UNPACK_SEQUENCE.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xcs_bc.build.codeinfo import Instr
from xcs_bc.build.displays import CONTAINERS, constant_keys, dict_entry, fixed, positional
from xcs_bc.build.frames import FrameState
from xcs_bc.build.handlers.stack import conservative
from xcs_bc.build.trace import Decision, DecisionKind
from xcs_bc.ir import ExprKind, Source, ValueRef
from xcs_bc.ir.values import (
    const,
    expr,
    peek_item,
    step,
    union,
    with_value,
)

if TYPE_CHECKING:
    from xcs_bc.build.builder import GraphBuilder


def binary_subscr(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    container, key = fs.pop(2)
    value = peek_item(container.value, key.value)
    if key.counter and b.counter_keys is not None:
        b.counter_keys.append(key)  # (the item it reads is named by the counter's value now: see below)
    # `xs[k]` on a list built here is its k-th operand only when k is the same in every run: a key read
    # from the inputs (`labels[i]`, i from `order`) is kept as getitem(xs, i), which follows it
    if positional(container) and isinstance(key.value, int) and fixed(key) and not key.deps:
        index = key.value
        if -len(container.operands) <= index < len(container.operands):
            fs.push(with_value(b.read_contents(container).operands[index], value))
            return
    entry = dict_entry(container, key)
    if entry is not None:
        b.read_contents(container)
        fs.push(with_value(entry, value))
    elif key.source is Source.CONST and not key.deps:
        fs.push(b.lookup(step(container, "item", key.value, value)))
    else:
        fs.push(b.lookup(expr(ExprKind.GETITEM, (container, key), value)))


def store_subscr(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    value, container, key = fs.pop(3)
    b.retain(value)
    b.mutate(container.value, b.lookup(container), container.deps | value.deps | key.deps | fs.control_deps)


def delete_subscr(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    container, key = fs.pop(2)
    b.mutate(container.value, b.lookup(container), container.deps | key.deps | fs.control_deps)


def binary_slice(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    """3.12+ `xs[i:j]`: a pure subscript of the container by a slice (which `plan` can evaluate)."""
    fs.push(expr(ExprKind.BINARY_SLICE, fs.pop(3)))


def store_slice(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    """3.12+ `xs[i:j] = value` changes `xs` in place, as STORE_SUBSCR with a slice does on 3.10/3.11."""
    value, container, start, stop = fs.pop(4)
    deps = container.deps | value.deps | start.deps | stop.deps | fs.control_deps
    b.retain(value)
    b.mutate(container.value, b.lookup(container), deps)


def build_display(kind: ExprKind) -> Any:
    def handler(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
        ref = expr(kind, fs.pop(ins.pops))
        fs.push(b.set_shape(ref, fs.control_deps) if kind in CONTAINERS else ref)

    return handler


def build_const_key_map(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    *values, keys = fs.pop(ins.pops)
    names = keys.value if isinstance(keys.value, tuple) else ()
    if len(names) != len(values):
        fs.push(b.set_shape(expr(ExprKind.DICT, (*values, keys)), fs.control_deps))
        return
    pairs = [ref for name, value in zip(names, values, strict=True) for ref in (const(name), value)]
    fs.push(b.set_shape(expr(ExprKind.DICT, pairs), fs.control_deps))


def container_add(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    """LIST_APPEND/SET_ADD/MAP_ADD/LIST_EXTEND/...: add the popped items to the container `arg` deep."""
    items = fs.pop(2 if ins.opname == "MAP_ADD" else 1)  # codeinfo counts the container as re-pushed
    shape: frozenset[int] = frozenset()  # what the number of items added depends on
    depth = int(ins.arg or 1)
    index = len(fs.stack) - depth
    if index < 0:
        return
    target = fs.stack[index]
    if (
        ins.opname in ("LIST_EXTEND", "SET_UPDATE")
        and items
        and items[0].source is Source.CONST
        and isinstance(items[0].value, (tuple, frozenset))
    ):
        items = [const(v) for v in items[0].value]
    elif ins.opname in ("LIST_EXTEND", "SET_UPDATE") and items:
        spread = _spread(b, fs, ins, items[0])
        if spread is None:  # kept whole: the display's items are no longer its operands (see positional)
            shape, items = items[0].deps, [expr(ExprKind.UNPACK, items)]
        else:
            shape, items = spread
    elif ins.opname in ("DICT_UPDATE", "DICT_MERGE") and items and constant_keys(items[0]):
        # `f(**{"t": 1})`, `{**{"a": x}}`: the display's own pairs; with constant keys, as many every run
        items = list(items[0].operands)
    elif ins.opname in ("DICT_UPDATE", "DICT_MERGE"):
        shape, items = union(ref.deps for ref in items), [expr(ExprKind.UNPACK, items)]
    kind = (
        target.kind
        if target.source is Source.EXPR and target.kind in (ExprKind.LIST, ExprKind.SET, ExprKind.DICT)
        else ExprKind.EFFECT
    )
    if kind is ExprKind.EFFECT:
        new = expr(ExprKind.EFFECT, (target, *items))
    else:  # grown by the items: its deps and theirs, not a union over every item again (n^2 for n)
        new = expr(kind, (*target.operands, *items), deps=target.deps | union(item.deps for item in items))
    b.set_shape(new, b.shape_deps(target) | shape | fs.control_deps)
    b.forget_shape(target)  # the container is on the stack only: the old ref is gone
    fs.stack[index] = fs.under_control(new)


def _spread(
    b: GraphBuilder, fs: FrameState, ins: Instr, ref: ValueRef
) -> tuple[frozenset[int], list[ValueRef]] | None:
    """`[*ref]`: what its length depends on and a ref per item, when we can name them (else None).

    The items of a list or tuple built here are its operands; those of a list, tuple or str read from
    an input, global or cell are paths into it, and their number becomes a guard, as for a loop over it.
    """
    if positional(ref):
        return b.shape_deps(ref), list(b.read_contents(ref).operands)
    value = ref.value
    if ref.deps or ref.source not in (Source.INPUT, Source.GLOBAL, Source.CELL):
        return None
    if type(value) not in (list, tuple, str):
        return None
    b.decisions.append(Decision(DecisionKind.LENGTH, ref, len(value), len(b.ops), b._site(fs, ins)))
    return frozenset(), [b.lookup(step(ref, "iter", i, item)) for i, item in enumerate(value)]


def call_intrinsic_1(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    """3.12+ CALL_INTRINSIC_1: `(*xs,)` and unary `+` are modelled; the others (an import *, a type
    parameter, print in the REPL, a generator's StopIteration) are not."""
    intrinsic = str(ins.argval)
    if "LIST_TO_TUPLE" in intrinsic:
        list_to_tuple(b, fs, ins, jumped)
    elif "UNARY_POSITIVE" in intrinsic:
        fs.push(expr(ExprKind.POS, fs.pop(1)))
    else:
        conservative(b, fs, ins, jumped)


def list_to_tuple(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    (ref,) = fs.pop(1)
    if ref.source is Source.EXPR and ref.kind is ExprKind.LIST:
        fs.push(b.set_shape(expr(ExprKind.TUPLE, ref.operands), b.shape_deps(ref)))
    else:
        fs.push(expr(ExprKind.TUPLE, (ref,)))


def unpack_sequence(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    (ref,) = fs.pop(1)
    n = int(ins.arg or 0)
    if positional(ref) and len(ref.operands) == n:
        items = list(b.read_contents(ref).operands)
    else:
        items = [b.lookup(step(ref, "item", i, peek_item(ref.value, i))) for i in range(n)]
    for item in reversed(items):
        fs.push(item)

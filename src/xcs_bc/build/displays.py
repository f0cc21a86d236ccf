"""Facts about the displays the observed code builds (`[a, b]`, `(x, *ys)`, `{"k": v}`).

A list, tuple, set or dict built by the glue is an EXPR ref whose operands are its items (a dict's
are key, value pairs): these helpers tell when the k-th operand is surely the k-th item, when a
key is the same in every run, and what the size of a set or dict depends on.
"""

from __future__ import annotations

from xcs_bc.ir import ExprKind, Source, ValueRef
from xcs_bc.ir.values import (
    union,
)

CONTAINERS = frozenset({ExprKind.LIST, ExprKind.TUPLE, ExprKind.SET, ExprKind.DICT})


SELF = "<self>"


def positional(ref: ValueRef) -> bool:
    """Is `ref` a list or tuple built here whose k-th operand is its k-th item (no `*xs` kept whole)?"""
    return (
        ref.source is Source.EXPR
        and ref.kind in (ExprKind.LIST, ExprKind.TUPLE)
        and not any(splat(operand) for operand in ref.operands)
    )


def splat(ref: ValueRef) -> bool:
    """An operand of a display that stands for all the items of an iterable: `*xs`, `**kw`."""
    return ref.source is Source.EXPR and ref.kind is ExprKind.UNPACK


def fixed(ref: ValueRef) -> bool:
    """Does `ref` have the same value in every run that reaches it: a literal or a loop counter (not a
    value read from the inputs, globals, cells or results, nor computed from one)?"""
    return ref.source is Source.CONST and not ref.operands and ref.name != SELF


def key_deps(ref: ValueRef) -> frozenset[int]:
    """For a set or dict built here, what its items' (keys') values depend on: equal ones collapse, so
    its size depends on them too. (Nothing for a list or tuple.)"""
    pairs = ref.operands
    if ref.kind is ExprKind.DICT and len(pairs) % 2 == 0 and not any(splat(operand) for operand in pairs):
        return union(key.deps for key in pairs[::2])
    return ref.deps if ref.kind in (ExprKind.SET, ExprKind.DICT) else frozenset()


def constant_keys(ref: ValueRef) -> bool:
    """Is `ref` a dict display built here whose operands are its (constant key, value) pairs?"""
    if ref.source is not Source.EXPR or ref.kind is not ExprKind.DICT or len(ref.operands) % 2:
        return False
    pairs = ref.operands
    return not any(splat(operand) for operand in pairs) and all(
        key.source is Source.CONST and not key.operands and not key.deps for key in pairs[::2]
    )


def dict_entry(container: ValueRef, key: ValueRef) -> ValueRef | None:
    """`{"a": x}["a"]` is `x`, for a dict built here with constant keys (operands: key, value pairs)."""
    if (
        container.source is not Source.EXPR
        or container.kind is not ExprKind.DICT
        or key.source is not Source.CONST
    ):
        return None
    if any(splat(operand) for operand in container.operands):
        return None  # `{**kw, "a": x}`: the pairs are not the operands
    pairs = container.operands
    if len(pairs) % 2 or any(k.source is not Source.CONST for k in pairs[::2]):
        return None
    found = None
    for k, v in zip(pairs[::2], pairs[1::2], strict=True):
        if type(k.value) is type(key.value) and k.value == key.value:
            found = v  # the last one wins, as in a display
    return found

"""Who a generator's or an iterator's ref stands for, and what made a function.

The copies `with_deps` and `with_value` make of a ref (pushed under a branch, stored in a local)
keep its operands tuple: `identity` keys the builder's per-generator and per-iterator tables by it.
"""

from __future__ import annotations

import types

from xcs_bc.ir import ExprKind, Source, ValueRef


def identity(ref: ValueRef) -> int:
    """Who a generator's or an iterator's ref stands for: its operands tuple, which the copies
    `with_deps` and `with_value` make (pushed under a branch, stored in a local) keep."""
    return id(ref.operands) if ref.operands else id(ref)


def same(a: ValueRef | None, b: ValueRef) -> bool:
    return a is not None and identity(a) == identity(b)


def generator_of(ref: ValueRef) -> ValueRef | None:
    """The generator expression `ref` is, or iterates (`iter(gen)`, made by a `for` loop over it)."""
    if ref.source is Source.EXPR and ref.kind is ExprKind.ITER and len(ref.operands) == 1:
        ref = ref.operands[0]
    if ref.source is Source.EXPR and ref.kind is ExprKind.GENEXPR:
        return ref
    return None


def made_code(ref: ValueRef) -> types.CodeType | None:
    """The code object of a function made by MAKE_FUNCTION in the observed code, if `ref` is one."""
    if ref.source is Source.EXPR and ref.kind is ExprKind.MAKE_FUNCTION:
        for operand in ref.operands:
            if isinstance(operand.value, types.CodeType):
                return operand.value
    return None

"""Who a generator's or an iterator's ref stands for, what made a function, and which consumers take
every item of an iterable.

The copies `with_deps` and `with_value` make of a ref (pushed under a branch, stored in a local)
keep its operands tuple: `identity` keys the builder's per-generator and per-iterator tables by it.
"""

from __future__ import annotations

import types
from typing import Any

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


_TAKE_ALL: tuple[Any, ...] = (list, tuple, set, frozenset, dict, sorted, sum, min, max)


_TAKE_ALL_METHODS = frozenset(
    {(str, "join"), (bytes, "join"), (bytearray, "join"), (list, "extend"), (set, "update"), (dict, "update")}
)


def takes_all(callee: Any) -> bool:
    """Does calling `callee` on an iterable take every item of it (list(), sum(), "".join ...)?"""
    if any(callee is taker for taker in _TAKE_ALL):
        return True
    # "".join, xs.extend: a builtin method's attributes run no code
    return isinstance(callee, types.BuiltinMethodType) and (
        (type(callee.__self__), callee.__name__) in _TAKE_ALL_METHODS
    )

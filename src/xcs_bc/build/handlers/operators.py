"""Handlers for operators and formatting: BINARY_OP (and 3.10's BINARY_*/INPLACE_*),
COMPARE_OP, IS_OP, CONTAINS_OP, UNARY_*, FORMAT_VALUE/FORMAT_SIMPLE/FORMAT_WITH_SPEC,
CONVERT_VALUE, and the instructions whose result is a pure expression of their operands
(MAKE_FUNCTION, SET_FUNCTION_ATTRIBUTE, LOAD_CLOSURE, exception bookkeeping).
"""

from __future__ import annotations

import dis
from typing import TYPE_CHECKING

from xcs_bc.build import purity
from xcs_bc.build.codeinfo import Instr
from xcs_bc.build.displays import positional
from xcs_bc.build.frames import EXC, FrameState
from xcs_bc.ir import MISSING, ExprKind, Source, ValueRef
from xcs_bc.ir.values import (
    NULL,
    const,
    expr,
)

if TYPE_CHECKING:
    from xcs_bc.build.builder import GraphBuilder


BINARY_3_10 = {
    "BINARY_ADD": ExprKind.ADD,
    "BINARY_SUBTRACT": ExprKind.SUB,
    "BINARY_MULTIPLY": ExprKind.MUL,
    "BINARY_TRUE_DIVIDE": ExprKind.TRUEDIV,
    "BINARY_FLOOR_DIVIDE": ExprKind.FLOORDIV,
    "BINARY_MODULO": ExprKind.MOD,
    "BINARY_POWER": ExprKind.POW,
    "BINARY_AND": ExprKind.BIT_AND,
    "BINARY_OR": ExprKind.BIT_OR,
    "BINARY_XOR": ExprKind.BIT_XOR,
    "BINARY_LSHIFT": ExprKind.LSHIFT,
    "BINARY_RSHIFT": ExprKind.RSHIFT,
    "INPLACE_ADD": ExprKind.IADD,
    "INPLACE_SUBTRACT": ExprKind.ISUB,
    "INPLACE_MULTIPLY": ExprKind.IMUL,
    "INPLACE_MODULO": ExprKind.IMOD,
    "BINARY_MATRIX_MULTIPLY": ExprKind.MATMUL,
    "INPLACE_TRUE_DIVIDE": ExprKind.ITRUEDIV,
    "INPLACE_FLOOR_DIVIDE": ExprKind.IFLOORDIV,
    "INPLACE_POWER": ExprKind.IPOW,
    "INPLACE_MATRIX_MULTIPLY": ExprKind.IMATMUL,
    "INPLACE_AND": ExprKind.IAND,
    "INPLACE_OR": ExprKind.IOR,
    "INPLACE_XOR": ExprKind.IXOR,
    "INPLACE_LSHIFT": ExprKind.ILSHIFT,
    "INPLACE_RSHIFT": ExprKind.IRSHIFT,
}


_COMPARISONS = {
    kind.value: kind
    for kind in (ExprKind.LT, ExprKind.LE, ExprKind.EQ, ExprKind.NE, ExprKind.GT, ExprKind.GE)
}


_OPERATOR_SYMBOLS = {kind.value: kind for kind in BINARY_3_10.values()}  # BINARY_OP's: spelled as the kinds


def binary_op(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    kind = BINARY_3_10.get(ins.opname) or _binary_op_symbol(ins.arg)
    operands = fs.pop(ins.pops)
    target = operands[0] if operands else NULL
    if kind.in_place and target.value is not MISSING and not purity.is_immutable(target.value):
        # `xs += ys` changes the list xs in place (and any object whose `+=` is its own method may)
        base, rest = b.lookup(target), operands[1:]
        new = expr(ExprKind.EFFECT, (base, *rest), value=target.value)
        pair = (
            (base, rest[0]) if kind is ExprKind.IADD and base.kind is ExprKind.LIST and len(rest) == 1 else ()
        )
        if pair and all(positional(ref) for ref in pair):  # both built here: still a list of known items
            new = expr(ExprKind.LIST, (*base.operands, *rest[0].operands), value=target.value)
            b.set_shape(new, b.shape_deps(base) | b.shape_deps(rest[0]) | fs.control_deps)
        new = fs.under_control(new)
        fs.push(b.mutate(target.value, base, new.deps, new))
        return
    if kind.in_place and target.value is not MISSING:
        kind = kind.plain()  # `n += 1` on an immutable value (an int, a str) is `n + 1`: no method of its own
    fs.push(expr(kind, operands))


def _binary_op_symbol(arg: int | None) -> ExprKind:
    """BINARY_OP's operator (`+`, `%=`, ...) from its argument (3.11+)."""
    names = getattr(dis, "_nb_ops", ())
    symbol = str(names[arg][1]) if arg is not None and 0 <= arg < len(names) else ""
    return _OPERATOR_SYMBOLS.get(symbol, ExprKind.BINARY_OP)


def compare_op(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    """COMPARE_OP / IS_OP / CONTAINS_OP as the operator they compute: `a < b`, `a is not b`, `a in b`."""
    if ins.opname == "IS_OP":
        kind = ExprKind.IS_NOT if ins.arg else ExprKind.IS
    elif ins.opname == "CONTAINS_OP":
        kind = ExprKind.NOT_IN if ins.arg else ExprKind.IN
    else:
        kind = _COMPARISONS.get(str(ins.argval), ExprKind.COMPARE_OP)
    fs.push(expr(kind, fs.pop(ins.pops)))


def unary_op(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    (ref,) = fs.pop(1)
    kind = {
        "UNARY_NOT": ExprKind.NOT,
        "UNARY_NEGATIVE": ExprKind.NEG,
        "UNARY_INVERT": ExprKind.INVERT,
        "UNARY_POSITIVE": ExprKind.POS,
    }[ins.opname]
    fs.push(expr(kind, (ref,)))


def format_value(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    operands = fs.pop(ins.pops)
    if ins.opname == "FORMAT_VALUE" and operands:  # 3.10-3.12: `!s`, `!r`, `!a` are in its argument
        operands[0] = _converted(operands[0], (ins.arg or 0) & 0x03)
    fs.push(expr(ExprKind.FORMAT, operands))


def convert_value(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    """3.13 CONVERT_VALUE: `!s`, `!r`, `!a` before FORMAT_SIMPLE / FORMAT_WITH_SPEC."""
    (ref,) = fs.pop(1)
    fs.push(_converted(ref, ins.arg or 0))


def _converted(ref: ValueRef, conversion: int) -> ValueRef:
    """`ref` after an f-string conversion: str(), repr() or ascii() of it (calls `plan` can evaluate)."""
    convert = {1: str, 2: repr, 3: ascii}.get(conversion)
    return expr(ExprKind.CALL, (const(convert), ref)) if convert is not None else ref


def pure_expression(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    """An instruction whose results are a pure expression of its operands (named after the opcode):
    MAKE_FUNCTION, LOAD_CLOSURE, exception bookkeeping while a handler runs (which runs under the
    raise's control dependence, see `_unwind`)."""
    popped = fs.pop(ins.jump_pops if jumped else ins.pops)
    pushes = ins.jump_pushes if jumped else ins.pushes
    if pushes:
        result = expr(ExprKind(ins.opname.lower()), [r for r in popped if r is not EXC])
        for _ in range(pushes):
            fs.push(result)


def set_function_attribute(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    """3.13 gives a function MAKE_FUNCTION made its closure (defaults, ...) in an instruction of its own:
    it is still the function made here (a generator expression over a closure variable stays one)."""
    attribute, function = fs.pop(2)
    if function.source is Source.EXPR and function.kind is ExprKind.MAKE_FUNCTION:
        fs.push(expr(ExprKind.MAKE_FUNCTION, (*function.operands, attribute)))
    else:
        fs.push(expr(ExprKind.SET_FUNCTION_ATTRIBUTE, (attribute, function)))

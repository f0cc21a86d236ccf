"""Handlers for the stack and the frame: COPY/DUP_TOP, SWAP/ROT_*, the no-ops (POP_TOP, jumps,
block setup), RETURN_VALUE, YIELD_VALUE, and the conservative handler for an opcode not modelled.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

from xcs_bc.build.codeinfo import Instr
from xcs_bc.build.frames import FrameState
from xcs_bc.ir.values import (
    NULL,
    const,
    unknown,
)

if TYPE_CHECKING:
    from xcs_bc.build.builder import GraphBuilder


def nop(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    """Instructions that only drop values (POP_TOP, END_FOR) or do nothing to the stack."""
    pops, pushes = (ins.jump_pops, ins.jump_pushes) if jumped else (ins.pops, ins.pushes)
    if pops != pushes:
        fs.pop(pops - pushes) if pops > pushes else fs.stack.extend([NULL] * (pushes - pops))


def copy(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    n = 1 if ins.opname == "DUP_TOP" else int(ins.arg or 1)
    if ins.opname == "DUP_TOP_TWO":
        fs.stack.extend(fs.stack[-2:])
        return
    fs.stack.append(fs.stack[-n] if len(fs.stack) >= n else unknown(len(b.ops)))


def swap(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    s = fs.stack
    if ins.opname == "SWAP":
        n = int(ins.arg or 2)
        if len(s) >= n:
            s[-1], s[-n] = s[-n], s[-1]
        return
    n = {"ROT_TWO": 2, "ROT_THREE": 3, "ROT_FOUR": 4}.get(ins.opname, int(ins.arg or 2))
    if len(s) >= n:  # ROT_n: TOS moves down to position n
        s[-n:] = [s[-1], *s[-n:-1]]


def conservative(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    """An instruction we do not model: see `GraphBuilder.unmodelled`."""
    popped = fs.pop(ins.jump_pops if jumped else ins.pops)
    result = b.unmodelled(popped)
    for _ in range(ins.jump_pushes if jumped else ins.pushes):
        fs.push(result)


def return_value(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    ref = const(ins.argval) if ins.opname == "RETURN_CONST" else (fs.pop(1) or [unknown(len(b.ops))])[0]
    parent = b.frame_state(fs.frame.f_back) if fs.frame.f_back is not None else None
    if fs is not b.root and fs.info.code.co_flags & inspect.CO_GENERATOR:
        return  # a generator expression's return value is not what its consumer (traced or not) returns
    if fs.made is not None:  # a class's `__init__`: the call's result is the object, as `__init__` left it
        ref = b.lookup(fs.made)
    if parent is not None and parent.pending is not None and not fs.called_back:
        parent.child_return = ref
    if fs.frame.f_back is not None and parent is None and b.root_return is None:
        b.root_return = ref


def yield_value(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    fs.pop(1)  # recorded when the instruction started (see `instruction`)
    for _ in range(ins.pushes):
        fs.push(const(None))

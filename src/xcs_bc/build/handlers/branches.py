"""Handlers for conditional jumps: POP_JUMP_IF_* and JUMP_IF_*_OR_POP, a decision or a
control dependence (see `GraphBuilder.branch`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xcs_bc.build.codeinfo import Instr
from xcs_bc.build.frames import FrameState
from xcs_bc.build.trace import DecisionKind
from xcs_bc.ir.values import (
    unknown,
)

if TYPE_CHECKING:
    from xcs_bc.build.builder import GraphBuilder


def pop_jump_if(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    (cond,) = fs.pop(1)
    b.branch(fs, ins, cond, _outcome(ins.opname, jumped), jumped=jumped)


def _outcome(opname: str, jumped: bool) -> tuple[DecisionKind, bool]:
    """What the condition was, from the jump taken: (TRUTH, bool(cond)) or (NONE, cond is None)."""
    on_true = "TRUE" in opname and "NOT_NONE" not in opname
    if "NONE" in opname:
        return (DecisionKind.NONE, jumped if "NOT_NONE" not in opname else not jumped)
    return (DecisionKind.TRUTH, jumped if on_true else not jumped)


def jump_if_or_pop(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    cond = fs.stack[-1] if fs.stack else unknown(len(b.ops))
    b.branch(fs, ins, cond, _outcome(ins.opname, jumped), jumped=jumped)
    if not jumped:
        fs.pop(1)

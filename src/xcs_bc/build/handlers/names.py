"""Handlers for locals, names, globals and attributes: LOAD_FAST, STORE_FAST, DELETE_FAST,
LOAD_NAME, LOAD_GLOBAL, STORE_GLOBAL, LOAD_CONST, PUSH_NULL, LOAD_ATTR, STORE_ATTR, DELETE_ATTR ...
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING

from xcs_bc._compat import PY313
from xcs_bc.build.codeinfo import CodeInfo, Instr
from xcs_bc.build.displays import SELF
from xcs_bc.build.frames import FrameState
from xcs_bc.build.liveness import cell_writes
from xcs_bc.build.remade import remade
from xcs_bc.ir import Source, ValueRef
from xcs_bc.ir.values import (
    NULL,
    const,
    peek_attr,
    step,
)

if TYPE_CHECKING:
    from xcs_bc.build.builder import GraphBuilder


def load_fast(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    names = ins.argval if isinstance(ins.argval, tuple) else (ins.argval,)
    for name in names:
        fs.push(b.load_local(fs, str(name)))


def load_fast_and_clear(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    name = str(ins.argval)
    ref = fs.locals.pop(name, None)
    fs.push(ref if ref is not None else NULL)


def store_fast(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    names = ins.argval if isinstance(ins.argval, tuple) else (ins.argval,)
    if ins.opname == "STORE_FAST_LOAD_FAST":
        b.store_local(fs, str(names[0]), fs.pop(1)[0])
        fs.push(b.load_local(fs, str(names[1])))
        return
    for name in names:
        b.store_local(fs, str(name), fs.pop(1)[0])


def delete_fast(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    fs.locals.pop(str(ins.argval), None)
    if fs is b.root:
        b.live[str(ins.argval)] = -1  # never the count of an assignment a recipe reads


def single_stores(info: CodeInfo) -> frozenset[str]:
    """Locals the code assigns at exactly one instruction and never deletes: after that instruction has
    run k times, the local holds what its k-th run stored (the assignments a replay may read).  A cell
    variable (a local a nested function or, on 3.10 and 3.11, a comprehension reads) counts when no
    nested code assigns it (`nonlocal`)."""
    stores: dict[str, int] = {}
    deleted = set(_assigned_by_nested(info.code))
    for ins in info.instrs.values():
        if ins.opname.startswith("STORE_FAST") or ins.opname == "STORE_DEREF":
            names = ins.argval if isinstance(ins.argval, tuple) else (ins.argval,)
            for name in names[:1] if ins.opname == "STORE_FAST_LOAD_FAST" else names:
                stores[str(name)] = stores.get(str(name), 0) + 1
        elif ins.opname in ("DELETE_FAST", "DELETE_DEREF"):
            deleted.add(str(ins.argval))
    return frozenset(name for name, n in stores.items() if n == 1 and name not in deleted)


def _assigned_by_nested(code: types.CodeType) -> set[str]:
    """The free variables code nested in `code` assigns or deletes (`nonlocal n; n += 1`)."""
    nested = (const for const in code.co_consts if isinstance(const, types.CodeType))
    return {name for inner in nested for where, name in cell_writes(inner) if name in where.co_freevars}


def load_name(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    name = str(ins.argval)
    if name in fs.locals or not fs.is_module:
        fs.push(b.load_local(fs, name))
    else:
        fs.push(b.load_global(fs, name))


def load_global_handler(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    name = ins.argval[1] if isinstance(ins.argval, tuple) else ins.argval
    with_null = ins.pushes == 2
    ref = b.load_global(fs, str(name))
    if with_null and not PY313:
        fs.push(NULL)
    fs.push(ref)
    if with_null and PY313:
        fs.push(NULL)


def load_const(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    fs.push(const(ins.argval))


def push_null(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    fs.stack.append(NULL)


def load_attr(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    (obj,) = fs.pop(1)
    obj = remade(obj)
    name = ins.argval[1] if isinstance(ins.argval, tuple) else ins.argval
    name = str(name)
    value = peek_attr(obj.value, name)
    attr = b.lookup(step(b.unchanged_for(obj, name, value), "attr", name, value))
    if ins.pushes == 2:  # method form: [method, self]
        fs.push(attr)
        fs.push(ValueRef(Source.CONST, name=SELF, operands=(obj,), deps=obj.deps))
    else:
        fs.push(attr)


def store_attr(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    value, obj = fs.pop(2)  # TOS is the object, TOS1 the value (popped bottom first)
    b.retain(value)
    b.set_attribute(obj, str(ins.argval), obj.deps | value.deps | fs.control_deps)


def delete_attr(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    (obj,) = fs.pop(1)
    b.set_attribute(obj, str(ins.argval), obj.deps | fs.control_deps)


def store_global_handler(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    (value,) = fs.pop(1)
    b.store_global(fs, str(ins.argval), value)


def delete_global(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    b.store_global(fs, str(ins.argval), None)

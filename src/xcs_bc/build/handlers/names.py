"""Handlers for locals, names, globals and attributes: LOAD_FAST, STORE_FAST, DELETE_FAST,
LOAD_NAME, LOAD_GLOBAL, STORE_GLOBAL, LOAD_CONST, PUSH_NULL, LOAD_ATTR, STORE_ATTR, DELETE_ATTR ...
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Any

from xcs_bc._compat import PY312, PY313
from xcs_bc.build import purity
from xcs_bc.build.codeinfo import CodeInfo, Instr
from xcs_bc.build.displays import SELF
from xcs_bc.build.frames import FrameState
from xcs_bc.ir import MISSING, ExprKind, PathStep, Source, ValueRef
from xcs_bc.ir.values import (
    NULL,
    const,
    peek_attr,
    step,
    with_path,
    with_value,
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
    run k times, the local holds what its k-th run stored (the assignments a replay may read)."""
    stores: dict[str, int] = {}
    deleted = set()
    for ins in info.instrs.values():
        if ins.opname.startswith("STORE_FAST"):
            names = ins.argval if isinstance(ins.argval, tuple) else (ins.argval,)
            for name in names[:1] if ins.opname == "STORE_FAST_LOAD_FAST" else names:
                stores[str(name)] = stores.get(str(name), 0) + 1
        elif ins.opname == "DELETE_FAST":
            deleted.add(str(ins.argval))
    return frozenset(name for name, n in stores.items() if n == 1 and name not in deleted)


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
    obj = _recomputed(obj)
    name = ins.argval[1] if isinstance(ins.argval, tuple) else ins.argval
    name = str(name)
    attr = b.lookup(step(obj, "attr", name, peek_attr(obj.value, name)))
    if ins.pushes == 2:  # method form: [method, self]
        fs.push(attr)
        fs.push(ValueRef(Source.CONST, name=SELF, operands=(obj,), deps=obj.deps))
    else:
        fs.push(attr)


# built-in data no built-in function runs user code on (exact types: a subclass may define __str__)
_SCALARS = (str, int, float, bool, bytes, type(None))
_CONTAINERS = (tuple, list)


def _recomputed(ref: ValueRef) -> ValueRef:
    """`ref` with its value, when built-in functions compute it from built-in data.

    3.10 and 3.11 report no C function's result (settrace has no such event): in `q.strip().lower()`
    or `answer.split(":")[1].strip()` no method could be peeked on the unknown result, the callee
    would be unknown, and every call after it would wait its turn.  Such calls run no user code and
    give the same value again: they are made once more here (3.12+ report the callee itself, see
    `GraphBuilder.call`)."""
    if PY312 or ref.value is not MISSING:
        return ref
    value = _recompute(ref, 4)
    return ref if value is MISSING else with_value(ref, value)


def _recompute(ref: ValueRef, depth: int) -> Any:
    if ref.value is not MISSING or depth == 0:
        return ref.value
    if ref.path:
        value = _recompute(with_path(ref, ()), depth - 1)
        for path_step in ref.path:
            value = _step(value, path_step)
        return value
    if ref.source is not Source.EXPR or ref.kind is not ExprKind.CALL or not ref.operands:
        return MISSING
    callee, *args = (_recompute(operand, depth - 1) for operand in ref.operands)
    owner = getattr(callee, "__self__", None)
    builtin = type(callee) is types.BuiltinFunctionType and (
        isinstance(owner, types.ModuleType) or _is_data(owner)
    )
    if not (builtin or any(callee is kind for kind in _SCALARS)) or not all(map(_is_data, args)):
        return MISSING
    if purity.classify(callee) is not purity.Effect.PURE:
        return MISSING
    try:
        return callee(*args)
    except Exception:  # noqa: BLE001 - it raised in the run too: the value stays unknown
        return MISSING


def _step(value: Any, path_step: PathStep) -> Any:
    """One step into built-in data (an item, an attribute read without running user code), or MISSING."""
    if path_step.kind == "attr" and value is not MISSING:
        return peek_attr(value, str(path_step.key))
    if path_step.kind == "item" and _is_data(value) and type(path_step.key) in (int, slice):
        try:
            return value[path_step.key]
        except IndexError:
            return MISSING
    return MISSING


def _is_data(value: Any) -> bool:
    if type(value) in _CONTAINERS:
        return all(_is_data(item) for item in value)
    return type(value) in _SCALARS


def store_attr(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    value, obj = fs.pop(2)  # TOS is the object, TOS1 the value (popped bottom first)
    b.retain(value)
    b.mutate(obj.value, b.lookup(obj), obj.deps | value.deps | fs.control_deps)


def delete_attr(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    (obj,) = fs.pop(1)
    b.mutate(obj.value, b.lookup(obj), obj.deps | fs.control_deps)


def store_global_handler(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    (value,) = fs.pop(1)
    b.store_global(fs, str(ins.argval), value)


def delete_global(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    b.store_global(fs, str(ins.argval), None)

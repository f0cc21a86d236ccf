"""Which instructions and calls can be slow steps of their own.

Under load any instruction can take milliseconds (a collection, another thread, the tracer): only
an instruction that may run user code on the values it takes is a slow step, and a built-in
method of a plain value or a pure built-in is never a slow call, nor is a function that reads its
caller's frame.
"""

from __future__ import annotations

import builtins
import types
from collections.abc import Iterable
from typing import Any

from xcs_bc.build import purity
from xcs_bc.build.codeinfo import Instr
from xcs_bc.build.frames import EXC, FrameState
from xcs_bc.build.generators import remade_function
from xcs_bc.ir import MISSING, ExprKind, Source, ValueRef
from xcs_bc.ir.values import (
    NULL,
    peek_attr,
)

# Instructions whose time is never a slow step of their own (their time is the user's code between
# events, e.g. a generator's body, or ours).
# Instructions that run no user code: when one of them takes long, a collection or another thread
# took the time (and YIELD/RETURN time is the consumer's). Only the others can be slow steps.
_NEVER_SLOW = frozenset(
    """RESUME YIELD_VALUE RETURN_VALUE RETURN_CONST RETURN_GENERATOR NOP LOAD_CONST LOAD_FAST LOAD_FAST_CHECK
    LOAD_FAST_AND_CLEAR LOAD_FAST_LOAD_FAST STORE_FAST STORE_FAST_STORE_FAST STORE_FAST_LOAD_FAST DELETE_FAST
    LOAD_DEREF STORE_DEREF LOAD_CLOSURE MAKE_CELL COPY_FREE_VARS POP_TOP PUSH_NULL COPY SWAP DUP_TOP
    DUP_TOP_TWO ROT_TWO ROT_THREE ROT_FOUR ROT_N KW_NAMES PRECALL EXTENDED_ARG CACHE JUMP_FORWARD
    JUMP_BACKWARD JUMP_ABSOLUTE JUMP_BACKWARD_NO_INTERRUPT JUMP END_FOR BUILD_TUPLE BUILD_LIST BUILD_STRING
    BUILD_SLICE LIST_APPEND LIST_EXTEND LIST_TO_TUPLE UNPACK_SEQUENCE POP_BLOCK POP_EXCEPT PUSH_EXC_INFO
    SETUP_FINALLY GEN_START""".split()
)


_EMPTIES: tuple[Any, ...] = ("", b"", [], (), {}, set(), range(0), {}.keys(), {}.values(), {}.items())


_STORES = frozenset({"STORE_NAME", "STORE_GLOBAL", "DELETE_NAME", "DELETE_GLOBAL"})  # into a namespace dict


# Values whose operators, attributes, items, iteration and formatting run no user code.
_PLAIN_TYPES: frozenset[type] = frozenset(
    {str, bytes, bytearray, int, float, complex, bool, type(None), list, tuple, dict, set, frozenset}
    | {range, slice, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type}
    | {type(iter(empty)) for empty in _EMPTIES}
    | {type({}.keys()), type({}.values()), type({}.items())}
)


def may_run_user_code(fs: FrameState, ins: Instr, jumped: bool) -> bool:
    """Can this instruction, on the values it takes, run code of the user's (a property, `__getitem__`,
    `__next__` of a generator, an operator or `__format__` of a user class)?  Only such an instruction
    is a slow step of its own: when another one takes long, a collection, another thread or the tracer
    took the time (under load, a `LOAD_GLOBAL` can take milliseconds).  Elements of a container are not
    looked into (`==` of two lists may call their items' `__eq__`: no API call hides there).  Of a
    value the builder holds no object for, only one a helper not known to be pure made may be anything;
    missing a slow step there costs no correctness (recipes never run user code), only a report line."""
    if ins.opname in _NEVER_SLOW or ins.opname in _STORES:
        return False
    taken = ins.jump_pops if jumped else ins.pops
    if taken == 0 or taken > len(fs.stack):
        return False  # it reads no value (LOAD_GLOBAL, LOAD_NAME, ...): no user code of a value runs
    operands = [ref for ref in fs.stack[len(fs.stack) - taken :] if ref is not NULL and ref is not EXC]
    if ins.opname in ("LOAD_ATTR", "LOAD_METHOD") and operands and operands[-1].value is not MISSING:
        return peek_attr(operands[-1].value, str(ins.argval)) is MISSING  # a plain attribute runs none
    return any(
        ref.source is Source.UNKNOWN if ref.value is MISSING else type(ref.value) not in _PLAIN_TYPES
        for ref in operands
    )


# iterators whose items a call of a Python function makes
_CALLING_ITERATORS: tuple[type, ...] = (map, filter, types.GeneratorType)


def _may_call(ref: ValueRef) -> bool:
    """Something callable, or a map, filter or generator (its value, or a call of `map` or `filter`
    whose result 3.12+ does not report)."""
    if ref.kind is ExprKind.MAKE_FUNCTION or callable(ref.value) or type(ref.value) in _CALLING_ITERATORS:
        return True
    return ref.kind is ExprKind.CALL and bool(ref.operands) and ref.operands[0].value in (map, filter)


def _plain(ref: ValueRef) -> bool:
    return ref.value is not MISSING and type(ref.value) in _PLAIN_TYPES


def _iterates_plainly(ref: ValueRef) -> bool:
    """Is taking an iterator of this value running no user code (a plain container, or an iterator,
    whose iterator is itself)?"""
    return _plain(ref) or (ref.value is not MISSING and type(ref.value) in _CALLING_ITERATORS)


def _calls_purely(ref: ValueRef, globals_: Any) -> bool:
    """Is `ref` a Python function known to be pure (a lambda made here: made again, see
    `remade_function`)?  Handed one, a pure built-in runs only pure code of the user's."""
    value = ref.value if ref.value is not MISSING else remade_function(ref, globals_)
    return purity.pure_function(value)


def plain_builtin(callee: Any, args: Iterable[ValueRef] = (), globals_: Any = None) -> bool:
    """A built-in method of a plain value (`list.append`, `str.join`), a pure built-in (`len`) or a
    pure built-in type made of plain values (`list(docs)`), handed nothing to call but functions known
    to be pure (`sorted(xs, key=lambda x: judge(x))` makes the calls its key does; `"".join(map(llm,
    docs))` those of `llm`): it does no IO and runs no user code but pure code, so its time is never
    a slow call's (with `min_call_ms=0`, every call is an operation all the same).  Nor is
    the making of a lazy built-in iterator over plain values (`map(llm, docs)`): under load it may
    take milliseconds all the same, and taken for a slow call it would cut a consumer's map off."""
    if isinstance(callee, type) and callee.__module__ == "builtins":
        args = tuple(args)
        if callee in (map, filter):  # (the function it is handed is called by the consumer)
            return len(args) >= 2 and all(_iterates_plainly(arg) for arg in args[1:])
        if callee in (zip, enumerate, reversed):
            return all(_iterates_plainly(arg) for arg in args)
        # `list(docs)`, `str(n)`: a pure built-in type made of plain values
        return purity.classify(callee) is purity.Effect.PURE and all(_plain(arg) for arg in args)
    if not isinstance(callee, types.BuiltinMethodType):  # (built-in functions are of this type too)
        return False
    if any(_may_call(arg) and not _calls_purely(arg, globals_) for arg in args):
        return False
    owner = getattr(callee, "__self__", None)
    if isinstance(owner, types.ModuleType):
        return owner is builtins and purity.classify(callee) is purity.Effect.PURE
    return type(owner) in _PLAIN_TYPES


# modules whose functions read their caller's frame (logging's `findCaller`, `warnings.warn`'s
# stacklevel, `inspect.currentframe()`, `traceback.extract_stack()`)
_FRAME_READERS = frozenset(
    {"inspect", "traceback", "warnings", "_warnings", "logging", "sys", "pdb", "faulthandler"}
)


def reads_callers_frame(callee: Any) -> bool:
    """Does `callee` read its caller's frame (`log.info` records the function and line that called
    it)?  Made anywhere but in the caller's frame (through a dispatcher, on a worker) it would read
    ours, so it is never a slow call, however long it takes (a slow handler): it runs in its turn,
    where the code makes it."""
    return getattr(callee, "__module__", None) in _FRAME_READERS


# A slow step that is not a call is counted from 1 ms even with min_call_ms=0 (every instruction
# takes *some* time; only calls are meant to become operations at any duration).
IMPLICIT_MIN_S = 0.001

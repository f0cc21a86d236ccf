"""Build: which names of a frame an instruction reads or assigns, read statically from the bytecode.

Four questions the builder asks of the observed function's code: which locals an instruction
reads or assigns (`loaded_names`, `stored_names`; the untaken-arm reader in `arms` uses them too),
whether a local may be read again after a call before it is assigned again (`read_after`), which
containers a call's callee alone sees once the call is made (`never_read_again`), and whether a
function the code just made always sees the same values in its closure (`fixed_closure`: then it
may be called ahead).
"""

from __future__ import annotations

import dis
import functools
import types
from collections.abc import Iterator, Mapping, Sequence
from typing import Final

from xcs_bc._compat import CO_VARARGS, CO_VARKEYWORDS
from xcs_bc.build import purity
from xcs_bc.build.codeinfo import CodeInfo, Instr
from xcs_bc.ir import Operation, OpType

__all__ = [
    "LOCAL_LOADS",
    "LOCAL_STORES",
    "arg_names",
    "cell_writes",
    "fixed_closure",
    "loaded_names",
    "never_read_again",
    "read_after",
    "stored_names",
]

# instructions that assign (or delete) a name of the frame: `stored_names`
LOCAL_STORES: Final = frozenset(
    {
        "STORE_FAST",
        "STORE_FAST_STORE_FAST",
        "STORE_FAST_LOAD_FAST",
        "STORE_FAST_MAYBE_NULL",
        "DELETE_FAST",
        "STORE_NAME",
        "DELETE_NAME",
        "STORE_DEREF",
        "DELETE_DEREF",
        "LOAD_FAST_AND_CLEAR",  # (3.12+ inlined comprehension: hides the local, then restores it)
    }
)
# instructions that read one: `loaded_names`
LOCAL_LOADS: Final = frozenset(
    {
        "LOAD_FAST",
        "LOAD_FAST_CHECK",
        "LOAD_FAST_LOAD_FAST",
        "LOAD_FAST_AND_CLEAR",
        "LOAD_NAME",
        "LOAD_DEREF",
        "LOAD_CLASSDEREF",
        "LOAD_CLOSURE",
    }
)


def arg_names(ins: Instr) -> tuple[str, ...]:
    """The names an instruction's argument holds (two for `LOAD_FAST_LOAD_FAST` and the like)."""
    argval = ins.argval
    return tuple(str(name) for name in argval) if isinstance(argval, tuple) else (str(argval),)


def stored_names(ins: Instr) -> tuple[str, ...]:
    """The names of the frame `ins` assigns or deletes."""
    if ins.opname not in LOCAL_STORES:
        return ()
    names = arg_names(ins)
    return names[:1] if ins.opname == "STORE_FAST_LOAD_FAST" else names


def loaded_names(ins: Instr) -> tuple[str, ...]:
    """The names of the frame `ins` reads."""
    if ins.opname == "STORE_FAST_LOAD_FAST":
        return arg_names(ins)[1:]
    return arg_names(ins) if ins.opname in LOCAL_LOADS else ()


# calls that read a frame's locals by name: where one is made, every local may be read
_FRAME_READERS = frozenset({"locals", "vars", "eval", "exec", "dir"})


@functools.lru_cache(maxsize=4096)
def read_after(info: CodeInfo, offset: int, name: str) -> bool:
    """May the local `name` be read after the instruction at `offset` runs, before it is assigned
    again?  Counted as reads too: any read of a cell variable (a nested function may read it), any
    read where the code calls `locals()`, `vars()`, `eval` or the like, and a read in code no normal
    path from the entry reaches (an exception handler)."""
    code = info.code
    if name in code.co_cellvars or name in code.co_freevars or _reads_frame(info):
        return True
    if any(name in loaded_names(info.instrs[at]) for at in _off_path(info)):
        return True
    todo = list(info.successors(offset))
    seen = set(todo)
    while todo:
        ins = info.instrs[todo.pop()]
        if name in loaded_names(ins):
            return True
        if name in stored_names(ins):
            continue  # assigned again on this path: what it held before is not read on it
        for successor in info.successors(ins.offset):
            if successor not in seen:
                seen.add(successor)
                todo.append(successor)
    return False


@functools.lru_cache(maxsize=1024)
def _reads_frame(info: CodeInfo) -> bool:
    return any(
        ins.opname in ("LOAD_GLOBAL", "LOAD_NAME") and arg_names(ins)[-1] in _FRAME_READERS
        for ins in info.instrs.values()
    )


@functools.lru_cache(maxsize=1024)
def _off_path(info: CodeInfo) -> frozenset[int]:
    """The instructions no normal path from the code's entry reaches: exception handlers (and dead
    code)."""
    entry = info.order[0]
    todo, seen = [entry], {entry}
    while todo:
        for successor in info.successors(todo.pop()):
            if successor not in seen:
                seen.add(successor)
                todo.append(successor)
    return frozenset(info.instrs) - seen


def never_read_again(
    ops: Sequence[Operation], holders: Mapping[int, set[str] | None], code: CodeInfo
) -> dict[int, frozenset[int]]:
    """For each call of `ops` (those the code of `code` makes itself), the containers the code keeps
    only in locals it never reads again after the call (`holders`: by container, the locals that
    hold it, or None when it is kept anywhere else too, see `Effects.retain`): handing the callee a
    copy of one changes nothing the function can see (`messages = [...]` then
    `create(messages=messages)`, each round of a loop building its own)."""
    only_locals = {key: names for key, names in holders.items() if names}
    unkept = {}
    for op in ops:
        if op.op_type is not OpType.CALL:
            continue
        dead = frozenset(
            key
            for key, names in only_locals.items()
            if not any(read_after(code, op.site.offset, name) for name in names)
        )
        if dead:
            unkept[op.id] = dead
    return unkept


def fixed_closure(fn: object, outer: types.CodeType) -> bool:
    """Does the function `fn`, just made by the code `outer`, always see what it sees now when it is
    called later?  A function without free variables does; one with them, when each is assigned once
    in `outer` (and never deleted), already holds an immutable value, and `fn` (or code nested in it)
    never assigns one (`nonlocal n; n += 1`).  Only such a function may be called ahead of the run:
    one whose cells the run changes in between would see other values than in the real call."""
    if not isinstance(fn, types.FunctionType):
        return False
    names = fn.__code__.co_freevars
    if not names:
        return True
    if any(cell_writes(fn.__code__)):
        return False
    stores = _cell_stores(outer)
    flags = outer.co_flags
    arity = (
        outer.co_argcount + outer.co_kwonlyargcount + bool(flags & CO_VARARGS) + bool(flags & CO_VARKEYWORDS)
    )
    parameters = outer.co_varnames[:arity]  # (a parameter's cell holds the argument from the start)
    for name, cell in zip(names, fn.__closure__ or (), strict=True):
        try:
            value = cell.cell_contents
        except ValueError:  # not assigned yet
            return False
        once = stores.get(name, 0) == (0 if name in parameters else 1)
        if not once or not purity.is_immutable(value):
            return False
    return True


def cell_writes(code: types.CodeType) -> Iterator[tuple[types.CodeType, str]]:
    """(the code object, the name) for every cell or free variable `code`, or code nested in it,
    assigns or deletes (`nonlocal n; n += 1`)."""
    for ins in dis.get_instructions(code):
        if ins.opname in ("STORE_DEREF", "DELETE_DEREF"):
            yield code, str(ins.argval)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from cell_writes(const)


@functools.lru_cache(maxsize=256)
def _cell_stores(code: types.CodeType) -> dict[str, int]:
    """How many instructions of `code` assign each of its cell variables (a delete counts twice)."""
    stores: dict[str, int] = {}
    for ins in dis.get_instructions(code):
        if ins.opname in ("STORE_DEREF", "DELETE_DEREF"):
            stores[ins.argval] = stores.get(ins.argval, 0) + (1 if ins.opname == "STORE_DEREF" else 2)
    return stores

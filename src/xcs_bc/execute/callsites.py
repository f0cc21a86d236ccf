"""Call sites: which calls of a function's code can be routed through a dispatcher, and where.

`find_calls(code)` lists every call instruction of one code object with the
facts `rewrite` needs to replace it, or the reason it must stay as it is.  A
worklist pass over `codeinfo`'s static description of the ORIGINAL code
records, for every stack slot, which instructions may have pushed it; a call is
accepted only if that proves where its callable is (see `rewrite`'s docstring
for the accepted shapes).  `code_tree` names every code object nested in a
function by its path of code-object names, the first half of a `SiteKey`.
"""

from __future__ import annotations

import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final, Literal, NamedTuple

from xcs_bc._compat import CALL_OPS, COMPREHENSIONS, VERSION, instructions_with_lines
from xcs_bc.build.codeinfo import CodeInfo, code_info
from xcs_bc.errors import ConfigError, UnsupportedCodeError

__all__ = [
    "FRAME_SENSITIVE",
    "Call",
    "SiteKey",
    "check_function",
    "code_children",
    "code_tree",
    "find_calls",
    "map_consumers",
    "Named",
    "named_callees",
    "walk_code",
]

SiteKey = tuple[tuple[str, ...], int]
"""(code path, offset of the call instruction in the original code)."""


# Builtins that look at the frame calling them: routed through a dispatcher
# they would see the dispatcher's frame (zero-argument super() raised
# "RuntimeError: super(): __class__ cell not found" on 3.10/3.11).  Refused
# when loaded by name; `_FRAME_GETTERS` also when loaded as an attribute
# (``sys._getframe()``, ``inspect.currentframe()``), names too distinctive to
# hit anything else -- unlike ``model.eval()``.
FRAME_SENSITIVE: Final = frozenset(
    {"super", "locals", "vars", "dir", "globals", "eval", "exec", "breakpoint", "_getframe", "currentframe"}
)
_FRAME_GETTERS: Final = frozenset({"_getframe", "currentframe"})
_NAME_LOADS: Final = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS"})
_ATTRIBUTE_LOADS: Final = frozenset({"LOAD_ATTR", "LOAD_METHOD"})

_WITH_ENTER: Final = frozenset({"SETUP_WITH", "SETUP_ASYNC_WITH", "BEFORE_WITH", "BEFORE_ASYNC_WITH"})


# -- the code tree --------------------------------------------------------------


def code_children(code: types.CodeType) -> Iterator[tuple[str, types.CodeType]]:
    """Code objects in ``co_consts`` with unique names (``name#k`` for repeats)."""
    seen: dict[str, int] = {}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            count = seen.get(const.co_name, 0)
            seen[const.co_name] = count + 1
            yield (const.co_name if count == 0 else f"{const.co_name}#{count}"), const


def walk_code(
    code: types.CodeType, path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], types.CodeType]]:
    yield path, code
    for name, child in code_children(code):
        yield from walk_code(child, (*path, name))


def code_tree(fn: types.FunctionType) -> dict[tuple[str, ...], types.CodeType]:
    """Code path -> code object for `fn` and all code nested in it, parents first.

    Observers use it to name the code object an event came from.
    """
    check_function(fn)
    return dict(walk_code(fn.__code__, (fn.__code__.co_name,)))


def check_function(fn: object) -> None:
    if not isinstance(fn, types.FunctionType):
        raise ConfigError(
            f"rewrite needs a plain Python function, got {type(fn).__name__} {fn!r}; "
            "pass the underlying function (e.g. method.__func__)"
        )


# -- provenance -----------------------------------------------------------------

# A stack slot's provenance: every (offset of the pushing instruction, index of
# the slot among that instruction's pushes) that may have produced it.
_Slot = frozenset[tuple[int, int]]
_State = tuple[_Slot, ...]
_UNKNOWN: Final[_Slot] = frozenset({(-1, 0)})  # pushed by unwinding or before the code started

_ROTATIONS: Final = {"ROT_TWO": 2, "ROT_THREE": 3, "ROT_FOUR": 4}


class _Provenance:
    """For every reachable instruction: the provenance of each stack slot before it.

    A forward worklist over `CodeInfo`'s edges; at a merge the provenance sets
    are united, so the pass terminates and "one producer" means "on every path".
    """

    def __init__(self, info: CodeInfo) -> None:
        self.info = info
        self.before: dict[int, _State] = {}
        if info.order:
            first = info.order[0]
            self._run(first, (_UNKNOWN,) * (info.instrs[first].depth or 0))

    def _run(self, first: int, state: _State) -> None:
        work = [first] if self._merge(first, state) else []
        while work:
            off = work.pop()
            for dest, after in self._edges(off):
                if self._merge(dest, after):
                    work.append(dest)

    def _edges(self, off: int) -> Iterator[tuple[int, _State]]:
        ins, state = self.info.instrs[off], self.before[off]
        if ins.next is not None:
            yield ins.next, _after(off, ins.opname, ins.arg, state, ins.pops, ins.pushes)
        if ins.target is not None:
            yield ins.target, _after(off, ins.opname, ins.arg, state, ins.jump_pops, ins.jump_pushes)
        handler = self.info.handler_at(off)
        if handler is not None:  # unwinding keeps `depth` slots, then pushes the exception (and lasti)
            if len(state) < handler.depth:
                raise UnsupportedCodeError(f"{self.info.code.co_name} @{off}: handler depth {handler.depth}")
            yield handler.target, state[: handler.depth] + (_UNKNOWN,) * handler.pushed

    def _merge(self, off: int, state: _State) -> bool:
        """Unite `state` into the state before `off`; True if that changed it."""
        old = self.before.get(off)
        if old is None:
            self.before[off] = state
            return True
        if len(old) != len(state):
            where = f"{self.info.code.co_name} @{off}"
            raise UnsupportedCodeError(f"{where}: reached with stack depths {len(old)} and {len(state)}")
        if all(new <= mine for new, mine in zip(state, old, strict=True)):
            return False
        self.before[off] = tuple(mine | new for mine, new in zip(old, state, strict=True))
        return True

    def producers(self, off: int, depth: int) -> _Slot | None:
        """Provenance of the slot `depth` from the top (1 = top) before `off`; None if unreachable."""
        state = self.before.get(off)
        if state is not None and len(state) < depth:
            raise UnsupportedCodeError(f"{self.info.code.co_name} @{off}: no slot {depth} deep")
        return None if state is None else state[-depth]


def _after(off: int, name: str, arg: int | None, state: _State, pops: int, pushes: int) -> _State:
    """The stack after one instruction: permutations by hand, anything else pushes new slots."""
    if name == "SWAP":
        assert arg is not None
        slots = list(state)
        slots[-1], slots[-arg] = slots[-arg], slots[-1]
        return tuple(slots)
    if name == "COPY":
        assert arg is not None
        return (*state, state[-arg])
    if name == "DUP_TOP":
        return (*state, state[-1])
    if name == "DUP_TOP_TWO":
        return state + state[-2:]
    if name in _ROTATIONS or name == "ROT_N":
        n = arg if name == "ROT_N" else _ROTATIONS[name]
        assert n is not None
        return (*state[:-n], state[-1], *state[-n:-1])
    fresh = tuple(frozenset({(off, k)}) for k in range(pushes))
    return state[: len(state) - pops] + fresh


# -- finding and judging call sites ------------------------------------------------


# How a call's callee sits on the stack: "plain" ([NULL, f]; 3.10 [f]), "method"
# (a method loader's pair, normalised first), "self" ([f, arg0] -- no NULL).
_Form = Literal["plain", "method", "self"]


@dataclass(frozen=True)
class Call:
    """One call instruction of the original code and what rewriting it takes."""

    offset: int
    line: int | None
    form: _Form = "plain"
    loader: int | None = None  # method loader to turn into an attribute load
    drop: tuple[int, ...] = ()  # PRECALL / KW_NAMES instructions the replacement supersedes
    reason: str | None = None  # why the site is refused; None: it can be rewritten


def find_calls(code: types.CodeType) -> list[Call]:
    """Every call instruction of `code` (not nested code), judged, in offset order."""
    try:
        info = code_info(code)
        return _judged(info, _Provenance(info))
    except UnsupportedCodeError as exc:  # the analysis failed: refuse every site of this code
        return [Call(off, line, reason=f"unsupported stack shape ({exc})") for off, line in _dis_calls(code)]


def map_consumers(code: types.CodeType) -> list[int]:
    """The offsets of the calls of `code` (not nested code) made on one positional argument that is the
    result of a call of the name `map`, such as ``list(map(f, docs))`` or ``"".join(map(f, docs))``, and
    that can be rewritten (see `execute.fanout`)."""
    if "map" not in code.co_names:
        return []
    try:
        info = code_info(code)
        prov = _Provenance(info)
        index_of = {off: i for i, off in enumerate(info.order)}
        calls = _judged(info, prov)
        return [call.offset for call in calls if call.reason is None and _of_map(info, prov, index_of, call)]
    except UnsupportedCodeError:
        return []


class Named(NamedTuple):
    """A call whose callable is what a dotted name holds: a global's (``summarize_all``,
    ``helpers.summarize``) or, `local`, a local variable's (``pipe.run``, ``self.summarize``);
    ``()`` stands for what a call of the name before it gives (``Pipe(llm).run``)."""

    offset: int
    local: bool
    names: tuple[str, ...]


def named_callees(code: types.CodeType) -> list[Named]:
    """The calls of `code` (not nested code) that can be rewritten and whose callable is, on every
    path, what a dotted name holds (see `Named`, and `execute.follow`)."""
    try:
        info = code_info(code)
        prov = _Provenance(info)
        index_of = {off: i for i, off in enumerate(info.order)}
        named = []
        for call in _judged(info, prov):
            name = _callee_name(info, prov, index_of[call.offset]) if call.reason is None else None
            if name is not None:
                named.append(Named(call.offset, *name))
        return named
    except UnsupportedCodeError:
        return []


def _callee_name(info: CodeInfo, prov: _Provenance, index: int) -> tuple[bool, tuple[str, ...]] | None:
    ins = info.instrs[info.order[index]]
    at, _ = _state_point(info, index)
    if at is None:
        return None
    low, high = _callee_depths(ins.opname, ins.arg or 0)
    slots = [prov.producers(at, depth) for depth in (low, high) if depth]
    shape = _shape(info, ins.opname, [slot for slot in slots if slot is not None])
    if shape is None or len(shape[1]) != 1:
        return None
    ((loader, _),) = shape[1]
    return _dotted(info, prov, loader)


def _dotted(
    info: CodeInfo, prov: _Provenance, off: int, hops: int = 0
) -> tuple[bool, tuple[str, ...]] | None:
    """The dotted name an instruction loads (a global or local variable, or an attribute of one,
    `a.b.c`; `()` for what a call of a dotted name gives, `Pipe(llm).run` -> `Pipe`, `()`, `run`),
    and whether it starts with a local's, or None."""
    ins = info.instrs[off]
    if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
        return False, (str(ins.argval),)
    if ins.opname in ("LOAD_FAST", "LOAD_FAST_CHECK"):
        return True, (str(ins.argval),)
    if ins.opname in CALL_OPS and hops < 3:
        made = _callee_name(info, prov, info.order.index(off))
        return None if made is None else (made[0], (*made[1], "()"))
    if ins.opname not in _ATTRIBUTE_LOADS or hops >= 3:
        return None
    receiver = prov.producers(off, 1)
    if receiver is None or len(receiver) != 1:
        return None
    ((base_off, _),) = receiver
    base = _dotted(info, prov, base_off, hops + 1)
    return None if base is None else (base[0], (*base[1], str(ins.argval)))


def _judged(info: CodeInfo, prov: _Provenance) -> list[Call]:
    """Every call instruction of the code, judged, in offset order."""
    return [_judge(info, prov, i) for i, off in enumerate(info.order) if info.instrs[off].opname in CALL_OPS]


def _of_map(info: CodeInfo, prov: _Provenance, index_of: dict[int, int], call: Call) -> bool:
    """Is `call` made on one positional argument, the result of a call of the name `map`
    without keywords?"""
    argument = _positional_one(info, prov, index_of[call.offset])
    if argument is None or len(argument) != 1:
        return False
    ((made, _),) = argument
    if made not in index_of or _positional_one(info, prov, index_of[made], count=None) is None:
        return False
    at, _ = _state_point(info, index_of[made])
    ins = info.instrs[made]
    low, high = _callee_depths(ins.opname, ins.arg or 0)
    for depth in (low, high):
        slot = prov.producers(at, depth) if depth and at is not None else None
        if slot and len(slot) == 1:
            ((loader, _),) = slot
            if info.instrs[loader].opname in _NAME_LOADS and info.instrs[loader].argval == "map":
                return True
    return False


def _positional_one(info: CodeInfo, prov: _Provenance, index: int, count: int | None = 1) -> _Slot | None:
    """For a call of positional arguments only (`count` of them, if given): its top stack slot."""
    ins = info.instrs[info.order[index]]
    if ins.opname not in ("CALL", "CALL_FUNCTION", "CALL_METHOD") or (count is not None and ins.arg != count):
        return None
    at, drop = _state_point(info, index)
    if at is None or any(info.instrs[d].opname == "KW_NAMES" for d in drop):
        return None
    return prov.producers(at, 1)


def _dis_calls(code: types.CodeType) -> Iterator[tuple[int, int | None]]:
    """(offset, line) of each call instruction, straight from `dis` (when codeinfo cannot help)."""
    for ins, line in instructions_with_lines(code):
        if ins.opname in CALL_OPS:
            yield ins.offset, line


def _judge(info: CodeInfo, prov: _Provenance, index: int) -> Call:
    """Decide whether the call at ``info.order[index]`` can be rewritten, and how."""
    off = info.order[index]
    ins = info.instrs[off]
    at, drop = _state_point(info, index)
    if at is None:
        return Call(off, ins.line, reason="unsupported stack shape (no PRECALL before CALL)")
    low, high = _callee_depths(ins.opname, ins.arg or 0)
    slots = [prov.producers(at, d) for d in (low, high) if d]
    if any(slot is None for slot in slots):
        return Call(off, ins.line, reason="unreachable code")
    known = [s for s in slots if s is not None]
    reason = _compiler_generated(info, prov, frozenset().union(*known))
    if reason is not None:
        return Call(off, ins.line, reason=reason)
    shape = _shape(info, ins.opname, known)
    if shape is None:
        return Call(off, ins.line, reason="unsupported stack shape")
    form, callee, loader = shape
    for p, _ in callee:
        loads, name = info.instrs[p].opname, info.instrs[p].argval
        if (loads in _NAME_LOADS and name in FRAME_SENSITIVE) or (
            loads in _ATTRIBUTE_LOADS and name in _FRAME_GETTERS
        ):
            return Call(off, ins.line, reason=f"frame-sensitive builtin {name}()")
    return Call(off, ins.line, form=form, loader=loader, drop=drop)


def _state_point(info: CodeInfo, index: int) -> tuple[int | None, tuple[int, ...]]:
    """Where to read the call's stack, and the KW_NAMES/PRECALL the rewrite removes.

    3.11 splits a call into ``[KW_NAMES] PRECALL CALL``; the stack is read before
    PRECALL (it pops the arguments in `bytecode`'s model).  3.12 keeps
    ``[KW_NAMES] CALL``: KW_NAMES must go, or the inserted CALL would consume it.
    """
    off = info.order[index]
    ins = info.instrs[off]
    if ins.opname != "CALL" or VERSION >= (3, 13) or VERSION < (3, 11):
        return off, ()
    at, drop = off, tuple[int, ...]()
    if VERSION == (3, 11):
        prev = info.instrs[info.order[index - 1]] if index else None
        if prev is None or prev.opname != "PRECALL" or prev.arg != ins.arg:
            return None, ()
        at, drop, index = prev.offset, (prev.offset,), index - 1
    if index and info.instrs[info.order[index - 1]].opname == "KW_NAMES":
        drop = (*drop, info.order[index - 1])
    return at, drop


def _callee_depths(opname: str, n: int) -> tuple[int, int]:
    """Depths from the top of the two callee slots (low, high); 0 = no such slot.

    3.10 CALL_FUNCTION* have one slot (the callable); CALL_METHOD and every
    3.11+ call have two: ``[NULL|meth, callable|self]`` (3.11/3.12) or
    ``[callable|meth, NULL|self]`` (3.13).
    """
    if opname == "CALL_FUNCTION_EX":
        extra = 1 + (n & 1)  # the sequence, and the kwargs dict if present
        return (0, extra + 1) if VERSION < (3, 11) else (extra + 2, extra + 1)
    if opname == "CALL_FUNCTION":
        return 0, n + 1
    if opname == "CALL_FUNCTION_KW":
        return 0, n + 2  # the keyword-names tuple is on top
    if opname == "CALL_KW":
        return n + 3, n + 2
    return n + 2, n + 1  # CALL, CALL_METHOD


def _compiler_generated(info: CodeInfo, prov: _Provenance, producers: _Slot) -> str | None:
    """A reason if a callee slot comes from compiler machinery rather than user code."""
    for p, k in producers:
        if p < 0:
            continue
        opname = info.instrs[p].opname
        if opname in _WITH_ENTER and k == 0:  # push 0 is __exit__ / __aexit__
            return "with-statement exit"
        if opname == "LOAD_BUILD_CLASS":
            return "compiler-generated call (class creation)"
        if opname == "LOAD_ASSERTION_ERROR":
            return "compiler-generated call (assert message)"
        made = _made_code(info, prov, p)
        if made is not None and made.co_name in COMPREHENSIONS:
            return "compiler-generated call (comprehension)"
        if made is not None and made.co_name.startswith("<generic parameters of "):
            return "compiler-generated call (type parameters)"  # 3.12+ `def f[T]()`, `class C[T]`
    return None


def _made_code(info: CodeInfo, prov: _Provenance, off: int, hops: int = 0) -> types.CodeType | None:
    """The code object of the function a MAKE_FUNCTION (or 3.13 SET_FUNCTION_ATTRIBUTE) builds."""
    ins = info.instrs[off]
    if ins.opname == "LOAD_CONST" and isinstance(ins.argval, types.CodeType):
        return ins.argval
    if ins.opname not in ("MAKE_FUNCTION", "SET_FUNCTION_ATTRIBUTE") or hops > 4:
        return None
    # 3.10 MAKE_FUNCTION has the qualified name on top of the code.
    slot = prov.producers(off, 2 if ins.opname == "MAKE_FUNCTION" and VERSION < (3, 11) else 1)
    for p, _ in slot or ():
        code = _made_code(info, prov, p, hops + 1) if p >= 0 else None
        if code is not None:
            return code
    return None


def _shape(info: CodeInfo, opname: str, slots: Sequence[_Slot]) -> tuple[_Form, _Slot, int | None] | None:
    """(form, producers of the callable, method loader) of a call, or None if unprovable.

    Forms: "plain" -- 3.10's single callable slot, or a proven NULL beside the
    callable; "method" -- both slots from one method loader; "self" -- two
    slots that are never NULL, which CALL takes as callable + first argument
    (3.11+ decorators: ``[dec, func]``).
    """
    if len(slots) == 1:
        return None if slots[0] >= _UNKNOWN else ("plain", slots[0], None)
    low, high = slots
    loader = _method_pair(info, low, high)
    if loader is not None:
        return "method", frozenset({(loader, 0)}), loader
    if VERSION < (3, 11):
        return None  # 3.10: two slots means CALL_METHOD, which needs its LOAD_METHOD
    null, callee = (high, low) if VERSION >= (3, 13) else (low, high)
    if all(_pushes_null(info, p, k) for p, k in null):
        return None if callee >= _UNKNOWN else ("plain", callee, None)
    if opname == "CALL_FUNCTION_EX" or any(_may_push_null(info, p) for p, _ in low | high):
        return None
    return "self", low, None


def _method_pair(info: CodeInfo, low: _Slot, high: _Slot) -> int | None:
    """The loader's offset if both slots come from one method-loading instruction."""
    if len(low) != 1 or len(high) != 1:
        return None
    (p, k), (q, j) = next(iter(low)), next(iter(high))
    if p != q or (k, j) != (0, 1) or p < 0:
        return None
    ins = info.instrs[p]
    if ins.opname == "LOAD_METHOD":
        return p
    if ins.opname in ("LOAD_ATTR", "LOAD_SUPER_ATTR") and VERSION >= (3, 12) and (ins.arg or 0) & 1:
        return p
    return None


def _may_push_null(info: CodeInfo, off: int) -> bool:
    """Whether the instruction at `off` (-1: unknown) can push a NULL at all."""
    if off < 0:
        return True
    ins = info.instrs[off]
    flagged = VERSION >= (3, 11) if ins.opname == "LOAD_GLOBAL" else VERSION >= (3, 12)
    if ins.opname in ("LOAD_GLOBAL", "LOAD_ATTR", "LOAD_SUPER_ATTR"):
        return flagged and bool((ins.arg or 0) & 1)
    return ins.opname in ("PUSH_NULL", "LOAD_METHOD")


def _pushes_null(info: CodeInfo, off: int, k: int) -> bool:
    """Whether push number `k` of the instruction at `off` is a NULL."""
    if off < 0:
        return False
    ins = info.instrs[off]
    if ins.opname == "PUSH_NULL":
        return True
    # 3.11+ LOAD_GLOBAL with the low bit set pushes NULL below (3.13: above) the global.
    null_index = 1 if VERSION >= (3, 13) else 0
    return ins.opname == "LOAD_GLOBAL" and VERSION >= (3, 11) and bool((ins.arg or 0) & 1) and k == null_index

"""Rewrite: a clone of a function whose call sites go through a dispatcher.

`rewrite(fn, dispatch)` returns a copy of `fn` in which every call site (or
those named in ``only``) calls ``dispatch(key, callee, args, kwargs)`` instead
of ``callee(*args, **kwargs)``.  The dispatcher decides what happens: call
through, record, or serve a result computed ahead.  Its return value (or
exception) becomes the call's result (or exception), so the clone behaves like
`fn` whenever the dispatcher calls through.

How a site is rewritten (the measured recipe of research/bytecode-notes.md §4):

1. *Provenance.*  A worklist pass over `codeinfo`'s static description of the
   ORIGINAL code records, for every stack slot, which instructions may have
   pushed it.  A call is rewritten only if that proves where its callable is:
   on 3.11+ the NULL slot beside it was pushed by ``PUSH_NULL`` or a NULL-pushing
   ``LOAD_GLOBAL``, or both slots come from one method loader.
2. *Method loads become attribute loads.*  Whether ``LOAD_METHOD`` (or
   ``LOAD_ATTR``/``LOAD_SUPER_ATTR`` with the method bit) leaves ``[meth, self]``
   or ``[NULL, attr]`` is decided at run time, so no code placed at the call
   could know which slot holds the callable.  The loader is turned into a plain
   attribute load (plus ``PUSH_NULL`` on 3.11+): same lookup at the same moment,
   and the callee becomes the bound method.
3. *The call instruction is replaced* by "pack the arguments (and keyword
   names) into one tuple, call ``site.call(callee, packed)``" (or
   ``site.call_ex(callee, seq, kwargs)`` for ``f(*a, **k)``).  Every inserted
   instruction carries the location of the original call, so tracebacks point
   at the same line (and columns, on 3.11+).

Site keys are ``(code path, offset)``: the chain of code-object names from the
function down to the code object holding the call, and the `dis` offset of the
call instruction in the ORIGINAL code, which is what ``sys.monitoring`` and
``frame.f_lasti`` report for it.  Nested code (comprehensions on 3.10/3.11,
generator expressions, lambdas, nested functions and classes) is rewritten
recursively.  When two code objects under one parent share a name (two
lambdas), the later ones are named ``"<lambda>#1"``, ``"<lambda>#2"``, ... in
``co_consts`` order, so keys stay unique; `code_tree` gives the mapping.

Refused, and left untouched (see `Refusal`): calls whose callee slots the
provenance pass cannot prove; compiler-generated calls (invoking a
comprehension's function, a ``with``/``async with`` exit, ``__build_class__``);
calls of a frame-sensitive builtin loaded by name (`FRAME_SENSITIVE`), which
would see the dispatcher's frame instead of the caller's.  A frame-sensitive
builtin reached through another name (``b = locals; b()``) cannot be detected.

Rewritten code holds non-marshallable constants (the sites' bound methods):
never write it to a ``.pyc`` or pickle it.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from bytecode import Bytecode, Instr

from xcs_bc.codeinfo import CodeInfo, code_info
from xcs_bc.errors import ConfigError, UnsupportedCodeError

__all__ = [
    "FRAME_SENSITIVE",
    "Dispatch",
    "Refusal",
    "Rewritten",
    "SiteKey",
    "call_sites",
    "code_tree",
    "rewrite",
]

SiteKey = tuple[tuple[str, ...], int]
"""(code path, offset of the call instruction in the original code)."""

_V: Final = sys.version_info[:2]

# Builtins that look at the frame calling them: routed through a dispatcher
# they would see the dispatcher's frame (zero-argument super() raised
# "RuntimeError: super(): __class__ cell not found" on 3.10/3.11).
FRAME_SENSITIVE: Final = frozenset({"super", "locals", "vars", "dir", "globals", "eval", "exec", "breakpoint"})

_CALLS: Final = frozenset({"CALL", "CALL_KW", "CALL_FUNCTION", "CALL_FUNCTION_KW", "CALL_METHOD", "CALL_FUNCTION_EX"})
_WITH_ENTER: Final = frozenset({"SETUP_WITH", "SETUP_ASYNC_WITH", "BEFORE_WITH", "BEFORE_ASYNC_WITH"})
_COMPREHENSIONS: Final = frozenset({"<listcomp>", "<setcomp>", "<dictcomp>", "<genexpr>"})


class Dispatch(Protocol):
    """What a rewritten call site calls instead of ``fn(*args, **kwargs)``."""

    def __call__(self, key: SiteKey, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any: ...


@dataclass(frozen=True)
class Refusal:
    """A call site left unchanged, and why."""

    key: SiteKey
    line: int | None
    reason: str


@dataclass(frozen=True)
class Rewritten:
    """The clone, the sites it dispatches (key -> source line), and the sites refused."""

    function: types.FunctionType
    sites: dict[SiteKey, int | None]
    refused: tuple[Refusal, ...]


# -- run time -----------------------------------------------------------------


class _Site:
    """The constant a rewritten call site calls; turns the packed stack into args/kwargs."""

    __slots__ = ("dispatch", "key")

    def __init__(self, key: SiteKey, dispatch: Dispatch) -> None:
        self.key = key
        self.dispatch = dispatch

    def call(self, fn: Any, packed: tuple[Any, ...]) -> Any:
        """``packed`` is (*positional, *keyword values, keyword names)."""
        names: tuple[str, ...] = packed[-1]
        if not names:
            return self.dispatch(self.key, fn, packed[:-1], {})
        split = len(packed) - 1 - len(names)
        return self.dispatch(self.key, fn, packed[:split], dict(zip(names, packed[split:-1])))

    def call_ex(self, fn: Any, seq: Any, kw: Any) -> Any:
        """``fn(*seq, **kw)``; ``kw`` is None when the call has no ``**``."""
        args = seq if type(seq) is tuple else _star_args(fn, seq)
        kwargs: dict[str, Any] = {} if kw is None else _star_kwargs(fn, kw)
        return self.dispatch(self.key, fn, args, kwargs)


def _function_str(fn: Any) -> str:
    """How CPython names a callee in call errors (``_PyObject_FunctionStr``)."""
    qualname = getattr(fn, "__qualname__", None)
    if not isinstance(qualname, str):
        return str(fn)
    module = getattr(fn, "__module__", None)
    if module is not None and module != "builtins":
        return f"{module}.{qualname}()"
    return f"{qualname}()"


def _star_args(fn: Any, seq: Any) -> tuple[Any, ...]:
    """``tuple(seq)`` with the error CPython's CALL_FUNCTION_EX gives for a non-iterable."""
    cls = type(seq)
    is_sequence = hasattr(cls, "__getitem__") and not issubclass(cls, dict)
    if not hasattr(cls, "__iter__") and not is_sequence:
        raise TypeError(f"{_function_str(fn)} argument after * must be an iterable, not {cls.__name__}")
    return tuple(seq)


def _star_kwargs(fn: Any, kw: Any) -> dict[str, Any]:
    """A fresh dict of ``kw`` (the dispatcher may keep it), erroring like CPython for a non-mapping."""
    if type(kw) is dict:
        return dict(kw)
    if not hasattr(kw, "keys"):
        raise TypeError(f"{_function_str(fn)} argument after ** must be a mapping, not {type(kw).__name__}")
    return {key: kw[key] for key in kw.keys()}  # noqa: SIM118 - a mapping need not iterate its keys


# -- the code tree --------------------------------------------------------------


def _children(code: types.CodeType) -> Iterator[tuple[str, types.CodeType]]:
    """Code objects in ``co_consts`` with unique names (``name#k`` for repeats)."""
    seen: dict[str, int] = {}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            count = seen.get(const.co_name, 0)
            seen[const.co_name] = count + 1
            yield (const.co_name if count == 0 else f"{const.co_name}#{count}"), const


def _walk(code: types.CodeType, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], types.CodeType]]:
    yield path, code
    for name, child in _children(code):
        yield from _walk(child, (*path, name))


def code_tree(fn: types.FunctionType) -> dict[tuple[str, ...], types.CodeType]:
    """Code path -> code object for `fn` and all code nested in it, parents first.

    Observers use it to name the code object an event came from.
    """
    _check_function(fn)
    return dict(_walk(fn.__code__, (fn.__code__.co_name,)))


def _check_function(fn: object) -> None:
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
        if handler is not None:  # nothing is known about what unwinding leaves
            yield handler.target, (_UNKNOWN,) * (handler.depth + handler.pushed)

    def _merge(self, off: int, state: _State) -> bool:
        """Unite `state` into the state before `off`; True if that changed it."""
        old = self.before.get(off)
        if old is None:
            self.before[off] = state
            return True
        if len(old) != len(state):
            raise UnsupportedCodeError(f"{self.info.code.co_name} @{off}: stack depths {len(old)} and {len(state)}")
        if all(new <= mine for new, mine in zip(state, old)):
            return False
        self.before[off] = tuple(mine | new for mine, new in zip(old, state))
        return True

    def producers(self, off: int, depth: int) -> _Slot | None:
        """Provenance of the slot `depth` from the top (1 = top) before `off`; None if unreachable."""
        state = self.before.get(off)
        return None if state is None or len(state) < depth else state[-depth]


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
    if name in ("DUP_TOP", "DUP_TOP_TWO"):
        return state + state[-(pushes - pops) :]
    if name in _ROTATIONS or name == "ROT_N":
        n = arg if name == "ROT_N" else _ROTATIONS[name]
        assert n is not None
        return (*state[:-n], state[-1], *state[-n:-1])
    fresh = tuple(frozenset({(off, k)}) for k in range(pushes))
    return state[: len(state) - pops] + fresh


# -- finding and judging call sites ------------------------------------------------


@dataclass(frozen=True)
class _Call:
    """One call instruction of the original code and what rewriting it takes."""

    offset: int
    line: int | None
    loader: int | None = None  # method loader to turn into an attribute load
    drop: tuple[int, ...] = ()  # PRECALL / KW_NAMES instructions the replacement supersedes
    reason: str | None = None  # why the site is refused; None: it can be rewritten


def _calls(code: types.CodeType) -> list[_Call]:
    """Every call instruction of `code` (not nested code), judged, in offset order."""
    try:
        info = code_info(code)
        prov = _Provenance(info)
    except UnsupportedCodeError as exc:
        return [_Call(off, line, reason=f"unsupported stack shape ({exc})") for off, line in _dis_calls(code)]
    calls = [_judge(info, prov, i) for i, off in enumerate(info.order) if info.instrs[off].opname in _CALLS]
    # A loader feeding two calls could not be normalised for one of them alone.
    loaders = [c.loader for c in calls if c.loader is not None]
    shared = {off for off in loaders if loaders.count(off) > 1}
    return [
        _Call(c.offset, c.line, reason="unsupported stack shape (shared method load)") if c.loader in shared else c
        for c in calls
    ]


def _dis_calls(code: types.CodeType) -> Iterator[tuple[int, int | None]]:
    """(offset, line) of each call instruction, straight from `dis` (when codeinfo cannot help)."""
    import dis

    line: int | None = None
    for ins in dis.get_instructions(code):
        if _V >= (3, 11):
            line = ins.positions.lineno if ins.positions else None
        elif ins.starts_line is not None:
            line = ins.starts_line
        if ins.opname in _CALLS:
            yield ins.offset, line


def _judge(info: CodeInfo, prov: _Provenance, index: int) -> _Call:
    """Decide whether the call at ``info.order[index]`` can be rewritten, and how."""
    off = info.order[index]
    ins = info.instrs[off]
    at, drop = _state_point(info, index)
    if at is None:
        return _Call(off, ins.line, reason="unsupported stack shape (no PRECALL before CALL)")
    low, high = _callee_depths(ins.opname, ins.arg or 0)
    slots = [prov.producers(at, d) for d in (low, high) if d]
    if any(slot is None for slot in slots):
        return _Call(off, ins.line, reason="unreachable code")
    known = [s for s in slots if s is not None]
    reason = _compiler_generated(info, prov, frozenset().union(*known))
    if reason is not None:
        return _Call(off, ins.line, reason=reason)
    loader, callee = _callee(info, known, null_high=_V >= (3, 13))
    if callee is None:
        return _Call(off, ins.line, reason="unsupported stack shape")
    for p, _ in callee:
        name = info.instrs[p].argval
        if info.instrs[p].opname in ("LOAD_GLOBAL", "LOAD_NAME") and name in FRAME_SENSITIVE:
            return _Call(off, ins.line, reason=f"frame-sensitive builtin {name}()")
    return _Call(off, ins.line, loader=loader, drop=drop)


def _state_point(info: CodeInfo, index: int) -> tuple[int | None, tuple[int, ...]]:
    """Where to read the call's stack, and the KW_NAMES/PRECALL the rewrite removes.

    3.11 splits a call into ``[KW_NAMES] PRECALL CALL``; the stack is read before
    PRECALL (it pops the arguments in `bytecode`'s model).  3.12 keeps
    ``[KW_NAMES] CALL``: KW_NAMES must go, or the inserted CALL would consume it.
    """
    off = info.order[index]
    ins = info.instrs[off]
    if ins.opname != "CALL" or _V >= (3, 13) or _V < (3, 11):
        return off, ()
    at, drop = off, ()
    if _V == (3, 11):
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
        return (0, extra + 1) if _V < (3, 11) else (extra + 2, extra + 1)
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
        made = _made_code(info, prov, p)
        if made is not None and made.co_name in _COMPREHENSIONS:
            return "compiler-generated call (comprehension)"
    return None


def _made_code(info: CodeInfo, prov: _Provenance, off: int, hops: int = 0) -> types.CodeType | None:
    """The code object of the function a MAKE_FUNCTION (or 3.13 SET_FUNCTION_ATTRIBUTE) builds."""
    ins = info.instrs[off]
    if ins.opname == "LOAD_CONST" and isinstance(ins.argval, types.CodeType):
        return ins.argval
    if ins.opname not in ("MAKE_FUNCTION", "SET_FUNCTION_ATTRIBUTE") or hops > 4:
        return None
    # 3.10 MAKE_FUNCTION has the qualified name on top of the code.
    slot = prov.producers(off, 2 if ins.opname == "MAKE_FUNCTION" and _V < (3, 11) else 1)
    for p, _ in slot or ():
        code = _made_code(info, prov, p, hops + 1) if p >= 0 else None
        if code is not None:
            return code
    return None


def _callee(info: CodeInfo, slots: Sequence[_Slot], null_high: bool) -> tuple[int | None, _Slot | None]:
    """(method loader to normalise or None, producers of the callable); (_, None) if unprovable."""
    if len(slots) == 2:
        low, high = slots
        loader = _method_pair(info, low, high)
        if loader is not None:
            return loader, frozenset({(loader, 0)})
        if _V < (3, 11):
            return None, None  # 3.10: two slots means CALL_METHOD, which needs its LOAD_METHOD
        null, callee = (high, low) if null_high else (low, high)
        if not all(_pushes_null(info, p, k) for p, k in null):
            return None, None
        slots = [callee]
    (callee,) = slots
    return None, (None if _UNKNOWN <= callee else callee)


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
    if ins.opname in ("LOAD_ATTR", "LOAD_SUPER_ATTR") and _V >= (3, 12) and (ins.arg or 0) & 1:
        return p
    return None


def _pushes_null(info: CodeInfo, off: int, k: int) -> bool:
    """Whether push number `k` of the instruction at `off` is a NULL."""
    if off < 0:
        return False
    ins = info.instrs[off]
    if ins.opname == "PUSH_NULL":
        return True
    # 3.11+ LOAD_GLOBAL with the low bit set pushes NULL below (3.13: above) the global.
    null_index = 1 if _V >= (3, 13) else 0
    return ins.opname == "LOAD_GLOBAL" and _V >= (3, 11) and bool((ins.arg or 0) & 1) and k == null_index

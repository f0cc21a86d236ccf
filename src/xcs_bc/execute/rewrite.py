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
   pushed it.  A call is rewritten only if that proves where its callable is.
   On 3.11+ a call has two callee slots; accepted are a NULL slot pushed by
   ``PUSH_NULL`` or a NULL-pushing ``LOAD_GLOBAL`` beside the callable; both
   slots from one method loader; or two slots no instruction on any path could
   have made NULL, which CALL runs as ``callable(arg0, ...)`` (decorators).
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
call instruction in the ORIGINAL code -- what ``sys.monitoring`` and
``frame.f_lasti`` report for it (but 3.12.1 sends no monitoring CALL event for
a ``CALL_FUNCTION_EX`` whose callee is a Python function; INSTRUCTION events
do fire).  Nested code (comprehensions on 3.10/3.11, generator expressions,
lambdas, nested functions and classes) is rewritten recursively.  When two code
objects under one parent share a name (two lambdas), the later ones are named
``"<lambda>#1"``, ``"<lambda>#2"``, ... in ``co_consts`` order, so keys stay
unique; `code_tree` gives the mapping.

Refused, and left untouched (see `Refusal`): calls whose callee slots the
provenance pass cannot prove; compiler-generated calls (invoking a
comprehension's function, a ``with``/``async with`` exit, ``__build_class__``,
an ``assert`` message, a 3.12 type-parameter scope); calls of a frame-sensitive
builtin loaded by name (`FRAME_SENSITIVE`), which would see the dispatcher's
frame instead of the caller's.  One reached through another name
(``b = locals; b()``) cannot be detected.

Known differences even when the dispatcher calls through: a callee that
inspects its caller's frame (``warnings.warn(stacklevel=2)``, logging's
``findCaller``) finds the dispatcher's frames there, and tracebacks show those
frames between the caller and the callee.  Rewrite the slow sites only
(``only=``), not every call.  Rewritten code holds non-marshallable constants
(the sites' bound methods): never write it to a ``.pyc`` or pickle it.
"""

from __future__ import annotations

import dis
import types
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

from bytecode import Bytecode, Instr

from xcs_bc._compat import CALL_OPS, COMPREHENSIONS, VERSION, instructions_with_lines
from xcs_bc.build.codeinfo import CodeInfo, code_info
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
        return self.dispatch(self.key, fn, packed[:split], dict(zip(names, packed[split:-1], strict=True)))

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
class _Call:
    """One call instruction of the original code and what rewriting it takes."""

    offset: int
    line: int | None
    form: _Form = "plain"
    loader: int | None = None  # method loader to turn into an attribute load
    drop: tuple[int, ...] = ()  # PRECALL / KW_NAMES instructions the replacement supersedes
    reason: str | None = None  # why the site is refused; None: it can be rewritten


def _calls(code: types.CodeType) -> list[_Call]:
    """Every call instruction of `code` (not nested code), judged, in offset order."""
    try:
        info = code_info(code)
        prov = _Provenance(info)
        return [
            _judge(info, prov, i) for i, off in enumerate(info.order) if info.instrs[off].opname in CALL_OPS
        ]
    except UnsupportedCodeError as exc:  # the analysis failed: refuse every site of this code
        return [_Call(off, line, reason=f"unsupported stack shape ({exc})") for off, line in _dis_calls(code)]


def _dis_calls(code: types.CodeType) -> Iterator[tuple[int, int | None]]:
    """(offset, line) of each call instruction, straight from `dis` (when codeinfo cannot help)."""
    for ins, line in instructions_with_lines(code):
        if ins.opname in CALL_OPS:
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
    shape = _shape(info, ins.opname, known)
    if shape is None:
        return _Call(off, ins.line, reason="unsupported stack shape")
    form, callee, loader = shape
    for p, _ in callee:
        loads, name = info.instrs[p].opname, info.instrs[p].argval
        if (loads in _NAME_LOADS and name in FRAME_SENSITIVE) or (
            loads in _ATTRIBUTE_LOADS and name in _FRAME_GETTERS
        ):
            return _Call(off, ins.line, reason=f"frame-sensitive builtin {name}()")
    return _Call(off, ins.line, form=form, loader=loader, drop=drop)


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


# -- editing -------------------------------------------------------------------------


class _Editor:
    """Rewrites one function's code tree; collects the sites it rewrote and refused."""

    def __init__(self, dispatch: Dispatch, only: frozenset[SiteKey] | None) -> None:
        self.dispatch = dispatch
        self.only = only
        self.sites: dict[SiteKey, int | None] = {}
        self.refused: list[Refusal] = []

    def code(self, code: types.CodeType, path: tuple[str, ...]) -> types.CodeType:
        """`code` with its selected sites (and those of nested code) rewritten; `code` itself if none."""
        calls = _calls(code)
        chosen = self._choose(calls, path)  # before recursing: results come out parents first
        nested: dict[int, types.CodeType] = {}
        for name, child in _children(code):
            new = self.code(child, (*path, name))
            if new is not child:
                nested[id(child)] = new
        if not chosen and not nested:
            return code
        sites = {call.offset: _Site((path, call.offset), self.dispatch) for call in chosen}
        return _rebuild(code, calls, chosen, sites, nested)

    def _choose(self, calls: list[_Call], path: tuple[str, ...]) -> list[_Call]:
        """The sites to rewrite among `calls`; records them, and refusals, in offset order."""
        chosen = []
        for call in calls:
            key = (path, call.offset)
            if self.only is not None and key not in self.only:
                continue
            if call.reason is not None:
                self.refused.append(Refusal(key, call.line, call.reason))
                continue
            self.sites[key] = call.line
            chosen.append(call)
        return chosen


def _rebuild(
    code: types.CodeType,
    calls: list[_Call],
    chosen: list[_Call],
    sites: dict[int, _Site],
    nested: dict[int, types.CodeType],
) -> types.CodeType:
    """`code` with the `chosen` calls dispatched and nested code objects (by id) replaced."""
    bc = Bytecode.from_code(code)
    instrs = _instructions(code, bc)
    edits: dict[int, list[Instr]] = {}
    for call in chosen:
        edits.update(_site_edits(instrs, call, sites[call.offset]))
    edits.update(_loader_partners(instrs, calls, chosen))
    for off, ins in instrs.items():
        if ins.name == "LOAD_CONST" and id(ins.arg) in nested:
            edits[off] = [_op("LOAD_CONST", ins, nested[id(ins.arg)])]
    replaced = {id(instrs[off]): new for off, new in edits.items()}
    items: list[Any] = []
    for item in bc:
        items.extend(replaced.get(id(item), [item]))
    bc[:] = items
    # `bytecode` numbers locals in order of first use after the arguments;
    # seeding it with every original local keeps co_varnames (and so the
    # order of locals() and frame.f_locals) exactly as it was.
    bc.argnames = list(code.co_varnames)
    try:
        result: types.CodeType = bc.to_code()
    except Exception as exc:  # a bug here must not pass for the user's code being wrong
        where = f"{code.co_filename}:{code.co_firstlineno} ({code.co_name})"
        raise UnsupportedCodeError(f"{where}: the rewritten code does not assemble: {exc!r}") from exc
    return result


def _instructions(code: types.CodeType, bc: Bytecode) -> dict[int, Instr]:
    """Original `dis` offset -> the same instruction in `bc`.

    `bytecode` drops CACHE entries and folds EXTENDED_ARG prefixes, exactly the
    entries `dis` does not count as instructions, so the two sequences align.
    """
    real = [(ins.offset, ins.opname) for ins in dis.get_instructions(code) if ins.opname != "EXTENDED_ARG"]
    mine = [item for item in bc if isinstance(item, Instr)]
    if [name for _, name in real] != [item.name for item in mine]:
        where = f"{code.co_filename}:{code.co_firstlineno} ({code.co_name})"
        raise UnsupportedCodeError(f"{where}: bytecode and dis disagree on the instructions")
    return {off: item for (off, _), item in zip(real, mine, strict=True)}


def _site_edits(instrs: dict[int, Instr], call: _Call, site: _Site) -> dict[int, list[Instr]]:
    """Offset -> replacement instructions, for one site."""
    edits: dict[int, list[Instr]] = {off: [] for off in call.drop}
    kwnames: tuple[str, ...] = ()
    for off in call.drop:
        if instrs[off].name == "KW_NAMES":
            kwnames = _arg(instrs[off])
    if call.loader is not None:
        edits[call.loader] = _attribute_load(instrs[call.loader])
    edits[call.offset] = _dispatching_call(instrs[call.offset], site, kwnames, call.form == "self")
    return edits


def _loader_partners(
    instrs: dict[int, Instr], calls: list[_Call], chosen: list[_Call]
) -> dict[int, list[Instr]]:
    """3.10: CALL_METHODs left alone whose LOAD_METHOD was normalised become CALL_FUNCTIONs.

    The compiler duplicates short tails, so one loader can feed several calls
    (``self.write(A if c else B)`` has a CALL_METHOD on each branch).  Once the
    loader pushes only the bound method, a call that is not dispatched must take
    the plain form; on 3.11+ ``[NULL, bound]`` already is the plain form.
    """
    if VERSION >= (3, 11):
        return {}
    normalised = {c.loader for c in chosen if c.loader is not None}
    done = {c.offset for c in chosen}
    return {
        c.offset: [_op("CALL_FUNCTION", instrs[c.offset], _arg(instrs[c.offset]))]
        for c in calls
        if c.loader in normalised and c.offset not in done
    }


def _arg(ins: Instr) -> Any:
    """An instruction's argument (`bytecode` types it as a union of every possible kind)."""
    return ins.arg


_NO_ARG: Final = object()


def _op(name: str, at: Instr, arg: Any = _NO_ARG) -> Instr:
    """An instruction at the location of `at` (traceback lines and columns stay the same)."""
    if arg is _NO_ARG:
        return Instr(name, location=at.location)
    return Instr(name, arg, location=at.location)


def _attribute_load(loader: Instr) -> list[Instr]:
    """A method load turned into an attribute load leaving ``[NULL, bound]`` (3.13 ``[bound, NULL]``)."""
    arg = _arg(loader)
    if loader.name == "LOAD_METHOD":
        plain = _op("LOAD_ATTR", loader, arg)
    elif loader.name == "LOAD_ATTR":
        plain = _op("LOAD_ATTR", loader, (False, arg[1]))
    else:  # LOAD_SUPER_ATTR: (method bit, two-argument bit, name)
        plain = _op("LOAD_SUPER_ATTR", loader, (False, arg[1], arg[2]))
    if VERSION < (3, 11):
        return [plain]  # 3.10: the CALL_METHOD is replaced by a plain call
    if VERSION >= (3, 13):
        return [plain, _op("PUSH_NULL", loader)]
    return [plain, _op("PUSH_NULL", loader), _op("SWAP", loader, 2)]


def _dispatching_call(call: Instr, site: _Site, kwnames: tuple[str, ...], self_form: bool) -> list[Instr]:
    """Replace a call by ``site.call(callee, packed)`` or ``site.call_ex(callee, seq, kw)``.

    Stack before the final call (top on the right): 3.10 ``[S, f, P]``; 3.11/3.12
    ``[NULL, S, f, P]``; 3.13 ``[S, NULL, f, P]`` -- the original callee's NULL
    slot is reused for the site's method.  In the "self" form (``[f, arg0,
    args...]``, no NULL) arg0 is packed too and ``[S, f, P]`` is called with the
    same convention: S as the callable, f as its first argument.
    """
    n: int = _arg(call)
    if call.name == "CALL_FUNCTION_EX":
        ops = [] if n & 1 else [_op("LOAD_CONST", call, None)]  # no ** dict: pass None
        ops.append(_op("LOAD_CONST", call, site.call_ex))
        ops += [_op(name, call, *arg) for name, *arg in _EX_MOVES.get(VERSION, _EX_MOVES[(3, 11)])]
        return ops + _invoke(3, call)
    # CALL_FUNCTION_KW / CALL_KW have the keyword names on the stack already.
    ops = [] if call.name in ("CALL_FUNCTION_KW", "CALL_KW") else [_op("LOAD_CONST", call, kwnames)]
    ops += [_op("BUILD_TUPLE", call, n + 1 + self_form), _op("LOAD_CONST", call, site.call)]
    if self_form:
        return ops + [_op("SWAP", call, 3), _op("SWAP", call, 2)] + _invoke(1, call)
    ops += [_op(name, call, *arg) for name, *arg in _MOVES.get(VERSION, _MOVES[(3, 11)])]
    return ops + _invoke(2, call)


# Stack moves that bring the site's method below the callee: [f, P, S] -> [S, f, P]
# (3.11/3.12 with the NULL under f, 3.13 with the NULL between f and P), and for
# CALL_FUNCTION_EX [f, seq, kw, SX] -> [SX, f, seq, kw] likewise.
_MOVES: Final[dict[tuple[int, int], list[tuple[Any, ...]]]] = {
    (3, 10): [("ROT_THREE",)],
    (3, 11): [("SWAP", 3), ("SWAP", 2)],
    (3, 13): [("SWAP", 4), ("SWAP", 2)],
}
_EX_MOVES: Final[dict[tuple[int, int], list[tuple[Any, ...]]]] = {
    (3, 10): [("ROT_FOUR",)],
    (3, 11): [("SWAP", 4), ("SWAP", 3), ("SWAP", 2)],
    (3, 13): [("SWAP", 5), ("SWAP", 3), ("SWAP", 2)],
}


def _invoke(n: int, at: Instr) -> list[Instr]:
    """The plain call of the site's method with `n` arguments."""
    if VERSION < (3, 11):
        return [_op("CALL_FUNCTION", at, n)]
    if VERSION == (3, 11):
        return [_op("PRECALL", at, n), _op("CALL", at, n)]
    return [_op("CALL", at, n)]


# -- public entry points -------------------------------------------------------------


def call_sites(fn: types.FunctionType) -> list[tuple[SiteKey, int | None]]:
    """(key, source line) of every call instruction of `fn` and its nested code.

    Parents before the code nested in them, each in offset order.  These are
    exactly the keys `rewrite` considers: each is either rewritten or refused.
    """
    _check_function(fn)
    return [
        ((path, call.offset), call.line)
        for path, code in _walk(fn.__code__, (fn.__code__.co_name,))
        for call in _calls(code)
    ]


def rewrite(fn: types.FunctionType, dispatch: Dispatch, only: Collection[SiteKey] | None = None) -> Rewritten:
    """A clone of `fn` whose call sites (all, or those in `only`) call `dispatch`.

    A rewritten site calls ``dispatch(key, callee, args, kwargs)`` where `callee`
    is the object the original would call (a bound method for ``obj.m(...)``)
    and `args`/`kwargs` what it would pass (``*``/``**`` expanded); whatever
    `dispatch` returns or raises is the call's result.  Sites that cannot be
    rewritten safely are listed in `Rewritten.refused` and left unchanged.
    """
    _check_function(fn)
    wanted = None if only is None else frozenset(only)
    if wanted is not None:
        unknown = wanted - {key for key, _ in call_sites(fn)}
        if unknown:
            raise ConfigError(
                f"rewrite({fn.__qualname__}): no call instruction at {sorted(unknown)}; "
                "use keys from call_sites(fn) (offsets of the original code)"
            )
    editor = _Editor(dispatch, wanted)
    code = editor.code(fn.__code__, (fn.__code__.co_name,))
    return Rewritten(_clone(fn, code), editor.sites, tuple(editor.refused))


def _clone(fn: types.FunctionType, code: types.CodeType) -> types.FunctionType:
    """A function like `fn` running `code`: same globals, defaults, closure and metadata."""
    clone = types.FunctionType(code, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    # Shared, not copied: a later change to fn's keyword defaults shows in the clone too.
    clone.__kwdefaults__ = fn.__kwdefaults__
    clone.__qualname__ = fn.__qualname__
    clone.__module__ = fn.__module__
    clone.__doc__ = fn.__doc__
    clone.__annotations__ = fn.__annotations__
    clone.__dict__.update(fn.__dict__)
    if hasattr(fn, "__type_params__"):  # 3.12+
        setattr(clone, "__type_params__", fn.__type_params__)  # noqa: B010 - absent from 3.10 stubs
    return clone

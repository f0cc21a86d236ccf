"""Rewrite: a clone of a function whose call sites go through a dispatcher.

`rewrite(fn, dispatch)` returns a copy of `fn` in which every call site (or
those named in ``only``) calls ``dispatch(key, callee, args, kwargs)`` instead
of ``callee(*args, **kwargs)``.  The dispatcher decides what happens: call
through, record, or serve a result computed ahead.  Its return value (or
exception) becomes the call's result (or exception), so the clone behaves like
`fn` whenever the dispatcher calls through.

How a site is rewritten (the measured recipe of research/bytecode-notes.md §4):

1. *Provenance* (`callsites`).  A worklist pass over `codeinfo`'s static description of the
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

Refused, and left untouched (see `SiteRefusal`): calls whose callee slots the
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
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Final, Protocol

from bytecode import Bytecode, Instr, Label

from xcs_bc._assemble import Placed, assemble
from xcs_bc._compat import VERSION
from xcs_bc.errors import ConfigError, UnsupportedCodeError
from xcs_bc.execute.callsites import (
    Call,
    SiteKey,
    check_function,
    code_children,
    find_calls,
    walk_code,
)

__all__ = ["Dispatch", "Gated", "Rewritten", "SiteRefusal", "call_sites", "gate", "rewrite"]


class Dispatch(Protocol):
    """What a rewritten call site calls instead of ``fn(*args, **kwargs)``."""

    def __call__(self, key: SiteKey, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any: ...


@dataclass(frozen=True)
class SiteRefusal:
    """A call site left unchanged, and why."""

    key: SiteKey
    line: int | None
    reason: str


@dataclass(frozen=True)
class Rewritten:
    """The clone, the sites it dispatches (key -> source line), and the sites refused."""

    function: types.FunctionType
    sites: dict[SiteKey, int | None]
    refused: tuple[SiteRefusal, ...]


@dataclass(frozen=True)
class Gated:
    """A clone whose call sites go to the dispatcher only while their key is in `armed` (`gate`).

    Otherwise the site's original instructions run, in the clone's frame.  `originals` maps each
    code object of the clone to the one it copies; `offsets` maps, per clone code object, the
    offset of every instruction copied from the original (and of its EXTENDED_ARG prefixes) to its
    offset in the original; inserted instructions have none.  `steps` lists, per site, the offsets
    of the original instructions the dispatched path stands for (PRECALL / KW_NAMES, then the call);
    `inserted(callee)` tells the callables the inserted instructions call (the gate, the sites'
    methods) from the code's own."""

    function: types.FunctionType
    sites: dict[SiteKey, int | None]
    refused: tuple[SiteRefusal, ...]
    armed: set[SiteKey]
    originals: dict[types.CodeType, types.CodeType]
    offsets: dict[types.CodeType, dict[int, int]]
    steps: dict[SiteKey, tuple[int, ...]]
    test: Any  # what the gates call: `armed.__contains__` (one object: a new one per attribute access)

    def inserted(self, callee: Any) -> bool:
        return callee is self.test or type(getattr(callee, "__self__", None)) is _Site

    @staticmethod
    def dispatching(code: types.CodeType) -> bool:
        """Is `code` the dispatching code a gated site calls (its frames stand between the two)?"""
        return code is _Site.call.__code__ or code is _Site.call_ex.__code__


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
        args = seq if type(seq) is tuple else star_args(fn, seq)
        kwargs: dict[str, Any] = {} if kw is None else star_kwargs(fn, kw)
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


def star_args(fn: Any, seq: Any) -> tuple[Any, ...]:
    """``tuple(seq)`` with the error CPython's CALL_FUNCTION_EX gives for a non-iterable."""
    cls = type(seq)
    is_sequence = hasattr(cls, "__getitem__") and not issubclass(cls, dict)
    if not hasattr(cls, "__iter__") and not is_sequence:
        raise TypeError(f"{_function_str(fn)} argument after * must be an iterable, not {cls.__name__}")
    return tuple(seq)


def star_kwargs(fn: Any, kw: Any) -> dict[str, Any]:
    """A fresh dict of ``kw`` (the dispatcher may keep it), erroring like CPython for a non-mapping."""
    if type(kw) is dict:
        return dict(kw)
    if not hasattr(kw, "keys"):
        raise TypeError(f"{_function_str(fn)} argument after ** must be a mapping, not {type(kw).__name__}")
    return {key: kw[key] for key in kw.keys()}  # noqa: SIM118 - a mapping need not iterate its keys


# -- editing -------------------------------------------------------------------------


class _Editor:
    """Rewrites one function's code tree; collects the sites it rewrote and refused."""

    def __init__(
        self, dispatch: Dispatch, only: frozenset[SiteKey] | None, armed: set[SiteKey] | None = None
    ) -> None:
        self.dispatch = dispatch
        self.only = only
        self.armed = armed  # gate the sites on this set, rather than dispatching them always
        self.sites: dict[SiteKey, int | None] = {}
        self.refused: list[SiteRefusal] = []
        self.originals: dict[types.CodeType, types.CodeType] = {}
        self.offsets: dict[types.CodeType, dict[int, int]] = {}
        self.steps: dict[SiteKey, tuple[int, ...]] = {}
        self.test = armed.__contains__ if armed is not None else None

    def code(self, code: types.CodeType, path: tuple[str, ...]) -> types.CodeType:
        """`code` with its selected sites (and those of nested code) rewritten; `code` itself if none."""
        calls = find_calls(code)
        chosen = self._choose(calls, path)  # before recursing: results come out parents first
        nested: dict[int, types.CodeType] = {}
        for name, child in code_children(code):
            new = self.code(child, (*path, name))
            if new is not child:
                nested[id(child)] = new
        if not chosen and not nested:
            return code
        sites = {call.offset: _Site((path, call.offset), self.dispatch) for call in chosen}
        new, offsets = _rebuild(code, calls, chosen, sites, nested, self.test)
        if self.armed is not None:
            for call in chosen:
                self.steps[(path, call.offset)] = _steps(call)
            self.originals[new] = code
            self.offsets[new] = offsets
        return new

    def _choose(self, calls: list[Call], path: tuple[str, ...]) -> list[Call]:
        """The sites to rewrite among `calls`; records them, and refusals, in offset order."""
        chosen = []
        for call in calls:
            key = (path, call.offset)
            if self.only is not None and key not in self.only:
                continue
            if call.reason is not None:
                self.refused.append(SiteRefusal(key, call.line, call.reason))
                continue
            self.sites[key] = call.line
            chosen.append(call)
        return chosen


def dispatch_sites(
    code: types.CodeType,
    chosen: list[Call],
    sites: dict[int, Any],
    dropped: Collection[int],
    nested: dict[int, types.CodeType],
) -> types.CodeType:
    """`code` with the `chosen` calls of `find_calls(code)` made ``site.call(callee, packed)`` (or
    ``site.call_ex``) of their `sites` (by offset), the instructions at the `dropped` offsets gone
    and nested code objects (by id) replaced.  For an async function's twin, whose awaited calls
    its own sites make (`awaits`)."""
    return _rebuild(code, find_calls(code), chosen, sites, nested, dropped=dropped)[0]


def _rebuild(
    code: types.CodeType,
    calls: list[Call],
    chosen: list[Call],
    sites: dict[int, Any],
    nested: dict[int, types.CodeType],
    gate: Any = None,
    dropped: Collection[int] = (),
) -> tuple[types.CodeType, dict[int, int]]:
    """`code` with the `chosen` calls dispatched (or, given the `gate` callable, gated: see `gate`),
    nested code objects (by id) replaced and the instructions at `dropped` offsets removed; with a
    gate, also its offset map (`Gated.offsets`)."""
    bc = Bytecode.from_code(code)
    instrs = _instructions(code, bc)
    origin = {id(ins): off for off, ins in instrs.items()}  # instruction -> its offset in `code`
    edits: dict[int, list[Any]] = dict.fromkeys(dropped, [])  # (instructions and labels)
    for call in chosen:
        site = sites[call.offset]
        if gate is None:
            edits.update(_site_edits(instrs, call, site))
        else:
            edits.update(_gated_edits(instrs, call, site, gate, origin))
    for off, new in _loader_partners(instrs, calls, chosen).items():
        origin[id(new[0])] = off
        edits[off] = new
    for off, ins in instrs.items():
        if ins.name == "LOAD_CONST" and id(ins.arg) in nested:
            edits[off] = [_op("LOAD_CONST", ins, nested[id(ins.arg)])]
            origin[id(edits[off][0])] = off
    replaced = {id(instrs[off]): new for off, new in edits.items()}
    items: list[Any] = []
    for item in bc:
        items.extend(replaced.get(id(item), [item]))
    bc[:] = items
    # `bytecode` numbers locals in order of first use after the arguments;
    # seeding it with every original local keeps co_varnames (and so the
    # order of locals() and frame.f_locals) exactly as it was.
    bc.argnames = list(code.co_varnames)
    where = f"{code.co_filename}:{code.co_firstlineno} ({code.co_name})"
    try:
        result, placed = assemble(bc, where)
    except Exception as exc:  # a bug here must not pass for the user's code being wrong
        raise UnsupportedCodeError(f"{where}: the rewritten code does not assemble: {exc!r}") from exc
    if gate is None:
        return result, {}
    return result, _offsets(placed, origin)


def _offsets(placed: list[Placed], origin: dict[int, int]) -> dict[int, int]:
    """Offset in the gated code -> offset in the original, for the instructions copied from it
    (`origin`), and on 3.10/3.11 for their EXTENDED_ARG prefixes."""
    offsets: dict[int, int] = {}
    for place in placed:
        copied = origin.get(id(place.instr))
        if copied is not None:
            offsets[place.offset] = copied
            if VERSION < (3, 12):  # settrace reports an instruction at its first prefix
                offsets.update(dict.fromkeys(place.prefixes, copied))
    return offsets


def _gated_edits(
    instrs: dict[int, Instr], call: Call, site: _Site, gate: Any, origin: dict[int, int]
) -> dict[int, list[Any]]:
    """Offset -> replacement instructions, for one gated site: ``if key in armed:`` the dispatching
    call of `_site_edits`, ``else:`` the original instructions (PRECALL / KW_NAMES and the call),
    which keep their offsets in `origin`."""
    edits: dict[int, list[Any]] = dict(_site_edits(instrs, call, site))
    if call.loader is not None:  # the load itself; the PUSH_NULL and SWAP after it are inserted
        origin[id(edits[call.loader][0])] = call.loader
    served = edits[call.offset]
    at = instrs[call.offset]
    plain, after = Label(), Label()
    originals = [instrs[off] for off in _steps(call)]
    if originals[-1].name == "CALL_METHOD":  # 3.10: its loader now pushes the bound method alone
        originals[-1] = _op("CALL_FUNCTION", at, _arg(at))
        origin[id(originals[-1])] = call.offset
    test = [_op("LOAD_CONST", at, gate), _op("LOAD_CONST", at, site.key)]
    if VERSION >= (3, 13):
        test.insert(1, _op("PUSH_NULL", at))
    elif VERSION >= (3, 11):
        test.insert(0, _op("PUSH_NULL", at))
    jump = "POP_JUMP_FORWARD_IF_FALSE" if VERSION == (3, 11) else "POP_JUMP_IF_FALSE"
    edits[call.offset] = [
        *test,
        *_invoke(1, at),
        _op(jump, at, plain),
        *served,
        _op("JUMP_FORWARD", at, after),
        plain,
        *originals,
        after,
    ]
    return edits


def _steps(call: Call) -> tuple[int, ...]:
    """The offsets of a call's own instructions (3.11 KW_NAMES and PRECALL, 3.12 KW_NAMES, then the
    call), in the order they run."""
    return tuple(sorted((*call.drop, call.offset)))


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


def _site_edits(instrs: dict[int, Instr], call: Call, site: _Site) -> dict[int, list[Instr]]:
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
    instrs: dict[int, Instr], calls: list[Call], chosen: list[Call]
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
    check_function(fn)
    return [
        ((path, call.offset), call.line)
        for path, code in walk_code(fn.__code__, (fn.__code__.co_name,))
        for call in find_calls(code)
    ]


def rewrite(fn: types.FunctionType, dispatch: Dispatch, only: Collection[SiteKey] | None = None) -> Rewritten:
    """A clone of `fn` whose call sites (all, or those in `only`) call `dispatch`.

    A rewritten site calls ``dispatch(key, callee, args, kwargs)`` where `callee`
    is the object the original would call (a bound method for ``obj.m(...)``)
    and `args`/`kwargs` what it would pass (``*``/``**`` expanded); whatever
    `dispatch` returns or raises is the call's result.  Sites that cannot be
    rewritten safely are listed in `Rewritten.refused` and left unchanged.
    """
    check_function(fn)
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
    return Rewritten(clone_function(fn, code), editor.sites, tuple(editor.refused))


def gate(fn: types.FunctionType, dispatch: Dispatch, only: Collection[SiteKey] | None = None) -> Gated:
    """A clone of `fn` whose call sites (all, or those in `only`) call `dispatch` as `rewrite`'s do,
    but only while their key is in the returned `Gated.armed` set; otherwise they run as in `fn`.

    For a traced call: an observer of the clone maps its offsets back (`Gated.offsets`) and sees
    the original's instructions, while a site whose result was computed ahead is served."""
    check_function(fn)
    armed: set[SiteKey] = set()
    editor = _Editor(dispatch, None if only is None else frozenset(only), armed)
    code = editor.code(fn.__code__, (fn.__code__.co_name,))
    return Gated(
        clone_function(fn, code),
        editor.sites,
        tuple(editor.refused),
        armed,
        editor.originals,
        editor.offsets,
        editor.steps,
        editor.test,
    )


def clone_function(fn: types.FunctionType, code: types.CodeType) -> types.FunctionType:
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

"""An async function's synchronous twin: the same code, its awaits made calls that block.

`xcs.jit(async_fn)` traces and replays a *twin* of `async_fn`: a plain function
with the same code, except that every ``await`` becomes a call that blocks the
thread running it until the awaited object is done (`trampoline` runs the twin
on a thread of its own, and awaits there on the event loop, in the caller's
task).  The tracer, the planner and the replay then see awaited calls as slow
calls like any other, and issue the independent ones ahead.

`twin(fn)` makes it from the bytecode, on every version (research notes §4):

- the prologue that makes a coroutine (``GEN_START`` on 3.10, ``RETURN_GENERATOR;
  POP_TOP`` on 3.11+) goes, and the coroutine flag is cleared;
- an ``await`` is ``GET_AWAITABLE`` (``GET_ANEXT``, ``BEFORE_ASYNC_WITH``...),
  then ``LOAD_CONST None`` and the send loop (``YIELD_FROM`` on 3.10; ``SEND``,
  ``YIELD_VALUE``, ``RESUME``, ``JUMP_BACKWARD_NO_INTERRUPT`` and ``END_SEND``
  on 3.11+, with ``CLEANUP_THROW`` handlers on 3.12+).  The send loop becomes a
  call of `awaited` on what ``GET_AWAITABLE`` left: the same checks, and their
  errors, happen at the same point; the exception-table regions stay as they
  were, so an exception at the await unwinds to the same handlers;
- ``await f(...)`` -- a call whose result is awaited at once -- becomes one call:
  ``site.call(f, packed)`` (see `AwaitSite`), which makes the call and awaits
  its result on the loop.  It is that call the jit sees as slow, with `f` and
  the arguments as what it depends on: the plan recomputes them and issues the
  awaited call ahead (as a task on the loop), as it does a blocking call.  A
  call `rewrite` cannot prove the callee of stays a call, awaited by `awaited`.

The twin is never run by itself: only on a trampoline's thread, where `awaited`
and `AwaitSite.call` find the loop to await on.  Refused (`UnsupportedCodeError`,
so the jit runs the function plainly): async generators, and any instruction of
the send loop in a shape not listed above.
"""

from __future__ import annotations

import dis
import inspect
import types
from collections.abc import Callable, Collection
from typing import Any, Final

from bytecode import Bytecode, CompilerFlags, Instr
from bytecode.instr import TryBegin, TryEnd

from xcs_bc._assemble import assemble
from xcs_bc._compat import COMPREHENSIONS, VERSION
from xcs_bc.build.awaiting import SEND_LOOP, SEND_LOOP_END
from xcs_bc.errors import UnsupportedCodeError
from xcs_bc.execute.callsites import Call, SiteKey, code_children, find_calls
from xcs_bc.execute.rewrite import clone_function, dispatch_sites, star_args, star_kwargs

__all__ = ["AwaitSite", "awaited", "twin"]

# What the twin's awaits call; `trampoline` installs them (kept here, below it, to avoid a cycle).
_awaiting: dict[str, Callable[..., Any]] = {}


def awaited(iterator: Any) -> Any:
    """An ``await`` of the twin: `iterator` is what ``GET_AWAITABLE`` made of the awaited object."""
    return _awaiting["iterator"](iterator)


class AwaitSite:
    """The constant an ``await f(...)`` of the twin calls: ``f(*args, **kwargs)`` made and awaited
    on the loop, in one call the jit sees (and plans) as a call of `f`.

    `xcs_awaited` tells the lower stages (which cannot import this one) which call a call of
    `call` or `call_ex` stands for (see `ir.values.awaited_call`)."""

    __slots__ = ("key",)

    def __init__(self, key: SiteKey) -> None:
        self.key = key

    def call(self, fn: Any, packed: tuple[Any, ...]) -> Any:
        """``packed`` is (*positional, *keyword values, keyword names), as `rewrite` packs a call."""
        return _awaiting["call"](*self.xcs_awaited(AwaitSite.call, (fn, packed)))

    def call_ex(self, fn: Any, seq: Any, kw: Any) -> Any:
        """``f(*seq, **kw)``; ``kw`` is None when the call has no ``**``."""
        args = seq if type(seq) is tuple else star_args(fn, seq)
        kwargs: dict[str, Any] = {} if kw is None else star_kwargs(fn, kw)
        return _awaiting["call"](fn, args, kwargs)

    def xcs_awaited(self, method: Any, args: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
        """The call a call of `method` (`call` or `call_ex`) with `args` stands for, for naming it and
        finding its API (see `ir.values.awaited_call`); a ``*``/``**`` that is not a tuple or dict
        is left out (reading it could run user code)."""
        if method is AwaitSite.call:
            fn, packed = args
            names: tuple[str, ...] = packed[-1]
            split = len(packed) - 1 - len(names)
            return fn, packed[:split], dict(zip(names, packed[split:-1], strict=True))
        fn, seq, kw = args
        return fn, seq if type(seq) is tuple else (), dict(kw) if type(kw) is dict else {}

    def __reduce__(self) -> Any:
        # an awaited call runs on the loop of the run that made it: never on a cluster's worker
        raise TypeError("an awaited call cannot be pickled: it runs on its event loop")


# -- the transform --------------------------------------------------------------------

_CO_COROUTINE: Final = inspect.CO_COROUTINE
_HANDLER_JUMPS: Final = frozenset({"JUMP_BACKWARD_NO_INTERRUPT", "JUMP_BACKWARD", "JUMP_FORWARD"})
_STOPITERATION_ERROR: Final = 3  # CALL_INTRINSIC_1's INTRINSIC_STOPITERATION_ERROR (3.12+)


def twin(fn: types.FunctionType) -> types.FunctionType:
    """The synchronous twin of the coroutine function `fn` (see the module's docstring)."""
    code = fn.__code__
    if not code.co_flags & _CO_COROUTINE:
        raise UnsupportedCodeError(f"{fn.__qualname__} is not an async function")
    return clone_function(fn, _fused(_blocking(code)))


def _blocking(code: types.CodeType) -> types.CodeType:
    """`code` with its prologue gone and every send loop replaced by a call of `awaited`."""
    where = f"{code.co_filename}:{code.co_firstlineno} ({code.co_name})"
    bc = Bytecode.from_code(code)
    items = list(bc)
    out: list[Any] = []
    comprehensions = 0  # async comprehensions made (3.10/3.11), whose call's await is still to come
    index = 0
    while index < len(items):
        item = items[index]
        index += 1
        if not isinstance(item, Instr):
            out.append(item)  # labels and exception-table markers stay where they are
        elif _async_comprehension(item):
            out.append(Instr("LOAD_CONST", _blocking(_code(item)), location=item.location))
            comprehensions += 1
        elif comprehensions and item.name == "GET_AWAITABLE" and _calls_comprehension(out):
            # its blocking twin returns the list itself: the await of its call goes, send loop and all
            comprehensions -= 1
            index = _past_send_loop(items, _skip_to(items, index, {"LOAD_CONST"}, out, where) + 1, out, where)
        elif item.name in ("GEN_START", "RETURN_GENERATOR"):
            if item.name == "RETURN_GENERATOR":
                index = _skip_to(items, index, {"POP_TOP"}, out, where) + 1
        elif item.name == "LOAD_CONST" and item.arg is None and _starts_send_loop(items, index):
            out += _await_call(item)
            index = _past_send_loop(items, index, out, where)
        elif item.name == "CALL_INTRINSIC_1" and item.arg == _STOPITERATION_ERROR:
            # 3.12+: the coroutine's own StopIteration -> RuntimeError; the trampoline makes it, so
            # that a generator's (a RuntimeError already) passes as it is
            out.append(Instr("NOP", location=item.location))
        elif item.name == "CLEANUP_THROW":  # a send loop's handler, unreachable now: it and its jump go
            index = _skip_to(items, index, _HANDLER_JUMPS, out, where) + 1
        elif item.name in ("SEND", "YIELD_VALUE", "YIELD_FROM", "END_SEND"):
            raise UnsupportedCodeError(f"{where}: {item.name} outside an await")
        else:
            out.append(item)
    if comprehensions:  # a comprehension's call not in the shape above: its await would get a list
        raise UnsupportedCodeError(f"{where}: an async comprehension called in an unknown way")
    bc[:] = _without_empty_regions(out)
    bc.flags = CompilerFlags(code.co_flags & ~_CO_COROUTINE)
    bc.argnames = list(code.co_varnames)
    try:
        result, _ = assemble(bc, where)
    except Exception as exc:  # a bug here must not pass for the user's code being wrong
        raise UnsupportedCodeError(f"{where}: the synchronous twin does not assemble: {exc!r}") from exc
    return result


def _past_send_loop(items: list[Any], index: int, out: list[Any], where: str) -> int:
    """The index after the send loop starting at `index`, whose instructions go; its labels and
    exception-table markers stay (appended to `out`), so the regions around the await do too."""
    while True:
        item = items[index]
        index += 1
        if not isinstance(item, Instr):
            out.append(item)
        elif item.name == SEND_LOOP_END:
            return index
        elif item.name not in SEND_LOOP:
            raise UnsupportedCodeError(f"{where}: {item.name} inside an await's send loop")


def _skip_to(items: list[Any], index: int, names: Collection[str], out: list[Any], where: str) -> int:
    """The index of the next instruction from `index`, which must be one of `names`; the labels and
    markers before it are kept (appended to `out`)."""
    while not isinstance(items[index], Instr):
        out.append(items[index])
        index += 1
    if items[index].name not in names:
        raise UnsupportedCodeError(f"{where}: {items[index].name} where {sorted(names)} was expected")
    return index


def _without_empty_regions(items: list[Any]) -> list[Any]:
    """`items` without the exception-table regions left with no instruction (a send loop's
    ``YIELD_VALUE`` had one of its own): an empty region would not assemble back."""
    empty: set[int] = set()
    for index, item in enumerate(items):
        if isinstance(item, TryBegin):
            for later in items[index + 1 :]:
                if isinstance(later, Instr):
                    break
                if isinstance(later, TryEnd) and later.entry is item:
                    empty |= {id(item), id(later)}
                    break
    return [item for item in items if id(item) not in empty]


def _code(ins: Instr) -> types.CodeType:
    code: types.CodeType = ins.arg  # type: ignore[assignment] # (a LOAD_CONST of a code object)
    return code


def _async_comprehension(ins: Instr) -> bool:
    """Does `ins` load the code of an async comprehension (a coroutine of its own before 3.12)?"""
    if ins.name != "LOAD_CONST" or not isinstance(ins.arg, types.CodeType):
        return False
    return bool(ins.arg.co_flags & _CO_COROUTINE) and ins.arg.co_name in COMPREHENSIONS


def _calls_comprehension(out: list[Any]) -> bool:
    """Is the last instruction emitted the call of a comprehension's function: its one argument the
    iterator (``GET_ITER`` / ``GET_AITER``, then ``CALL_FUNCTION 1``; 3.11 ``PRECALL 0; CALL 0``)?"""
    names = [item.name for item in out if isinstance(item, Instr)][-3:]
    return (
        names[-2:] == ["GET_ITER", "CALL_FUNCTION"]
        or names[-2:] == ["GET_AITER", "CALL_FUNCTION"]
        or (names[-3:] in (["GET_ITER", "PRECALL", "CALL"], ["GET_AITER", "PRECALL", "CALL"]))
    )


def _starts_send_loop(items: list[Any], index: int) -> bool:
    """Is the next instruction from `index` a send loop's first (a ``LOAD_CONST None`` before it)?"""
    for item in items[index:]:
        if isinstance(item, Instr):
            return bool(item.name in ("SEND", "YIELD_FROM"))
    return False


def _await_call(at: Instr) -> list[Instr]:
    """``awaited(TOS)``: [it] -> [awaited, it] -> [result], with `at`'s location."""
    load = Instr("LOAD_CONST", awaited, location=at.location)
    if VERSION < (3, 11):
        return [load, Instr("ROT_TWO", location=at.location), Instr("CALL_FUNCTION", 1, location=at.location)]
    swap = Instr("SWAP", 2, location=at.location)
    if VERSION == (3, 11):
        return [load, swap, Instr("PRECALL", 0, location=at.location), Instr("CALL", 0, location=at.location)]
    return [load, swap, Instr("CALL", 0, location=at.location)]


def _fused(code: types.CodeType, path: tuple[str, ...] | None = None) -> types.CodeType:
    """`code` (a twin's) with each call awaited at once made one `AwaitSite` call (see the module),
    in it and in the comprehensions nested in it (3.10/3.11)."""
    path = path or (code.co_name,)
    nested = {}
    for name, child in code_children(code):
        if child.co_name in COMPREHENSIONS:
            new = _fused(child, (*path, name))
            if new is not child:
                nested[id(child)] = new
    real = list(_instructions(code))
    at = {off: k for k, (off, _, _) in enumerate(real)}
    chosen: list[Call] = []
    dropped: list[int] = []
    for call in find_calls(code):
        k = at[call.offset]
        after = [name for _, name, _ in real[k + 1 : k + 1 + len(_AWAITED_AFTER)]]
        if (
            call.reason is None
            and after == _AWAITED_AFTER
            and real[k + 2][2] is awaited
            and _plain(real[k + 1])
        ):
            chosen.append(call)
            dropped += [off for off, _, _ in real[k + 1 : k + 1 + len(_AWAITED_AFTER)]]
    if not chosen and not nested:
        return code
    sites = {call.offset: AwaitSite((path, call.offset)) for call in chosen}
    return dispatch_sites(code, chosen, sites, dropped, nested)


def _instructions(code: types.CodeType) -> list[tuple[int, str, Any]]:
    return [
        (ins.offset, ins.opname, ins.argval)
        for ins in dis.get_instructions(code)
        if ins.opname != "EXTENDED_ARG"
    ]


def _plain(get_awaitable: tuple[int, str, Any]) -> bool:
    """A plain ``await`` (not the one of an ``async with``'s enter or exit: oparg 1 or 2, 3.11+)."""
    return VERSION < (3, 11) or get_awaitable[2] == 0


# what follows a call whose result is awaited at once, in the twin: GET_AWAITABLE 0 and the call
# of `awaited`
_AWAITED_AFTER: Final = (
    ["GET_AWAITABLE", "LOAD_CONST", "ROT_TWO", "CALL_FUNCTION"]
    if VERSION < (3, 11)
    else ["GET_AWAITABLE", "LOAD_CONST", "SWAP", "PRECALL", "CALL"]
    if VERSION == (3, 11)
    else ["GET_AWAITABLE", "LOAD_CONST", "SWAP", "CALL"]
)

"""A loop of glue whose later rounds run unobserved: what tracing costs on pure-Python code.

Observing an instruction costs the builder microseconds; a loop of glue (tokenizing, counting,
formatting) runs thousands of them between two slow calls.  When a loop of the jitted function's
own frame has run two rounds that made no slow step and started no Python function, its later
rounds run unobserved: the observer drops their events (`Quieter.quiet`).  When the frame leaves
the loop, the builder takes those rounds as
one step it did not see, the way it takes a fast call of a function not known to be pure:

* every local the loop's code may assign holds a value of unknown provenance (no recipe computes
  it; a later call that needs it runs in its turn);
* every object the loop's code loads (a local, a global, a cell) may have been changed in place,
  and so may the module's data globals it loads;
* the loop's length is no guard, and a loop left otherwise than by running out (`break`, `return`,
  an exception) is a decision nothing after it is issued ahead of (as for a traced loop).

A Python function those rounds start, or any event the builder cannot take as part of them, ends
the trace (`UnobservedRoundsError`: the call runs on plainly and makes no plan), and the later
traces of the code observe that loop in full: what a Python function may change (module state)
is read from its code, which must be seen.  A slow step among them that starts no Python function
(a C function lasting `min_call_ms` or more, which only its time would tell) is part of the one
step: what it may have changed is among what the step is taken to change, and a replay makes it
in its turn.  (Their time is not watched: a pause of the thread, a collection or another thread
holding the interpreter, would look the same.)

What stays unobserved is decided from the bytecode (`loop_body`): the loop's natural body, which
must not assign globals or cells, yield, await, make a generator or call `f(*args)` (a call that
CPython 3.12 reports to no one).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import weakref
from typing import TYPE_CHECKING, Protocol

from xcs_bc._compat import CO_GENERATOR_LIKE
from xcs_bc.build import purity
from xcs_bc.build.codeinfo import CodeInfo, Instr
from xcs_bc.build.frames import FrameState
from xcs_bc.build.generators import identity
from xcs_bc.build.liveness import loaded_names, stored_names
from xcs_bc.build.loops import LoopState
from xcs_bc.build.loopshape import loop_offsets
from xcs_bc.build.remade import recomputed
from xcs_bc.build.trace import Decision, DecisionKind
from xcs_bc.errors import XCSError
from xcs_bc.ir import MISSING, ExprKind, Source, ValueRef
from xcs_bc.ir.values import SIZED, unknown

if TYPE_CHECKING:
    from xcs_bc.build.builder import GraphBuilder

# Only the rounds of a loop over more than LONG_LOOP items run unobserved: a recipe rebuilds a value
# a shorter loop made (the list of its pieces, say), and one accumulated over more rounds nests deeper
# than a recipe computes anyway.  From its OBSERVED_ROUNDS-th round when its length is known from the
# start (a built-in container, or one built-in functions make from built-in data, `text.split()`), else
# from its LONG_LOOP-th.
OBSERVED_ROUNDS = 2
LONG_LOOP = 64


class UnobservedRoundsError(XCSError):
    """The unobserved rounds of a loop did what only observed code may do (start a Python function):
    the trace is incomplete, and ends."""


class Quieter(Protocol):
    """What the builder asks of the observer: drop the events of `frame` at `offsets` (the original
    code's) from now on, until `loud()`."""

    def quiet(self, frame: types.FrameType, offsets: frozenset[int]) -> None: ...
    def loud(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class LoopBody:
    """The natural body of the loop whose FOR_ITER is at `head`, read from the bytecode."""

    head: int
    exit: int  # where the loop goes when it runs out
    offsets: frozenset[int]  # its instructions (and their EXTENDED_ARG prefixes), FOR_ITER included
    stored: tuple[str, ...]  # the locals it may assign or delete
    loaded: tuple[str, ...]  # the locals and cells it may read
    globals: tuple[str, ...]  # the globals it may read


@dataclasses.dataclass
class Skipping:
    """A loop's rounds running unobserved: the shadow it resumes from."""

    fs: FrameState
    state: LoopState
    body: LoopBody
    below: list[ValueRef]  # the shadow stack under the loop's iterator
    quieter: Quieter


# code -> the FOR_ITER offsets of loops whose unobserved rounds ended a trace: observed in full since
_OBSERVED_IN_FULL: weakref.WeakKeyDictionary[types.CodeType, set[int]] = weakref.WeakKeyDictionary()

# instructions a body run unobserved must not hold: what the builder must see to stay exact (a
# global or cell assigned, a frame suspended), or a Python call CPython 3.12 reports to no one
_REFUSED = frozenset(
    """STORE_GLOBAL DELETE_GLOBAL STORE_DEREF DELETE_DEREF STORE_NAME DELETE_NAME IMPORT_STAR YIELD_VALUE
    SEND GET_AWAITABLE GET_AITER GET_ANEXT END_ASYNC_FOR BEFORE_ASYNC_WITH SETUP_ASYNC_WITH
    RETURN_GENERATOR GEN_START LOAD_BUILD_CLASS CALL_FUNCTION_EX""".split()
)


def start(b: GraphBuilder, fs: FrameState, ins: Instr, state: LoopState) -> None:
    """The FOR_ITER `ins` of `fs` began a round of `state`'s loop: run the rest unobserved when its
    rounds so far made no slow step and started no Python function (see the module doc)."""
    quieter = b.quieter
    if (
        quieter is None
        or b.skipping is not None
        or fs is not b.root
        or b.min_call_s <= 0  # (every call an operation, the user asked: C calls too, which go unseen)
        or fs.awaiting is not None
        or fs.info.code.co_flags & CO_GENERATOR_LIKE
        or state.frame is not fs.frame
        or len(b.ops) != state.ops_before
        or b.python_starts != state.starts_before
        or ins.offset in _OBSERVED_IN_FULL.get(fs.info.code, ())
        or (len(state.op_starts) - 1 < LONG_LOOP and _length(state.iterable) <= LONG_LOOP)
    ):
        return
    body = loop_body(fs.info, ins.offset)
    if body is None:
        return
    below = fs.stack[: len(fs.stack) - 2]  # (the iterator and this round's item are on top)
    b.skipping = Skipping(fs, state, body, below, quieter)
    quieter.quiet(fs.frame, body.offsets)


def resume(b: GraphBuilder, frame: types.FrameType, offset: int) -> None:
    """An event of `frame` at `offset` while a loop's rounds run unobserved: the loop was left (the
    builder takes its rounds as one step), or the trace ends (`UnobservedRoundsError`)."""
    skipping = b.skipping
    assert skipping is not None
    b.skipping = None
    skipping.quieter.loud()
    fs, body = skipping.fs, skipping.body
    if frame is not fs.frame or offset in body.offsets:  # (a frame it called, or no quiet at all)
        _refuse(fs, body, "sent an event the builder cannot take as theirs")
    b.iters.pop(identity(skipping.state.iterator), None)
    deps = frozenset(range(len(b.ops)))
    f_locals = fs.frame.f_locals
    for name in body.loaded:
        if name in f_locals or name in fs.locals:
            b.mutate_arg(b.load_local(fs, name), deps)
    f_globals = fs.frame.f_globals
    for name in body.globals:
        value = f_globals.get(name, MISSING)
        if _data(value):
            key = (id(f_globals), name)
            b.module_changed[key] = "a loop's rounds run unobserved"
            b.mutate(value, b.lookup(ValueRef(Source.GLOBAL, name=name, value=value)), deps)
    for name in body.stored:
        value = f_locals.get(name, MISSING)
        if value is MISSING:
            fs.locals.pop(name, None)
        else:
            b.store_local(fs, name, unknown(len(b.ops), value=value))
    b.effects += 1  # (its rounds may have changed objects and branched: a round around it did too)
    b.tests += 1
    below = skipping.below  # (what the loop's rounds cannot touch), as deep as `offset` wants it
    ins = fs.info.instrs.get(offset)
    depth = ins.depth if ins is not None and ins.depth is not None else len(below)
    fs.stack = below[:depth] + [unknown(len(b.ops))] * (depth - len(below))
    fs.pending = None
    fs.exception = None
    if offset != body.exit:  # (a replay may leave it elsewhere, or not at all)
        b.unguarded_paths += 1
        site = b._site(fs, fs.info.instrs[body.head])
        b.decisions.append(Decision(DecisionKind.LEFT_LOOP, None, True, skipping.state.ops_before, site))


def abandon(b: GraphBuilder, why: str) -> None:
    """The builder got an event it cannot take while a loop's rounds run unobserved: end the trace."""
    skipping = b.skipping
    assert skipping is not None
    b.skipping = None
    skipping.quieter.loud()
    _refuse(skipping.fs, skipping.body, why)


def _refuse(fs: FrameState, body: LoopBody, why: str) -> None:
    _OBSERVED_IN_FULL.setdefault(fs.info.code, set()).add(body.head)
    line = fs.info.instrs[body.head].line
    raise UnobservedRoundsError(
        f"the rounds of the loop at line {line} run unobserved {why}; its code is observed in full "
        "from the next call on"
    )


def _length(iterable: ValueRef) -> int:
    """How many items the loop over `iterable` takes, when built-ins tell without running user code: a
    built-in container (made again by `recomputed` if need be), or enumerate(), reversed() or zip() of
    them called in the code; else 0."""
    if iterable.source is Source.EXPR and iterable.kind is ExprKind.CALL and len(iterable.operands) >= 2:
        callee, *args = iterable.operands
        if callee.value in (enumerate, reversed) or (callee.value is zip and len(args) > 0):
            return min(_length(arg) for arg in (args[:1] if callee.value is not zip else args))
    value = iterable.value if iterable.value is not MISSING else recomputed(iterable)
    return len(value) if type(value) in SIZED else 0


def _data(value: object) -> bool:
    """Could the loop's code have changed `value` in place (a global it loads)?  Not a module, class,
    function or immutable value."""
    if value is MISSING or purity.is_immutable(value):
        return False
    return not isinstance(
        value,
        (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType, types.MethodType),
    )


@functools.lru_cache(maxsize=1024)
def loop_body(info: CodeInfo, head: int) -> LoopBody | None:
    """The body of the loop whose FOR_ITER is at `head`: the instructions reached from its first
    round's start that reach the FOR_ITER again, exception handlers included.  None when it holds an
    instruction a body run unobserved must not hold (`_REFUSED`, a generator made)."""
    for_iter = info.instrs[head]
    inside = loop_offsets(info, head)
    if for_iter.target is None or not inside:
        return None
    stored: dict[str, None] = {}
    loaded: dict[str, None] = {}
    globals_: dict[str, None] = {}
    for off in inside:
        ins = info.instrs[off]
        if ins.opname in _REFUSED or _makes_generator(ins):
            return None
        stored.update(dict.fromkeys(stored_names(ins)))
        loaded.update(dict.fromkeys(loaded_names(ins)))
        if ins.opname == "LOAD_GLOBAL":
            globals_[str(ins.argval)] = None
    prefixes = {prefix for prefix, at in info.extended_arg.items() if at in inside}
    return LoopBody(
        head,
        for_iter.target,
        frozenset(inside | prefixes),
        tuple(stored),
        tuple(loaded),
        tuple(globals_),
    )


def _makes_generator(ins: Instr) -> bool:
    code = ins.argval
    flags = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR
    return ins.opname == "LOAD_CONST" and isinstance(code, types.CodeType) and bool(code.co_flags & flags)

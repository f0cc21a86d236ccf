"""Build: an ``await`` in observed code (a captured block inside a coroutine) as one step.

An ``await`` compiles to a *send loop* (research notes §4): ``LOAD_CONST None``, then
``YIELD_FROM`` on 3.10, or ``SEND``, ``YIELD_VALUE``, ``RESUME``,
``JUMP_BACKWARD_NO_INTERRUPT`` (and ``END_SEND``, with a ``CLEANUP_THROW`` handler
elsewhere in the code, on 3.12+).  The frame suspends inside that loop and resumes there
each time the awaited object yields: the loop's instructions arrive again and again, with
other tasks running in between.  Replayed one by one they say nothing (a ``SEND`` the
event loop resumes is no call), so the builder takes the whole loop as one step: it
begins at the loop's first instruction and ends at the first instruction outside it, the
loop's exit when the awaited object is done, a handler when it raised.

``await f(x)``, a call whose result is awaited at once, is one *call* of `f` that lasts
until the await is done: its result is what the await gives, so a slow awaited request is
an operation with `f`'s arguments as its inputs, as a blocking call would be.  Any other
await (a task, a future, ``async with``, ``async for``) is an operation of its own on the
awaited object when it is slow, and glue that may have changed anything when it is not.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from xcs_bc._compat import VERSION
from xcs_bc.build.codeinfo import CodeInfo, Instr

# The instruction that ends a send loop: 3.10's is the loop; 3.11's jumps back to its SEND, whose
# target follows it; 3.12+ END_SEND is that target.
SEND_LOOP_END: Final = (
    "YIELD_FROM" if VERSION < (3, 11) else "JUMP_BACKWARD_NO_INTERRUPT" if VERSION == (3, 11) else "END_SEND"
)
# The instructions of a send loop, and of the CLEANUP_THROW handler 3.12+ places inside it (just
# before END_SEND) or after it (with a jump back); `execute.awaits` takes them out of a twin.
SEND_LOOP: Final = frozenset(
    {
        "SEND",
        "YIELD_VALUE",
        "RESUME",
        "JUMP_BACKWARD_NO_INTERRUPT",
        "CLEANUP_THROW",
        "END_SEND",
        "YIELD_FROM",
        "JUMP_BACKWARD",
    }
)


@dataclass(frozen=True, slots=True)
class SendLoop:
    """One await's send loop (found by its first instruction, a ``LOAD_CONST None``): `send` its
    ``SEND`` (``YIELD_FROM``), where the awaited object's exception is raised; `inside` every
    offset the frame may be at while the await is under way (the ``CLEANUP_THROW`` handlers
    included); `exit` where it goes when the awaited object is done; `awaitable` the plain
    ``GET_AWAITABLE`` just before it, where a call's result is awaited (``await f(x)``), if any."""

    send: Instr
    inside: frozenset[int]
    exit: int | None
    awaitable: int | None
    what: str  # the name of the operation it is, when it is no call's (see `_what`)


@dataclass(slots=True)
class Awaiting:
    """An await under way in a frame: its `loop`, and `call`, the call whose result it awaits
    (``await f(x)``), completed when the await is, or None for an await of any other value."""

    loop: SendLoop
    call: Instr | None
    inside: frozenset[int]  # the loop's offsets, and the GET_AWAITABLE after `call`


def send_loop_at(info: CodeInfo, offset: int) -> SendLoop | None:
    """The send loop that begins at `offset` (its ``LOAD_CONST None``)."""
    return _send_loops(info).get(offset)


def awaited_call_at(info: CodeInfo, offset: int) -> SendLoop | None:
    """The send loop of a plain ``await`` whose ``GET_AWAITABLE`` is at `offset`: a call completing
    there is ``await f(x)``."""
    return _by_awaitable(info).get(offset)


@functools.lru_cache(maxsize=1024)
def _send_loops(info: CodeInfo) -> Mapping[int, SendLoop]:
    loops = {}
    order = info.order
    for index, offset in enumerate(order[:-1]):
        ins = info.instrs[offset]
        first = info.instrs[order[index + 1]]
        if ins.opname != "LOAD_CONST" or ins.argval is not None or first.opname not in ("SEND", "YIELD_FROM"):
            continue
        inside = {offset}
        last: Instr | None = None
        for later in order[index + 1 :]:
            step = info.instrs[later]
            if step.opname not in SEND_LOOP:
                break
            inside.add(later)
            if step.opname == "YIELD_VALUE":
                inside |= _cleanup_throw(info, step)
            if step.opname == SEND_LOOP_END:
                last = step
                break
        if last is None:  # not a shape listed above: its instructions are replayed one by one
            continue
        made = [info.instrs[at].opname for at in order[max(index - 2, 0) : index]]
        if not made or made[-1] not in ("GET_AWAITABLE", "GET_ANEXT"):
            continue  # a generator's `yield from`: the time it spends there is its consumer's
        what = _what(info.instrs[order[index - 1]], made)
        awaitable = order[index - 1] if what == "await" else None
        exit_ = first.target if VERSION == (3, 11) else last.next  # (3.11's last is a jump: no next)
        loops[offset] = SendLoop(first, frozenset(inside), exit_, awaitable, what)
    return loops


def _what(maker: Instr, made: list[str]) -> str:
    """What an await awaits, named after the instruction that made its awaitable (`made`: the names
    of the two before the loop): an ``async for``'s next item, an ``async with``'s enter or exit
    (3.11+ tells them by ``GET_AWAITABLE``'s argument; 3.10 has ``BEFORE_ASYNC_WITH`` before the
    enter's, and makes the exit a call), or any other awaited object."""
    if maker.opname == "GET_ANEXT":
        return "await anext"
    if made[0] == "BEFORE_ASYNC_WITH" or (VERSION >= (3, 11) and maker.arg == 1):
        return "await __aenter__"
    if VERSION >= (3, 11) and maker.arg == 2:
        return "await __aexit__"
    return "await"


def _cleanup_throw(info: CodeInfo, yield_value: Instr) -> set[int]:
    """3.12+: the ``CLEANUP_THROW`` handler an exception thrown in at `yield_value` lands on, and the
    jump after it back to the loop's ``END_SEND``."""
    handler = info.handler_at(yield_value.offset)
    if handler is None or info.instrs[handler.target].opname != "CLEANUP_THROW":
        return set()
    jump = info.instrs[handler.target].next
    return {handler.target} | ({jump} if jump is not None else set())


@functools.lru_cache(maxsize=1024)
def _by_awaitable(info: CodeInfo) -> Mapping[int, SendLoop]:
    return {loop.awaitable: loop for loop in _send_loops(info).values() if loop.awaitable is not None}

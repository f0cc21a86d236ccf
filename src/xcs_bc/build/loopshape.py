"""Build: the shape of a loop in the bytecode: the instructions of its body, and whether an exception
in a round may land in a handler inside it that leaves the loop or sets what a later round reads
(its later rounds would not run, or not as the others).
Read by `skipping` (the rounds run unobserved), `calls` (a later round's calls wait for the earlier
rounds) and `execute.first` (a first call's later rounds issued ahead)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator

from xcs_bc._compat import CALL_OPS
from xcs_bc.build.codeinfo import CodeInfo, Instr
from xcs_bc.build.liveness import arg_names, loaded_names, stored_names

__all__ = ["handled_out", "loop_offsets", "while_heads"]


@functools.lru_cache(maxsize=1024)
def loop_offsets(info: CodeInfo, head: int) -> frozenset[int]:
    """The instructions of the body of the loop whose FOR_ITER is at `head` (or, for a `while` loop,
    whose rounds start at `head`: the target of its backward jumps), without their EXTENDED_ARG
    prefixes; none for a FOR_ITER with no round (see `skipping.loop_body`)."""
    first = info.instrs[head]
    if first.opname == "FOR_ITER":
        if first.next is None:
            return frozenset()
        start = {first.next}
    else:
        start = set(_edges(info, head))
    ahead = _reached(start, lambda off: _edges(info, off), stop=head)
    preds = _predecessors(info)
    # the jumps back to the head: not the way in, falling through into it (which the code of a round
    # may reach again: a `break` that jumps to the next round of a loop around it, 3.12+)
    rounds_end = {off for off in preds.get(head, ()) if off in ahead and info.instrs[off].target == head}
    back = _reached(rounds_end, lambda off: preds.get(off, ()), stop=head)
    return frozenset({head} | (ahead & back))


@functools.lru_cache(maxsize=1024)
def handled_out(info: CodeInfo, head: int) -> bool:
    """May an exception in a round of the loop whose FOR_ITER is at `head` (or whose `while` rounds
    start there, see `while_heads`) land in a handler of a `try` inside the loop that leaves it
    (`except ValueError: break`, `return`, maybe under a condition), or that goes back into the loop
    having changed what a later round reads before it assigns it (`except ValueError: ok = False`
    with `if not ok: break`, `errors.append(d)` with `if errors: break`, a flag computed from what the
    `try` body skipped: `finally: ok = done`)?  Its later rounds would then not run, or not as a
    round that did not raise leaves them.  (A handler that re-raises, or is that of a `try` around
    the loop, is as no `try`: the run leaves the loop as when the exception leaves the function.)"""
    body = loop_offsets(info, head)
    around = info.handler_at(head)
    only = _handlers_own(info, head, body, around)
    if info.instrs[head].opname == "FOR_ITER":
        exit_ = info.instrs[head].target
        exits = {exit_} if exit_ is not None else set()
    else:  # (a `while` loop: wherever the code of its rounds, not its handlers', jumps out of it)
        exits = {next_ for offset in body - only for next_ in info.successors(offset) if next_ not in body}
    after = _reached(exits, info.successors, stop=-1)  # (past the loop)
    ends = body | ({around.target} if around is not None else set())
    handlers = {
        handler.target
        for offset in body
        if (handler := info.handler_at(offset)) is not None
        and handler != around
        and handler.target not in body
    }
    reached = _reached(handlers, lambda offset: () if offset in ends else _edges(info, offset), stop=-1)
    if any(offset in after or info.instrs[offset].opname in _RETURNS for offset in reached):
        return True
    # a handler that goes back into the loop on one path may leave it on another (`if i > 1: break`)
    if any(offset in after or info.instrs[offset].opname in _RETURNS for offset in only):
        return True
    skipped = _skipped(info, body, only, around)
    changed = _derived(info, body, _changes(info, only) | _stores(info, skipped))
    return any(_read_in_rounds(info, head, body - only, name) for name in changed)


@functools.lru_cache(maxsize=1024)
def while_heads(info: CodeInfo, offset: int) -> tuple[int, ...]:
    """Where the rounds of the loops that are no `for` loop (`while ...:`) holding the instruction at
    `offset` start: the targets of their backward jumps."""
    normal = _normal_code(info)  # (a handler's way back, placed after the code, jumps back too)
    heads = {
        ins.target
        for ins in info.instrs.values()
        if ins.target is not None
        and ins.target <= ins.offset
        and ins.offset in normal
        and info.instrs[ins.target].opname != "FOR_ITER"
    }
    return tuple(head for head in sorted(heads) if offset in loop_offsets(info, head))


@functools.lru_cache(maxsize=256)
def _normal_code(info: CodeInfo) -> frozenset[int]:
    """The instructions a run that raises nothing may reach."""
    return frozenset(_reached({info.order[0]}, info.successors, stop=-1))


_RETURNS = frozenset({"RETURN_VALUE", "RETURN_CONST"})
# instructions that change an object in place: in a handler, every local it loads may be the object
_IN_PLACE = frozenset({"STORE_SUBSCR", "DELETE_SUBSCR", "STORE_ATTR", "DELETE_ATTR"})
_ATTRIBUTE_LOADS = frozenset({"LOAD_ATTR", "LOAD_METHOD"})
# methods that add to a container and give nothing of it back: a round calling one reads nothing there
_ADDERS = frozenset({"append", "extend", "add", "insert", "appendleft", "extendleft"})


def _handlers_own(info: CodeInfo, head: int, body: frozenset[int], around: object) -> frozenset[int]:
    """The code that only the loop's handlers that may go back into the loop run (`except ValueError:
    ok = False`), not the rest of the round; with the paths by which they may leave it (`if i > 1:
    break`)."""
    targets = {
        handler.target
        for offset in body
        if (handler := info.handler_at(offset)) is not None and handler != around and handler.target in body
    }
    if not targets:
        return frozenset()
    within = lambda offset: info.successors(offset) if offset in body else ()  # noqa: E731
    # the rounds' own code (not a FOR_ITER's way out of the loop: a `break` may go there too)
    stop = head if info.instrs[head].opname == "FOR_ITER" else -1
    normal = _reached(set(_round_start(info, head)), within, stop=stop)
    own = _reached(targets, lambda offset: () if offset in normal else info.successors(offset), stop=head)
    return frozenset(own - normal - {head})


def _changes(info: CodeInfo, only: frozenset[int]) -> set[str]:
    """The names the code `only` may change: the locals and globals it assigns, the locals whose
    methods it calls (`errors.append(d)`), every local it loads when it changes an object in place
    (`seen[d] = False`), and, when it calls anything, the cells of the code and the globals it
    assigns (a function it calls may assign them too: `nonlocal ok`, `global FAILED`).  (The
    exception's own name, `except E as e`, no round reads.)"""
    code = [info.instrs[offset] for offset in sorted(only)]
    names = _stores(info, only)
    if any(ins.opname in CALL_OPS for ins in code):
        # a function it calls may assign a cell (`nonlocal ok`) or a global the code assigns too
        names.update(info.code.co_cellvars)
        names.update(
            name for ins in info.instrs.values() if ins.opname == "STORE_GLOBAL" for name in arg_names(ins)
        )
    if any(ins.opname in _IN_PLACE for ins in code):
        names.update(name for ins in code for name in loaded_names(ins))
    return names


def _skipped(info: CodeInfo, body: frozenset[int], only: frozenset[int], around: object) -> frozenset[int]:
    """The instructions of a loop's rounds (`body`, the handlers' own code `only` left out) that a
    raising round may skip: those of the `try` bodies whose handlers go back into the loop (`done =
    True` after the call)."""
    return frozenset(
        offset
        for offset in body - only
        if (handler := info.handler_at(offset)) is not None and handler != around and handler.target in body
    )


def _stores(info: CodeInfo, code: frozenset[int]) -> set[str]:
    """The names the instructions `code` assign, and the locals whose methods they call."""
    names: set[str] = set()
    for offset in code:
        ins = info.instrs[offset]
        names.update(stored_names(ins))
        if ins.opname == "STORE_GLOBAL":
            names.update(arg_names(ins))
        if _receiver(info, ins):
            names.update(loaded_names(ins))
    return names


# where a statement's value has been used: the names loaded since then feed no later store
_STATEMENT_ENDS = frozenset(
    {"POP_TOP", "RETURN_VALUE", "RETURN_CONST", "POP_JUMP_IF_FALSE", "POP_JUMP_IF_TRUE"}
)


def _derived(info: CodeInfo, body: frozenset[int], names: set[str]) -> set[str]:
    """`names` and the locals the loop's rounds compute from them (`ok = done`, `ok = r is not
    None`), statement by statement in the order of the bytecode, until nothing more is added."""
    derived = set(names)
    grew = True
    while grew:
        grew = False
        loaded: set[str] = set()
        for offset in sorted(body):
            ins = info.instrs[offset]
            stored = stored_names(ins)
            if stored and loaded & derived and not set(stored) <= derived:
                derived.update(stored)
                grew = True
            loaded.update(loaded_names(ins))
            following = info.instrs.get(ins.next) if ins.next is not None else None
            unpacked = stored and following is not None and bool(stored_names(following))  # (`a, b = ...`)
            if (stored and not unpacked) or ins.opname in _STATEMENT_ENDS or ins.target is not None:
                loaded = set()
    return derived


def _receiver(info: CodeInfo, ins: Instr) -> bool:
    """Does `ins` load a local whose attribute the next instruction reads (`errors.append`)?"""
    after = info.instrs.get(ins.next) if ins.next is not None else None
    return after is not None and after.opname in _ATTRIBUTE_LOADS and bool(loaded_names(ins))


def _round_start(info: CodeInfo, head: int) -> list[int]:
    """Where a round of the loop at `head` starts: after its FOR_ITER, or at the first instruction of
    a `while` loop's round (which the round runs, and may read a name)."""
    first = info.instrs[head]
    if first.opname != "FOR_ITER":
        return [head]
    return [first.next] if first.next is not None else []


def _adds_to(info: CodeInfo, ins: Instr, name: str) -> bool:
    """Does `ins` load the container `name` only to add to it (`out.append(r)`)?  (Of two names a
    3.13 `LOAD_FAST_LOAD_FAST` loads, the attribute is the second's.)"""
    after = info.instrs.get(ins.next) if ins.next is not None else None
    return (
        after is not None
        and after.opname in _ATTRIBUTE_LOADS
        and arg_names(after)[-1] in _ADDERS
        and loaded_names(ins)[-1:] == (name,)
    )


def _read_in_rounds(info: CodeInfo, head: int, rest: frozenset[int], name: str) -> bool:
    """May a round of the loop at `head`, in the code `rest` of its body (the handlers' own code left
    out: `failures += 1` reads what it assigns), read `name` before it assigns it (`if not ok: break`
    at the round's start)?  What a round leaves there, the next round reads.  Adding to it
    (`out.append(r)`) reads nothing of it."""
    todo = _round_start(info, head)
    seen = set(todo)
    while todo:
        ins = info.instrs[todo.pop()]
        loads = name in loaded_names(ins) or (ins.opname == "LOAD_GLOBAL" and arg_names(ins)[-1] == name)
        if loads and not _adds_to(info, ins, name):
            return True
        if name in stored_names(ins) or (ins.opname == "STORE_GLOBAL" and arg_names(ins)[-1] == name):
            continue
        for successor in _edges(info, ins.offset):
            if successor in rest and successor != head and successor not in seen:
                seen.add(successor)
                todo.append(successor)
    return False


def _edges(info: CodeInfo, off: int) -> Iterator[int]:
    yield from info.successors(off)
    handler = info.handler_at(off)
    if handler is not None:
        yield handler.target


@functools.lru_cache(maxsize=256)
def _predecessors(info: CodeInfo) -> dict[int, tuple[int, ...]]:
    preds: dict[int, list[int]] = {}
    for off in info.order:
        if info.instrs[off].depth is None:
            continue  # (statically unreachable)
        for succ in _edges(info, off):
            preds.setdefault(succ, []).append(off)
    return {off: tuple(found) for off, found in preds.items()}


def _reached(start: set[int], step: Callable[[int], Iterable[int]], stop: int) -> set[int]:
    """The offsets reached from `start` by `step`, not going on from `stop`."""
    todo, seen = list(start), set(start)
    while todo:
        off = todo.pop()
        if off == stop:
            continue
        for nxt in step(off):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen

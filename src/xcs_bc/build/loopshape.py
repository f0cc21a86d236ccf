"""Build: the shape of a loop in the bytecode: the instructions of its body, and whether an exception
in a round may land in a handler inside it that leaves the loop (its later rounds would not run).
Read by `skipping` (the rounds run unobserved), `calls` (a later round's calls wait for the earlier
rounds) and `execute.first` (a first call's later rounds issued ahead)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator

from xcs_bc.build.codeinfo import CodeInfo

__all__ = ["handled_out", "loop_offsets"]


@functools.lru_cache(maxsize=1024)
def loop_offsets(info: CodeInfo, head: int) -> frozenset[int]:
    """The instructions of the body of the loop whose FOR_ITER is at `head`, without
    their EXTENDED_ARG prefixes; none for an instruction that is no FOR_ITER with a round (see
    `skipping.loop_body`)."""
    for_iter = info.instrs[head]
    if for_iter.next is None:
        return frozenset()
    ahead = _reached({for_iter.next}, lambda off: _edges(info, off), stop=head)
    preds = _predecessors(info)
    rounds_end = {off for off in preds.get(head, ()) if off in ahead}  # (the jumps back to the FOR_ITER)
    back = _reached(rounds_end, lambda off: preds.get(off, ()), stop=head)
    return frozenset({head} | (ahead & back))


@functools.lru_cache(maxsize=1024)
def handled_out(info: CodeInfo, head: int) -> bool:
    """May an exception in a round of the loop whose FOR_ITER is at `head` land in a handler of a
    `try` inside the loop that leaves it (`except ValueError: break`, or `return`)?  Its later rounds
    would then not run.  (A handler that goes back into the loop, re-raises, or is that of a `try`
    around the loop is as no `try`: the run leaves the loop as when the exception leaves the
    function.)"""
    body = loop_offsets(info, head)
    around = info.handler_at(head)
    exit_ = info.instrs[head].target
    after = _reached({exit_}, info.successors, stop=-1) if exit_ is not None else set()  # (past the loop)
    ends = body | ({around.target} if around is not None else set())
    handlers = {
        handler.target
        for offset in body
        if (handler := info.handler_at(offset)) is not None
        and handler != around
        and handler.target not in body
    }
    reached = _reached(handlers, lambda offset: () if offset in ends else _edges(info, offset), stop=-1)
    return any(offset in after or info.instrs[offset].opname in _RETURNS for offset in reached)


_RETURNS = frozenset({"RETURN_VALUE", "RETURN_CONST"})


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

"""A consumer taking every item of a `map`: the map's calls issued at once.

`list(map(llm, docs))`, `"\\n".join(map(summarize, docs))`, `out.extend(map(ask, questions))`: the
consumer calls the function from C code, where no call site of the function's code is, so a trace
sees one slow call of the consumer, and a replay or a first call would make it in its turn, the
map's calls one after another.  The clones dispatch the sites that may be such a consumer
(`callsites.map_consumers`), and a call made there in its turn goes through `consume` when `fan`
finds that:

- the callee takes every item of an iterable (`generators.takes_all`: `list`, `tuple`, `sorted`,
  `sum`, `min`, `max`, `"".join`, `list.extend`, ...) and is handed the map alone, no keyword (a
  `key=` would run between the map's calls); a method filling a container as it goes
  (`out.extend`) only when the function can read that container neither through what it holds
  nor as a global;
- the map walks lists, tuples or ranges (read from the map's and iterators' own `__reduce__`,
  which run no user code) whose items are immutable built-in data (str, bytes, numbers, None,
  tuples of them): what each call is handed is then known before any runs, and no call can
  change what another is handed;
- the map's function is not known to be pure (it does no IO: its time is never a slow call's),
  and is one a loop's slow call could be issued ahead for (a Python function,
  method or object whose `__call__` is Python; not a cache wrapper nor a function that may call
  one, a delay or synchronisation), and whose own code changes nothing a later call of it could
  read: no attribute, global or closure cell it stores (`purity.stores_state`), no attribute of its object
  (`purity.sets_attributes`), no module state (`purity.module_state`).  A callable object's own
  bookkeeping (a client counting its calls) is its own effect, as for any slow call.

The first call of the map is then made in place and timed; when it took at least the function's
`min_call_ms` (or the site's calls did before: `Fanning.slow`), the others are issued at once,
and the consumer is handed a map over the same iterators whose function serves them in order.  A
call that raises raises at its item, as in the plain run; the calls issued for the items after it
are cancelled if they have not started, else counted in `stats.wasted`.  Only on the thread pools.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from xcs_bc._compat import CO_GENERATOR_LIKE
from xcs_bc.build import purity
from xcs_bc.build.calls import python_code
from xcs_bc.build.effects import holds
from xcs_bc.build.generators import takes_all
from xcs_bc.execute.callsites import SiteKey
from xcs_bc.execute.executor import wait_done
from xcs_bc.execute.limits import answered, call_in_turn, issue_ahead, take_over
from xcs_bc.execute.replay import Issued, Stats, dispatcher_for, rejected_counter, running, same_call
from xcs_bc.execute.rewrite import Dispatch
from xcs_bc.ir.values import describe_callee
from xcs_bc.plan.planner import Plan
from xcs_bc.plan.recipes import never_ahead

__all__ = ["Fan", "Fanning", "consume", "dispatcher", "fan", "immutable"]

_ITERATORS: tuple[type, ...] = (type(iter([])), type(iter(())), type(iter(range(0))))
_SEQUENCES: tuple[type, ...] = (list, tuple, range)
_IMMUTABLE: tuple[type, ...] = (str, bytes, int, float, complex, bool, type(None))  # (exactly these)


@dataclass
class Fanning:
    """What a jitted function's runs learn of its map consumers: the sites whose map's first call took
    at least `min_s` seconds (their later maps are issued at once, without timing the first call)."""

    min_s: float
    slow: set[SiteKey] = field(default_factory=set)


@dataclass(frozen=True)
class Fan:
    """A map a consumer takes whole: its function, its iterators, and what each call is handed."""

    func: Any
    iterators: tuple[Any, ...]
    items: list[tuple[Any, ...]]


def fan(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Fan | None:
    """The map `fn(*args, **kwargs)` takes whole, if its calls may be issued at once (see above)."""
    if kwargs or len(args) != 1 or type(args[0]) is not map or not takes_all(fn):
        return None
    try:
        return _fan(fn, args[0])
    except Exception:  # noqa: BLE001 - a failed prediction costs time, never the call
        return None


def _fan(fn: Any, mapped: map[Any]) -> Fan | None:
    reduced: Any = mapped.__reduce__()  # (map, (function, *iterators))
    func, *iterators = reduced[1]
    if not _may_fan(func) or _sees_receiver(func, getattr(fn, "__self__", None)):
        return None
    columns = []
    for iterator in iterators:
        if type(iterator) not in _ITERATORS:
            return None
        state: Any = iterator.__reduce__()  # (iter, (sequence,), position), or (iter, ([],)) once run out
        sequence = state[1][0]
        if type(sequence) not in _SEQUENCES:
            return None
        start = state[2] if len(state) > 2 and state[2] is not None else 0
        columns.append(sequence[start:])
    items = list(zip(*columns, strict=False))  # (map stops at the shortest)
    if len(items) < 2 or not all(map(immutable, itertools.chain.from_iterable(items))):
        return None
    return Fan(func, tuple(iterators), items)


def _may_fan(func: Any) -> bool:
    python = python_code(func)
    return (
        python is not None
        # (a function known to be pure does no IO: however long its first call took, under load or
        # under the tracer, it is no slow call, as in `build.slow`)
        and not purity.pure_function(func)
        and not python[0].__code__.co_flags & CO_GENERATOR_LIKE  # (a call only makes a generator)
        and purity.memo_wrapper(func) is None
        and not purity.reaches_memo(func)
        and not never_ahead(func)
        and not purity.stores_state(func)
        and not purity.sets_attributes(func)
        and not purity.module_state(func).writes
    )


def _sees_receiver(func: Any, receiver: Any) -> bool:
    """May `func` read the container a consumer method fills as it goes (`out.extend(map(f, docs))`
    appends each answer before the next call): through what it holds, or as a global it reads."""
    if type(receiver) not in purity.MUTABLE_DATA:
        return False
    return holds(func, receiver) or any(
        where.get(name) is receiver for where, name in purity.module_state(func).reads
    )


def immutable(value: Any) -> bool:
    """Built-in data nobody can change in place: str, bytes, numbers, None, and tuples of them."""
    if type(value) in _IMMUTABLE:
        return True
    return type(value) is tuple and all(map(immutable, value))


def consume(
    fanned: Fan,
    consumer: Callable[[Any], Any],
    key: SiteKey,
    fanning: Fanning,
    executor: Any,
    context: Any,
    stats: Stats,
    served: str,
    in_place: str | None,
    follow: Callable[[Any], Any],
) -> Any:
    """`consumer(a map)`, the map's calls issued at once after the first (see above); `served` and
    `in_place` name the stats counters a call served from one issued ahead, and one made in its
    turn, count in.  A slow function of the user's is called through `follow` (`execute.follow`:
    `list(map(summarize, docs))` replays `summarize`'s own calls in parallel too)."""
    func = fanned.func
    called = follow(func)  # (looked up once, and not inside the first call's timing)
    name = describe_callee(func)
    pending: deque[Issued] = deque()

    def issue(items: list[tuple[Any, ...]]) -> None:
        for args in items:
            try:
                future = issue_ahead(executor, context, True, called, args, {})
            except Exception:  # noqa: BLE001 - (an executor shut down): the rest are made in their turn
                return
            pending.append(Issued.handing(name, func, args, {}, future))

    def count(result: Any, counted: bool = False) -> Any:
        """A call made here (`counted`: counted as served already, taken over from one issued)."""
        if in_place is not None and not counted:
            stats.bump(in_place)
        stats.made(name, result)
        return result

    def in_turn(args: tuple[Any, ...], room: Any = None) -> Any:
        return call_in_turn(called, args, {}, rejected_counter(stats, name, func), room)

    first = key not in fanning.slow
    fast = False  # (the first call was not slow: the others are made as the plain map would)

    def serve(*args: Any) -> Any:
        nonlocal first, fast
        if fast:
            return func(*args)
        if first:  # made in place, and timed: is the map's function slow?
            first = False
            started = time.perf_counter()
            result = in_turn(args)
            if time.perf_counter() - started < fanning.min_s:
                fast = True
                return result
            fanning.slow.add(key)
            issue(fanned.items[1:])
            return count(result)
        issued = pending.popleft() if pending else None
        if issued is None or not same_call(issued, func, args, {}):
            if issued is not None:
                issued.unused(stats)
            return count(in_turn(args))
        stats.bump(served)
        cancelled, room = take_over(issued.future)
        if cancelled:  # (not started: made here, in the room it held under its API's limit)
            return count(in_turn(args, room), counted=True)
        wait_done(issued.future)
        if not answered(issued.future):
            return count(in_turn(args), counted=True)
        result = issued.future.result()  # (its exception, raised here)
        stats.made(name, result, ahead=True)
        return result

    if not first:
        issue(fanned.items)
    try:
        return consumer(map(serve, *fanned.iterators))
    finally:
        for issued in pending:
            issued.unused(stats)


def dispatcher(plan: Plan, consumers: frozenset[SiteKey], fanning: Fanning) -> Dispatch:
    """The dispatch function of a plan's clone (`replay.dispatcher_for`), with the maps taken whole at
    the `consumers` sites issued at once: the replay is then handed the consumer's call on a map that
    serves them, which it makes in its turn."""
    dispatch = dispatcher_for(plan)
    if not consumers:
        return dispatch

    def fanned_out(key: SiteKey, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        replay = running(plan) if key in consumers else None
        fanned = fan(fn, args, kwargs) if replay is not None and replay.in_process else None
        if replay is None or fanned is None:
            return dispatch(key, fn, args, kwargs)
        return consume(
            fanned,
            lambda mapped: dispatch(key, fn, (mapped,), {}),
            key,
            fanning,
            replay.executor,
            replay.context,
            replay.stats,
            "served",
            "in_place",
            replay.follow,
        )

    return fanned_out

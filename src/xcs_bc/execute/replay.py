"""Execute: run the real function again, with its planned calls issued ahead on an executor.

The real code stays the source of truth.  The function runs as a clone whose
slow call sites go through `Replay.dispatch`; meanwhile every planned call
whose inputs are known is submitted to the executor, and each result that
arrives (from the executor or from a call made in place) lets the calls that
need it go at once.  At a call site the dispatcher compares the real callee
and arguments with the planned ones (`same_value`: the same values, not just
equal ones): the same, the call is served from its future (its exception
re-raised right there), or, when the executor has not started it, cancelled
and made right here (a run that waited for a pool slot could wait for its own
waiter: nested jitted functions on one pool would deadlock); different, the
call is made in place and the plan counts a misprediction.  Planned calls the
run never reached are cancelled when it ends, or counted as wasted if already
running.  With opt-in speculation (`speculation`), an allowed call under
branches on results goes as soon as its arguments are known, before those
branches are decided: a guess whose branch goes the other way is cancelled, or
counted as wasted if it had started.  Futures are waited on with `wait_done`,
which a KeyboardInterrupt cannot leave half-locked.
"""

from __future__ import annotations

import contextvars
import copy
import dataclasses
import functools
import sys
import threading
import time
import types
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from xcs_bc.build.purity import memo_wrapper
from xcs_bc.execute.callsites import SiteKey
from xcs_bc.execute.executor import Executor, can_submit, runs_in_process, wait_done
from xcs_bc.execute.limits import (
    RETRIES_AHEAD,
    Room,
    Withdrawn,
    answered,
    backoff,
    call_in_turn,
    issue_ahead,
    later,
    take_over,
)
from xcs_bc.execute.rewrite import Dispatch
from xcs_bc.execute.speculation import Speculation
from xcs_bc.execute.timeline import Span, Timeline
from xcs_bc.ir.values import SIZED, class_lookup, describe_callee, reported_tokens
from xcs_bc.plan.learn import strays
from xcs_bc.plan.planner import Plan, Schedule
from xcs_bc.plan.readpoints import local_reads
from xcs_bc.plan.recipes import Recipe
from xcs_bc.plan.rounds import ResultLoop
from xcs_bc.plan.slices import Env, NotComputable, evaluate, plain, same_value


@dataclass
class Stats:
    """What a jitted function did, summed over its calls."""

    traces: int = 0
    replays: int = 0
    plain_runs: int = 0
    served: int = 0
    in_place: int = 0
    mispredictions: int = 0
    wasted: int = 0
    guard_misses: int = 0
    resized: int = 0  # replays of a plan's loops for other lengths than traced (no new trace)
    speculated: int = 0  # calls issued on a guess, before the branches they are under were decided
    served_in_trace: int = 0  # calls of traced calls served from a loop's later rounds issued ahead
    rejected: int = 0  # attempts the API answered as overloaded, made again (see execute.limits)
    wasted_by_callee: dict[str, int] = field(default_factory=dict)  # `wasted`, per callee
    rejected_by_callee: dict[str, int] = field(default_factory=dict)  # `rejected`, per callee
    # per callee: the slow calls that returned to the run (traced, served or made in their turn),
    # those answered by the call issued ahead (`served` also counts the planned calls the run took
    # over before they started), and the tokens their results report (`usage`)
    calls_by_callee: dict[str, int] = field(default_factory=dict)
    ahead_by_callee: dict[str, int] = field(default_factory=dict)
    tokens_by_callee: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def bump(self, name: str) -> None:
        """Add one to a counter; calls on many threads update the same stats."""
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    def per_callee(self, name: str, callee: str) -> None:
        """Add one to `name` (`wasted`: a call made ahead that the run did not use; `rejected`: an
        attempt answered as overloaded) and to its count for `callee`."""
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)
            _add(getattr(self, f"{name}_by_callee"), callee, 1)

    def made(self, callee: str, result: Any, *, ahead: bool = False) -> None:
        """One slow call of `callee` that returned `result` to the run (`ahead`: answered by the call
        issued ahead)."""
        tokens = reported_tokens(result)
        with self._lock:
            _add(self.calls_by_callee, callee, 1)
            if ahead:
                _add(self.ahead_by_callee, callee, 1)
            if tokens:
                _add(self.tokens_by_callee, callee, tokens)

    def calls_made(self) -> int:
        """The slow calls that returned to the run, of every callee (see `made`)."""
        with self._lock:
            return sum(self.calls_by_callee.values())

    def by_callee(self) -> dict[str, dict[str, int]]:
        """Per callee: `calls` that returned, those answered `ahead`, `wasted`, `rejected` and `tokens`
        (each only when not 0)."""
        with self._lock:
            tables = {
                "calls": self.calls_by_callee,
                "ahead": self.ahead_by_callee,
                "wasted": self.wasted_by_callee,
                "rejected": self.rejected_by_callee,
                "tokens": self.tokens_by_callee,
            }
            result: dict[str, dict[str, int]] = {}
            for what, table in tables.items():
                for callee, count in table.items():
                    result.setdefault(callee, {})[what] = count
        return dict(sorted(result.items()))

    def __str__(self) -> str:
        names = [
            name for name, value in vars(self).items() if not name.startswith("_") and type(value) is int
        ]
        return "Stats(" + ", ".join(f"{name}={getattr(self, name)}" for name in names) + ")"


def _add(table: dict[str, int], callee: str, count: int) -> None:
    """`count` more for `callee` in one of the stats' per-callee tables (under the stats' lock)."""
    table[callee] = table.get(callee, 0) + count


_I = TypeVar("_I", bound="Issued")
_SKIPPED_VISITS = 64  # how far past its planned visit of a site a call is looked for (`_issued_later`)


@dataclass
class Issued:
    """A call issued ahead: what it was handed (see `as_handed`) and its future."""

    name: str  # the planned operation's, for stats.wasted_by_callee and rejected_by_callee
    callee: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    future: Future[Any]

    @classmethod
    def handing(
        cls: type[_I],
        name: str,
        callee: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        future: Future[Any],
    ) -> _I:
        """The record of a call just issued, its arguments kept as they were handed (`as_handed`)."""
        return cls(
            name, callee, tuple(map(as_handed, args)), {k: as_handed(v) for k, v in kwargs.items()}, future
        )

    def unused(self, stats: Stats) -> None:
        """The run will not use this call: cancelled, or counted as wasted if it had started."""
        if not self.future.cancel():
            stats.per_callee("wasted", self.name)


class Replay:
    """One call of a jitted function on a plan."""

    def __init__(
        self,
        plan: Plan,
        schedule: Schedule,
        sites: dict[SiteKey, list[int]],
        env: Env,
        executor: Executor,
        stats: Stats,
        code: types.CodeType,
        arm_sites: Mapping[int, SiteKey] | None = None,
        speculation: Speculation | None = None,
        *,
        follow: Callable[[Any], Any],
    ) -> None:
        self.plan = plan
        # what a call is made through: a helper of the user's through its own jitted function
        # (see execute.follow), anything else as it is
        self.follow = follow
        self.code = code  # the clone's: its frame holds the locals some recipes read
        self.schedule = schedule
        # the schedule's calls, and those of rounds a loop over a result runs beyond the traced ones,
        # numbered after them (see _extend); `origin[i]` is the traced op call i repeats
        self.recipes: list[Recipe] = list(schedule.recipes)
        self.origin: list[int] = list(schedule.origin)
        self.dependents: Mapping[int, Sequence[int]] = schedule.dependents
        self.extending = list(plan.result_loops) if schedule is plan.schedule else []
        self.sites = sites
        self.env = env
        self.executor = executor
        self.stats = stats
        self.context = contextvars.copy_context()
        self.in_process = runs_in_process(executor)
        self.lock = threading.Lock()
        self.issued: dict[int, Issued] = {}
        self.memoized: list[int] = []  # issued calls of an lru_cache wrapper (see _cache_mate)
        self.waiting: dict[int, list[int]] = {}  # issued call -> planned calls issued once it returns
        self.cache_room: dict[int, bool] = {}  # id of an lru_cache wrapper -> see _cache_has_room
        self.local_envs: dict[int, Env] = {}  # planned call -> env with the locals read for it
        self.consumed: set[int] = set()
        self.passed: set[int] = set()  # calls issued that the visit planned for them did not take
        self.occurrences: dict[SiteKey, int] = {}
        # for a plan with calls under branches on results: the site of each planned call, and the calls
        # issued under such branches and not served yet, by site (see _issued_like)
        # (`arm_sites`: those of calls learned from later traces, see `CachedPlan`, served only so)
        self.site_of: dict[int, SiteKey] = {}
        if schedule.conditional:
            self.site_of = {op: key for key, ops in sites.items() for op in ops} | dict(arm_sites or {})
        self.open_at: dict[SiteKey, dict[int, None]] = {}
        self.speculation = speculation
        self.guesses: set[int] = set()  # calls issued on a guess (see speculation)
        self.unsure: set[int] = set()  # those of them whose branches are not decided yet
        self.lost = 0  # guesses whose branches went the other way after they had started
        self.rejections: dict[int, int] = {}  # planned call -> its attempts answered as overloaded
        self.mispredicted = False
        self.finished = False  # once the run has ended, arriving results issue nothing more
        # planned call -> (start, end, thread id, issued ahead): when the calls the run used ran (see
        # `timeline`); set by a worker's `_timed` run, the run's `_in_place`, or when a result arrives
        # (from another process's executor: thread id 0)
        self.began = time.perf_counter()
        self.ran: dict[int, tuple[float, float, int, bool]] = {}
        self.issued_at: dict[int, float] = {}  # (for an executor of another process)
        self.used: set[int] = set()  # planned calls a call site of the run took: `consumed` at `finish`

    # -- scheduling ------------------------------------------------------------------------------

    def start(self) -> None:
        with self.lock:
            ready = [
                index for index, recipe in enumerate(self.recipes) if recipe.ahead and self._ready(recipe)
            ]
        self._issue(ready)

    def _ready(self, recipe: Recipe) -> bool:
        """Are the results a planned call needs known (with speculation, those its arguments need)?
        Under the lock."""
        known = self.env.outputs.keys()
        if recipe.needs <= known:
            return True
        return self.speculation is not None and bool(recipe.when) and recipe.arg_needs <= known

    def _issue(self, op_ids: list[int]) -> None:
        for op_id in op_ids:
            recipe = self.recipes[op_id]
            with self.lock:
                if self.finished or op_id in self.issued or op_id in self.consumed:
                    continue
                if self.origin[op_id] in self.plan.mispredicted:
                    continue  # it was mispredicted before: it runs in its turn
                env = self.local_envs.get(op_id, self.env)
                holds = recipe.holds(env) if recipe.when else True
                # the branches it is under go another way (never issued), or are not known yet (issued
                # when the last result they read arrives, if they hold; or now, on a guess)
                if holds is False or (holds is None and not self._may_guess()):
                    continue
                try:
                    callee, args, kwargs = recipe.call(env)
                except NotComputable:
                    continue  # it will run in its turn
                memoized = memo_wrapper(callee) is not None
                if holds is None and (memoized or not self._allows(callee, args)):
                    continue  # (a guess must not fill a cache entry the plain run would not)
                if memoized and (op_id >= len(self.schedule.recipes) or not self._cache_has_room(callee)):
                    continue  # it runs in its turn (a round beyond the traced ones was not counted)
                mate = self._cache_mate(callee, args, kwargs, running=False) if memoized else None
                if mate is not None:
                    # issued now, it would miss the cache like its mate and call the function behind
                    # it again: it goes once the mate has returned (and then hits the cache)
                    if not self.issued[mate].future.done():
                        self.waiting.setdefault(mate, []).append(op_id)
                    continue  # (a mate that raised cached nothing: this one runs in its turn)
                future = self._submit(op_id, callee, args, kwargs)
                if future is None:
                    continue  # it runs in its turn (and the executor cannot take a call of this run)
                self.issued[op_id] = Issued.handing(recipe.op.name, callee, args, kwargs, future)
                if holds is None:
                    self.guesses.add(op_id)
                    self.unsure.add(op_id)
                    self.stats.bump("speculated")
                site = self.site_of.get(op_id) if recipe.when else None
                if site is not None:
                    self.open_at.setdefault(site, {})[op_id] = None
                if memoized:
                    self.memoized.append(op_id)
            future.add_done_callback(functools.partial(self._arrived, op_id))

    def _may_guess(self) -> bool:
        """May one more call go on a guess?  Guesses pending or lost stay within the cap.  Under the lock."""
        return self.speculation is not None and len(self.unsure) + self.lost < self.speculation.cap

    def _allows(self, callee: Any, args: tuple[Any, ...]) -> bool:
        return self.speculation is not None and self.speculation.allows(callee, args)

    def _submit(
        self, op_id: int, callee: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Future[Any] | None:
        """Issue one call within its API's limit (with a copy of the run's contextvars where the
        executor runs it in this process, noting when it runs), or None when the executor cannot take
        it: it then runs in its turn."""
        if not self.in_process and not can_submit(self.executor, callee, args, kwargs):
            return None
        if self.in_process:  # (a worker notes when it runs the call)
            run = _timed(self.ran, op_id, self.follow(callee))
            return issue_ahead(self.executor, self.context, True, callee, args, kwargs, run)
        self.issued_at[op_id] = time.perf_counter()  # (an answer from another process: see `_arrived`)
        return issue_ahead(self.executor, self.context, False, callee, args, kwargs)

    def _cache_mate(
        self, callee: Any, args: tuple[Any, ...], kwargs: dict[str, Any], *, running: bool
    ) -> int | None:
        """An issued call of the same lru_cache wrapper that may use the same cache entry, and is still
        running (or, unless `running`, did not return a value: nothing was cached).  Under the lock."""
        key = _cache_key(callee, args, kwargs)
        for op_id in self.memoized:
            future = self.issued[op_id].future
            if future.done() and (running or (not future.cancelled() and future.exception() is None)):
                continue
            issued = self.issued[op_id]
            if _may_share_entry(_cache_key(issued.callee, issued.args, issued.kwargs), key):
                return op_id
        return None

    def _cache_has_room(self, callee: Any) -> bool:
        """Can every call of this run enter the wrapper's cache without evicting an entry?  Else which
        calls hit the cache would depend on the order they are made in: none is issued ahead.  Decided
        once a run (under the lock)."""
        wrapper = memo_wrapper(callee)
        room = self.cache_room.get(id(wrapper))
        if room is None:
            info = wrapper.cache_info()
            room = info.maxsize is None or info.currsize + len(self.recipes) <= info.maxsize
            self.cache_room[id(wrapper)] = room
        return bool(room)

    def _arrived(self, op_id: int, future: Future[Any]) -> None:
        if future.cancelled():
            return  # the real run makes it in place if it gets there (and then issues what waits for it)
        if op_id not in self.ran:  # (an executor of another process: from its issue to its answer)
            self.ran[op_id] = (self.issued_at.get(op_id, self.began), time.perf_counter(), 0, True)
        waiting: list[int] = []
        if self.waiting:  # (only calls of an lru_cache wrapper ever wait: no lock for the others)
            with self.lock:
                waiting = self.waiting.pop(op_id, [])
        exc = future.exception()
        if isinstance(exc, Withdrawn):
            self._withdrawn(op_id, future, exc)
            return  # (`waiting`: they run in their turn)
        if exc is not None:
            return  # the real run will meet the exception at the call site (and `waiting` theirs)
        self._record(op_id, future.result())
        if waiting:
            self._issue(waiting)

    def _record(self, op_id: int, value: Any) -> None:
        with self.lock:
            self.env.outputs[op_id] = value
            if self.unsure:
                self._settle()
            extended = self._extend() if self.extending else []
            ready = extended + [
                dependent
                for dependent in self.dependents.get(op_id, ())
                if self._ready(self.recipes[dependent])
            ]
        if ready:
            self._issue(ready)

    def _withdrawn(self, op_id: int, future: Future[Any], withdrawn: Withdrawn) -> None:
        """A call issued ahead that the API answered as overloaded (or that was never made) is not
        served: it is issued again after a back-off, at most `RETRIES_AHEAD` times, unless the run
        has ended or reached it (it then makes the call itself, see `dispatch`)."""
        with self.lock:
            issued = self.issued.get(op_id)
            if issued is None or issued.future is not future:
                return
            if withdrawn.rejected is not None:
                self.stats.per_callee("rejected", issued.name)
            if self.finished or op_id in self.consumed:
                return
            self._forget(op_id)
            tries = self.rejections[op_id] = self.rejections.get(op_id, 0) + 1
        if withdrawn.rejected is not None and tries < RETRIES_AHEAD:
            later(backoff(tries, withdrawn.rejected), functools.partial(self._issue, [op_id]))

    def _forget(self, op_id: int) -> None:
        """A call issued ahead that will not be served is as if never issued.  Under the lock."""
        del self.issued[op_id]
        self.guesses.discard(op_id)
        self.unsure.discard(op_id)
        if op_id in self.memoized:
            self.memoized.remove(op_id)
        site = self.site_of.get(op_id)
        if site is not None:
            self.open_at.get(site, {}).pop(op_id, None)

    def _settle(self) -> None:
        """Guesses whose branches are now decided: confirmed, or (the branches go the other way)
        cancelled, as if never issued, or, already started, lost.  Under the lock."""
        for op_id in list(self.unsure):
            holds = self.recipes[op_id].holds(self.local_envs.get(op_id, self.env))
            if holds is None:
                continue
            self.unsure.discard(op_id)
            if holds or op_id in self.consumed:
                continue
            if self.issued[op_id].future.cancel():
                self._forget(op_id)
            else:  # (wasted when the run ends, unless it makes this very call after all)
                self.lost += 1

    def _extend(self) -> list[int]:
        """Rounds beyond the traced ones of the loops over results whose sequence is now known: their
        calls are numbered after every other, their sites serve them from the traced rounds' on, and
        those whose inputs are known are returned to be issued.  Under the lock."""
        ready: list[int] = []
        for loop in [loop for loop in self.extending if loop.needs <= self.env.outputs.keys()]:
            self.extending.remove(loop)
            try:
                sequence = evaluate(loop.sequence, self.env)
            except NotComputable:
                continue
            keys = self._round_sites(loop)
            if type(sequence) not in SIZED or keys is None or len(sequence) <= loop.traced:
                continue
            # this replay's own tables from now on: the schedule's are shared with other replays
            sites = {key: list(ops) for key, ops in self.sites.items()}
            dependents = {op: list(ops) for op, ops in self.dependents.items()}
            for k in range(loop.traced, len(sequence)):
                for offset, recipe in enumerate(loop.round(k, len(self.recipes))):
                    index = len(self.recipes)
                    self.recipes.append(recipe)
                    self.origin.append(loop.start + offset)
                    sites[keys[offset]].append(index)
                    if self.site_of:
                        self.site_of[index] = keys[offset]
                    for need in recipe.needs:
                        dependents.setdefault(need, []).append(index)
                    if recipe.ahead and self._ready(recipe):
                        ready.append(index)
            self.sites, self.dependents = sites, dependents
        return ready

    def _round_sites(self, loop: ResultLoop) -> list[SiteKey] | None:
        """The site of each call of a round, when the sites served exactly the traced rounds' calls
        (else None: a site also used elsewhere would be misnumbered).  Under the lock."""
        rounds = range(loop.start, loop.start + loop.traced * loop.body)
        key_of = {op: key for key, ops in self.sites.items() for op in ops if op in rounds}
        keys = [key_of.get(loop.start + offset) for offset in range(loop.body)]
        found = [key for key in keys if key is not None]
        if len(found) != loop.body:
            return None
        for key in set(found):
            offsets = [offset for offset in range(loop.body) if keys[offset] == key]
            served = [loop.start + k * loop.body + offset for k in range(loop.traced) for offset in offsets]
            if self.sites[key] != served:
                return None
        return found

    # -- the call sites --------------------------------------------------------------------------

    def dispatch(self, key: SiteKey, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        with self.lock:
            occurrence = self.occurrences.get(key, 0)
            self.occurrences[key] = occurrence + 1
            planned = self.sites.get(key, [])
            op_id = planned[occurrence] if occurrence < len(planned) else None
            if op_id in self.consumed:
                op_id = None  # served already, to an earlier call at this site (see _issued_like)
            issued = self.issued.get(op_id) if op_id is not None else None
            same = issued is not None and same_call(issued, fn, args, kwargs)
            if not same:
                found = self._issued_like(key, fn, args, kwargs) if self.open_at else None
                if found is None:
                    found = self._issued_later(key, planned, occurrence, fn, args, kwargs)
                if found is not None:
                    (op_id, issued), same = found, True
                elif op_id is not None and issued is not None and op_id not in self.guesses:
                    # a visit the plan did not count (a retry's, `while True: try: ... break`) or a
                    # call it mispredicted: made in place, and the call issued for this visit waits
                    # for the next one (learnt as mispredicted if no visit takes it: see _passed_over)
                    self.occurrences[key] = occurrence
                    self.passed.add(op_id)
                    op_id = issued = None
            guessed = False
            if op_id is not None:
                self.consumed.add(op_id)
                if self.open_at:
                    self.open_at.get(key, {}).pop(op_id, None)
                # a guess reached with other arguments (the run took another path): lost, not a
                # misprediction of the plan
                guessed = op_id in self.guesses and (op_id in self.unsure or not self._holds(op_id))
                self.unsure.discard(op_id)
        if op_id is not None and op_id in self.schedule.ready_at:
            self._read_locals(self.schedule.ready_at[op_id])
        if issued is None or op_id is None:
            return self._in_place(op_id, fn, args, kwargs)
        if not same:
            if guessed:
                issued.unused(self.stats)
            else:
                self._mispredicted(op_id, issued)
            return self._in_place(op_id, fn, args, kwargs)
        self.stats.bump("served")  # (found issued: served, or taken over if not started; see Stats)
        cancelled, room = take_over(issued.future)
        if cancelled:
            # not started yet (or cancelled by someone else, e.g. an executor shut down with
            # cancel_futures): the pool will never run it, so this thread makes the call itself (in the
            # room it held under its API's limit) rather than wait for a slot that its own waiter may
            # hold (nested or recursive jitted calls on one pool would deadlock)
            return self._in_place(op_id, fn, args, kwargs, counted=True, room=room)
        wait_done(issued.future)
        if not answered(issued.future):  # e.g. answered as overloaded, or lost by a cluster: made here
            return self._in_place(op_id, fn, args, kwargs, counted=True)
        result = issued.future.result()  # re-raises the call's own exception here
        self.stats.made(issued.name, result, ahead=True)
        if self.extending:  # before the run reads it: a loop over it is extended first (see _extend)
            self._record(op_id, result)
        return result

    def _issued_like(
        self, key: SiteKey, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[int, Issued] | None:
        """Another call planned at this site, issued and not served yet, that is this very call.

        A site under a branch on results may be reached another number of times than in the trace
        before a call issued for it (the branch went another way in an earlier round): its n-th call
        is then not the n-th planned one.  The same callee with the same arguments at the same site is
        the same call, whichever round it was planned for.  Under the lock."""
        for op_id in self.open_at.get(key, ()):
            issued = self.issued[op_id]
            if same_call(issued, fn, args, kwargs):
                return op_id, issued
        return None

    def _issued_later(
        self,
        key: SiteKey,
        planned: list[int],
        occurrence: int,
        fn: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> tuple[int, Issued] | None:
        """A call planned at this site for a later visit, issued and not served yet, that is this very
        call: the run skipped the visits planned before it (an earlier round raised and the loop went
        on, `except ValueError: continue`; an inner loop ran fewer rounds).  Those are skipped: never
        issued from now on, wasted if they were, and the site's next visit is the one after it.  Under
        the lock."""
        own = planned[occurrence] if occurrence < len(planned) else None
        if own is not None and own not in self.issued and self._would_make(own, fn, args, kwargs):
            # this visit's own call, not issued (it waits for a call of its lru_cache wrapper that may
            # fill the entry it reads, say): a later visit's call like it is the same call again
            return None
        for index in range(occurrence + 1, min(len(planned), occurrence + 1 + _SKIPPED_VISITS)):
            op_id = planned[index]
            issued = self.issued.get(op_id)
            if issued is None or op_id in self.consumed or not same_call(issued, fn, args, kwargs):
                continue
            for skipped in planned[occurrence:index]:
                self._passed_over(skipped)
            self.occurrences[key] = index + 1
            return op_id, issued
        return None

    def _would_make(self, op_id: int, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        """Is this the call planned call `op_id` makes, as its recipe computes it now?  Under the lock."""
        try:
            callee, planned_args, planned_kwargs = self.recipes[op_id].call(
                self.local_envs.get(op_id, self.env)
            )
        except NotComputable:
            return False
        return same_parts(callee, planned_args, planned_kwargs, fn, args, kwargs)

    def _passed_over(self, op_id: int) -> None:
        """The run went past the visit planned for `op_id` without taking its call: never issued from
        now on, and if issued, wasted (unless not started); a call a visit did not take
        (`passed`) was mispredicted, and the plan learns it.  Under the lock."""
        if op_id in self.consumed:
            return
        self.consumed.add(op_id)
        issued = self.issued.get(op_id)
        if issued is None:
            return
        if op_id in self.passed:
            self._mispredicted(op_id, issued)
        else:
            issued.unused(self.stats)

    def _read_locals(self, planned: tuple[int, ...]) -> None:
        """The run is at a call after which, in the trace, these planned calls' locals were final: read
        them from the function's frame and issue the calls (see plan.ready_at)."""
        frame = sys._getframe(2)
        for _ in range(4):  # from a comprehension's frame (3.10, 3.11) up to the function's
            if frame.f_code is self.code or frame.f_back is None:
                break
            frame = frame.f_back
        if frame.f_code is not self.code:
            return
        f_locals = frame.f_locals
        with self.lock:
            for op_id in planned:
                values = {}
                for local in local_reads(self.recipes[op_id]):
                    try:
                        values[local] = f_locals[local.name]
                    except KeyError:
                        break
                else:
                    self.local_envs[op_id] = dataclasses.replace(self.env, locals=values)
        self._issue(list(planned))

    def _in_place(
        self,
        op_id: int | None,
        fn: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        counted: bool = False,
        room: Room | None = None,
    ) -> Any:
        """Make the real call on this thread; `counted` when it was counted as served; `room`: the
        room under its API's limit it took over from the same call issued ahead."""
        if not counted:
            self.stats.bump("in_place")
        if memo_wrapper(fn) is not None:
            self._await_cache_mates(fn, args, kwargs)
        name = self.recipes[op_id].op.name if op_id is not None else None
        start = time.perf_counter()
        try:
            result = call_in_turn(self.follow(fn), args, kwargs, rejected_counter(self.stats, name, fn), room)
        finally:
            if op_id is not None:
                self.ran[op_id] = (start, time.perf_counter(), threading.get_ident(), False)
        self.stats.made(name or describe_callee(fn), result)
        if op_id is not None:
            self._record(op_id, result)
            with self.lock:
                waiting = self.waiting.pop(op_id, [])
            if waiting:
                self._issue(waiting)  # (calls of its lru_cache wrapper that waited for it; see _issue)
        return result

    def _await_cache_mates(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """A call issued ahead may be filling the cache entry this one reads: made now, this one would
        miss the cache and call the function behind it a second time.  Wait for those already running;
        cancel those not started (they will run in their turn), so nothing waits for a pool slot."""
        while True:
            with self.lock:
                mate = self._cache_mate(fn, args, kwargs, running=True)
                future = self.issued[mate].future if mate is not None else None
            if future is None:
                return
            if not future.cancel():
                wait_done(future)

    def _holds(self, op_id: int) -> bool:
        """Do the branches a planned call is under hold now?  Under the lock."""
        recipe = self.recipes[op_id]
        return not recipe.when or recipe.holds(self.local_envs.get(op_id, self.env)) is True

    def _mispredicted(self, op_id: int, issued: Issued) -> None:
        """The real call differs from the one issued ahead: the issued one is wasted (unless it had not
        started), and the plan learns not to issue this call ahead again."""
        self.stats.bump("mispredictions")
        self.mispredicted = True
        self.plan.mispredicted.add(self.origin[op_id])
        issued.unused(self.stats)

    def finish(self) -> None:
        """Cancel planned calls the run did not reach; count those already under way as wasted."""
        with self.lock:
            self.finished = True
            leftover = [op_id for op_id in self.issued if op_id not in self.consumed]
            self.used = set(self.consumed)  # (before the leftover join them)
            for op_id in leftover:
                self._passed_over(op_id)
        self.plan.replays += 1
        if self.mispredicted:
            self.plan.mispredictions += 1
        elif self.plan.forks and self.schedule is self.plan.schedule:
            # where the results went a way the trace did not: a later call is traced to learn that arm
            self.plan.strayed |= strays(self.plan, self.env)

    def timeline(self, function: str) -> Callable[[], Timeline]:
        """What makes, when asked, the timeline of the planned calls the run used, beside the traced
        run's (see `execute.timeline`): only times and the plan's operations are kept, not the run."""
        return functools.partial(_timeline, function, self.began, self.ran, self.used, self.recipes)


def _timeline(
    function: str,
    began: float,
    ran: Mapping[int, tuple[float, float, int, bool]],
    used: set[int],
    recipes: Sequence[Recipe],
) -> Timeline:
    times = {op_id: at for op_id, at in ran.items() if op_id in used}
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    starts = [recipes[op_id].op.metadata.get("start") for op_id in times]
    origin = min((start for start in starts if isinstance(start, float)), default=0.0)
    spans = []
    for op_id, (start, end, worker, ahead) in sorted(times.items(), key=lambda item: item[1][0]):
        op = recipes[op_id].op
        traced = op.metadata.get("start")
        when = (traced - origin, traced - origin + op.duration) if isinstance(traced, float) else None
        if worker not in names:  # (a pool's thread started without `threading`: numbered as first seen)
            names[worker] = f"worker {sum(name.startswith('worker ') for name in names.values()) + 1}"
        thread = names[worker] if worker else "executor"
        spans.append(Span(op.name, op.site, start - began, end - began, thread, ahead, when))
    seconds = max((span.end for span in spans), default=0.0)
    traced_seconds = max((span.traced[1] for span in spans if span.traced is not None), default=0.0)
    return Timeline(function, seconds, traced_seconds, tuple(spans))


def _timed(ran: dict[int, tuple[float, float, int, bool]], op_id: int, callee: Any) -> Callable[..., Any]:
    """`callee`, noting in `ran` when it ran and on which thread (a call issued ahead, on a worker)."""

    def run(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return callee(*args, **kwargs)
        finally:
            ran[op_id] = (start, time.perf_counter(), threading.get_ident(), True)

    return run


def rejected_counter(stats: Stats, name: str | None, fn: Any) -> Callable[[], None]:
    """What counts an attempt of a call in its turn answered as overloaded (`name`: its operation's)."""
    return lambda: stats.per_callee("rejected", name or describe_callee(fn))


# -- memoized callees: calls that may share an lru_cache entry are not made at once -------------------

_CacheKey = tuple[Any, tuple[Any, ...], dict[str, Any]]


def _cache_key(callee: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _CacheKey:
    """The wrapper and what its cache key is made of (a bound method's object is its first argument)."""
    if type(callee) is types.MethodType:
        return callee.__func__, (callee.__self__, *args), kwargs
    return callee, args, kwargs


def _may_share_entry(a: _CacheKey, b: _CacheKey) -> bool:
    """Could the calls `a` and `b` of one wrapper read the same cache entry?  Only provably distinct keys
    say no: an lru_cache compares keys with ==, so 1 and 1.0 share one entry, and so may objects whose
    class defines __eq__ (asking them would run user code)."""
    (fa, pa, ka), (fb, pb, kb) = a, b
    if fa is not fb or len(pa) != len(pb) or list(ka) != list(kb):  # keyword order is part of the key
        return False
    return all(_may_be_equal(x, y) for x, y in zip((*pa, *ka.values()), (*pb, *kb.values()), strict=True))


_KEY_DATA = (str, bytes, int, float, complex, bool, type(None))


def _may_be_equal(x: Any, y: Any) -> bool:
    if x is y:
        return True
    if type(x) in _KEY_DATA and type(y) in _KEY_DATA:
        return bool(x == y)  # built-in data: == runs no user code
    if type(x) is tuple and type(y) is tuple:
        return len(x) == len(y) and all(_may_be_equal(p, q) for p, q in zip(x, y, strict=True))
    # two objects of one class that keeps object's __eq__ are equal only when identical
    return not (type(x) is type(y) and class_lookup(type(x), "__eq__") is object.__eq__)


def as_handed(value: Any) -> Any:
    """An argument of a call issued ahead as it was handed, to compare with the real call's: a list or
    dict of built-in data is copied first, since the callee may change the one it got
    (`messages.insert(0, system)`) before the run reaches the call.  (Copying built-in data runs no
    user code; other objects are compared by identity anyway.)"""
    return copy.deepcopy(value) if type(value) in (list, dict) and plain(value) else value


def same_call(issued: Issued, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    return same_parts(issued.callee, issued.args, issued.kwargs, fn, args, kwargs)


def same_parts(
    callee: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    fn: Any,
    other_args: tuple[Any, ...],
    other_kwargs: dict[str, Any],
) -> bool:
    """Are the two calls the same: the same callee, handed the same values?"""
    if len(args) != len(other_args) or kwargs.keys() != other_kwargs.keys():
        return False
    if not same_value(callee, fn):
        return False
    for a, b in zip(args, other_args, strict=True):  # (a loop, not all() of a generator: per served call)
        if not same_value(a, b):
            return False
    return all(same_value(kwargs[k], other_kwargs[k]) for k in kwargs)


# -- routing a clone's dispatches to the replay running it on this thread ---------------------------

_active = threading.local()


def dispatcher_for(plan: Plan) -> Dispatch:
    """The dispatch function a plan's clone calls: the innermost replay of that plan on this thread."""

    def dispatch(key: SiteKey, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        replay = running(plan)
        if replay is None:
            return fn(*args, **kwargs)  # the clone ran outside a replay (e.g. from another thread)
        return replay.dispatch(key, fn, args, kwargs)

    return dispatch


def running(plan: Plan) -> Replay | None:
    """The innermost replay of `plan` on this thread, if any."""
    stack: list[Replay] | None = getattr(_active, "by_plan", {}).get(id(plan))
    return stack[-1] if stack else None


def push(replay: Replay) -> None:
    by_plan: dict[int, list[Replay]] = _active.__dict__.setdefault("by_plan", {})
    by_plan.setdefault(id(replay.plan), []).append(replay)


def pop(replay: Replay) -> None:
    """Take `replay` off its stack (nothing to do if an interrupt came before it was pushed)."""
    stack: list[Replay] = getattr(_active, "by_plan", {}).get(id(replay.plan), [])
    for index in range(len(stack) - 1, -1, -1):
        if stack[index] is replay:
            del stack[index]
            break
    if not stack:
        _active.__dict__.get("by_plan", {}).pop(id(replay.plan), None)

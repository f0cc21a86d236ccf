"""`xcs.jit`: run a function's independent slow calls at the same time, behaving exactly like it.

    fast = xcs.jit(legacy.pipeline)        # or @xcs.jit, or @xcs.jit(max_workers=16, ...)
    fast(docs)                             # first call: traced (its loops' later rounds go ahead)
    fast(other_docs)                       # later calls: replayed, planned calls issued ahead
    fast.stats, fast.explain()

The first call with arguments no cached plan's guards accept runs *observed*:
it behaves exactly like the plain call, and its graph becomes a `Plan`; it runs
a gated clone, so that the later rounds of its loops go ahead once the first
round shows how their calls are made (see `execute.first`).  A
later call whose arguments pass a plan's guards runs the plan's clone while the
planned calls go ahead on the executor (see `replay`).  When a replay's results
go the other way than the trace's at a branch whose other arm makes calls, the
next call the plan applies to is traced again, and the plan learns that arm
(see `plan.learn`: at most `LESSONS` such traces per plan).  A plan that issues
nothing ahead applies only to calls shaped like its trace and is tried after
the others; after three traces in a row that found nothing to issue ahead
(or made no plan), the function runs plainly.  A traced call that raised does
not count toward that (a cold upstream may fail the first calls): after k of
them in a row, the next 2**(k-1) - 1 calls that would be traced (at most
`_MAX_BACKOFF`) run plainly, then one is traced again.  Functions the jit
cannot replay (generators, async generators, code the rewriter refuses) run plainly,
and `explain()` says why.
"""

from __future__ import annotations

import collections
import dataclasses
import dis
import functools
import inspect
import logging
import sys
import threading
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, cast, overload

from xcs_bc._compat import CO_GENERATOR_LIKE
from xcs_bc.build.builder import GraphBuilder
from xcs_bc.capture import check_min_call_ms
from xcs_bc.errors import CaptureError, ConfigError, UnsupportedCodeError, XCSError
from xcs_bc.execute.awaits import twin
from xcs_bc.execute.cached import CachedPlan
from xcs_bc.execute.callsites import SiteKey
from xcs_bc.execute.executor import Executor, default_executor, thread_pool
from xcs_bc.execute.fanout import Fanning
from xcs_bc.execute.first import FirstCall, first_call
from xcs_bc.execute.follow import Follower
from xcs_bc.execute.many import run_many
from xcs_bc.execute.replay import Replay, Stats, pop, push
from xcs_bc.execute.speculation import speculation
from xcs_bc.execute.timeline import Timeline
from xcs_bc.execute.trampoline import run as run_on_twin_thread
from xcs_bc.ir.values import peek_attr
from xcs_bc.observe import hooks as observe
from xcs_bc.observe.foreign import foreign_hook
from xcs_bc.plan.guards import Miss
from xcs_bc.plan.learn import LESSONS
from xcs_bc.plan.learn import learn as learned_arms
from xcs_bc.plan.planner import Plan, Schedule, make_plan
from xcs_bc.plan.readpoints import local_names
from xcs_bc.plan.release import released
from xcs_bc.plan.slices import Env

P = ParamSpec("P")  # the wrapped function's parameters
R = TypeVar("R")  # its return type
_Q = ParamSpec("_Q")  # a method's parameters after `self`
_S = TypeVar("_S")  # the object a method is bound to
_RETIRE_AFTER = 3  # replays with a misprediction before a plan is dropped
_GIVE_UP = 3  # traces in a row that make no plan issuing a call ahead before the function runs plainly
_MAX_BACKOFF = 255  # calls run plainly, at most, after traced calls that raised
# traces, plan misses, lessons and retirements at debug level; once at info level, that a function
# found nothing to issue ahead (and why) or now runs plainly
_log = logging.getLogger("xcs_bc")


class JittedFunction(Generic[P, R]):
    """What `xcs.jit(fn)` returns: call it as `fn` (or `map` it over many inputs); `stats` and
    `explain()` say what it did.

    It keeps `fn`'s name, docstring, signature and `__wrapped__`, binds as a method when it
    decorates one (`obj.method` shares plans and stats), and `inspect`'s predicates
    (`iscoroutinefunction`, `isgeneratorfunction`, ...) answer for it as for `fn`.  See
    `xcs.jit` for the options, the errors and what `stats` counts.
    """

    stats: Stats

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        max_workers: int | None = None,
        min_call_ms: float = 1.0,
        cache_size: int = 8,
        executor: Executor | None = None,
        speculate: bool | Iterable[Any] = False,
        max_wasted_per_call: int = 8,
    ) -> None:
        target, self._bound_self = _unwrap(fn)
        self._target = target
        self._fn = target
        self._min_call_ms = check_min_call_ms(min_call_ms)
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 1:
            raise ConfigError(f"cache_size must be an int >= 1, got {cache_size!r}")
        if max_workers is not None and (
            isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1
        ):
            raise ConfigError(
                f"max_workers must be an int >= 1 (or None for the shared pool), got {max_workers!r}"
            )
        if executor is not None and max_workers is not None:
            raise ConfigError("pass either executor= or max_workers=, not both")
        if executor is not None and not isinstance(executor, Executor):
            raise ConfigError(f"executor must have a submit(fn, *args) method, got {executor!r}")
        self._speculation = speculation(speculate, max_wasted_per_call)
        self._speculate = (speculate, max_wasted_per_call)  # (as given: a helper followed gets them too)
        self._cache_size = cache_size
        self._max_workers = max_workers
        self._executor = executor
        self._signature = inspect.signature(target)
        self._stored_globals = _stored(target.__code__, ("STORE_GLOBAL", "DELETE_GLOBAL"))
        self._stored_cells = _stored(target.__code__, ("STORE_DEREF", "DELETE_DEREF")) & frozenset(
            target.__code__.co_freevars
        )
        self._plans: list[CachedPlan] = []
        self._traces_without_plan = 0  # consecutive; past _GIVE_UP the function runs plainly
        self._retired = 0  # plans dropped for mispredicting; past _GIVE_UP the function runs plainly
        self._raised = 0  # traced calls in a row that raised
        self._untraced = 0  # calls that would be traced left to run plainly after those (back-off)
        self._lock = threading.RLock()  # _retire notes while holding it
        self.stats = Stats()
        self._fanning = Fanning(self._min_call_ms / 1000)  # (what its runs learn of its maps)
        self._refusal = _refusal(target)
        self._follower = Follower(self._helper_jit, (target.__code__,))
        self._notes: list[str] = []
        self._last_replay: Callable[[], Timeline] | None = None  # (made when asked)
        self._told_idle = False  # whether the log said once that a trace found nothing to issue ahead
        functools.update_wrapper(self, fn)
        _mirror_function_kind(self, fn, target)

    # -- calling -----------------------------------------------------------------------------------

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        call_args: tuple[Any, ...] = args if self._bound_self is None else (self._bound_self, *args)
        fn = self._fn
        if self._refusal is not None or observe.is_observing() or self._steps_aside():
            self.stats.bump("plain_runs")
            return cast(R, fn(*call_args, **kwargs))
        try:
            env = self._env(call_args, kwargs)
        except TypeError:
            self.stats.bump("plain_runs")
            return cast(R, fn(*call_args, **kwargs))  # a bad call: let the function raise its own TypeError
        found = self._lookup(env)
        if found is None and self._backing_off():
            self.stats.bump("plain_runs")
            return cast(R, fn(*call_args, **kwargs))
        if found is None:
            return self._trace(call_args, kwargs, env)
        if self._lesson(*found[:2]):
            return self._trace(call_args, kwargs, env, learn=found[0])
        return self._replay(*found, call_args, kwargs, env)

    def map(
        self,
        items: Iterable[Any],
        /,
        *args: Any,
        concurrency: int = 8,
        progress: bool | Callable[[int, int], Any] = False,
        **kwargs: Any,
    ) -> list[R]:
        """`[self(item, *args, **kwargs) for item in items]`, `concurrency` items at a time.

        The first item runs alone (it is the call traced; the others replay its plan), results
        come in the items' order, and when an item raises no item after it starts and the first
        exception in the items' order is raised, as the loop would.  Items after it already
        running finish, their results dropped.  `progress=True` writes `done/total` to stderr as
        items finish; a callable gets (done, total).  Limits named with `xcs.limit` hold across
        the items.  ConfigError for a `concurrency` that is not an int >= 1 or a `progress` that
        is neither a bool nor a callable.
        """
        return run_many(self, self._fn.__qualname__, items, args, kwargs, concurrency, progress)

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> JittedFunction[P, R]: ...
    @overload
    def __get__(
        self: JittedFunction[Concatenate[_S, _Q], R], instance: _S, owner: type | None = None
    ) -> Callable[_Q, R]: ...

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        """Methods: `obj.method` gives a jitted callable bound to `obj` (sharing plans and stats)."""
        if instance is None:
            return self
        return types.MethodType(self, instance)

    def _steps_aside(self) -> bool:
        """A debugger, profiler or monitoring tool of the user's watches: run plainly, disturb nothing."""
        hook = foreign_hook(self._fn.__code__)
        if hook is None:
            return False
        note = f"ran plainly while {hook}"
        if note not in self._notes[-1:]:
            self._note(note)
        return True

    def _env(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Env:
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        fn = self._fn
        cells = dict(zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=True))
        for name in self._stored_cells:
            # as for globals below: a closure variable the function assigns (`nonlocal count; count +=
            # 1`) means its value when the call began, not the one a late recipe would find
            cells[name] = _entry_cell(cells[name])
        globals_: Mapping[str, Any] = fn.__globals__
        if self._stored_globals:
            # A recipe's global means its value when the call began (the builder tracks what the
            # function itself stores): a recipe evaluated late must not see the run's later store.
            entry = {name: globals_[name] for name in self._stored_globals if name in globals_}
            globals_ = collections.ChainMap(entry, fn.__globals__)
        return Env(dict(bound.arguments), globals_, cells)

    def _lookup(self, env: Env) -> tuple[CachedPlan, Schedule, dict[SiteKey, list[int]]] | None:
        with self._lock:
            plans = list(self._plans)
        reasons = []
        for cached in plans:
            fitted = cached.fit(env)
            if not isinstance(fitted, Miss):
                return cached, *fitted
            reasons.append(fitted)
        if plans:
            self.stats.bump("guard_misses")
            self._note(f"guard miss, traced again: {reasons[0]}")
        return None

    def _lesson(self, cached: CachedPlan, schedule: Schedule) -> bool:
        """Is this call, which `cached` applies to, to be traced so that the plan learns an arm its
        trace did not take, where an earlier replay went (see `plan.learn`)?  A lesson is counted as
        it starts: at most `LESSONS`, however many threads call at once."""
        plan = cached.plan
        if not plan.strayed or schedule is not plan.schedule:
            return False
        with self._lock:
            if plan.lessons >= LESSONS or cached not in self._plans:
                return False
            plan.lessons += 1
            return True

    def _trace(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], env: Env, learn: CachedPlan | None = None
    ) -> R:
        why = "to learn an arm its plan's trace did not take" if learn is not None else "no plan applies"
        _log.debug("xcs.jit(%s): tracing this call (%s)", self._fn.__qualname__, why)
        options: dict[str, Any] = {
            "min_call_ms": self._min_call_ms,
            "name": self._fn.__qualname__,
            "reads": True,
        }
        first = self._first_call(env, options)
        builder = first.builder if first is not None else GraphBuilder(**options)
        fn = first.function if first is not None else self._fn
        session = observe.Session(
            first.listener if first is not None else builder,
            frame=None,
            code=fn.__code__,
            parent=sys._getframe(),
            yields=True,
        )
        if first is not None:
            first.session = session
        builder.quieter = first if first is not None else session  # (see build.skipping)
        refused: CaptureError | None = None
        try:
            session.start()  # undoes itself when it fails
        except CaptureError as exc:  # e.g. every sys.monitoring tool id is taken: observing is optional
            refused = exc
        except BaseException:  # an interrupt just after start()
            session.stop()
            raise
        if refused is not None:
            self.stats.bump("plain_runs")
            self._note(f"could not observe ({refused}); this call ran plainly")
            return cast(R, self._fn(*args, **kwargs))
        try:
            self.stats.bump("traces")
            result = fn(*args, **kwargs)
        except BaseException:
            self._trace_raised()
            raise
        finally:
            try:
                session.stop()  # idempotent, and completes even when interrupted
            finally:
                builder.quieter = None  # (it refers to the session, which refers to the builder)
                if first is not None:
                    first.finish()
                    if first.issued:
                        self._note(
                            f"the traced call issued {first.issued} calls of its loops' later rounds "
                            f"ahead, {first.served} served"
                        )
        if session.error is not None:
            error = session.error
            self._note(f"observation ended early ({type(error).__name__}: {error}); this call ran plainly")
            if learn is None:
                self._no_plan()
            return cast(R, result)
        self._raised = 0
        self._remember(builder, env, learn)
        return cast(R, result)

    def _first_call(self, env: Env, options: Mapping[str, Any]) -> FirstCall | None:
        """A traced call that issues its loops' later rounds ahead (see `execute.first`), or None
        when the function makes no call in a loop or its code cannot be gated: it is then traced as
        it is."""
        try:
            return first_call(
                self._fn, env, self._get_executor, self.stats, options, self._fanning, self._follower
            )
        except XCSError as exc:
            self._note(f"the traced call runs as it is: {exc}")
            return None

    def _remember(self, builder: GraphBuilder, env: Env, learn: CachedPlan | None) -> None:
        try:
            trace = builder.finish(None)
            for op in trace.graph.operations:  # the slow calls the traced call made
                if op.outputs and not trace.calls[op.id].read:
                    self.stats.made(op.name, op.outputs[0].value)
            env = dataclasses.replace(env, locals=trace.locals)  # recipes are checked against them
            plan = make_plan(
                trace.graph,
                list(trace.decisions),
                env,
                trace.retained,
                trace.loops,
                trace.calls,
                trace.run,
                trace.forks,
                trace.unkept,
            )
            if learn is not None:
                self._learn(learn, plan)
                return
            # the plan kept holds no argument, result or exception of the trace it does not need
            plan, loops = released(plan, trace.loops)
            cached = CachedPlan(plan, self._fn, loops, trace.carried, self._fanning)
        except XCSError as exc:
            self._note(f"no plan: {exc}")
            if learn is None:  # (a lesson that taught nothing leaves its plan as it was)
                self._no_plan()
            return
        except Exception as exc:  # noqa: BLE001 - a bug of ours must not fail a call that succeeded
            self._note(f"no plan: internal error {exc!r} (please report it); the call ran plainly")
            if learn is None:
                self._no_plan()
            return
        with self._lock:
            # newest first, but a plan that issues nothing after every one that issues something:
            # it must not shadow them (its guards may still be weaker than its trace's decisions)
            at = 0 if not cached.idle else sum(not other.idle for other in self._plans)
            self._plans.insert(at, cached)
            del self._plans[self._cache_size :]
        if cached.idle:
            # kept, so that calls of its shape replay without tracing; but a trace that finds nothing
            # to issue ahead counts as one that made no plan, so shapes that never do stop being traced
            self._note("the trace found no call that can be issued ahead; calls of its shape still replay")
            if not self._told_idle:  # once: the user learns why the function is not faster
                self._told_idle = True
                why = _why_idle(cached.plan)
                _log.info("xcs.jit(%s) found nothing to issue ahead: %s", self._fn.__qualname__, why)
            self._no_plan()
        else:
            self._traces_without_plan = 0

    def _learn(self, cached: CachedPlan, other: Plan) -> None:
        """Teach `cached` the arms `other`, the plan of a call traced for it, took and its trace did not."""
        plan = learned_arms(cached.plan, other)
        if plan is None:
            # the next try waits for another replay that goes the other way: tries are spent only as
            # often as the run goes that way
            cached.plan.strayed.clear()
            self._note("a call traced to learn an arm its plan's trace did not take went that way too")
            return
        taught = cached.learned(plan, self._fn)
        with self._lock:
            if cached in self._plans:
                self._plans[self._plans.index(cached)] = taught
        self._note(f"learned {plan.learned[-1]}")

    def _trace_raised(self) -> None:
        """A traced call that raised makes no plan, and does not count toward giving up: the next
        calls may well succeed.  But tracing costs time, so after k such traces in a row the next
        2**(k-1) - 1 calls that would be traced run plainly (0, 1, 3, 7, ... at most _MAX_BACKOFF)."""
        with self._lock:
            self._raised += 1
            self._untraced = min(2 ** min(self._raised - 1, 16) - 1, _MAX_BACKOFF)
            plain = self._untraced
        calls = "call that would be traced runs" if plain == 1 else f"{plain} calls that would be traced run"
        later = f"; the next {calls} plainly first" if plain else ""
        self._note(f"the traced call raised: no plan was made from it{later}")

    def _backing_off(self) -> bool:
        """Is this call, which no plan applies to, one to run plainly after traces that raised?"""
        with self._lock:
            if self._untraced <= 0:
                return False
            self._untraced -= 1
            return True

    def _no_plan(self) -> None:
        """Tracing costs time; when it keeps yielding no plan, stop paying for it (at worst not faster)."""
        self._traces_without_plan += 1
        if self._traces_without_plan >= _GIVE_UP:
            self._give_up(
                f"{_GIVE_UP} traces in a row made no plan that issues a call ahead (see the notes); "
                "it now runs plainly"
            )

    def _give_up(self, reason: str) -> None:
        """From now on the function runs plainly, for `reason` (said once, through logging too)."""
        if self._refusal is None:
            self._refusal = reason
            _log.info("xcs.jit(%s): %s", self._fn.__qualname__, reason)

    def _replay(
        self,
        cached: CachedPlan,
        schedule: Schedule,
        sites: dict[SiteKey, list[int]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        env: Env,
    ) -> R:
        self.stats.bump("replays")
        if schedule.lengths:
            self.stats.bump("resized")
        arm_sites = cached.arm_sites if schedule is cached.plan.schedule else None
        executor = self._get_executor()
        code = cached.clone.__code__
        replay = Replay(
            cached.plan,
            schedule,
            sites,
            env,
            executor,
            self.stats,
            code,
            arm_sites,
            self._speculation,
            follow=self._follower,
        )
        try:
            push(replay)
            replay.start()
            return cached.clone(*args, **kwargs)  # type: ignore[no-any-return]
        finally:
            try:
                pop(replay)
            finally:  # (even when an interrupt arrives in between: cancel what was issued for nothing)
                replay.finish()
                self._last_replay = replay.timeline(self._fn.__qualname__)
                if cached.plan.mispredictions >= _RETIRE_AFTER:
                    self._retire(cached)

    def _retire(self, cached: CachedPlan) -> None:
        with self._lock:
            if cached in self._plans:
                self._plans.remove(cached)
                self._retired += 1
                if self._retired >= _GIVE_UP:
                    self._give_up(f"{_GIVE_UP} plans were dropped for mispredicting; it now runs plainly")
                retired = cached.plan.mispredictions
                self._note(f"a plan was retired after {retired} replays with mispredictions")

    def _helper_jit(
        self, helper: types.FunctionType, chain: tuple[types.CodeType, ...]
    ) -> JittedFunction[Any, Any]:
        """The jitted function this one calls `helper` through (see `execute.follow`): with its
        options and executor, following helpers of its own but none of `chain`."""
        speculate, max_wasted = self._speculate
        jitted: JittedFunction[Any, Any] = JittedFunction(
            helper,
            min_call_ms=self._min_call_ms,
            cache_size=self._cache_size,
            executor=self._get_executor(),
            speculate=speculate,
            max_wasted_per_call=max_wasted,
        )
        jitted._follower = Follower(jitted._helper_jit, chain)
        return jitted

    def _gains(self) -> bool:
        """Does calling this function through the jit gain anything, as a helper another jitted function
        follows into (see `execute.follow`): not traced yet, or a plan whose calls may overlap, or a
        helper it follows that gains?"""
        return self._refusal is None and (
            self.stats.traces == 0
            or any(cached.overlaps() for cached in self._plans)
            or any(helper.useful for helper in self._follower.helpers())
        )

    def _get_executor(self) -> Executor:
        if self._executor is None:
            self._executor = thread_pool(self._max_workers) if self._max_workers else default_executor()
        return self._executor

    def _note(self, text: str) -> None:
        """Keep `text` for explain() (the last 20), and log it (debug level, logger `xcs_bc`)."""
        with self._lock:
            self._notes.append(text)
            del self._notes[:-20]
        _log.debug("xcs.jit(%s): %s", self._fn.__qualname__, text)

    # -- explaining --------------------------------------------------------------------------------

    @property
    def last_replay(self) -> Timeline | None:
        """The timeline of the last replayed call (None before one): each slow call the run used, when
        it ran, on which thread, whether it was issued ahead or made in turn, beside the traced run's
        time for it.  Print it for a table; `to_svg()` draws it."""
        return self._last_replay() if self._last_replay is not None else None

    def explain(self) -> str:
        """What was found, what each plan issues ahead, what was refused and why."""
        name = self._fn.__qualname__
        lines = [f"xcs.jit({name}): {self.stats}"]
        if self._refusal is not None:
            lines.append(f"  runs plainly: {self._refusal}")
        if self._speculation is not None:
            lines.append(f"  {self._speculation.describe()}")
        for counter, what in (("wasted", "wasted"), ("rejected", "rejected as overloaded, made again")):
            counts = dict(getattr(self.stats, f"{counter}_by_callee"))
            if counts:
                lines.append(
                    f"  {what}: " + ", ".join(f"{callee} x{n}" for callee, n in sorted(counts.items()))
                )
        per_callee = [
            f"{callee} ({', '.join(f'{n} {what}' for what, n in counts.items())})"
            for callee, counts in self.stats.by_callee().items()
        ]
        if per_callee:
            lines.append("  by callee: " + "; ".join(per_callee))
        with self._lock:
            plans = list(self._plans)
            notes = list(self._notes)
        for number, cached in enumerate(plans):
            plan = cached.plan
            lines.append(f"  plan {number}: {len(plan.recipes)} slow calls, {plan.replays} replays")
            general = cached.general
            for guard in general.guards if general is not None else plan.guards:
                lines.append(f"    guard: {guard.describe()}")
            if cached.general is not None:
                lines.extend(f"    {line}" for line in cached.general.describe())
            for loop in plan.result_loops:
                lines.append(f"    {loop.describe()}")
            lines.extend(f"    learned: {lesson}" for lesson in plan.learned)
            if plan.strayed and plan.lessons < LESSONS:
                lines.append(
                    f"    a replay went the way the trace did not at {len(plan.strayed)} branch(es) on "
                    "results whose other arm makes calls: the next call is traced to learn it"
                )
            points: dict[int, int] = {}  # planned op -> the first call at which its locals are read
            for point, planned in sorted(plan.ready_at.items()):
                for op_id in planned:
                    points.setdefault(op_id, point)
            for recipe in plan.recipes:
                op = recipe.op
                if recipe.ahead and op.id in plan.mispredicted:
                    lines.append(
                        f"    %{op.id} {op.name} at {op.site}: runs in its turn, because the call issued "
                        "ahead for it was mispredicted (what it reads changed after the function started)"
                    )
                elif recipe.ahead and op.id in points:
                    lines.append(
                        f"    %{op.id} {op.name} at {op.site}: issued ahead when the run reaches "
                        f"%{points[op.id]}, reading {local_names(recipe)} from the function's frame"
                    )
                elif recipe.ahead:
                    when = "".join(f", if {guard.describe()}" for guard in recipe.when)
                    if self._speculation is not None and recipe.arg_needs != recipe.needs:
                        when += f"; on a guess once {_known(recipe.arg_needs)}, if its callee is allowed"
                    ahead = f"issued ahead once {_known(recipe.needs)}{when}"
                    lines.append(f"    %{op.id} {op.name} at {op.site}: {ahead}")
                else:
                    lines.append(
                        f"    %{op.id} {op.name} at {op.site}: runs in its turn, because {recipe.refusal}"
                    )
                if cached.keys.get(op.id) in cached.consumers:
                    lines.append(
                        f"    %{op.id} {op.name} takes a map whole: the map's calls are issued at once "
                        "(after the first, when it took at least min_call_ms)"
                    )
            for refusal in cached.refused:
                lines.append(f"    call site at line {refusal.line} is not dispatched: {refusal.reason}")
        if not plans and self._refusal is None:
            lines.append("  no plan yet: the next call is traced")
        for helper in self._follower.helpers():
            if helper.useful:
                lines.append(f"  followed into {helper.fn.__qualname__}, whose own calls replay as:")
                lines.extend(f"    {line}" for line in helper.jitted.explain().splitlines())
            else:
                lines.append(
                    f"  followed into {helper.fn.__qualname__}: its trace found no two calls that could "
                    "overlap, so it is called as it is"
                )
        lines.extend(f"  note: {note}" for note in notes)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<xcs.jit {self._fn.__qualname__}>"


def _known(needs: frozenset[int]) -> str:
    """`%1, %2 are known`, `%1 is known` or `the inputs are known`."""
    if not needs:
        return "the inputs are known"
    names = ", ".join(f"%{n}" for n in sorted(needs))
    return f"{names} {'is' if len(needs) == 1 else 'are'} known"


def _why_idle(plan: Plan) -> str:
    """Why a plan issues nothing ahead, for the log: its first call and the reason it waits its turn."""
    for recipe in plan.recipes:
        if recipe.refusal is not None:
            op = recipe.op
            return f"%{op.id} {op.name} at {op.site} runs in its turn, because {recipe.refusal}"
    return "the trace made no slow call (see min_call_ms)"


def _stored(code: types.CodeType, opnames: tuple[str, ...]) -> frozenset[str]:
    """The names `code` (or code nested in it) assigns or deletes with `opnames` (`global n; n += 1`:
    STORE_GLOBAL; `nonlocal n; n += 1`: STORE_DEREF)."""
    names: set[str] = set()
    for ins in dis.get_instructions(code):
        if ins.opname in opnames:
            names.add(ins.argval)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _stored(const, opnames)
    return frozenset(names)


def _entry_cell(cell: types.CellType) -> types.CellType:
    """A cell holding what `cell` holds now (empty if it is)."""
    try:
        return types.CellType(cell.cell_contents)
    except ValueError:  # (an empty cell)
        return types.CellType()


def _unwrap(fn: Any) -> tuple[types.FunctionType, Any]:
    """The Python function to trace and, for a bound method or callable object, what it is bound to."""
    if isinstance(fn, JittedFunction):
        raise ConfigError(f"{fn!r} is already jitted")
    if isinstance(fn, types.MethodType) and isinstance(fn.__func__, types.FunctionType):
        return fn.__func__, fn.__self__
    if isinstance(fn, types.FunctionType):
        return fn, None
    call = peek_attr(type(fn), "__call__")
    if isinstance(call, types.FunctionType):
        return call, fn
    raise ConfigError(
        f"xcs.jit needs a Python function, method or callable object, got {type(fn).__qualname__}: "
        f"{fn!r} (C functions and builtins have no bytecode to trace)"
    )


def _mirror_function_kind(jitted: JittedFunction[Any, Any], fn: Any, target: types.FunctionType) -> None:
    """Make `inspect`'s and `asyncio`'s predicates answer for `jitted` as they do for `fn`.

    Frameworks decide whether to await a callable, or iterate its result, from
    `inspect.iscoroutinefunction` and friends.  Those read the code flags of a function, or of
    a *function-like* object (one with `__code__`, `__name__`, `__defaults__`, `__kwdefaults__`
    and `__annotations__`, as Cython functions have), after unwrapping bound methods.  A
    generator function always runs plainly here (see `_refusal`), and an async function's
    jitted call gives a coroutine (`AsyncJittedFunction`): the jitted object behaves as
    `target`'s very code, so it can honestly carry it.  A callable object (whose
    `__call__` is the target) is not a function for `inspect`, so it gets none of this.
    """
    is_function = isinstance(fn, types.FunctionType) or (
        isinstance(fn, types.MethodType) and fn.__func__ is target
    )
    if not is_function or not target.__code__.co_flags & CO_GENERATOR_LIKE:
        return
    jitted.__code__ = target.__code__  # type: ignore[attr-defined]
    jitted.__defaults__ = target.__defaults__  # type: ignore[attr-defined]
    jitted.__kwdefaults__ = target.__kwdefaults__  # type: ignore[attr-defined]
    if target.__code__.co_flags & inspect.CO_COROUTINE:
        _mark_coroutine_function(jitted)


def _mark_coroutine_function(jitted: JittedFunction[Any, Any]) -> None:
    """The official markers too: `inspect.markcoroutinefunction` (3.12+), asyncio's `_is_coroutine` before.

    Both are read even where the duck typing above is not (`asyncio.iscoroutinefunction` of early
    3.10 releases looks for `_is_coroutine` only)."""
    if sys.version_info >= (3, 12):
        inspect.markcoroutinefunction(jitted)
    else:
        from asyncio import coroutines  # only for async functions, whose users have imported asyncio

        jitted._is_coroutine = coroutines._is_coroutine  # type: ignore[attr-defined]


def _refusal(fn: types.FunctionType) -> str | None:
    if fn.__code__.co_flags & (CO_GENERATOR_LIKE & ~inspect.CO_COROUTINE):
        return "generators are not replayed (their calls interleave with their consumer)"
    if fn.__code__.co_flags & inspect.CO_COROUTINE:  # (AsyncJittedFunction runs its twin instead)
        return "an async function is jitted by xcs.jit, which awaits its calls"
    return None


class AsyncJittedFunction(JittedFunction[P, R]):
    """What `xcs.jit(async_fn)` returns: calling it gives a coroutine, as `async_fn` does.

    The function's synchronous twin (`execute.awaits`) runs through the jit on a thread of its
    own that takes turns with the event loop (`execute.trampoline`): its awaited calls are slow
    calls like any other, and the independent ones go ahead as tasks on the running loop."""

    def __init__(self, fn: Callable[P, R], **options: Any) -> None:
        super().__init__(fn, **options)
        try:
            self._fn = twin(self._target)  # run (on a thread of its own) in place of the coroutine
        except UnsupportedCodeError as exc:
            self._refusal = f"its synchronous twin could not be made ({exc})"
        else:
            self._refusal = None

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        call_args = args if self._bound_self is None else (self._bound_self, *args)
        # the function's own coroutine: its arguments bound as the plain call binds them, a
        # TypeError raised here, at the call (creating a coroutine runs none of its code)
        coroutine = self._target(*call_args, **kwargs)
        if self._fn is self._target:  # no twin could be made: the coroutine itself
            self.stats.bump("plain_runs")
            return cast(R, coroutine)
        coroutine.close()
        return cast(R, run_on_twin_thread(super().__call__, args, kwargs, self._target.__qualname__))

    def map(self, items: Iterable[Any], /, *args: Any, **kwargs: Any) -> list[R]:
        """Not for an async function: ``await asyncio.gather(*(fast(item) for item in items))``."""
        raise ConfigError(
            f"fast.map runs a synchronous function over many inputs; {self._fn.__qualname__} is async: "
            "await asyncio.gather(*(fast(item) for item in items)) instead"
        )


@overload
def jit(
    fn: Callable[P, R],
    /,
    *,
    max_workers: int | None = ...,
    min_call_ms: float = ...,
    cache_size: int = ...,
    executor: Executor | None = ...,
    speculate: bool | Iterable[Any] = ...,
    max_wasted_per_call: int = ...,
) -> JittedFunction[P, R]: ...
@overload
def jit(
    *,
    max_workers: int | None = ...,
    min_call_ms: float = ...,
    cache_size: int = ...,
    executor: Executor | None = ...,
    speculate: bool | Iterable[Any] = ...,
    max_wasted_per_call: int = ...,
) -> Callable[[Callable[P, R]], JittedFunction[P, R]]: ...


def jit(
    fn: Callable[P, R] | None = None,
    /,
    *,
    max_workers: int | None = None,
    min_call_ms: float = 1.0,
    cache_size: int = 8,
    executor: Executor | None = None,
    speculate: bool | Iterable[Any] = False,
    max_wasted_per_call: int = 8,
) -> JittedFunction[P, R] | Callable[[Callable[P, R]], JittedFunction[P, R]]:
    """Make `fn` run its independent slow calls at the same time, behaving exactly like `fn`.

        fast = xcs.jit(fn)                     # or @xcs.jit, or @xcs.jit(max_workers=16, ...)
        fast(*args)                            # same result, exceptions and calls as fn(*args)
        fast.stats, fast.explain()

    The first call (and any call whose arguments no cached plan's guards accept) is *traced*:
    it runs observed, exactly as the plain call, and its graph of slow calls becomes a plan;
    once a loop's first round shows how its calls are made, its later rounds go ahead.
    Later calls that pass a plan's guards are *replayed*: the calls the plan can compute from
    the inputs are issued ahead on the executor and served when the real run reaches them
    (compared with the real callee and arguments first; a difference is made in place).  After
    a replay that took an arm of a branch on results the trace never saw, a later call is traced
    again so that the plan learns that arm (`explain()` lists what it learned).

    `fn` may be a Python function, a bound method or a callable object; as a decorator it also
    works on methods (`obj.method` shares one set of plans).  An async function gives an async
    function (a `JittedFunction` whose calls give coroutines) whose independent awaited calls
    go ahead as tasks on the running loop (docs/jit.md, "Async functions").  Generators and
    async generators are accepted and always run plainly (`explain()` says why).

    Options (keyword only):

    - `max_workers` (int >= 1, or None; default None): where planned calls run.  None uses
      the process-wide thread pool (up to 512 threads, started as ready calls arrive and
      leaving after 30 s idle: its width follows the work); an int gives this function a pool
      of its own with that many threads, created at its first replay and shut down at
      interpreter exit.
    - `min_call_ms` (a number >= 0, default 1.0): while tracing, a call taking at least this
      many milliseconds is a slow call, one the plan may issue ahead; faster calls are glue
      that runs in its turn.  Raise it when cheap calls are being planned; 0 makes every call slow.
    - `cache_size` (int >= 1, default 8): how many plans are kept, one per shape of call
      traced (types, loop lengths, branches taken); the newest are tried first (one that issues
      nothing ahead after the others), the oldest dropped.
    - `executor` (default None): run planned calls on this object instead of a thread pool;
      anything with `submit(fn, *args) -> concurrent.futures.Future` (the `xcs.Executor`
      protocol: a `concurrent.futures` executor, or an adapter for Ray or Dask).
    - `speculate` (default False): True, or a list of callees (`[image.exists, search]`; a
      function defined in a class names that method of every object).  A replayed call under a
      branch on results whose callee is allowed goes as soon as its own arguments are known, on
      the path the trace took, without waiting for the branch to be decided.  The run stays the
      source of truth: a guess is served only where the run makes that very call; one it does
      not reach is cancelled if not started, else counted in `wasted`.  True allows every slow
      call: it is your promise that calling them for nothing has no effect you mind.
    - `max_wasted_per_call` (int >= 1, default 8): with `speculate`, the guesses of one call
      not yet confirmed plus those lost stay within this number, so one call wastes at most
      this many.

    Errors: `xcs.ConfigError` (a `ValueError` and `TypeError`), raised here, before any call,
    for a `max_workers` that is not an int >= 1 or None, a `min_call_ms` that is not a
    finite number >= 0, a `cache_size` that is not an int >= 1 (bools are refused for all
    three), an `executor` without a `submit` method, `executor` and `max_workers` together,
    a `speculate` that is neither a bool nor a non-empty list of callables, a
    `max_wasted_per_call` that is not an int >= 1, an `fn` that is already jitted, or one with
    no bytecode (a builtin, a C function).
    Calls of the result raise exactly what `fn` raises.

    Returns a `JittedFunction` (with `fn` given), or a decorator making one (without it).
    Besides being called, it offers `stats` (a `xcs.Stats`: `traces`, `replays`, `plain_runs`,
    `served` from calls made ahead, `in_place`, `mispredictions`, `wasted` calls made ahead
    that the run did not need and `wasted_by_callee`, `guard_misses`, `resized` replays for
    other loop lengths, `speculated` calls issued on a guess, `served_in_trace` calls of a
    traced call served from a loop's later rounds issued ahead, `rejected` attempts an API
    answered as overloaded, which were made again, and `rejected_by_callee`; per callee, the
    calls that returned to the run, `calls_by_callee`, those answered by the call issued ahead,
    `ahead_by_callee`, and the tokens their results report (an `openai` response's `usage`),
    `tokens_by_callee`, all five tables in one by `by_callee()`),
    `explain()` (text: each plan's guards, what it issues ahead and when, what runs in its
    turn and why, what was refused) and `last_replay` (the last replayed call's timeline:
    when each slow call ran, on which thread, ahead or in turn; `to_svg()` draws it).  It
    keeps `fn`'s name, docstring and signature, and
    `inspect.iscoroutinefunction` / `isgeneratorfunction` answer for it as for `fn`.
    """
    options: dict[str, Any] = {
        "max_workers": max_workers,
        "min_call_ms": min_call_ms,
        "cache_size": cache_size,
        "executor": executor,
        "speculate": speculate,
        "max_wasted_per_call": max_wasted_per_call,
    }
    if fn is None:
        return lambda f: _jitted(f, options)
    return _jitted(fn, options)


def _jitted(fn: Callable[P, R], options: dict[str, Any]) -> JittedFunction[P, R]:
    target, _ = _unwrap(fn)
    if target.__code__.co_flags & inspect.CO_COROUTINE:
        return AsyncJittedFunction(fn, **options)
    return JittedFunction(fn, **options)

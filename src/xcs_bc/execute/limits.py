"""Limits per API, across the process: calls in flight, calls per minute, and what an overload does.

Every call the library makes goes through the `Limit` of the API it goes to
(`limit_for`, see `apis`): the calls replays and first calls issue ahead
(`Limit.issue`), and the calls their real runs make in their turn
(`Limit.call`), whichever jitted function or thread makes them.  A call that
finds no room waits: the real run's calls first (the run waits for them),
then the calls issued ahead, in the order they were issued.  A call issued
ahead waits without holding a worker: it is handed to the executor only once
it has room, and until its worker starts it, it can be cancelled.

Overloads.  A call whose outcome says the API is overloaded (`apis.overloaded`:
HTTP 429/503/529, a `RateLimitError`, a class the user named) halves the
limit's window of calls at once (at most once per window of calls; successes
widen it by one per window again, up to `concurrency`: additive increase,
multiplicative decrease).  Such an outcome is never served:

- a call issued ahead ends in `Withdrawn`; the replay issues it again after a
  back-off, at most `RETRIES_AHEAD` times, then leaves it to the real run;
- a call the real run makes in its turn is what the plain run would make; its
  overload is the run's own unless calls issued ahead were in flight while it
  was made (the overload may then be ours).  In that case the library stops
  issuing calls ahead, waits until none is in flight, and makes the call
  once more: alone, as in the plain run, and that outcome is final.

A call made within a call that holds room in a limit (a jitted function called
in its turn or issued ahead, making calls of its own under the same limit) is
counted without waiting: it would otherwise wait for the room its own caller
holds (`_Here`).

Calls the plain function makes outside any jitted function, and the calls a
traced (first) call makes in its turn, are not counted: they are made as the
plain run makes them, one at a time on their thread.
"""

from __future__ import annotations

import _thread
import contextlib
import contextvars
import functools
import math
import threading
import time
import types
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Any

from xcs_bc.errors import ConfigError
from xcs_bc.execute.apis import call_host, candidates, host_of, overloaded, retry_after
from xcs_bc.execute.executor import waiting
from xcs_bc.ir.values import awaited_call, describe_callee

DEFAULT_HOST_CONCURRENCY = 16  # calls at once to a host of a known client that no limit names
RETRIES_AHEAD = 3  # overloaded attempts of a call issued ahead before the real run makes it in its turn
BACKOFF_S = 0.05  # the wait before the first new attempt of a call issued ahead; doubled each time
MAX_BACKOFF_S = 5.0  # the longest wait (a Retry-After header is followed up to this)
_MINUTE = 60.0
_POLL_S = 0.005  # how often a call waiting to be made alone looks at the calls ahead in flight


class Withdrawn(Exception):
    """The outcome of a call issued ahead that must not be served: the API answered it as overloaded
    (`rejected` is that answer), or it was never made.  The real run makes the call in its turn."""

    def __init__(self, rejected: Any = None) -> None:
        super().__init__("a call issued ahead was withdrawn")
        self.rejected = rejected


Room = tuple["Limit", int]  # a limit, and the number of the call that holds room in it
_Start = Callable[[int], None]  # hands a call issued ahead to the executor, given its number
_Waiter = list[Any]  # [a lock released once room was taken for the call, the call's number]


class Limit:
    """At most `concurrency` calls in flight and `per_minute` calls started in any 60 seconds, to one
    API, across every jitted function and thread of the process (see `xcs.limit`).

    `window` is how many calls may be in flight now: `concurrency` (unbounded when None) until an
    overload halves it.  `calls`, `peak` and `rejected` count attempts started, the most in flight at
    once, and attempts the API answered as overloaded.
    """

    def __init__(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        per_minute: float | None = None,
        overload: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.name = name
        self.concurrency = concurrency
        self.per_minute = per_minute
        self.overload = overload
        self.window: float = float(concurrency) if concurrency else math.inf
        self.in_flight = 0
        self.peak = 0
        self.calls = 0
        self.rejected = 0
        self._cut_at = 0  # `calls` when the window was last cut: the attempts started since may cut it
        self._lock = threading.Lock()
        self._starts: deque[float] = deque()  # when the calls of the last minute started (per_minute)
        self._waiting: deque[_Waiter] = deque()  # the real run's calls waiting for room
        self._queue: deque[tuple[Future[Any], _Start]] = deque()  # calls issued ahead waiting for room
        self._wake_at = math.inf  # when a timer looks at the waiting calls again (per_minute)
        _every.add(self)

    def __repr__(self) -> str:
        bounds = []
        if self.concurrency is not None:
            bounds.append(f"at most {self.concurrency} at once")
        if self.per_minute is not None:
            bounds.append(f"{self.per_minute:g} per minute")
        window = "" if math.isinf(self.window) else f", window {int(self.window)}"
        return (
            f"<Limit {self.name}: {', '.join(bounds) or 'no bound'}; {self.calls} calls, peak "
            f"{self.peak} in flight, {self.rejected} rejected as overloaded{window}>"
        )

    # -- room -------------------------------------------------------------------------------------

    def _room(self, now: float) -> float:
        """0 when one more call may start now; else how long until the rate allows one (inf: until a
        call in flight ends).  Under the lock."""
        if self.in_flight >= self.window:  # (the window is at least 1: it never shuts)
            return math.inf
        if self.per_minute is not None:
            starts = self._starts
            while starts and starts[0] <= now - _MINUTE:
                starts.popleft()
            if len(starts) >= self.per_minute:
                return starts[0] + _MINUTE - now
        return 0.0

    def _take(self, now: float) -> int:
        """One call starts: its number.  Under the lock."""
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        self.calls += 1
        if self.per_minute is not None:
            self._starts.append(now)
        return self.calls

    def _pump(self) -> None:
        """Give room to the calls waiting for it: the real run's first, then those issued ahead (unless
        an overloaded call is being made alone, see `call`).  Starts the latter outside the lock."""
        starts: list[tuple[_Start, int]] = []
        with self._lock:
            now = time.monotonic()
            wait = 0.0
            while self._waiting or (self._queue and not _alone.held):
                wait = self._room(now)
                if wait:
                    break
                if self._waiting:
                    waiter = self._waiting.popleft()
                    waiter[1] = self._take(now)
                    waiter[0].release()  # (its call now holds the room taken for it)
                    continue
                future, start = self._queue.popleft()
                if future.cancelled():
                    continue  # (cancelled while it waited: never made)
                starts.append((start, self._take(now)))
            if 0 < wait < math.inf:
                self._wake_later(now + wait)
        for start, number in starts:
            start(number)

    def _wake_later(self, at: float) -> None:
        """Look at the waiting calls again at `at` (one timer at a time).  Under the lock."""
        if at >= self._wake_at:
            return
        self._wake_at = at

        def wake() -> None:
            with self._lock:
                if self._wake_at == at:
                    self._wake_at = math.inf
            self._pump()

        later(max(0.0, at - time.monotonic()), wake)

    def _release(self, number: int, overload: bool | None) -> None:
        """A call ends: `overload` when the API said it was overloaded, None when it was never made."""
        with self._lock:
            self.in_flight -= 1
            if overload:
                self.rejected += 1
                if number > self._cut_at:  # the window is cut once for the calls that met the overload
                    self._cut_at = self.calls
                    self.window = max(1.0, min(self.window, self.in_flight + 1) / 2)
            elif overload is False and self.window < (self.concurrency or math.inf):
                self.window += 1 / self.window
        if self._waiting or self._queue:  # (one who joins them later takes the room this gives back)
            self._pump()

    def _ended_with(self, number: int, outcome: Any) -> bool:
        """A call that was made ends with `outcome` (its exception or result): its room is given back,
        and the answer is whether the API said it was overloaded."""
        over = overloaded(outcome, self.overload)
        self._release(number, over)
        return over

    # -- the real run's calls -----------------------------------------------------------------------

    def _acquire(self) -> int:
        """Wait for room for a call the real run makes (before every call issued ahead); its number."""
        with self._lock:
            now = time.monotonic()
            if not self._waiting and not self._room(now):
                return self._take(now)
            waiter: _Waiter = [_thread.allocate_lock(), 0]
            waiter[0].acquire()
            self._waiting.append(waiter)
        self._pump()  # (a rate wait needs its timer)
        try:
            with waiting():
                waiter[0].acquire()  # released by _pump once room was taken for it
        except BaseException:  # an interrupt: give up the place, or the room taken for it
            with self._lock:
                handed = waiter not in self._waiting
                if not handed:
                    self._waiting.remove(waiter)
            if handed:
                self._release(waiter[1], None)
            raise
        return int(waiter[1])

    def call(
        self,
        fn: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        rejected: Callable[[], None],
        room: int | None = None,
    ) -> Any:
        """Make a call of the real run, in its turn, within the limit (see the module's docstring for
        an overload met while calls issued ahead were in flight; `rejected` counts that attempt).
        `room`: the number of the room this call already holds (see `take_over`)."""
        alone = False
        try:
            while True:
                if room is not None:
                    number, room = room, None
                elif self in _here.held:
                    number = self._take_now()  # (made within a call that holds room here, see _Here)
                else:
                    number = self._acquire()
                mark = _alone.mark()
                made = False
                _here.held.append(self)
                try:
                    result = fn(*args, **kwargs)
                    made = True
                except BaseException as exc:
                    over = self._ended_with(number, exc)
                    if alone or not over or not _alone.overlapped(mark):
                        raise
                finally:
                    _here.held.pop()
                if made:
                    over = self._ended_with(number, result)
                    if alone or not over or not _alone.overlapped(mark):
                        return result
                rejected()
                alone = True
                _alone.hold()
        finally:
            if alone:
                _alone.let_go()

    def _take_now(self) -> int:
        with self._lock:
            return self._take(time.monotonic())

    # -- calls issued ahead -------------------------------------------------------------------------

    def issue(
        self,
        submit: Callable[..., Future[Any]],
        callee: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        in_process: bool,
    ) -> Future[Any]:
        """Issue a call ahead: its future at once; the call is handed to `submit` (the executor's)
        when the limit has room.  In this process, the future can be cancelled until a worker starts
        the call; elsewhere (another process or machine), until it is handed over.  Its outcome is
        `Withdrawn` when the API answered it as overloaded or the executor would not take it."""
        if in_process and self._unbounded():
            # nothing to wait for: straight to the executor (its future is cancellable until a worker
            # starts the call), counted when it starts
            try:
                return submit(self._run_free, callee, args, kwargs)
            except Exception:  # noqa: BLE001 - e.g. the executor was shut down: the run makes it
                future: Future[Any] = Future()
                future.set_exception(Withdrawn())
                return future
        future = _Ahead(self) if in_process else _Handed(self)

        def start(number: int) -> None:
            try:
                assert isinstance(future, _Ahead)
                if isinstance(future, _Handed):
                    if not future.hand(lambda: submit(callee, *args, **kwargs), self, number):
                        self._release(number, None)  # (cancelled while it waited for room)
                    return
                queued = submit(self._run_here, future, number, callee, args, kwargs)
            except Exception:  # noqa: BLE001 - e.g. the executor was shut down: the run makes it
                if future.set_running_or_notify_cancel():
                    future.set_exception(Withdrawn())
                self._release(number, None)
                return
            future.add_done_callback(functools.partial(self._dequeue, queued, number))

        with self._lock:
            self._queue.append((future, start))
        self._pump()
        return future

    def _unbounded(self) -> bool:
        """No bound on calls in flight or per minute, none waiting, none held back (see `_Alone`)."""
        return (
            self.window == math.inf
            and self.per_minute is None
            and not self._queue
            and not self._waiting
            and not _alone.held
        )

    def _run_free(self, callee: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """A call issued ahead under a limit with no bound, on a worker of this process: its outcome,
        or `Withdrawn` in place of an overload."""
        number = self._take_now()
        exc, result = self._make(callee, args, kwargs)
        outcome = exc if exc is not None else result
        if self._ended_with(number, outcome):
            raise Withdrawn(outcome)
        if exc is not None:
            raise exc
        return result

    def _make(
        self, callee: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[BaseException | None, Any]:
        """Make a call issued ahead on this worker: (its exception or None, its result).  Counted as
        a call ahead in flight (`_Alone`) and as holding room in this limit (`_Here`) while it runs."""
        _alone.began()
        _here.held.append(self)
        _here.ahead += 1
        try:
            return None, callee(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the call
            return exc, None
        finally:
            _here.ahead -= 1
            _here.held.pop()
            _alone.ended()

    def _dequeue(self, queued: Future[Any], number: int, future: _Ahead) -> None:
        """A call issued ahead in this process, cancelled before a worker starts it: out of the
        executor's queue too, and its room given back at once (else when a worker gets to it), or
        kept for the run's own call (see `take_over`)."""
        if future.cancelled() and queued.cancel():
            self._give_back(future, number)

    def _give_back(self, future: _Ahead, number: int) -> None:
        with future.handoff:
            if future.keep:
                future.kept = number
                return
        self._release(number, None)

    def _run_here(
        self, future: Future[Any], number: int, callee: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """A call issued ahead, on a worker of this process."""
        if not future.set_running_or_notify_cancel():
            self._release(number, None)  # cancelled while it waited for a worker: never made
            return
        self._ended(future, number, *self._make(callee, args, kwargs))

    def _ended_elsewhere(self, future: _Handed, number: int, done: Future[Any]) -> None:
        """A call issued ahead on another process or machine came back, or was cancelled."""
        _alone.ended()
        if done.cancelled():  # (by `future.cancel()`, or by its executor): the run makes it in its turn
            self._give_back(future, number)
            Future.cancel(future)
            return
        if not future.set_running_or_notify_cancel():
            self._release(number, None)
            return
        exc = done.exception()
        self._ended(future, number, exc, done.result() if exc is None else None)

    def _ended(self, future: Future[Any], number: int, exc: BaseException | None, result: Any) -> None:
        outcome = exc if exc is not None else result
        if self._ended_with(number, outcome):  # (room given back before the run wakes: it may need it)
            future.set_exception(Withdrawn(outcome))
        elif exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)


def answered(future: Future[Any]) -> bool:
    """Does a call issued ahead, now done, hold its own outcome (its result, or its exception)?  Not
    when it was cancelled (by its executor) or withdrawn (`Withdrawn`): the run makes the call itself.
    (A bool, so that the run's own call is not made inside an except block: its exception would
    chain to ours.)"""
    return not future.cancelled() and not isinstance(future.exception(), Withdrawn)


class _Ahead(Future[Any]):
    """The future of a call issued ahead.  `keep`: if it is cancelled while it holds room, the room
    is kept (in `kept`, its number) for the run's own call instead of being given back (both under
    `handoff`: another thread may cancel it at the same time)."""

    def __init__(self, limit: Limit) -> None:
        super().__init__()
        self.limit = limit
        self.handoff = threading.Lock()
        self.keep = False
        self.kept: int | None = None


def take_over(future: Future[Any]) -> tuple[bool, Room | None]:
    """The run reached a call issued ahead: cancel it if no worker has started it (else it is waited
    for), keeping the room it held, so that the run's own call takes its place rather than the line's
    end.  (cancelled, the room kept or None)."""
    if not isinstance(future, _Ahead):
        return future.cancel(), None
    with future.handoff:
        future.keep = True  # (cancel() gives the room back through a callback, see Limit._give_back)
    cancelled = future.cancel()
    with future.handoff:
        future.keep = False
        kept, future.kept = future.kept, None
    if kept is not None and not cancelled:  # (cannot happen: a room is kept only by a cancel)
        future.limit._release(kept, None)
        kept = None
    return cancelled, None if kept is None else (future.limit, kept)


class _Handed(_Ahead):
    """The future of a call issued ahead to another process or machine: it can be cancelled exactly
    while the executor's future for it can (until it is handed over, or until it starts there)."""

    def __init__(self, limit: Limit) -> None:
        super().__init__(limit)
        self._handing = threading.Lock()
        self._there: Future[Any] | None = None

    def hand(self, submit: Callable[[], Future[Any]], limit: Limit, number: int) -> bool:
        """Hand the call to the executor, unless it was cancelled: whether it was handed."""
        with self._handing:
            if self.cancelled():
                return False
            self._there = submit()
            _alone.began()
        self._there.add_done_callback(functools.partial(limit._ended_elsewhere, self, number))
        return True

    def cancel(self) -> bool:
        with self._handing:
            if self._there is not None and not self._there.cancel():
                return False  # it started there: it is waited for
            return super().cancel()


class _Here(threading.local):
    """What the calls on this thread's stack hold.  A call that holds room in a limit and makes
    calls of its own under that limit (a jitted function called from a jitted function, or issued
    ahead) must not wait for room its own caller holds: those calls are counted, without waiting.
    `ahead`: how many calls issued ahead this thread is making (see `_Alone.hold`)."""

    def __init__(self) -> None:
        self.held: list[Limit] = []
        self.ahead = 0


_here = _Here()


def held() -> tuple[Limit, ...]:
    """The limits the calls on this thread's stack hold room in (see `_Here`)."""
    return tuple(_here.held)


@contextlib.contextmanager
def inherited(limits: tuple[Limit, ...]) -> Iterator[None]:
    """This thread makes calls on behalf of calls that hold room in `limits` on another thread (an
    async function awaited by an awaited call: `trampoline`): they count without waiting, as they
    would on that thread (a jitted async function awaited by one under the same limit would wait
    for room its own caller holds)."""
    _here.held.extend(limits)
    try:
        yield
    finally:
        del _here.held[len(_here.held) - len(limits) :]


class _Alone:
    """How many calls issued ahead are in flight in the process, and the hold that lets a call of a
    real run that met an overload be made again with none in flight (see the module's docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.running = 0
        self.begun = 0  # calls issued ahead begun so far
        self.held = 0  # calls waiting to be made alone, or being made so: nothing more is issued
        self.parked = 0  # calls issued ahead that threads waiting in `hold` are inside of

    def began(self) -> None:
        with self._lock:
            self.running += 1
            self.begun += 1

    def ended(self) -> None:
        with self._lock:
            self.running -= 1

    def mark(self) -> tuple[int, int]:
        return self.running, self.begun

    def overlapped(self, mark: tuple[int, int]) -> bool:
        """Was a call issued ahead in flight at some time since `mark`?  (Not counting those this
        thread is inside of: a call of a jitted function issued ahead makes its own calls.)"""
        own = _here.ahead
        return mark[0] > own or self.running > own or self.begun != mark[1]

    def hold(self) -> None:
        """Issue nothing more ahead, and wait until no call issued ahead is in flight but those
        threads waiting here are inside of (each waits for the others', else two would wait for
        each other)."""
        own = _here.ahead
        with self._lock:
            self.held += 1
            self.parked += own
        try:
            while self.running > self.parked:
                time.sleep(_POLL_S)
        finally:
            with self._lock:
                self.parked -= own

    def let_go(self) -> None:
        with self._lock:
            self.held -= 1
        for limit in list(_every):
            limit._pump()


_alone = _Alone()
_every: weakref.WeakSet[Limit] = weakref.WeakSet()  # every limit, to issue their calls after a hold


# -- which limit a call counts against -------------------------------------------------------------

_lock = threading.Lock()
# id of an object or callable named -> (it, its limit), and (id of an object, id of a function) -> (the
# bound method named, its limit): kept alive, so that the ids stay theirs
_targets: dict[Any, tuple[Any, Limit]] = {}
_hosts: dict[str, Limit] = {}
_others = Limit("other callees")


def limit_for(callee: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Limit:
    """The limit a call counts against: one the user named for its callee, its owner or client, or an
    argument; else its host's, for a client the library knows; else the one of every other callee.
    An async function's awaited call counts as the call it awaits (`ir.values.awaited_call`)."""
    awaited = awaited_call(callee, args, kwargs)
    if awaited is not None:
        callee, args, kwargs = awaited
    if _targets:
        if type(callee) is types.MethodType:
            found = _targets.get((id(callee.__self__), id(callee.__func__)))
            if found is not None and found[0] == callee:
                return found[1]
        for candidate in candidates(callee, args, kwargs):
            found = _targets.get(id(candidate))
            if found is not None and found[0] is candidate:
                return found[1]
    host = call_host(callee, args, kwargs)
    if host is None:
        return _others
    limit = _hosts.get(host)
    if limit is None:
        with _lock:
            limit = _hosts.get(host)
            if limit is None:
                limit = _hosts[host] = Limit(host, concurrency=DEFAULT_HOST_CONCURRENCY)
    return limit


def limit(
    *targets: Any,
    concurrency: int | None = None,
    per_minute: float | None = None,
    overload: Iterable[type[BaseException]] = (),
) -> Limit:
    """Bound the calls to an API, across every jitted function and thread of the process.

        xcs.limit(client, concurrency=8, per_minute=500)       # an SDK client: every call through it
        xcs.limit("api.example.com", concurrency=4)            # every known client's calls to a host
        xcs.limit(summarize, judge, concurrency=3)             # your own functions, one limit for both
        xcs.limit(tool, overload=[ToolBusy])                   # an exception that means "overloaded"

    `targets` are host names or URLs, objects (a client: the calls of its methods and of its SDK
    resources, and calls handed it as an argument) or callables (their calls; a function defined in
    a class names that method of every object).  The calls jitted functions issue ahead and those
    their runs make in their turn wait for room: at most `concurrency` in flight, at most
    `per_minute` started in any 60 seconds.  Without a limit, calls through a known client
    (`openai`, `anthropic`, `httpx`, `requests`) are bounded per host by `DEFAULT_HOST_CONCURRENCY`,
    other calls not at all.  An overload (HTTP 429/503/529, a `RateLimitError`, or a class in
    `overload`) narrows the limit and is never served to the run (see `xcs_bc.execute.limits`).
    Naming a target again replaces its limit; the limit returned counts the calls made under it.
    """
    if not targets:
        raise ConfigError("xcs.limit() needs at least one target: a client, a callable or a host name")
    if concurrency is not None and (
        isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
    ):
        raise ConfigError(f"concurrency must be an int >= 1 (or None: no bound), got {concurrency!r}")
    if per_minute is not None and (
        isinstance(per_minute, bool) or not isinstance(per_minute, (int, float)) or not per_minute > 0
    ):
        raise ConfigError(f"per_minute must be a number > 0 (or None: no bound), got {per_minute!r}")
    classes = tuple(overload) if isinstance(overload, (list, tuple, set, frozenset)) else None
    if classes is None or not all(isinstance(c, type) and issubclass(c, BaseException) for c in classes):
        raise ConfigError(f"overload must be a list of exception classes, got {overload!r}")
    for target in targets:
        if isinstance(target, str):
            host = host_of(target)
            if host is None or " " in host:
                raise ConfigError(f"{target!r} names no host: pass 'api.example.com', 'host:port' or a URL")
        elif target is None or isinstance(target, (bool, int, float, complex, bytes, tuple, list, dict, set)):
            raise ConfigError(
                f"cannot limit calls to {target!r}: pass a client object, a callable or a host name"
            )
    named = ", ".join(target if isinstance(target, str) else describe_callee(target) for target in targets)
    made = Limit(named, concurrency=concurrency, per_minute=per_minute, overload=classes)
    with _lock:
        for target in targets:
            if isinstance(target, str):
                _hosts[host_of(target) or target] = made
            elif type(target) is types.MethodType:  # (made anew at each `obj.method`: named by the pair)
                _targets[id(target.__self__), id(target.__func__)] = (target, made)
            else:
                _targets[id(target)] = (target, made)
    return made


# -- what replays and first calls use ------------------------------------------------------------------


def issue_ahead(
    executor: Any,
    context: contextvars.Context,
    in_process: bool,
    callee: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    run: Callable[..., Any] | None = None,
) -> Future[Any]:
    """Issue a call ahead on `executor`, within its API's limit: on a worker of this process it runs
    in a copy of `context` (the run's contextvars).  `run`: what is called in the callee's place
    (with the same arguments), if not the callee itself."""
    limit = limit_for(callee, args, kwargs)
    if in_process:

        def submit(fn: Any, /, *a: Any, **k: Any) -> Future[Any]:
            return executor.submit(context.copy().run, fn, *a, **k)  # type: ignore[no-any-return]

        return limit.issue(submit, run or callee, args, kwargs, in_process=True)
    return limit.issue(executor.submit, run or callee, args, kwargs, in_process=False)


def call_in_turn(
    fn: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    rejected: Callable[[], None],
    room: Room | None = None,
) -> Any:
    """Make a call of the real run within its API's limit (see `Limit.call`), in the `room` it took
    over from the same call issued ahead, if any (see `take_over`)."""
    if room is not None:
        return room[0].call(fn, args, kwargs, rejected, room[1])
    return limit_for(fn, args, kwargs).call(fn, args, kwargs, rejected)


def backoff(tries: int, rejected: Any) -> float:
    """How long to wait before issuing again a call answered as overloaded `tries` times."""
    after = retry_after(rejected)
    return min(MAX_BACKOFF_S, after if after is not None else BACKOFF_S * 2 ** (tries - 1))


def later(delay: float, fn: Callable[[], None]) -> None:
    """Call `fn` on a thread of its own after `delay` seconds (a daemon: it never delays the exit)."""

    def wait_then_call() -> None:
        time.sleep(delay)
        fn()

    _thread.start_new_thread(wait_then_call, ())

"""Running an async function's synchronous twin: on a thread of its own, taking turns with the loop.

`xcs.jit(async_fn)` runs `awaits.twin(async_fn)` through the jit's ordinary
machinery (trace, plan, replay), on a thread started for the call: `run(call,
args, kwargs)` is the coroutine the caller awaits.  The two threads take turns
so that the function behaves as it would on the loop:

- while the twin runs the function's own code, the loop's thread waits for it
  (*holds*): no other task runs in between, as none would between two awaits,
  and `asyncio.get_running_loop()`, `current_task()`, `create_task()` answer as
  they would on the loop's thread (the twin's thread is marked as running it);
- at an await, the twin hands the awaitable (or, for ``await f(...)``, the call)
  to the loop's thread, which awaits it in the caller's task and hands back the
  result or the exception: cancellation, `asyncio.timeout` and contextvars work
  as in the plain coroutine.  Calls issued ahead are tasks of their own on the
  loop (`AwaitSite.call` on a pool thread);
- while the twin waits in the jit for a call issued ahead or for room under a
  limit (`executor.waiting`), the loop runs freely: those calls run on it.

The task being cancelled while the twin waits so is delivered when the wait
ends, as a CancelledError at that await (the call it waited for is not
cancelled: it was issued ahead, and counts as made).  A KeyboardInterrupt
arriving while the loop's thread waits for the twin is raised in the twin's
thread, where the plain coroutine would have it.  The twin's thread has its
own thread-locals, and `threading.current_thread()` names it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ctypes
import inspect
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, Final

from xcs_bc.execute import awaits, executor, limits

__all__ = ["run"]

_LOOP: Final[contextvars.ContextVar[asyncio.AbstractEventLoop]] = contextvars.ContextVar("xcs_loop")
# the limits the awaiting call holds room in (`limits.inherited`), for a jitted async function it awaits
_HELD: Final[contextvars.ContextVar[tuple[Any, ...]]] = contextvars.ContextVar("xcs_held", default=())
_PRIVATE: Final = (_LOOP, _HELD)  # (not synced between the twin's contextvars and the task's)
_MISSING: Final = object()
_here = threading.local()  # .turns: on a twin's thread, its `_Turns`


class _Turns:
    """The two threads of one call: who runs, and what they hand each other."""

    def __init__(self, loop: asyncio.AbstractEventLoop, context: contextvars.Context) -> None:
        self.loop = loop
        self.context = context  # the twin's contextvars (synced with the task's at every hand-over)
        self.to_loop: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()  # while the loop holds
        self.inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()  # while the loop runs
        self.to_twin: queue.SimpleQueue[tuple[str, Any, dict[Any, Any]]] = queue.SimpleQueue()
        self.holding = True  # (the twin's side) does the loop's thread wait for the twin?

    # -- the twin's side -------------------------------------------------------------------------

    def send(self, message: tuple[Any, ...]) -> None:
        if self.holding:
            self.to_loop.put(message)
        else:
            self.loop.call_soon_threadsafe(self.inbox.put_nowait, message)

    def ask(self, message: tuple[Any, ...]) -> Any:
        """Hand `message` to the loop's thread and wait for its answer (raised if an exception)."""
        self.send(message)
        kind, value, changes = self.to_twin.get()
        for var, new in changes.items():  # what the task's side changed in the contextvars
            var.set(new)
        if kind == "raise":
            raise value
        return value

    @contextlib.contextmanager
    def free(self) -> Iterator[None]:
        """The loop runs while the twin waits in the jit (see `executor.waiting`)."""
        if not self.holding:
            yield
            return
        self.send(("free",))
        self.holding = False
        try:
            yield
        finally:
            self.send(("hold",))  # (through the loop's inbox: it runs)
            self.holding = True
            kind, value, _ = self.to_twin.get()
            if kind == "raise":  # the task was cancelled meanwhile: raised at this await
                raise value


def _twin_thread(
    turns: _Turns, call: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    _here.turns = turns
    executor.set_waiting_hook(turns.free)
    asyncio.events._set_running_loop(turns.loop)  # the loop's thread waits while this one runs
    try:
        with limits.inherited(turns.context.get(_HELD, ())):
            value = turns.context.run(call, *args, **kwargs)
    except StopIteration as exc:  # (the twin is no coroutine: nothing converted it; see awaits)
        outcome: tuple[Any, ...] = ("raise", _stop_iteration_error(exc))
    except BaseException as exc:  # noqa: BLE001 - handed to the task, which raises it
        outcome = ("raise", exc)
    else:
        outcome = ("return", value)
    finally:
        asyncio.events._set_running_loop(None)
        executor.set_waiting_hook(None)
        _here.turns = None
    turns.send(("done", *outcome))


def _stop_iteration_error(exc: StopIteration) -> RuntimeError:
    error = RuntimeError("coroutine raised StopIteration")
    error.__cause__ = exc
    return error


async def run(call: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], name: str) -> Any:
    """Run `call` (a jitted twin) on a thread of its own (named after `name`), taking turns with
    this task's loop."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    context.run(_LOOP.set, loop)
    turns = _Turns(loop, context)
    thread = threading.Thread(target=_twin_thread, args=(turns, call, args, kwargs), daemon=True)
    thread.name = f"xcs-async {name}"
    holding = True
    cancelled = False  # the task was cancelled while the twin waited in the jit: tell it at its next step
    thread.start()
    while True:
        if holding:
            message = _wait_for_twin(turns, thread)
        else:
            try:
                message = await turns.inbox.get()
            except asyncio.CancelledError:
                cancelled = True
                continue
        kind = message[0]
        if kind == "done":
            _into_task(context)
            if message[1] == "raise":
                raise message[2]
            return message[2]
        if kind == "free":
            holding = False
        elif kind == "hold":
            holding = True
            turns.to_twin.put(("raise", asyncio.CancelledError(), {}) if cancelled else ("go", None, {}))
            cancelled = False
        else:  # "await" (what GET_AWAITABLE made) or "call" (an awaited call): awaited in this task
            _into_task(context)
            if cancelled:
                cancelled = False
                _close(message)
                answer: tuple[str, Any] = ("raise", asyncio.CancelledError())
            else:
                try:
                    value = await (_awaitable(message[1]) if kind == "await" else _made(*message[1:]))
                except BaseException as exc:  # noqa: BLE001 - raised in the twin, at its await
                    answer = ("raise", exc)
                else:
                    answer = ("return", value)
            turns.to_twin.put((*answer, _from_task(context)))


def _wait_for_twin(turns: _Turns, thread: threading.Thread) -> tuple[Any, ...]:
    """The loop's thread waits while the twin runs (a KeyboardInterrupt is raised in the twin's
    thread, once, where the plain coroutine would have met it; a second one is raised here)."""
    try:
        return turns.to_loop.get()
    except KeyboardInterrupt:
        if thread.ident is not None:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(thread.ident), ctypes.py_object(KeyboardInterrupt)
            )
        return turns.to_loop.get()


class _Iterated:
    """An awaitable over the iterator GET_AWAITABLE made of an object's ``__await__``."""

    __slots__ = ("iterator",)

    def __init__(self, iterator: Any) -> None:
        self.iterator = iterator

    def __await__(self) -> Any:
        return self.iterator


def _awaitable(iterator: Any) -> Any:
    return iterator if inspect.iscoroutine(iterator) else _Iterated(iterator)


def _close(message: tuple[Any, ...]) -> None:
    """An await not made (the task was cancelled before it): a coroutine it held is closed, as the
    plain coroutine's would be when cancelled there."""
    if message[0] == "await" and inspect.iscoroutine(message[1]):
        message[1].close()


def _into_task(context: contextvars.Context) -> None:
    """The twin's contextvars changes, into the task's context (on the loop's thread, in the task)."""
    for var, value in context.items():
        if var not in _PRIVATE and var.get(_MISSING) is not value:
            var.set(value)


def _from_task(context: contextvars.Context) -> dict[Any, Any]:
    """What the task's context holds that the twin's does not (set by what was awaited)."""
    return {
        var: value
        for var, value in contextvars.copy_context().items()
        if var not in _PRIVATE and context.get(var, _MISSING) is not value
    }


# -- the twin's awaits ----------------------------------------------------------------------


def _await_iterator(iterator: Any) -> Any:
    turns: _Turns | None = getattr(_here, "turns", None)
    if turns is not None:
        return turns.ask(("await", iterator))
    return _on_loop(_iterate(iterator))


def _await_call(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    turns: _Turns | None = getattr(_here, "turns", None)
    if turns is not None:
        return turns.ask(("call", fn, args, kwargs, limits.held()))
    return _on_loop(_made(fn, args, kwargs, limits.held()))  # issued ahead: a task of its own


async def _iterate(iterator: Any) -> Any:
    return await _awaitable(iterator)


async def _made(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], held: tuple[Any, ...]) -> Any:
    """``await fn(*args, **kwargs)``, telling a jitted async function it awaits the limits this call
    holds room in (`_HELD`)."""
    token = _HELD.set(held)
    try:
        return await fn(*args, **kwargs)
    finally:
        _HELD.reset(token)


def _on_loop(coroutine: Any) -> Any:
    """Await `coroutine` on the loop of the run this thread works for (from its contextvars)."""
    loop = _LOOP.get(None)
    if loop is None:
        coroutine.close()
        raise RuntimeError("an awaited call of an async function's twin ran outside its event loop")
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result()


awaits._awaiting.update(iterator=_await_iterator, call=_await_call)

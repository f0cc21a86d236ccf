"""`xcs.jit(async_fn)`: awaited calls issued ahead as tasks on the running loop, behaving like plain.

Each test runs the plain coroutine and the jitted one on the same inputs, and compares results,
exceptions, the calls made (a log) and, where it is the point, how many calls ran at once.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import xcs_bc as xcs
from asyncfakes import LATENCY, AsyncLLM

MIN_CALL_MS = 10.0


llm = AsyncLLM()


async def summarize(docs: list[str]) -> str:
    notes = []
    for doc in docs:
        notes.append(await llm.complete(f"Summarize: {doc}"))
    return await llm.complete("Combine: " + " | ".join(notes), style="final")


async def review(docs: list[str]) -> list[str]:
    """Two stages, a branch on each result, a handled error."""
    drafts = [await llm.complete(f"Draft: {doc}", style="lenient") for doc in docs]
    out = []
    for draft in drafts:
        try:
            verdict = await llm.complete(f"Check: {draft}")
        except ValueError as exc:
            out.append(f"error {exc}")
            continue
        out.append(verdict if "x" in verdict else "?")
    return out


def run(coroutine: Awaitable[Any]) -> Any:
    return asyncio.run(coroutine)  # type: ignore[arg-type]


def outcome(fn: Callable[..., Awaitable[Any]], *args: Any) -> tuple[Any, list[str]]:
    llm.reset()
    try:
        value: Any = run(fn(*args))
    except Exception as exc:  # noqa: BLE001 - compared with the plain run's
        value = (type(exc), str(exc))
    return value, sorted(llm.calls)


def test_a_jitted_async_function_is_a_coroutine_function_and_awaits_like_plain() -> None:
    fast = xcs.jit(summarize, min_call_ms=MIN_CALL_MS)
    assert inspect.iscoroutinefunction(fast)
    assert asyncio.iscoroutinefunction(fast)
    for k in range(3):
        docs = [f"doc {k}.{i}" for i in range(6)]
        assert outcome(fast, docs) == outcome(summarize, docs)
    assert fast.stats.traces == 1 and fast.stats.replays == 2 and fast.stats.served == 14
    assert "await AsyncLLM.complete" in fast.explain()


def test_the_awaits_of_a_loop_run_at_once_on_replay() -> None:
    fast = xcs.jit(summarize, min_call_ms=MIN_CALL_MS)
    run(fast(["a", "b"]))
    llm.reset()
    run(fast([f"doc {i}" for i in range(8)]))
    assert llm.peak == 8  # the eight summaries at once, like asyncio.gather
    assert fast.stats.mispredictions == 0


def test_the_first_call_issues_its_loop_s_later_awaits_ahead() -> None:
    fast = xcs.jit(summarize, min_call_ms=MIN_CALL_MS)
    docs = [f"first {i}" for i in range(8)]
    plain = outcome(summarize, docs)
    llm.reset()
    assert run(fast(docs)) == plain[0] and sorted(llm.calls) == plain[1]
    assert llm.peak == 7  # the rounds after the first, at once (like gather), on the very first call
    # (the second round's call, issued as that round starts, may be reached before it started: the
    # run then makes it itself)
    assert fast.stats.traces == 1 and fast.stats.served_in_trace in (6, 7)


def test_branches_and_handled_errors_behave_like_plain() -> None:
    fast = xcs.jit(review, min_call_ms=MIN_CALL_MS)
    for docs in (["a", "b"], ["c", "bad", "d"], ["bad one", "e", "f", "g"]):
        assert outcome(fast, docs) == outcome(review, docs)


def test_an_exception_an_awaited_call_raises_reaches_the_caller_as_in_plain() -> None:
    fast = xcs.jit(summarize, min_call_ms=MIN_CALL_MS)
    run(fast(["a", "b", "c"]))
    plain = outcome(summarize, ["x", "bad", "y"])
    assert plain[0] == (ValueError, "refused: Summarize: bad")
    assert outcome(fast, ["x", "bad", "y"])[0] == plain[0]


async def guarded(docs: list[str], log: list[str]) -> str:
    try:
        return await summarize(docs)
    finally:
        log.append("finally ran")


def test_cancelling_the_task_cancels_at_the_await_and_starts_no_call_after() -> None:
    fast = xcs.jit(summarize, min_call_ms=MIN_CALL_MS)
    run(fast(["warm a", "warm b"]))

    async def cancel_midway(fn: Callable[..., Awaitable[str]]) -> tuple[str, float]:
        task = asyncio.ensure_future(fn([f"doc {i}" for i in range(6)]))
        await asyncio.sleep(LATENCY * 1.5)
        task.cancel()
        cancelled_at = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(LATENCY * 3)  # anything still to start would have started by now
        return "cancelled", cancelled_at

    for fn in (summarize, fast):
        llm.reset()
        _, at = run(cancel_midway(fn))
        assert not [t for t in llm.started if t > at + 0.005], fn  # no call started after the cancel


def test_a_timeout_around_the_jitted_call_behaves_like_plain() -> None:
    fast = xcs.jit(summarize, min_call_ms=MIN_CALL_MS)
    run(fast(["a", "b"]))

    async def bounded(fn: Callable[..., Awaitable[str]]) -> str:
        try:
            return await asyncio.wait_for(fn(["slow 1", "slow 2", "slow 3"]), timeout=LATENCY / 2)
        except asyncio.TimeoutError:
            return "timed out"

    assert run(bounded(fast)) == run(bounded(summarize)) == "timed out"


REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


async def tagged_call(prompt: str) -> str:
    return await llm.complete(f"{prompt} [{REQUEST_ID.get()}]")


async def mark(value: str) -> None:
    await asyncio.sleep(0)
    REQUEST_ID.set(value)


async def with_context(docs: list[str]) -> list[str]:
    out = [await tagged_call(doc) for doc in docs]
    await mark("changed by an awaited coroutine")
    out.append(REQUEST_ID.get())
    REQUEST_ID.set("changed by the function")
    return out


def test_contextvars_flow_both_ways_as_in_plain() -> None:
    fast = xcs.jit(with_context, min_call_ms=MIN_CALL_MS)

    async def caller(fn: Callable[..., Awaitable[list[str]]], docs: list[str]) -> tuple[list[str], str]:
        REQUEST_ID.set("req-7")
        got = await fn(docs)
        return got, REQUEST_ID.get()

    for docs in (["a", "b"], ["c", "d", "e"]):
        llm.reset()
        plain = run(caller(with_context, docs))
        plain_calls = sorted(llm.calls)
        llm.reset()
        assert run(caller(fast, docs)) == plain
        assert sorted(llm.calls) == plain_calls
    assert plain[1] == "changed by the function" and "[req-7]" in plain[0][0]


class Resource:
    """An async context manager and async iterator that logs what is done to it."""

    def __init__(self) -> None:
        self.log: list[str] = []

    async def __aenter__(self) -> Resource:
        self.log.append("enter")
        return self

    async def __aexit__(self, *exc: object) -> bool:
        self.log.append(f"exit {exc[0].__name__ if exc[0] else None}")
        return False

    def __aiter__(self) -> Any:
        async def items() -> Any:
            for k in range(3):
                await asyncio.sleep(0)
                yield k

        return items()


async def uses_the_loop(docs: list[str], resource: Resource) -> list[Any]:
    out: list[Any] = [asyncio.get_running_loop() is not None, asyncio.current_task() is not None]
    task = asyncio.create_task(llm.complete("in a task"))
    async with resource as r:
        async for k in r:
            out.append(k)
        out += [await llm.complete(doc) for doc in docs]
    out.append(await task)
    future = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(future.set_result, "from a future")
    out.append(await future)
    await asyncio.sleep(0.001)
    return out


def test_loop_apis_async_with_async_for_tasks_and_futures_work_as_in_plain() -> None:
    fast = xcs.jit(uses_the_loop, min_call_ms=MIN_CALL_MS)
    for docs in (["a", "b"], ["c", "d", "e"]):
        plain_resource, fast_resource = Resource(), Resource()
        assert outcome(fast, docs, fast_resource) == outcome(uses_the_loop, docs, plain_resource)
        assert fast_resource.log == plain_resource.log == ["enter", "exit None"]


async def paced(docs: list[str]) -> list[str]:
    out = []
    for doc in docs:
        await asyncio.sleep(0.02)  # a delay: its point is when it happens
        out.append(await llm.complete(doc))
    return out


def test_asyncio_waits_are_never_issued_ahead() -> None:
    fast = xcs.jit(paced, min_call_ms=MIN_CALL_MS)
    for docs in (["a", "b"], ["c", "d", "e"]):
        assert outcome(fast, docs) == outcome(paced, docs)
    text = fast.explain()
    assert "await sleep" in text and "waits or synchronises" in text


async def raises_stop_iteration(x: int) -> int:
    await asyncio.sleep(0)
    raise StopIteration(x)


def exhausted() -> Any:
    yield from ()
    raise StopIteration  # a generator's: "generator raised StopIteration"


async def drains_a_generator(x: int) -> list[Any]:
    await asyncio.sleep(0)
    return list(exhausted())


def test_stop_iteration_inside_becomes_the_same_runtime_error() -> None:
    fast = xcs.jit(raises_stop_iteration)
    for _ in range(2):
        with pytest.raises(RuntimeError, match="^coroutine raised StopIteration$") as raised:
            run(fast(3))
        assert isinstance(raised.value.__cause__, StopIteration)
    generator_error = xcs.jit(drains_a_generator)
    for _ in range(2):
        with pytest.raises(RuntimeError, match="^generator raised StopIteration$"):
            run(generator_error(3))


async def inner(doc: str) -> str:
    first = await llm.complete(f"inner 1: {doc}")
    return await llm.complete(f"inner 2: {first}")


fast_inner = xcs.jit(inner, min_call_ms=MIN_CALL_MS)


async def outer(docs: list[str]) -> list[str]:
    return [await fast_inner(doc) for doc in docs]


def test_nested_jitted_async_functions_behave_like_plain() -> None:
    fast = xcs.jit(outer, min_call_ms=MIN_CALL_MS)
    for docs in (["a", "b"], ["c", "d", "e"], ["f"]):
        llm.reset()
        plain = run(outer(docs))
        plain_calls = sorted(llm.calls)
        llm.reset()
        assert run(fast(docs)) == plain and sorted(llm.calls) == plain_calls


def test_gathered_calls_of_one_jitted_function_behave_like_plain() -> None:
    fast = xcs.jit(summarize, min_call_ms=MIN_CALL_MS)

    async def many(fn: Callable[..., Awaitable[str]]) -> list[str]:
        return list(await asyncio.gather(*(fn([f"g{k}.{i}" for i in range(3)]) for k in range(4))))

    for _ in range(2):
        llm.reset()
        plain = run(many(summarize))
        plain_calls = sorted(llm.calls)
        llm.reset()
        assert run(many(fast)) == plain and sorted(llm.calls) == plain_calls


def test_a_limit_on_the_client_holds_for_awaited_calls() -> None:
    client = AsyncLLM()

    async def fan(docs: list[str]) -> list[str]:
        return [await client.complete(doc) for doc in docs]

    fast = xcs.jit(fan, min_call_ms=MIN_CALL_MS)
    xcs.limit(client, concurrency=2)
    run(fast(["a", "b"]))
    client.reset()
    assert run(fast([f"doc {i}" for i in range(8)])) == [f"plain(doc {i})" for i in range(8)]
    assert client.peak == 2  # two at once: the limit, and not one (it did go parallel)


def sync_slow(prompt: str) -> str:
    time.sleep(LATENCY)
    return f"sync({prompt})"


async def mixed(docs: list[str]) -> list[str]:
    out = []
    for doc in docs:
        out.append(sync_slow(doc))  # a blocking call in an async function: it blocks the loop
        out.append(await llm.complete(doc))
    return out


def test_blocking_calls_inside_an_async_function_behave_like_plain() -> None:
    fast = xcs.jit(mixed, min_call_ms=MIN_CALL_MS)
    for docs in (["a", "b"], ["c", "d", "e"]):
        assert outcome(fast, docs) == outcome(mixed, docs)


async def agen(n: int) -> Any:
    for k in range(n):
        yield await llm.complete(f"item {k}")


def test_async_generators_run_plainly_and_say_why() -> None:
    fast = xcs.jit(agen)

    async def collect() -> list[str]:
        return [item async for item in fast(2)]

    assert run(collect()) == ["plain(item 0)", "plain(item 1)"]
    assert "generators are not replayed" in fast.explain()


def test_map_of_an_async_function_says_to_gather() -> None:
    fast = xcs.jit(summarize)
    with pytest.raises(xcs.ConfigError, match="asyncio.gather"):
        fast.map([["a"]])


def test_the_function_s_own_code_runs_while_the_loop_waits() -> None:
    """Between two awaits no other task runs, as on the loop: a counter another task bumps on
    every loop turn does not move while the function's own code runs."""
    ticks = [0]

    async def ticker() -> None:
        while True:
            ticks[0] += 1
            await asyncio.sleep(0)

    async def busy(docs: list[str]) -> list[int]:
        seen = []
        for doc in docs:
            before = ticks[0]
            spin = time.monotonic() + 0.01
            while time.monotonic() < spin:  # own code, no await
                pass
            seen.append(ticks[0] - before)
            await llm.complete(doc)
        return seen

    fast = xcs.jit(busy, min_call_ms=MIN_CALL_MS)

    async def main(fn: Callable[..., Awaitable[list[int]]]) -> list[int]:
        tick = asyncio.ensure_future(ticker())
        try:
            return await fn(["a", "b", "c"])
        finally:
            tick.cancel()

    for _ in range(3):
        assert run(main(fast)) == [0, 0, 0]


async def inner_on(client: AsyncLLM, doc: str) -> str:
    first = await client.complete(f"inner 1: {doc}")
    return await client.complete(f"inner 2: {first}")


def test_nested_jitted_async_functions_under_one_bounded_limit_do_not_wait_for_their_caller() -> None:
    """The outer awaited call holds the only room of the client's limit (the client is one of its
    arguments); the inner function's calls are made on behalf of it, on another thread: they must
    count without waiting, as nested synchronous jitted functions do."""
    client = AsyncLLM(latency=0.01)
    fast_inner_on = xcs.jit(inner_on, min_call_ms=5.0)

    async def outer_on(client: AsyncLLM, docs: list[str]) -> list[str]:
        return [await fast_inner_on(client, doc) for doc in docs]

    fast = xcs.jit(outer_on, min_call_ms=5.0)
    xcs.limit(client, concurrency=1)
    results: list[Any] = []

    def main() -> None:
        async def rounds() -> None:
            for docs in (["a", "b"], ["c", "d", "e"]):
                results.append((await fast(client, docs), await outer_on(client, docs)))

        asyncio.run(rounds())

    worker = threading.Thread(target=main, daemon=True)  # (a hang fails the test, not the run)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "the nested calls waited for room their caller holds"
    assert len(results) == 2 and all(jitted == plain for jitted, plain in results)

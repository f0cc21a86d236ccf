"""What frameworks ask of a jitted function: its signature, and whether to await or iterate it.

`inspect.iscoroutinefunction`, `isgeneratorfunction`, `isasyncgenfunction` and
`asyncio.iscoroutinefunction` must answer for `xcs.jit(fn)` as they do for `fn`, on every
version; calling it must give `fn`'s own coroutine or generator (they run plainly).
"""

from __future__ import annotations

import asyncio
import inspect
import types
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import Any

import pytest

import xcs_bc as xcs
from xcs_bc.testing import FakeLLM

PREDICATES: list[Callable[[Any], bool]] = [
    inspect.iscoroutinefunction,
    inspect.isgeneratorfunction,
    inspect.isasyncgenfunction,
    asyncio.iscoroutinefunction,
]


def plain(x: int, y: int = 2, *, z: int = 3) -> int:
    return x + y + z


async def coroutine(x: int, y: int = 2, *, z: int = 3) -> int:
    await asyncio.sleep(0)
    return x + y + z


def generator(n: int, start: int = 0) -> Generator[int, int, str]:
    total = start
    for _ in range(n):
        total += (yield total) or 0
    return f"sum {total}"


async def async_generator(n: int) -> AsyncIterator[int]:
    for i in range(n):
        await asyncio.sleep(0)
        yield i


@types.coroutine
def iterable_coroutine() -> Iterator[None]:
    yield None


class Service:
    def __init__(self, offset: int) -> None:
        self.offset = offset

    @xcs.jit
    async def fetch(self, x: int) -> int:
        await asyncio.sleep(0)
        return x + self.offset

    @xcs.jit
    def stream(self, n: int) -> Iterator[int]:
        for i in range(n):
            yield i + self.offset

    @xcs.jit
    def compute(self, x: int) -> int:
        return x * self.offset

    async def unjitted(self, x: int) -> int:
        return x


class AsyncCallable:
    async def __call__(self, x: int) -> int:
        return x


KINDS = [plain, coroutine, generator, async_generator, iterable_coroutine]


@pytest.mark.parametrize("fn", KINDS, ids=lambda fn: fn.__name__)
def test_predicates_answer_as_for_the_function(fn: Callable[..., Any]) -> None:
    fast = xcs.jit(fn)
    assert [predicate(fast) for predicate in PREDICATES] == [predicate(fn) for predicate in PREDICATES]
    assert inspect.signature(fast) == inspect.signature(fn)
    assert not inspect.isfunction(fast)  # it is not one; only the predicates duck-type it


def test_each_kind_is_recognised_as_itself() -> None:
    # guards against the parametrized test passing because every predicate says False
    assert inspect.iscoroutinefunction(xcs.jit(coroutine))
    assert asyncio.iscoroutinefunction(xcs.jit(coroutine))
    assert inspect.isgeneratorfunction(xcs.jit(generator))
    assert inspect.isasyncgenfunction(xcs.jit(async_generator))
    assert inspect.isgeneratorfunction(xcs.jit(iterable_coroutine))
    assert not any(predicate(xcs.jit(plain)) for predicate in PREDICATES)


def test_methods_answer_as_the_methods_they_jit() -> None:
    service = Service(10)
    reference = Service.unjitted, service.unjitted
    for fast, plain_method in zip((Service.fetch, service.fetch), reference, strict=True):
        assert inspect.iscoroutinefunction(fast) and inspect.iscoroutinefunction(plain_method)
        assert asyncio.iscoroutinefunction(fast)
    assert inspect.isgeneratorfunction(service.stream) and inspect.isgeneratorfunction(Service.stream)
    assert not inspect.iscoroutinefunction(service.compute)
    assert inspect.signature(service.fetch) == inspect.signature(service.unjitted)
    assert asyncio.run(service.fetch(5)) == 15
    assert list(service.stream(3)) == [10, 11, 12]
    assert service.compute(2) == 20
    assert Service.fetch.stats.traces == 1 and Service.stream.stats.plain_runs == 1


def test_bound_methods_and_callable_objects_answer_as_themselves() -> None:
    service = Service(1)
    bound = xcs.jit(service.unjitted)
    assert inspect.iscoroutinefunction(bound) and asyncio.run(bound(4)) == 4
    assert inspect.signature(bound) == inspect.signature(service.unjitted)
    callable_object = AsyncCallable()
    fast = xcs.jit(callable_object)
    # inspect does not call an object with an async __call__ a coroutine function: nor for its jit
    assert [predicate(fast) for predicate in PREDICATES] == [
        predicate(callable_object) for predicate in PREDICATES
    ]
    assert asyncio.run(fast(7)) == 7


def test_a_jitted_coroutine_function_returns_a_coroutine_and_binds_at_the_call() -> None:
    fast = xcs.jit(coroutine)
    awaitable = fast(1, z=5)
    assert inspect.iscoroutine(awaitable)  # (run through its twin: docs/jit.md, "Async functions")
    assert asyncio.run(awaitable) == 8
    assert fast.stats.traces == 1
    with pytest.raises(TypeError) as plain_error:
        coroutine()  # type: ignore[call-arg]
    with pytest.raises(TypeError) as jit_error:
        fast()  # type: ignore[call-arg]
    assert str(jit_error.value) == str(plain_error.value)  # raised at the call, not at the await


def test_a_jitted_generator_function_returns_the_functions_own_generator() -> None:
    fast = xcs.jit(generator)
    gen = fast(3, start=1)
    assert inspect.isgenerator(gen) and gen.gi_code is generator.__code__
    assert next(gen) == 1
    assert gen.send(10) == 11
    assert gen.send(5) == 16
    with pytest.raises(StopIteration) as stop:
        gen.send(1)
    assert stop.value.value == "sum 17"
    assert fast.stats.plain_runs == 1


def test_a_jitted_async_generator_function_returns_the_functions_own() -> None:
    fast = xcs.jit(async_generator)

    async def consume() -> list[int]:
        agen = fast(3)
        assert inspect.isasyncgen(agen) and agen.ag_code is async_generator.__code__
        return [i async for i in agen]

    assert asyncio.run(consume()) == [0, 1, 2]


def test_asyncio_awaits_a_jitted_coroutine_function_it_detects() -> None:
    """What a framework does: await the result when the callable is a coroutine function."""
    llm = FakeLLM("llm", 0.0)

    async def handler(prompt: str) -> str:
        await asyncio.sleep(0)
        return llm(prompt)

    def dispatch(callback: Callable[[str], Any], prompt: str) -> Any:
        if asyncio.iscoroutinefunction(callback):
            return asyncio.run(callback(prompt))
        return callback(prompt)

    assert dispatch(xcs.jit(handler), "hi") == dispatch(handler, "hi") == "llm(hi)"


def test_jitted_generators_called_from_observed_code_run_as_the_plain_ones() -> None:
    """The jitted object carries the generator's code: observers and the jit still handle it."""
    llm = FakeLLM("llm", 0.02)

    def ask(xs: list[str]) -> Iterator[str]:
        for x in xs:
            yield llm(x)

    fast_ask = xcs.jit(ask)

    def pipeline(xs: list[str]) -> list[str]:
        return [*fast_ask(xs), llm("done")]

    with xcs.capture(min_call_ms=10) as cap:
        result = pipeline(["a", "b"])
    assert result == ["llm(a)", "llm(b)", "llm(done)"]
    assert len(cap.graph.operations) >= 1
    fast = xcs.jit(pipeline, min_call_ms=10)
    for _ in range(3):
        llm.reset()
        assert fast(["c", "d"]) == ["llm(c)", "llm(d)", "llm(done)"]
        assert sorted(prompt for prompt, _ in llm.calls) == ["c", "d", "done"]


def test_signature_is_the_functions() -> None:
    def typed(a: int, /, b: str = "b", *args: float, c: bytes, **kwargs: object) -> str:
        return f"{a}{b}{args}{c!r}{kwargs}"

    fast = xcs.jit(typed)
    assert inspect.signature(fast) == inspect.signature(typed)
    assert fast.__name__ == "typed" and fast.__wrapped__ is typed  # type: ignore[attr-defined]
    assert fast(1, c=b"c") == typed(1, c=b"c")

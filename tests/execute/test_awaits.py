"""`awaits.twin`: an async function's synchronous twin, read from its bytecode.

The twin's awaits call `awaits.awaited` (an awaitable) or an `AwaitSite` (an awaited call); here
they are driven without a loop, by stand-ins that run the awaitable to its end on the spot, so
that the transform is checked on its own: same results, same exceptions at the same awaits, no
instruction of a coroutine left.
"""

from __future__ import annotations

import dis
import types
from collections.abc import Iterator
from typing import Any

import pytest

from xcs_bc.errors import UnsupportedCodeError
from xcs_bc.execute import awaits
from xcs_bc.execute.awaits import AwaitSite, twin
from xcs_bc.execute.callsites import walk_code
from xcs_bc.ir.values import awaited_call
from xcs_bc.ir.values import awaits as is_await_site


def _drive(awaitable_iterator: Any) -> Any:
    """Run what GET_AWAITABLE made to its end (the fakes below never really suspend)."""
    try:
        while True:
            awaitable_iterator.send(None)
    except StopIteration as stop:
        return stop.value


@pytest.fixture
def driven(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """The twin's awaits, driven in place; each awaited call is recorded."""
    made: list[tuple[Any, ...]] = []

    def call(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        made.append((fn.__name__, args, kwargs))
        return _drive(fn(*args, **kwargs).__await__())

    monkeypatch.setitem(
        awaits._awaiting, "iterator", lambda it: _drive(it if hasattr(it, "send") else iter(it))
    )
    monkeypatch.setitem(awaits._awaiting, "call", call)
    return made


class Client:
    async def ask(self, prompt: str, *, tone: str = "plain") -> str:
        if "bad" in prompt:
            raise ValueError(prompt)
        return f"{tone}({prompt})"

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> bool:
        return False

    def __aiter__(self) -> Iterator[int]:
        return self.items()  # type: ignore[return-value]

    async def items(self) -> Any:
        for k in range(2):
            yield k


async def done(value: int) -> int:
    return value


async def every_await(client: Client, prompts: list[str]) -> list[Any]:
    out: list[Any] = []
    for prompt in prompts:
        try:
            out.append(await client.ask(prompt, tone="warm"))
        except ValueError as exc:
            out.append(f"caught {exc}")
    out.append(await client.ask(*["star"], **{"tone": "cold"}))
    pending = done(7)
    out.append(await pending)
    async with client as c:
        out.append(await c.ask("inside"))
    async for k in client:
        out.append(k)
    out += [await client.ask(p) for p in prompts[:1]]
    return out


def _coroutine_result(fn: Any, *args: Any) -> Any:
    coroutine = fn(*args)
    try:
        while True:
            coroutine.send(None)
    except StopIteration as stop:
        return stop.value


def test_the_twin_returns_what_the_coroutine_does(driven: list[tuple[Any, ...]]) -> None:
    made = twin(every_await)
    args = (Client(), ["a", "bad", "c"])
    assert made(*args) == _coroutine_result(every_await, *args)
    assert ("ask", ("a",), {"tone": "warm"}) in driven  # `await f(...)` made one call of f
    assert ("ask", ("star",), {"tone": "cold"}) in driven  # f(*seq, **kw) too


def test_no_instruction_of_a_coroutine_is_left() -> None:
    made = twin(every_await)
    assert not made.__code__.co_flags & 0x80  # CO_COROUTINE
    for _, code in walk_code(made.__code__, (made.__code__.co_name,)):
        if code.co_flags & 0x200:  # an async generator nested in it stays one (it is not the twin's)
            continue
        names = {ins.opname for ins in dis.get_instructions(code)}
        assert not names & {
            "SEND",
            "YIELD_VALUE",
            "YIELD_FROM",
            "RETURN_GENERATOR",
            "GEN_START",
            "CLEANUP_THROW",
        }


def test_awaited_calls_are_await_sites_the_lower_stages_recognise() -> None:
    made = twin(every_await)
    sites = [const for const in made.__code__.co_consts if isinstance(const, types.MethodType)]
    assert sites and all(isinstance(site.__self__, AwaitSite) for site in sites)
    call = next(site for site in sites if site.__func__ is AwaitSite.call)
    client = Client()
    assert is_await_site(call) and not is_await_site(client.ask)
    assert awaited_call(call, (client.ask, ("p", "warm", ("tone",)))) == (
        client.ask,
        ("p",),
        {"tone": "warm"},
    )
    assert awaited_call(client.ask, ("p",)) is None


def test_an_await_site_cannot_be_pickled() -> None:
    import pickle

    with pytest.raises(TypeError, match="runs on its event loop"):
        pickle.dumps(AwaitSite((("f",), 0)))


async def agen() -> Any:
    yield 1


def plain(x: int) -> int:
    return x


@pytest.mark.parametrize("fn", [agen, plain])
def test_only_async_functions_have_a_twin(fn: Any) -> None:
    with pytest.raises(UnsupportedCodeError, match="is not an async function"):
        twin(fn)


def test_awaits_in_every_position_behave_as_in_the_coroutine(driven: list[tuple[Any, ...]]) -> None:
    client = Client()
    scale = 3

    async def shapes(prompts: list[str]) -> list[Any]:
        out: list[Any] = []
        k = 0
        while k < len(prompts):
            if (answer := await client.ask(prompts[k])) and "b" in prompts[k]:
                break
            out.append(answer)
            k += 1
        try:
            try:
                out.append(await client.ask("bad inner"))
            finally:
                out.append(await done(scale))  # an await in a finally, while an exception is on its way
        except ValueError as exc:
            out.append(f"caught {exc}")
        out.append(f"{await client.ask('in an f-string')}!")
        out.append(len(await client.ask("an argument")))
        out.append((await client.ask("x")).upper())
        out.append(await client.ask("a") if len(prompts) > 1 else await client.ask("b"))
        with open(__file__) as handle:  # a sync with around an await
            out.append(bool(handle.readline()) and await done(1))
        return out

    for prompts in (["a", "c"], ["a", "b", "c"], []):
        assert twin(shapes)(prompts) == _coroutine_result(shapes, prompts)

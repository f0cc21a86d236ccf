"""`xcs.capture()` inside a coroutine: each awaited call is an operation lasting until its await is
done, other awaits are operations when slow, and the block runs exactly as without the capture."""

from __future__ import annotations

import ast
import asyncio
import gc
import sys
import textwrap
import weakref
from typing import Any

import pytest

import xcs_bc as xcs
from asyncfakes import AsyncLLM
from xcs_bc.errors import CaptureError
from xcs_bc.observe.hooks import is_observing

MIN_CALL_MS = 20.0


async def summarize(llm: AsyncLLM, docs: list[str]) -> tuple[str, xcs.capture]:
    with xcs.capture(min_call_ms=MIN_CALL_MS) as cap:
        notes = []
        for doc in docs:
            notes.append(await llm.complete(doc))
        report = await llm.complete(" | ".join(notes), style="report")
    return report, cap


# The same on CPython 3.10, 3.11, 3.12 and 3.13.
GOLDEN = """\
graph summarize@25(docs, llm):
  %0 = call await AsyncLLM.complete(docs[0])                                    # test_capture_async.py:28
  %1 = call await AsyncLLM.complete(docs[1])                                    # test_capture_async.py:28
  %2 = call await AsyncLLM.complete(docs[2])                                    # test_capture_async.py:28
  %3 = call await AsyncLLM.complete(' | '.join(list(%0, %1, %2)), style='report')  # test_capture_async.py:29
parallel %0, %1, %2"""


def test_awaited_calls_are_operations_with_their_dataflow() -> None:
    llm = AsyncLLM()
    report, cap = asyncio.run(summarize(llm, ["a", "b", "c"]))
    assert report == "report(plain(a) | plain(b) | plain(c))"
    assert str(cap.graph) == GOLDEN
    assert cap.graph.metadata["resyncs"] == []
    # an awaited call lasts until its await is done, and its result is what the await gave
    first = cap.graph.operations[0]
    assert first.metadata["duration"] >= 0.05 and first.outputs[0].value == "plain(a)"
    awaited = [event for event in cap.events if getattr(event.callee, "__name__", "") == "complete"]
    assert len(awaited) == 4 and all(event.duration >= 0.05 for event in awaited)
    assert awaited[0].args == {"prompt": "a", "style": "plain"} and awaited[0].result == "plain(a)"
    report_text = cap.report()
    assert "3 calls at test_capture_async.py:28 are independent" in report_text
    assert "a map of await AsyncLLM.complete over docs" in report_text


def test_the_block_runs_exactly_as_without_the_capture() -> None:
    async def plain(llm: AsyncLLM, docs: list[str]) -> str:
        notes = []
        for doc in docs:
            notes.append(await llm.complete(doc))
        return await llm.complete(" | ".join(notes), style="report")

    docs = ["x", "y"]
    plain_llm, captured_llm = AsyncLLM(), AsyncLLM()
    expected = asyncio.run(plain(plain_llm, docs))
    got, _ = asyncio.run(summarize(captured_llm, docs))
    assert got == expected
    assert captured_llm.calls == plain_llm.calls and captured_llm.peak == 1  # one at a time, as plain


def test_an_exception_at_an_await_propagates_unchanged_and_is_recorded() -> None:
    llm = AsyncLLM()

    async def main() -> xcs.capture:
        with pytest.raises(ValueError, match="refused: bad") as info:
            with xcs.capture(min_call_ms=MIN_CALL_MS) as cap:
                await llm.complete("ok")
                await llm.complete("bad")
        assert info.value.__traceback__ is not None
        return cap

    cap = asyncio.run(main())
    assert [op.name for op in cap.graph.operations] == ["await AsyncLLM.complete"] * 2
    assert isinstance(cap.graph.operations[1].metadata["exception"], ValueError)
    assert llm.calls == ["ok", "bad"]


def test_a_handled_exception_leaves_the_calls_after_it_independent() -> None:
    llm = AsyncLLM()

    async def main() -> tuple[str, str, xcs.capture]:
        with xcs.capture(min_call_ms=MIN_CALL_MS) as cap:
            try:
                first = await llm.complete("bad")
            except ValueError as error:
                first = str(error)
            second = await llm.complete("fine")
        return first, second, cap

    first, second, cap = asyncio.run(main())
    assert (first, second) == ("refused: bad", "plain(fine)")
    ops = cap.graph.operations
    assert "exception" in ops[0].metadata and ops[1].control == ()
    assert cap.graph.independent_sets() == [{ops[0], ops[1]}]


class Stream:
    """An async iterator whose items take a while to come."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> int:
        if self.n == 0:
            raise StopAsyncIteration
        self.n -= 1
        await asyncio.sleep(0.03)
        return self.n


class Session:
    async def __aenter__(self) -> Session:
        await asyncio.sleep(0.03)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.sleep(0.03)


def test_other_awaits_are_operations_when_slow_and_the_block_runs_on() -> None:
    llm = AsyncLLM()

    async def main() -> tuple[Any, xcs.capture]:
        with xcs.capture(min_call_ms=MIN_CALL_MS) as cap:
            items = [item async for item in Stream(2)]
            task = asyncio.create_task(llm.complete("task"))
            from_task = await task
            async with Session():
                inside = await llm.complete("inside")
            both = await asyncio.gather(llm.complete("g1"), llm.complete("g2"))
            after = await llm.complete("after")
        return (items, from_task, inside, both, after), cap

    result, cap = asyncio.run(main())
    assert result == ([1, 0], "plain(task)", "plain(inside)", ["plain(g1)", "plain(g2)"], "plain(after)")
    names = [op.name for op in cap.graph.operations]
    assert names[:3] == ["await anext", "await anext", "await"]  # two items (the end is fast), the task
    assert names[3] == "await __aenter__" and names[4] == "await AsyncLLM.complete"
    # 3.10 makes an `async with`'s exit a call of the bound `__aexit__`, which it cannot name
    assert names[5] in ("await __aexit__", "await ?")
    assert names[6:] == ["await gather", "await AsyncLLM.complete"]
    assert cap.graph.metadata["resyncs"] == []
    # nothing after the `async for` (which ends by an exception) waits on how it ended
    assert all(op.control == () for op in cap.graph.operations)


def test_a_cancelled_block_raises_cancelled_error_and_leaves_no_hook() -> None:
    llm = AsyncLLM(latency=5.0)
    caps: list[xcs.capture] = []

    async def body() -> None:
        caps.append(cap := xcs.capture(min_call_ms=MIN_CALL_MS))
        with cap:
            await llm.complete("never done")

    async def main() -> None:
        task = asyncio.create_task(body())
        await asyncio.sleep(0.05)
        assert is_observing()  # the block is waiting at its await, on this thread
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not is_observing()

    asyncio.run(main())
    [op] = caps[0].graph.operations
    assert op.name == "await AsyncLLM.complete"
    assert isinstance(op.metadata["exception"], asyncio.CancelledError)
    assert sys.gettrace() is None


def test_two_tasks_capturing_at_once_is_a_clear_error() -> None:
    llm = AsyncLLM()

    async def capturing(doc: str) -> str:
        with xcs.capture(min_call_ms=MIN_CALL_MS):
            return await llm.complete(doc)

    async def main() -> list[Any]:
        return await asyncio.gather(capturing("one"), capturing("two"), return_exceptions=True)

    first, second = asyncio.run(main())
    assert first == "plain(one)"
    assert isinstance(second, CaptureError)
    assert "in another task on this event loop" in str(second) and "one task at a time" in str(second)
    assert llm.calls == ["one"]  # the second block never started


def test_other_tasks_frames_are_not_kept_while_a_block_waits() -> None:
    """While the captured coroutine waits, the loop runs other tasks on the observed thread: the
    observer must not hold on to their frames (and everything their locals refer to)."""

    class Payload:
        pass

    refs: list[weakref.ref[Payload]] = []

    async def other() -> None:
        payload = Payload()
        refs.append(weakref.ref(payload))
        await asyncio.sleep(0)

    async def main() -> None:
        with xcs.capture(min_call_ms=MIN_CALL_MS):
            await asyncio.gather(other(), asyncio.sleep(0.05))
            gc.collect()
            assert refs and refs[0]() is None  # gone while the block is still under way

    asyncio.run(main())


def test_a_notebook_cell_with_top_level_await() -> None:
    """A notebook cell (or the asyncio REPL) is module code compiled to a coroutine; on 3.10/3.11 its
    async comprehension is a coroutine of its own, awaited by the cell."""
    source = textwrap.dedent(
        """
        with xcs.capture(min_call_ms=MIN_CALL_MS) as cap:
            notes = [await llm.complete(doc) for doc in docs]
            final = await llm.complete(" ".join(notes))
        """
    )
    code = compile(source, "<cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    namespace: dict[str, Any] = {
        "xcs": xcs,
        "llm": AsyncLLM(),
        "docs": ["a", "b"],
        "MIN_CALL_MS": MIN_CALL_MS,
    }

    async def run_cell() -> None:
        await eval(code, namespace)  # noqa: S307 - what a notebook does with a cell

    asyncio.run(run_cell())
    assert namespace["final"] == "plain(plain(a) plain(b))"
    graph = namespace["cap"].graph
    assert [op.name for op in graph.operations] == ["await AsyncLLM.complete"] * 3
    deps = {op.id: sorted(d.id for d in graph.dependencies(op)) for op in graph.operations}
    assert deps == {0: [], 1: [], 2: [0, 1]}

"""`xcs.jit` of an async pipeline over the real `openai.AsyncOpenAI` client and a local server.

The server answers 429 when more than 3 requests are in flight (`openai_server`); the client is
made with `max_retries=0`, so every overload reaches the library.  Each test runs everything on
one event loop: the client's connection pool belongs to the loop it was first used on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import openai
import pytest

import xcs_bc as xcs
from openai_server import FakeOpenAIServer

SERVER_CAP = 3
LATENCY = 0.1
MIN_CALL_MS = 20.0


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(latency=LATENCY, max_in_flight=SERVER_CAP, fail_on="poison") as server:
        yield server


async def summarize_docs(client: Any, docs: list[str]) -> str:
    """Summarize each document, then combine the summaries into one report."""
    summaries = []
    for doc in docs:
        response = await client.chat.completions.create(
            model="summarizer", messages=[{"role": "user", "content": f"Summarize in one line: {doc}"}]
        )
        summaries.append(response.choices[0].message.content)
    combined = await client.chat.completions.create(
        model="writer",
        messages=[
            {"role": "user", "content": f"Combine these {len(summaries)} summaries: {' | '.join(summaries)}"}
        ],
    )
    return str(combined.choices[0].message.content)


def docs(tag: str, n: int = 6) -> list[str]:
    return [f"{tag} document {i}" for i in range(n)]


def test_an_async_openai_pipeline_equals_plain_and_holds_the_limit(server: FakeOpenAIServer) -> None:
    async def main() -> None:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        limit = xcs.limit(client, concurrency=SERVER_CAP)
        fast = xcs.jit(summarize_docs, min_call_ms=MIN_CALL_MS)
        await fast(client, docs("trace", 2))
        for k in range(2):
            batch = docs(f"round {k}")
            before = server.count
            plain = await summarize_docs(client, batch)
            asked = sorted(server.prompts(before))
            start = server.count
            assert await fast(client, batch) == plain
            assert sorted(server.prompts(start)) == asked  # the same requests, each once
        assert server.rejected == 0 and server.peak == SERVER_CAP  # parallel, within the limit
        assert limit.in_flight == 0 and fast.stats.served == 14
        assert "await AsyncCompletions.create" in fast.explain()
        await client.close()

    asyncio.run(main())


def test_an_error_the_server_answers_is_raised_at_its_await_as_in_plain(server: FakeOpenAIServer) -> None:
    async def main() -> None:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        xcs.limit(client, concurrency=2)
        fast = xcs.jit(summarize_docs, min_call_ms=MIN_CALL_MS)
        await fast(client, docs("trace", 2))
        batch = docs("failing")
        batch[1] = "poison"  # answered 400: openai.BadRequestError
        with pytest.raises(openai.BadRequestError) as plain:
            await summarize_docs(client, batch)
        with pytest.raises(openai.BadRequestError) as jitted:
            await fast(client, batch)
        assert str(jitted.value) == str(plain.value)
        await client.close()

    asyncio.run(main())


def test_capture_in_a_coroutine_shows_each_awaited_request(server: FakeOpenAIServer) -> None:
    async def main() -> None:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        batch = docs("captured", 3)
        plain = await summarize_docs(client, batch)
        with xcs.capture(min_call_ms=MIN_CALL_MS) as cap:
            summaries = []
            for doc in batch:
                response = await client.chat.completions.create(
                    model="summarizer",
                    messages=[{"role": "user", "content": f"Summarize in one line: {doc}"}],
                )
                summaries.append(response.choices[0].message.content)
            combined = await client.chat.completions.create(
                model="writer",
                messages=[
                    {
                        "role": "user",
                        "content": f"Combine these {len(summaries)} summaries: {' | '.join(summaries)}",
                    }
                ],
            )
        assert combined.choices[0].message.content == plain  # the block ran as without the capture
        graph = cap.graph
        assert [op.name for op in graph.operations] == ["await AsyncCompletions.create"] * 4
        deps = {op.id: sorted(d.id for d in graph.dependencies(op)) for op in graph.operations}
        assert deps == {0: [], 1: [], 2: [], 3: [0, 1, 2]}
        assert "a map of await AsyncCompletions.create" in cap.report()
        # each operation's value is the response its await gave (through the client's wrapper)
        responses = [op.outputs[0].value for op in graph.operations]
        assert all(isinstance(value, openai.types.chat.ChatCompletion) for value in responses)
        tokens = sum(value.usage.total_tokens for value in responses)
        assert "  await AsyncCompletions.create: 4 calls, " in cap.report()
        assert f"ms, {tokens:,} tokens" in cap.report()
        await client.close()

    asyncio.run(main())

"""Limits and overloads end to end: the real `openai` client against a local server that answers
429 when more than 3 requests are in flight, as real providers do (`openai_server`).

The client is made with `max_retries=0`, so that nothing hides a 429 from the library: every
overload the server answers reaches `xcs_bc`, which must never serve it to the run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
from test_openai_local import summarize_docs

import xcs_bc as xcs
from openai_server import FakeOpenAIServer

SERVER_CAP = 3  # requests the server answers at once; the next gets 429
LATENCY = 0.1
MIN_CALL_MS = 20.0


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(latency=LATENCY, max_in_flight=SERVER_CAP, fail_on="poison") as server:
        yield server


def client_of(server: FakeOpenAIServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)


def docs(tag: str, n: int = 8) -> list[str]:
    return [f"{tag} document {i}" for i in range(n)]


def test_the_plain_pipeline_meets_no_429_and_the_parallel_one_would(server: FakeOpenAIServer) -> None:
    """The setting of the tests below: plain, one request at a time, never overloads the server;
    eight at once do."""
    client = client_of(server)
    summarize_docs(client, docs("plain"))
    assert server.rejected == 0 and server.peak == 1
    with ThreadPoolExecutor(8) as pool, pytest.raises(openai.RateLimitError):
        list(pool.map(lambda d: summarize_docs(client, [d]), docs("at once")))


def test_a_429_storm_is_never_served_and_results_equal_plain(server: FakeOpenAIServer) -> None:
    client = client_of(server)
    fast = xcs.jit(summarize_docs, min_call_ms=MIN_CALL_MS)
    fast(client, docs("trace"))  # (no limit named: the host's default lets 16 go at once)
    for k in range(3):
        batch = docs(f"round {k}")
        before = server.count
        plain = summarize_docs(client, batch)
        asked = server.prompts(before)
        start = server.count
        assert fast(client, batch) == plain
        # the server answered exactly the plain run's requests: each rejected attempt was made again
        assert server.prompts(start) == asked
    assert server.rejected > 0 and fast.stats.rejected > 0
    assert fast.stats.rejected_by_callee == {"Completions.create": fast.stats.rejected}
    assert "rejected as overloaded, made again: Completions.create" in fast.explain()


def test_a_limit_named_for_the_client_holds_under_eight_threads(server: FakeOpenAIServer) -> None:
    client = client_of(server)
    limit = xcs.limit(client, concurrency=SERVER_CAP)
    fast = xcs.jit(summarize_docs, min_call_ms=MIN_CALL_MS)
    fast(client, docs("trace", 4))  # traced on one thread: a traced call's own calls go one at a time
    batches = [docs(f"thread {t}", 4) for t in range(8)]
    expected = [summarize_docs(client, batch) for batch in batches]
    assert server.rejected == 0
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda batch: fast(client, batch), batches))
    assert results == expected
    assert server.rejected == 0 and server.peak <= SERVER_CAP  # measured by the server
    assert limit.peak <= SERVER_CAP and limit.in_flight == 0
    assert fast.stats.rejected == 0 and fast.stats.replays == 8


def test_no_request_starts_after_the_jitted_call_raised(server: FakeOpenAIServer) -> None:
    client = client_of(server)
    xcs.limit(client, concurrency=2)
    fast = xcs.jit(summarize_docs, min_call_ms=MIN_CALL_MS)
    fast(client, docs("trace"))
    batch = docs("failing")
    batch[1] = "poison"  # the server answers 400: openai.BadRequestError, the plain run's own error
    with pytest.raises(openai.BadRequestError):
        summarize_docs(client, batch)
    start = len(server.arrivals)
    with pytest.raises(openai.BadRequestError):
        fast(client, batch)
    raised = time.monotonic()
    time.sleep(4 * LATENCY)
    arrivals = server.arrivals[start:]
    # two at a time: while the run waited for the first document, the poisoned one failed and the
    # third went; the calls still waiting for room when the run raised never reached the server
    assert 2 <= len(arrivals) <= 4
    assert all(at < raised + 0.05 for at in arrivals)  # (a request handed over just before, in transit)

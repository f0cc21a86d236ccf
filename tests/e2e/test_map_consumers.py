"""`list(map(llm, docs))` and its kin: the map's calls go at once, on the first call and on replays.

The consumer (`list`, `"".join`, `list.extend`, `sum` ...) calls the map's function from C code, so
no call site of the function dispatches those calls: `execute.fanout` issues them at once when the
consumer takes the map whole, and serves them in order.  Each test runs the plain function and the
jitted one (first call, then replays) and compares results or exceptions and the calls made."""

from __future__ import annotations

import dis
import functools
from typing import Any

import pytest

import xcs_bc as xcs
from likeplain import fresh
from xcs_bc.execute.callsites import map_consumers
from xcs_bc.execute.fanout import fan
from xcs_bc.testing import CallLog, FakeLLM, FakeLLMError

LATENCY = 0.03


def docs_of(n: int) -> list[str]:
    return [fresh("d") for _ in range(n)]


def compare(fn: Any, llm: FakeLLM, make_args: Any, runs: int = 3, **jit: Any) -> Any:
    """Plain, then `runs` jitted calls on fresh arguments: equal outcomes and calls, every time."""
    fast = xcs.jit(fn, **jit)
    for _ in range(runs):
        args = make_args()
        llm.reset()
        try:
            expected: Any = ("returned", fn(*args))
        except Exception as exc:  # noqa: BLE001 - compared with the jitted run's
            expected = ("raised", type(exc), str(exc))
        plain_calls = CallLog.snapshot(llm)
        llm.reset()
        try:
            got: Any = ("returned", fast(*args))
        except Exception as exc:  # noqa: BLE001
            got = ("raised", type(exc), str(exc))
        assert got == expected, fast.explain()
        if expected[0] == "returned":
            assert CallLog.snapshot(llm) == plain_calls, fast.explain()
    return fast


# -- shapes whose map's calls go at once ---------------------------------------------------------------

llm = FakeLLM("llm", LATENCY)


def listed(docs: list[str]) -> list[str]:
    return list(map(llm, docs))


def joined(docs: list[str]) -> str:
    return "\n".join(map(llm, docs))


def extended(docs: list[str]) -> list[str]:
    out = ["header"]
    out.extend(map(llm, docs))
    return out


def through_a_lambda(docs: list[str]) -> list[str]:
    return list(map(lambda d: llm(f"Summarize: {d}"), docs))


def through_a_helper(docs: list[str]) -> str:
    def summarize(d: str) -> str:
        return llm(f"Summarize: {d}")

    return "\n".join(map(summarize, docs))


def two_sequences(docs: list[str]) -> list[str]:
    styles = ("short", "long", "formal", "plain", "brief", "full")
    return list(map(lambda d, s: llm(f"{s}: {d}"), docs, styles))


def over_a_range(docs: list[str]) -> int:
    return sum(map(lambda i: len(llm(f"part {i} of {docs[0]}")), range(len(docs))))


def sorted_answers(docs: list[str]) -> list[str]:
    return sorted(map(llm, docs))


def in_a_loop(docs: list[str]) -> list[str]:
    out = []
    for style in ("short", "long"):
        out.append(" | ".join(map(lambda d: llm(f"{style}: {d}"), docs)))
    return out


@pytest.mark.parametrize(
    "fn",
    [
        listed,
        joined,
        extended,
        through_a_lambda,
        through_a_helper,
        two_sequences,
        over_a_range,
        sorted_answers,
        in_a_loop,
    ],
)
def test_a_consumer_taking_a_map_whole_has_the_map_s_calls_made_at_once(fn: Any) -> None:
    fast = compare(fn, llm, lambda: (docs_of(5),))
    # every call but the first call's first: issued at once, and served
    assert llm.max_concurrency > 1, fast.explain()
    assert fast.stats.served_in_trace >= 4 and fast.stats.served >= 8, fast.explain()
    assert fast.stats.wasted == 0 and fast.stats.mispredictions == 0, fast.explain()
    assert "takes a map whole" in fast.explain()


def test_the_first_call_makes_the_map_s_first_call_alone_then_the_others_at_once() -> None:
    fast = xcs.jit(listed)
    docs = docs_of(6)
    llm.reset()
    assert fast(docs) == [f"llm({d})" for d in docs]
    assert fast.stats.served_in_trace == 5  # (the first alone, timed; then the other five at once)
    assert llm.max_concurrency > 1
    llm.reset()
    assert fast(docs) == [f"llm({d})" for d in docs]  # a replay: all six at once
    assert fast.stats.served == 6 and fast.stats.in_place == 1  # (and the list() call itself)


def test_other_lengths_replay_without_tracing_again() -> None:
    lengths = iter([3, 7, 2, 9, 4])
    fast = compare(listed, llm, lambda: (docs_of(next(lengths)),), runs=5)
    assert fast.stats.traces == 1, fast.explain()


def test_a_call_that_raises_raises_at_its_item_and_the_calls_after_it_are_counted() -> None:
    failing = FakeLLM("llm", LATENCY, fail_on="boom")

    def summaries(docs: list[str]) -> list[str]:
        return list(map(failing, docs))

    fast = xcs.jit(summaries)
    for _ in range(3):
        docs = [*docs_of(3), "boom", *docs_of(4)]
        failing.reset()
        with pytest.raises(FakeLLMError, match="boom"):
            summaries(docs)
        plain_calls = [args for args, _ in failing.calls]
        failing.reset()
        wasted = fast.stats.wasted
        with pytest.raises(FakeLLMError, match="boom"):
            fast(docs)
        made = [args for args, _ in failing.calls]
        # every call of the plain run, and past the failing one only calls counted as wasted
        assert all(call in made for call in plain_calls)
        assert len(made) - len(plain_calls) == fast.stats.wasted - wasted, fast.explain()


# -- shapes that stay one call at a time -------------------------------------------------------------

COUNT = 0


def numbered(d: str) -> str:
    global COUNT
    COUNT += 1
    return llm(f"{COUNT}: {d}")


def global_counter(docs: list[str]) -> list[str]:
    global COUNT
    COUNT = 0
    return list(map(numbered, docs))


class Numbering:
    def __init__(self) -> None:
        self.n = 0

    def ask(self, d: str) -> str:
        self.n += 1
        return llm(f"{self.n}: {d}")


def attribute_counter(docs: list[str]) -> list[str]:
    return list(map(Numbering().ask, docs))


def closure_counter(docs: list[str]) -> list[str]:
    n = 0

    def ask(d: str) -> str:
        nonlocal n
        n += 1
        return llm(f"{n}: {d}")

    return list(map(ask, docs))


def with_a_key(docs: list[str]) -> list[str]:
    return sorted(map(llm, docs), key=len)  # (the key runs between the map's calls)


def mutable_items(docs: list[str]) -> list[str]:
    records = [{"text": d} for d in docs]
    return list(map(lambda r: llm(r["text"]), records))


def over_a_generator(docs: list[str]) -> list[str]:
    return list(map(llm, (d.upper() for d in docs)))


def kept_then_consumed(docs: list[str]) -> list[str]:
    answers = map(llm, docs)
    return list(answers)


def extends_what_it_reads(docs: list[str]) -> list[str]:
    out = ["header"]
    out.extend(map(lambda d: llm(f"{len(out)}: {d}"), docs))  # (each answer is in `out` before the next)
    return out


LOG: list[str] = []


def extends_a_global_it_reads(docs: list[str]) -> list[str]:
    LOG.clear()
    LOG.extend(map(lambda d: llm(f"after {LOG[-1:]}: {d}"), docs))
    return list(LOG)


@functools.cache
def recall(prompt: str) -> str:
    return llm(prompt)


def through_a_cache(docs: list[str]) -> str:
    # (found by the campaign: two calls made at once both missed the entry the second would find)
    recall.cache_clear()
    return "|".join(map(lambda d: recall(docs[0]), docs))


def through_a_local_cache(docs: list[str]) -> list[str]:
    cached = functools.lru_cache(maxsize=None)(lambda p: llm(p))
    return list(map(lambda d: cached(d[:1]), docs))


def map_rebound(docs: list[str]) -> list[str]:
    map = lambda f, xs: [f(x) for x in xs]  # noqa: E731, A001 - a user's own `map`
    return list(map(llm, docs))


@pytest.mark.parametrize(
    "fn",
    [
        global_counter,
        attribute_counter,
        closure_counter,
        with_a_key,
        mutable_items,
        over_a_generator,
        kept_then_consumed,
        extends_what_it_reads,
        extends_a_global_it_reads,
        through_a_cache,
        through_a_local_cache,
        map_rebound,
    ],
)
def test_a_map_whose_calls_may_depend_on_each_other_or_that_is_not_taken_whole_at_once_keeps_its_order(
    fn: Any,
) -> None:
    fast = compare(fn, llm, lambda: (docs_of(4),))
    assert llm.max_concurrency == 1, fast.explain()
    assert fast.stats.wasted == 0, fast.explain()


def test_a_fast_function_is_not_issued_ahead() -> None:
    def lengths(docs: list[str]) -> int:
        return sum(map(lambda d: len(d.strip()), docs))  # (no slow call: nothing goes ahead)

    fast = compare(lengths, llm, lambda: (docs_of(50),))
    assert fast.stats.served == fast.stats.served_in_trace == 0
    # (whatever its first call's time: a function known to be pure is never fanned out)
    assert fan(sum, (map(lambda d: len(d.strip()), docs_of(3)),), {}) is None
    assert fan(sum, (map(lambda d: len(llm(d)), docs_of(3)),), {}) is not None


# -- which sites are consumers ------------------------------------------------------------------------


def _lines(fn: Any) -> list[int]:
    """The lines of `fn`'s map consumers, counted from its `def`."""
    starts = sorted((offset, line) for offset, line in dis.findlinestarts(fn.__code__) if line is not None)
    code = fn.__code__
    return [
        max(line for start, line in starts if start <= offset) - code.co_firstlineno
        for offset in map_consumers(code)
    ]


def test_the_consumer_sites_are_calls_of_one_argument_made_by_a_call_of_map() -> None:
    def shapes(docs: Any, f: Any, out: Any) -> Any:
        a = list(map(f, docs))  # 1: yes
        b = "".join(map(f, docs))  # 2: yes
        out.extend(map(f, docs))  # 3: yes
        c = sorted(map(f, docs), key=len)  # 4: a keyword
        d = list(filter(f, docs))  # 5: not map
        e = list(x for x in docs)  # 6: a generator expression
        g = list(map(f, docs, docs))  # 7: yes
        m = map(f, docs)
        h = list(m)  # 9: a local
        i = max(map(f, docs), default=None)  # 10: a keyword
        return a, b, c, d, e, g, h, i

    assert _lines(shapes) == [1, 2, 3, 7]

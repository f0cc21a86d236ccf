"""Which cached plan serves a call, and what a replay may issue at once (`jit._lookup`, `replay`).

Part 1: a plan that issues nothing ahead (a trace over an empty list, a generator, a zip of unequal
lengths, ...) must not stand in for later calls that a new trace would plan: it keeps every guard
its trace's decisions allow, comes after the plans that issue something, is not resized, and a
function whose traces keep finding nothing to issue stops being traced.  Part 2: zip() loops get a
length guard on each sequence and are resized to the shortest.  Part 3: calls of an lru_cache
wrapper that may read the same cache entry are never made at once.

Every call is checked against the plain function (result or exception, multiset of calls);
parallelism is shown by the fakes' `max_concurrency`, never by timing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from test_generalize import MIN_MS, TRACED, clean, docs, fakes, fresh, prove_resizes, run_both, run_both_fresh

import xcs_bc as xcs

# == part 1: plans that issue nothing ahead =========================================================


def test_an_early_return_on_an_empty_list_first_does_not_stop_later_calls_from_overlapping() -> None:
    (llm,) = fakes("llm")

    def each(items: list[str]) -> list[str]:
        if not items:
            return []
        return [llm(x) for x in items]

    fast = xcs.jit(each, min_call_ms=MIN_MS)
    for n in (0, 4, 0, 5):
        run_both(each, fast, docs(n), watch=[llm])
    assert llm.max_concurrency == 5, fast.explain()
    assert fast.stats.traces == 2  # the empty list's plan keeps serving empty lists
    clean(fast)


def test_an_empty_dict_first_then_dicts() -> None:
    (llm,) = fakes("llm")

    def describe(cfg: dict[str, str]) -> list[str]:
        return [llm(f"{k}={v}") for k, v in cfg.items()]

    fast = xcs.jit(describe, min_call_ms=MIN_MS)
    for n in (0, 3, 6):
        run_both(describe, fast, {fresh("k"): fresh("v") for _ in range(n)}, watch=[llm])
    assert llm.max_concurrency == 6, fast.explain()
    clean(fast)


def test_a_generator_traced_first_does_not_capture_lists() -> None:
    (llm,) = fakes("llm")

    def each(items: Iterable[str]) -> list[str]:
        return [llm(x) for x in items]

    fast = xcs.jit(each, min_call_ms=MIN_MS)
    items = docs(TRACED)
    run_both_fresh(each, fast, lambda: ((x for x in items),), watch=[llm])
    for n in (4, 6):
        run_both(each, fast, docs(n), watch=[llm])
    assert llm.max_concurrency == 6, fast.explain()
    # the generator's plan still serves generators, after the list's plan
    items = docs(2)
    run_both_fresh(each, fast, lambda: ((x for x in items),), watch=[llm])
    assert fast.stats.traces == 2
    explained = fast.explain()
    assert explained.index("type(items) is list") < explained.index("type(items) is generator"), explained
    clean(fast)


def test_a_plan_that_issues_nothing_comes_after_those_that_do() -> None:
    (llm,) = fakes("llm")

    def each(items: Iterable[str]) -> list[str]:
        return [llm(x) for x in items]

    fast = xcs.jit(each, min_call_ms=MIN_MS)
    run_both(each, fast, docs(TRACED), watch=[llm])
    items = docs(TRACED)
    run_both_fresh(each, fast, lambda: ((x for x in items),), watch=[llm])  # traced last, listed last
    plans = fast.explain().split("\n  plan ")[1:]
    assert plans[0].startswith("0: 3 slow calls") and "issued ahead" in plans[0], fast.explain()
    assert "issued ahead once" not in plans[1], fast.explain()
    run_both(each, fast, docs(5), watch=[llm])
    assert llm.max_concurrency == 5 and fast.stats.resized == 1, fast.explain()
    clean(fast)


_SEEN: list[str] = []


def _opaque(x: str) -> str:  # not known to be pure (it changes a global): its result is never planned
    _SEEN.append(x)
    return x


def test_a_function_whose_traces_never_issue_anything_stops_being_traced() -> None:
    (llm,) = fakes("llm")

    def each(items: list[str]) -> list[str]:
        return [llm(_opaque(x)) for x in items]

    fast = xcs.jit(each, min_call_ms=MIN_MS)
    for n in (2, 3, 4, 5, 6, 3):
        run_both(each, fast, docs(n), watch=[llm])
    assert fast.stats.traces == 3 and fast.stats.plain_runs == 3, fast.explain()
    assert "3 traces in a row made no plan that issues a call ahead" in fast.explain()
    clean(fast)


def test_a_plan_that_issues_nothing_still_replays_its_own_shape_without_tracing() -> None:
    (llm,) = fakes("llm")

    def each(items: list[str]) -> list[str]:
        return [llm(_opaque(x)) for x in items]

    fast = xcs.jit(each, min_call_ms=MIN_MS)
    for _ in range(4):
        run_both(each, fast, docs(TRACED), watch=[llm])
    assert fast.stats.traces == 1 and fast.stats.replays == 3, fast.explain()
    clean(fast)


def test_a_branch_after_the_last_call_is_kept_by_a_plan_that_issues_nothing() -> None:
    (llm,) = fakes("llm")

    def each(items: list[str], extra: bool) -> list[str]:
        out = [llm(_opaque(x)) for x in items]
        if extra:
            out += [llm(x + "!") for x in items]
        return out

    fast = xcs.jit(each, min_call_ms=MIN_MS)
    run_both(each, fast, docs(TRACED), False, watch=[llm])
    run_both(each, fast, docs(TRACED), True, watch=[llm])  # the trace's plan would not see `extra`
    run_both(each, fast, docs(TRACED), True, watch=[llm])
    assert llm.max_concurrency >= TRACED, fast.explain()
    clean(fast)


# == part 2: zip() ==================================================================================


def test_a_zip_of_unequal_lengths_first_is_resized() -> None:
    (llm,) = fakes("llm")

    def pairs(a: list[str], b: list[str]) -> list[str]:
        return [llm(x + y) for x, y in zip(a, b)]  # noqa: B905 - shortest wins

    fast = xcs.jit(pairs, min_call_ms=MIN_MS)
    for n, m in [(2, 4), (6, 6), (3, 5), (5, 3), (0, 2), (4, 4)]:
        run_both(pairs, fast, docs(n), docs(m), watch=[llm])
        if fast.stats.replays:  # (the first call traced)
            assert llm.max_concurrency == min(n, m), (n, m, fast.explain())
    assert fast.stats.traces == 1 and fast.stats.resized == 5, fast.explain()
    clean(fast)


def test_a_zip_traced_with_one_round_guards_the_length_of_each_sequence() -> None:
    (llm,) = fakes("llm")

    def pairs(a: list[str], b: list[str]) -> list[str]:
        return [llm(x + y) for x, y in zip(a, b)]  # noqa: B905 - shortest wins

    fast = xcs.jit(pairs, min_call_ms=MIN_MS)
    run_both(pairs, fast, docs(1), docs(3), watch=[llm])
    explained = fast.explain()
    assert "len(a) == 1" in explained and "len(b) == 3" in explained, explained
    run_both(pairs, fast, docs(1), docs(3), watch=[llm])
    assert fast.stats.replays == 1 and fast.stats.served == 1, fast.explain()
    run_both(pairs, fast, docs(1), docs(4), watch=[llm])  # a guard miss: traced again
    assert fast.stats.traces == 2
    clean(fast)


def test_a_zip_of_neighbours() -> None:
    (llm,) = fakes("llm")

    def steps(xs: list[str]) -> list[str]:
        return [llm(f"{x} -> {y}") for x, y in zip(xs, xs[1:])]  # noqa: B905 - one shorter

    _, concurrency = prove_resizes(steps, lambda n: (docs(n),), [llm])
    for n, seen in concurrency.items():
        assert seen["llm"] == max(n - 1, 0), (n, seen)


def test_a_zip_of_three_sequences_and_a_zip_with_strict_false() -> None:
    (llm,) = fakes("llm")

    def triples(a: list[str], b: tuple[str, ...], c: str) -> list[str]:
        return [llm(x + y + z) for x, y, z in zip(a, b, c, strict=False)]

    fast = xcs.jit(triples, min_call_ms=MIN_MS)
    for n, m, k in [(3, 4, 5), (6, 6, 7), (5, 2, 3), (4, 4, 4)]:
        run_both(triples, fast, docs(n), tuple(docs(m)), "xyzuvwq"[:k], watch=[llm])
        assert not fast.stats.replays or llm.max_concurrency == min(n, m, k), fast.explain()
    assert fast.stats.traces == 1, fast.explain()
    clean(fast)


def test_a_strict_zip_is_resized_only_for_equal_lengths() -> None:
    (llm,) = fakes("llm")

    def pairs(a: list[str], b: list[str]) -> list[str]:
        out = [llm(x + y) for x, y in zip(a, b, strict=True)]
        return out + [llm("done")]

    fast = xcs.jit(pairs, min_call_ms=MIN_MS)
    run_both(pairs, fast, docs(TRACED), docs(TRACED), watch=[llm])
    run_both(pairs, fast, docs(5), docs(5), watch=[llm])
    assert llm.max_concurrency == 6 and fast.stats.resized == 1  # ("done" too)
    run_both(pairs, fast, docs(2), docs(4), watch=[llm])  # raises where the plain call raises
    run_both(pairs, fast, docs(4), docs(4), watch=[llm])
    assert fast.stats.resized == 2
    clean(fast)


# == part 3: memoized callees =======================================================================


def cold(cached: Any, *args: Any) -> Callable[[], tuple[Any, ...]]:
    """Arguments for `run_both_fresh` that first empty `cached`'s cache: each run starts cold."""

    def make() -> tuple[Any, ...]:
        cached.cache_clear()
        return args

    return make


def test_repeated_items_of_a_memoized_callee_call_it_once_and_distinct_ones_overlap() -> None:
    (llm,) = fakes("llm")

    @functools.lru_cache(maxsize=64)
    def cached(prompt: str) -> str:
        return llm(prompt)

    def each(items: list[str]) -> list[str]:
        return [cached(x) for x in items]

    fast = xcs.jit(each, min_call_ms=MIN_MS)
    run_both_fresh(each, fast, cold(cached, docs(TRACED)), watch=[llm])
    x, y, z = docs(3)
    for items in ([x, y, x, z, x, y], [x, x, x], docs(5)):
        run_both_fresh(each, fast, cold(cached, items), watch=[llm])
        assert llm.max_concurrency == len(set(items)), (items, fast.explain())
    clean(fast)


def test_a_memoized_callee_at_the_traced_length() -> None:
    (llm,) = fakes("llm")

    @functools.cache
    def cached(prompt: str) -> str:
        return llm(prompt)

    def both(a: str, b: str) -> tuple[str, str]:
        return cached(a), cached(b)

    fast = xcs.jit(both, min_call_ms=MIN_MS)
    run_both_fresh(both, fast, cold(cached, fresh(), fresh()), watch=[llm])
    x = fresh()
    run_both_fresh(both, fast, cold(cached, x, x), watch=[llm])
    run_both_fresh(both, fast, cold(cached, fresh(), fresh()), watch=[llm])
    assert llm.max_concurrency == 2
    clean(fast)


def test_keys_a_cache_takes_for_equal_are_not_made_at_once() -> None:
    (llm,) = fakes("llm")

    @functools.cache
    def cached(n: float) -> str:
        return llm(str(n))

    def each(items: list[float]) -> list[str]:
        return [cached(n) for n in items]

    fast = xcs.jit(each, min_call_ms=MIN_MS)
    run_both_fresh(each, fast, cold(cached, [1, 2, 3]), watch=[llm])
    run_both_fresh(each, fast, cold(cached, [1, 1.0, 2, 2.0, True]), watch=[llm])  # 1 == 1.0 == True
    assert llm.max_concurrency == 2
    clean(fast)


class _Client:
    def __init__(self, llm: Callable[[str], str]) -> None:
        self.llm = llm

    @functools.cache  # noqa: B019 - the cache holds the client: fine for a test
    def ask(self, prompt: str) -> str:
        return self.llm(prompt)


def test_a_memoized_method() -> None:
    (llm,) = fakes("llm")

    def each(ask: Callable[[str], str], items: list[str]) -> list[str]:
        return [ask(x) for x in items]  # a bound method of the cache wrapper: planned

    def each_of(client: _Client, items: list[str]) -> list[str]:
        return [client.ask(x) for x in items]  # read from the class at the call: runs in its turn

    client, other = _Client(llm), _Client(llm)
    x = fresh()
    fast = xcs.jit(each, min_call_ms=MIN_MS)
    run_both_fresh(each, fast, cold(_Client.ask, client.ask, docs(TRACED)), watch=[llm])
    run_both_fresh(each, fast, cold(_Client.ask, client.ask, [x, x, fresh()]), watch=[llm])
    assert llm.max_concurrency == 2
    run_both_fresh(each, fast, cold(_Client.ask, other.ask, [x, fresh(), x]), watch=[llm])  # its own entries
    assert llm.max_concurrency == 2
    clean(fast)
    fast_of = xcs.jit(each_of, min_call_ms=MIN_MS)
    for items in (docs(TRACED), [x, x, fresh()]):
        run_both_fresh(each_of, fast_of, cold(_Client.ask, client, items), watch=[llm])
    clean(fast_of)


def test_an_in_place_call_waits_for_an_identical_one_issued_ahead() -> None:
    (llm,) = fakes("llm")

    @functools.cache
    def cached(prompt: str) -> str:
        return llm(prompt)

    def two(a: str, b: str) -> tuple[str, str]:
        first = cached(_opaque(a))  # runs in its turn: its argument is not known ahead
        return first, cached(b)  # issued ahead at the start

    fast = xcs.jit(two, min_call_ms=MIN_MS)
    run_both_fresh(two, fast, cold(cached, fresh(), fresh()), watch=[llm])
    x = fresh()
    run_both_fresh(two, fast, cold(cached, x, x), watch=[llm])
    assert fast.stats.replays == 1
    clean(fast)


def test_a_later_identical_call_issued_first_holds_back_the_earlier_one() -> None:
    (llm, judge) = fakes("llm", "judge")

    @functools.cache
    def cached(prompt: str, mood: str) -> str:
        return llm(f"{prompt} ({mood})")

    def two(q: str, a: str, b: str, mood: str) -> tuple[str, str]:
        first = cached(a, judge(q))  # issued once judge has returned
        return first, cached(b, mood)  # issued at the start

    fast = xcs.jit(two, min_call_ms=MIN_MS)
    run_both_fresh(two, fast, cold(cached, fresh(), fresh(), fresh(), fresh()), watch=[llm, judge])
    q, x = fresh(), fresh()
    run_both_fresh(two, fast, cold(cached, q, x, x, judge.render(q, {})), watch=[llm, judge])
    assert fast.stats.replays == 1, fast.explain()
    clean(fast)


@pytest.mark.parametrize("raises", [False, True])
def test_a_memoized_callee_that_raises_is_called_as_often_as_plain(raises: bool) -> None:
    (llm,) = fakes("llm", fail_on="boom" if raises else None)

    @functools.cache
    def cached(prompt: str) -> str:
        return llm(prompt)

    def each(items: list[str]) -> list[str]:
        out = []
        for x in items:
            try:
                out.append(cached(x))
            except Exception as exc:  # noqa: BLE001 - the plain function keeps going too
                out.append(type(exc).__name__)
        return out

    fast = xcs.jit(each, min_call_ms=MIN_MS)
    run_both_fresh(each, fast, cold(cached, docs(TRACED)), watch=[llm])
    x = fresh("boom")
    run_both_fresh(each, fast, cold(cached, [x, fresh(), x]), watch=[llm])


def test_a_bounded_cache_that_would_evict_is_called_in_order() -> None:
    (llm,) = fakes("llm")

    @functools.lru_cache(maxsize=2)
    def cached(prompt: str) -> str:
        return llm(prompt)

    def each(items: list[str]) -> list[str]:
        return [cached(x) for x in items]

    fast = xcs.jit(each, min_call_ms=MIN_MS)
    run_both_fresh(each, fast, cold(cached, docs(4)), watch=[llm])
    x, y, z = docs(3)
    run_both_fresh(each, fast, cold(cached, [x, y, z, x]), watch=[llm])  # x is evicted before its turn
    items = [z, fresh(), x, y]

    def warm_cache() -> tuple[Any, ...]:
        cached.cache_clear()
        for w in (x, y):  # entries of earlier calls, which the run's own calls evict in order
            cached(w)
        return (items,)

    run_both_fresh(each, fast, warm_cache, watch=[llm])
    clean(fast)


def test_a_bounded_cache_with_room_for_the_run_still_overlaps() -> None:
    (llm,) = fakes("llm")

    @functools.lru_cache(maxsize=8)
    def cached(prompt: str) -> str:
        return llm(prompt)

    def each(items: list[str]) -> list[str]:
        return [cached(x) for x in items]

    fast = xcs.jit(each, min_call_ms=MIN_MS)
    run_both_fresh(each, fast, cold(cached, docs(TRACED)), watch=[llm])
    x = fresh()
    run_both_fresh(each, fast, cold(cached, [x, fresh(), x, fresh()]), watch=[llm])
    assert llm.max_concurrency == 3
    clean(fast)


_llm_for_helpers = fakes("llm")[0]


@functools.cache
def _recall(prompt: str) -> str:
    return _llm_for_helpers(prompt)


def _summarize(doc: str) -> str:  # a helper calling the memoized function
    return _recall(doc[:3])


def _in_a_comprehension(items: list[str]) -> Any:
    _recall.cache_clear()
    return [_summarize(x) for x in items]


def _in_a_generator(items: list[str]) -> Any:
    _recall.cache_clear()
    return "|".join(_summarize(x) for x in items)


def _in_a_map(items: list[str]) -> Any:
    _recall.cache_clear()
    return list(map(_summarize, items))


@pytest.mark.parametrize("each", [_in_a_comprehension, _in_a_generator, _in_a_map])
def test_a_helper_calling_a_memoized_function_makes_its_calls_in_turn(
    each: Callable[[list[str]], Any],
) -> None:
    """Calls of `_summarize` made at once would both miss the entry of `_recall` the second one finds
    when made in turn: found by the campaign for a lambda over a `functools.cache` in a map."""
    fast = xcs.jit(each)
    for _ in range(3):  # the first call, then replays
        x, y = fresh(), fresh()
        run_both(each, fast, [f"aa {x}", f"aa {y}", f"bb {x}", f"bb {y}"], watch=[_llm_for_helpers])
        assert fast.stats.wasted == 0, fast.explain()

"""Regression tests for bugs found by the generated programs of `test_jit_generated` (the `recent` grammar).

Each test is the minimal reproducer of one bug, with its root cause in the docstring; each
compares the jitted function with the plain one on results and on the calls made (a
multiset), as the properties do.  Where timing matters, a fake's latency depends on its
prompt, so that the order of events is certain rather than likely.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

import xcs_bc as xcs

PY312 = sys.version_info >= (3, 12)


class Ask:
    """A slow callee counting its calls: 50 ms for prompts starting with "slow", else 2 ms."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()

    def __call__(self, prompt: str) -> str:
        time.sleep(0.05 if prompt.startswith("slow") else 0.002)
        with self.lock:
            self.calls[prompt] += 1
        return f"ask({prompt})"


def compare(fn: Callable[..., Any], fast: Any, cached: Any, ask: Ask, *args: Any) -> None:
    """Run `fn` plainly, then jitted, each from an empty cache (`cached`, if not None): same result,
    same calls."""

    def start() -> None:
        if cached is not None:
            cached.cache_clear()
        ask.calls.clear()

    start()
    expected = fn(*args)
    plain_calls = Counter(ask.calls)
    start()
    assert fast(*args) == expected, fast.explain()
    time.sleep(0.1)  # a call issued ahead and still running counts too
    assert ask.calls == plain_calls, (dict(ask.calls), dict(plain_calls), fast.explain())


def test_a_memoized_call_that_hit_the_cache_while_tracing_does_not_miss_it_next_to_a_call_issued_ahead() -> (
    None
):
    """Regression (found with the `recent` grammar's memoized callee and repeated items; fixed in plan/memo.py).

    Traced with ['a', 'a', 'b'], ``cached(xs[1])`` hit the cache: a fast call, glue and no
    operation, so its site is not dispatched.  Replayed with ['a', 'slow', 'slow'],
    ``cached(xs[2])`` is issued ahead at the start; ``cached(xs[1])`` then calls the wrapper
    directly, without waiting for that call (only the dispatcher waits for a running call that
    may fill the same cache entry), misses the cache too, and ask('slow') runs twice where the
    plain function calls it once (stats.wasted=0).  Now `plan.memo.memo_sites_dispatched` issues a
    memoized callee ahead only when the function names it at dispatched call sites only.
    """
    ask = Ask()

    @functools.cache
    def cached(prompt: str) -> str:
        return ask(prompt)

    def f(xs: list[str]) -> tuple[str, str, str]:
        first = cached(xs[0])
        second = cached(xs[1])
        return first, second, cached(xs[2])

    fast = xcs.jit(f)
    compare(f, fast, cached, ask, ["a", "a", "b"])
    compare(f, fast, cached, ask, ["a", "slow", "slow"])
    # the call that hit the cache is now made through the dispatcher in its turn (its result is kept):
    # the dispatcher waits there for a call issued ahead that may fill the same entry
    assert "cached at" in fast.explain() and "runs in its turn, because it is a fast call" in fast.explain()


def test_a_memoized_call_on_a_path_the_trace_did_not_take_does_not_miss_the_cache_next_to_one_issued_ahead() -> (
    None
):
    """Regression (the same root cause through another door; fixed in plan/memo.py).

    The branch on a result is not taken when tracing, so its ``cached(xs[1])`` has no operation
    and its site is not dispatched; ``cached(xs[2])`` after the branch is issued ahead.  When the
    replay takes the branch, the two calls of ask('slow') overlap and both miss the cache.
    """
    ask = Ask()

    @functools.cache
    def cached(prompt: str) -> str:
        return ask(prompt)

    def f(xs: list[str]) -> tuple[str, str]:
        first = cached(xs[0])
        if "zz" in first:
            first = cached(xs[1])
        return first, cached(xs[2])

    fast = xcs.jit(f)
    compare(f, fast, cached, ask, ["a", "b", "c"])
    compare(f, fast, cached, ask, ["zz", "slow", "slow"])


_inside_ask = Ask()


@functools.cache
def _inside_cached(prompt: str) -> str:
    return _inside_ask(prompt)


def _inside(xs: list[str]) -> tuple[str, ...]:
    inner = _inside_fast(xs[1:]) if len(xs) > 1 else ()
    return (*inner, _inside_cached(xs[0]))


_inside_fast = xcs.jit(_inside)


def test_a_memoized_call_next_to_a_call_that_makes_it_inside_does_not_miss_the_cache_twice() -> None:
    """Regression (found by the campaign, seed 2, on every version; fixed in plan/memo.py).

    `f` calls the jitted `f` on `xs[1:]` (a planned call) and then ``cached(xs[0])``.  The replay
    issued ``cached('slow')`` at its start, next to the inner `f`, which calls ``cached('slow')``
    itself, in a replay of its own that does not wait for the outer one's call: both missed the
    cache, and ask('slow') ran twice where the plain function calls it once.  A memoized callee is
    not issued ahead when another planned call's callee may call it (`purity.reaches`: through the
    globals its code loads).
    """
    fast, cached, ask = _inside_fast, _inside_cached, _inside_ask
    compare(_inside, fast, cached, ask, ["a", "b"])
    compare(_inside, fast, cached, ask, ["slow", "slow"])
    compare(_inside, fast, cached, ask, ["c", "c", "c"])
    assert "memoized callee" in fast.explain()


@pytest.mark.parametrize("flag", [False, True], ids=["untaken-branch-on-flag", "untaken-branch-on-xs"])
def test_memoized_calls_at_dispatched_sites_only_still_overlap(flag: bool) -> None:
    """The fix refuses no more than it must: every site naming the wrapper that ran made a slow call,
    and the one under ``if flag:`` (not taken, on an input: a guard checks it) a replay cannot reach."""
    ask = Ask()
    concurrency = {"now": 0, "most": 0}
    lock = threading.Lock()

    @functools.cache
    def cached(prompt: str) -> str:
        with lock:
            concurrency["now"] += 1
            concurrency["most"] = max(concurrency["most"], concurrency["now"])
        try:
            return ask(prompt)
        finally:
            with lock:
                concurrency["now"] -= 1

    def f(xs: list[str], flag: bool) -> tuple[str, str]:
        if flag and not xs:
            return cached("never"), ""
        return cached(xs[0]), cached(xs[1])

    fast = xcs.jit(f)
    compare(f, fast, cached, ask, ["a", "b"], flag)
    concurrency["most"] = 0
    compare(f, fast, cached, ask, ["slow c", "slow d"], flag)  # 50 ms each: they surely overlap
    assert concurrency["most"] == 2, fast.explain()


def test_the_arguments_of_a_memoized_callee_are_bound_to_its_own_parameters() -> None:
    """Regression (found with the `recent` grammar's `recall(prompt, t=0)`; fixed in build/builder.py).

    `GraphBuilder._observed_values` took every callee that is not a Python function for a bound
    method or a callable object, and dropped the first parameter of the code it entered as the
    receiver.  An lru_cache wrapper enters the function it wraps, which has no receiver: the
    argument got the value of the *next* parameter (``t``'s 0 for ``prompt``), and a recipe that
    computes it from an earlier result was refused as "computed differently than it was passed".
    (On 3.12+ the wrapped function's start is not observed at all, see observe/hooks.py, so the argument
    stays unchecked and the call runs in its turn there.)
    """
    ask = Ask()

    @functools.cache
    def cached(prompt: str, t: int = 0) -> str:
        return ask(prompt)

    def f(xs: list[str]) -> tuple[str, str]:
        first = ask(xs[0])
        return first, cached(xs[1] + first * 0)

    fast = xcs.jit(f)
    compare(f, fast, cached, ask, ["a", "b"])
    compare(f, fast, cached, ask, ["c", "d"])
    explained = fast.explain()
    assert "computed differently" not in explained, explained
    if not PY312:
        assert ".cached at" in explained and "issued ahead once %0 is known" in explained, explained


def test_a_descheduled_instruction_that_pops_nothing_does_not_cost_the_plan(monkeypatch: Any) -> None:
    """Regression (found by test_recent_uniform_loops_are_replayed_for_other_lengths under load, as a
    trace that left no plan: "no plan: internal error IndexError('tuple index out of range')").

    A slow instruction that is not a call becomes an IMPLICIT operation whose inputs are the operands
    it popped; a LOAD_GLOBAL (or an empty `{}`) pops none.  `plan._make_recipe` read ``op.inputs[0]``
    as the callee before it looked at the operation's type: IndexError, no plan, and after three
    such traces the function would run plainly for good.  Here the thread is "descheduled" for 3 ms
    while LOAD_GLOBAL judge runs (the builder is delayed at that instruction), which makes it a slow
    step every time.
    """
    from xcs_bc.build import builder as build

    original = build.GraphBuilder.instruction

    def delayed(self: Any, frame: Any, offset: int) -> None:
        original(self, frame, offset)
        state = self._frames.get(frame)
        pending = state.pending if state is not None else None
        if pending is not None and pending.opname == "LOAD_GLOBAL" and "judge" in str(pending.argval):
            time.sleep(0.003)

    monkeypatch.setattr(build.GraphBuilder, "instruction", delayed)
    fast = xcs.jit(_judged)
    for xs in (["a"], ["b"], ["c"]):
        assert fast(xs) == _judged(xs), fast.explain()
    assert fast.stats.traces == 1 and fast.stats.replays == 2, fast.explain()
    assert "internal error" not in fast.explain()


_ask = Ask()


def judge(prompt: str) -> str:  # a global: LOAD_GLOBAL judge
    return _ask(f"judge {prompt}")


def _judged(xs: list[str]) -> str:
    first = _ask(xs[0])
    return judge(first)


def test_a_pure_consumer_of_a_generator_expression_is_not_taken_for_a_slow_call(monkeypatch: Any) -> None:
    """Regression (found by test_recent_uniform_loops_are_replayed_for_other_lengths: "every trace took glue
    for slow calls: ['sum']"; fixed in build/builder.py).

    ``sum(len(g) for g in xs)`` runs the generator expression's frame, which the builder observes
    instruction by instruction; the time of `sum` included it (the tracer's own work, and any slow
    step in the frame, which is an operation of its own), so over enough items `sum` took more than
    min_call_ms and became a slow call: an operation of one round only, a dispatched site, and a
    result no recipe could read.  A pure consumer that ran a generator expression is now what it is
    in every other case: a pure expression of what the generator yielded.  (Here each item's YIELD
    is delayed by 0.2 ms, as a slow machine would.)
    """
    from xcs_bc.build import builder as build

    original = build.GraphBuilder.instruction

    def delayed(self: Any, frame: Any, offset: int) -> None:
        original(self, frame, offset)
        state = self._frames.get(frame)
        pending = state.pending if state is not None else None
        if pending is not None and pending.opname == "YIELD_VALUE":
            time.sleep(0.0002)

    monkeypatch.setattr(build.GraphBuilder, "instruction", delayed)
    ask = Ask()

    def f(xs: list[str]) -> tuple[str, str]:
        total = sum(len(g) + 1 for g in xs)
        return ask(str(total)), ask(xs[0])

    fast = xcs.jit(f)
    items = [f"w{i}" for i in range(40)]
    for xs in (items, items[::-1]):
        compare(f, fast, None, ask, xs)
    explained = fast.explain()
    assert " sum at " not in explained and "plan 0: 2 slow calls" in explained, explained


def test_keyword_arguments_from_a_dict_display_are_planned() -> None:
    """Regression (found by test_recent_uniform_loops_are_replayed_for_other_lengths on 3.10 and 3.13:
    a uniform loop of ``llm('a', **{})`` traced again for every length; fixed in build/builder.py).

    ``f(x, **{"t": 1})`` merges the display into the call's fresh keyword dict (DICT_MERGE); the
    builder kept the merged dict whole, as ``dict(unpack(dict(...)))``, which no recipe evaluates,
    so the call ran in its turn and the plan issued nothing (nothing to resize).  A display with
    constant keys merged into a dict is now its own pairs.
    """
    ask = Ask()

    def f(xs: list[str]) -> list[str]:
        return [_keyed(ask, x, **{}) + _keyed(ask, x, **{"t": 1}) for x in xs]

    fast = xcs.jit(f)
    for xs in (["a", "b"], ["c", "d", "e"], ["f"]):
        compare(f, fast, None, ask, xs)
    assert fast.stats.traces == 1 and fast.stats.resized == 2, fast.explain()


def _keyed(ask: Ask, prompt: str, t: int = 0) -> str:
    return ask(f"{prompt} {t}")


def test_an_augmented_assignment_to_an_immutable_value_is_planned() -> None:
    """Regression (found with the `recent` grammar's ``nonlocal count; count += 1``; fixed in build/builder.py).

    ``n += 1`` on an int was recorded as the expression ``n += 1``, which no recipe evaluates (only
    ``n + 1``): a call reading ``n`` ran in its turn.  On an immutable value the two are the same.
    (A cell the function itself changes, like that counter, is read as it was when the call began:
    see the test after this one.)
    """
    ask = Ask()

    def f(xs: list[str]) -> tuple[str, str]:
        n = len(xs)
        n += 1
        label = xs[0]
        label += "!"
        return ask(f"{n}"), ask(label)

    fast = xcs.jit(f)
    for xs in (["a", "b"], ["c", "d"]):
        assert fast(xs) == f(xs)
    explained = fast.explain()
    assert explained.count("issued ahead once the inputs are known") == 2, explained


def test_a_closure_variable_the_function_assigns_is_read_as_it_was_when_the_call_began() -> None:
    """Campaign seed 137: `nonlocal count; count += 1`, then, in an arm learned from a later trace,
    `ask(*[str(count)])`, issued once an earlier call's result was in.  The recipe read `count + 1`
    with the cell as it was then, already incremented by the run: `ask("5")` issued, `ask("4")` made
    (one call wasted).  As for a global the function assigns, a closure variable it assigns now means its
    value when the call began."""
    ask = Ask()

    def make() -> Callable[[list[str]], str]:
        count = 0

        @functools.cache
        def recall(prompt: str) -> str:  # (each function its own cache)
            return ask(prompt)

        def f(xs: list[str]) -> str:
            nonlocal count
            count += 1
            v1 = ask(xs[0])
            ask(xs[0] + "!")
            if "a" in v1:
                recall(xs[0])
                return ask(*[str(count)])
            return ask("slow a")

        return f

    plain, jitted = make(), make()
    fast = xcs.jit(jitted)
    for xs in (["slow b"], ["slow a"], ["slow a", "a", "a"], ["slow a", "a"]):
        ask.calls.clear()
        expected = plain(xs)
        plain_calls = Counter(ask.calls)
        ask.calls.clear()
        assert fast(xs) == expected, fast.explain()
        time.sleep(0.1)  # a call issued ahead and still running counts too
        assert ask.calls == plain_calls, (dict(ask.calls), dict(plain_calls), fast.explain())
    assert fast.stats.wasted == 0, fast.explain()


def test_a_visit_whose_memoized_call_waits_for_its_cache_mate_skips_no_later_visit() -> None:
    """A CI flake of the property tests (3.10), present for many stops: `max(recall(g, t=2) for g in
    xs)`, `recall` an lru_cache wrapper, replayed for ('ab', 'b', 'b', 'a', 'b', 'ba').  The second
    'b' waits for the first to fill the cache entry (not issued), the third was issued once the first
    returned; the run at the second 'b' found the third's call issued and took the visits in between
    for skipped ('a' wasted).  A visit whose own call, not issued, is this very call skips nothing.
    A race: before the fix it showed about once in 150 runs of this program."""
    from test_jit_generated import check_program

    from strategies import Inputs, Program

    program = Program(
        body=[
            "v1 = 'b'",
            "v2 = max(recall(g, t=2) for g in xs)",
            "try:",
            "    v3 = bad(str(len(json.dumps({'q': str(flag), 'n': str(flag)}, sort_keys=True))))",
            "except FakeLLMError:",
            "    v3 = recall('a')",
        ],
        returns=["v3"],
        memo="@functools.cache",
        closure=True,
        memo_inside=False,
        counter=False,
    )
    lengths = [("c", "ba", "ab"), ("ab", "b", "b", "a", "b", "ba"), (), ("c",), ("c", "ab", "ab", "ba")]
    for _ in range(20):
        check_program(program, [Inputs(xs=xs, flag=False) for xs in lengths])


@pytest.mark.xfail(
    reason="KNOWN, not fixed: a replay resized to an empty list made the first round's call of a "
    "generator expression walked by a `for` loop with a `break` (`for r in (llm(...) for g in v1)`, v1 "
    "a comprehension of a nested jitted function's calls over xs): one extra call, counted in "
    "stats.wasted; results equal. Found by the campaign (seed 123); it does not show with a plain "
    "fake in place of the nested jitted function",
    strict=False,
)
def test_a_replay_resized_to_no_items_makes_no_call_of_a_generator_s_first_round() -> None:
    from test_jit_generated import check_program

    from strategies import Inputs, Program

    program = Program(
        body=[
            "v1 = [inner(x, 1) for x in xs]",
            "v2 = llm(sorted(xs))",
            "v3 = []",
            "for r in (llm(str(flag)) for g in v1):",
            "    if 'a' in r:",
            "        break",
            "    v3.append(llm('a'))",
        ],
        returns=["v3"],
        memo=None,
        closure=False,
        memo_inside=False,
        counter=False,
    )
    lengths = (0, 1, 5, 2, 0)
    check_program(program, [Inputs(xs=("a",) * n, flag=True) for n in lengths], speculate=False)

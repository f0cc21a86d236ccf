"""Arms the trace never saw, learned: a replay whose results go the other way at a branch makes that
arm's calls in their turn; a later call is traced to learn the arm, and from then on its calls are
issued the moment the branch is decided, like those of the arm the first trace took.

Every run is compared with the plain one (results, exceptions, the multiset of calls: `likeplain`),
on fresh inputs whose branches go either way; `stats.wasted` and `stats.mispredictions` stay 0.
"""

from __future__ import annotations

import threading

import pytest

import xcs_bc as xcs
from likeplain import LATENCY, Tool, fresh, no_waste, run_both
from xcs_bc.plan.learn import LESSONS
from xcs_bc.testing import FakeLLM

classifier, solver, general, combine = (
    FakeLLM(name, LATENCY) for name in ("classifier", "solver", "general", "combine")
)
ROUTER = [classifier, solver, general, combine]


def route(q: str) -> str:
    kind = classifier(f"Classify: {q}")
    if "math" in kind:
        a = solver(f"algebra: {q}")
        b = solver(f"geometry: {q}")
        return combine(f"{a} | {b}")
    x = general(f"one: {q}")
    y = general(f"two: {q}")
    return combine(f"prose: {x} {y}")


def test_an_arm_the_trace_did_not_take_is_learned_then_issued_at_once() -> None:
    fast = xcs.jit(route)
    run_both(route, fast, fresh("math"), watch=ROUTER)  # traced: the solvers' arm
    run_both(route, fast, fresh("poem"), watch=ROUTER)  # replayed: the other arm, in its turn
    assert fast.stats.traces == 1
    assert "the next call is traced to learn it" in fast.explain()
    run_both(route, fast, fresh("poem"), watch=ROUTER)  # traced again: it takes that arm, learned
    assert fast.stats.traces == 2
    assert "learned: the arm taken when bool('math' in %0) is False (from a later trace)" in fast.explain()
    for kind in ["poem", "math", "poem", "math", "math", "poem"]:
        run_both(route, fast, fresh(kind), watch=ROUTER)
    no_waste(fast)
    assert fast.stats.traces == 2
    general.reset()
    served = fast.stats.served
    fast(fresh("poem"))
    assert general.max_concurrency == 2, fast.explain()
    assert fast.stats.served - served == 4  # the classifier, both general calls and the combine
    assert "if bool('math' in %0) is False" in fast.explain()


def test_a_lesson_that_goes_the_traced_way_teaches_nothing_and_waits_for_the_next_stray() -> None:
    fast = xcs.jit(route)
    for kind, traces in [
        ("math", 1),
        ("poem", 1),
        ("math", 2),
        ("math", 2),
        ("math", 2),
        ("poem", 2),
        ("poem", 3),
    ]:
        run_both(route, fast, fresh(kind), watch=ROUTER)
        assert fast.stats.traces == traces, (kind, fast.explain())
    assert "went that way too" in fast.explain()
    assert "learned: the arm taken when bool('math' in %0) is False" in fast.explain()
    no_waste(fast)


def test_lessons_are_bounded_when_the_other_arm_never_comes_back_for_one() -> None:
    fast = xcs.jit(route)
    for _ in range(2 * LESSONS + 2):
        run_both(route, fast, fresh("math"), watch=ROUTER)
        run_both(route, fast, fresh("poem"), watch=ROUTER)  # strays; the lesson after it goes "math"
    assert fast.stats.traces <= 1 + LESSONS
    no_waste(fast)


def test_a_lone_call_reached_as_soon_as_its_branch_is_decided_is_not_worth_a_lesson() -> None:
    def lone(q: str) -> str:
        kind = classifier(f"Classify: {q}")
        if "math" in kind:
            return combine(f"{solver(f'a {q}')} {solver(f'b {q}')}")
        return general(f"prose: {q}")

    fast = xcs.jit(lone)
    for kind in ["math", "poem", "poem", "math", "poem"]:
        run_both(lone, fast, fresh(kind), watch=ROUTER)
    assert fast.stats.traces == 1
    no_waste(fast)


# -- a branch inside the learned arm, an arm per round of a loop, an exception in a learned arm ------
# (the tv/phone program, both of whose arms are learned from one trace, is in test_result_branches)


def nested(q: str) -> str:
    kind = classifier(f"Classify: {q}")
    if "math" in kind:
        a = solver(f"a {q}")
        b = solver(f"b {q}")
        if "hard" in kind:
            c = solver(f"hard {q}")
            d = solver(f"harder {q}")
            return combine(f"{a} {b} {c} {d}")
        return combine(f"{a} {b}")
    return general(f"prose: {q}")


def test_a_branch_inside_the_learned_arm_is_learned_with_it_and_decided_in_its_turn() -> None:
    fast = xcs.jit(nested)
    for kind in ["poem", "math hard", "math hard", "math", "poem", "math hard", "math", "math hard"]:
        run_both(nested, fast, fresh(kind), watch=ROUTER)
    no_waste(fast)
    assert "learned: the arm taken when bool('math' in %0) is True" in fast.explain()
    solver.reset()
    fast(fresh("math hard"))
    assert solver.max_concurrency == 4, fast.explain()


search = Tool("search", lambda prompt: [f"hit{i}" for i in range(prompt.count("*"))])
check, reader, writer = FakeLLM("check", LATENCY), FakeLLM("reader", LATENCY), FakeLLM("writer", LATENCY)


def per_hit(q: str) -> str:
    notes = []
    for h in search(q):
        verdict = check(f"{h} for {q}")
        if "keep" in verdict:
            notes.append(reader(f"first {h}"))
            notes.append(reader(f"second {h}"))
    return writer(" | ".join(notes))


@pytest.mark.parametrize("first", ["", "keep"])
def test_arms_of_a_loop_over_a_result_replay_like_plain_for_any_length(first: str) -> None:
    fast = xcs.jit(per_hit)
    watch = [search, check, reader, writer]
    for query in [f"** {first}", "*** keep", "* keep", "**", "**** keep", "", "*** keep", "** keep"]:
        run_both(per_hit, fast, f"{fresh('q')} {query}", watch=watch)
    no_waste(fast)


failing = FakeLLM("failing", LATENCY, fail_on="boom")


def raises_in_the_other_arm(q: str) -> str:
    kind = classifier(f"Classify: {q}")
    if "math" in kind:
        return solver(f"a {q}")
    x = general(f"one: {q}")
    y = failing(f"two: {q}")
    return combine(f"{x} {y}")


def test_an_exception_in_a_learned_arm_is_raised_at_the_same_point() -> None:
    fast = xcs.jit(raises_in_the_other_arm)
    for words in ["math", "poem", "poem", "poem boom", "math", "poem boom", "poem"]:
        run_both(raises_in_the_other_arm, fast, f"{fresh('q')} {words}", watch=[*ROUTER, failing])
    no_waste(fast)
    assert "learned: the arm taken when" in fast.explain()


def test_threads_replaying_while_the_plan_learns_behave_like_plain() -> None:
    fast = xcs.jit(route)
    fast(fresh("math"))
    errors: list[BaseException] = []

    def worker(kinds: list[str]) -> None:
        try:
            for kind in kinds:
                q = fresh(kind)
                assert fast(q) == route(q)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(["poem", "math"] * 3,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    no_waste(fast)
    assert fast.stats.traces <= 1 + LESSONS

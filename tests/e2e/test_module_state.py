"""A slow helper of the user's that changes module state it was not handed.

A slow call is taken to change only what it is handed (a request does not change its client).  A
Python function of the user's can also change module globals: assign one (`global MODEL`), or
change a list or dict one holds (`TODO[:] = ...`, `COUNTS["n"] += 1`).  A later call that reads
that state must not be issued before the helper ran: it would be handed what the state was before,
and the plain run never makes that call (`stats.wasted`).  Each test compares results and calls
with the plain run (`likeplain`) while the state changes between calls, and checks that nothing
was wasted or mispredicted.
"""

from __future__ import annotations

import functools
import heapq
import time
from typing import Any

import xcs_bc as xcs
from likeplain import LATENCY, no_waste, run_both_fresh
from xcs_bc.build.purity import ModuleState, module_state
from xcs_bc.ir.check import check
from xcs_bc.testing import FakeLLM

llm = FakeLLM("llm", LATENCY)
HELPER_S = 0.015  # the helpers are slow calls themselves (over the 10 ms threshold)

TODO: list[str] = []
MODEL = "small"
COUNTS: dict[str, int] = {"n": 0}
CONFIG = {"tone": "plain"}


def get_todo() -> list[str]:  # a fast tool: hands out the very list it keeps
    return TODO


def drop_done() -> None:  # slow, and changes that list without being handed it
    time.sleep(HELPER_S)
    TODO[:] = [item for item in TODO if not item.startswith("done")]


def work_through(q: str) -> list[str]:
    items = get_todo()
    drop_done()
    return [llm(f"{q}: {item}") for item in items]


def test_a_slow_helper_that_changes_a_global_list_goes_before_the_calls_that_read_it() -> None:
    fast = xcs.jit(work_through, min_call_ms=10)

    def todo(*items: str) -> Any:
        def make() -> tuple[str]:
            TODO[:] = list(items)
            return ("q",)

        return make

    for items in [("a", "b"), ("a", "b"), ("done x", "c", "done y"), ("d",), ("done z",), ("e", "f")]:
        run_both_fresh(work_through, fast, todo(*items), watch=[llm])
    no_waste(fast)


def pick_model(q: str) -> str:
    global MODEL
    time.sleep(HELPER_S)
    MODEL = "big" if "hard" in q else "small"
    return "picked"


def count(q: str) -> str:
    COUNTS["n"] += 1
    return llm(q)


def routed(q: str) -> tuple[str, ...]:
    pick_model(q)
    a = count(q)
    b = count(q + "!")
    return llm(f"{MODEL}: {q}"), a, b, llm(f"after {COUNTS['n']} counted")


def test_a_global_a_slow_helper_assigns_or_changes_is_read_after_it() -> None:
    fast = xcs.jit(routed, min_call_ms=10)

    def fresh_state(q: str) -> Any:
        def make() -> tuple[str]:
            COUNTS["n"] = 0
            return (q,)

        return make

    for q in ["easy", "easy", "hard", "easy", "hard"]:
        run_both_fresh(routed, fast, fresh_state(q), watch=[llm])
    no_waste(fast)
    with xcs.capture(min_call_ms=10, leaves=[pick_model, count]) as cap:  # (the graph is well formed)
        routed("hard")
    check(cap.graph)
    deps = {op.id: sorted(dep.id for dep in cap.graph.dependencies(op)) for op in cap.graph.operations}
    # the call reading MODEL needs pick_model; the one reading COUNTS both counts
    assert deps == {0: [], 1: [], 2: [], 3: [0], 4: [1, 2]}, cap.graph


def styled(doc: str) -> str:
    notes: dict[str, str] = {}
    notes["doc"] = doc  # it changes a container of its own, and reads a global one
    return llm(f"{CONFIG['tone']}: {notes['doc']}")


def review(a: str, b: str) -> tuple[str, str, str]:
    return styled(a), styled(b), llm("summary")


def test_helpers_that_only_read_module_state_still_run_at_the_same_time() -> None:
    fast = xcs.jit(review, min_call_ms=10)
    for _ in range(3):
        run_both_fresh(review, fast, lambda: ("x", "y"), watch=[llm])
    llm.reset()
    fast("x", "y")
    assert llm.max_concurrency == 3, fast.explain()
    no_waste(fast)


def _names(pairs: tuple[tuple[dict[str, Any], str], ...]) -> set[str]:
    return {name for _, name in pairs}


def test_which_module_state_a_function_may_read_and_change() -> None:
    assert _names(module_state(pick_model).rebinds) == {"MODEL"}
    assert _names(module_state(pick_model).writes) == {"MODEL"}  # (no item store)
    assert _names(module_state(drop_done).writes) == {"TODO"}  # a slice store into TODO
    assert _names(module_state(count).writes) == {"COUNTS"}  # `+=` on an item: any data global it loads
    assert _names(module_state(get_todo).reads) == {"TODO"}
    assert _names(module_state(get_todo).writes) == {
        "TODO"
    }  # it hands out the list: its caller may change it
    assert _names(module_state(styled).reads) == {"CONFIG"}
    assert module_state(styled).writes == ()  # a store into its own dict changes no global
    assert _names(module_state(remember).writes) == {"LAST", "HISTORY"}  # through a helper it calls
    assert module_state(len) == module_state(llm) == ModuleState()  # not a Python function


QUEUE: list[str] = []
OPTIONS = {"temperature": 0}


def reads_where_it_loads(q: str) -> tuple[Any, ...]:
    found = [item for item in TODO if q in item]
    return CONFIG["tone"], q in CONFIG, CONFIG.get("x"), len(TODO), f"{MODEL}", found, dict(**OPTIONS)


def push(q: str) -> None:
    heapq.heappush(QUEUE, q)  # handed to a function that changes it


def aliased(q: str) -> None:
    items = TODO
    items.append(q)


def with_options(q: str) -> str:
    return llm(q, options=OPTIONS)  # the callee gets the very dict


def test_a_global_handed_on_whole_may_be_changed_by_what_gets_it() -> None:
    assert module_state(reads_where_it_loads).writes == ()
    assert _names(module_state(reads_where_it_loads).reads) == {"TODO", "CONFIG", "MODEL", "OPTIONS"}
    assert _names(module_state(push).writes) == {"QUEUE"}
    assert _names(module_state(aliased).writes) == {"TODO"}
    assert _names(module_state(with_options).writes) == {"OPTIONS"}


# -- a helper reading module state the run changed, and helpers changing the same state -----------

LAST = ""
HISTORY: list[str] = []


def set_tone(tone: str) -> None:  # fast: changes CONFIG, which `styled` reads
    CONFIG["tone"] = tone[:8]


def keep(item: str) -> None:
    HISTORY.append(item)


def remember(q: str) -> str:  # slow: its call, then module state changed after it
    global LAST
    LAST = llm(q)
    keep(LAST)
    return LAST


def toned(a: str, b: str) -> tuple[str, str]:
    first = llm(a)
    set_tone(first)
    return first, styled(b)  # reads CONFIG: what set_tone made of it, not what it was at the start


def remembered(a: str, b: str) -> tuple[str, str, str, list[str]]:
    return remember(a), remember(b), LAST, list(HISTORY)  # the second writes last


def reset_state(*args: str) -> Any:
    def make() -> tuple[str, ...]:
        global LAST
        CONFIG["tone"], LAST = "plain", ""
        HISTORY.clear()
        return args

    return make


def test_a_helper_reading_a_global_the_run_changed_before_it_reads_the_new_value() -> None:
    fast = xcs.jit(toned, min_call_ms=10)
    for args in [("a", "b"), ("c", "d"), ("e", "f"), ("g", "h")]:
        run_both_fresh(toned, fast, reset_state(*args), watch=[llm])
    no_waste(fast)
    assert "reads the global CONFIG, which set_tone() changed before it" in fast.explain()
    CONFIG["tone"] = "plain"


def test_helpers_changing_the_same_module_state_change_it_in_the_order_of_the_code() -> None:
    fast = xcs.jit(remembered, min_call_ms=10)
    for args in [("a", "b"), ("c", "d"), ("e", "f"), ("g", "h")]:
        run_both_fresh(remembered, fast, reset_state(*args), watch=[llm])
    no_waste(fast)
    assert "its callee changes module state (HISTORY, LAST)" in fast.explain()


# -- through a decorator: a jitted helper, a memoized one ----------------------------------------


def ask_model(q: str) -> str:
    return llm(f"{MODEL}: {q}")  # a slow helper reading MODEL


jitted_pick = xcs.jit(pick_model, min_call_ms=10)


def routed_through_a_jitted_helper(q: str) -> str:
    jitted_pick(q)  # a jitted helper: the function it wraps assigns MODEL
    return ask_model(q)


def test_a_decorated_helper_is_read_through_its_wrapper() -> None:
    assert _names(module_state(jitted_pick).writes) == {"MODEL"}  # (through `__wrapped__`)
    assert _names(module_state(functools.lru_cache(pick_model)).writes) == {"MODEL"}
    fast = xcs.jit(routed_through_a_jitted_helper, min_call_ms=10)
    for q in ["easy", "hard", "easy", "hard", "hard"]:
        run_both_fresh(routed_through_a_jitted_helper, fast, lambda q=q: (q,), watch=[llm])
    no_waste(fast)

"""Arms the trace did not take: a replay whose results go the other way runs code the trace never saw.

That arm may assign a local, change an object in place, or call a helper before the paths meet again;
a call after the meeting point that reads what the arm touched must not be issued ahead with what the
trace saw.  Each test traces one arm, then replays the other (and back), comparing results and the
multiset of calls with the plain run (`likeplain`), and checks that no call was wasted.
"""

from __future__ import annotations

from typing import Any

import xcs_bc as xcs
from likeplain import LATENCY, Tool, fresh, no_waste, run_both, run_both_fresh
from xcs_bc.testing import FakeLLM

check, writer = FakeLLM("check", LATENCY), FakeLLM("writer", LATENCY)
first = FakeLLM("first", LATENCY)
search = Tool("search", lambda prompt: [f"hit{i}" for i in range(prompt.count("*"))])
reader = FakeLLM("reader", LATENCY)
WORDS = ["calm", "calm", "stop", "calm", "stop", "stop", "calm"]


def rebinds(q: str) -> str:
    x = first(q)
    verdict = check(q)
    if "stop" in verdict:
        x = "fallback"
    return writer(x)


def test_a_local_the_other_arm_assigns_is_not_guessed() -> None:
    fast = xcs.jit(rebinds)
    for word in WORDS:
        run_both(rebinds, fast, f"{fresh('q')} {word}", watch=[first, check, writer])
    no_waste(fast)
    assert "made under a branch on a result" in fast.explain()


def rebinds_a_parameter(q: str, style: str) -> str:
    verdict = check(q)
    if "stop" in verdict:
        style = "terse"  # the parameter is not read before the arm
    return writer(f"{style}: {q}")


def test_a_parameter_the_other_arm_assigns_is_not_read_from_the_input() -> None:
    fast = xcs.jit(rebinds_a_parameter)
    for word in WORDS:
        run_both(rebinds_a_parameter, fast, f"{fresh('q')} {word}", "long", watch=[check, writer])
    no_waste(fast)


def clears(q: str) -> list[str]:
    hits = search(q)
    verdict = check(q)
    if "stop" in verdict:
        hits.clear()
    return [reader(h) for h in hits]


def test_a_result_list_the_other_arm_clears_is_not_looped_over_ahead() -> None:
    fast = xcs.jit(clears)
    for word in WORDS:
        run_both(clears, fast, f"{fresh('q')} *** {word}", watch=[search, check, reader])
    no_waste(fast)


def changes_a_dict(q: str) -> str:
    opts = {"tone": "long"}
    verdict = check(q)
    if "stop" in verdict:
        opts["tone"] = "short"
    return writer(f"{opts['tone']}: {q}")


def test_a_dict_the_other_arm_changes_is_read_after_the_change() -> None:
    fast = xcs.jit(changes_a_dict)
    for word in WORDS:
        run_both(changes_a_dict, fast, f"{fresh('q')} {word}", watch=[check, writer])
    no_waste(fast)


CONFIG = {"style": "full"}


def changes_a_global(q: str) -> str:
    verdict = check(q)
    if "stop" in verdict:
        CONFIG["style"] = "terse"
    return writer(f"{CONFIG['style']}: {q}")


def test_a_global_dict_the_other_arm_changes_is_read_after_the_change() -> None:
    fast = xcs.jit(changes_a_global)

    def start_from_full(q: str) -> Any:
        def make() -> tuple[str]:
            CONFIG["style"] = "full"  # each run starts from the same configuration
            return (q,)

        return make

    for word in WORDS:
        run_both_fresh(changes_a_global, fast, start_from_full(f"{fresh('q')} {word}"), watch=[check, writer])
    no_waste(fast)


notes: list[str] = []


def log(text: str) -> None:  # a helper not known to be pure: it appends to a global list
    notes.append(text)


def calls_a_helper(q: str, seen: list[str]) -> str:
    verdict = check(q)
    if "stop" in verdict:
        log(q)
        seen.append("stopped")
    return writer(seen)


def test_a_list_the_other_arm_hands_to_a_helper_is_not_handed_over_before() -> None:
    fast = xcs.jit(calls_a_helper)
    for word in WORDS:
        q = f"{fresh('q')} {word}"
        run_both_fresh(calls_a_helper, fast, lambda q=q: (q, ["start"]), watch=[check, writer])
    no_waste(fast)


def loop_that_may_not_run(q: str) -> str:
    last = "none"
    for h in search(q):
        last = h
    return writer(last)


def test_a_loop_body_the_trace_never_ran_is_owed_after_the_loop() -> None:
    fast = xcs.jit(loop_that_may_not_run)
    for stars in ["", "", "**", "", "*", "***"]:
        run_both(loop_that_may_not_run, fast, f"{fresh('q')} {stars}", watch=[search, writer])
    no_waste(fast)


class Patch:
    """An image patch whose `exists` is a slow model call: the object is a client, not data."""

    def __init__(self, image: str) -> None:
        self.image = image

    def exists(self, thing: str) -> bool:
        return bool(detector(f"{thing} in {self.image}"))


detector = Tool("detector", lambda prompt: f"+{prompt.partition(' in ')[0]}" in prompt.partition(" in ")[2])


def tv_and_phone(patch: Patch) -> str:
    has_tv = patch.exists("television")
    if not has_tv:
        has_tv = patch.exists("tv")
    has_phone = patch.exists("telephone")
    return f"tv: {has_tv}, phone: {has_phone}"


def test_calls_on_a_client_in_the_other_arm_keep_later_calls_on_it_parallel() -> None:
    fast = xcs.jit(tv_and_phone)
    for image in ["+television", "+tv +telephone", "", "+television +telephone"]:
        run_both(tv_and_phone, fast, Patch(f"{fresh('img')} {image}"), watch=[detector])
    no_waste(fast)
    detector.reset()
    fast(Patch(f"{fresh('img')} +television"))  # the traced arm: both checks at once
    assert detector.max_concurrency == 2, fast.explain()

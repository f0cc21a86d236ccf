"""Decisions on what a fast tool not known to be pure returns: taken from the real run.

`events = get_events(day)` reads mutable state, so no recipe may call it ahead and no guard can check
its result before the call.  The jitted function makes it in its turn and keeps its result (the
function stores it in a local), and from then on the branches and loops over it are predicates like
those on a slow call's result: every summary is issued the moment the run has the list.  Each test
compares results and calls with the plain run (`likeplain`) while the tool's answers change between
calls, and checks that nothing was wasted or made twice.
"""

from __future__ import annotations

import inspect
from typing import Any

import xcs_bc as xcs
from likeplain import LATENCY, fresh, no_waste, run_both, run_both_fresh
from xcs_bc.testing import FakeLLM

summarize, writer, llm = FakeLLM("summarize", LATENCY), FakeLLM("writer", LATENCY), FakeLLM("llm", LATENCY)


class Event:
    def __init__(self, title: str, description: str) -> None:
        self.title = title
        self.description = description


CALENDAR: dict[str, Any] = {"events": [], "reads": 0}


def get_day_calendar_events(day: str) -> list[Event]:  # fast, and not pure: it reads (and counts) state
    CALENDAR["reads"] += 1
    return [Event(f"event {i}", f"{day}: {text}") for i, text in enumerate(CALENDAR["events"])]


def agenda(day: str) -> str:
    events = get_day_calendar_events(day)
    result = ""
    idx = 1
    if len(events) > 0:
        for event in events:
            s = summarize(f"Summarize: {event.description}")
            result = result + f"\n{idx}. {event.title}: {s}"
            idx = idx + 1
    return result


def on_calendar(*texts: str) -> Any:
    def make() -> tuple[str]:
        CALENDAR["events"] = list(texts)
        return (f"{fresh('day')}",)

    return make


def test_one_summary_per_event_of_a_tool_replays_like_plain_for_any_number_of_events() -> None:
    fast = xcs.jit(agenda)
    for texts in [("a", "b", "c"), ("a", "b", "c"), ("d",), (), ("e", "f", "g", "h", "i"), ("j", "k")]:
        day = fresh("day")
        CALENDAR["events"] = list(texts)
        CALENDAR["reads"] = 0
        run_both(agenda, fast, day, watch=[summarize])
        assert CALENDAR["reads"] == 2  # the tool was read once by each run, never ahead
    no_waste(fast)
    assert fast.stats.traces == 1


def test_every_summary_is_issued_once_the_tool_has_answered() -> None:
    fast = xcs.jit(agenda)
    CALENDAR["events"] = ["a", "b"]
    fast(fresh("day"))
    for texts in (["x", "y", "z"], ["p", "q", "r", "s", "t"]):
        CALENDAR["events"] = texts
        summarize.reset()
        fast(fresh("day"))
        assert summarize.max_concurrency == len(texts), fast.explain()
    text = fast.explain()
    assert "get_day_calendar_events at" in text and "runs in its turn, because it is a fast call" in text
    assert "if len(%0) > 1" in text


STATUS = {"mode": "ok"}


def check_status(q: str) -> str:  # a fast helper reading state: its answer differs between calls
    return f"{STATUS['mode']} for {q}"


def triage(q: str) -> str:
    status = check_status(q)
    if status.startswith("ok"):
        a = llm(f"answer A: {q}")
        b = llm(f"answer B: {q}")
        return writer(f"{a} | {b}")
    return writer(f"escalate: {status}")


def decided_by_the_status(fn: Any, modes: list[str]) -> None:
    """`fn` branches on what a status helper says: like plain whichever way it goes, nothing wasted,
    and both answers at once when it says "ok"."""
    fast = xcs.jit(fn)
    for mode in modes:
        STATUS["mode"] = mode
        run_both(fn, fast, fresh("q"), watch=[llm, writer])
    no_waste(fast)
    STATUS["mode"] = "ok"
    llm.reset()
    fast(fresh("q"))
    assert llm.max_concurrency == 2, fast.explain()


def test_a_branch_on_a_helpers_answer_goes_the_way_the_run_takes() -> None:
    decided_by_the_status(triage, ["ok", "ok", "down", "ok", "down", "down", "ok"])


TODO: list[str] = []


def get_todo() -> list[str]:  # hands out the very list it keeps
    return TODO


def drop_done() -> None:  # changes that list, without being handed it
    TODO[:] = [item for item in TODO if not item.startswith("done")]


def work_through(q: str) -> list[str]:
    items = get_todo()
    drop_done()
    return [summarize(f"{q}: {item}") for item in items]


def test_a_tools_list_changed_by_another_helper_before_the_loop_is_not_looped_over_ahead() -> None:
    fast = xcs.jit(work_through)

    def todo(*items: str) -> Any:
        def make() -> tuple[str]:
            TODO[:] = list(items)
            return ("q",)

        return make

    for items in [("a", "b"), ("a", "b"), ("done x", "c", "done y"), ("d",), ("done z",)]:
        run_both_fresh(work_through, fast, todo(*items), watch=[summarize])
    no_waste(fast)


class ImagePatch:
    """A vision program's patch: made by the function, its `exists` is a slow model call."""

    def __init__(self, image: str) -> None:
        self.image = image

    def exists(self, thing: str) -> bool:
        return "yes" in detector(f"{thing} in {self.image}")


detector = FakeLLM("detector", LATENCY)


def tv_and_phone(image: str) -> str:
    image_patch = ImagePatch(image)
    has_tv = image_patch.exists("television")
    has_phone = image_patch.exists("telephone")
    return f"tv: {has_tv}, phone: {has_phone}"


def test_calls_on_an_object_the_function_makes_go_once_it_is_made() -> None:
    fast = xcs.jit(tv_and_phone)
    for _ in range(3):
        run_both(tv_and_phone, fast, fresh("img"), watch=[detector])
    no_waste(fast)
    detector.reset()
    fast(fresh("img"))
    assert detector.max_concurrency == 2, fast.explain()


def where_am_i(q: str) -> str:
    frame = inspect.currentframe()  # reads its caller's frame: never made through the dispatcher
    assert frame is not None
    return llm(f"{frame.f_code.co_name}: {q}")


def test_a_function_reading_its_callers_frame_sees_the_function_not_the_dispatcher() -> None:
    fast = xcs.jit(where_am_i)
    for _ in range(3):
        run_both(where_am_i, fast, fresh("q"), watch=[llm])
    no_waste(fast)


def agenda_inline(day: str) -> list[str]:
    return [summarize(event.description) for event in get_day_calendar_events(day)]


def ready(q: str) -> bool:  # a fast helper reading state, branched on at once
    return STATUS["mode"] == "ok"


def inline_triage(q: str) -> str:
    if ready(q):
        return writer(f"{llm(f'answer A: {q}')} | {llm(f'answer B: {q}')}")
    return writer(f"escalate: {q}")


def level(q: str) -> int:  # a fast helper reading state, compared before the branch
    return 5 if STATUS["mode"] == "down" else 1


def compared_triage(q: str) -> str:
    if level(q) > 3:
        return writer(f"escalate: {q}")
    return writer(f"{llm(f'answer A: {q}')} | {llm(f'answer B: {q}')}")


def test_a_loop_or_a_branch_straight_on_a_tools_call_is_decided_by_its_answer() -> None:
    fast = xcs.jit(agenda_inline)
    for texts in [("a", "b"), ("a", "b"), ("c", "d", "e", "f"), (), ("g",)]:
        CALENDAR["events"] = list(texts)
        run_both(agenda_inline, fast, fresh("day"), watch=[summarize])
    no_waste(fast)
    CALENDAR["events"] = ["x", "y", "z"]
    summarize.reset()
    fast(fresh("day"))
    assert summarize.max_concurrency == 3, fast.explain()
    decided_by_the_status(inline_triage, ["ok", "ok", "down", "ok", "down"])
    decided_by_the_status(compared_triage, ["ok", "ok", "down", "ok", "down"])
    decided_by_the_status(compared_triage, ["down", "ok", "ok", "down", "ok", "ok"])  # the arm learned

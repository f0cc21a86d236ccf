"""Calls under branches on results: issued the moment the results the branches read arrive, and only
when the branches go their way (never a call the plain run does not make).

Every test runs the plain function and the jitted one on fresh inputs, with branch outcomes that
differ between the trace and the replays, and compares results, exceptions and the multiset of calls
(`likeplain`); `stats.wasted` and `stats.mispredictions` stay 0.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import xcs_bc as xcs
from likeplain import LATENCY, Tool, fresh, no_waste, run_both
from xcs_bc.testing import FakeLLM


def detect(prompt: str) -> bool:
    """True when the prompt names something the image has (`"+thing"`)."""
    thing, _, image = prompt.partition(" in ")
    return f"+{thing}" in image


def patches(prompt: str) -> list[str]:
    """One patch per `"*"` in the prompt."""
    return [f"patch{i}" for i in range(prompt.count("*"))]


# -- a router: a classifier, then three solvers under a branch on its answer ------------------------

classifier, solver, combine = (
    FakeLLM("classifier", LATENCY),
    FakeLLM("solver", LATENCY),
    FakeLLM("combine", LATENCY),
)


def route(q: str) -> str:
    kind = classifier(f"Classify: {q}")
    if "math" in kind:
        a = solver(f"algebra: {q}")
        b = solver(f"geometry: {q}")
        c = solver(f"numbers: {q}")
        return combine(f"{a} | {b} | {c}")
    return combine(f"prose: {kind}")


@pytest.mark.parametrize("first", ["math", "poem"])
def test_a_router_replays_like_plain_whichever_way_each_call_goes(first: str) -> None:
    fast = xcs.jit(route)
    watch = [classifier, solver, combine]
    for kind in [first, "math", "poem", "math", "math", "poem"]:
        run_both(route, fast, fresh(kind), watch=watch)
    no_waste(fast)
    if first == "math":  # the other arm's lone call is made as early in its turn: nothing to learn
        assert fast.stats.traces == 1
    else:  # the solvers' arm is learned from a later trace that took it (see test_learned_arms)
        assert "learned: the arm taken when bool('math' in %0) is True" in fast.explain()


def test_the_solvers_under_the_branch_run_at_once_when_the_trace_took_it() -> None:
    fast = xcs.jit(route)
    fast(fresh("math"))
    solver.reset()
    fast(fresh("math"))
    assert solver.max_concurrency == 3  # issued together once the classifier answered
    assert fast.stats.served == 5
    text = fast.explain()
    assert "issued ahead once %0 is known, if bool(" in text
    assert "runs in its turn" not in text


# -- tv / phone: branches on boolean tool answers, the other arm not seen when tracing ---------------

exists = Tool("exists", detect)


def tv_and_phone(image: str) -> str:
    has_tv = exists(f"television in {image}")
    if not has_tv:
        has_tv = exists(f"tv in {image}")
    has_phone = exists(f"telephone in {image}")
    if not has_phone:
        a = exists(f"cell phone in {image}")
        b = exists(f"mobile phone in {image}")
        c = exists(f"phone in {image}")
        has_phone = a or b or c
    return f"{has_tv} {has_phone}"


@pytest.mark.parametrize("traced", ["", "+television +telephone", "+tv +phone"])
def test_boolean_branches_replay_like_plain_for_every_outcome(traced: str) -> None:
    fast = xcs.jit(tv_and_phone)
    images = [traced, "+tv", "+television +cell phone", "", "+telephone", "+tv +mobile phone", "+phone"]
    for image in images:
        run_both(tv_and_phone, fast, f"{fresh('img')} {image}", watch=[exists])
    no_waste(fast)


def test_both_arms_of_the_tv_and_phone_program_are_learned_from_one_trace() -> None:
    fast = xcs.jit(tv_and_phone)
    images = ["+television +telephone", "+tv", "nothing", "+television +phone", "+tv +cell phone", "nothing"]
    for image in images:
        run_both(tv_and_phone, fast, f"{fresh('img')} {image}", watch=[exists])
    no_waste(fast)
    assert fast.stats.traces == 2  # the first, and the lesson on "+tv" (both arms at once)
    assert fast.explain().count("learned: the arm taken when") == 2
    exists.reset()
    fast(f"{fresh('img')} nothing")
    assert exists.max_concurrency == 4, fast.explain()  # "tv" with the three phones


def test_the_phone_checks_run_together_with_the_tv_checks() -> None:
    fast = xcs.jit(tv_and_phone)
    fast(fresh("img"))  # neither found: every call made
    exists.reset()
    fast(fresh("img"))
    assert exists.max_concurrency >= 4  # tv after television, three phones after telephone


# -- a branch on the length of a list a tool answered ------------------------------------------------

find, query = Tool("find", patches), FakeLLM("query", LATENCY)


def horses(image: str) -> str:
    found = find(f"horse in {image}")
    if len(found) == 0:
        return query(f"Is there a brown horse in {image}?")
    return query(f"Which of {len(found)} horses is brown?")


def test_a_branch_on_the_length_of_a_result_replays_like_plain() -> None:
    fast = xcs.jit(horses)
    for stars in ["", "**", "", "*", "***", ""]:
        run_both(horses, fast, f"{fresh('img')} {stars}", watch=[find, query])
    no_waste(fast)


# -- two decisions deep, and a branch on an input under a branch on a result -------------------------

outer, inner, deep = FakeLLM("outer", LATENCY), FakeLLM("inner", LATENCY), FakeLLM("deep", LATENCY)


def two_deep(q: str, flag: bool) -> str:
    a = outer(q)
    if "go" in a:
        b = inner(f"inner {q}")
        if "on" in b:
            if flag:
                return deep(f"deep {q} {b}")
            return deep(f"other {q}")
    return a


@pytest.mark.parametrize("flag", [True, False])
def test_a_call_two_decisions_deep_and_under_an_input_branch_is_made_only_on_its_path(flag: bool) -> None:
    fast = xcs.jit(two_deep)
    cases = [("go on", flag), ("go on", not flag), ("go", flag), ("stop on", flag), ("go on", flag)]
    for word, f in cases:
        run_both(two_deep, fast, f"{fresh('q')} {word}", f, watch=[outer, inner, deep])
    no_waste(fast)


# -- per-round branches on results in a loop over an input: rounds take other arms than traced --------

check, summarize = FakeLLM("check", LATENCY), FakeLLM("summarize", LATENCY)


def summaries(docs: list[str]) -> list[str]:
    out = []
    for doc in docs:
        verdict = check(f"Relevant? {doc}")
        if "yes" in verdict:
            out.append(summarize(f"Summarize {doc}"))
    return out


@pytest.mark.parametrize(
    "traced, replayed",
    [
        (["yes", "yes", "no"], ["no", "yes", "yes"]),
        (["no", "yes", "yes"], ["yes", "no", "yes"]),
        (["yes", "no", "no"], ["no", "no", "yes"]),
        (["yes", "yes", "yes"], ["no", "no", "no"]),
    ],
)
def test_rounds_that_branch_otherwise_than_traced_are_served_by_value(
    traced: list[str], replayed: list[str]
) -> None:
    fast = xcs.jit(summaries)
    run_both(summaries, fast, [fresh(w) for w in traced], watch=[check, summarize])
    for _ in range(2):
        run_both(summaries, fast, [fresh(w) for w in replayed], watch=[check, summarize])
        run_both(summaries, fast, [fresh(w) for w in traced], watch=[check, summarize])
    no_waste(fast)


# -- what a predicate cannot promise: those calls run in their turn -----------------------------------

judge = FakeLLM("judge", LATENCY)


class Note:
    def __init__(self) -> None:
        self.text = ""

    def __str__(self) -> str:
        return f"Note({self.text})"


def note_then_judge(q: str, note: Note) -> str:
    r = outer(q)
    if "go" in r:
        note.text = r  # the branch changes the object the judge is handed
        return judge(note)
    return r


def test_an_object_changed_under_the_branch_is_not_handed_over_before_the_change() -> None:
    fast = xcs.jit(note_then_judge)
    for word in ["go", "go", "stop", "go"]:
        q = f"{fresh('q')} {word}"
        run_both(note_then_judge, fast, q, Note(), watch=[outer, judge])
    no_waste(fast)
    assert "runs in its turn" in fast.explain()


def other_branch_sets_it(q: str) -> str:
    kind = outer(q)
    prefix = "A" if "x" in kind else "B"  # set under one branch on the result ...
    if "math" in kind:  # ... read under another on the same result
        return solver(f"{prefix} {q}")
    return kind


def test_a_value_set_under_another_branch_on_the_same_result_is_not_guessed() -> None:
    fast = xcs.jit(other_branch_sets_it)
    for words in ["x math", "math", "x math", "y", "math"]:
        run_both(other_branch_sets_it, fast, f"{fresh('q')} {words}", watch=[outer, solver])
    no_waste(fast)


def raises_under_branch(q: str) -> str:
    kind = classifier(q)
    if "math" in kind:
        a = solver(f"a {q}")
        b = FakeLLM("failing", LATENCY, fail_on="boom")(f"b {q}")
        return combine(a + b)
    return kind


def test_an_exception_under_the_branch_is_raised_at_the_same_point() -> None:
    fast = xcs.jit(raises_under_branch)
    for words in ["math", "math boom", "poem", "math", "math boom"]:
        run_both(raises_under_branch, fast, f"{fresh('q')} {words}", watch=[classifier, solver, combine])


def test_a_loop_with_a_branch_on_each_rounds_result_is_replayed_for_any_length() -> None:
    fast = xcs.jit(summaries)
    run_both(summaries, fast, [fresh("yes") for _ in range(3)], watch=[check, summarize])
    for n in [5, 2, 7, 0, 4]:
        run_both(
            summaries, fast, [fresh("yes" if i % 2 else "no") for i in range(n)], watch=[check, summarize]
        )
        run_both(summaries, fast, [fresh("yes") for _ in range(n)], watch=[check, summarize])
    no_waste(fast)
    assert fast.stats.traces == 1
    assert fast.stats.resized == 10
    assert "if bool('yes' in %0) is True" in fast.explain()


def set_in_the_arm(q: str) -> str:
    r = outer(q)
    y = "none"
    if "go" in r:
        y = r.upper()  # computed from the result, but only when the branch goes this way
    return judge(y)


def test_a_value_set_in_an_arm_and_read_after_it_is_not_guessed() -> None:
    fast = xcs.jit(set_in_the_arm)
    for word in ["go", "go", "stop", "go", "stop"]:
        run_both(set_in_the_arm, fast, f"{fresh('q')} {word}", watch=[outer, judge])
    no_waste(fast)
    assert "it is handed a value made under a branch on a result" in fast.explain()


STEPS = '{"steps": [{"tool": "a", "args": {"query": "%s"}}, {"tool": "b", "args": {"query": "%s"}}]}'
log_lines: list[str] = []


def note(text: str) -> None:  # a helper not known to be pure: it appends to a global list
    log_lines.append(text)


class Planner(FakeLLM):
    def __call__(self, prompt: object, **kwargs: Any) -> Any:
        super().__call__(prompt, **kwargs)
        return STEPS % tuple(str(prompt).split()[:2])


class KeywordTool(FakeLLM):
    def __call__(self, query: object, **kwargs: Any) -> Any:  # called as tool(query=...)
        return super().__call__(query, **kwargs)


planner = Planner("planner", LATENCY)
tool_a, tool_b = KeywordTool("tool_a", LATENCY), KeywordTool("tool_b", LATENCY)
TOOLS = {"a": tool_a, "b": tool_b}


def agent(task: str) -> list[str]:
    plan = json.loads(planner(task))
    note(f"plan for {task}")  # runs before the tools: it cannot change what json.loads made afresh
    return [TOOLS[step["tool"]](**step["args"]) for step in plan["steps"]]


def test_tool_calls_with_keyword_arguments_from_a_results_json_run_at_once() -> None:
    fast = xcs.jit(agent)
    for _ in range(3):
        run_both(agent, fast, f"{fresh('x')} {fresh('y')}", watch=[planner, tool_a, tool_b])
    no_waste(fast)
    tool_a.reset()
    tool_b.reset()
    fast(f"{fresh('x')} {fresh('y')}")
    assert fast.stats.in_place == 0, fast.explain()

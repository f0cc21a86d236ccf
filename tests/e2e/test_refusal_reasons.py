"""Why a call runs in its turn, as `explain()` says it: each reason names the line and the value that
stopped the call and, where there is one, the change that frees it; and taking that change does
free it.  Also: an object a fast constructor made is handed to helpers ahead of their turn, once it
is made, while a function that may change it after that still keeps them in their turn.

Every function is also run plainly and through the jit with the same inputs (`run_both`): same
results, same calls.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from typing import Any

from test_jit_pipelines import fresh_state, outcome

import pipelines_legacy as legacy
import xcs_bc as xcs
from likeplain import no_waste, run_both_fresh
from xcs_bc.plan.recipes import RefusalKind
from xcs_bc.testing import FakeLLM

LATENCY = 0.03
llm = FakeLLM("llm", LATENCY)
judge = FakeLLM("judge", LATENCY)
AUDIT: list[int] = []
HERE = "test_refusal_reasons.py"


def jitted(fn: Any, *args: Any, runs: int = 3) -> Any:
    """`fn` jitted, after `runs` calls on copies of `args`, each like the plain call's."""
    fast = xcs.jit(fn, min_call_ms=10)
    for _ in range(runs):
        run_both_fresh(fn, fast, lambda: copy.deepcopy(args), watch=[llm, judge])
    return fast


def reason(fast: Any, op: int) -> str:
    """What `explain()` says of operation `op`: the text after its `%op name at file:line: `."""
    for line in fast.explain().splitlines():
        found = re.match(rf"\s+%{op} \S+ at {HERE}:\d+: (.*)", line)
        if found:
            return found.group(1)
    raise AssertionError(f"%{op} is not in:\n{fast.explain()}")


def line_of(text: str) -> str:
    """`HERE:<line>` of the first line of this file holding `text`."""
    with open(__file__, encoding="utf-8") as source:
        for number, line in enumerate(source, 1):
            if text in line:
                return f"{HERE}:{number}"
    raise AssertionError(text)


# -- reasons name what stopped the call -------------------------------------------------------------


class Notes:
    """A user's object (no list or dict the function could share): what a call is handed."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return f"Notes({self.text})"


def audit(count: list[int]) -> int:
    AUDIT.append(len(count))
    return len(AUDIT)


def after_an_unknown_helper(state: dict[str, Any]) -> str:
    first = llm("first")
    audit([])  # not handed `state`, but a function not known to be pure may change anything
    return llm(state["notes"]) + first


def test_a_call_after_a_helper_that_may_change_its_argument_names_the_helper_and_its_line() -> None:
    fast = jitted(after_an_unknown_helper, {"notes": Notes("n")})
    said = reason(fast, 1)
    assert said.startswith(
        f"runs in its turn, because audit() at {line_of('    audit([])')} ran before it"
    ), said
    assert "may have changed its argument state['notes']" in said, said


def audit_in_place(state: dict[str, Any]) -> None:
    state["notes"].append("audited")
    AUDIT.append(1)


def changed_in_place(state: dict[str, Any]) -> str:
    opening = llm("opening")
    audit_in_place(state)
    return llm(state["notes"]) + opening


def test_a_call_handed_what_a_helper_changed_in_place_names_that_helper() -> None:
    fast = jitted(changed_in_place, {"notes": ["n"]})
    said = reason(fast, 1)
    first = f"%0 llm ({line_of('opening = llm(')})"
    assert f"depends on {first} in a way no recipe can recompute" in said, said
    assert (
        f"audit_in_place() at {line_of('    audit_in_place(state)')} may have changed it in place" in said
    ), said


def filtered(passages: list[str]) -> tuple[str, str]:
    grades = [judge(p) for p in passages]
    kept = [p for p, g in zip(passages, grades, strict=True) if "3" in g]
    return llm(" ".join(kept)), llm("other")


def test_a_call_handed_a_list_filtered_on_results_names_the_call_it_was_filtered_on() -> None:
    fast = jitted(filtered, ["a", "bb", "c3"])
    said = reason(fast, 3)
    assert f"made under a branch on a result of %0 judge ({line_of('grades = [judge')})" in said, said
    assert reason(fast, 4) == "issued ahead once the inputs are known"


def until_done(q: str) -> str:
    answer = llm(q)
    while "x" not in answer:  # a loop's test on a result (the line the reason names)
        answer = llm(answer + "x")
    return answer


def test_a_call_under_a_loops_test_on_results_names_the_loop() -> None:
    fast = jitted(until_done, "q")
    said = reason(fast, 1)
    assert said.startswith("issued ahead once %0 is known, if bool("), said
    loop = line_of("# a loop's test on a result")
    assert f"(at {loop})" in said, said


def cut(q: str) -> tuple[str, str]:
    try:
        found = {"a": "1"}[q]
    except KeyError:  # an exception no slow call caused: no guard checks it ahead
        found = "?"
    return llm(found), llm("more")


def test_a_cut_off_names_its_branch() -> None:
    fast = jitted(cut, "b")
    said = reason(fast, 0)
    assert said.startswith("runs in its turn, because it comes after a branch no guard can check (the "), said
    assert re.search(rf"branch at {HERE}:\d+ cannot be checked", said), said


# -- the fixes a reason gives free the call ----------------------------------------------------------


def kept(q: str) -> tuple[str, str, list[str]]:
    messages = [q]
    a = llm(messages)
    messages.append(a)  # the function keeps the list it handed over
    return a, llm("side"), messages


def kept_copied(q: str) -> tuple[str, str, list[str]]:
    messages = [q]
    a = llm(list(messages))
    messages.append(a)
    return a, llm("side"), messages


def shared(q: str, history: list[str]) -> tuple[str, str]:
    a = llm(q)
    return a, llm(history)


def shared_copied(q: str, history: list[str]) -> tuple[str, str]:
    a = llm(q)
    return a, llm(list(history))


def test_a_kept_list_is_named_with_the_copy_that_frees_it_and_the_copy_does() -> None:
    said = reason(jitted(kept, "q"), 0)
    assert "is a mutable object the function builds and keeps: hand the call a copy" in said, said
    fast = jitted(kept_copied, "q")
    assert reason(fast, 0) == "issued ahead once the inputs are known"
    llm.reset()
    fast("q")
    assert llm.max_concurrency == 2, fast.explain()
    no_waste(fast)


def test_a_shared_list_is_named_with_the_copy_that_frees_it_and_the_copy_does() -> None:
    said = reason(jitted(shared, "q", ["h"]), 1)
    assert said.startswith("runs in its turn, because argument history holds a list"), said
    assert "hand the call a copy (`list(x)`, `dict(x)`) and it can be issued ahead" in said, said
    fast = jitted(shared_copied, "q", ["h"])
    assert reason(fast, 1) == "issued ahead once the inputs are known"
    llm.reset()
    fast("q", ["h"])
    assert llm.max_concurrency == 2, fast.explain()
    no_waste(fast)


# -- an object a fast constructor made goes to helpers once it is made ---------------------------------


class Client:
    """The team's wrapper: it counts what it sends (so no helper handed it is known to be pure)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.sent = 0

    def ask(self, prompt: str) -> str:
        self.sent += 1
        return str(self.model(prompt))


def ask_twice(client: Client, doc: str) -> str:
    return client.ask(f"outline {doc}") + client.ask(f"keywords {doc}")


def report(topic: str, doc: str) -> str:
    client = Client(llm)
    background = llm(topic)
    return background + ask_twice(client, doc)


def test_a_helper_handed_an_object_made_just_before_is_issued_once_it_is_made() -> None:
    fast = jitted(report, "t", "d")
    said = reason(fast, 2)
    assert said == "issued ahead once %0 is known", fast.explain()
    llm.reset()
    fast("t", "d")
    # the helper's two calls, one after another, run beside the background one
    assert llm.max_concurrency == 2, fast.explain()
    no_waste(fast)


def retarget(client: Client) -> None:
    client.model = judge  # changes the object after it was made


def report_retargeted(topic: str, doc: str) -> str:
    client = Client(model=llm)
    background = judge(topic)
    retarget(client)
    return background + ask_twice(client, doc)


def test_a_helper_handed_an_object_changed_after_it_was_made_waits_its_turn_and_says_why() -> None:
    fast = jitted(report_retargeted, "t", "d")
    said = reason(fast, 2)
    made = f"%0 Client ({line_of('    client = Client(model=llm)')})"
    assert said == (
        f"runs in its turn, because retarget() at {line_of('    retarget(client)')} ran after {made} "
        "and may have changed what it reads of that result"
    ), said
    no_waste(fast)


# -- every reason that points elsewhere names a line, over the legacy pipelines ----------------------

# the kinds whose call was stopped by something other than itself: a branch, a loop, another call
POINTS_ELSEWHERE = {
    RefusalKind.UNDER_RESULT_BRANCH,
    RefusalKind.CONDITION_NOT_COMPUTABLE,
    RefusalKind.AFTER_UNCHECKABLE_BRANCH,
    RefusalKind.HIDDEN_DEPENDENCY,
    RefusalKind.ARGUMENT_CHANGED_BY_HELPER,
    RefusalKind.ITEMS_BY_LENGTH,
    RefusalKind.AFTER_ROUNDS_LOCAL,
    RefusalKind.ROUNDS_DIFFER,
}


def _legacy_runs() -> list[tuple[str, Any, tuple[Any, ...]]]:
    tickets = [{"id": "1", "subject": "s", "body": "b"}, {"id": "2", "subject": "t", "body": "c"}]
    docs = [legacy.Doc(title="t", body="x" * 50), legacy.Doc(title="u", body="y")]
    rag = legacy.RAGPipeline(legacy.Retriever(legacy.search_backend), legacy.LLMClient(legacy.llm))
    return [
        ("agent", legacy.run_agent, ("weather in Paris tomorrow",)),
        ("best of n", legacy.best_of_n, ("q", [legacy.llm, legacy.writer, legacy.checker])),
        ("rank by judge", legacy.rank_by_judge, ("q", ["a", "b", "c"])),
        ("relevant", legacy.answer_from_relevant, ("q", ["[relevant] one", "two", "[relevant] three"])),
        ("map reduce", legacy.map_reduce, (docs,)),
        ("textwrap", legacy.map_reduce_textwrap, ([legacy.Doc(title="t", body="a b c d " * 8)],)),
        ("helper retry", legacy.summarize_with_helper_retry, (["a", "flaky b", "c"],)),
        ("inline retry", legacy.summarize_with_inline_retry, (["a", "flaky", "c"],)),
        ("while retry", legacy.summarize_with_while_retry, (["a", "flaky", "c"],)),
        ("self consistency", legacy.self_consistency, ("q",)),
        ("triage", legacy.triage, (tickets,)),
        ("translate", legacy.translate_and_check, ("hello",)),
        ("balanced", legacy.balanced_summaries, (["a", "b"],)),
        ("audited", legacy.audited_answers, (["q1", "q2"],)),
        ("few shot", legacy.few_shot_classify, (["t1", "t2"],)),
        ("rag", rag.answer, ("the big revenue growth today",)),
        ("moderator", legacy.Moderator(legacy.LLMClient(legacy.llm)).moderate, (["p1", "p2"],)),
        ("summarizer", legacy.Summarizer(legacy.LLMClient(legacy.llm)).summarize_all, (["a", "b"],)),
        ("research agent", legacy.ResearchAgent().run, ("ai",)),
        ("assistant", legacy.Assistant().answer, ("u1", "q")),
    ]


def test_every_reason_that_points_elsewhere_names_a_line() -> None:
    site = re.compile(r"\S+\.py:\d+")
    checked: Counter[RefusalKind] = Counter()
    for name, fn, args in _legacy_runs():
        fast = xcs.jit(fn, min_call_ms=10)
        for _ in range(2):
            fresh_state()
            outcome(fast, *args)  # (the reasons are checked here; the legacy tests compare with plain)
        for cached in fast._plans:
            general = cached.general
            recipes = (
                [*cached.plan.recipes, *(r for loop in general.loops for r in loop.recipes)]
                if general
                else []
            )
            for recipe in recipes or cached.plan.recipes:
                refusal = recipe.refusal
                if refusal is None or refusal.kind not in POINTS_ELSEWHERE:
                    continue
                checked[refusal.kind] += 1
                assert site.search(refusal.text), f"{name}: %{recipe.op.id} {refusal.kind}: {refusal.text}"
    # (the sweep meets most of those kinds: it is no check of nothing)
    assert sum(checked.values()) >= 10 and len(checked) >= 4, checked

"""Lists and dicts the function builds, keeps in a local and hands to a slow call.

A call issued ahead is handed a copy the recipe builds, not the function's own object.  That changes
nothing the function can see when it never reads the local again after the call (`messages = [...]`
then `create(messages=messages)`, each round of a loop building its own): such calls go ahead.  When
it may read it again (a chat history appended to, a handler that logs it, a return), the call waits
its turn.  Every run is compared with the plain one (`likeplain`); nothing is wasted.
"""

from __future__ import annotations

from typing import Any

import xcs_bc as xcs
from likeplain import LATENCY, fresh, no_waste, run_both
from xcs_bc.testing import FakeLLM

chat = FakeLLM("chat", LATENCY)
SYSTEM = "You are terse."


def summarize_each(docs: list[str]) -> list[str]:
    out = []
    for doc in docs:
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": doc}]
        out.append(chat(messages))
    return out


def test_a_list_built_for_the_call_and_never_read_again_goes_ahead() -> None:
    fast = xcs.jit(summarize_each)
    for _ in range(3):
        run_both(summarize_each, fast, [fresh() for _ in range(4)], watch=[chat])
    no_waste(fast)
    chat.reset()
    fast([fresh() for _ in range(4)])
    assert chat.max_concurrency == 4, fast.explain()


def with_history(questions: list[str]) -> list[str]:
    messages = [{"role": "system", "content": SYSTEM}]
    answers = []
    for q in questions:
        messages.append({"role": "user", "content": q})
        answer = chat(messages)
        messages.append({"role": "assistant", "content": answer})
        answers.append(answer)
    return answers


def keeps_and_returns(doc: str) -> tuple[str, list[str]]:
    notes = [doc, doc.upper()]
    return chat(notes), notes


def logs_on_failure(doc: str) -> str:
    prompt = [doc, "be brief"]
    try:
        return chat(prompt)
    except ValueError:
        print(prompt)
        raise


def test_a_list_the_function_may_read_again_waits_its_turn() -> None:
    for fn, make in [
        (with_history, lambda: [fresh("q") for _ in range(3)]),
        (keeps_and_returns, lambda: fresh()),
        (logs_on_failure, lambda: fresh()),
    ]:
        fast = xcs.jit(fn)
        for _ in range(3):
            run_both(fn, fast, make(), watch=[chat])
        no_waste(fast)
        assert fast.stats.served == 0 and "runs in its turn" in fast.explain(), fn.__name__


class Inserting(FakeLLM):
    """A slow call that changes the list it is handed (puts a system message first), as some helpers do."""

    def __call__(self, prompt: object, **kwargs: Any) -> str:
        if isinstance(prompt, list):
            prompt.insert(0, SYSTEM)
        return super().__call__(list(prompt) if isinstance(prompt, list) else prompt, **kwargs)


inserting = Inserting("inserting", LATENCY)


def hands_to_a_changing_callee(docs: list[str]) -> list[str]:
    out = []
    for doc in docs:
        prompt = [doc, "in one line"]
        out.append(inserting(prompt))
    return out


def test_a_callee_that_changes_the_list_it_was_handed_is_made_once_in_its_turn() -> None:
    # the trace saw the list after the callee changed it: no recipe gives it back, none is issued
    fast = xcs.jit(hands_to_a_changing_callee)
    for _ in range(3):
        run_both(hands_to_a_changing_callee, fast, [fresh() for _ in range(3)], watch=[inserting])
    no_waste(fast)
    assert "computed differently than it was passed" in fast.explain()

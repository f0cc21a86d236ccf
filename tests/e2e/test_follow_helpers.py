"""A jitted function follows into the user's helpers: `summarize_all(docs)` called by it makes its
own calls at once (`execute.follow`), on replays and, for helpers called by name, on the first call,
and stays exactly like the plain helper.

Each test runs the plain function and the jitted one on fresh arguments, several times (the first
call is traced, the later ones replay), comparing outcomes and the calls made."""

from __future__ import annotations

import copy
import textwrap
import types
from typing import Any

import pytest

import xcs_bc as xcs
from likeplain import fresh, no_waste, outcome, run_both_fresh
from xcs_bc.execute.follow import Follower
from xcs_bc.observe.hooks import is_observing
from xcs_bc.testing import FakeLLM

llm = FakeLLM("llm", 0.03)
failing = FakeLLM("llm", 0.03, fail_on="boom")


def docs_of(n: int) -> list[str]:
    return [fresh("d") for _ in range(n)]


def runs(fn: Any, make_args: Any, times: int = 4) -> Any:
    """`times` calls of the jitted `fn` on fresh arguments, each compared with the plain one (given
    copies of the same arguments); the jitted function."""
    fast = xcs.jit(fn)
    for _ in range(times):
        args = make_args()
        run_both_fresh(fn, fast, lambda args=args: copy.deepcopy(args), watch=[llm])
    return fast


# -- helpers whose own calls go at once -------------------------------------------------------------


def summarize_all(docs: list[str]) -> list[str]:
    return [llm(f"Summarize: {d}") for d in docs]


def pipeline(docs: list[str]) -> str:
    summaries = summarize_all(docs)
    return llm("Combine: " + " | ".join(summaries))


class Pipe:
    def __init__(self, model: FakeLLM) -> None:
        self.model = model

    def run(self, docs: list[str]) -> str:
        out = []
        for d in docs:
            out.append(self.model(f"Summarize: {d}"))
        return self.model("Combine: " + " | ".join(out))


def method_pipeline(docs: list[str]) -> str:
    return Pipe(llm).run(docs)


def stage(docs: list[str]) -> list[str]:
    return summarize_all([d.upper() for d in docs])


def two_levels(docs: list[str]) -> str:
    return llm("Combine: " + " | ".join(stage(docs)))


def parts_of(doc: str) -> list[str]:
    return [llm(f"Read: {part}") for part in doc.split()]


def issued_ahead(docs: list[str]) -> list[list[str]]:
    return [parts_of(d) for d in docs]


@pytest.mark.parametrize("fn", [pipeline, method_pipeline, two_levels])
def test_a_helper_s_own_calls_go_at_once_on_replays(fn: Any) -> None:
    fast = runs(fn, lambda: (docs_of(5),))
    assert llm.max_concurrency >= 5, fast.explain()
    assert "followed into" in fast.explain()
    no_waste(fast)


def test_helpers_the_replay_issues_ahead_are_followed_on_the_workers() -> None:
    fast = runs(issued_ahead, lambda: ([f"{fresh('a')} {fresh('b')} {fresh('c')}" for _ in range(3)],))
    assert llm.max_concurrency >= 6, fast.explain()
    assert "followed into parts_of, whose own calls replay as:" in fast.explain()


def summarize_doc(doc: str) -> str:
    notes = [llm(f"part {i}: {doc}") for i in range(3)]
    return llm(" | ".join(notes))


def mapped(docs: list[str]) -> list[str]:
    return list(map(summarize_doc, docs))


def test_a_helper_a_map_taken_whole_calls_is_followed_on_the_workers() -> None:
    # `list(map(summarize_doc, docs))`: the map's calls go at once (`execute.fanout`), and each
    # document's own calls at once too: every part of every document in flight together
    fast = runs(mapped, lambda: (docs_of(4),))
    assert llm.max_concurrency >= 12, fast.explain()
    assert "followed into summarize_doc, whose own calls replay as:" in fast.explain()
    no_waste(fast)


def test_the_helper_s_calls_are_counted_in_its_own_explain() -> None:
    fast = runs(pipeline, lambda: (docs_of(4),))
    text = fast.explain()
    helper = text[text.index("followed into summarize_all") :]
    assert "xcs.jit(summarize_all)" in helper and "loop at" in helper, text


# -- helpers with effects: their calls stay exact ------------------------------------------------------

COUNT = 0


def numbered_all(docs: list[str]) -> list[str]:
    global COUNT
    out = []
    for d in docs:
        COUNT += 1
        out.append(llm(f"{COUNT}: {d}"))
    return out


def with_a_global_counter(docs: list[str]) -> list[str]:
    global COUNT
    COUNT = 0
    return numbered_all(docs) + numbered_all(docs)


def appending(docs: list[str], out: list[str]) -> None:
    for d in docs:
        out.append(llm(f"{len(out)}: {d}"))


def with_a_shared_list(docs: list[str]) -> list[str]:
    out: list[str] = []
    appending(docs, out)
    appending(docs[:2], out)
    return out


@pytest.mark.parametrize("fn", [with_a_global_counter, with_a_shared_list])
def test_a_helper_with_effects_makes_the_plain_calls(fn: Any) -> None:
    runs(fn, lambda: (docs_of(4),))


# -- what is not followed ------------------------------------------------------------------------------


class Tree:
    def __init__(self, text: str, children: list[Tree]) -> None:
        self.text = text
        self.children = children


def walk(tree: Tree) -> list[str]:
    return [llm(tree.text), *[answer for child in tree.children for answer in walk(child)]]


def tree() -> Tree:
    return Tree(fresh("root"), [Tree(fresh("a"), [Tree(fresh("aa"), [])]), Tree(fresh("b"), [])])


def ping(n: int) -> list[str]:
    return [llm(f"ping {n}"), *(pong(n - 1) if n else [])]


def pong(n: int) -> list[str]:
    return [llm(f"pong {n}"), *(ping(n - 1) if n else [])]


def test_recursion_is_not_followed() -> None:
    fast = runs(walk, lambda: (tree(),))
    assert "followed into walk" not in fast.explain()


def test_mutual_recursion_is_followed_once_and_no_further() -> None:
    fast = runs(ping, lambda: (3,))
    text = fast.explain()
    assert text.count("followed into pong") == 1 and "followed into ping" not in text, text


def test_a_helper_defined_by_the_function_is_not_followed() -> None:
    def outer(docs: list[str]) -> str:
        def summarize(ds: list[str]) -> list[str]:
            return [llm(d) for d in ds]

        return llm(" | ".join(summarize(docs)))

    fast = runs(outer, lambda: (docs_of(3),))
    assert "followed into" not in fast.explain()


def make_summarizer(style: str) -> Any:
    def summarize(ds: list[str]) -> list[str]:
        return [llm(f"{style}: {d}") for d in ds]

    return summarize


def with_a_closure_made_each_time(docs: list[str]) -> str:
    return llm(" | ".join(make_summarizer("short")(docs)))


def test_a_closure_made_anew_each_call_is_called_as_it_is() -> None:
    fast = runs(with_a_closure_made_each_time, lambda: (docs_of(3),), times=5)
    assert "followed into make_summarizer.<locals>.summarize" not in fast.explain()


def one_call(d: str) -> str:
    return llm(f"Summarize: {d}")


def single(docs: list[str]) -> str:
    return one_call(docs[0]) + one_call(docs[1])


def test_a_helper_making_one_call_and_no_loop_is_called_as_it_is() -> None:
    fast = runs(single, lambda: (docs_of(2),))
    assert "followed into" not in fast.explain()


def test_library_code_generators_and_jitted_functions_are_not_followed() -> None:
    def made(fn: Any, chain: Any) -> Any:
        raise AssertionError(f"followed {fn}")

    def gen(docs: list[str]) -> Any:
        yield from docs

    follower = Follower(made, (single.__code__,))
    jitted = xcs.jit(summarize_all)
    for callee in (textwrap.dedent, gen, jitted, len, llm):
        assert follower(callee) is callee


def chained(d: str) -> str:
    return llm(f"Refine: {llm(f'Draft: {d}')}")


def with_a_chain(docs: list[str]) -> str:
    return chained(docs[0]) + chained(docs[1])


def test_a_helper_whose_calls_each_wait_for_the_one_before_is_called_as_it_is() -> None:
    fast = runs(with_a_chain, lambda: (docs_of(2),))
    assert "followed into chained: its trace found no two calls that could overlap" in fast.explain()


# -- the first call: helpers called by name are followed as the trace runs -----------------------------

helpers_module = types.ModuleType("helpers_module")
helpers_module.summarize_all = summarize_all  # type: ignore[attr-defined]


def through_a_module(docs: list[str]) -> str:
    return llm("Combine: " + " | ".join(helpers_module.summarize_all(docs)))


@pytest.mark.parametrize("fn", [pipeline, two_levels, through_a_module])
def test_the_first_call_follows_a_helper_called_by_name(fn: Any) -> None:
    fast = xcs.jit(fn)
    docs = docs_of(5)
    run_both_fresh(fn, fast, lambda: (list(docs),), watch=[llm])
    assert fast.stats.traces == 1 and fast.stats.replays == 0
    assert llm.max_concurrency >= 4, fast.explain()  # (the helper's first round alone, then the others)
    assert "followed into" in fast.explain()
    run_both_fresh(fn, fast, lambda: (list(docs),), watch=[llm])  # and the replay after it
    assert llm.max_concurrency >= 5, fast.explain()


def summarize_failing(docs: list[str]) -> list[str]:
    return [failing(d) for d in docs]


def outer_failing(docs: list[str]) -> str:
    return failing("Combine: " + " | ".join(summarize_failing(docs)))


def _wasted(fast: Any) -> int:
    return fast.stats.wasted + sum(helper.jitted.stats.wasted for helper in fast._follower.helpers())


def test_a_followed_helper_raising_at_an_item_raises_as_the_plain_one() -> None:
    fast = xcs.jit(outer_failing)
    boom = [*docs_of(2), "boom", *docs_of(2)]
    for docs in (docs_of(3), boom, docs_of(4), ["boom"], [*docs_of(3), "boom"], docs_of(2)):
        failing.reset()
        expected = outcome(outer_failing, list(docs))
        plain = [args for args, _ in failing.calls]
        failing.reset()
        wasted = _wasted(fast)
        assert outcome(fast, list(docs)) == expected
        made = [args for args, _ in failing.calls]
        assert all(call in made for call in plain)
        assert len(made) - len(plain) <= _wasted(fast) - wasted, fast.explain()
        assert not is_observing()
    assert fast.stats.replays >= 3 and "followed into summarize_failing" in fast.explain()


class Stages:
    def __init__(self, model: FakeLLM) -> None:
        self.model = model

    def summarize_all(self, docs: list[str]) -> list[str]:
        return [self.model(f"Summarize: {d}") for d in docs]

    def run(self, docs: list[str]) -> str:
        return self.model("Combine: " + " | ".join(self.summarize_all(docs)))


STAGES = Stages(llm)


def through_an_argument(stages: Stages, docs: list[str]) -> str:
    return stages.run(docs)


def through_a_global_object(docs: list[str]) -> str:
    return STAGES.run(docs)


def through_an_object_it_makes(docs: list[str]) -> str:
    return Stages(llm).run(docs)


@pytest.mark.parametrize(
    ("fn", "make_args"),
    [
        (through_an_argument, lambda: (Stages(llm), docs_of(5))),
        (through_a_global_object, lambda: (docs_of(5),)),
        (through_an_object_it_makes, lambda: (docs_of(5),)),
        (Stages(llm).run, lambda: (docs_of(5),)),  # the jitted method follows into `self.summarize_all`
    ],
    ids=["argument", "global object", "object it makes", "jitted method"],
)
def test_the_first_call_follows_a_method_of_an_object_it_is_handed_holds_or_makes(
    fn: Any, make_args: Any
) -> None:
    fast = xcs.jit(fn)
    for call in range(3):
        args = make_args()
        run_both_fresh(fn, fast, lambda args=args: args, watch=[llm])
        assert llm.max_concurrency >= (4 if call == 0 else 5), (call, fast.explain())
    assert fast.stats.traces == 1 and "followed into Stages." in fast.explain()


def test_the_first_call_follows_the_helpers_its_loops_issue_ahead() -> None:
    fast = xcs.jit(issued_ahead)
    docs = [f"{fresh('a')} {fresh('b')} {fresh('c')}" for _ in range(3)]
    run_both_fresh(issued_ahead, fast, lambda: (list(docs),), watch=[llm])
    # the first round's helper call traced in place, the other two replayed on workers, each with
    # its three calls at once
    assert fast.stats.traces == 1 and llm.max_concurrency >= 6, fast.explain()

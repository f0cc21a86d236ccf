"""Derived arguments: every prompt form of issue 4, planned and served; what must not be lifted runs in place.

Each form is a small legacy function.  It is traced once, then called on fresh inputs: the
result and the calls made must equal the plain function's, every slow call must be served
from a call issued ahead (`in_place == 0`), and the independent ones must overlap
(`max_concurrency`, never timing).  The second half holds expressions that may never be
lifted: a property with a side effect, `next()` on a generator, a mutating method.  Their
calls run in their turn and nothing is called twice.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import BaseModel

import xcs_bc as xcs
from likeplain import fresh, run_both_fresh
from xcs_bc.testing import CallLog, FakeLLM

MIN_MS = 10.0
llm = FakeLLM("llm", 0.03)
judge = FakeLLM("judge", 0.03)
FAKES = (llm, judge)
TEMPLATE = "Translate to {lang}: {text}"
SYSTEM = "You are terse."


def reset() -> None:
    for f in FAKES:
        f.reset()


def same_as_plain(
    fn: Callable[..., Any], fast: Callable[..., Any], make: Callable[[], tuple[Any, ...]]
) -> None:
    """Plain and jitted on equal fresh inputs (copies: a function may change them): equal results and calls."""
    args = make()
    run_both_fresh(fn, fast, lambda: copy.deepcopy(args), watch=FAKES)


# -- forms that are planned and served ----------------------------------------------------------------


@dataclass
class File:
    filename: str
    content: str


class Page(BaseModel):
    title: str
    body: str


def fstring(docs: list[str]) -> list[str]:
    return [llm(f"Summarize: {d!r} ({len(d)} chars)") for d in docs]


def template_format(text: str) -> list[str]:
    return [llm(TEMPLATE.format(lang=lang, text=text)) for lang in ("fr", "de", "es")]


def concatenation(questions: list[str]) -> list[str]:
    return [llm("Q: " + q + "\nA:") for q in questions]


def join_of_results(docs: list[str]) -> str:
    answers = [llm(d) for d in docs]
    return judge("\n".join(answers))


def json_payload(docs: list[str]) -> list[str]:
    return [llm(json.dumps({"doc": d, "n": i})) for i, d in enumerate(docs)]


def chat_messages(docs: list[str]) -> list[str]:
    return [llm([{"role": "system", "content": SYSTEM}, {"role": "user", "content": d}]) for d in docs]


def dataclass_records(files: list[File]) -> list[str]:
    return [llm("{}: {}".format(f.filename, f.content)) for f in files]  # noqa: UP032 - the form users write


def pydantic_records(pages: list[Page]) -> list[str]:
    return [llm(f"# {p.title}\n{p.body}") for p in pages]


def subscripts_and_slices(rows: list[dict[str, str]]) -> list[str]:
    return [llm(row["text"][:5] + str(sorted(row))) for row in rows]


def method_chains(answers: list[str]) -> list[str]:
    # a method called on what a built-in call returned (3.10/3.11 report no such result: recomputed)
    return [
        llm(answers[0].strip().lower()),
        llm(answers[1].split(":")[1].strip()),
        llm(" ".join(answers[2].split()).upper()),
        llm(str(len(answers)).zfill(4)),
    ]


def stdlib_text(text: str) -> list[str]:
    # functions of the standard library known to be pure: regular expressions, text reflowing, bytes
    return [
        llm(re.sub(r"\s+", " ", text)),
        llm(
            textwrap.dedent(f"""
            Answer briefly: {text}
            """).strip()
        ),
        llm(text.encode().hex()),
    ]


def sorted_and_sets(docs: list[str]) -> list[str]:
    # pure calls handed built-in functions (`key=len`) or a set one of them made
    ordered = [llm(d) for d in sorted(docs, key=len)]
    return [*ordered, llm(" ".join(sorted(set(docs[0].split())))), llm(max(docs, key=len).upper())]


def bullets_of_results(docs: list[str]) -> str:
    notes = [llm(d) for d in docs]
    # a join over a generator expression: computed from the items it took, like a list's
    return judge("Combine:\n" + "\n".join(f"- {n.strip()}" for n in notes))


def three_layer_mixture(question: str) -> str:
    proposals = [llm(f"Propose #{k}: {question}") for k in range(4)]
    refined = [judge(f"Aggregate {k}: " + " | ".join(proposals)) for k in range(3)]
    return llm("Final: " + "\n".join(refined))


def docs_of(n: int) -> Callable[[], tuple[Any, ...]]:
    return lambda: ([fresh() for _ in range(n)],)


FORMS: list[tuple[Callable[..., Any], Callable[[], tuple[Any, ...]], int, int]] = [
    # function, fresh arguments, calls per run, calls in flight at once on replay
    (fstring, docs_of(4), 4, 4),
    (template_format, lambda: (fresh("text"),), 3, 3),
    (concatenation, docs_of(3), 3, 3),
    (join_of_results, docs_of(3), 4, 3),
    (json_payload, docs_of(3), 3, 3),
    (chat_messages, docs_of(3), 3, 3),
    (dataclass_records, lambda: ([File(fresh("f"), fresh("c")) for _ in range(3)],), 3, 3),
    (pydantic_records, lambda: ([Page(title=fresh("t"), body=fresh("b")) for _ in range(3)],), 3, 3),
    (subscripts_and_slices, lambda: ([{"text": fresh("row-text"), "id": fresh()} for _ in range(3)],), 3, 3),
    (three_layer_mixture, lambda: (fresh("question"),), 8, 4),
    (stdlib_text, lambda: (f"  {fresh('text')}   spaced  ",), 3, 3),
    (bullets_of_results, docs_of(3), 4, 3),
    (sorted_and_sets, lambda: ([f"{fresh()} b a", f"{fresh()}x y", fresh()],), 5, 5),
    (
        method_chains,
        lambda: ([f" {fresh('A')} ", f"{fresh('key')}: {fresh('v')} ", f" {fresh()}  x "],),
        4,
        4,
    ),
]


@pytest.mark.parametrize(("fn", "make", "n_calls", "overlap"), FORMS, ids=[f[0].__name__ for f in FORMS])
def test_a_derived_form_is_planned_and_served(
    fn: Callable[..., Any], make: Callable[[], tuple[Any, ...]], n_calls: int, overlap: int
) -> None:
    fast = xcs.jit(fn, min_call_ms=MIN_MS)
    same_as_plain(fn, fast, make)  # the trace
    for _ in range(2):
        same_as_plain(fn, fast, make)
        assert max(f.max_concurrency for f in FAKES) == overlap, fast.explain()
    stats = fast.stats
    assert stats.traces == 1 and stats.replays == 2, stats
    assert stats.served == 2 * n_calls and stats.in_place == 0 and stats.wasted == 0, (stats, fast.explain())


def test_the_mixture_of_agents_runs_its_critical_path() -> None:
    """4 proposers at once, then the 3 aggregators at once (each reads every proposal), then the final."""
    fast = xcs.jit(three_layer_mixture, min_call_ms=MIN_MS)
    same_as_plain(three_layer_mixture, fast, lambda: (fresh("question"),))
    same_as_plain(three_layer_mixture, fast, lambda: (fresh("question"),))
    # the aggregators need every proposal, so the three in flight at once were issued when the last came in
    assert llm.max_concurrency == 4 and judge.max_concurrency == 3
    assert fast.stats.served == 8 and fast.stats.in_place == 0


# -- expressions that must not be lifted ------------------------------------------------------------


class Doc:
    """A record whose `summary` is a property with a side effect: it counts its reads."""

    reads = 0

    def __init__(self, text: str) -> None:
        self.text = text

    @property
    def summary(self) -> str:
        Doc.reads += 1
        return self.text[:4]


def through_a_property(docs: list[Doc]) -> list[str]:
    return [llm(d.summary) for d in docs]


def through_next(seed: str) -> list[str]:
    numbers = _counter(seed)
    return [llm(next(numbers)) for _ in range(3)]


def _counter(seed: str) -> Iterator[str]:
    for k in itertools.count():
        yield f"{seed}-{k}"


def through_a_mutating_call(queue: list[str]) -> list[str]:
    out = []
    while queue:
        out.append(llm(queue.pop()))
    return out


def test_a_property_with_a_side_effect_is_read_as_often_as_plain_and_never_lifted() -> None:
    fast = xcs.jit(through_a_property, min_call_ms=MIN_MS)
    for _ in range(3):
        texts = [fresh() for _ in range(3)]
        Doc.reads = 0
        reset()
        expected = through_a_property([Doc(t) for t in texts])
        plain_reads, plain_calls = Doc.reads, CallLog.snapshot(*FAKES)
        Doc.reads = 0
        reset()
        assert fast([Doc(t) for t in texts]) == expected
        assert Doc.reads == plain_reads == 3 and CallLog.snapshot(*FAKES) == plain_calls
    assert fast.stats.served == 0 and fast.stats.wasted == 0, fast.explain()


def test_next_on_a_generator_is_never_lifted() -> None:
    fast = xcs.jit(through_next, min_call_ms=MIN_MS)
    for _ in range(3):
        same_as_plain(through_next, fast, lambda: (fresh("seed"),))
    assert fast.stats.served == 0 and fast.stats.wasted == 0, fast.explain()


def test_a_mutating_call_is_never_lifted() -> None:
    fast = xcs.jit(through_a_mutating_call, min_call_ms=MIN_MS)
    for _ in range(3):
        same_as_plain(through_a_mutating_call, fast, lambda: ([fresh() for _ in range(3)],))
    assert fast.stats.served == 0 and fast.stats.wasted == 0, fast.explain()


# -- closures ---------------------------------------------------------------------------------------


def closure_pipelines() -> tuple[FakeLLM, list[Callable[[list[str]], Any]]]:
    """Generator expressions over closure variables (3.13 gives the closure its own instruction)."""
    model = FakeLLM("model", 0.03)
    prefix = "Summarize"

    def joined(docs: list[str]) -> str:
        return "\n".join(model(f"{prefix}: {d}") for d in docs)

    def listed(docs: list[str]) -> list[str]:
        return list(model(d) for d in docs)

    def summed(docs: list[str]) -> int:
        return sum(len(model(d)) for d in docs)

    return model, [joined, listed, summed]


@pytest.mark.parametrize("index", range(3), ids=["join", "list", "sum"])
def test_a_generator_expression_over_a_closure_variable_is_planned(index: int) -> None:
    model, pipelines = closure_pipelines()
    fn = pipelines[index]
    fast = xcs.jit(fn, min_call_ms=MIN_MS)
    for n in (3, 3, 5):
        docs = [fresh() for _ in range(n)]
        model.reset()
        expected = fn(docs)
        plain_calls = list(model.calls)
        model.reset()
        assert fast(docs) == expected
        assert sorted(map(str, model.calls)) == sorted(map(str, plain_calls))
    assert model.max_concurrency == 5 and fast.stats.traces == 1 and fast.stats.resized == 1, fast.explain()

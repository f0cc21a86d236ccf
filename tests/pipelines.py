"""Example legacy pipelines observed by the tests (line numbers appear in golden dumps: append only)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import xcs_bc as xcs
from xcs_bc.testing import FakeLLM

LATENCY = 0.03  # seconds per fake call
MIN_CALL_MS = 10.0  # glue stays far below this even on a loaded CI machine

llm = FakeLLM("llm", LATENCY)
judge = FakeLLM("judge", LATENCY)
MODELS = [FakeLLM(f"m{i}", LATENCY) for i in range(3)]
TEMPLATE = "Summarize: {}"


def capture(fn, *args):
    """Run fn(*args) with its body captured: the tests capture *inside* the function via a wrapper."""
    with xcs.capture(min_call_ms=MIN_CALL_MS) as cap:
        result = fn(*args)
    return cap, result


def ensemble(prompt, models):
    with xcs.capture(min_call_ms=MIN_CALL_MS) as cap:
        answers = []
        for model in models:
            answers.append(model(prompt))
    return cap, answers


def map_loop(docs):
    with xcs.capture(min_call_ms=MIN_CALL_MS) as cap:
        out = []
        for doc in docs:
            out.append(llm(f"Summarize: {doc}"))
    return cap, out


def comprehensions(docs):
    with xcs.capture(min_call_ms=MIN_CALL_MS) as cap:
        summaries = [llm(doc) for doc in docs]
        by_doc = {doc: judge(doc) for doc in docs}
        total = sum(len(llm(s)) for s in summaries)
    return cap, (summaries, by_doc, total)


def summarize_twice(doc):
    """A helper that makes several slow calls: traced through, or one operation as a leaf."""
    first = llm(doc)
    return llm(first)


def helper_calls(docs, **options):
    with xcs.capture(min_call_ms=MIN_CALL_MS, **options) as cap:
        a = summarize_twice(docs[0])
        b = summarize_twice(docs[1])
    return cap, (a, b)


def judge_containers(question):
    with xcs.capture(min_call_ms=MIN_CALL_MS) as cap:
        a = MODELS[0](question)
        b = MODELS[1](question)
        c = MODELS[2](question)
        pair = (a, b)
        listed = [a, c]
        v1 = judge(pair)
        v2 = judge(listed)
        v3 = judge(f"{b} or {c}?")
    return cap, (v1, v2, v3)


def chain(x):
    with xcs.capture(min_call_ms=MIN_CALL_MS) as cap:
        a = llm(x)
        b = llm(a + "!")
        c = judge(b.upper())
    return cap, c


def branches(x):
    with xcs.capture(min_call_ms=MIN_CALL_MS) as cap:
        verdict = judge(x)
        if "yes" in verdict:  # noqa: SIM108 - legacy code, as written
            extra = llm("expand " + x)
        else:
            extra = llm("other " + x)
        independent = MODELS[0](x)
    return cap, (extra, independent)


def failing(docs, bad):
    failer = FakeLLM("failer", LATENCY, fail_on="boom")
    with xcs.capture(min_call_ms=MIN_CALL_MS) as cap:
        out = [llm(docs[0])]
        out.append(failer(bad))
        out.append(llm(docs[1]))
    return cap, out


class Pipeline:
    def __init__(self, models):
        self.models = models
        self.history = []

    def run(self, question, **options):
        with xcs.capture(min_call_ms=MIN_CALL_MS, **options) as cap:
            drafts = [self.models[k](question) for k in range(len(self.models))]
            self.history.append(drafts[0])
            best = self.pick(drafts)
        return cap, best

    def pick(self, drafts):
        return judge(" | ".join(drafts))


def closures_and_globals(docs, **options):
    prefix = "Q: "

    def ask(doc):  # a closure over `prefix`, and a global `llm`
        return llm(prefix + doc)

    with xcs.capture(min_call_ms=MIN_CALL_MS, **options) as cap:
        first = ask(docs[0])
        second = ask(docs[1])
        merged = judge(TEMPLATE.format(first + second))
    return cap, merged


def build_prompt(doc):
    """A pure prompt builder: reads only its argument and an immutable global."""
    return TEMPLATE.format(doc.strip()) + json.dumps({"n": len(doc)})


_SEEN = []


def remember(doc):
    """Not pure: it changes a global list (a leaf's result depends on everything before it)."""
    _SEEN.append(doc)
    return doc + str(len(_SEEN))


def helpers_purity(docs, **options):
    with xcs.capture(min_call_ms=MIN_CALL_MS, **options) as cap:
        a = llm(build_prompt(docs[0]))
        b = llm(build_prompt(docs[1]))
        c = llm(remember(docs[2]))
    return cap, (a, b, c)


def aliasing(docs):
    with xcs.capture(min_call_ms=MIN_CALL_MS) as cap:
        results = []
        alias = results
        results.append(llm(docs[0]))
        late = judge(str(alias))
    return cap, late


@dataclass
class Doc:
    title: str
    body: str


def records(docs):
    with xcs.capture(min_call_ms=MIN_CALL_MS) as cap:
        titles = [llm(d.title) for d in docs]
        joined = judge("\n".join(titles))
    return cap, joined


def two_maps_then_combine(docs):
    with xcs.capture(min_call_ms=MIN_CALL_MS) as cap:
        summaries = [llm(d) for d in docs]
        keywords = [judge(d) for d in docs]
        combined = llm(str(list(zip(summaries, keywords, strict=True))))
    return cap, combined

"""Benchmark scenarios whose control flow the run decides: a retry loop left by `break`, calls under
branches on results, loops over results, and a loop over what a fast tool not known to be pure
returns.

Imported by `jit_bench.py`, which measures them beside its other rows (and `first_call_bench.py`,
the retry loop).  Every call gets a fresh
input, and the branches go another way from one call to the next (the trace saw one of them).
The hand-written versions wait for each result and then fan out, as a good engineer would.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from xcs_bc.testing import FakeLLM


class Tool(FakeLLM):
    """A slow tool that answers a bool: does the image (after " in ") hold "+<thing>"?  Its calls are
    logged like a FakeLLM's."""

    def __call__(self, prompt: object, **kwargs: Any) -> Any:
        super().__call__(prompt, **kwargs)
        thing, _, image = str(prompt).partition(" in ")
        return f"+{thing}" in image


class Search(FakeLLM):
    """A slow search that answers a list: one hit per "*" in the query."""

    def __call__(self, prompt: object, **kwargs: Any) -> Any:
        super().__call__(prompt, **kwargs)
        return [f"hit {i} for {str(prompt).split(':')[0]}" for i in range(str(prompt).count("*"))]


class Names:
    """A model's structured answer: the names it extracted."""

    def __init__(self, names: list[str]) -> None:
        self.names = names


class Extract(FakeLLM):
    """A slow extraction that answers an object holding a list of names (one per "*")."""

    def __call__(self, prompt: object, **kwargs: Any) -> Any:
        super().__call__(prompt, **kwargs)
        return Names([f"hotel {i}" for i in range(str(prompt).count("*"))])


class Patch:
    """A vision program's image patch: `verify` is a slow model call."""

    def __init__(self, name: str) -> None:
        self.name = name

    def verify(self, question: str) -> bool:
        return bool(verifier(f"{question} {self.name}"))


class Find(FakeLLM):
    """A slow detector that answers a list of patches (one per "*")."""

    def __call__(self, prompt: object, **kwargs: Any) -> Any:
        super().__call__(prompt, **kwargs)
        return [Patch(f"patch {i} of {str(prompt).split(':')[0]}") for i in range(str(prompt).count("*"))]


classifier = FakeLLM("classifier", 0.05)
solver = FakeLLM("solver", 0.05)
combiner = FakeLLM("combine", 0.05)
exists = Tool("exists", 0.05)
search = Search("search", 0.05)
reader = FakeLLM("reader", 0.05)
writer = FakeLLM("writer", 0.05)
extract = Extract("extract", 0.05)
pricer = FakeLLM("pricer", 0.05)
rater = FakeLLM("rater", 0.05)
find = Find("find", 0.05)
verifier = FakeLLM("verifier", 0.05)
summarizer = FakeLLM("summarize", 0.05)
FAKES = [classifier, solver, combiner, exists, search, reader, writer, extract, pricer, rater, find, verifier]
FAKES.append(summarizer)
POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="handwritten-branches")
_counter = itertools.count()


# -- a retry loop per document, left by break once the call returned, then a combine ------------------


def retried(docs):
    notes = []
    for d in docs:
        for _attempt in range(3):
            try:
                notes.append(summarizer(f"Summarize: {d}"))
                break
            except TimeoutError:
                pass
    return combiner("Combine: " + " | ".join(notes))


def retried_pool(docs):
    def summarized(d):
        for _attempt in range(3):
            try:
                return [summarizer(f"Summarize: {d}")]
            except TimeoutError:
                pass
        return []

    notes = [note for found in POOL.map(summarized, docs) for note in found]
    return combiner("Combine: " + " | ".join(notes))


# -- a router: a classifier, then three solvers and a combine, or a single call ------------------------


def router(question):
    kind = classifier(f"Classify: {question}")
    if "math" in kind:
        a = solver(f"Solve with algebra: {question}")
        b = solver(f"Solve with geometry: {question}")
        c = solver(f"Solve with estimation: {question}")
        return combiner(f"Combine: {a} | {b} | {c}")
    return combiner(f"Answer in prose: {kind}")


def router_pool(question):
    kind = classifier(f"Classify: {question}")
    if "math" in kind:
        prompts = [f"Solve with {way}: {question}" for way in ("algebra", "geometry", "estimation")]
        a, b, c = POOL.map(solver, prompts)
        return combiner(f"Combine: {a} | {b} | {c}")
    return combiner(f"Answer in prose: {kind}")


def fresh_questions(first: str = "math") -> Callable[[], str]:
    """The `first` kind (traced), then math, math, prose, math, prose, ...: the branch flips between
    calls.  Traced on "prose", the solvers' arm is one the trace never saw (learned later)."""
    kinds = itertools.chain([first], itertools.cycle(["math", "math", "prose", "math", "prose"]))
    return lambda: f"{next(kinds)} question #{next(_counter)}"


# -- tv and phone: boolean answers decide which checks follow ------------------------------------------


def tv_and_phone(image):
    has_tv = exists(f"television in {image}")
    if not has_tv:
        has_tv = exists(f"tv in {image}")
    has_phone = exists(f"telephone in {image}")
    if not has_phone:
        a = exists(f"cell phone in {image}")
        b = exists(f"mobile phone in {image}")
        c = exists(f"phone in {image}")
        has_phone = a or b or c
    return f"tv: {has_tv}, phone: {has_phone}"


def tv_and_phone_pool(image):
    def tv():
        return exists(f"television in {image}") or exists(f"tv in {image}")

    def phone():
        if exists(f"telephone in {image}"):
            return True
        a, b, c = POOL.map(exists, [f"{p} in {image}" for p in ("cell phone", "mobile phone", "phone")])
        return a or b or c

    has_tv, has_phone = POOL.submit(tv), POOL.submit(phone)
    return f"tv: {has_tv.result()}, phone: {has_phone.result()}"


def fresh_images(first: str = "+tv +cell phone") -> Callable[[], str]:
    """Images whose objects change every call, so each branch goes both ways; the `first` is traced.
    Traced on "+television +telephone", both arms with calls are ones the trace never saw."""
    cycle = ["+tv +cell phone", "+television +telephone", "", "+tv +mobile phone", "+phone"]
    contents = itertools.chain([first], itertools.cycle(cycle[1:] + cycle[:1]))
    return lambda: f"image #{next(_counter)} {next(contents)}"


def tv_and_phone_guess_pool(image):
    """tv/phone by a hand who guesses: every check at once, then the same answers from them."""
    things = ("television", "tv", "telephone", "cell phone", "mobile phone", "phone")
    television, tv, telephone, cell, mobile, phone = POOL.map(exists, [f"{t} in {image}" for t in things])
    return f"tv: {television or tv}, phone: {telephone or cell or mobile or phone}"


# -- an or-chain of checks, each one made only when the ones before it said no -----------------------


def knife_block(image):
    return (
        exists(f"knife block in {image}")
        or exists(f"knife rack in {image}")
        or exists(f"knife set in {image}")
    )


def knife_block_pool(image):
    """The or-chain by a hand who guesses: the three checks at once, the first yes wins."""
    answers = POOL.map(exists, [f"{t} in {image}" for t in ("knife block", "knife rack", "knife set")])
    return any(answers)


def fresh_kitchens() -> Callable[[], str]:
    """Kitchens holding no knife holder (traced: every check made), a rack, a block, a set, none."""
    contents = itertools.cycle(["", "+knife rack", "+knife block", "+knife set", "", "+knife rack"])
    return lambda: f"kitchen #{next(_counter)} {next(contents)}"


# -- loops over results: lists whose length changes on every call ------------------------------------


def fresh_queries() -> Callable[[], str]:
    """Queries whose search finds 4, 6, 2, 5, 0, 3 hits (the trace sees 4)."""
    counts = itertools.cycle([4, 6, 2, 5, 0, 3])
    return lambda: f"query #{next(_counter)}: {'*' * next(counts)}"


def research(query):
    hits = search(query)
    notes = [reader(f"Read {h} for: {query}") for h in hits]
    return writer("Write up:\n" + "\n".join(notes))


def research_pool(query):
    hits = search(query)
    notes = list(POOL.map(lambda h: reader(f"Read {h} for: {query}"), hits))
    return writer("Write up:\n" + "\n".join(notes))


def aspects(query):
    notes = []
    for h in search(query):
        for aspect in ("cost", "risk"):
            notes.append(reader(f"The {aspect} in {h}"))
    return writer("\n".join(notes))


def aspects_pool(query):
    prompts = [f"The {aspect} in {h}" for h in search(query) for aspect in ("cost", "risk")]
    return writer("\n".join(POOL.map(reader, prompts)))


def best_hotel(listing):
    answer = extract(f"Names in: {listing}")
    best, best_score = None, -1
    for name in answer.names:
        price = pricer(f"Price of {name}")
        rating = rater(f"Rating of {name}")
        score = len(rating) - len(price)
        if score > best_score:
            best, best_score = name, score
    return writer(f"Recommend {best}")


def best_hotel_pool(listing):
    answer = extract(f"Names in: {listing}")
    prices = POOL.map(pricer, [f"Price of {name}" for name in answer.names])
    ratings = POOL.map(rater, [f"Rating of {name}" for name in answer.names])
    best, best_score = None, -1
    for name, price, rating in zip(answer.names, prices, ratings, strict=True):
        score = len(rating) - len(price)
        if score > best_score:
            best, best_score = name, score
    return writer(f"Recommend {best}")


def brown_horse(image):
    patches = find(f"{image}: horse")
    if len(patches) == 0:
        return verifier(f"Is there a brown horse in {image}?")
    found = "no"
    for patch in patches:
        if patch.verify("Is it brown?"):
            found = "yes"
    return found


def brown_horse_pool(image):
    patches = find(f"{image}: horse")
    if len(patches) == 0:
        return verifier(f"Is there a brown horse in {image}?")
    return "yes" if any(list(POOL.map(lambda p: p.verify("Is it brown?"), patches))) else "no"


# -- a fast tool reading mutable state (not pure), then one call per item of its list ------------------

CALENDAR: dict[str, list[str]] = {}  # day -> what is on it: the state the tool reads


class Event:
    def __init__(self, title: str, description: str) -> None:
        self.title = title
        self.description = description


def get_day_calendar_events(day):  # fast, and not known to be pure: it reads CALENDAR
    return [Event(f"event {i}", text) for i, text in enumerate(CALENDAR.get(day, []))]


def agenda(day):
    events = get_day_calendar_events(day)
    result = ""
    idx = 1
    if len(events) > 0:
        for event in events:
            s = summarizer("Summarize: {}".format(event.description))  # noqa: UP032 - legacy code
            result = result + "\n{}. {}: {}".format(idx, event.title, s)  # noqa: UP032
            idx = idx + 1
    return result


def agenda_pool(day):
    events = get_day_calendar_events(day)
    result = ""
    if len(events) > 0:
        summaries = POOL.map(lambda event: summarizer(f"Summarize: {event.description}"), events)
        for idx, (event, s) in enumerate(zip(events, summaries, strict=True), 1):
            result = result + f"\n{idx}. {event.title}: {s}"
    return result


def fresh_days() -> Callable[[], str]:
    """Days with 4, 6, 2, 5, 0, 3 events (the trace sees 4), put on the calendar as the day is made."""
    counts = itertools.cycle([4, 6, 2, 5, 0, 3])

    def make() -> str:
        day = f"day #{next(_counter)}"
        CALENDAR[day] = [f"meeting {i} on {day}" for i in range(next(counts))]
        return day

    return make

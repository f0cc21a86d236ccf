"""A loop over a generator of the user's whose body is pure but for its `yield`s (`for c in
chunks(doc, 500)`) walks the list of its items, which recipes compute again from the generator's
arguments: its later rounds go ahead on the first call, and every round at once on replays, at any
length.  The run's own generator is still the one the loop consumes; the listed items are used only
to issue calls ahead, which the run takes only where its arguments are equal.

Each test compares outcomes and calls with the plain run's (`likeplain.run_both_fresh`)."""

from __future__ import annotations

from typing import Any

import pytest

import xcs_bc as xcs
from likeplain import fresh, no_waste, run_both_fresh
from xcs_bc.build.purity import pure_generator
from xcs_bc.testing import FakeLLM

llm = FakeLLM("llm", 0.03)
SIZE = 12


def doc_of(pieces: int) -> str:
    return "".join(fresh("p").ljust(SIZE, ".")[:SIZE] for _ in range(pieces))


# -- generators of the user's --------------------------------------------------------------------------


def chunks(text: str, size: int = SIZE) -> Any:
    for start in range(0, len(text), size):
        yield text[start : start + size]


def paragraphs(text: str) -> Any:
    for part in text.split("\n\n"):
        part = part.strip()
        if part:
            yield part


class Splitter:
    """A method of an object a global holds."""

    def __init__(self, size: int) -> None:
        self.size = size

    def split(self, text: str) -> Any:
        for start in range(0, len(text), self.size):
            yield text[start : start + self.size]


SPLITTER = Splitter(SIZE)


# -- shapes whose rounds go ahead -----------------------------------------------------------------------


def summarize(doc: str) -> str:
    notes = []
    for c in chunks(doc):
        notes.append(llm(f"Summarize: {c}"))
    return llm(" | ".join(notes))


def comprehension(doc: str) -> list[str]:
    return [llm(c) for c in chunks(doc, SIZE)]


def enumerated(doc: str) -> list[str]:
    return [llm(f"part {i}: {c}") for i, c in enumerate(chunks(doc), start=1)]


def zipped(doc: str) -> list[str]:
    styles = ["short", "long", "formal", "plain", "brief", "full", "terse", "loose"]
    return [llm(f"{s}: {c}") for s, c in zip(styles, chunks(doc), strict=False)]


def listed_first(doc: str) -> list[str]:
    pieces = list(chunks(doc))
    return [llm(p) for p in pieces]


def through_a_method(doc: str) -> list[str]:
    return [llm(p) for p in SPLITTER.split(doc)]


def by_keyword(doc: str) -> list[str]:
    return [llm(c) for c in chunks(doc, size=SIZE)]


@pytest.mark.parametrize(
    "fn", [summarize, comprehension, enumerated, zipped, listed_first, through_a_method, by_keyword]
)
def test_a_loop_over_a_pure_generator_goes_ahead_on_the_first_call_and_on_replays(fn: Any) -> None:
    fast = xcs.jit(fn)
    for call, n in enumerate([4, 6, 3, 5]):
        doc = doc_of(n)
        run_both_fresh(fn, fast, lambda doc=doc: (doc,), watch=[llm])
        # the first call: round 1 alone, then the others at once; replays: every round at once
        assert llm.max_concurrency >= (n - 1 if call == 0 else n), (call, fast.explain())
    assert fast.stats.traces == 1, fast.explain()
    assert "list(" in fast.explain(), fast.explain()
    no_waste(fast)


def test_paragraphs_of_a_document_are_summarized_at_once() -> None:
    def per_paragraph(text: str) -> list[str]:
        return [llm(p) for p in paragraphs(text)]

    fast = xcs.jit(per_paragraph)
    for n in (3, 5, 4):
        text = "\n\n".join(f"  {fresh('para')}  " for _ in range(n)) + "\n\n\n"
        run_both_fresh(per_paragraph, fast, lambda text=text: (text,), watch=[llm])
    assert llm.max_concurrency >= 4, fast.explain()
    no_waste(fast)


# -- shapes that stay exact (and, where the listed items would be stale, one call at a time) --------------


LOG: list[str] = []


def logged(xs: list[str]) -> Any:
    for x in xs:
        LOG.append(x)  # an effect: not a pure generator
        yield x


def effectful(docs: list[str]) -> list[str]:
    LOG.clear()
    return [llm(d + str(len(LOG))) for d in logged(docs)]


def each(xs: list[str]) -> Any:
    yield from xs


def grows_under_it(docs: list[str]) -> list[str]:
    out = []
    for d in each_item(docs):
        out.append(llm(d))
        if len(docs) < 6:
            docs.append(f"extra {len(docs)} {d}")  # the generator reads docs lazily: it sees them
    return out


def each_item(xs: list[str]) -> Any:
    for x in xs:  # noqa: UP028 - a pure generator (`yield from` is not listed)
        yield x


SUFFIX = "a"


def suffixed(xs: list[str]) -> Any:
    for x in xs:
        yield x + SUFFIX


def rebinds_what_it_reads(docs: list[str]) -> list[str]:
    global SUFFIX
    SUFFIX = "a"
    out = []
    for d in suffixed(docs):
        out.append(llm(d))
        SUFFIX += "b"  # read by the generator's next item
    return out


class Box:
    def __init__(self, items: list[str]) -> None:
        self.items = items

    def each(self) -> Any:
        for x in self.items:  # noqa: UP028 - a pure generator (`yield from` is not listed)
            yield x


def changes_what_it_holds(box: Box) -> list[str]:
    out = []
    for d in box.each():
        out.append(llm(d))
        if len(box.items) < 6:
            box.items.append(f"more {len(box.items)} {d}")
    return out


def counter(start: int) -> Any:
    n = start
    while True:  # endless: the loop leaves it by break
        yield n
        n += 1


def overlapping(text: str, size: int = 8, overlap: int = 2) -> Any:
    start = 0
    while start < len(text):
        yield text[start : start + size]
        start += size - overlap


def by_windows(docs: list[str]) -> list[str]:
    return [llm(w) for w in overlapping(" ".join(docs))]


def endless(docs: list[str]) -> list[str]:
    out = []
    for i in counter(0):
        if i >= len(docs):
            break
        out.append(llm(docs[i]))
    return out


def reciprocal(xs: list[int]) -> Any:
    for x in xs:
        yield str(100 // x)


def raising_at_an_item(xs: list[int]) -> list[str]:
    return [llm(v) for v in reciprocal(xs)]


def kept_and_advanced(docs: list[str]) -> list[str]:
    gen = each_item(docs)
    title = next(gen)  # consumed elsewhere too: not a generator the loop takes at once
    return [llm(title + d) for d in gen]


def delegating(docs: list[str]) -> list[str]:
    return [llm(d) for d in each(docs)]


@pytest.mark.parametrize(
    "fn",
    [effectful, grows_under_it, rebinds_what_it_reads, endless, by_windows, kept_and_advanced, delegating],
)
def test_other_generators_keep_their_calls_exact(fn: Any) -> None:
    fast = xcs.jit(fn)
    for n in (3, 5, 4, 5):
        docs = [fresh("d") for _ in range(n)]
        run_both_fresh(fn, fast, lambda docs=docs: (list(docs),), watch=[llm])
    no_waste(fast)
    # a loop whose listed items went stale under it is told as such (nothing issued ahead from it on),
    # not taken for a loop of a new length on every call
    assert fast.stats.guard_misses == 0, fast.explain()


def test_a_change_of_what_a_generator_s_object_holds_keeps_the_calls_exact() -> None:
    fast = xcs.jit(changes_what_it_holds)
    for n in (3, 5, 4):
        docs = [fresh("d") for _ in range(n)]
        run_both_fresh(changes_what_it_holds, fast, lambda docs=docs: (Box(list(docs)),), watch=[llm])
    no_waste(fast)
    assert fast.stats.guard_misses == 0, fast.explain()


def test_a_generator_raising_at_an_item_raises_as_in_the_plain_run() -> None:
    fast = xcs.jit(raising_at_an_item)
    for xs in ([4, 5, 2], [3, 1, 0, 7], [5, 2, 4, 1], [1, 0], [2, 2, 2, 5, 4]):
        run_both_fresh(raising_at_an_item, fast, lambda xs=xs: (list(xs),), watch=[llm])
    no_waste(fast)


def test_which_generators_are_pure() -> None:
    assert pure_generator(chunks) and pure_generator(paragraphs) and pure_generator(SPLITTER.split)
    assert not pure_generator(counter)  # a `while` loop: it may spin without yielding
    assert not pure_generator(overlapping)  # (the same: listed ahead, it could run past a `break`)
    assert not pure_generator(logged)  # changes a global
    assert not pure_generator(each)  # `yield from`: what it delegates to could be anything
    assert not pure_generator(summarize)  # not a generator
    assert not pure_generator(x for x in ())  # a generator, not a function


def test_a_generator_yielding_without_end_is_not_listed() -> None:
    from xcs_bc.build.generators import MAX_ITEMS, items_of

    assert items_of(counter, (0,), {}) is None  # (were it listed: it gives up past MAX_ITEMS)
    assert items_of(chunks, ("abcdef", 2), {}) == ["ab", "cd", "ef"]
    assert items_of(reciprocal, ([1, 0],), {}) is None  # raises: the run's generator raises in its turn
    assert MAX_ITEMS >= 10_000

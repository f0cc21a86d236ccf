"""Loops over results: round k of a loop over a sequence that depends on results is issued once the
sequence is known and has more than k items; never a call the plain run does not make.

Each test compares the plain and the jitted function on fresh inputs whose result lists are empty,
shorter and longer than the traced one (`likeplain`); `stats.wasted` and `stats.mispredictions`
stay 0.
"""

from __future__ import annotations

import pytest

import xcs_bc as xcs
from likeplain import LATENCY, Tool, fresh, no_waste, run_both
from xcs_bc.testing import FakeLLM


def hits_of(prompt: str) -> list[str]:
    """One hit per "*" in the prompt."""
    return [f"hit{i} of {prompt.split()[0]}" for i in range(prompt.count("*"))]


class Answer:
    """A model's structured answer: a list inside an object."""

    def __init__(self, names: list[str]) -> None:
        self.names = names


search = Tool("search", hits_of)
extract = Tool("extract", lambda prompt: Answer(hits_of(prompt)))
reader, writer, pricer = FakeLLM("reader", LATENCY), FakeLLM("writer", LATENCY), FakeLLM("pricer", LATENCY)
LENGTHS = ["***", "***", "*****", "*", "", "**", "***"]


def research(q: str) -> str:
    hits = search(q)
    notes = [reader(f"Read {h} for: {q}") for h in hits]
    return writer("\n".join(notes))


def test_search_then_read_every_hit_replays_like_plain_for_any_number_of_hits() -> None:
    fast = xcs.jit(research)
    for stars in LENGTHS:
        run_both(research, fast, f"{fresh('q')} {stars}", watch=[search, reader, writer])
    no_waste(fast)
    assert fast.stats.traces == 1


def test_every_read_runs_at_once_however_many_hits_come() -> None:
    fast = xcs.jit(research)
    fast(f"{fresh('q')} ***")
    for stars in ["*****", "**", "*******"]:
        reader.reset()
        fast(f"{fresh('q')} {stars}")
        assert reader.max_concurrency == len(stars)  # issued together once the hits arrived
    text = fast.explain()
    assert "issued ahead once %0 is known, if len(%0) > 2" in text
    assert "any number of items" in text
    assert fast.stats.in_place == 3  # only the writers, after the loop


def indexed_reads(q: str) -> list[str]:
    hits = search(q)
    notes = []
    for i in range(len(hits)):  # the index loop LLM-written code often has
        notes.append(reader(f"{i}: {hits[i]}"))
    return notes


def test_a_loop_over_the_indices_of_a_result_runs_at_once_for_any_length() -> None:
    fast = xcs.jit(indexed_reads)
    for stars in LENGTHS:
        run_both(indexed_reads, fast, f"{fresh('q')} {stars}", watch=[search, reader])
    no_waste(fast)
    reader.reset()
    fast(f"{fresh('q')} ******")
    assert reader.max_concurrency == 6, fast.explain()
    assert "if len(range(len(%0))) > 2" in fast.explain()


def checked_reads(q: str) -> list[str]:
    out = []
    for i, h in enumerate(search(q)):
        verdict = reader(f"Relevant ({i})? {h}")
        if "hit3" not in verdict:  # a branch on each round's own result (round 3 goes the other way)
            out.append(pricer(f"Summarize {h}"))
    return out


def test_rounds_beyond_the_traced_ones_keep_their_own_branches() -> None:
    fast = xcs.jit(checked_reads)
    for stars in ["**", "**", "*****", "***", "", "******"]:
        run_both(checked_reads, fast, f"{fresh('q')} {stars}", watch=[search, reader, pricer])
    no_waste(fast)
    assert "any number of items" in fast.explain()


def names_then_two_calls(listing: str) -> list[str]:
    answer = extract(f"Names in: {listing}")
    out = []
    for i, name in enumerate(answer.names):
        price = pricer(f"Price of {name}")
        rating = reader(f"Rating of {name} ({i})")
        out.append(f"{price} {rating}")
    return out


def test_a_list_inside_a_models_answer_with_two_calls_a_round() -> None:
    fast = xcs.jit(names_then_two_calls)
    for stars in LENGTHS:
        run_both(names_then_two_calls, fast, f"{fresh('l')} {stars}", watch=[extract, pricer, reader])
    no_waste(fast)


def nested(q: str) -> list[str]:
    out = []
    for h in search(q):
        for aspect in ("cost", "risk"):
            out.append(reader(f"{aspect} of {h}"))
    return out


def test_two_aspects_per_hit_replay_like_plain() -> None:
    fast = xcs.jit(nested)
    for stars in LENGTHS:
        run_both(nested, fast, f"{fresh('q')} {stars}", watch=[search, reader])
    no_waste(fast)


def derived(q: str) -> list[str]:
    text = writer(q)
    parts = text.split("*")[:4]
    return [reader(p) for p in parts if p]


def test_a_loop_over_a_form_derived_from_a_result_replays_like_plain() -> None:
    fast = xcs.jit(derived)
    for stars in LENGTHS:
        run_both(derived, fast, f"{fresh('q')} {stars}", watch=[writer, reader])
    no_waste(fast)


def best_hit(q: str) -> str:
    best, score = "", -1
    for h in search(q):
        verdict = reader(f"Score {h}")
        if len(verdict) > score:
            best, score = h, len(verdict)
    return writer(f"Best: {best}")


def test_a_running_best_replays_like_plain() -> None:
    fast = xcs.jit(best_hit)
    for stars in LENGTHS:
        run_both(best_hit, fast, f"{fresh('q')} {stars}", watch=[search, reader, writer])
    no_waste(fast)


def changes_its_hits(q: str) -> list[str]:
    hits = search(q)
    out = []
    for h in hits:
        r = reader(h)
        if "hit0" in h and len(hits) < 4:
            hits.append(f"more {q}")  # the loop walks further than the result's length
        out.append(r)
    return out


def test_a_result_list_changed_in_place_during_the_loop() -> None:
    fast = xcs.jit(changes_its_hits)
    for stars in ["**", "**", "***", "", "*", "****", "**"]:
        run_both(changes_its_hits, fast, f"{fresh('q')} {stars}", watch=[search, reader])
    no_waste(fast)


def filtered(q: str) -> list[str]:
    kept = [h for h in search(q) if "1" not in h]  # built here: its length is the function's doing
    return [reader(h) for h in kept]


def test_a_loop_over_a_list_the_function_filtered_is_never_guessed() -> None:
    fast = xcs.jit(filtered)
    for stars in ["***", "***", "**", "*****", ""]:
        run_both(filtered, fast, f"{fresh('q')} {stars}", watch=[search, reader])
    no_waste(fast)


def test_a_round_that_raises_raises_at_the_same_point() -> None:
    failing = FakeLLM("failing", LATENCY, fail_on="hit2 ")

    def reads(q: str) -> list[str]:
        return [failing(f"{h} read") for h in search(q)]

    fast = xcs.jit(reads)
    for stars in ["*", "*", "***", "**", "***"]:  # the last round raises: nothing is issued past it
        run_both(reads, fast, f"{fresh('q')} {stars}", watch=[search, failing])
    no_waste(fast)


def test_rounds_issued_past_one_that_raises_are_counted_as_wasted() -> None:
    # the design limit of issuing ahead (docs/jit.md): the plain run stops at the round that raises,
    # the rounds after it were issued when the hits arrived
    failing = FakeLLM("failing", LATENCY, fail_on="hit0 of boom")

    def reads(q: str) -> list[str]:
        return [failing(f"{h} read") for h in search(q)]

    fast = xcs.jit(reads)
    fast(f"{fresh('ok')} ***")  # traced: three rounds
    failing.reset()
    with pytest.raises(Exception, match="hit0 of boom"):
        fast("boom ***")
    assert failing.call_count - 1 == fast.stats.wasted  # the plain run makes one call; the rest are counted


def test_two_aspects_per_hit_run_at_once_beyond_the_traced_hits() -> None:
    fast = xcs.jit(nested)
    fast(f"{fresh('q')} ***")
    reader.reset()
    fast(f"{fresh('q')} *****")
    assert reader.max_concurrency == 10  # five hits, two aspects each, once the hits arrived
    assert fast.stats.in_place == 0


class Patch:
    """A vision program's image patch: `verify` is a slow model call made through the patch."""

    def __init__(self, name: str) -> None:
        self.name = name

    def verify(self, question: str) -> str:
        return reader(f"{question} {self.name}")


finder = Tool("finder", lambda prompt: [Patch(hit) for hit in hits_of(prompt)])


def brown_horse(image: str) -> str:
    patches = finder(image)
    if len(patches) == 0:
        return writer(f"Is there a brown horse in {image}?")
    found = "no"
    for patch in patches:
        if "brown" in patch.verify("Is it brown?"):
            found = "yes"
    return found


def test_find_then_verify_every_patch_replays_like_plain() -> None:
    fast = xcs.jit(brown_horse)
    for stars in LENGTHS:
        run_both(brown_horse, fast, f"{fresh('img')} {stars}", watch=[finder, reader, writer])
    no_waste(fast)
    reader.reset()
    fast(f"{fresh('img')} ******")
    assert reader.max_concurrency == 6

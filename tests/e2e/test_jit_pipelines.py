"""xcs.jit on realistic legacy pipelines (tests/pipelines_legacy.py), compared with the plain code.

Each pipeline runs plainly and jitted on the same fresh inputs, call after call: results (or the
exception: type, message and the pipeline frames it went through), the multiset of calls every
fake received, and `stats.wasted` must agree with the plain run.  Parallelism is read from the
fakes' `max_concurrency` in each replay, and from `fast.stats`.

Tests marked `xfail(strict=True)` state what the library should do and does not today:
- "WRONG:" the jitted pipeline differs from the plain one (result, calls made, or wasted > 0);
- "MISSED:" it behaves like the plain one, but runs in turn calls a careful engineer expects to
  overlap; the reason quotes `fast.explain()`.  The test next to it asserts today's behaviour.
"""

from __future__ import annotations

import functools
import threading
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import openai
import pytest

import pipelines_legacy as legacy
import xcs_bc as xcs
from openai_server import FakeOpenAIServer
from xcs_bc.testing import FakeLLM

MIN_MS = 10.0  # the fakes take 25 ms; glue stays far below 10 ms

# -- the harness ---------------------------------------------------------------------------------------


def calls_of(*fakes: Any) -> Counter[tuple[str, str, str]]:
    """Every call the fakes received, as a multiset of (fake, arguments, keyword arguments)."""
    out: Counter[tuple[str, str, str]] = Counter()
    for fake in fakes:
        for args, kwargs in fake.calls:
            out[(fake.__name__, repr(args), repr(sorted(kwargs.items())))] += 1
    return out


def outcome(fn: Callable[..., Any], *args: Any) -> tuple[Any, ...]:
    """What a call did: ("returned", value) or ("raised", type, message, the pipeline frames it left)."""
    try:
        return ("returned", fn(*args))
    except Exception as exc:  # noqa: BLE001 - compared with the jitted run's
        frames = [
            (frame.name, frame.lineno)
            for frame in traceback.extract_tb(exc.__traceback__)
            if frame.filename == legacy.__file__
        ]
        return ("raised", type(exc), str(exc), frames)


@dataclass
class Round:
    """One call of the pipeline: plainly, then jitted, on the same inputs and starting state."""

    plain: tuple[Any, ...]
    fast: tuple[Any, ...]
    plain_calls: Counter[Any]
    fast_calls: Counter[Any]
    concurrency: dict[str, int]  # each fake's max_concurrency during the jitted call


def fresh_state() -> None:
    for fake in legacy.ALL_FAKES:
        fake.reset()
    legacy.embed.cache_clear()
    legacy.METRICS.clear()
    legacy._ROTATION["next"] = 0


def rounds(
    fn: Callable[..., Any],
    fast: Callable[..., Any],
    inputs: Sequence[tuple[Any, ...]],
    reset: Callable[[], None] = lambda: None,
) -> list[Round]:
    """Run every input plainly, then jitted, from the same state; the first jitted call traces."""
    out = []
    for args in inputs:
        fresh_state()
        reset()
        plain = outcome(fn, *args)
        plain_calls = calls_of(*legacy.ALL_FAKES)
        fresh_state()
        reset()
        got = outcome(fast, *args)
        fast_calls = calls_of(*legacy.ALL_FAKES)
        concurrency = {fake.__name__: fake.max_concurrency for fake in legacy.ALL_FAKES}
        out.append(Round(plain, got, plain_calls, fast_calls, concurrency))
    return out


def assert_like_plain(runs: list[Round], fast: Any) -> None:
    """Same result or exception, same calls, nothing made ahead that the plain run did not need."""
    for number, run in enumerate(runs, 1):
        assert run.fast == run.plain, f"call {number}: the jitted result differs\n{fast.explain()}"
        extra, missing = run.fast_calls - run.plain_calls, run.plain_calls - run.fast_calls
        assert not extra and not missing, f"call {number}: extra calls {extra}, missing calls {missing}"
    assert fast.stats.wasted == 0, fast.explain()


# The first jitted call is the trace: a loop over three items makes its first round's call alone,
# then the two later rounds' at once (`execute.first`).
FIRST = 2


def peak(runs: list[Round], name: str) -> list[int]:
    """A fake's max_concurrency in each jitted call (the first one is the trace, see FIRST)."""
    return [run.concurrency[name] for run in runs]


def jit(fn: Callable[..., Any]) -> Any:
    return xcs.jit(fn, min_call_ms=MIN_MS)


@dataclass(eq=False)
class Played:
    """A jitted pipeline and its rounds, shared by the test of today's behaviour and its MISSED twin."""

    fast: Any
    runs: list[Round]


def played(make: Callable[[], Played]) -> Callable[[], Played]:
    """Play a scenario once per session (it takes a second), whichever of its tests asks first."""
    return functools.cache(make)


def wrong(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, raises=AssertionError, reason=f"WRONG: {reason}")


def missed(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, raises=AssertionError, reason=f"MISSED: {reason}")


def chunks(tag: str, n: int) -> list[legacy.Chunk]:
    return [legacy.Chunk(f"{tag}-{i}", f"passage {i} of {tag}", 0.9 - i / 10) for i in range(n)]


def rag() -> legacy.RAGPipeline:
    return legacy.RAGPipeline(legacy.Retriever(legacy.search_backend), legacy.LLMClient(legacy.llm))


# -- 1. class-based RAG --------------------------------------------------------------------------------


def test_rag_over_given_chunks_reads_them_in_parallel() -> None:
    pipeline = rag()
    fast = jit(pipeline.answer_over)
    inputs = [("q1", chunks("a", 3)), ("q2", chunks("b", 3)), ("q3", chunks("c", 5)), ("q4", chunks("d", 2))]
    runs = rounds(pipeline.answer_over, fast, inputs)
    assert_like_plain(runs, fast)
    # every chunk's read overlaps the others; the synthesis (a bullet list made by a generator
    # expression) is issued once they are all in on the traced length, and runs in its turn on the
    # others (the bullet list's items are not instantiated for another length)
    assert peak(runs, "llm") == [FIRST, 3, 5, 2]
    assert fast.stats.traces == 1 and fast.stats.resized == 2
    assert fast.stats.served == 3 + 1 + 5 + 2 and fast.stats.in_place == 2


@played
def rag_with_retriever() -> Played:
    pipeline = rag()
    fast = jit(pipeline.answer)
    # the backend finds one passage per word longer than three letters: three each time
    inputs = [
        ("the big revenue growth today",),
        ("why did costs rise so much",),
        ("our new plan for next year",),
    ]
    return Played(fast, rounds(pipeline.answer, fast, inputs))


def test_rag_with_its_retriever_makes_no_extra_call_when_the_hit_count_changes() -> None:
    pipeline = rag()
    fast = jit(pipeline.answer)
    # the backend finds one passage per word longer than three letters: 3, then 4, then 2, then 4
    inputs = [
        ("the big revenue growth today",),
        ("explain costs margins trend",),
        ("growth plans",),
        ("tell team about revenue",),
    ]
    assert_like_plain(rounds(pipeline.answer, fast, inputs), fast)


def test_rag_with_its_retriever_reads_the_retrieved_chunks_in_parallel() -> None:
    # the loop over the retriever's hits: each round is issued once the hits arrive, if len(hits) > k
    fast, runs = rag_with_retriever().fast, rag_with_retriever().runs
    assert_like_plain(runs, fast)
    assert peak(runs, "llm")[1:] == [3, 3]
    assert "if len(%0) > 2" in fast.explain()


# -- 2. an agent's tool fan-out --------------------------------------------------------------------------


@played
def agent_three_steps() -> Played:
    fast = jit(legacy.run_agent)
    inputs = [("paris weather today",), ("rome prices now",), ("oslo rain week",)]  # three steps each
    return Played(fast, rounds(legacy.run_agent, fast, inputs))


def test_agent_makes_no_extra_call_when_the_plan_has_more_steps() -> None:
    # the writer reads what the loop's rounds appended: it waits for the real run, however many steps
    fast = jit(legacy.run_agent)
    inputs = [("paris weather today",), ("rome prices now",), ("oslo rain week ahead",)]
    assert_like_plain(rounds(legacy.run_agent, fast, inputs), fast)


def test_agent_tools_run_in_parallel() -> None:
    # the loop over json.loads(%0)['steps']: each step's tool is issued once the plan arrives
    fast, runs = agent_three_steps().fast, agent_three_steps().runs
    assert_like_plain(runs, fast)
    assert peak(runs, "tools")[1:] == [3, 3]


# -- 3. a judge over candidates ----------------------------------------------------------------------


def test_best_of_n_judges_every_candidate_at_once() -> None:
    models = [FakeLLM(f"model{i}", legacy.LATENCY) for i in range(4)]
    fast = jit(legacy.best_of_n)
    inputs = [("q1", models[:3]), ("q2", models[:3]), ("q3", models), ("q4", models[:2])]
    runs = rounds(legacy.best_of_n, fast, inputs, reset=lambda: [m.reset() for m in models])
    assert_like_plain(runs, fast)
    # each verdict goes as soon as its candidate is in; on the first call, the first verdict alone,
    # then the others at once (a loop over the list of candidates the function built)
    assert peak(runs, "judge") == [2, 3, 4, 2]
    assert fast.stats.traces == 1 and fast.stats.resized == 2
    # (a verdict goes once its candidate is in, unless the real run gets there first: in place)
    assert fast.stats.served + fast.stats.in_place == 7 + 9 + 5 and fast.stats.in_place >= 3


@missed(
    "`sorted(candidates, key=lambda c: parse_score(judge(...)))` is one slow call of sorted(): "
    "explain() says 'sorted ... runs in its turn, because argument candidates holds a list, which the "
    "function shares'; the judge calls inside the key function are never issued ahead"
)
def test_rank_by_judge_in_a_sort_key_runs_the_judges_in_parallel() -> None:
    fast = jit(legacy.rank_by_judge)
    inputs = [("q1", ["a", "b", "c"]), ("q2", ["d", "e", "f"]), ("q3", ["g", "h", "i"])]
    runs = rounds(legacy.rank_by_judge, fast, inputs)
    assert_like_plain(runs, fast)
    assert peak(runs, "judge")[1:] == [3, 3]


# -- 4. relevance filtering before answering ---------------------------------------------------------------


def test_relevance_filter_grades_in_parallel_when_the_same_passages_pass() -> None:
    fast = jit(legacy.answer_from_relevant)
    inputs = [
        ("q1", ["[relevant] a", "b", "[relevant] c"]),
        ("q2", ["[relevant] d", "e", "[relevant] f"]),
        ("q3", ["[relevant] g", "h", "[relevant] i"]),
    ]
    runs = rounds(legacy.answer_from_relevant, fast, inputs)
    assert_like_plain(runs, fast)
    assert peak(runs, "grader") == [FIRST, 3, 3]
    # the answer reads the passages the grades kept: it runs in its turn, never built ahead from the
    # trace's grades (plan._unread_deps)
    assert fast.stats.served == 6 and fast.stats.in_place == 2


def test_relevance_filter_makes_no_extra_call_when_other_passages_pass() -> None:
    fast = jit(legacy.answer_from_relevant)
    inputs = [
        ("q1", ["[relevant] a", "b", "[relevant] c"]),
        ("q2", ["d", "[relevant] e", "f"]),
        ("q3", ["[relevant] g", "[relevant] h", "i"]),
    ]
    assert_like_plain(rounds(legacy.answer_from_relevant, fast, inputs), fast)


# -- 5. map-reduce over chunked documents ---------------------------------------------------------------


def docs(tag: str, *words: int) -> list[legacy.Doc]:
    return [
        legacy.Doc(title=f"{tag}{k}", body=" ".join(f"{tag}{k}w{i}" for i in range(n)))
        for k, n in enumerate(words)
    ]


def test_map_reduce_replays_the_same_shape_in_parallel_and_retraces_others() -> None:
    fast = jit(legacy.map_reduce)
    # 2 + 1 pieces, twice; then 3 + 1 + 1 pieces, three times
    inputs = [(docs("a", 8, 4),), (docs("b", 8, 4),)] + [(docs(tag, 12, 3, 5),) for tag in "cde"]
    runs = rounds(legacy.map_reduce, fast, inputs)
    assert_like_plain(runs, fast)
    peaks = peak(runs, "llm")
    # a plan's first replay compiles its recipes one by one while it issues them (see the next
    # tests), so its first calls may have returned before its last ones start.  The first call of
    # each shape: 2 pieces a document leave nothing to issue ahead; with 3, each document's last 2
    # go at once (its inner loop walks the document's own pieces, so the documents go one by one)
    assert peaks[0] == 1 and peaks[2] == 2 and peaks[1] >= 2 and peaks[3] >= 2
    assert peaks[4] == 5  # the pieces of every document at once
    assert fast.stats.traces == 2 and fast.stats.guard_misses == 1 and fast.stats.wasted == 0


@missed(
    "a loop inside a loop keeps exact-length guards: a new set of documents whose chunk counts differ "
    "is a guard miss and a new trace ('guard miss, traced again: len(range(0, len(docs[0].body), size)) "
    "== 2 (at ...), but got 1'), every time, so with real documents the jitted function only ever traces: "
    "it is never faster, and slower than plain by the tracing cost (it never gives up tracing, since "
    "each trace makes a plan that issues calls)"
)
def test_map_reduce_replays_documents_of_new_lengths_without_tracing() -> None:
    fast = jit(legacy.map_reduce)
    inputs = [(docs("a", 8, 4),), (docs("b", 5, 9),), (docs("c", 12, 3, 5),)]
    runs = rounds(legacy.map_reduce, fast, inputs)
    assert_like_plain(runs, fast)
    assert fast.stats.traces == 1 and fast.stats.replays == 2


@missed(
    "a plan's first replay compiles each recipe's Slice (slices._assemble -> bytecode.to_code) lazily "
    "in Replay._issue, one after another on the caller's thread, between submissions; and each piece's "
    "recipe embeds the whole comprehension `pieces` (its prompt reads `len(pieces)` and `pieces[n]`, "
    "kept as `len(list(<every piece's slice>))` and `list(<every piece's slice>)[n]`), so recipes grow "
    "with the pieces (O(n^2) per document), share no shape, and 20 pieces are issued over more time "
    "than a call takes (with 5 documents of ~10 pieces, Replay.start() took 0.9 s on 3.12 and 1.8 s "
    "on 3.10: that replay was slower than the plain call on 3.10)"
)
def test_map_reduce_first_replay_reads_every_piece_at_once() -> None:
    fast = jit(legacy.map_reduce)
    runs = rounds(legacy.map_reduce, fast, [(docs("f", 40, 40),), (docs("g", 40, 40),)])  # 10 + 10 pieces
    assert_like_plain(runs, fast)
    assert peak(runs, "llm") == [1, 20]


def test_map_reduce_with_textwrap_reads_pieces_in_parallel() -> None:
    fast = jit(legacy.map_reduce_textwrap)
    inputs = [(docs("a", 8, 4),), (docs("b", 8, 4),), (docs("c", 8, 4),)]
    runs = rounds(legacy.map_reduce_textwrap, fast, inputs)
    assert_like_plain(runs, fast)
    # (textwrap.wrap is known to be pure) every piece of both documents at once: 2 + 1 pieces
    assert peak(runs, "llm")[1:] == [3, 3]


# -- 6. retries ------------------------------------------------------------------------------------------


def test_retrying_helper_is_correct_and_parallel_when_a_first_attempt_times_out() -> None:
    fast = jit(legacy.summarize_with_helper_retry)
    inputs = [(["a", "b", "c"],), (["d", "flaky e", "f"],), (["g", "h", "flaky i", "j"],)]
    runs = rounds(legacy.summarize_with_helper_retry, fast, inputs)
    assert_like_plain(runs, fast)
    assert peak(runs, "flaky") == [FIRST, 3, 4]  # the retry happens inside the helper, on its thread
    # (the writer goes ahead once the summaries are in, unless the real run gets there first)
    assert fast.stats.served + fast.stats.in_place == 4 + 5 and fast.stats.served >= 3 + 4
    assert fast.stats.resized == 1


@wrong(
    "inherent to issuing ahead (documented as stats.wasted): when one document's retries are "
    "exhausted the plain run raises there and never asks for the documents after it, but their calls "
    "were issued at the start of the replay"
)
def test_retrying_helper_makes_no_call_the_plain_run_did_not_when_retries_run_out() -> None:
    fast = jit(legacy.summarize_with_helper_retry)
    inputs = [(["a", "b", "c"],), (["d", "down e", "f"],)]
    runs = rounds(legacy.summarize_with_helper_retry, fast, inputs)
    assert runs[1].plain[:3] == ("raised", RuntimeError, "gave up after 3 attempts")
    assert_like_plain(runs, fast)


def test_retry_loop_in_the_pipeline_asks_each_document_once_per_attempt() -> None:
    """A retry made by `while True: try: ... break / except TimeoutError` visits its call site once more
    than the plan counted: the retry of 'flaky e' is made in place, and the call issued for 'f' waits
    for the next visit (before, it was taken for a misprediction: wasted, and 'f' asked twice)."""
    fast = jit(legacy.summarize_with_while_retry)
    inputs = [(["a", "b", "c"],), (["d", "flaky e", "f"],), (["g", "flaky h", "i"],)]
    assert_like_plain(rounds(legacy.summarize_with_while_retry, fast, inputs), fast)
    assert fast.stats.wasted == 0 and fast.stats.served >= 4


def test_retry_with_for_break_summarizes_documents_in_parallel() -> None:
    """`for attempt in range(3): try: ...; break` leaves its loop in the first round, and no result
    decides that (a guard checks that range(3) has an item): every document's call goes at once on
    replays, for any number of documents; the retry of "flaky e" is made in its turn."""
    fast = jit(legacy.summarize_with_inline_retry)
    inputs = [(["a", "b", "c"],), (["d", "flaky e", "f"],), (["g", "h", "i", "j"],)]
    runs = rounds(legacy.summarize_with_inline_retry, fast, inputs)
    assert_like_plain(runs, fast)
    assert peak(runs, "flaky")[2] == 4
    assert fast.stats.traces == 1 and fast.stats.wasted == 0 and fast.stats.mispredictions == 0


# -- 7. self-consistency -----------------------------------------------------------------------------------


def test_self_consistency_samples_at_once_for_any_n() -> None:
    fast = jit(legacy.self_consistency)
    inputs = [("q1", 5), ("q2", 5), ("q3", 3), ("q4", 7)]
    runs = rounds(legacy.self_consistency, fast, inputs)
    assert_like_plain(runs, fast)
    assert peak(runs, "sampler") == [4, 5, 3, 7]  # (the first call: 1 sample, then the other 4 at once)
    assert fast.stats.traces == 1 and fast.stats.served == 15 and fast.stats.resized == 2


# -- 8. logging, metrics and accumulators in the glue ------------------------------------------------------


def ticket(n: int) -> dict[str, str]:
    return {"id": f"T-{n}", "subject": f"subject {n}", "body": f"body of ticket {n}"}


def test_triage_with_logging_and_metrics_classifies_at_once() -> None:
    fast = jit(legacy.triage)
    inputs = [
        ([ticket(1), ticket(2), ticket(3)],),
        ([ticket(4), ticket(5), ticket(6)],),
        ([ticket(7), ticket(8)],),
        ([ticket(9), ticket(10), ticket(11), ticket(12)],),
    ]
    runs = rounds(legacy.triage, fast, inputs)
    assert_like_plain(runs, fast)
    # the first call: one round alone, then the other two at once (`METRICS.append` changes a list no
    # call reads; `by_label.setdefault(...).append` a list the function made)
    assert peak(runs, "classifier") == [FIRST, 3, 2, 4]
    assert fast.stats.traces == 1 and fast.stats.served == 9
    assert fast.stats.in_place == 3  # the digest: by_label was changed in place (setdefault)


# -- 9. methods, a cached embedding, a prompt generator, any() over judges ------------------------------


@played
def moderator() -> Played:
    service = legacy.Moderator(legacy.LLMClient(legacy.llm))
    fast = jit(service.moderate)
    inputs = [(["p1", "p2", "p3"],), (["p4", "p5", "p4"],), (["p6", "p7", "p8"],)]
    return Played(fast, rounds(service.moderate, fast, inputs))


def test_moderator_embeds_at_once_and_calls_the_cache_once_per_text() -> None:
    fast, runs = moderator().fast, moderator().runs
    assert_like_plain(runs, fast)
    assert peak(runs, "embedder") == [1, 2, 3]  # "p4" twice: the second hits the cache, as plainly
    assert peak(runs, "judge") == [1, 1, 1]  # (`any()` over the rules: it may stop at any of them)


def test_moderator_asks_about_every_post_at_once() -> None:
    # the prompts come from a generator method whose body is pure (`for prompt in
    # self._prompts(posts)`): the loop walks the list of its items
    fast, runs = moderator().fast, moderator().runs
    assert_like_plain(runs, fast)
    assert peak(runs, "llm") == [2, 3, 3]  # (the first call: the first post alone, then the other two)


# -- 10. service objects with state ------------------------------------------------------------------------


def test_chat_session_keeps_its_memory_like_the_plain_one() -> None:
    session = legacy.ChatSession(legacy.LLMClient(legacy.llm))
    twin = legacy.ChatSession(legacy.LLMClient(legacy.llm))
    fast = jit(session.reply)
    for message in ["hi", "how are you", "tell me more", "bye"]:
        fresh_state()
        expected = outcome(twin.reply, message)
        plain_calls = calls_of(legacy.llm)
        fresh_state()
        assert outcome(fast, message) == expected
        assert calls_of(legacy.llm) == plain_calls
        assert session.memory == twin.memory
    assert fast.stats.wasted == 0 and fast.stats.served == 0  # sequential by nature


@played
def summarizer() -> Played:
    service = legacy.Summarizer(legacy.LLMClient(legacy.llm))
    fast = jit(service.summarize_all)
    inputs = [(["a", "b", "c"],), (["d", "e", "f"],), (["g", "h", "i"],)]
    result = Played(fast, rounds(service.summarize_all, fast, inputs))
    assert service.requests == 18  # 9 documents, plainly and jitted
    return result


def test_summarizer_counting_its_requests_summarizes_at_once() -> None:
    # (`self.requests += 1` sets that one attribute: `self.client` reads as it was)
    fast, runs = summarizer().fast, summarizer().runs
    assert_like_plain(runs, fast)
    assert peak(runs, "llm")[1:] == [3, 3]


def test_agent_steps_sharing_state_through_self_give_the_plain_result() -> None:
    agent = legacy.ResearchAgent()
    fast = jit(agent.run)
    inputs = [("solar",), ("wind",), ("tidal",)]
    runs = rounds(agent.run, fast, inputs, reset=lambda: setattr(agent, "notes", []))
    assert_like_plain(runs, fast)


def test_assistant_never_sends_a_request_with_the_previous_profile() -> None:
    assistant = legacy.Assistant()
    fast = jit(assistant.answer)
    inputs = [("u1", "q1"), ("u2", "q2"), ("u3", "q3")]
    reset = lambda: setattr(assistant, "profile", {"name": "guest", "tier": "free"})  # noqa: E731
    assert_like_plain(rounds(assistant.answer, fast, inputs, reset=reset), fast)


# -- 11. translation fan-out with back-translation checks ------------------------------------------------------


@played
def translations() -> Played:
    fast = jit(legacy.translate_and_check)
    return Played(
        fast, rounds(legacy.translate_and_check, fast, [("hello",), ("good morning",), ("thanks",)])
    )


def test_translations_go_at_once() -> None:
    fast, runs = translations().fast, translations().runs
    assert_like_plain(runs, fast)
    assert peak(runs, "llm") == [FIRST, 3, 3]


def test_back_translations_overlap() -> None:
    # `translations.items()` has as many items as the dict has keys (the constant LANGUAGES): its
    # values are results, but the loop's length is no branch on them
    fast, runs = translations().fast, translations().runs
    assert_like_plain(runs, fast)
    assert peak(runs, "checker")[1:] == [3, 3]


# -- 12. round-robin over regional endpoints ------------------------------------------------------------------


def test_round_robin_sends_each_request_to_one_region() -> None:
    # `rotate_region()` (fast) moves the index in `_ROTATION`, a global dict: its bytecode names it
    # (purity.module_state), so the regional client read from it after the call is read in its turn
    fast = jit(legacy.balanced_summaries)
    inputs = [(["a", "b"],), (["c", "d"],), (["e", "f"],), (["g", "h", "i"],)]
    assert_like_plain(rounds(legacy.balanced_summaries, fast, inputs), fast)
    assert fast.stats.wasted == 0 and fast.stats.mispredictions == 0, fast.explain()


# -- 13. numbered requests for the audit log ---------------------------------------------------------------


def test_audited_answers_send_each_request_once() -> None:
    fast = jit(legacy.audited_answers)
    inputs = [(["a", "b", "c"],), (["d", "e", "f"],), (["g", "h", "i"],)]
    reset = lambda: setattr(legacy, "_REQUEST_NO", 100)  # noqa: E731
    assert_like_plain(rounds(legacy.audited_answers, fast, inputs, reset=reset), fast)


# -- 14. few-shot classification ---------------------------------------------------------------------------


@played
def few_shot() -> Played:
    fast = jit(legacy.few_shot_classify)
    inputs = [(["x", "y", "z"],), (["u", "v", "w"],), (["a", "b", "c"],)]
    return Played(fast, rounds(legacy.few_shot_classify, fast, inputs))


def test_few_shot_classification_classifies_at_once() -> None:
    # the few-shot block is `'\n'.join(f'...' for ex in EXAMPLES)`: a join of every item of a
    # generator expression, which a recipe computes from the items
    fast, runs = few_shot().fast, few_shot().runs
    assert_like_plain(runs, fast)
    assert peak(runs, "classifier")[1:] == [3, 3]


# -- 15. the real openai client against the local server -------------------------------------------------------


class InFlight:
    """Requests the openai client has in flight (its HTTP client's event hooks), and the most at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.max = 0

    def request(self, request: Any) -> None:
        with self.lock:
            self.now += 1
            self.max = max(self.max, self.now)

    def response(self, response: Any) -> None:
        with self.lock:
            self.now -= 1

    def reset(self) -> None:
        with self.lock:
            self.max = self.now


@dataclass(eq=False)
class OpenAIRig:
    server: FakeOpenAIServer
    client: openai.OpenAI
    flight: InFlight

    def requests(self, start: int) -> Counter[str]:
        return Counter(repr(request) for request in self.server.requests[start:])


@pytest.fixture(scope="module")
def rig() -> Iterator[OpenAIRig]:
    flight = InFlight()
    hooks = {"request": [flight.request], "response": [flight.response]}
    with FakeOpenAIServer(latency=legacy.LATENCY) as server:
        http = openai.DefaultHttpxClient(event_hooks=hooks)
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0, http_client=http)
        try:
            yield OpenAIRig(server, client, flight)
        finally:
            client.close()


def openai_rounds(
    rig: OpenAIRig, fn: Callable[..., Any], fast: Callable[..., Any], inputs: Sequence[tuple[Any, ...]]
) -> list[int]:
    """Plain then jitted on each input; same answers and requests; the most requests in flight."""
    peaks = []
    for args in inputs:
        start = rig.server.count
        expected = outcome(fn, *args)
        plain_requests = rig.requests(start)
        start = rig.server.count
        rig.flight.reset()
        assert outcome(fast, *args) == expected
        assert rig.requests(start) == plain_requests
        peaks.append(rig.flight.max)
    assert fast.stats.wasted == 0  # type: ignore[attr-defined]
    return peaks


def test_openai_rag_over_chunks_reads_them_in_parallel(rig: OpenAIRig) -> None:
    pipeline = legacy.RAGPipeline(legacy.Retriever(legacy.search_backend), legacy.OpenAIChat(rig.client))
    fast = jit(pipeline.answer_over)
    inputs = [("q1", chunks("a", 3)), ("q2", chunks("b", 3)), ("q3", chunks("c", 4))]
    assert openai_rounds(rig, pipeline.answer_over, fast, inputs) == [FIRST, 3, 4]
    # (the synthesis too on the traced length, see test_rag_over_given_chunks_reads_them_in_parallel)
    assert fast.stats.traces == 1 and fast.stats.served == 3 + 1 + 4


def test_openai_self_consistency_samples_at_once(rig: OpenAIRig) -> None:
    fast = jit(legacy.openai_self_consistency)
    inputs = [(rig.client, "q1", 3), (rig.client, "q2", 3), (rig.client, "q3", 5)]
    # the first call: 1 sample, then the other 2 at once
    assert openai_rounds(rig, legacy.openai_self_consistency, fast, inputs) == [2, 3, 5]
    assert fast.stats.traces == 1 and fast.stats.resized == 1


@functools.cache
def openai_messages_variable(rig: OpenAIRig) -> list[int]:
    fast = jit(legacy.openai_summarize)
    inputs = [(rig.client, ["a", "b", "c"]), (rig.client, ["d", "e", "f"]), (rig.client, ["g", "h", "i"])]
    return openai_rounds(rig, legacy.openai_summarize, fast, inputs)


def test_openai_messages_variable_summarizes_at_once(rig: OpenAIRig) -> None:
    # the quickstart style `messages = [...]; client.chat.completions.create(messages=messages)`: the
    # list is kept in a local, but never read again after the call (each round builds its own)
    assert openai_messages_variable(rig)[1:] == [3, 3]

"""Legacy LLM pipelines, written the way teams write them (not shaped for xcs_bc).

`tests/e2e/test_jit_pipelines.py` runs each one plainly and through `xcs.jit` and compares
results, exceptions and the calls the fakes received.  The slow calls are the fakes below:
`FakeLLM`s, `ScriptedLLM`s whose answers look like what the glue parses (JSON plans,
"Score: 7/10" verdicts, labels, "yes"/"no" grades), a `FlakyLLM` that times out, and a few
`@slow` tools.  The OpenAI-style pipelines take an `openai.OpenAI` client.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import textwrap
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from xcs_bc.testing import FakeLLM

LATENCY = 0.025  # seconds per fake call

logger = logging.getLogger("legacy.pipelines")


# -- fakes whose answers the glue parses ------------------------------------------------------------


class ScriptedLLM(FakeLLM):
    """A FakeLLM whose answer is `respond(prompt, kwargs)`: deterministic, shaped like the real thing."""

    def __init__(self, name: str, respond: Any, latency: float = LATENCY) -> None:
        super().__init__(name, latency)
        self.respond = respond

    def render(self, prompt: object, kwargs: dict[str, Any]) -> str:
        return str(self.respond(str(prompt), kwargs))


def _digest(text: str) -> int:
    """A small deterministic number from a text (hash() is salted per process)."""
    return sum(text.encode()) % 97


def _plan_for(prompt: str, kwargs: dict[str, Any]) -> str:
    """The planner's JSON: one step per word of the task after "Task:" (tools taken in turn)."""
    task = prompt.split("Task:", 1)[-1].split()
    names = ["search", "calculator", "weather"]
    steps = [{"tool": names[i % 3], "args": {"query": word}} for i, word in enumerate(task)]
    return json.dumps({"thought": f"I need {len(steps)} tools", "steps": steps})


def _verdict_for(prompt: str, kwargs: dict[str, Any]) -> str:
    return f"The answer is plausible. Score: {_digest(prompt) % 10 + 1}/10"


def _grade_for(prompt: str, kwargs: dict[str, Any]) -> str:
    return "yes, relevant" if "[relevant]" in prompt else "no"


def _label_for(prompt: str, kwargs: dict[str, Any]) -> str:
    labels = ["billing", "bug", "feature", "other"]
    return f"{labels[_digest(prompt) % 4]}: confidence {(_digest(prompt) % 50) / 50:.2f}"


def _sample_for(prompt: str, kwargs: dict[str, Any]) -> str:
    answer = ["42", "41", "42", "43", "42"][kwargs.get("seed", 0) % 5]
    return f"Let me think... ANSWER: {answer}"


def _hits_for(prompt: str, kwargs: dict[str, Any]) -> str:
    """A search backend: one hit per word of the query longer than three letters."""
    words = [word for word in prompt.split(":", 1)[-1].split() if len(word) > 3]
    hits = [
        {"doc_id": f"doc-{w}", "text": f"passage about {w}", "score": 0.9 - i / 20}
        for i, w in enumerate(words)
    ]
    return json.dumps(hits)


llm = FakeLLM("llm", LATENCY)
writer = FakeLLM("writer", LATENCY)
checker = FakeLLM("checker", LATENCY)
embedder = FakeLLM("embedder", LATENCY)
planner = ScriptedLLM("planner", _plan_for)
judge = ScriptedLLM("judge", _verdict_for)
grader = ScriptedLLM("grader", _grade_for)
classifier = ScriptedLLM("classifier", _label_for)
sampler = ScriptedLLM("sampler", _sample_for)
search_backend = ScriptedLLM("search", _hits_for)


tool_backend = FakeLLM("tools", LATENCY)  # the team's tool service: one endpoint, many tools


def web_search(query: str) -> str:
    return tool_backend(f"search: {query}")


def calculator(query: str) -> str:
    return tool_backend(f"calculate: {query}")


def weather(query: str) -> str:
    return tool_backend(f"weather: {query}")


TOOLS = {"search": web_search, "calculator": calculator, "weather": weather}


class FlakyLLM(FakeLLM):
    """Times out the first time it sees a prompt containing "flaky", and always on "down"."""

    def __init__(self, name: str, latency: float = LATENCY) -> None:
        super().__init__(name, latency)
        self._seen: set[str] = set()
        self._seen_lock = threading.Lock()

    def __call__(self, prompt: object, **kwargs: Any) -> str:
        answer = super().__call__(prompt, **kwargs)
        with self._seen_lock:
            first = str(prompt) not in self._seen
            self._seen.add(str(prompt))
        if ("flaky" in str(prompt) and first) or "down" in str(prompt):
            raise TimeoutError(f"{self.name}: request timed out")
        return answer

    def reset(self) -> None:
        super().reset()
        with self._seen_lock:
            self._seen.clear()


flaky = FlakyLLM("flaky")
REGION_CLIENTS = [FakeLLM(f"region{i}", LATENCY) for i in range(3)]
ALL_FAKES: list[Any] = [
    llm, writer, checker, embedder, planner, judge, grader, classifier, sampler, search_backend, flaky,
    tool_backend, *REGION_CLIENTS,
]  # fmt: skip


# -- 1. class-based RAG --------------------------------------------------------------------------


@dataclass
class Chunk:
    doc_id: str
    text: str
    score: float = 0.0
    tags: list[str] = field(default_factory=list)


CHUNK_PROMPT = (
    "You are a careful analyst.\n"
    "Source: {source} (relevance {score:.2f})\n"
    "Passage: {text}\n\n"
    "Question: {question}\n"
    "Extract the facts that answer the question."
)


class Retriever:
    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def search(self, query: str, min_score: float = 0.5) -> list[Chunk]:
        hits = json.loads(self.backend(f"search: {query}"))
        return [Chunk(h["doc_id"], h["text"], h["score"]) for h in hits if h["score"] >= min_score]


class LLMClient:
    """The team's thin wrapper around their provider's SDK."""

    def __init__(self, fake: Any) -> None:
        self.fake = fake

    def complete(self, prompt: str, max_tokens: int = 256) -> str:
        return self.fake(prompt, max_tokens=max_tokens)


class RAGPipeline:
    """Retrieve, read every chunk, synthesize: the textbook RAG service object."""

    def __init__(self, retriever: Retriever, client: Any) -> None:
        self.retriever = retriever
        self.llm = client

    def answer(self, question: str) -> str:
        chunks = self.retriever.search(question)
        notes = []
        for chunk in chunks:
            prompt = CHUNK_PROMPT.format(
                source=chunk.doc_id, score=chunk.score, text=chunk.text, question=question
            )
            notes.append(self.llm.complete(prompt))
        context = "\n\n".join(notes)
        return self.llm.complete(f"Answer '{question}' using only these notes:\n{context}", max_tokens=512)

    def answer_over(self, question: str, chunks: list[Chunk]) -> str:
        """The same reading and synthesis, over chunks the caller already retrieved."""
        notes = []
        for chunk in chunks:
            prompt = CHUNK_PROMPT.format(
                source=chunk.doc_id, score=chunk.score, text=chunk.text, question=question
            )
            notes.append(self.llm.complete(prompt))
        context = "\n".join(f"- {n}" for n in notes)
        return self.llm.complete(f"Answer '{question}' using only these notes:\n{context}", max_tokens=512)


# -- 2. an agent's tool fan-out -------------------------------------------------------------------

PLAN_PROMPT = "You can use the tools {tools}. Reply with JSON.\nTask: {task}"


def run_agent(task: str) -> str:
    raw = planner(PLAN_PROMPT.format(tools=", ".join(sorted(TOOLS)), task=task))
    plan = json.loads(raw)
    logger.info("plan: %s", plan["thought"])
    observations = []
    for step in plan["steps"]:
        tool = TOOLS[step["tool"]]
        result = tool(**step["args"])
        observations.append(f"{step['tool']}({step['args']['query']}) -> {result}")
    return writer(f"Task: {task}\nObservations:\n" + "\n".join(observations))


# -- 3. a judge over candidates --------------------------------------------------------------------

SCORE_RE = re.compile(r"Score:\s*(\d+)/10")


def parse_score(text: str) -> int:
    match = SCORE_RE.search(text)
    return int(match.group(1)) if match else 0


def best_of_n(question: str, models: list[Any]) -> tuple[str, int]:
    candidates = [model(f"Q: {question}\nA:") for model in models]
    scores = {}
    for cand in candidates:
        verdict = judge(f"Rate this answer to '{question}' from 1 to 10:\n{cand}")
        scores[cand] = parse_score(verdict)
    best = max(candidates, key=lambda c: scores[c])
    ranked = sorted(candidates, key=scores.get, reverse=True)
    logger.debug("ranking: %s", ranked)
    return writer(f"Polish this answer: {best}"), scores[best]


def rank_by_judge(question: str, candidates: list[str]) -> list[str]:
    """The one-liner version: the judge is called from sort's key function."""
    return sorted(
        candidates,
        key=lambda c: parse_score(judge(f"Rate this answer to '{question}' from 1 to 10:\n{c}")),
        reverse=True,
    )


# -- 4. relevance filtering before answering (corrective RAG) ----------------------------------------


def answer_from_relevant(question: str, passages: list[str]) -> str:
    grades = [grader(f"Is this passage relevant to '{question}'? yes/no\n{p}") for p in passages]
    relevant = [p for p, g in zip(passages, grades) if g.startswith("yes")]  # noqa: B905 - legacy code
    logger.info("%d of %d passages kept", len(relevant), len(passages))
    return llm(f"Answer '{question}' from:\n" + "\n".join(relevant))


# -- 5. map-reduce over chunked documents --------------------------------------------------------


class Doc(BaseModel):
    title: str
    body: str


def map_reduce(docs: list[Doc], size: int = 24) -> str:
    partials = []
    for doc in docs:
        pieces = [doc.body[i : i + size] for i in range(0, len(doc.body), size)]
        for n, piece in enumerate(pieces):
            partials.append(llm(f"[{doc.title} part {n + 1}/{len(pieces)}] Extract key facts:\n{piece}"))
    return writer("Combine these facts into one brief:\n" + "\n".join(partials))


def map_reduce_textwrap(docs: list[Doc], size: int = 24) -> str:
    partials = []
    for doc in docs:
        for piece in textwrap.wrap(doc.body, size):
            partials.append(llm(f"[{doc.title}] Extract key facts:\n{piece}"))
    return writer("Combine these facts into one brief:\n" + "\n".join(partials))


# -- 6. retries ----------------------------------------------------------------------------------


def complete_with_retry(prompt: str, retries: int = 3) -> str:
    for attempt in range(retries):
        try:
            return flaky(prompt)
        except TimeoutError:
            logger.warning("timeout (attempt %d), retrying", attempt + 1)
            continue
    raise RuntimeError(f"gave up after {retries} attempts")


def summarize_with_helper_retry(docs: list[str]) -> str:
    summaries = [complete_with_retry(f"Summarize: {d}") for d in docs]
    return writer("\n".join(summaries))


def summarize_with_inline_retry(docs: list[str]) -> str:
    summaries = []
    for doc in docs:
        for attempt in range(3):
            try:
                summaries.append(flaky(f"Summarize: {doc}"))
                break
            except TimeoutError:
                logger.warning("timeout on %s (attempt %d)", doc, attempt + 1)
        else:
            summaries.append("<no summary>")
    return writer("\n".join(summaries))


def summarize_with_while_retry(docs: list[str]) -> str:
    summaries = []
    for doc in docs:
        attempts = 0
        while True:
            try:
                summary = flaky(f"Summarize: {doc}")
                break
            except TimeoutError:
                attempts += 1
                if attempts >= 3:
                    raise
        summaries.append(summary)
    return writer("\n".join(summaries))


# -- 7. self-consistency ----------------------------------------------------------------------------


def self_consistency(question: str, n: int = 5) -> tuple[str, float]:
    answers = []
    for i in range(n):
        raw = sampler(f"Q: {question}\nThink step by step, then write ANSWER: <x>.", temperature=0.7, seed=i)
        answers.append(raw.split("ANSWER:")[-1].strip())
    vote, count = Counter(answers).most_common(1)[0]
    logger.info("majority %s with %d/%d votes", vote, count, n)
    return vote, count / n


# -- 8. logging and metrics in the glue --------------------------------------------------------------

METRICS: list[dict[str, Any]] = []
TRIAGE_PROMPT = "Classify this support ticket.\nSubject: {subject}\nBody: {body}\nLabel:"


def triage(tickets: list[dict[str, str]]) -> tuple[dict[str, list[str]], str]:
    started = time.perf_counter()
    by_label: dict[str, list[str]] = {}
    for ticket in tickets:
        t0 = time.perf_counter()
        label = classifier(TRIAGE_PROMPT.format_map(ticket))
        by_label.setdefault(label.split(":")[0], []).append(ticket["id"])
        METRICS.append({"ticket": ticket["id"], "ms": round((time.perf_counter() - t0) * 1000)})
        logger.info("ticket %s -> %s", ticket["id"], label)
    logger.info("triaged %d tickets in %.1f ms", len(tickets), (time.perf_counter() - started) * 1000)
    counts = ", ".join(f"{k}={len(v):>2}" for k, v in sorted(by_label.items()))
    return by_label, writer(f"Weekly digest: {counts}")


# -- 9. methods calling methods, a cached embedding, a prompt generator, any() over judges ----------


@functools.lru_cache(maxsize=1024)
def embed(text: str) -> str:
    return embedder(f"embed: {text}")


RULES = ["no spam", "no personal data", "no threats"]


class Moderator:
    def __init__(self, client: LLMClient) -> None:
        self.client = client

    def _ask(self, prompt: str) -> str:
        return self.client.complete(prompt, max_tokens=8)

    def _prompts(self, posts: list[str]) -> Any:
        for post in posts:
            yield f"Is this post on topic? Answer yes or no.\n{post}"

    def moderate(self, posts: list[str]) -> dict[str, Any]:
        vectors = [embed(post) for post in posts]
        on_topic = [self._ask(prompt) for prompt in self._prompts(posts)]
        violates = any(
            judge(f"Does '{posts[0]}' break the rule '{rule}'?").endswith("1/10") for rule in RULES
        )
        return {"vectors": vectors, "on_topic": on_topic, "violates": violates}


# -- 10. service objects with state ---------------------------------------------------------------------


class ChatSession:
    """Multi-turn chat with memory: each answer needs the previous turns (sequential by nature)."""

    def __init__(self, client: LLMClient) -> None:
        self.client = client
        self.memory: list[str] = []

    def remember(self, role: str, text: str) -> None:
        self.memory.append(f"{role}: {text}")

    def reply(self, message: str) -> str:
        self.remember("user", message)
        answer = self.client.complete("\n".join(self.memory[-6:]))
        self.remember("assistant", answer)
        return answer


class Summarizer:
    """A batch summarizer that counts its requests for a dashboard."""

    def __init__(self, client: LLMClient) -> None:
        self.client = client
        self.requests = 0

    def summarize_all(self, docs: list[str]) -> list[str]:
        summaries = []
        for doc in docs:
            self.requests += 1
            summaries.append(self.client.complete(f"Summarize in one line: {doc}"))
        return summaries


class ResearchAgent:
    """Step methods that share their state through `self`, as agent classes often do."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def gather(self, topic: str) -> None:
        self.notes = [web_search(f"{topic} overview"), web_search(f"{topic} criticism")]

    def write_report(self, topic: str) -> str:
        return writer(f"Report on {topic} from: " + "; ".join(self.notes))

    def run(self, topic: str) -> str:
        self.gather(topic)
        return self.write_report(topic)


class Assistant:
    """A personalised assistant: one instance serves many users, one request at a time."""

    def __init__(self) -> None:
        self.profile: dict[str, str] = {"name": "guest", "tier": "free"}

    def load_profile(self, user_id: str) -> None:
        self.profile = {"name": embedder(f"name of {user_id}"), "tier": "pro"}

    def answer(self, user_id: str, question: str) -> str:
        self.load_profile(user_id)
        return llm(f"You are helping {self.profile['name']} ({self.profile['tier']} plan).\n{question}")


# -- 11. translation fan-out with back-translation checks -----------------------------------------------

LANGUAGES = ["French", "German", "Spanish"]


def translate_and_check(text: str) -> dict[str, Any]:
    translations = {lang: llm(f"Translate to {lang}: {text}") for lang in LANGUAGES}
    report = {}
    for lang, translated in translations.items():
        back = checker(f"Translate from {lang} to English: {translated}")
        report[lang] = {"translation": translated, "back": back, "same": back.endswith(text)}
    report["_summary"] = writer(f"Review {len(translations)} translations of {text!r}")
    return report


# -- 12. round-robin over regional endpoints (a helper moves a module-level index) ------------------------

_ROTATION = {"next": 0}


def rotate_region() -> None:
    """Spread load over the regions: each request goes to the next one."""
    _ROTATION["next"] = (_ROTATION["next"] + 1) % len(REGION_CLIENTS)


def balanced_summaries(docs: list[str]) -> list[str]:
    summaries = [llm(f"Outline: {d}") for d in docs]
    rotate_region()
    client = REGION_CLIENTS[_ROTATION["next"]]
    summaries.append(client(f"Summarize {len(docs)} documents"))
    return summaries


# -- 13. numbered requests for the audit log -------------------------------------------------------------

_REQUEST_NO = 0


def audited_answers(questions: list[str]) -> list[str]:
    global _REQUEST_NO
    answers = []
    for question in questions:
        _REQUEST_NO += 1
        answers.append(llm(question, user=f"req-{_REQUEST_NO}"))
    return answers


# -- 14. few-shot classification with an examples table -----------------------------------------------

EXAMPLES = [
    {"text": "I was charged twice", "label": "billing"},
    {"text": "The app crashes on start", "label": "bug"},
]


def few_shot_classify(texts: list[str]) -> list[str]:
    shots = "\n".join(f"Text: {ex['text']}\nLabel: {ex['label']}" for ex in EXAMPLES)
    labels = []
    for text in texts:
        labels.append(classifier(f"{shots}\nText: {text}\nLabel:").split(":")[0])
    return labels


# -- 15. the same through the real openai client -------------------------------------------------------

SYSTEM = "You are a concise analyst."


class OpenAIChat:
    """What `LLMClient` looks like in production: the openai SDK behind a `complete` method."""

    def __init__(self, client: Any, model: str = "gpt-reader") -> None:
        self.client = client
        self.model = model

    def complete(self, prompt: str, max_tokens: int = 256) -> str:
        response = self.client.chat.completions.create(
            model=self.model,
            messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
            max_tokens=max_tokens,
        )
        return response.choices[0].message.content


def openai_summarize(client: Any, docs: list[str]) -> str:
    """The quickstart style: build `messages`, then create()."""
    summaries = []
    for doc in docs:
        messages = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Summarize in one line: {doc}"},
        ]
        response = client.chat.completions.create(model="gpt-reader", messages=messages, temperature=0)
        summaries.append(response.choices[0].message.content)
    final = client.chat.completions.create(
        model="gpt-writer", messages=[{"role": "user", "content": "Merge:\n" + "\n".join(summaries)}]
    )
    return final.choices[0].message.content


def openai_self_consistency(client: Any, question: str, n: int = 3) -> str:
    answers = []
    for i in range(n):
        response = client.chat.completions.create(
            model=f"gpt-sampler-{i}",
            messages=[{"role": "user", "content": f"{question} (sample {i + 1} of {n})"}],
            temperature=0.8,
            seed=i,
        )
        answers.append(response.choices[0].message.content.split("]")[0])
    return Counter(answers).most_common(1)[0][0]

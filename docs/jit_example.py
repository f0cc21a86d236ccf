"""The example of docs/jit.md: `python docs/jit_example.py` (prints what the doc shows)."""

import time

import xcs_bc as xcs
from xcs_bc.testing import FakeLLM

models = [FakeLLM(f"model_{c}", latency=0.1) for c in "abc"]
judge = FakeLLM("judge", latency=0.1)


def answer(question, docs):  # untouched legacy code
    drafts = [m(f"Answer: {question}") for m in models]
    notes = []
    for doc in docs:
        notes.append(judge(f"Is this relevant to {question}? {doc}"))
    return judge("\n".join(drafts) + "\n---\n" + "\n".join(notes))


if __name__ == "__main__":
    fast = xcs.jit(answer)
    for n, docs in enumerate([["doc one", "doc two"]] * 3 + [["doc one", "doc two", "doc three"]]):
        question = f"question {n}"
        start = time.perf_counter()
        plain = answer(question, docs)
        middle = time.perf_counter()
        jitted = fast(question, docs)
        end = time.perf_counter()
        took = f"plain {middle - start:.2f} s, jit {end - middle:.2f} s"
        print(f"call {n + 1}: {took}, same: {plain == jitted}")
    print(fast.stats)
    print(fast.explain())

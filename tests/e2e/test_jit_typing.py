"""Typed code using `xcs.jit`: a jitted function keeps its parameters and return type.

Run time checks the values; the types are checked by `mypy --strict` on this file
(`MYPYPATH=src mypy --strict tests/e2e/test_jit_typing.py`; CI runs mypy on src only).
Under `--strict`, an unneeded `# type: ignore[...]` is an error: each one below proves
that mypy rejects that misuse, i.e. that the signature went through `xcs.jit`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import xcs_bc as xcs
from xcs_bc.testing import FakeLLM

llm = FakeLLM("llm", 0.0)


@xcs.jit
def summarize(doc: str, *, limit: int = 10) -> str:
    return llm(doc[:limit])


@xcs.jit(min_call_ms=5.0, cache_size=2)
def lengths(docs: list[str]) -> dict[str, int]:
    return {doc: len(llm(doc)) for doc in docs}


@xcs.jit
async def fetch(url: str) -> bytes:
    await asyncio.sleep(0)
    return url.encode()


class Pipeline:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    @xcs.jit
    def run(self, doc: str) -> list[str]:
        return [llm(self.prefix + doc)]


def test_typed_calls() -> None:
    text: str = summarize("a long document", limit=6)
    sizes: dict[str, int] = lengths(["a", "bb"])
    data: bytes = asyncio.run(fetch("x"))
    ran: list[str] = Pipeline("p:").run("d")
    stats: xcs.Stats = summarize.stats
    explained: str = summarize.explain()
    assert text == "llm(a long)"
    assert sizes == {"a": len("llm(a)"), "bb": len("llm(bb)")}
    assert data == b"x"
    assert ran == ["llm(p:d)"]
    assert stats.traces == 1 and explained.startswith("xcs.jit(summarize)")


if TYPE_CHECKING:  # never run: mypy must flag each line (an unused ignore is an error under --strict)
    summarize(1)  # type: ignore[arg-type]
    summarize("doc", limit="3")  # type: ignore[arg-type]
    summarize("doc", size=3)  # type: ignore[call-arg]
    wrong: int = summarize("doc")  # type: ignore[assignment]
    lengths("not a list")  # type: ignore[arg-type]
    not_awaited: bytes = fetch("x")  # type: ignore[assignment]
    Pipeline("p").run(3)  # type: ignore[arg-type]
    wrong_list: list[int] = Pipeline("p").run("d")  # type: ignore[assignment]

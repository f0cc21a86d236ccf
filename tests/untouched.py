"""An untouched application module, as a capture meets it: `xcs.capture()` wraps a call of
`report(...)` and must see the slow calls made inside, several frames deep
(`tests/e2e/test_capture_through.py`).  The slow calls are `xcs_bc.testing` fakes, which are
leaves like an installed client's methods; everything else here is the user's own code.
"""

from __future__ import annotations

import functools
from typing import Any

from xcs_bc.testing import FakeLLM

LATENCY = 0.02
llm = FakeLLM("llm", LATENCY)
search = FakeLLM("search", LATENCY)
STYLE = {"tone": "plain"}


def logged(fn: Any) -> Any:
    """The team's decorator: it wraps, and passes everything on."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


class Client:
    """The team's thin wrapper over their provider's SDK."""

    def __init__(self, model: Any, prefix: str) -> None:
        self.model = model
        self.prefix = prefix
        self.sent = 0

    def ask(self, prompt: str) -> str:
        self.sent += 1
        return self.model(self.prefix + prompt)


@logged
def outline(client: Client, doc: str) -> str:
    return client.ask(f"Outline: {doc}")


def keywords(client: Client, doc: str) -> str:
    return client.ask(f"Keywords ({STYLE['tone']}): {doc}")


def analyze(client: Client, doc: str) -> dict[str, str]:
    return {"outline": outline(client, doc), "keywords": keywords(client, doc)}


def make_checker(client: Client) -> Any:
    def check(text: str) -> str:  # a closure over the client
        return client.ask(f"Check: {text}")

    return check


def report(topic: str, docs: list[str]) -> str:
    client = Client(llm, "> ")
    background = search(topic)
    parts = [analyze(client, doc) for doc in docs]
    check = make_checker(client)
    body = "\n".join(part["outline"] + part["keywords"] for part in parts)
    return check(background + body)

"""A fake async client for the tests of coroutines: `AsyncLLM` sleeps on the event loop and logs
what it was asked and how many of its calls ran at once."""

from __future__ import annotations

import asyncio
import time

LATENCY = 0.05


class _Log:
    """What an `AsyncLLM` was asked, when, and how many calls ran at once."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.started: list[float] = []
        self.running = 0
        self.peak = 0

    def start(self, prompt: str) -> None:
        self.calls.append(prompt)
        self.started.append(time.monotonic())
        self.running += 1
        self.peak = max(self.peak, self.running)

    def end(self) -> None:
        self.running -= 1


class AsyncLLM:
    """A fake async client: sleeps on the loop; logs each call, and the most running at once, in a
    log of its own (its method changes no attribute of the client, as a real client's does not)."""

    def __init__(self, latency: float = LATENCY) -> None:
        self.latency = latency
        self.log = _Log()

    async def complete(self, prompt: str, *, style: str = "plain") -> str:
        self.log.start(prompt)
        try:
            await asyncio.sleep(self.latency)
            if "bad" in prompt and style != "lenient":
                raise ValueError(f"refused: {prompt}")
            return f"{style}({prompt})"
        finally:
            self.log.end()

    @property
    def calls(self) -> list[str]:
        return self.log.calls

    @property
    def started(self) -> list[float]:
        return self.log.started

    @property
    def peak(self) -> int:
        return self.log.peak

    def reset(self) -> None:
        self.log = _Log()

"""One way for the tests to say "the jitted run behaved exactly like the plain one".

Same outcome (the value returned, or the exception's type and message) and the
same multiset of calls, keyword arguments included (`xcs_bc.testing.CallLog`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from xcs_bc.testing import CallLog, FakeLLM

LATENCY = 0.03
_fresh = itertools.count()


def fresh(prefix: str = "doc") -> str:
    """A string no earlier call used: every run gets inputs no plan has seen by value."""
    return f"{prefix}{next(_fresh)}"


def fakes(*names: str, fail_on: str | None = None, latency: float = LATENCY) -> list[FakeLLM]:
    return [FakeLLM(name, latency, fail_on=fail_on) for name in names]


def outcome(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    """What a call gave: ("returned", value) or ("raised", type, message)."""
    try:
        return ("returned", fn(*args, **kwargs))
    except Exception as exc:  # noqa: BLE001 - compared with the other run's
        return ("raised", type(exc), str(exc))


def plain_outcome(fn: Callable[..., Any], args: tuple[Any, ...], watch: Sequence[FakeLLM]) -> tuple[Any, ...]:
    """The plain function's outcome, its fakes answering at once (their answers do not depend on the
    latency, and only the jitted run needs slow calls): this keeps the tests fast."""
    latencies = [f.latency for f in watch]
    for f in watch:
        f.latency = 0.0
    try:
        return outcome(fn, *args)
    finally:
        for f, latency in zip(watch, latencies, strict=True):
            f.latency = latency


def run_both(fn: Callable[..., Any], fast: Callable[..., Any], *args: Any, watch: Sequence[FakeLLM]) -> Any:
    """Plain then jitted on the same arguments: same result or exception, same multiset of calls.

    Returns the result (None when both raised the same exception)."""
    return run_both_fresh(fn, fast, lambda: args, watch=watch)


def run_both_fresh(
    fn: Callable[..., Any],
    fast: Callable[..., Any],
    make_args: Callable[[], tuple[Any, ...]],
    *,
    watch: Sequence[FakeLLM],
) -> Any:
    """`run_both` for functions that change or consume their arguments: each run gets its own."""
    for f in watch:
        f.reset()
    expected = plain_outcome(fn, make_args(), watch)
    plain_calls = CallLog.snapshot(*watch)
    for f in watch:
        f.reset()
    got = outcome(fast, *make_args())
    assert got == expected
    assert CallLog.snapshot(*watch) == plain_calls
    return got[1] if got[0] == "returned" else None


class Tool(FakeLLM):
    """A slow tool whose answer is not text: `answer(prompt)` (its calls are logged as a FakeLLM's)."""

    def __init__(self, name: str, answer: Callable[[str], Any]) -> None:
        super().__init__(name, LATENCY)
        self.answer = answer

    def __call__(self, prompt: object, **kwargs: Any) -> Any:
        super().__call__(prompt, **kwargs)
        return self.answer(str(prompt))


def no_waste(fast: Any) -> None:
    """The jitted function made no call the plain one would not: nothing wasted, nothing mispredicted."""
    assert fast.stats.wasted == 0, fast.explain()
    assert fast.stats.mispredictions == 0, fast.explain()

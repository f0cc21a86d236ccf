"""Fake slow calls that count themselves, to test pipelines run with xcs_bc.

They sleep like a remote call, answer deterministically, and record every call,
so a test can check that a traced or jitted pipeline makes exactly the calls of
the plain one, and that independent calls overlapped::

    llm = FakeLLM("llm", latency=0.01)
    plain = pipeline(llm, docs); before = CallLog.snapshot(llm); llm.reset()
    fast = xcs.jit(pipeline)(llm, docs)  # xcs.jit is the next milestone
    assert fast == plain and CallLog.snapshot(llm) == before and llm.max_concurrency > 1
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from xcs_bc.errors import ConfigError

__all__ = ["CallLog", "FakeLLM", "FakeLLMError", "slow"]

F = TypeVar("F", bound=Callable[..., Any])


class FakeLLMError(RuntimeError):
    """Raised by a `FakeLLM` whose `fail_on` text is in the prompt: a user's error, not an XCSError."""


def _check_latency(latency: object, where: str) -> float:
    # bool is an int, but latency=True is surely a mistake; nan or inf would never return.
    if isinstance(latency, bool) or not isinstance(latency, (int, float)) or not 0 <= latency < math.inf:
        raise ConfigError(
            f"{where}: latency must be a finite number of seconds >= 0, got {latency!r} "
            f"({type(latency).__name__}); pass e.g. latency=0.05, or latency=0 for no delay"
        )
    return float(latency)


class _Tracker:
    """Thread-safe record of calls, kept in `state`: a FakeLLM's own dict or a @slow wrapper's __dict__."""

    __slots__ = ("lock", "state", "in_flight")

    def __init__(self, state: dict[str, Any]) -> None:
        self.lock = threading.Lock()
        self.state = state
        self.in_flight = 0
        state.update(calls=[], call_count=0, max_concurrency=0)

    def call(self, args: object, kwargs: dict[str, Any], seconds: float) -> None:
        """Record one call, then sleep `seconds` while it counts as in flight."""
        with self.lock:
            self.state["calls"].append((args, dict(kwargs)))
            self.state["call_count"] += 1
            self.in_flight += 1
            self.state["max_concurrency"] = max(self.state["max_concurrency"], self.in_flight)
        try:
            time.sleep(seconds)
        finally:
            with self.lock:
                self.in_flight -= 1

    def reset(self) -> None:
        """Forget the calls made so far and the concurrency seen."""
        with self.lock:
            self.state["calls"].clear()
            self.state["call_count"] = 0
            # Calls still in flight keep counting towards the next max_concurrency.
            self.state["max_concurrency"] = self.in_flight


class FakeLLM:
    """A fake model call: sleeps `latency` seconds, then answers ``"name(prompt)"``.

    Keyword arguments follow with sorted keys: ``llm("hi", t=0, model="m")`` answers
    ``"llm(hi; model=m, t=0)"``.  If `fail_on` occurs in ``str(prompt)`` the call
    raises `FakeLLMError` after sleeping, like a remote error.  `max_concurrency`,
    the most calls in flight at once, is the evidence that calls ran in parallel.
    """

    def __init__(self, name: str = "llm", latency: float = 0.05, *, fail_on: str | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"FakeLLM: name must be a non-empty str, got {name!r}; pass e.g. name='llm'")
        if fail_on is not None and (not isinstance(fail_on, str) or not fail_on):
            raise ConfigError(
                f"FakeLLM({name!r}): fail_on must be a non-empty str or None, got {fail_on!r}; "
                "an empty string would match every prompt, pass None to never fail"
            )
        self.name = name
        self.latency = _check_latency(latency, f"FakeLLM({name!r})")
        self.fail_on = fail_on
        # Tools that name callees (the graph printer, reports) read these.
        self.__name__ = name
        self.__qualname__ = name
        self._tracker = _Tracker({})

    def __call__(self, prompt: object, **kwargs: Any) -> str:
        self._tracker.call(prompt, kwargs, self.latency)
        if self.fail_on is not None and self.fail_on in str(prompt):
            raise FakeLLMError(f"{self.name} failed on {prompt!r}")
        return self.render(prompt, kwargs)

    def render(self, prompt: object, kwargs: dict[str, Any]) -> str:
        """The answer this fake gives to `prompt` with `kwargs`, without calling it."""
        extra = "; " + ", ".join(f"{key}={kwargs[key]}" for key in sorted(kwargs)) if kwargs else ""
        return f"{self.name}({prompt}{extra})"

    @property
    def calls(self) -> list[tuple[object, dict[str, Any]]]:
        """A copy of the `(prompt, kwargs)` pairs received so far, in call order."""
        with self._tracker.lock:
            return list(self._tracker.state["calls"])

    @property
    def call_count(self) -> int:
        """How many calls were made (failed ones included)."""
        return int(self._tracker.state["call_count"])

    @property
    def max_concurrency(self) -> int:
        """The largest number of calls that were in flight at the same time."""
        return int(self._tracker.state["max_concurrency"])

    def reset(self) -> None:
        """Forget the calls made so far and the concurrency seen."""
        self._tracker.reset()

    def __repr__(self) -> str:
        fail = f", fail_on={self.fail_on!r}" if self.fail_on is not None else ""
        return f"FakeLLM({self.name!r}, latency={self.latency!r}{fail})"


def slow(latency: float = 0.05) -> Callable[[F], F]:
    """Decorator: make `fn` a counted slow call that sleeps `latency` seconds first.

    The wrapper keeps `fn`'s name and signature (`functools.wraps`) and gains ``calls`` (live list
    of `(args, kwargs)`), ``call_count``, ``max_concurrency`` and ``reset()``.  Errors propagate.
    """
    seconds = _check_latency(latency, "slow()")

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            tracker.call(args, kwargs, seconds)
            return fn(*args, **kwargs)

        # Function attributes keep the wrapper a plain function, so it still binds as a method.
        tracker = _Tracker(wrapper.__dict__)
        wrapper.__dict__["reset"] = tracker.reset
        return wrapper  # type: ignore[return-value]

    return decorate


class CallLog:
    """The calls some fakes received, as a multiset: equal logs made the same calls in any order.

    Entries are rendered calls (``"llm(hi; t=0)"``), so pytest shows which calls differ.
    """

    __slots__ = ("counts",)

    def __init__(self, entries: Iterable[str] = ()) -> None:
        self.counts: Counter[str] = Counter(entries)

    @classmethod
    def snapshot(cls, *fakes: Any) -> CallLog:
        """Record the calls made so far to each `FakeLLM` or `slow`-decorated function."""
        entries: Counter[str] = Counter()
        for fake in fakes:
            if isinstance(fake, FakeLLM):
                entries.update(fake.render(prompt, kwargs) for prompt, kwargs in fake.calls)
            elif callable(fake) and isinstance(getattr(fake, "calls", None), list):
                for args, kwargs in list(fake.calls):
                    parts = [repr(a) for a in args] + [f"{k}={kwargs[k]!r}" for k in sorted(kwargs)]
                    entries[f"{fake.__name__}({', '.join(parts)})"] += 1
            else:
                raise ConfigError(
                    f"CallLog.snapshot: expected FakeLLM or @slow functions, got {fake!r}; "
                    "wrap the call with xcs_bc.testing.slow() or use a FakeLLM"
                )
        return cls(entries)

    def __len__(self) -> int:
        """The number of calls, repeats included."""
        return self.counts.total()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CallLog):
            return NotImplemented
        return self.counts == other.counts

    def __repr__(self) -> str:
        return f"CallLog({sorted(self.counts.elements())!r})"

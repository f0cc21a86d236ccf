"""Opt-in speculation: which planned calls a replay may issue before the decisions they are under
are known, and how many such guesses one jitted call may lose.

Without it a call under a branch on results (`if not has_tv: has_tv = exists("tv")`) goes once the
results that branch reads have arrived and its predicate holds.  With `xcs.jit(fn, speculate=...)`
it goes at once, on the path the trace took, when its own arguments are known and its callee is one
the user allowed: every slow call (`speculate=True`, the user's promise that they have no effects),
or only those named (`speculate=[image.exists, search]`).  The real run stays the source of truth:
a guess is served only where the run makes that very call; one the run does not reach is
cancelled if it has not started, and counted as wasted if it has.  `cap` bounds the cost: the
guesses of one jitted call still unconfirmed plus those lost never exceed it.
"""

from __future__ import annotations

import types
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from xcs_bc.errors import ConfigError
from xcs_bc.ir.values import awaited_call

__all__ = ["Speculation", "speculation"]


@dataclass(frozen=True)
class Speculation:
    """Which callees may be called on a guess (`callees`; None: every slow call), and at most how
    many guesses of one jitted call may be pending or lost at once (`cap`)."""

    callees: tuple[Any, ...] | None
    cap: int

    def allows(self, callee: Any, args: tuple[Any, ...] = ()) -> bool:
        """May `callee` be called before the run has decided that it makes the call?  (An async
        function's awaited call is allowed when the callee it awaits is: `awaited_call`.)"""
        if self.callees is None:
            return True
        awaited = awaited_call(callee, args)
        if awaited is not None:
            callee = awaited[0]
        return any(_names(allowed, callee) for allowed in self.callees)

    def describe(self) -> str:
        which = "every slow call" if self.callees is None else ", ".join(map(_name, self.callees))
        return f"speculates on {which} (at most {self.cap} guesses pending or lost per call)"


def _names(allowed: Any, callee: Any) -> bool:
    """Does the user's `allowed` name `callee`?  The object itself; for a bound method, the function
    it binds (`Patch.exists` allows every patch's `exists`) or the same method of the same object
    (`patch.exists`, which is a new object at every attribute access)."""
    if callee is allowed:
        return True
    if type(callee) is not types.MethodType:
        return False
    if callee.__func__ is allowed:
        return True
    return (
        type(allowed) is types.MethodType
        and allowed.__func__ is callee.__func__
        and allowed.__self__ is callee.__self__
    )


def _name(callee: Any) -> str:
    return str(
        getattr(callee, "__qualname__", None) or getattr(callee, "name", None) or type(callee).__name__
    )


def speculation(speculate: bool | Iterable[Any], cap: int) -> Speculation | None:
    """The policy for `xcs.jit`'s `speculate=` and `max_wasted_per_call=` (None: no speculation);
    `ConfigError` for anything else than a bool or a non-empty collection of callables, or a cap
    that is not an int >= 1."""
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise ConfigError(f"max_wasted_per_call must be an int >= 1, got {cap!r}")
    if isinstance(speculate, bool):
        return Speculation(None, cap) if speculate else None
    if isinstance(speculate, (str, bytes)) or not isinstance(speculate, Iterable):
        raise ConfigError(
            f"speculate must be True, False or a list of the callees that may be called on a guess, "
            f"got {speculate!r}"
        )
    callees = tuple(speculate)
    if not callees:
        raise ConfigError("speculate=[] names no callee: pass False to turn speculation off")
    for callee in callees:
        if not callable(callee):
            raise ConfigError(
                f"speculate names {callee!r}, which is not callable: name the callee itself "
                "(speculate=[image.exists]), not its name"
            )
    return Speculation(callees, cap)

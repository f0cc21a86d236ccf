"""Execute: a jitted function follows into the user's helpers, jitting each one it calls.

A jitted function's plan sees a helper of the user's (`summaries = summarize_all(docs)`,
`Pipeline(llm).run(task)`) as one slow call: its replay issues it, in its turn or ahead, but the
calls the helper makes inside would go one after another.  So where a replay makes such a call, it
calls the helper through a jitted function of its own (`Follower`), which traces the helper's
first call and replays the later ones as `xcs.jit` does any function: its own independent calls
go at once, and it stays exactly as correct as the plain helper.  The traced first call does the
same for the helpers its call sites call by name (`summarize_all(docs)`,
`helpers.summarize_all(docs)`: a global, or a function of a module held in one), on the same
thread, its own observation set aside meanwhile (see `execute.first`).

A helper is followed when it is a Python function (or a method's function) of the user's code:
not of the standard library or an installed package, not a generator or async function, not
already a jitted function (that one runs as it is), whose code (with its comprehensions) makes two
calls, or a call and a loop, and not defined inside a function of the chain being followed (a
`def` or lambda made anew by every call would be traced anew by every call).  Recursion is never
followed: a helper already in the chain (the jitted function itself, or a helper followed to get
here) is called as it is.  A helper whose first traced call found no two calls that could overlap
(in its own code, or in a helper it follows in turn) is called as it is from then on: following it
would only cost time.
"""

from __future__ import annotations

import dis
import threading
import types
from collections.abc import Callable
from typing import Any

from xcs_bc._compat import CALL_OPS, CO_GENERATOR_LIKE, nested_code
from xcs_bc.build import purity
from xcs_bc.errors import XCSError
from xcs_bc.execute.callsites import walk_code
from xcs_bc.observe.reach import library

_UNSEEN = object()
_CALLS_AND_LOOPS = frozenset({*CALL_OPS, "FOR_ITER"})

Jit = Callable[[types.FunctionType, tuple[types.CodeType, ...]], Any]
"""What makes the jitted function of a helper, given the chain of code followed to reach it."""


class Follower:
    """What a jitted function calls its helpers through (see the module's docstring)."""

    def __init__(self, jit: Jit, chain: tuple[types.CodeType, ...]) -> None:
        self._jit = jit
        self._chain = chain
        # the code defined inside the chain's (nested functions, lambdas, comprehensions)
        self._made = frozenset(made for code in chain for _, made in walk_code(code, ()))
        self._helpers: dict[types.CodeType, Any] = {}  # a helper's code -> its _Helper, or None
        self._lock = threading.Lock()

    def __call__(self, callee: Any) -> Any:
        """What to call in `callee`'s place, with the same arguments: `callee` itself, or its helper."""
        helper = self.helper(callee)
        return callee if helper is None else helper.standing_for(callee)

    def worth_following(self, value: Any) -> bool:
        """Is `value` a function to follow, not known yet to make no two calls that could overlap,
        that may make a slow call (its code calls something not known to be pure)?  Asked before the
        first call's trace, of the functions its call sites call by name (see `execute.first`)."""
        helper = self.helper(value)
        return helper is not None and purity.classify(helper.fn) is purity.Effect.UNKNOWN

    def helper(self, callee: Any) -> _Helper | None:
        """The helper `callee` is called through, if followed (for a method: its function's)."""
        helper = self._helper(callee.__func__ if type(callee) is types.MethodType else callee)
        return helper if helper is not None and helper.useful else None

    def helpers(self) -> list[_Helper]:
        """The helpers called through so far, useful or not (for `explain()`)."""
        with self._lock:
            helpers = [helper for helper in self._helpers.values() if helper is not None]
        return [helper for helper in helpers if helper.tally()[0]]

    def _helper(self, fn: Any) -> _Helper | None:
        if type(fn) is not types.FunctionType:
            return None
        code = fn.__code__
        helper: _Helper | None = self._helpers.get(code, _UNSEEN)
        if helper is _UNSEEN:
            try:
                helper = _Helper(fn, self._jit(fn, (*self._chain, code))) if self._follows(fn) else None
            except XCSError:  # (a function the jit refuses to wrap is called as it is)
                helper = None
            with self._lock:
                helper = self._helpers.setdefault(code, helper)
        if helper is None or helper.fn is fn:
            return helper
        # another function of the same code: one made anew by some call (a closure a factory
        # returns), which would be traced anew every time: such functions are called as they are
        with self._lock:
            self._helpers[code] = None
        return None

    def _follows(self, fn: types.FunctionType) -> bool:
        code = fn.__code__
        if code in self._chain or code in self._made or code.co_flags & CO_GENERATOR_LIKE:
            return False
        if _calls_and_loops(code) < 2:  # (one call and no loop: nothing of its own could overlap)
            return False
        module = fn.__module__ if isinstance(fn.__module__, str) else ""
        return not library(module, code.co_filename) and module.partition(".")[0] != "xcs_bc"


class _Helper:
    """A helper's jitted function.  One call traces at a time: calls of it made at once while it has
    no plan yet run as they are rather than each paying for a trace."""

    def __init__(self, fn: types.FunctionType, jitted: Any) -> None:
        self.fn = fn
        self.jitted = jitted
        # false once its first trace found no two calls that could overlap, in its code or in a
        # helper it follows
        self.useful = True
        self._tracing = False
        self._lock = threading.Lock()

    def standing_for(self, callee: Any) -> Any:
        """This helper as what to call in `callee`'s place (bound to its object, for a method)."""
        return types.MethodType(self, callee.__self__) if type(callee) is types.MethodType else self

    def tally(self) -> tuple[int, int]:
        """Its calls traced or replayed so far, and the slow calls they made."""
        stats = self.jitted.stats
        return stats.traces + stats.replays, stats.calls_made()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        jitted = self.jitted
        if jitted._plans:
            return jitted(*args, **kwargs)
        with self._lock:
            tracing, self._tracing = self._tracing, True
        if tracing:
            return self.fn(*args, **kwargs)
        try:
            return jitted(*args, **kwargs)
        finally:
            self.useful = jitted._gains()
            self._tracing = False


def _calls_and_loops(code: types.CodeType) -> int:
    """The call and FOR_ITER instructions of `code` and of its comprehensions (not of the functions
    it defines: it makes them, it does not run them)."""
    return sum(
        ins.opname in _CALLS_AND_LOOPS
        for each in (code, *nested_code(code))
        for ins in dis.get_instructions(each)
    )

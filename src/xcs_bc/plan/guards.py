"""Guards: whether a plan applies to new arguments, and why not as a value.

A `Guard` checks one thing of the value its ref computes on a call's inputs: the type of an
input, the identity of a callee seen when tracing, or a branch decision of the trace that did not
depend on a slow call (a truth, a None test, a loop's length), re-evaluated on the new inputs.
A failed guard is a `Miss` (its kind for code, its text for people), not an exception.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from xcs_bc.build.trace import BRANCHES, Condition, Decision, DecisionKind, LoopRecord
from xcs_bc.ir import MISSING, ExprKind, Source, ValueRef
from xcs_bc.ir.text import format_value
from xcs_bc.ir.values import SIZED
from xcs_bc.plan.slices import Env, NotComputable, Slice, evaluate, plain

__all__ = [
    "Guard",
    "GuardKind",
    "Miss",
    "MissKind",
    "why_cut_off",
    "decision_guard",
    "holds",
    "input_guards",
    "predicate",
    "predicates",
    "sequence_lengths",
    "zip_guards",
    "zip_shortest",
]


class GuardKind(enum.Enum):
    """What a guard checks of the value its `ref` computes."""

    TYPE = "type"  # its exact type
    IDENTITY = "is"  # it is the very object seen when tracing (a callee, a global)
    TRUTH = "truth"  # its truth, for a branch taken on it
    NONE = "none"  # whether it is None, for a branch taken on it
    LENGTH = "loop"  # its length, for a loop over it
    MORE = "more"  # its length is more than `expected`: a loop over it takes item `expected`
    SHAPE = "shape"  # a numpy array's shape and dtype


class MissKind(enum.Enum):
    """Why a plan does not apply to a call."""

    GUARD = "guard"  # a guard's value differs from the trace's: `Miss.guard`, `Miss.found`
    UNCHECKABLE = "uncheckable"  # a guard's value cannot be computed without running user code
    LOOP = "loop"  # a generalized loop cannot be sized or instantiated for this call


@dataclass(frozen=True, slots=True)
class Miss:
    """A plan that does not apply, as a value: its kind, the guard that failed (if one did), what the
    guard found, and the sentence `str()` gives (what `explain()` and the notes print)."""

    kind: MissKind
    text: str
    guard: Guard | None = None
    found: Any = None

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Guard:
    """One check a plan needs before it applies: `ref` evaluates to something like `expected`."""

    kind: GuardKind
    ref: ValueRef
    expected: Any
    where: str = ""

    @functools.cached_property
    def compiled(self) -> Slice:
        return Slice((self.ref,))

    def check(self, env: Env) -> Miss | None:
        """None when the guard holds, else why not."""
        try:
            (value,) = self.compiled(env)
        except NotComputable as exc:
            return Miss(MissKind.UNCHECKABLE, f"{self.describe()}: {exc}", self)
        kind = self.kind
        if kind is GuardKind.TYPE:
            ok = type(value) is self.expected
            seen: Any = type(value).__qualname__
        elif kind is GuardKind.IDENTITY:
            ok, seen = value is self.expected, _short(value)
        elif kind is GuardKind.TRUTH:
            ok, seen = plain(value) and bool(value) is self.expected, _short(value)
        elif kind is GuardKind.NONE:
            ok, seen = (value is None) is self.expected, _short(value)
        elif kind is GuardKind.LENGTH or kind is GuardKind.MORE:
            sized = type(value) in SIZED  # len() of a built-in container runs no user code
            ok = sized and (
                len(value) == self.expected if kind is GuardKind.LENGTH else len(value) > self.expected
            )
            seen = len(value) if sized else type(value).__qualname__
        else:  # numpy arrays
            ok = (getattr(value, "shape", None), str(getattr(value, "dtype", ""))) == self.expected
            seen = (getattr(value, "shape", None), str(getattr(value, "dtype", "")))
        if value is MISSING:  # (a result the call that should make it never gave)
            seen = "no value"
        return None if ok else Miss(MissKind.GUARD, f"{self.describe()}, but got {seen}", self, seen)

    def describe(self) -> str:
        text = format_value(self.ref)
        where = f" (at {self.where})" if self.where else ""
        expected = getattr(self.expected, "__qualname__", None) or _short(self.expected)
        return {
            GuardKind.TYPE: f"type({text}) is {expected}",
            GuardKind.IDENTITY: f"{text} is the object seen when tracing ({expected})",
            GuardKind.TRUTH: f"bool({text}) is {self.expected}{where}",
            GuardKind.NONE: f"({text} is None) is {self.expected}{where}",
            GuardKind.LENGTH: f"len({text}) == {self.expected}{where}",
            GuardKind.MORE: f"len({text}) > {self.expected}{where}",
            GuardKind.SHAPE: f"{text} has shape and dtype {self.expected}",
        }[self.kind]


def _short(value: Any) -> str:
    text = repr(value) if plain(value) else f"<{type(value).__qualname__}>"
    return text if len(text) <= 40 else text[:37] + "..."


_GUARD_KINDS = {
    DecisionKind.TRUTH: GuardKind.TRUTH,
    DecisionKind.NONE: GuardKind.NONE,
    DecisionKind.LENGTH: GuardKind.LENGTH,
    DecisionKind.MORE: GuardKind.MORE,
}


def holds(guards: Sequence[Guard], env: Env) -> bool | None:
    """Do `guards` all hold for `env`: True, False, or None while one cannot be computed yet."""
    for guard in guards:
        miss = guard.check(env)
        if miss is not None:
            return None if miss.kind is MissKind.UNCHECKABLE else False
    return True


def predicate(condition: Condition) -> Guard | None:
    """A branch on results a call is reached through, as a guard a replay checks once the results it
    reads are known (see `Recipe.when`); None for one no predicate decides (a loop's test)."""
    if condition.outcome is None:
        return None
    kind, expected = condition.outcome
    return Guard(_GUARD_KINDS[kind], condition.cond, expected, str(condition.site or ""))


def predicates(conditions: Sequence[Condition]) -> tuple[Guard, ...] | None:
    """The branches on results something is reached through, as predicates (see `predicate`); None
    when one is a branch no predicate decides."""
    out = []
    for condition in conditions:
        guard = predicate(condition)
        if guard is None:
            return None
        out.append(guard)
    return tuple(out)


def decision_guard(decision: Decision) -> Guard | None:
    """The guard that checks a branch on a value; None for an event no guard can check."""
    cond = decision.cond
    if decision.kind not in BRANCHES or cond is None or cond.source is Source.UNKNOWN:
        return None
    return Guard(_GUARD_KINDS[decision.kind], cond, decision.expected, str(decision.site))


def why_cut_off(decision: Decision) -> str:
    """Why nothing from `decision` on is issued ahead, for people."""
    if decision.kind is DecisionKind.LEFT_LOOP:
        where = f" at {decision.site}" if decision.site is not None else ""
        return f"the loop{where}, left by break or return, cannot be checked before the call"
    return f"the branch at {decision.site} cannot be checked before the call"


def zip_shortest(iterable: ValueRef) -> bool:
    """Is `iterable` a call of zip() without strict=True, whose rounds stop at its shortest sequence?"""
    if iterable.source is not Source.EXPR or iterable.path or not iterable.operands:
        return False
    if iterable.operands[0].value is not zip:
        return False
    if iterable.kind is ExprKind.CALL:
        return True
    # zip(a, b, strict=False): operands are the callee, the sequences, the keyword's value, its name
    if iterable.kind is not ExprKind.CALL_KW or len(iterable.operands) < 4:
        return False
    strict, names = iterable.operands[-2:]
    return names.value == ("strict",) and strict.source is Source.CONST and strict.value is False


def sequence_lengths(sequences: Sequence[ValueRef], env: Env) -> list[int] | str:
    """len() of each sequence a loop walks, computed from `env`; else the end of a sentence saying why
    not (`": <why>"`, or `" walks a <type>"` whose len() could run user code)."""
    lengths = []
    for sequence in sequences:
        try:
            value = evaluate(sequence, env)
        except NotComputable as exc:
            return f": {exc}"
        if type(value) not in SIZED:
            return f" walks a {type(value).__qualname__}"
        lengths.append(len(value))
    return lengths


def zip_guards(decisions: list[Decision], loops: Sequence[LoopRecord], env: Env) -> dict[int, Guard]:
    """Length guards for the loops over zip(a, b, ...) that walked sequences of different lengths.

    The builder's decision for each sequence is `len(seq) == rounds`, which fails on the trace's own
    inputs when the lengths differ (zip stops at the shortest), and would cut the plan off before the
    loop.  The trace's own lengths, when the shortest is the number of rounds, decide the same rounds.
    """
    out: dict[int, Guard] = {}
    for record in loops:
        if len(record.sequences) < 2 or not zip_shortest(record.iterable):
            continue
        lengths = sequence_lengths(record.sequences, env)
        if isinstance(lengths, str) or len(set(lengths)) == 1 or min(lengths) != len(record.op_starts):
            continue
        for index, sequence, length in zip(record.own_decisions, record.sequences, lengths, strict=True):
            decision = decisions[index]
            if decision.cond is sequence and decision.kind is DecisionKind.LENGTH:
                out[index] = Guard(GuardKind.LENGTH, sequence, length, str(decision.site))
    return out


def input_guards(roots: list[ValueRef], callees: list[ValueRef], env: Env) -> list[Guard]:
    """Types of the inputs that `roots` (the refs of the recipes issued ahead, then the guards' refs)
    read, and the identity of the globals and cells among `callees` (those of the recipes issued ahead)."""
    guards: list[Guard] = []
    seen: set[tuple[str, str]] = set()
    todo = list(roots)
    while todo:
        ref = todo.pop()
        todo.extend(ref.operands)
        if ref.source is Source.INPUT and ("type", ref.name) not in seen and ref.name in env.args:
            seen.add(("type", ref.name))
            value = env.args[ref.name]
            root = ValueRef(Source.INPUT, name=ref.name)
            guards.append(Guard(GuardKind.TYPE, root, type(value)))
            if type(value).__module__ == "numpy" and hasattr(value, "shape"):
                guards.append(Guard(GuardKind.SHAPE, root, (value.shape, str(value.dtype))))
    for callee in callees:
        if callee.source in (Source.GLOBAL, Source.CELL) and ("is", callee.name) not in seen:
            seen.add(("is", callee.name))
            root = ValueRef(callee.source, name=callee.name)
            try:
                guards.append(Guard(GuardKind.IDENTITY, root, evaluate(root, env)))
            except NotComputable:
                continue
    return guards

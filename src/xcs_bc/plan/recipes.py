"""Recipes: how to make one planned call ahead of the real run, or why it must wait its turn.

A `Recipe` holds a slow call's callee and arguments as `ValueRef`s (paths into the inputs and
into earlier results, constants, globals and cells read at run time, pure expressions of those),
compiled once into a function that recomputes them on new inputs (`slices`).  `make_recipe`
issues a call ahead only when evaluating its recipe on the trace's own inputs gives back exactly
the arguments the call received, and nothing the function shares or keeps could be handed over out
of turn; otherwise its `Refusal` says why (a `RefusalKind` for code, the text for people).
"""

from __future__ import annotations

import builtins
import dataclasses
import enum
import functools
import queue
import threading
import time
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from xcs_bc.build import purity
from xcs_bc.build.trace import CallFacts
from xcs_bc.ir import MAX_DEPTH, MISSING, ComputationGraph, ExprKind, Operation, OpType, Source, ValueRef
from xcs_bc.ir.passes import walk
from xcs_bc.ir.text import format_value
from xcs_bc.ir.values import awaits, describe_callee, local_of, union
from xcs_bc.plan.guards import Guard, holds, predicates
from xcs_bc.plan.slices import Env, NotComputable, Slice, evaluate, same_value, too_deep

__all__ = ["Recipe", "Refusal", "RefusalKind", "make_recipe", "outputs_needed"]

_DELAYS = frozenset({time.sleep, input, builtins.input})
_SYNC_TYPES = (
    type(threading.Lock()),
    type(threading.RLock()),
    threading.Event,
    threading.Condition,
    threading.Semaphore,
    threading.Barrier,
    threading.Thread,
    queue.Queue,
    queue.SimpleQueue,
)
_SYNC_METHODS = frozenset({"acquire", "wait", "wait_for", "get", "put", "join", "__enter__"})
_SHARED_CONTAINERS = (list, dict, set, bytearray)


class RefusalKind(enum.Enum):
    """Why a recipe is not issued ahead (its `Refusal.text` says it for people)."""

    NOT_A_CALL = "not a call"  # a slow step that is not a call (an attribute, an operator)
    READ = "a fast call whose result is read"  # see CallFacts.read: made in its turn
    UNDER_RESULT_BRANCH = "under a branch on a result"  # one no predicate decides (a loop's test, ...)
    CONDITION_NOT_COMPUTABLE = "branch not decidable ahead"  # a predicate that cannot be computed
    AFTER_UNCHECKABLE_BRANCH = "after a branch no guard can check"
    TOO_DEEP = "too deep"  # an argument nests more expressions than a recipe computes
    HIDDEN_DEPENDENCY = "hidden dependency"  # on a call whose result the recipe does not read
    CALLEE_NOT_COMPUTABLE = "callee not computable"
    CALLEE_DIFFERS = "callee computed differently"
    WAITS = "waits or synchronises"
    SHARED_CONTAINER_METHOD = "method of a shared container"  # `answers.append`
    ARGUMENT_NOT_COMPUTABLE = "argument not computable"
    ARGUMENT_UNCHECKABLE = "argument not checkable"
    ARGUMENT_DIFFERS = "argument computed differently"
    ARGUMENT_SHARED = "argument holds a shared container"
    ARGUMENT_CHANGED_BY_HELPER = "argument may be changed by an unseen helper"
    ARGUMENT_KEPT = "argument is a mutable object the function keeps"
    MEMO_UNDISPATCHED = "memoized callee called where not dispatched"
    MODULE_STATE = "changes module state, or reads what changed"  # see CallFacts.module
    CHANGED_BY_CODE = "holds what the code changed"  # see CallFacts.stale
    AFTER_ROUNDS_THAT_MAY_LEAVE = "after rounds a handler may leave the loop from"  # see CallFacts.exits
    NO_POINT = "no point to read its locals at"
    # from `generalize`
    ITEMS_BY_LENGTH = "reads a loop's items by its length"
    AFTER_ROUNDS_LOCAL = "after a local a loop's rounds set"
    ROUNDS_DIFFER = "rounds differ"
    FEWER_ITEMS = "fewer items"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a recipe is not issued ahead: `kind` for code, `text` (its `str`) for people."""

    kind: RefusalKind
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Recipe:
    """How to make one planned call ahead: callee and arguments as refs, the results it needs."""

    op: Operation
    callee: ValueRef
    args: tuple[ValueRef, ...]
    kwnames: tuple[str, ...]
    needs: frozenset[int]
    ahead: bool  # may be issued before the real run reaches it
    refusal: Refusal | None  # why not, when not
    facts: CallFacts = CallFacts()  # what the trace knew of the call beside its values
    # the branches on results it is reached through, as predicates on results (and inputs): it is
    # issued only once they are known and each holds (`Guard.check`)
    when: tuple[Guard, ...] = ()

    @functools.cached_property
    def compiled(self) -> Slice:
        """Callee and arguments as one function of the leaves they read (see `slices`)."""
        return Slice((self.callee, *self.args))

    @functools.cached_property
    def arg_needs(self) -> frozenset[int]:
        """The results its callee and arguments read (`needs` without its predicates')."""
        return outputs_needed((self.callee, *self.args))

    @property
    def refs(self) -> tuple[ValueRef, ...]:
        """Every value the recipe reads: callee, arguments, then its predicates' conditions."""
        return (self.callee, *self.args, *(guard.ref for guard in self.when))

    def with_refs(self, refs: tuple[ValueRef, ...]) -> Recipe:
        """The same recipe reading `refs` (in the order of `refs`) instead."""
        n = 1 + len(self.args)
        when = tuple(dataclasses.replace(g, ref=ref) for g, ref in zip(self.when, refs[n:], strict=True))
        needs = outputs_needed(refs)
        return dataclasses.replace(self, callee=refs[0], args=refs[1:n], when=when, needs=needs)

    def holds(self, env: Env) -> bool | None:
        """Do its predicates hold for `env`: True, False, or None while one cannot be computed yet."""
        return holds(self.when, env)

    def call(self, env: Env) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
        callee, *values = self.compiled(env)
        if self.facts.star:  # f(*seq) or f(*seq, **kw): expand as the call does
            seq, kw = values[0], values[1] if len(values) > 1 else {}
            if type(seq) not in (tuple, list) or type(kw) is not dict:
                raise NotComputable("the unpacked arguments are not a plain tuple, list or dict")
            return callee, tuple(seq), dict(kw)
        n = len(values) - len(self.kwnames)
        return callee, tuple(values[:n]), dict(zip(self.kwnames, values[n:], strict=True))


def outputs_needed(refs: tuple[ValueRef, ...]) -> frozenset[int]:
    """The operations whose results `refs` read (each shared operand walked once)."""
    out: set[int] = set()
    seen: set[int] = set()
    todo = list(refs)
    while todo:
        ref = todo.pop()
        if id(ref) in seen:
            continue
        seen.add(id(ref))
        if ref.source is Source.OUTPUT and ref.op is not None:
            out.add(ref.op)
        todo.extend(ref.operands)
    return frozenset(out)


def made_in_turn(graph: ComputationGraph, facts: tuple[CallFacts, ...]) -> dict[int, int]:
    """The fast calls whose result is read (`CallFacts.read`): their id -> how many calls that may
    change objects had run once they had.  Their results are known only once the real run has made
    them: a recipe that reads one is issued after everything the run did before it."""
    return {op.id: facts[op.id].effects for op in graph.operations if facts[op.id].read and op.outputs}


def changeable_results(graph: ComputationGraph, turns: Mapping[int, int]) -> dict[int, int]:
    """Those of `turns` (see `made_in_turn`) whose result could be changed in place (a list of events)."""
    return {k: n for k, n in turns.items() if not purity.is_immutable(graph.operations[k].outputs[0].value)}


def _named(ops: Sequence[Operation], k: int) -> str:
    """Operation `k` for people: `%3 llm (app.py:12)`."""
    op = ops[k]
    return f"%{k} {op.name} ({op.site})"


def make_recipe(
    op: Operation,
    facts: CallFacts,
    env: Env,
    cutoff: int,
    retained: Mapping[int, tuple[ValueRef, ...]],
    turns: Mapping[int, int],
    reads: Mapping[int, int],
    ops: Sequence[Operation],
    cutoff_reason: str = "",
) -> Recipe:
    """How to make `op` ahead, or why not.  `turns` and `reads` are `made_in_turn` and `changeable_results`
    of the trace, `ops` its operations (to name them)."""
    # a slow step that is not a call has its instruction's operands as inputs: maybe none at all (a
    # LOAD_GLOBAL or an empty `{}` the thread was descheduled in), and no callee
    callee, args = (op.inputs[0], op.inputs[1:]) if op.inputs else (ValueRef(Source.CONST, value=None), ())
    needs = outputs_needed(op.inputs)

    def refuse(kind: RefusalKind, text: str) -> Recipe:
        return Recipe(op, callee, args, op.kwnames, needs, False, Refusal(kind, text), facts)

    if op.op_type is not OpType.CALL:
        return refuse(
            RefusalKind.NOT_A_CALL,
            "it is a slow step that is not a call (an attribute, an operator, an iterator)",
        )
    if facts.read:
        why = "it is a fast call to a function not known to be pure, whose result the calls after it read"
        return refuse(RefusalKind.READ, f"{why} once it is made (being fast, it loses nothing)")
    if facts.module:
        return refuse(RefusalKind.MODULE_STATE, facts.module)
    if facts.stale:
        return refuse(RefusalKind.CHANGED_BY_CODE, facts.stale)
    if facts.exits:
        return refuse(RefusalKind.AFTER_ROUNDS_THAT_MAY_LEAVE, facts.exits)
    when = _predicates(op, facts)
    if when is None:
        return refuse(RefusalKind.UNDER_RESULT_BRANCH, _no_predicate(facts))
    if op.id >= cutoff:
        where = f" ({cutoff_reason})" if cutoff_reason else ""
        return refuse(
            RefusalKind.AFTER_UNCHECKABLE_BRANCH, f"it comes after a branch no guard can check{where}"
        )
    deepest = max((ref.depth for ref in (*op.inputs, *(guard.ref for guard in when))), default=0)
    if deepest > MAX_DEPTH:  # checked first: the checks below recurse into the expressions
        return refuse(RefusalKind.TOO_DEEP, f"an argument is not computed ahead: {too_deep(deepest)}")
    undecided = _undecidable(when, env)
    if undecided is not None:
        return refuse(RefusalKind.CONDITION_NOT_COMPUTABLE, undecided)
    if when and _effect_inside(op.inputs):
        where = ", ".join(guard.where for guard in when if guard.where)
        why = (
            f"it is reached through a branch on a result ({where}), and is handed an object changed in place"
        )
        return refuse(RefusalKind.HIDDEN_DEPENDENCY, why)
    # (what the arguments read themselves, not what the predicates read: a value set under another
    # branch on the same result owes that branch, which no predicate of this call decides)
    allowed = frozenset(id(guard.ref) for guard in when)
    other = _made_under_others(op.inputs, allowed)
    if other is not None:
        on = f" of {_named(ops, min(other.deps))}" if other.deps else ""
        why = f"it is handed a value made under a branch on a result{on}, or in a loop's round over it,"
        return refuse(RefusalKind.HIDDEN_DEPENDENCY, f"{why} that it is not itself under")
    hidden = sorted(union(_unread_deps(ref, allowed) for ref in op.inputs) - needs)
    needs |= outputs_needed(tuple(guard.ref for guard in when))
    stale = sorted(k for k in needs if k in reads and reads[k] != facts.effects)
    changer = facts.changer or "a function not known to be pure"
    if stale:
        # a tool's list, read when the run made the call: a function that ran since may have changed it
        why = f"{changer} ran after {_named(ops, stale[0])} and may have changed what it reads of that result"
        return refuse(RefusalKind.ARGUMENT_CHANGED_BY_HELPER, why)
    if hidden:
        # what it is handed depends on a call whose result the recipe does not read: a list filtered
        # on results (`[p for p, g in zip(ps, grades) if "yes" in g]`), a loop over a call's result,
        # an object a call changed; a recipe would rebuild it as the trace had it
        why = f"what it is handed depends on {_named(ops, hidden[0])} in a way no recipe can recompute"
        if _effect_inside(op.inputs):
            why += f": {facts.changer or 'a call'} may have changed it in place after that call"
        return refuse(RefusalKind.HIDDEN_DEPENDENCY, why)
    # a result made in its turn is known once the run made it: one that no change came after (the
    # same count of changes) is read after every function that ran before the call
    settled = any(turns.get(k) == facts.effects for k in needs)
    observed = facts.callee
    try:
        value = evaluate(callee, env)
    except NotComputable as exc:
        why = f"its callee {format_value(callee)}: {exc}{_last_change(callee, facts)}"
        return refuse(RefusalKind.CALLEE_NOT_COMPUTABLE, why)
    if observed is not MISSING and not same_value(value, observed):
        return refuse(
            RefusalKind.CALLEE_DIFFERS,
            f"its callee {format_value(callee)} is computed differently than it was called",
        )
    awaited = _awaited_callee(value, args, env)
    if never_ahead(awaited):
        return refuse(
            RefusalKind.WAITS,
            f"{describe_callee(awaited)} waits or synchronises: issuing it early would change timing",
        )
    owner = getattr(value, "__self__", None)
    if isinstance(value, types.BuiltinMethodType) and isinstance(owner, _SHARED_CONTAINERS):
        # `answers.append`: issued ahead, it would change (or read) the list out of turn, and calls
        # issued together would append in any order
        return refuse(
            RefusalKind.SHARED_CONTAINER_METHOD,
            f"its callee {describe_callee(value)} is a method of a {type(owner).__name__} the function "
            "holds: issued early, it would change or read it out of turn",
        )
    for ref in args:
        if _passes_retained(ref, retained):
            # a recipe would build a copy, but the callee must get the very object the code keeps
            # (checked first: the trace holds that object as the code left it, not as it was passed)
            return refuse(
                RefusalKind.ARGUMENT_KEPT,
                f"argument {format_value(ref)} is a mutable object the function builds and keeps: hand "
                "the call a copy (`list(x)`, `dict(x)`) and it can be issued ahead",
            )
        try:
            value = evaluate(ref, env)
        except NotComputable as exc:
            why = f"argument {format_value(ref)}: {exc}{_last_change(ref, facts)}"
            return refuse(RefusalKind.ARGUMENT_NOT_COMPUTABLE, why)
        traced = _traced_value(ref)
        if traced is MISSING:
            if outputs_needed((ref,)) and ref.source is Source.EXPR:
                return refuse(
                    RefusalKind.ARGUMENT_UNCHECKABLE,
                    f"argument {format_value(ref)} could not be checked against the trace",
                )
        elif not same_value(value, traced):
            return refuse(
                RefusalKind.ARGUMENT_DIFFERS,
                f"argument {format_value(ref)} is computed differently than it was passed",
            )
        shared = _shared_inside(ref, value)
        if shared is not None:
            # the function holds it too: it could change it (or the callee could) before the call site
            return refuse(
                RefusalKind.ARGUMENT_SHARED,
                f"argument {format_value(ref)} holds {shared}, which the function shares: hand the call "
                "a copy (`list(x)`, `dict(x)`) and it can be issued ahead",
            )
        # (a local read from the frame is exempt: it is read after the last such function ran, see
        # readpoints.read_points)
        changeable = not purity.is_immutable(value) and local_of(ref) is None and _reads_changeable(ref)
        if facts.after_unknown_call and changeable and not settled:
            why = f"{changer} ran before it and may have changed its argument {format_value(ref)}"
            return refuse(RefusalKind.ARGUMENT_CHANGED_BY_HELPER, why)
    return Recipe(op, callee, args, op.kwnames, needs, True, None, facts, when)


def _last_change(ref: ValueRef, facts: CallFacts) -> str:
    """For a value that reads an object changed in place (`effect(...)`), the last change before the
    call, which may be that change: ` (it reads ...; the last change before the call: the code at
    app.py:12)`; else ""."""
    if not facts.changer or not _effect_inside((ref,)):
        return ""
    return f" (it reads an object changed in place; the last change before the call: {facts.changer})"


def _reads_changeable(ref: ValueRef) -> bool:
    """Does `ref` read an object that existed before the call and could be changed in place (an input,
    a global, a result, through a path or whole)?  A value a recipe computes afresh from immutable
    ones (`json.loads(%0)["args"]` of a str result) is new: no function that ran earlier could have
    changed it."""
    todo, seen = [ref], set()
    while todo:
        current = todo.pop()
        if id(current) in seen or local_of(current) is not None:
            continue  # (a local read from the frame is read after the last such function ran)
        seen.add(id(current))
        if current.source is Source.EXPR:
            # (a pure call's callee is a function known to be pure, not data it reads)
            calls = current.kind in (ExprKind.CALL, ExprKind.CALL_KW)
            todo.extend(current.operands[1:] if calls else current.operands)
        elif current.source is Source.UNKNOWN or current.path or not purity.is_immutable(current.value):
            return True
    return False


def _traced_value(ref: ValueRef) -> Any:
    """The value `ref` had in the trace: its own, or for `{**kw}` (how `f(**kw)` passes a dict, whose
    merge the trace does not see) the merge of the dicts it unpacks; else MISSING."""
    if ref.value is not MISSING or ref.source is not Source.EXPR or ref.kind is not ExprKind.DICT or ref.path:
        return ref.value
    merged: dict[Any, Any] = {}
    for operand in ref.operands:
        unpacked = operand.operands[0].value if operand.kind is ExprKind.UNPACK and operand.operands else None
        if operand.kind is not ExprKind.UNPACK or type(unpacked) is not dict:
            return MISSING
        merged.update(unpacked)
    return merged if ref.operands else MISSING


def _predicates(op: Operation, facts: CallFacts) -> tuple[Guard, ...] | None:
    """The branches on results a call is reached through, as predicates; None when one is a branch no
    predicate decides (a loop's test: each round is reached through all the earlier ones), or when
    the facts do not account for every branch of the operation's `control`."""
    on_results = [condition.cond for condition in facts.conditions if condition.cond.deps]
    if len(on_results) != len(op.control):
        return None
    if any(a is not b for a, b in zip(on_results, op.control, strict=True)):
        return None
    return predicates(facts.conditions)


def _no_predicate(facts: CallFacts) -> str:
    """Why no predicate decides a branch on a result the call is reached through, naming it."""
    undecided = [c for c in facts.conditions if c.cond.deps and c.outcome is None]
    site = next((c.site for c in undecided if c.site is not None), None)
    if site is None:
        return "it is reached through a branch on an earlier call's result that no predicate decides"
    return (
        f"it is reached through the branch at {site}, on an earlier call's result, that no predicate "
        "decides (a loop's test, a handled exception)"
    )


def _undecidable(when: tuple[Guard, ...], env: Env) -> str | None:
    """Why a predicate cannot decide its branch ahead, or None when each can: it is computed by a
    recipe from what it reads (nothing else it depends on), and gives the way the trace went."""
    for index, guard in enumerate(when):
        outer = frozenset(id(g.ref) for g in when[:index])  # the branches it is itself reached through
        hidden = _unread_deps(guard.ref, outer) - outputs_needed((guard.ref,))
        if hidden or _effect_inside((guard.ref,)) or _made_under_others((guard.ref,), outer) is not None:
            where = f" (at {guard.where})" if guard.where else ""
            why = f"{format_value(guard.ref)}{where} depends on a result in a way no recipe recomputes"
        else:
            miss = guard.check(env)
            if miss is None:
                continue
            why = str(miss)  # (which names the branch's site)
        return f"a branch on a result it is reached through is not decided ahead: {why}"
    return None


def _made_under_others(refs: tuple[ValueRef, ...], branches: frozenset[int]) -> ValueRef | None:
    """The condition of a branch on results (a loop's round included) other than `branches` (ids of
    the conditions a recipe's predicates decide) that a value in `refs` was made under, else None.
    Whether it exists, and what it holds (how many rounds appended to a list), is that branch's
    doing.  (A local read from the function's frame is read once the real run has made it.)"""
    todo, seen = list(refs), set()
    while todo:
        ref = todo.pop()
        if id(ref) in seen or local_of(ref) is not None:
            continue
        seen.add(id(ref))
        other = next((cond for cond in ref.under if id(cond) not in branches), None)
        if other is not None:
            return other
        todo.extend(ref.operands)
    return None


def _effect_inside(refs: tuple[ValueRef, ...]) -> bool:
    """Does a value in `refs` stand for an object changed in place (an `EFFECT`)?  Under a branch on a
    result such a change may have been made by the branch itself, after the call would be issued."""
    return any(ref.kind is ExprKind.EFFECT for ref in walk(refs))


def _unread_deps(ref: ValueRef, branches: frozenset[int] = frozenset()) -> frozenset[int]:
    """The calls `ref` depends on other than through the results it reads: a branch on a result that
    chose what a list holds, a call that may have changed an object it reads.  (A local read from the
    function's frame has none: it is read once the real run has made it, see readpoints.read_points.)  Each
    expression adds what its operands do not bring; shared operands are walked once.  A value made
    under branches on results, all of them among `branches` (ids of the conditions a recipe's
    predicates decide), owes them nothing: the predicates say whether it is made."""
    unread: frozenset[int] = frozenset()
    seen: set[int] = set()
    todo = [ref]
    while todo:
        current = todo.pop()
        if id(current) in seen or local_of(current) is not None:
            continue
        seen.add(id(current))
        if current.source is Source.OUTPUT:
            added = current.deps - {current.op}
        else:
            added = current.deps - union(operand.deps for operand in current.operands)
            todo.extend(current.operands)
        if current.under and all(id(cond) in branches for cond in current.under):
            added -= union(cond.deps for cond in current.under)
        unread |= added
    return unread


_DISPLAYS = frozenset({ExprKind.LIST, ExprKind.TUPLE, ExprKind.DICT, ExprKind.SET, ExprKind.CONST})


def _shared_inside(ref: ValueRef, value: Any) -> str | None:
    """A list, dict, set or bytearray the function can reach that the argument is or holds by
    reference (directly, or inside a display built around it: `{"items": xs}`, `[xs]`), else None.
    A recipe would hand the callee that very object early, before the glue changes it."""
    if ref.source is not Source.EXPR or ref.path:
        return f"a {type(value).__name__}" if type(value) in _SHARED_CONTAINERS else None
    if ref.kind not in _DISPLAYS:
        return None  # computed by a pure call or operator: new data, compared by value
    for operand in ref.operands:
        found = _shared_inside(operand, operand.value)
        if found is not None:
            return f"{format_value(operand)} ({found})"
    return None


def _passes_retained(ref: ValueRef, retained: Mapping[int, tuple[ValueRef, ...]]) -> bool:
    """Would the value passed contain a list, dict or set the function also keeps (see `Effects.retain`)?

    Only containers that end up inside the argument itself count: `str(kept)` passes a string.
    """
    if (
        ref.source is not Source.EXPR
        or ref.kind not in (ExprKind.LIST, ExprKind.DICT, ExprKind.SET, ExprKind.TUPLE)
        or ref.path
    ):
        return False
    if ref.kind is not ExprKind.TUPLE and retained.get(id(ref.operands)) is ref.operands:
        return True
    return any(_passes_retained(operand, retained) for operand in ref.operands)


def never_ahead(callee: Any) -> bool:
    """Calls whose point is *when* they happen: delays, locks, queues, events, input; and anything
    of `asyncio` (sleep, wait_for, gather, its locks, queues, events and futures, a loop's methods)."""
    if callee in _DELAYS:
        return True
    owner = getattr(callee, "__self__", None)
    name = getattr(callee, "__name__", "")
    if owner is not None and isinstance(owner, _SYNC_TYPES) and name in _SYNC_METHODS:
        return True
    module = type(owner).__module__ if owner is not None else getattr(callee, "__module__", None)
    return isinstance(module, str) and (module == "asyncio" or module.startswith("asyncio."))


def _awaited_callee(callee: Any, args: Sequence[ValueRef], env: Env) -> Any:
    """The callee itself, or, for an async function's await site (`ir.values.awaited_call`), the
    callee of the call it awaits (when it can be computed: else the arguments are refused later)."""
    if not args or not awaits(callee):
        return callee
    try:
        return evaluate(args[0], env)
    except NotComputable:
        return callee

"""Plan: what a traced graph lets a later call do ahead of time, and when it applies.

A `Plan` holds, for every slow call of the trace, a *recipe*: its callee and
arguments as `ValueRef`s (paths into the inputs and into earlier results,
constants, globals and cells read at run time, pure expressions of those),
compiled once into a function that recomputes them on new inputs (`slices`).  A call gets a recipe only when
evaluating it on the trace's own inputs gives back exactly the arguments the
call really received.  A recipe-less call, one reached through a branch on an
earlier call's result, or one after a decision no guard can check, is never
issued ahead: it runs in its turn, and its recipe's `Refusal` says why (a `RefusalKind` for code,
the text for people).

`Guard`s decide whether a plan applies to new arguments: the types of the
inputs it reads, the identity of the callees it would call, and every branch
decision of the trace that did not depend on a slow call (loop lengths
included), re-evaluated on the new inputs.  A failed guard is a value with a
reason, not an exception.
"""

from __future__ import annotations

import builtins
import dis
import enum
import functools
import queue
import threading
import time
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from xcs_bc.build import purity
from xcs_bc.build.trace import BRANCHES, CallFacts, Decision, DecisionKind, LoopRecord, RunFacts
from xcs_bc.ir import (
    MAX_DEPTH,
    MISSING,
    ComputationGraph,
    ExprKind,
    Local,
    Operation,
    OpType,
    Source,
    ValueRef,
)
from xcs_bc.ir.text import format_value
from xcs_bc.ir.values import describe_callee, local_of, union
from xcs_bc.plan.slices import SIZED, Env, NotComputable, Slice, evaluate, plain, same_value, too_deep

__all__ = [  # Env, NotComputable, SIZED, evaluate and same_value are slices' (imported here for callers)
    "SIZED",
    "Env",
    "Guard",
    "GuardKind",
    "Miss",
    "MissKind",
    "NotComputable",
    "Plan",
    "Recipe",
    "Refusal",
    "RefusalKind",
    "Schedule",
    "dependents_of",
    "evaluate",
    "local_names",
    "local_reads",
    "make_plan",
    "outputs_needed",
    "same_value",
]

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


# -- guards --------------------------------------------------------------------------------------


class GuardKind(enum.Enum):
    """What a guard checks of the value its `ref` computes."""

    TYPE = "type"  # its exact type
    IDENTITY = "is"  # it is the very object seen when tracing (a callee, a global)
    TRUTH = "truth"  # its truth, for a branch taken on it
    NONE = "none"  # whether it is None, for a branch taken on it
    LENGTH = "loop"  # its length, for a loop over it
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
        elif kind is GuardKind.LENGTH:
            sized = type(value) in SIZED  # len() of a built-in container runs no user code
            ok = sized and len(value) == self.expected
            seen = len(value) if sized else type(value).__qualname__
        else:  # numpy arrays
            ok = (getattr(value, "shape", None), str(getattr(value, "dtype", ""))) == self.expected
            seen = (getattr(value, "shape", None), str(getattr(value, "dtype", "")))
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
            GuardKind.SHAPE: f"{text} has shape and dtype {self.expected}",
        }[self.kind]


def _short(value: Any) -> str:
    text = repr(value) if plain(value) else f"<{type(value).__qualname__}>"
    return text if len(text) <= 40 else text[:37] + "..."


# -- recipes -------------------------------------------------------------------------------------


class RefusalKind(enum.Enum):
    """Why a recipe is not issued ahead (its `Refusal.text` says it for people)."""

    NOT_A_CALL = "not a call"  # a slow step that is not a call (an attribute, an operator)
    UNDER_RESULT_BRANCH = "under a branch on a result"
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

    @functools.cached_property
    def compiled(self) -> Slice:
        """Callee and arguments as one function of the leaves they read (see `slices`)."""
        return Slice((self.callee, *self.args))

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


def _make_recipe(
    op: Operation, facts: CallFacts, env: Env, cutoff: int, retained: Mapping[int, tuple[ValueRef, ...]]
) -> Recipe:
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
    if op.control:
        return refuse(
            RefusalKind.UNDER_RESULT_BRANCH, "it is reached through a branch on an earlier call's result"
        )
    if op.id >= cutoff:
        return refuse(RefusalKind.AFTER_UNCHECKABLE_BRANCH, "it comes after a branch no guard can check")
    deepest = max((ref.depth for ref in op.inputs), default=0)
    if deepest > MAX_DEPTH:  # checked first: the checks below recurse into the expressions
        return refuse(RefusalKind.TOO_DEEP, f"an argument is not computed ahead: {too_deep(deepest)}")
    hidden = sorted(union(_unread_deps(ref) for ref in op.inputs) - needs)
    if hidden:
        # what it is handed depends on a call whose result the recipe does not read: a list filtered
        # on results (`[p for p, g in zip(ps, grades) if "yes" in g]`), a loop over a call's result,
        # an object a call changed; a recipe would rebuild it as the trace had it
        return refuse(
            RefusalKind.HIDDEN_DEPENDENCY,
            f"what it is handed depends on %{hidden[0]} in a way no recipe can recompute",
        )
    observed = facts.callee
    try:
        value = evaluate(callee, env)
    except NotComputable as exc:
        return refuse(RefusalKind.CALLEE_NOT_COMPUTABLE, f"its callee {format_value(callee)}: {exc}")
    if observed is not MISSING and not same_value(value, observed):
        return refuse(
            RefusalKind.CALLEE_DIFFERS,
            f"its callee {format_value(callee)} is computed differently than it was called",
        )
    if _never_ahead(value):
        return refuse(
            RefusalKind.WAITS,
            f"{describe_callee(value)} waits or synchronises: issuing it early would change timing",
        )
    owner = getattr(value, "__self__", None)
    if isinstance(value, types.BuiltinMethodType) and isinstance(owner, _SHARED_CONTAINERS):
        # `answers.append`: issued ahead, it would change (or read) the list out of turn, and calls
        # issued together would append in any order
        return refuse(
            RefusalKind.SHARED_CONTAINER_METHOD,
            f"its callee {describe_callee(value)} is a method of a {type(owner).__name__}",
        )
    for ref in args:
        try:
            value = evaluate(ref, env)
        except NotComputable as exc:
            return refuse(RefusalKind.ARGUMENT_NOT_COMPUTABLE, f"argument {format_value(ref)}: {exc}")
        if ref.value is MISSING:
            if outputs_needed((ref,)) and ref.source is Source.EXPR:
                return refuse(
                    RefusalKind.ARGUMENT_UNCHECKABLE,
                    f"argument {format_value(ref)} could not be checked against the trace",
                )
        elif not same_value(value, ref.value):
            return refuse(
                RefusalKind.ARGUMENT_DIFFERS,
                f"argument {format_value(ref)} is computed differently than it was passed",
            )
        shared = _shared_inside(ref, value)
        if shared is not None:
            # the function holds it too: it could change it (or the callee could) before the call site
            return refuse(
                RefusalKind.ARGUMENT_SHARED,
                f"argument {format_value(ref)} holds {shared}, which the function shares",
            )
        # (a local read from the frame is exempt: it is read after the last such function ran, see
        # _ready_at)
        if facts.after_unknown_call and not purity.is_immutable(value) and local_of(ref) is None:
            why = "a function not known to be pure ran before it and may have changed"
            return refuse(RefusalKind.ARGUMENT_CHANGED_BY_HELPER, f"{why} its argument {format_value(ref)}")
        if _passes_retained(ref, retained):
            # a recipe would build a copy, but the callee must get the very object the code keeps
            return refuse(
                RefusalKind.ARGUMENT_KEPT,
                f"argument {format_value(ref)} is a mutable object the function builds and keeps",
            )
    return Recipe(op, callee, args, op.kwnames, needs, True, None, facts)


def _unread_deps(ref: ValueRef) -> frozenset[int]:
    """The calls `ref` depends on other than through the results it reads: a branch on a result that
    chose what a list holds, a call that may have changed an object it reads.  (A local read from the
    function's frame has none: it is read once the real run has made it, see _ready_at.)  Each
    expression adds what its operands do not bring; shared operands are walked once."""
    unread: frozenset[int] = frozenset()
    seen: set[int] = set()
    todo = [ref]
    while todo:
        current = todo.pop()
        if id(current) in seen or local_of(current) is not None:
            continue
        seen.add(id(current))
        if current.source is Source.OUTPUT:
            unread |= current.deps - {current.op}
            continue
        unread |= current.deps - union(operand.deps for operand in current.operands)
        todo.extend(current.operands)
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


# -- memoized callees: every call that may share a cache entry must go through the dispatcher -------


def _memo_sites_dispatched(
    graph: ComputationGraph, recipes: tuple[Recipe, ...], cutoff: int, run: RunFacts
) -> tuple[Recipe, ...]:
    """Calls of a memoized callee are issued ahead only when every place of the function that names it
    and a replay may run is a call site the replay dispatches.

    A replay never makes two calls at once that may read the same cache entry: a call issued ahead
    waits for a running one, and one made in its turn at a dispatched site waits too.  But a site is
    dispatched only when the trace made a slow call there: a cache hit is fast (glue, no operation),
    and a site on a path the trace did not take made none.  Such a site calls the wrapper directly,
    next to a call issued ahead for the same key, and both miss the cache: the function behind it
    runs twice where the plain run calls it once.  So the code of the function (and the code nested
    in it) must name the wrapper, by the names its planned calls reach it through or its own name:
    where the trace ran, only at dispatched call sites; where it did not, nowhere, unless the replay
    surely goes the trace's way (every branch it took was on values a guard checks, no exception was
    handled, and no decision cut the plan off), so that it does not run there either.  (A helper
    function that calls the wrapper is not seen: see the assumptions on hidden state in docs/jit.md.)
    """
    root, executed = run.root_code, run.executed
    guarded = not run.unguarded_paths and cutoff >= len(graph.operations)
    sites: dict[int, set[tuple[int, int]]] = {}  # id(wrapper) -> dispatched call sites that called it
    names: dict[int, set[str]] = {}  # id(wrapper) -> the names it is reached through
    for recipe in recipes:
        op = recipe.op
        wrapper = purity.memo_wrapper(recipe.facts.callee)
        if wrapper is None or op.op_type is not OpType.CALL:
            continue
        sites.setdefault(id(wrapper), set()).add((id(recipe.facts.code), op.site.offset))
        found = names.setdefault(id(wrapper), {str(getattr(wrapper, "__name__", ""))})
        found.add(_handle(recipe.callee) or "")
    undispatched: dict[int, bool] = {}  # id(wrapper) -> may a replay call it where it is not dispatched?
    for key, wanted in names.items():
        ran, not_run = _loads(root, wanted, executed) if isinstance(root, types.CodeType) else (1, 1)
        undispatched[key] = "" in wanted or ran > len(sites[key]) or bool(not_run and not guarded)
    out = []
    for recipe in recipes:
        wrapper = purity.memo_wrapper(recipe.facts.callee) if recipe.ahead else None
        if wrapper is not None and undispatched[id(wrapper)]:
            name = describe_callee(wrapper)
            why = (
                f"the function calls {name} (a memoized callee) at a site that is not dispatched too "
                "(a cache hit while tracing, or a path the trace did not take): it would not wait "
                "for a call issued ahead that fills the same cache entry"
            )
            recipe = replace(recipe, ahead=False, refusal=Refusal(RefusalKind.MEMO_UNDISPATCHED, why))
        out.append(recipe)
    return tuple(out)


def _handle(ref: ValueRef) -> str | None:
    """The name a callee ref is read by at its call site: a global, cell, input, or attribute."""
    if ref.path:
        last = ref.path[-1]
        return str(last.key) if last.kind == "attr" else None
    if ref.source in (Source.GLOBAL, Source.CELL, Source.INPUT) and ref.name:
        return ref.name
    return None


def _loads(code: types.CodeType, names: set[str], executed: frozenset[tuple[int, int]]) -> tuple[int, int]:
    """How many instructions of `code` and the code nested in it read one of `names` (as a global, a
    local, a cell or an attribute): those that ran while tracing (`executed`), and the others.  Not
    those handing a cell to a nested function's closure (LOAD_CLOSURE, which 3.13 spells LOAD_FAST):
    the nested code reads it itself."""
    ran = not_run = 0
    todo = [code]
    while todo:
        current = todo.pop()
        todo.extend(const for const in current.co_consts if isinstance(const, types.CodeType))
        cells = set(current.co_cellvars) | set(current.co_freevars)
        for ins in dis.get_instructions(current):
            if not ins.opname.startswith("LOAD_") or ins.opname == "LOAD_CLOSURE":
                continue
            argval = ins.argval
            loaded = argval if isinstance(argval, tuple) else (argval,)
            closure = ins.opname.startswith("LOAD_FAST")  # of a cell: only to build a closure (3.13)
            count = sum(
                isinstance(name, str) and name in names and not (closure and name in cells) for name in loaded
            )
            if (id(current), ins.offset) in executed:
                ran += count
            else:
                not_run += count
    return ran, not_run


def _never_ahead(callee: Any) -> bool:
    """Calls whose point is *when* they happen: delays, locks, queues, events, input."""
    if callee in _DELAYS:
        return True
    owner = getattr(callee, "__self__", None)
    name = getattr(callee, "__name__", "")
    return owner is not None and isinstance(owner, _SYNC_TYPES) and name in _SYNC_METHODS


# -- the plan ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """What one replay may issue ahead: a recipe per call it expects, in the order it expects them.

    `origin[i]` is the traced operation call i repeats (itself, unless `generalize` made the
    schedule for other loop lengths, then `lengths` says which).  `dependents` maps a call to the
    calls (indices here) whose recipes need its result.
    """

    recipes: tuple[Recipe, ...]
    dependents: Mapping[int, tuple[int, ...]]
    origin: tuple[int, ...]
    lengths: tuple[int, ...]
    ready_at: Mapping[int, tuple[int, ...]] = field(default_factory=dict)  # see Plan.ready_at


@dataclass
class Plan:
    """A traced graph made reusable: guards, recipes, and the sites its clone dispatches."""

    graph: ComputationGraph
    guards: tuple[Guard, ...]
    recipes: tuple[Recipe, ...]
    cutoff: int  # operations from here on are never issued ahead
    cutoff_reason: str
    dependents: dict[int, tuple[int, ...]]  # op id -> planned ops whose recipes need its result
    decision_guards: dict[int, Guard]  # index in the decisions -> its guard (those before the cutoff)
    # call i -> planned calls that read the function's locals and may be issued when the run is at call i
    ready_at: dict[int, tuple[int, ...]] = field(default_factory=dict)
    mispredictions: int = 0
    replays: int = 0
    # traced op ids whose planned call was mispredicted once: from then on they run in their turn (a
    # helper not known to be pure may change what they read, e.g. a global counter or a config dict)
    learned: set[int] = field(default_factory=set)

    @functools.cached_property
    def schedule(self) -> Schedule:
        """The trace's own schedule: every recipe in trace order."""
        return Schedule(self.recipes, self.dependents, tuple(range(len(self.recipes))), (), self.ready_at)

    def check(self, env: Env) -> Miss | None:
        """None when every guard holds for `env`, else the first failure."""
        for guard in self.guards:
            failure = guard.check(env)
            if failure is not None:
                return failure
        return None


def make_plan(
    graph: ComputationGraph,
    decisions: list[Decision],
    env: Env,
    retained: Mapping[int, tuple[ValueRef, ...]] | None = None,
    loops: Sequence[LoopRecord] = (),
    calls: Sequence[CallFacts] = (),
    run: RunFacts | None = None,
) -> Plan:
    """Guards and recipes for `graph`, checked against the trace's own inputs in `env`; `calls` and
    `run` are what the trace knew beside its values (see `build.trace.Trace`), by operation id."""
    env.outputs.update({op.id: op.outputs[0].value for op in graph.operations if op.outputs})
    cutoff, cutoff_reason = len(graph.operations), ""
    holding: dict[int, Guard] = {}
    zipped = _zip_guards(decisions, loops, env)
    for index, decision in enumerate(decisions):
        guard = zipped.get(index) or _decision_guard(decision)
        if guard is None or guard.check(env) is not None:
            if decision.before < cutoff:  # the earliest unguardable decision wins
                cutoff = decision.before
                cutoff_reason = _cutoff_reason(decision)
        else:
            holding[index] = guard
    # a guard for a decision after the cutoff is not needed: nothing after it is issued ahead
    checked = {index: guard for index, guard in holding.items() if decisions[index].before < cutoff}
    facts = tuple(calls) or tuple(CallFacts() for _ in graph.operations)
    made = tuple(_make_recipe(op, facts[op.id], env, cutoff, retained or {}) for op in graph.operations)
    recipes = _memo_sites_dispatched(graph, made, cutoff, run or RunFacts())
    ready_at = _ready_at(recipes, cutoff)
    waiting = {op_id for planned in ready_at.values() for op_id in planned}
    final = tuple(
        replace(recipe, ahead=False, refusal=_no_point(recipe))
        if recipe.ahead and local_reads(recipe) and recipe.op.id not in waiting
        else recipe
        for recipe in recipes
    )
    kept = list(checked.values())
    reads = [guard.ref for guard in kept]
    if not any(recipe.ahead for recipe in final):
        # A plan that issues nothing gains nothing from applying widely, and where it applies no
        # call is traced again: one traced with an empty list (no call, cutoff 0) would stand in for
        # every later list.  It keeps every decision a guard can check, and the types of the inputs
        # any decision read, so it applies only to calls that go the trace's way as far as can be told.
        # (Not those that read what a call brings no value for yet: the function's locals.)
        called = Env(env.args, env.globals, env.cells)
        kept += [g for i, g in holding.items() if i not in checked and g.check(called) is None]
        reads = [d.cond for d in decisions if d.cond is not None and d.cond.source is not Source.UNKNOWN]
    guards = _input_guards(recipes, reads, env) + kept
    return Plan(graph, tuple(guards), final, cutoff, cutoff_reason, dependents_of(final), checked, ready_at)


def local_reads(recipe: Recipe) -> tuple[Local, ...]:
    """The locals of the function a recipe reads (which assignment of each), in a fixed order."""
    reads: dict[Local, None] = {}
    todo = [recipe.callee, *recipe.args]
    while todo:
        ref = todo.pop()
        found = local_of(ref)
        if found is not None:
            reads[found] = None
        todo.extend(ref.operands)
    return tuple(reads)


def _ready_at(recipes: tuple[Recipe, ...], cutoff: int) -> dict[int, tuple[int, ...]]:
    """Where a replay may read the locals a recipe needs: at call j (made before it, at a point every
    replay reaches the same way) when, in the trace, each local had had the very assignment the
    recipe reads, and nothing that might change that object (a function not known to be pure, a change
    in place of anything but a container the glue built) ran between j and the recipe's call.
    """
    ready: dict[int, list[int]] = {}
    reliable = _reliable_points(recipes, cutoff)
    for recipe in recipes:
        wanted = local_reads(recipe) if recipe.ahead else ()
        if not wanted:
            continue
        op = recipe.op
        for j in reliable:
            if j >= op.id:
                break
            point = recipes[j].facts
            if point.effects == recipe.facts.effects and all(
                point.assigned.get(local.name) == local.assignment for local in wanted
            ):
                ready.setdefault(j, []).append(op.id)
    return {j: tuple(v) for j, v in ready.items()}


def local_names(recipe: Recipe) -> str:
    """The locals a recipe reads from the function's frame, for people: `patch, record`."""
    return ", ".join(sorted({local.name for local in local_reads(recipe)}))


def _no_point(recipe: Recipe) -> Refusal:
    names = local_names(recipe)
    return Refusal(
        RefusalKind.NO_POINT,
        f"it reads {names}, made by the function itself, and no earlier call is a point to read it at",
    )


def _reliable_points(recipes: tuple[Recipe, ...], cutoff: int) -> list[int]:
    """Calls a replay dispatches at the same point of the run as the trace made them: call sites all of
    whose calls so far were unconditional (else the n-th call at a site may be another one)."""
    points, shaky = [], set()
    for recipe in recipes:
        op = recipe.op
        key = (id(recipe.facts.code), op.site.offset)
        if op.op_type is not OpType.CALL or op.id >= cutoff or op.control or key in shaky:
            shaky.add(key)
            continue
        points.append(op.id)
    return points


def dependents_of(recipes: tuple[Recipe, ...]) -> dict[int, tuple[int, ...]]:
    """For each op, the planned ops (by index in `recipes`) whose recipes need its result."""
    dependents: dict[int, list[int]] = {}
    for index, recipe in enumerate(recipes):
        if recipe.ahead:
            for need in recipe.needs:
                dependents.setdefault(need, []).append(index)
    return {k: tuple(v) for k, v in dependents.items()}


_GUARD_KINDS = {
    DecisionKind.TRUTH: GuardKind.TRUTH,
    DecisionKind.NONE: GuardKind.NONE,
    DecisionKind.LENGTH: GuardKind.LENGTH,
}


def _decision_guard(decision: Decision) -> Guard | None:
    """The guard that checks a branch on a value; None for an event no guard can check."""
    cond = decision.cond
    if decision.kind not in BRANCHES or cond is None or cond.source is Source.UNKNOWN:
        return None
    return Guard(_GUARD_KINDS[decision.kind], cond, decision.expected, str(decision.site))


def _cutoff_reason(decision: Decision) -> str:
    """Why nothing from `decision` on is issued ahead, for people."""
    if decision.site is None:  # only a loop left by break or return has no site
        return "a loop left by break or return cannot be checked before the call"
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


def _zip_guards(decisions: list[Decision], loops: Sequence[LoopRecord], env: Env) -> dict[int, Guard]:
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


def _input_guards(recipes: tuple[Recipe, ...], reads: list[ValueRef], env: Env) -> list[Guard]:
    """Types of the inputs the plan reads (`reads` are its guards' refs), identity of the globals and
    cells it calls."""
    guards: list[Guard] = []
    seen: set[tuple[str, str]] = set()
    roots = [ref for recipe in recipes if recipe.ahead for ref in (recipe.callee, *recipe.args)]
    roots += reads
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
    for recipe in recipes:
        callee = recipe.callee
        if recipe.ahead and callee.source in (Source.GLOBAL, Source.CELL) and ("is", callee.name) not in seen:
            seen.add(("is", callee.name))
            root = ValueRef(callee.source, name=callee.name)
            try:
                guards.append(Guard(GuardKind.IDENTITY, root, evaluate(root, env)))
            except NotComputable:
                continue
    return guards

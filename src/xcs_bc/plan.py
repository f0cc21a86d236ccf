"""Plan: what a traced graph lets a later call do ahead of time, and when it applies.

A `Plan` holds, for every slow call of the trace, a *recipe*: its callee and
arguments as `ValueRef`s (paths into the inputs and into earlier results,
constants, globals and cells read at run time, pure expressions of those),
which `evaluate` recomputes on new inputs.  A call gets a recipe only when
evaluating it on the trace's own inputs gives back exactly the arguments the
call really received.  A recipe-less call, one reached through a branch on an
earlier call's result, or one after a decision no guard can check, is never
issued ahead: it runs in its turn.

`Guard`s decide whether a plan applies to new arguments: the types of the
inputs it reads, the identity of the callees it would call, and every branch
decision of the trace that did not depend on a slow call (loop lengths
included), re-evaluated on the new inputs.  A failed guard is a value with a
reason, not an exception.
"""

from __future__ import annotations

import builtins
import functools
import operator
import queue
import threading
import time
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from xcs_bc import purity
from xcs_bc.build import Decision
from xcs_bc.ir import MISSING, ComputationGraph, Operation, OpType, PathStep, Source, ValueRef
from xcs_bc.printing import format_value
from xcs_bc.values import describe_callee, local_of, peek_attr, peek_item, unknown_origin


class NotComputable(Exception):
    """A recipe cannot be evaluated (yet, or at all) without running user code."""


@dataclass
class Env:
    """What recipes read: the call's arguments, the function's globals and cells, results so far."""

    args: Mapping[str, Any]
    globals: Mapping[str, Any]
    cells: Mapping[str, types.CellType]
    outputs: dict[int, Any] = field(default_factory=dict)
    locals: Mapping[str, Any] = field(default_factory=dict)  # local_tag -> value read from the frame


_SAFE_VALUES = (str, bytes, int, float, complex, bool, type(None), tuple, list, dict, frozenset, range, slice)
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
SIZED: tuple[type, ...] = (  # len() of these runs no user code
    str,
    bytes,
    tuple,
    list,
    dict,
    set,
    frozenset,
    range,
    type({}.keys()),
    type({}.values()),
    type({}.items()),
)
_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv, "//": operator.floordiv,
    "%": operator.mod, "**": operator.pow, "<": operator.lt, "<=": operator.le, "==": operator.eq,
    "!=": operator.ne, ">": operator.gt, ">=": operator.ge, "is": operator.is_, "is not": operator.is_not,
    "in": lambda a, b: operator.contains(b, a), "not in": lambda a, b: not operator.contains(b, a),
}  # fmt: skip


def evaluate(ref: ValueRef, env: Env) -> Any:
    """The value `ref` describes, computed from `env` without running user code (else NotComputable).

    Whatever goes wrong while computing (a pure helper raising on new data) is NotComputable too:
    the call then runs in its turn, and the real run meets the error where the plain one would.
    """
    try:
        return _steps(_head(ref, env), ref.path)
    except NotComputable:
        raise
    except Exception as exc:  # noqa: BLE001 - never let a recipe's failure reach the user's call
        raise NotComputable(f"computing {format_value(ref)} raised {type(exc).__name__}") from exc


def _head(ref: ValueRef, env: Env) -> Any:
    source = ref.source
    if source is Source.INPUT:
        if ref.name not in env.args:
            raise NotComputable(f"input {ref.name!r} is not an argument")
        return env.args[ref.name]
    if source is Source.OUTPUT:
        if ref.op not in env.outputs:
            raise NotComputable(f"%{ref.op} has not returned yet")
        return env.outputs[ref.op]
    if source is Source.CONST:
        return ref.value
    if source is Source.GLOBAL:
        if ref.name in env.globals:
            return env.globals[ref.name]
        if hasattr(builtins, ref.name):
            return getattr(builtins, ref.name)
        raise NotComputable(f"global {ref.name!r} is not defined")
    if source is Source.CELL:
        cell = env.cells.get(ref.name)
        if cell is None:
            raise NotComputable(f"cell {ref.name!r} is not a closure variable")
        try:
            return cell.cell_contents
        except ValueError:
            raise NotComputable(f"cell {ref.name!r} is empty") from None
    if source is Source.EXPR:
        return _expr(ref, env)
    if local_of(ref) is not None and ref.name in env.locals:
        return env.locals[ref.name]
    origin = unknown_origin(ref)
    if origin is not None:
        raise NotComputable(f"it comes from {origin}, which is not known to be pure")
    raise NotComputable("unknown provenance")


def _steps(value: Any, path: tuple[PathStep, ...]) -> Any:
    for step in path:
        if step.kind == "attr":
            value = peek_attr(value, step.key)
        elif step.kind == "item":
            value = peek_item(value, step.key)
        else:
            value = _iter_item(value, step.key)
        if value is MISSING:
            raise NotComputable(f"{step} cannot be read without running user code")
    return value


def _iter_item(value: Any, index: int) -> Any:
    """The index-th item iterating `value` yields, for containers whose iteration runs no user code."""
    if type(value) in (list, tuple, range, str):
        return value[index] if index < len(value) else MISSING
    if type(value) in (dict, type({}.keys()), type({}.values()), type({}.items())):
        items = list(value)
        return items[index] if index < len(items) else MISSING
    return MISSING


def _expr(ref: ValueRef, env: Env) -> Any:
    kind = ref.name
    values = [evaluate(operand, env) for operand in ref.operands]
    if kind in ("list", "tuple", "set"):
        return {"list": list, "tuple": tuple, "set": set}[kind](values)
    if kind == "dict" and len(values) % 2 == 0:
        return dict(zip(values[::2], values[1::2], strict=True))
    if kind == "const" and len(values) == 1:
        return values[0]
    if kind == "fstring" and all(type(v) is str for v in values):
        return "".join(values)
    if kind == "format" and 1 <= len(values) <= 2 and all(_plain(v) for v in values):
        return format(*values)
    if kind in _OPERATORS and len(values) == 2 and all(_plain(v) for v in values):
        return _OPERATORS[kind](*values)
    if kind == "not" and len(values) == 1 and _plain(values[0]):
        return not values[0]
    if kind == "slice" and all(v is None or type(v) is int for v in values):
        return slice(*values)
    if kind == "binary_slice" and len(values) == 3:  # 3.12+: container[start:stop]
        values = [values[0], slice(values[1], values[2])]
        kind = "getitem"
    if kind == "getitem" and len(values) == 2:
        item = peek_item(values[0], values[1])
        if item is not MISSING:
            return item
    if kind in ("call", "call_kw") and values:
        fresh = [_fresh_iterator(operand, value) for operand, value in zip(ref.operands, values, strict=True)]
        return _call(kind, values, fresh)
    raise NotComputable(f"{format_value(ref)} is not known to be pure")


_ITERATORS: tuple[type, ...] = (
    type(zip()),
    type(enumerate(())),
    type(reversed(())),
    type(iter(range(0))),
    type({}.items()),
)


def _fresh_iterator(ref: ValueRef, value: Any) -> bool:
    """An iterator our own evaluation just made from plain data (`zip(a, b)`) may be consumed."""
    return ref.source is Source.EXPR and ref.name in ("call", "call_kw") and type(value) in _ITERATORS


def _call(kind: str, values: list[Any], fresh: list[bool]) -> Any:
    """Call a PURE callee on plain values (or iterators made here): no user code runs."""
    if not all(_plain(v) or ok for v, ok in zip(values[1:], fresh[1:], strict=True)):
        raise NotComputable("a pure call on values whose methods could run user code")
    callee, *args = values
    if purity.classify(callee) is not purity.Effect.PURE:
        raise NotComputable(f"{describe_callee(callee)} is not known to be pure")
    kwargs: dict[str, Any] = {}
    if kind == "call_kw":
        names = args.pop()
        kwargs = dict(zip(names, args[len(args) - len(names) :], strict=True))
        args = args[: len(args) - len(names)]
    return callee(*args, **kwargs)


def _plain(value: Any) -> bool:
    """Built-in data, whose operators and formatting run no user code."""
    if type(value) in (tuple, list, frozenset):
        return all(_plain(v) for v in value)
    if type(value) is dict:
        return all(_plain(k) and _plain(v) for k, v in value.items())
    return type(value) in _SAFE_VALUES


def same_value(a: Any, b: Any) -> bool:
    """Equality that runs no user code: identity, or == on built-in data."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if _plain(a):
        try:
            return bool(a == b)
        except Exception:  # noqa: BLE001 - e.g. nan-containing structures: not the same
            return False
    if isinstance(a, types.MethodType):
        return a.__func__ is b.__func__ and a.__self__ is b.__self__
    if isinstance(a, types.BuiltinMethodType):
        return a.__self__ is b.__self__ and a.__name__ == b.__name__
    return False


# -- guards --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Guard:
    """One check a plan needs before it applies: `ref` evaluates to something like `expected`."""

    kind: str  # "type", "is", "truth", "none", "loop", "shape"
    ref: ValueRef
    expected: Any
    where: str = ""

    def check(self, env: Env) -> str | None:
        """None when the guard holds, else why not (a sentence)."""
        try:
            value = evaluate(self.ref, env)
        except NotComputable as exc:
            return f"{self.describe()}: {exc}"
        if self.kind == "type":
            ok = type(value) is self.expected
            seen: Any = type(value).__qualname__
        elif self.kind == "is":
            ok, seen = value is self.expected, _short(value)
        elif self.kind == "truth":
            ok, seen = _plain(value) and bool(value) is self.expected, _short(value)
        elif self.kind == "none":
            ok, seen = (value is None) is self.expected, _short(value)
        elif self.kind == "loop":
            sized = type(value) in SIZED  # len() of a built-in container runs no user code
            ok = sized and len(value) == self.expected
            seen = len(value) if sized else type(value).__qualname__
        else:  # "shape": numpy arrays
            ok = (getattr(value, "shape", None), str(getattr(value, "dtype", ""))) == self.expected
            seen = (getattr(value, "shape", None), str(getattr(value, "dtype", "")))
        return None if ok else f"{self.describe()}, but got {seen}"

    def describe(self) -> str:
        text = format_value(self.ref)
        where = f" (at {self.where})" if self.where else ""
        expected = getattr(self.expected, "__qualname__", None) or _short(self.expected)
        return {
            "type": f"type({text}) is {expected}",
            "is": f"{text} is the object seen when tracing ({expected})",
            "truth": f"bool({text}) is {self.expected}{where}",
            "none": f"({text} is None) is {self.expected}{where}",
            "loop": f"len({text}) == {self.expected}{where}",
            "shape": f"{text} has shape and dtype {self.expected}",
        }[self.kind]


def _short(value: Any) -> str:
    text = repr(value) if _plain(value) else f"<{type(value).__qualname__}>"
    return text if len(text) <= 40 else text[:37] + "..."


# -- recipes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """How to make one planned call ahead: callee and arguments as refs, the results it needs."""

    op: Operation
    callee: ValueRef
    args: tuple[ValueRef, ...]
    kwnames: tuple[str, ...]
    needs: frozenset[int]
    ahead: bool  # may be issued before the real run reaches it
    reason: str  # why not, when not

    def call(self, env: Env) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
        callee = evaluate(self.callee, env)
        values = [evaluate(ref, env) for ref in self.args]
        if self.op.metadata.get("star"):  # f(*seq) or f(*seq, **kw): expand as the call does
            seq, kw = values[0], values[1] if len(values) > 1 else {}
            if type(seq) not in (tuple, list) or type(kw) is not dict:
                raise NotComputable("the unpacked arguments are not a plain tuple, list or dict")
            return callee, tuple(seq), dict(kw)
        n = len(values) - len(self.kwnames)
        return callee, tuple(values[:n]), dict(zip(self.kwnames, values[n:], strict=True))


def outputs_needed(refs: tuple[ValueRef, ...]) -> frozenset[int]:
    out: set[int] = set()
    todo = list(refs)
    while todo:
        ref = todo.pop()
        if ref.source is Source.OUTPUT and ref.op is not None:
            out.add(ref.op)
        todo.extend(ref.operands)
    return frozenset(out)


def _make_recipe(
    op: Operation, env: Env, cutoff: int, retained: Mapping[int, tuple[ValueRef, ...]]
) -> Recipe:
    callee, args = op.inputs[0], op.inputs[1:]
    needs = outputs_needed(op.inputs)

    def refuse(reason: str) -> Recipe:
        return Recipe(op, callee, args, op.kwnames, needs, False, reason)

    if op.op_type is not OpType.CALL:
        return refuse("it is a slow step that is not a call (an attribute, an operator, an iterator)")
    if op.control:
        return refuse("it is reached through a branch on an earlier call's result")
    if op.id >= cutoff:
        return refuse("it comes after a branch no guard can check")
    observed = op.metadata.get("callee", MISSING)
    try:
        value = evaluate(callee, env)
    except NotComputable as exc:
        return refuse(f"its callee {format_value(callee)}: {exc}")
    if observed is not MISSING and not same_value(value, observed):
        return refuse(f"its callee {format_value(callee)} is computed differently than it was called")
    if _never_ahead(value):
        return refuse(f"{describe_callee(value)} waits or synchronises: issuing it early would change timing")
    for ref in args:
        try:
            value = evaluate(ref, env)
        except NotComputable as exc:
            return refuse(f"argument {format_value(ref)}: {exc}")
        if ref.value is MISSING:
            if outputs_needed((ref,)) and ref.source is Source.EXPR:
                return refuse(f"argument {format_value(ref)} could not be checked against the trace")
        elif not same_value(value, ref.value):
            return refuse(f"argument {format_value(ref)} is computed differently than it was passed")
        shared = _shared_inside(ref, value)
        if shared is not None:
            # the function holds it too: it could change it (or the callee could) before the call site
            return refuse(f"argument {format_value(ref)} holds {shared}, which the function shares")
        # (a local read from the frame is exempt: it is read after the last such function ran, see
        # _ready_at)
        if op.metadata.get("after_unknown_call") and not purity.is_immutable(value) and local_of(ref) is None:
            why = "a function not known to be pure ran before it and may have changed"
            return refuse(f"{why} its argument {format_value(ref)}")
        if _passes_retained(ref, retained):
            # a recipe would build a copy, but the callee must get the very object the code keeps
            return refuse(f"argument {format_value(ref)} is a mutable object the function builds and keeps")
    return Recipe(op, callee, args, op.kwnames, needs, True, "")


_DISPLAYS = frozenset({"list", "tuple", "dict", "set", "const"})


def _shared_inside(ref: ValueRef, value: Any) -> str | None:
    """A list, dict, set or bytearray the function can reach that the argument is or holds by
    reference (directly, or inside a display built around it: `{"items": xs}`, `[xs]`), else None.
    A recipe would hand the callee that very object early, before the glue changes it."""
    if ref.source is not Source.EXPR or ref.path:
        return f"a {type(value).__name__}" if type(value) in _SHARED_CONTAINERS else None
    if ref.name not in _DISPLAYS:
        return None  # computed by a pure call or operator: new data, compared by value
    for operand in ref.operands:
        found = _shared_inside(operand, operand.value)
        if found is not None:
            return f"{format_value(operand)} ({found})"
    return None


def _passes_retained(ref: ValueRef, retained: Mapping[int, tuple[ValueRef, ...]]) -> bool:
    """Would the value passed contain a list, dict or set the function also keeps (see build._retain)?

    Only containers that end up inside the argument itself count: `str(kept)` passes a string.
    """
    if ref.source is not Source.EXPR or ref.name not in ("list", "dict", "set", "tuple") or ref.path:
        return False
    if ref.name != "tuple" and retained.get(id(ref.operands)) is ref.operands:
        return True
    return any(_passes_retained(operand, retained) for operand in ref.operands)


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

    @functools.cached_property
    def schedule(self) -> Schedule:
        """The trace's own schedule: every recipe in trace order."""
        return Schedule(self.recipes, self.dependents, tuple(range(len(self.recipes))), (), self.ready_at)

    def check(self, env: Env) -> str | None:
        """None when every guard holds for `env`, else the first failure's reason."""
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
) -> Plan:
    """Guards and recipes for `graph`, checked against the trace's own inputs in `env`."""
    env.outputs.update({op.id: op.outputs[0].value for op in graph.operations if op.outputs})
    guards: list[Guard] = []
    cutoff, cutoff_reason = len(graph.operations), ""
    checked: dict[int, Guard] = {}
    for index, decision in enumerate(decisions):
        guard = _decision_guard(decision)
        if guard is None or guard.check(env) is not None:
            if decision.before < cutoff:  # the earliest unguardable decision wins
                cutoff = decision.before
                cutoff_reason = f"the branch at {decision.site} cannot be checked before the call"
        else:
            checked[index] = guard
    # a guard for a decision after the cutoff is not needed: nothing after it is issued ahead
    checked = {index: guard for index, guard in checked.items() if decisions[index].before < cutoff}
    guards.extend(checked.values())
    recipes = tuple(_make_recipe(op, env, cutoff, retained or {}) for op in graph.operations)
    guards[:0] = _input_guards(recipes, guards, env)
    ready_at = _ready_at(recipes, cutoff)
    waiting = {op_id for planned in ready_at.values() for op_id in planned}
    recipes = tuple(
        replace(recipe, ahead=False, reason=_no_point(recipe))
        if recipe.ahead and local_reads(recipe) and recipe.op.id not in waiting
        else recipe
        for recipe in recipes
    )
    return Plan(
        graph, tuple(guards), recipes, cutoff, cutoff_reason, dependents_of(recipes), checked, ready_at
    )


def local_reads(recipe: Recipe) -> dict[str, tuple[str, int]]:
    """The locals of the function a recipe reads: `local_tag` -> (name, which assignment)."""
    reads: dict[str, tuple[str, int]] = {}
    todo = [recipe.callee, *recipe.args]
    while todo:
        ref = todo.pop()
        found = local_of(ref)
        if found is not None:
            reads[ref.name] = found
        todo.extend(ref.operands)
    return reads


def _ready_at(recipes: tuple[Recipe, ...], cutoff: int) -> dict[int, tuple[int, ...]]:
    """Where a replay may read the locals a recipe needs: at call j (made before it, at a point every
    replay reaches the same way) when, in the trace, each local had had the very assignment the
    recipe reads, and nothing that might change that object (a function not known to be pure, a change
    in place of anything but a container the glue built) ran between j and the recipe's call.
    """
    ready: dict[int, list[int]] = {}
    reliable = _reliable_points(recipes, cutoff)
    for recipe in recipes:
        wanted = local_reads(recipe).values() if recipe.ahead else ()
        if not wanted:
            continue
        op = recipe.op
        for j in reliable:
            if j >= op.id:
                break
            point = recipes[j].op.metadata
            if point.get("effects") == op.metadata.get("effects") and all(
                point.get("assigned", {}).get(name) == count for name, count in wanted
            ):
                ready.setdefault(j, []).append(op.id)
    return {j: tuple(v) for j, v in ready.items()}


def local_names(recipe: Recipe) -> str:
    """The locals a recipe reads from the function's frame, for people: `patch, record`."""
    return ", ".join(sorted({name for name, _ in local_reads(recipe).values()}))


def _no_point(recipe: Recipe) -> str:
    names = local_names(recipe)
    return f"it reads {names}, made by the function itself, and no earlier call is a point to read it at"


def _reliable_points(recipes: tuple[Recipe, ...], cutoff: int) -> list[int]:
    """Calls a replay dispatches at the same point of the run as the trace made them: call sites all of
    whose calls so far were unconditional (else the n-th call at a site may be another one)."""
    points, shaky = [], set()
    for recipe in recipes:
        op = recipe.op
        key = (id(op.metadata.get("code")), op.site.offset)
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


def _decision_guard(decision: Decision) -> Guard | None:
    kind, expected = decision.outcome
    if kind not in ("truth", "none", "loop") or decision.cond.source is Source.UNKNOWN:
        return None
    return Guard(kind, decision.cond, expected, str(decision.site))


def _input_guards(recipes: tuple[Recipe, ...], decisions: list[Guard], env: Env) -> list[Guard]:
    """Types of the inputs the plan reads, identity of the globals and cells it calls."""
    guards: list[Guard] = []
    seen: set[tuple[str, str]] = set()
    roots = [ref for recipe in recipes if recipe.ahead for ref in (recipe.callee, *recipe.args)]
    roots += [guard.ref for guard in decisions]
    todo = list(roots)
    while todo:
        ref = todo.pop()
        todo.extend(ref.operands)
        if ref.source is Source.INPUT and ("type", ref.name) not in seen and ref.name in env.args:
            seen.add(("type", ref.name))
            value = env.args[ref.name]
            root = ValueRef(Source.INPUT, name=ref.name)
            guards.append(Guard("type", root, type(value)))
            if type(value).__module__ == "numpy" and hasattr(value, "shape"):
                guards.append(Guard("shape", root, (value.shape, str(value.dtype))))
    for recipe in recipes:
        callee = recipe.callee
        if recipe.ahead and callee.source in (Source.GLOBAL, Source.CELL) and ("is", callee.name) not in seen:
            seen.add(("is", callee.name))
            root = ValueRef(callee.source, name=callee.name)
            try:
                guards.append(Guard("is", root, evaluate(root, env)))
            except NotComputable:
                continue
    return guards

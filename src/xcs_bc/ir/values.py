"""Making `ValueRef`s, and peeking at concrete values without running user code.

The dataflow builder creates a `ValueRef` for every value on its shadow stack.
These helpers keep that construction in one place (deps are always the union
of the operands' deps) and answer "what is `obj.name` / `obj[key]`?" only
when the answer needs no user code: an instance `__dict__` entry, a slot, a
function found on the class (bound on the spot), an item of a built-in
container.  A property, `__getattr__`, `__getitem__` of a user class or
anything else returns `MISSING`: the builder then works without the value.
"""

from __future__ import annotations

import types
from collections.abc import Iterable
from typing import Any

from xcs_bc.ir.refs import MISSING, ExprKind, Local, PathStep, Source, ValueRef

NULL = ValueRef(Source.CONST, name="<NULL>", value=None)
"""The NULL slot CPython pushes beside a callable (3.11+); never an operand."""

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


def const(value: Any) -> ValueRef:
    return ValueRef(Source.CONST, value=value)


def index_const(value: int) -> ValueRef:
    """A CONST that is a loop's counter (`enumerate`'s index, a `range` item), not a literal."""
    return ValueRef(Source.CONST, value=value, counter=True)


def as_local(ref: ValueRef, local: Local) -> ValueRef:
    """The UNKNOWN value `ref` as what a local of the observed function held after its n-th
    assignment: a replay may read it from the frame (it keeps its `origin`, not its traced value)."""
    return ValueRef(
        Source.UNKNOWN,
        ref.name,
        ref.path,
        ref.operands,
        ref.op,
        ref.deps,
        origin=ref.origin,
        local=local,
    )


def local_of(ref: ValueRef) -> Local | None:
    """The local an UNKNOWN value `as_local` made was read from, else None."""
    return ref.local if ref.source is Source.UNKNOWN else None


def expr(
    kind: ExprKind, operands: Iterable[ValueRef], value: Any = MISSING, deps: frozenset[int] | None = None
) -> ValueRef:
    """A pure expression `kind` of `operands`; its deps are theirs, or `deps` when the caller has them
    already (a list that grows by one item: the list's deps and the item's)."""
    ops = operands if type(operands) is tuple else tuple(operands)
    if NULL in ops:  # (an identity test, in C: a list that grows by one item is not walked in Python)
        ops = tuple(op for op in ops if op is not NULL)
    if deps is None:
        deps = union(op.deps for op in ops)
    return ValueRef(Source.EXPR, operands=ops, deps=deps, value=value, kind=kind)


def unknown(
    n_ops: int, extra: frozenset[int] = frozenset(), value: Any = MISSING, origin: str = ""
) -> ValueRef:
    """A value of unknown provenance: it depends on every operation made so far.

    `origin` names the call that made it when that is known (`"helper()"`, see `unknown_origin`).
    """
    return ValueRef(
        Source.UNKNOWN, op=n_ops, deps=frozenset(range(n_ops)) | extra, value=value, origin=origin
    )


def callee_key(callee: Any) -> Any:
    """What tells one callee from another: a bound method is made anew at each access, so it is its
    function and its object (by identity); anything else is itself, by identity."""
    if isinstance(callee, types.MethodType):
        return (id(callee.__func__), id(callee.__self__))
    return id(callee)


def unknown_origin(ref: ValueRef) -> str | None:
    """For an UNKNOWN value a call to a function not known to be pure returned: that call, `helper()`."""
    return ref.origin if ref.source is Source.UNKNOWN and ref.origin else None


def union(deps: Iterable[frozenset[int]]) -> frozenset[int]:
    """The union, in time proportional to the sizes of the sets (one set grown in place, not a new
    frozenset per operand: a list of n results has n operands)."""
    first: frozenset[int] = frozenset()
    grown: set[int] | None = None
    for d in deps:
        if not d:
            continue
        if grown is not None:
            grown |= d
        elif not first:
            first = d
        elif not d <= first:
            grown = set(first)
            grown |= d
    return first if grown is None else frozenset(grown)


def with_deps(ref: ValueRef, deps: frozenset[int]) -> ValueRef:
    """The same value, depending also on `deps` (effects on the object); what it was made `under` is
    no longer the whole story of its deps, so it is forgotten."""
    if deps <= ref.deps:
        return ref
    return _like(ref, ref.path, ref.deps | deps, ref.value, ())


def copy_of(ref: ValueRef) -> ValueRef:
    """The same value as a new ref: equal in every field, but not `ref` itself (refs are told apart by
    identity, e.g. in `ValueRef.under`)."""
    return _like(ref, ref.path, ref.deps, ref.value)


def made_under(ref: ValueRef, deps: frozenset[int], conds: tuple[ValueRef, ...]) -> ValueRef:
    """The same value, made under branches on results: depending also on `deps` (the results the
    branches read), and remembering which branches (`conds`, their conditions) in `under`, even when
    its deps already say as much (a value computed from a result under a branch on that result still
    exists only because the branch went its way)."""
    seen = {id(cond) for cond in ref.under}
    new = tuple(cond for cond in conds if id(cond) not in seen)
    if deps <= ref.deps and not new:
        return ref
    return _like(ref, ref.path, ref.deps | deps, ref.value, (*ref.under, *new))


def with_value(ref: ValueRef, value: Any) -> ValueRef:
    if ref.value is value:
        return ref
    return _like(ref, ref.path, ref.deps, value)


def with_path(ref: ValueRef, path: tuple[PathStep, ...], value: Any = MISSING) -> ValueRef:
    """The same value with another path (`xs` for `xs.append`), and the object found there."""
    return _like(ref, path, ref.deps, value)


def step(base: ValueRef, kind: str, key: Any, value: Any = MISSING) -> ValueRef:
    """`base.key` (kind "attr"), `base[key]` ("item") or the key-th element iterated ("iter").

    A path into a constant starts from an EXPR `ExprKind.CONST` wrapping it: a CONST's `value` is the
    constant itself, while a ref with a path carries the value at the end of the path.
    """
    if base.source is Source.CONST and not base.path:
        base = ValueRef(Source.EXPR, operands=(base,), deps=base.deps, kind=ExprKind.CONST)
    return _like(base, (*base.path, PathStep(kind, key)), base.deps, value)


def _like(
    ref: ValueRef,
    path: tuple[PathStep, ...],
    deps: frozenset[int],
    value: Any,
    under: tuple[ValueRef, ...] | None = None,
) -> ValueRef:
    """`ref` with another path, deps, value (and `under`); every other field the same (positional: the
    builder makes many of these)."""
    return ValueRef(
        ref.source,
        ref.name,
        path,
        ref.operands,
        ref.op,
        deps,
        value,
        ref.origin,
        ref.local,
        ref.kind,
        ref.loop,
        ref.counter,
        ref.under if under is None else under,
    )


def reported_tokens(result: Any) -> int:
    """The tokens a call's result says it used (`usage.total_tokens` of an `openai` response, read
    without running user code); 0 when it says none."""
    if type(result).__module__ == "builtins":  # (most results: str, dict, list ... report none)
        return 0
    tokens = peek_attr(peek_attr(result, "usage"), "total_tokens")
    return tokens if type(tokens) is int else 0


def peek_attr(obj: Any, name: str) -> Any:
    """`obj.name` when it can be read without running user code, else MISSING."""
    if obj is MISSING:
        return MISSING
    if isinstance(obj, types.ModuleType):
        return obj.__dict__.get(name, MISSING)
    is_class = isinstance(obj, type)
    class_attr = class_lookup(obj if is_class else type(obj), name)
    if not is_class and class_attr is not MISSING and _is_data_descriptor(class_attr):
        if isinstance(class_attr, types.MemberDescriptorType):  # a __slots__ entry
            try:
                return class_attr.__get__(obj, type(obj))
            except AttributeError:
                return MISSING
        return MISSING  # a property or another data descriptor: running it could do anything
    if not is_class:
        try:
            instance_dict = object.__getattribute__(obj, "__dict__")
        except AttributeError:
            instance_dict = None
        if isinstance(instance_dict, dict) and name in instance_dict:
            return instance_dict[name]
    if class_attr is MISSING:
        return MISSING
    if isinstance(class_attr, (types.FunctionType, classmethod, staticmethod)):
        return class_attr.__get__(None if is_class else obj, obj if is_class else type(obj))
    if isinstance(class_attr, (types.MethodDescriptorType, types.WrapperDescriptorType)):
        return class_attr if is_class else class_attr.__get__(obj, type(obj))
    if hasattr(type(class_attr), "__get__"):
        return MISSING  # cached_property and friends compute on first access
    return class_attr


def _is_data_descriptor(attr: Any) -> bool:
    kind = type(attr)
    return hasattr(kind, "__set__") or hasattr(kind, "__delete__")


_SUBSCRIPTABLE = (list, tuple, str, bytes, dict, range)


def class_lookup(cls: type, name: str) -> Any:
    """What `name` is in the first class of `cls.__mro__` that defines it (descriptors unbound), else
    MISSING: looked up in the class dicts, so no `__getattr__` runs."""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return MISSING


def peek_item(container: Any, key: Any) -> Any:
    """`container[key]` for built-in containers and a known key, else MISSING."""
    if container is MISSING or key is MISSING or type(container) not in _SUBSCRIPTABLE:
        return MISSING
    try:
        return container[key]
    except (LookupError, TypeError, ValueError):
        return MISSING


def peek_iter_item(iterable: Any, index: int) -> Any:
    """The index-th element that iterating `iterable` yields, for sequences whose order is fixed."""
    if type(iterable) in (list, tuple, range, str) and index < len(iterable):
        return iterable[index]
    return MISSING


def awaited_call(
    callee: Any, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None
) -> tuple[Any, tuple[Any, ...], dict[str, Any]] | None:
    """The call an await site's method stands for, as (callee, args, kwargs); else None.

    An async function's synchronous twin makes ``await f(x)`` one call of a site's method,
    ``site.call(f, packed)`` (`execute.awaits.AwaitSite`, which this stage cannot import): it is
    recognised by its class's `xcs_awaited`, which unpacks it without running user code."""
    if not awaits(callee):
        return None
    unpack = class_lookup(type(callee.__self__), "xcs_awaited")
    found: tuple[Any, tuple[Any, ...], dict[str, Any]] = unpack(callee.__self__, callee.__func__, args)
    return found


def awaits(callee: Any) -> bool:
    """Is `callee` an await site's method (see `awaited_call`)?"""
    return (
        type(callee) is types.MethodType and class_lookup(type(callee.__self__), "xcs_awaited") is not MISSING
    )


def describe_callee(callee: Any) -> str:
    """A stable, readable name for a callee: `Client.complete`, `summarize`, `FakeLLM`."""
    if callee is MISSING:
        return "?"
    qualname = getattr(callee, "__qualname__", None)
    if isinstance(qualname, str):
        return qualname
    func = getattr(callee, "__func__", None)
    if func is not None:
        return describe_callee(func)
    return f"{type(callee).__qualname__}.__call__"

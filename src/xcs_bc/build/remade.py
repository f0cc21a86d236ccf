"""Build: the value of a built-in call's result that 3.10 and 3.11 do not report, made again.

3.10 and 3.11 observe through settrace, which has no event for a C function's return: the value
of `q.strip()` is not seen, so no method can be peeked on it (`q.strip().lower()`), the callee is
unknown, and every call after it would wait its turn.  A built-in function known to be pure, called
on built-in data, runs no user code and gives the same value again: `remade` calls it once more.
So does a subscript of built-in data (`text[:5]`, `parts[0]`).  `groups.setdefault(key, [])` and
a defaultdict's `groups[key]` are not pure, but their result is read back from the dict they just
changed.
(3.12+ report the callee of every call itself, see `GraphBuilder.call`.)
"""

from __future__ import annotations

import collections
import types
from typing import Any

from xcs_bc._compat import PY312
from xcs_bc.build import purity
from xcs_bc.ir import MISSING, ExprKind, PathStep, Source, ValueRef
from xcs_bc.ir.values import peek_attr, with_path, with_value

__all__ = ["recomputed", "remade"]

# built-in data no built-in function runs user code on (exact types: a subclass may define __str__)
_SCALARS = (str, int, float, bool, bytes, type(None))
_CONTAINERS = (tuple, list)
_MAPPINGS = (dict, collections.defaultdict, collections.OrderedDict)  # (see `_lookup`)
_KEYS_LOOKED_AT = 256  # a dict with more keys is not searched (see `_lookup`)


def remade(ref: ValueRef) -> ValueRef:
    """`ref` with its value, when built-in functions compute it from built-in data (see the module)."""
    if PY312 or ref.value is not MISSING:
        return ref
    value = _recompute(ref, 4)
    return ref if value is MISSING else with_value(ref, value)


def recomputed(ref: ValueRef) -> Any:
    """`ref`'s value, made again if built-in functions compute it from built-in data (on any version:
    3.12+ report the callee of a call, not its result); else MISSING."""
    return _recompute(ref, 4)


def _recompute(ref: ValueRef, depth: int) -> Any:
    if ref.value is not MISSING or depth == 0:
        return ref.value
    if ref.path:
        value = _recompute(with_path(ref, ()), depth - 1)
        for path_step in ref.path:
            value = _step(value, path_step)
        return value
    if ref.source is Source.EXPR and ref.kind in (ExprKind.GETITEM, ExprKind.SLICE):
        # `text[:5]`, `parts[i]`: a subscript of built-in data (the stack's values are not observed)
        parts = [_recompute(operand, depth - 1) for operand in ref.operands]
        if ref.kind is ExprKind.SLICE:
            return slice(*parts) if all(part is None or type(part) is int for part in parts) else MISSING
        return _item(*parts) if len(parts) == 2 else MISSING
    if ref.source is not Source.EXPR or ref.kind not in (ExprKind.CALL, ExprKind.CALL_KW) or not ref.operands:
        return MISSING
    callee, *args = (_recompute(operand, depth - 1) for operand in ref.operands)
    names: tuple[str, ...] = ()
    if ref.kind is ExprKind.CALL_KW:  # (its last operand holds the keyword names)
        if not args or type(args[-1]) is not tuple:
            return MISSING
        names = args.pop()
    if not names and _is_setdefault(callee):
        return _set_default(callee.__self__, args)
    if len(names) > len(args) or not _pure_builtin(callee) or not all(map(_is_argument, args)):
        return MISSING
    positional, keywords = args[: len(args) - len(names)], args[len(args) - len(names) :]
    try:
        return callee(*positional, **dict(zip(names, keywords, strict=True)))
    except Exception:  # noqa: BLE001 - it raised in the run too: the value stays unknown
        return MISSING


def _is_setdefault(callee: Any) -> bool:
    return (
        type(callee) is types.BuiltinMethodType
        and type(callee.__self__) in _MAPPINGS
        and callee.__name__ == "setdefault"
    )


def _set_default(table: dict[Any, Any], args: list[Any]) -> Any:
    """What `table.setdefault(key, ...)` returned, read back: the run has just made that call (it is
    read when the next instruction uses its result), so the key is in the table and holds it."""
    return _lookup(table, args[0]) if 1 <= len(args) <= 2 else MISSING


def _lookup(table: Any, key: Any) -> Any:
    """`table[key]` as the run just read it, for a dict (or a defaultdict, whose `[key]` the run has
    made, adding a missing key: read back by dict.get, which runs no factory), else MISSING.  Only
    when every key is built-in data, so that the lookup compares no object by a user's `__eq__`."""
    if type(table) not in _MAPPINGS or type(key) not in _SCALARS or len(table) > _KEYS_LOOKED_AT:
        return MISSING
    if not all(type(known) in _SCALARS for known in table):
        return MISSING
    return dict.get(table, key, MISSING)


def _pure_builtin(callee: Any) -> bool:
    """A built-in function (or a method of built-in data) known to be pure, or a scalar type."""
    owner = getattr(callee, "__self__", None)
    builtin = type(callee) is types.BuiltinFunctionType and (
        isinstance(owner, types.ModuleType) or _is_data(owner)
    )
    if not (builtin or any(callee is kind for kind in _SCALARS)):
        return False
    return purity.classify(callee) is purity.Effect.PURE


def _is_argument(value: Any) -> bool:
    """Built-in data, or a built-in function known to be pure (`key=len`)."""
    return _is_data(value) or _pure_builtin(value)


def _step(value: Any, path_step: PathStep) -> Any:
    """One step into built-in data (an item, an attribute read without running user code), or MISSING."""
    if path_step.kind == "attr" and value is not MISSING:
        return peek_attr(value, str(path_step.key))
    if path_step.kind == "item":
        return _item(value, path_step.key)
    return MISSING


def _item(value: Any, key: Any) -> Any:
    """`value[key]` for built-in data and an int or a slice of ints, or for a dict, else MISSING."""
    if type(value) in _MAPPINGS:
        return _lookup(value, key)
    if type(key) not in (int, slice) or not _is_data(value):
        return MISSING
    try:
        return value[key]
    except IndexError:
        return MISSING


def _is_data(value: Any) -> bool:
    if type(value) in _CONTAINERS:
        return all(_is_data(item) for item in value)
    return type(value) in _SCALARS

"""Who a generator's or an iterator's ref stands for, what made a function, and which consumers take
every item of an iterable.

The copies `with_deps` and `with_value` make of a ref (pushed under a branch, stored in a local)
keep its operands tuple: `identity` keys the builder's per-generator and per-iterator tables by it.
"""

from __future__ import annotations

import itertools
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from xcs_bc.build.effects import Watched
from xcs_bc.ir import MISSING, ExprKind, Source, ValueRef


def identity(ref: ValueRef) -> int:
    """Who a generator's or an iterator's ref stands for: its operands tuple, which the copies
    `with_deps` and `with_value` make (pushed under a branch, stored in a local) keep."""
    return id(ref.operands) if ref.operands else id(ref)


def same(a: ValueRef | None, b: ValueRef) -> bool:
    return a is not None and identity(a) == identity(b)


def generator_of(ref: ValueRef) -> ValueRef | None:
    """The generator expression `ref` is, or iterates (`iter(gen)`, made by a `for` loop over it)."""
    if ref.source is Source.EXPR and ref.kind is ExprKind.ITER and len(ref.operands) == 1:
        ref = ref.operands[0]
    if ref.source is Source.EXPR and ref.kind is ExprKind.GENEXPR:
        return ref
    return None


def made_code(ref: ValueRef) -> types.CodeType | None:
    """The code object of a function made by MAKE_FUNCTION in the observed code, if `ref` is one."""
    if ref.source is Source.EXPR and ref.kind is ExprKind.MAKE_FUNCTION:
        for operand in ref.operands:
            if isinstance(operand.value, types.CodeType):
                return operand.value
    return None


def made_alone(ref: ValueRef) -> types.CodeType | None:
    """The code of a function a MAKE_FUNCTION of code alone made here: a `lambda` or a `def` with no
    closure, defaults or annotations (`key=lambda d: len(d)`); None for any other ref."""
    code = made_code(ref)
    if code is None or code.co_freevars or ref.path:
        return None
    if not all(
        operand.source is Source.CONST and type(operand.value) in _MADE_OF for operand in ref.operands
    ):
        return None  # (defaults, annotations, a closure: operands of their own)
    return code


_MADE_OF = (types.CodeType, str)  # (3.10 hands MAKE_FUNCTION the qualified name too)


def remade_function(ref: ValueRef, globals_: Any) -> types.FunctionType | None:
    """The function `made_alone` says `ref` is, made again from its code and the globals it runs in:
    it behaves as the one the run made, which no ref holds."""
    code = made_alone(ref)
    return types.FunctionType(code, globals_) if code is not None and type(globals_) is dict else None


_TAKE_ALL: tuple[Any, ...] = (list, tuple, set, frozenset, dict, sorted, sum, min, max)


_TAKE_ALL_METHODS = frozenset(
    {(str, "join"), (bytes, "join"), (bytearray, "join"), (list, "extend"), (set, "update"), (dict, "update")}
)


def takes_all(callee: Any) -> bool:
    """Does calling `callee` on an iterable take every item of it (list(), sum(), "".join ...)?"""
    if any(callee is taker for taker in _TAKE_ALL):
        return True
    # "".join, xs.extend: a builtin method's attributes run no code
    return isinstance(callee, types.BuiltinMethodType) and (
        (type(callee.__self__), callee.__name__) in _TAKE_ALL_METHODS
    )


# a pure generator whose items are listed yields at most so many (more: an endless one, which a loop
# leaves by `break`, or no list worth making)
MAX_ITEMS = 100_000


def items_of(callee: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> list[Any] | None:
    """The items a call of `callee`, a pure generator function (`purity.pure_generator`), yields, listed
    by a call of our own (the run's generator is the user's, consumed by the run); None when it raises
    (the run's generator raises in its turn) or yields more than `MAX_ITEMS`."""
    try:
        items = list(itertools.islice(callee(*args, **kwargs), MAX_ITEMS + 1))
    except Exception:  # noqa: BLE001 - (see above)
        return None
    return items if len(items) <= MAX_ITEMS else None


@dataclass(frozen=True)
class Listed:
    """What the items of a pure generator, listed at its call (`Calls.listed_generator`), were computed
    from: the mutable objects its arguments hold (watched, see `Effects.snapshot_held`) and the data
    globals its code reads, with what each was bound to then.  Changed while a loop walks the run's
    own generator, the items it yields are no longer the listed ones."""

    held: tuple[Watched, ...]
    globals: tuple[tuple[dict[str, Any], str, Any], ...]

    def rebound(self) -> bool:
        return any(namespace.get(name, MISSING) is not value for namespace, name, value in self.globals)

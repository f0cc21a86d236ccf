"""Slices: a plan's pure expressions, compiled with `bytecode` into small functions of what they read.

A recipe's callee and arguments, and a guard's condition, are `ValueRef` trees:
*leaves* (an input and a path into it, an earlier call's result, a constant, a
global, a cell, a local read from the function's frame) under pure expressions
(f-strings, `format()`, operators, subscripts, displays, calls of vetted pure
built-ins and methods such as `str.format`, `str.join`, `len`, `json.dumps`).
`evaluate` and `Slice` compute them on new inputs without running user code;
anything else raises `NotComputable`, and the call then runs in its turn.

`Slice(refs)` assembles one function whose parameters are the trees'
leaves, in order, and which returns the tuple of the trees' values.  Lists and
tuples become `BUILD_LIST`/`BUILD_TUPLE` (sets and dicts `BUILD_SET`/`BUILD_MAP`
when what they hash is string constants), an f-string whose parts are all
strings `BUILD_STRING`; every step that could run user code on a value of the
wrong type (an operator, `format()`, hashing, a subscript, a path step, a call)
is a call of one of the checking helpers below, which raise unless the operands are built-in data
and the callee is known to be pure (`purity`).  The compiled code calls nothing
else.  The function depends only on the trees' *shape* (expression kinds, paths,
arities; every leaf is a parameter, constants included), so it is assembled
once per shape and shared: the 200 calls `llm(f"Summarize: {docs[k]}")` of a
loop, or the rounds `generalize` instantiates for a new length, use one.
"""

from __future__ import annotations

import builtins
import math
import operator
import threading
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bytecode import Bytecode, CompilerFlags, Instr

from xcs_bc._assemble import assemble
from xcs_bc._compat import VERSION
from xcs_bc.build import purity
from xcs_bc.build.generators import items_of, made_alone, remade_function
from xcs_bc.ir import MAX_DEPTH, MISSING, ExprKind, Local, PathStep, Source, ValueRef
from xcs_bc.ir.text import format_value
from xcs_bc.ir.values import SIZED, const, describe_callee, local_of, peek_attr, peek_item, unknown_origin


class NotComputable(Exception):
    """A recipe cannot be evaluated (yet, or at all) without running user code."""


@dataclass
class Env:
    """What recipes read: the call's arguments, the function's globals and cells, results so far."""

    args: Mapping[str, Any]
    globals: Mapping[str, Any]
    cells: Mapping[str, types.CellType]
    outputs: dict[int, Any] = field(default_factory=dict)
    locals: Mapping[Local, Any] = field(default_factory=dict)  # value read from the frame, per local


# -- built-in data ---------------------------------------------------------------------------------

_SAFE_VALUES = (str, bytes, int, float, complex, bool, type(None), tuple, list, dict, frozenset, range, slice)
_OPERATORS: dict[ExprKind, Callable[[Any, Any], Any]] = {
    ExprKind.ADD: operator.add, ExprKind.SUB: operator.sub, ExprKind.MUL: operator.mul,
    ExprKind.TRUEDIV: operator.truediv, ExprKind.FLOORDIV: operator.floordiv, ExprKind.MOD: operator.mod,
    ExprKind.POW: operator.pow, ExprKind.LT: operator.lt, ExprKind.LE: operator.le, ExprKind.EQ: operator.eq,
    ExprKind.NE: operator.ne, ExprKind.GT: operator.gt, ExprKind.GE: operator.ge, ExprKind.IS: operator.is_,
    ExprKind.IS_NOT: operator.is_not, ExprKind.IN: lambda a, b: operator.contains(b, a),
    ExprKind.NOT_IN: lambda a, b: not operator.contains(b, a),
}  # fmt: skip
_ITERATORS: tuple[type, ...] = (  # made by a pure call of ours from plain data: may be consumed
    type(zip()),
    type(filter(None, ())),
    type(map(len, ())),
    type(enumerate(())),
    type(reversed(())),
    type(iter(range(0))),
    type({}.items()),
    type({}.keys()),
    type({}.values()),
    set,
)


def plain(value: Any) -> bool:
    """Built-in data, whose operators and formatting run no user code."""
    if type(value) in (tuple, list, frozenset):
        return all(plain(v) for v in value)
    if type(value) is dict:
        return all(plain(k) and plain(v) for k, v in value.items())
    return type(value) in _SAFE_VALUES


def same_value(a: Any, b: Any) -> bool:
    """Would a callee given `b` see exactly what it sees given `a`?  Runs no user code.

    `==` is not enough: `1 == True == 1.0` and `0.0 == -0.0`, but a callee can tell them apart (it
    formats them, checks their type, takes their sign).  So built-in data is compared with its type,
    recursively through tuples, lists, dicts (keys and values, in order) and sets (in iteration
    order: a callee may iterate them); anything else is the same only when it is the same object
    (comparing user objects would run their `__eq__`; a mismatch only costs a call made in place).
    """
    if a is b:
        return True
    if type(a) is str:  # (the usual argument: a prompt)
        return type(b) is str and a == b
    try:
        return _same(a, b)
    except RecursionError:  # a structure too deep to compare: not provably the same
        return False


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b):
        return False
    if kind in _EXACT_SCALARS:
        return bool(a == b)
    if kind is float:
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)  # (nan is only itself)
    if kind is complex:
        return _same(a.real, b.real) and _same(a.imag, b.imag)
    if kind in (tuple, list, set, frozenset):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if kind is dict:
        return len(a) == len(b) and all(
            _same(ka, kb) and _same(va, vb) for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True)
        )
    if kind in (range, slice):
        return _same((a.start, a.stop, a.step), (b.start, b.stop, b.step))
    if kind is types.MethodType:
        return a.__func__ is b.__func__ and a.__self__ is b.__self__
    if kind is types.BuiltinMethodType:
        return _same(a.__self__, b.__self__) and a.__name__ == b.__name__
    return False


_EXACT_SCALARS = (str, bytes, int, bool, type(None))  # equal values of one of these types are alike


# -- leaves ------------------------------------------------------------------------------------------


def _leaf(ref: ValueRef, env: Env) -> Any:
    """A leaf's value: its head (input, result, constant, global, cell, frame local), then its path."""
    source = ref.source
    if source is Source.INPUT:
        if ref.name not in env.args:
            raise NotComputable(f"input {ref.name!r} is not an argument")
        value = env.args[ref.name]
    elif source is Source.OUTPUT:
        if ref.op not in env.outputs:
            raise NotComputable(f"%{ref.op} has not returned yet")
        value = env.outputs[ref.op]
    elif source is Source.CONST:
        value = ref.value
    elif source is Source.GLOBAL:
        if ref.name in env.globals:
            value = env.globals[ref.name]
        elif hasattr(builtins, ref.name):
            value = getattr(builtins, ref.name)
        else:
            raise NotComputable(f"global {ref.name!r} is not defined")
    elif source is Source.CELL:
        cell = env.cells.get(ref.name)
        if cell is None:
            raise NotComputable(f"cell {ref.name!r} is not a closure variable")
        try:
            value = cell.cell_contents
        except ValueError:
            raise NotComputable(f"cell {ref.name!r} is empty") from None
    elif (local := local_of(ref)) is not None and local in env.locals:
        value = env.locals[local]
    elif made_alone(ref) is not None:  # (a lambda made in the function, of its code alone: made again)
        value = remade_function(ref, env.globals)
        if value is None:
            raise NotComputable("a function made in the code, of globals that are no dict")
    else:
        origin = unknown_origin(ref)
        if origin is not None:
            raise NotComputable(f"it comes from {origin}, which is not known to be pure")
        raise NotComputable("unknown provenance")
    return _steps(value, ref.path) if ref.path else value


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


# -- the checking helpers the compiled code calls ----------------------------------------------------


class _Refused(Exception):
    """Expression node `node` (preorder among the slice's expressions) is not known to be pure here."""

    def __init__(self, node: int) -> None:
        self.node = node


def _join(node: int, *parts: Any) -> str:
    if not all(type(part) is str for part in parts):
        raise _Refused(node)
    return "".join(parts)


def _format(node: int, *values: Any) -> str:
    if not all(plain(v) for v in values):
        raise _Refused(node)
    return format(*values)


def _binary(node: int, function: Callable[[Any, Any], Any], a: Any, b: Any) -> Any:
    if not (plain(a) and plain(b)):
        raise _Refused(node)
    return function(a, b)


def _set(node: int, *items: Any) -> set[Any]:
    if not all(plain(item) for item in items):  # hashing a user object runs its __hash__
        raise _Refused(node)
    return set(items)


def _dict(node: int, *pairs: Any) -> dict[Any, Any]:
    if not all(plain(key) for key in pairs[::2]):
        raise _Refused(node)
    return dict(zip(pairs[::2], pairs[1::2], strict=True))


def _not(node: int, value: Any) -> bool:
    if not plain(value):
        raise _Refused(node)
    return not value


# pure callees that read only the keys of a dict they are handed (its values may be any objects)
_OVER_KEYS = frozenset({sorted, list, tuple, set, frozenset, min, max, any, all})


def _merge(node: int, *mappings: Any) -> dict[Any, Any]:
    """`{**a, **b}`, as `f(**kwargs)` passes it: dicts whose keys are built-in data (merging compares
    keys; the values are only carried over)."""
    merged: dict[Any, Any] = {}
    for mapping in mappings:
        if type(mapping) is not dict or not all(plain(key) for key in mapping):
            raise _Refused(node)
        merged.update(mapping)
    return merged


def _slice(node: int, *values: Any) -> slice:
    if not all(v is None or type(v) is int for v in values):
        raise _Refused(node)
    return slice(*values)


def _getitem(node: int, container: Any, key: Any) -> Any:
    item = peek_item(container, key)
    if item is MISSING:
        raise _Refused(node)
    return item


def _binary_slice(node: int, container: Any, start: Any, stop: Any) -> Any:  # 3.12+: container[start:stop]
    return _getitem(node, container, slice(start, stop))


def _pure_call(kind: ExprKind, fresh: tuple[bool, ...], callee: Any, *args: Any) -> Any:
    """Call a PURE callee on plain values (or on iterators a pure call of ours just made: `zip(a, b)`)."""
    if callee is len and kind is ExprKind.CALL and len(args) == 1 and type(args[0]) in SIZED:
        return len(args[0])  # the length of a built-in container runs no user code, whatever it holds
    over_keys = callee in _OVER_KEYS and kind is ExprKind.CALL and len(args) == 1 and type(args[0]) is dict
    if over_keys and all(plain(key) for key in args[0]):  # `sorted(TOOLS)`: only the keys are read
        return callee(args[0])
    if not all(
        plain(v) or (ok and type(v) in _ITERATORS) or purity.pure_callable(v)
        for v, ok in zip(args, fresh, strict=True)
    ):
        raise NotComputable("a pure call on values whose methods could run user code")
    names = args[-1] if kind is ExprKind.CALL_KW else ()
    n = len(args) - (1 + len(names) if kind is ExprKind.CALL_KW else 0)
    positional, keywords = args[:n], dict(zip(names, args[n : len(args) - 1], strict=True))
    if purity.pure_generator(callee):  # (its items: only a loop that took its generator at once walks it)
        items = items_of(callee, positional, keywords)
        if items is None:
            raise NotComputable(f"{describe_callee(callee)} raised or yielded too many items")
        return items
    if purity.classify(callee) is not purity.Effect.PURE:
        raise NotComputable(f"{describe_callee(callee)} is not known to be pure")
    return callee(*positional, **keywords)


def _refuse(node: int) -> Any:
    raise _Refused(node)


# -- compiling ---------------------------------------------------------------------------------------

_CALLS = frozenset({ExprKind.CALL, ExprKind.CALL_KW})
_BUILDS = {ExprKind.LIST: "BUILD_LIST", ExprKind.TUPLE: "BUILD_TUPLE"}
_MAX_SHAPES = 4096
_functions: dict[Any, Callable[..., tuple[Any, ...]]] = {}  # shape -> compiled function
_functions_lock = threading.Lock()


def _shape(ref: ValueRef, leaves: list[ValueRef], nodes: list[ValueRef]) -> Any:
    """The part of `ref` the compiled code depends on; collects its leaves and expressions in preorder.

    A leaf is "s" when it is a string constant (an f-string may join it as it is), else "v".  An
    expression's path is a leaf too, after its operands' (`(kind, operands, has a path)`): one
    compiled function serves every round of a loop, whose items differ only by their paths' keys.
    """
    if ref.source is not Source.EXPR or made_alone(ref) is not None:
        leaves.append(ref)
        return "s" if ref.source is Source.CONST and type(ref.value) is str and not ref.path else "v"
    nodes.append(ref)
    operands = tuple(_shape(operand, leaves, nodes) for operand in ref.operands)
    if ref.path:
        leaves.append(const(ref.path))
    return (ref.kind, operands, bool(ref.path))


def _is_str(shape: Any) -> bool:
    """Does this part certainly compute a str?  (format() returns one or raises.)"""
    return shape == "s" or (
        type(shape) is tuple and shape[0] in (ExprKind.FSTRING, ExprKind.FORMAT) and not shape[2]
    )


class _Assembler:
    """Turns a shape into instructions; leaves become parameters v0, v1, ... in preorder."""

    def __init__(self) -> None:
        self.leaves = 0
        self.nodes = 0

    def value(self, shape: Any) -> list[Instr]:
        if type(shape) is str:
            self.leaves += 1
            return [Instr("LOAD_FAST", f"v{self.leaves - 1}")]
        kind, operands, path = shape
        node = self.nodes
        self.nodes += 1
        if path:
            computed = self.expression(node, kind, operands)
            self.leaves += 1  # (the path's leaf comes after its operands', see `_shape`)
            return _call(_steps, [computed, [Instr("LOAD_FAST", f"v{self.leaves - 1}")]])
        return self.expression(node, kind, operands)

    def expression(self, node: int, kind: ExprKind, operands: tuple[Any, ...]) -> list[Instr]:
        n = len(operands)
        if kind in _BUILDS:
            return [*self.all(operands), Instr(_BUILDS[kind], n)]
        if kind is ExprKind.GENERATED:  # the items a consumer took from a generator expression, in order
            return [*self.all(operands), Instr("BUILD_TUPLE", n)]
        # a set's items and a dict's keys are hashed: inline only when they are string constants
        if kind is ExprKind.SET and all(operand == "s" for operand in operands):
            return [*self.all(operands), Instr("BUILD_SET", n)]
        if kind is ExprKind.SET:
            return self.helper(_set, node, operands)
        if kind is ExprKind.DICT and n and all(_unpacked(operand) for operand in operands):
            mappings = []
            for operand in operands:  # `{**a, **b}`: each UNPACK node counted, its operand computed
                self.nodes += 1
                mappings.append(self.value(operand[1][0]))
            return _call(_merge, [_load(node), *mappings])
        if kind is ExprKind.DICT and n % 2 == 0 and all(key == "s" for key in operands[::2]):
            return [*self.all(operands), Instr("BUILD_MAP", n // 2)]
        if kind is ExprKind.DICT and n % 2 == 0:
            return self.helper(_dict, node, operands)
        if kind is ExprKind.CONST and n == 1:
            return self.value(operands[0])
        if kind is ExprKind.FSTRING and n and all(_is_str(operand) for operand in operands):
            return [*self.all(operands), Instr("BUILD_STRING", n)] if n > 1 else self.value(operands[0])
        if kind is ExprKind.FSTRING:
            return self.helper(_join, node, operands)
        if kind is ExprKind.FORMAT and 1 <= n <= 2:
            return self.helper(_format, node, operands)
        if kind in _OPERATORS and n == 2:
            return self.helper(_binary, node, operands, _OPERATORS[kind])
        if kind is ExprKind.NOT and n == 1:
            return self.helper(_not, node, operands)
        if kind is ExprKind.SLICE:
            return self.helper(_slice, node, operands)
        if kind is ExprKind.BINARY_SLICE and n == 3:
            return self.helper(_binary_slice, node, operands)
        if kind is ExprKind.GETITEM and n == 2:
            return self.helper(_getitem, node, operands)
        if kind in _CALLS and n:
            fresh = tuple(type(o) is tuple and o[0] in _CALLS for o in operands[1:])
            return _call(_pure_call, [_load(kind), _load(fresh), *self.each(operands)])
        self.skip(operands)  # keeps the numbering of leaves and nodes after this one
        return _call(_refuse, [_load(node)])

    def helper(
        self, function: Callable[..., Any], node: int, operands: tuple[Any, ...], *extra: Any
    ) -> list[Instr]:
        """`function(node, *extra, *operands)`: a checking helper told which node it computes."""
        return _call(function, [_load(node), *map(_load, extra), *self.each(operands)])

    def each(self, operands: tuple[Any, ...]) -> list[list[Instr]]:
        return [self.value(operand) for operand in operands]

    def all(self, operands: tuple[Any, ...]) -> list[Instr]:
        return [instr for operand in operands for instr in self.value(operand)]

    def skip(self, operands: tuple[Any, ...]) -> None:
        for operand in operands:
            self.value(operand)


def _unpacked(shape: Any) -> bool:
    """Is this part `**mapping` (an UNPACK of one value, with no path of its own)?"""
    return type(shape) is tuple and shape[0] is ExprKind.UNPACK and len(shape[1]) == 1 and not shape[2]


def _load(value: Any) -> list[Instr]:
    return [Instr("LOAD_CONST", value)]


def _call(function: Callable[..., Any], args: list[list[Instr]]) -> list[Instr]:
    """Call the constant `function` with positional arguments, as each CPython version spells it."""
    n = len(args)
    pushed = [instr for arg in args for instr in arg]
    if VERSION < (3, 11):
        return [Instr("LOAD_CONST", function), *pushed, Instr("CALL_FUNCTION", n)]
    if VERSION >= (3, 13):
        return [Instr("LOAD_CONST", function), Instr("PUSH_NULL"), *pushed, Instr("CALL", n)]
    precall = [Instr("PRECALL", n)] if VERSION == (3, 11) else []
    return [Instr("PUSH_NULL"), Instr("LOAD_CONST", function), *pushed, *precall, Instr("CALL", n)]


def _assemble(shapes: tuple[Any, ...], n_leaves: int) -> Callable[..., tuple[Any, ...]]:
    assembler = _Assembler()
    body = [instr for shape in shapes for instr in assembler.value(shape)]
    instrs = [Instr("RESUME", 0)] if VERSION >= (3, 11) else []
    instrs += [*body, Instr("BUILD_TUPLE", len(shapes)), Instr("RETURN_VALUE")]
    for instr in instrs:
        instr.lineno = 1
    code = Bytecode(instrs)
    code.argcount = n_leaves
    code.argnames = [f"v{i}" for i in range(n_leaves)]
    code.name = "<slice>"
    code.filename = "<xcs_bc slice>"
    code.first_lineno = 1
    code.flags = CompilerFlags.OPTIMIZED | CompilerFlags.NEWLOCALS
    function: Callable[..., tuple[Any, ...]] = types.FunctionType(assemble(code, "<xcs_bc slice>")[0], {})
    return function


def _function(shapes: tuple[Any, ...], n_leaves: int) -> Callable[..., tuple[Any, ...]]:
    try:
        function = _functions.get(shapes)
    except TypeError:  # a path key that cannot be hashed (a list): compile it for this slice alone
        return _assemble(shapes, n_leaves)
    if function is None:
        function = _assemble(shapes, n_leaves)
        with _functions_lock:
            if len(_functions) >= _MAX_SHAPES:
                _functions.clear()
            _functions[shapes] = function
    return function


class Slice:
    """Compiled trees: calling it with an `Env` gives their values, or raises NotComputable."""

    __slots__ = ("function", "leaves", "nodes", "refs")

    def __init__(self, refs: tuple[ValueRef, ...]) -> None:
        deepest = max((ref.depth for ref in refs), default=0)
        if deepest > MAX_DEPTH:  # compiling recurses: no recipe or guard is made of such a value
            raise NotComputable(too_deep(deepest))
        leaves: list[ValueRef] = []
        nodes: list[ValueRef] = []
        shapes = tuple(_shape(ref, leaves, nodes) for ref in refs)
        self.refs = refs
        self.leaves = tuple(leaves)
        self.nodes = tuple(nodes)
        self.function = _function(shapes, len(leaves)) if nodes else None  # leaves alone need no code

    def __call__(self, env: Env) -> tuple[Any, ...]:
        try:
            values = [_leaf(leaf, env) for leaf in self.leaves]
            return tuple(values) if self.function is None else self.function(*values)
        except NotComputable:
            raise
        except _Refused as refused:
            raise NotComputable(f"{format_value(self.nodes[refused.node])} is not known to be pure") from None
        except Exception as exc:  # noqa: BLE001 - never let a recipe's failure reach the user's call
            text = ", ".join(format_value(ref) for ref in self.refs)
            raise NotComputable(f"computing {text} raised {type(exc).__name__}") from exc


def too_deep(depth: int) -> str:
    """Why a value nested `depth` levels deep is not computed ahead."""
    return (
        f"it nests expressions {depth} levels deep (a value accumulated over a loop's rounds, "
        f"say), more than the {MAX_DEPTH} a recipe computes"
    )


def evaluate(ref: ValueRef, env: Env) -> Any:
    """The value `ref` describes, computed from `env` without running user code (else NotComputable).

    Whatever goes wrong while computing (a pure helper raising on new data) is NotComputable too:
    the call then runs in its turn, and the real run meets the error where the plain one would.
    """
    return Slice((ref,))(env)[0]

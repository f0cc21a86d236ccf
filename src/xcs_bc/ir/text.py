"""The SSA text of a graph: one deterministic format for people, tests and bug reports.

A graph prints like a small program::

    graph judge_pipeline(question):
      %0 = call gen_a(question)                 # judge.py:10
      %1 = call gen_b(question)                 # judge.py:11
      %2 = call judge(f"A: {%0} B: {%1}", k=3)  # judge.py:12
      return %2
    parallel %0, %1

A call made inside a function the observed code called (a capture traces through them) is printed
under an `in function:` line, commented with the site of the call that entered the function.

Names (`%0`, `%1`, ...) are given at print time, in operation id order, so
the text depends only on the graph's structure.  An expression nested deeper
than `PRINT_DEPTH` levels (a loop that accumulates, `text = text + llm(d)`,
nests as deep as its rounds) prints its inner part as `...`:
`(... + %38) + %39`.  It never shows durations,
timestamps, thread ids or anything whose repr holds a memory address: the same
graph prints the same text on every Python version, which is what lets tests
compare it with a golden string.
"""

from __future__ import annotations

import keyword
import types
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from xcs_bc.errors import IRError
from xcs_bc.ir import passes
from xcs_bc.ir.refs import MISSING, Caller, ExprKind, Operation, Source, ValueRef

if TYPE_CHECKING:
    from xcs_bc.ir.graph import ComputationGraph

__all__ = ["format_graph", "format_op", "format_value", "op_names"]

_CONST_WIDTH = 40
"""Longest printed constant; longer reprs end in "..."."""

_MIN_COMMENT_COLUMN = 40
"""Source comments start at this column at least, so short graphs still line up."""

_MAX_COMMENT_COLUMN = 80
"""...and at most here: one long line does not push every comment off screen."""

PRINT_DEPTH = 24
"""Expression levels a value prints before its inner part becomes `...` (printing recurses)."""

_SCALARS = (str, bytes, int, float, bool, type(None))
"""Types whose repr is the same on every run and version (exact types: subclasses may differ)."""


# --- values ----------------------------------------------------------------


def op_names(graph: ComputationGraph) -> dict[int, str]:
    """Print names of the operations: `%0`, `%1`, ... in id order."""
    ids = sorted(op.id for op in graph.operations)
    return {op_id: f"%{index}" for index, op_id in enumerate(ids)}


def format_value(ref: ValueRef, names: Mapping[int, str] | None = None) -> str:
    """A value as a small expression: `docs[3]`, `%2[0].text`, `'hi'`, `%0 + %1`, `str.join(...)`, `?`.

    `names` maps operation ids to print names (see `op_names`); without it an
    operation's output is named by its id.
    """
    return _Printer(names or {}).format(ref, nested=False)


class _Printer:
    """Formats values, recursing into operands at most `PRINT_DEPTH` levels below the first."""

    def __init__(self, names: Mapping[int, str]) -> None:
        self.names = names
        self.levels = 0  # expression levels entered so far

    def format(self, ref: ValueRef, nested: bool) -> str:
        """The value and its path; `nested` asks for parentheses around an infix expression."""
        if self.levels > PRINT_DEPTH and ref.operands:
            head = "..."
        else:
            self.levels += 1
            try:
                head = _head(ref, self, nested or bool(ref.path))
            finally:
                self.levels -= 1
        return head + "".join(str(step) for step in ref.path)


def _head(ref: ValueRef, printer: _Printer, nested: bool) -> str:
    """The value without its path."""
    names = printer.names
    if ref.source is Source.OUTPUT:
        return names.get(ref.op, f"%{ref.op}") if ref.op is not None else "%?"
    if ref.source is Source.CONST:
        return _const_text(ref.value) if ref.value is not MISSING else ref.name or "MISSING"
    if ref.source is Source.EXPR:
        return _expr_text(ref, printer, nested)
    if ref.source is Source.UNKNOWN:
        return "?"
    return ref.name  # INPUT, GLOBAL, CELL: the name it was read by


def _expr_text(ref: ValueRef, printer: _Printer, nested: bool) -> str:
    """`a + b` for a binary operator, `f"...{a}..."` for an f-string with known text, else `kind(a, b)`."""
    kind = ref.kind
    spelled = kind.value if kind is not None else ""
    if kind is ExprKind.FSTRING and any(_is_text(operand) for operand in ref.operands):
        return 'f"' + "".join(_fstring_piece(operand, printer) for operand in ref.operands) + '"'
    if len(ref.operands) == 2 and _is_operator(spelled):
        left, right = (printer.format(operand, nested=True) for operand in ref.operands)
        text = f"{left} {spelled} {right}"
        return f"({text})" if nested else text
    if kind is ExprKind.CONST and len(ref.operands) == 1:  # a constant with a path: `', '.join`
        return printer.format(ref.operands[0], nested=True)
    if kind in (ExprKind.CALL, ExprKind.CALL_KW) and ref.operands:
        return _call_text(ref, printer)
    if kind is ExprKind.MAKE_FUNCTION:  # `<lambda>`, or the name a `def` gave
        for code in (o.value for o in ref.operands if isinstance(o.value, types.CodeType)):
            return code.co_name if code.co_name.startswith("<") else f"<function {code.co_name}>"
    if kind is ExprKind.EFFECT and len(ref.operands) == 1:  # changed in place, however many times
        changed = ref.operands[0]
        while changed.kind is ExprKind.EFFECT and len(changed.operands) == 1 and not changed.path:
            changed = changed.operands[0]
        return f"effect({printer.format(changed, nested=False)})"
    operands = ", ".join(printer.format(operand, nested=False) for operand in ref.operands)
    return f"{spelled}({operands})"


def _call_text(ref: ValueRef, printer: _Printer) -> str:
    """A pure call computed by glue: `callee(args)`; CALL_KW ends with the keyword names (a CONST)."""
    callee, *args = ref.operands
    kwnames: tuple[str, ...] = ()
    if ref.kind is ExprKind.CALL_KW and args and isinstance(args[-1].value, tuple):
        kwnames = tuple(str(name) for name in args.pop().value)
    positional = args[: len(args) - len(kwnames)]
    keywords = args[len(args) - len(kwnames) :]
    parts = [printer.format(a, nested=False) for a in positional]
    parts += [f"{k}={printer.format(v, nested=False)}" for k, v in zip(kwnames, keywords, strict=False)]
    return f"{printer.format(callee, nested=True)}({', '.join(parts)})"


def _is_operator(kind: str) -> bool:
    """`+`, `==`, `not in`, `and`: kinds written between their operands, not called."""
    return bool(kind) and (keyword.iskeyword(kind) or not kind.replace(".", "_").isidentifier())


def _is_text(ref: ValueRef) -> bool:
    return ref.source is Source.CONST and type(ref.value) is str and not ref.path


def _fstring_piece(ref: ValueRef, printer: _Printer) -> str:
    """A literal piece as f-string text (quotes and braces escaped), anything else as `{value}`."""
    if not _is_text(ref):
        return "{" + printer.format(ref, nested=False) + "}"
    text = repr(ref.value)[1:-1].replace('"', '\\"').replace("{", "{{").replace("}", "}}")
    return text if len(text) <= _CONST_WIDTH else text[: _CONST_WIDTH - 3] + "..."


def _const_text(value: object) -> str:
    """repr of plain data, cut to `_CONST_WIDTH`; a built-in by its name (`list`, as in
    `list(filter(None, docs))`); `<TypeName>` for anything else."""
    if isinstance(value, (type, types.BuiltinFunctionType)) and value.__module__ == "builtins":
        return value.__qualname__  # (not `builtins.print is value`: Ray's workers replace print)
    text = _bounded_repr(value, 2 * _CONST_WIDTH)
    if text is None:
        return f"<{type(value).__name__}>"
    return text if len(text) <= _CONST_WIDTH else text[: _CONST_WIDTH - 3] + "..."


def _bounded_repr(value: object, budget: int) -> str | None:
    """repr of scalars and of tuples, lists and dicts of them; None for anything else.

    Containers stop after about `budget` characters (ending in "..."), and
    each nesting level gets a smaller budget, so a huge or self-referencing
    constant costs little; only what would be printed is checked for being
    plain data.
    """
    if type(value) in _SCALARS:
        return repr(value)
    inner = budget - 1
    if type(value) is dict:
        pairs = (_pair(_bounded_repr(k, inner), _bounded_repr(v, inner)) for k, v in value.items())
        return _bounded_join(pairs, "{", "}", budget)
    if type(value) is list:
        return _bounded_join((_bounded_repr(item, inner) for item in value), "[", "]", budget)
    if type(value) is tuple:
        close = ",)" if len(value) == 1 else ")"
        return _bounded_join((_bounded_repr(item, inner) for item in value), "(", close, budget)
    return None


def _pair(key: str | None, value: str | None) -> str | None:
    return None if key is None or value is None else f"{key}: {value}"


def _bounded_join(pieces: Iterable[str | None], open_: str, close: str, budget: int) -> str | None:
    """Pieces between brackets; None if one is None; "..." once `budget` is spent (pieces are lazy)."""
    if budget <= 0:  # nested this deep (or self-referencing): the caller cuts the text anyway
        return open_ + "..."
    parts: list[str] = []
    used = len(open_)
    for piece in pieces:
        if used > budget:
            return open_ + ", ".join([*parts, "..."])
        if piece is None:
            return None
        parts.append(piece)
        used += len(piece) + 2
    return open_ + ", ".join(parts) + close


# --- operations and graphs -------------------------------------------------


def format_op(op: Operation, names: Mapping[int, str] | None = None) -> str:
    """One operation without its source comment: `%2 = call judge(%0, k=3) if(%1)`."""
    names = names or {}
    args = [format_value(ref, names) for ref in op.args]
    args += [f"{key}={format_value(ref, names)}" for key, ref in op.kwargs.items()]
    text = f"{names.get(op.id, f'%{op.id}')} = {op.op_type.value} {op.name}({', '.join(args)})"
    if op.control:
        text += f" if({', '.join(format_value(ref, names) for ref in op.control)})"
    if "exception" in op.metadata:
        text += f" raised {_type_name(op.metadata['exception'])}"
    return text


def format_graph(graph: ComputationGraph) -> str:
    """The SSA text of `graph`: header, one line per operation with its site, return, parallel groups."""
    names = op_names(graph)
    inputs = ", ".join(format_value(ref, names) for ref in graph.inputs)
    lines = [f"graph {graph.metadata.get('name', 'graph')}({inputs}):"]
    lines += _op_lines(graph.operations, names) or ["  (no slow calls)"]
    if graph.outputs:
        lines.append("  return " + ", ".join(format_value(ref, names) for ref in graph.outputs))
    lines += _group_lines(graph, names)
    if "exception" in graph.metadata:
        lines.append(f"raised {_type_name(graph.metadata['exception'])}")
    return "\n".join(lines)


def _op_lines(ops: Iterable[Operation], names: Mapping[int, str]) -> list[str]:
    """Operation lines in program order, their `# file:line` comments in one column.  Calls made
    inside functions the observed code called (see `Operation.stack`) are indented under an
    `in function:` line for each, with the site of the call that entered it."""
    rows: list[tuple[str, str]] = []
    shown: tuple[Caller, ...] = ()
    for op in ops:
        same = 0
        while same < min(len(shown), len(op.stack)) and shown[same] == op.stack[same]:
            same += 1
        for level in range(same, len(op.stack)):
            caller = op.stack[level]
            rows.append(("  " * (level + 1) + f"in {caller.function}:", str(caller.site)))
        shown = op.stack
        rows.append(("  " * (len(op.stack) + 1) + format_op(op, names), str(op.site)))
    widest = max((len(code) + 2 for code, _ in rows), default=0)
    column = min(max(widest, _MIN_COMMENT_COLUMN), _MAX_COMMENT_COLUMN)
    return [f"{code.ljust(column - 2)}  # {site}" for code, site in rows]


def _group_lines(graph: ComputationGraph, names: Mapping[int, str]) -> list[str]:
    """One `parallel ...` line per independent set, or why there are none for a broken graph."""
    try:
        groups = passes.independent_sets(graph)
    except IRError as error:  # still print the operations: that helps find the builder's bug
        return [f"# invalid graph: {error}"]
    ordered = (sorted(group, key=lambda op: op.id) for group in groups)
    return ["parallel " + ", ".join(names[op.id] for op in group) for group in ordered]


def _type_name(exception: object) -> str:
    """The exception's type name only: its message may hold addresses or timings."""
    if isinstance(exception, type):
        return exception.__name__
    if isinstance(exception, str):
        return exception
    return type(exception).__name__

"""What differs between the CPython versions we support, and the code-object facts every stage reads.

One place for version checks, opcode-name sets and `co_flags` masks, so that
a new version is taught in one module.
"""

from __future__ import annotations

import dis
import inspect
import sys
import types
from collections.abc import Iterator
from typing import Final

VERSION: Final = sys.version_info[:2]
PY311: Final = VERSION >= (3, 11)  # PRECALL + CALL, exception tables, NULL beside callables
PY312: Final = VERSION >= (3, 12)  # sys.monitoring, inlined comprehensions, KW_NAMES, LOAD_ATTR method bit
PY313: Final = VERSION >= (3, 13)  # CALL_KW, NULL above the callable, live f_locals proxy

CO_VARARGS: Final = inspect.CO_VARARGS
CO_VARKEYWORDS: Final = inspect.CO_VARKEYWORDS
CO_GENERATOR: Final = inspect.CO_GENERATOR
CO_GENERATOR_LIKE: Final = (
    inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ITERABLE_COROUTINE | inspect.CO_ASYNC_GENERATOR
)
"""Code whose frames suspend and resume: generators, coroutines, async generators."""

CALL_OPS: Final = frozenset(
    {"CALL", "CALL_KW", "CALL_FUNCTION", "CALL_FUNCTION_KW", "CALL_METHOD", "CALL_FUNCTION_EX"}
)
"""The instructions that make a call, on any supported version."""

INSTRUMENTED: Final = frozenset(name for name in dis.opmap if name.startswith("INSTRUMENTED_"))
"""3.12+: the twins sys.monitoring swaps in for instrumented instructions (`dis` never shows them)."""

COMPREHENSIONS: Final = frozenset({"<listcomp>", "<setcomp>", "<dictcomp>", "<genexpr>"})
"""Names of the code objects the compiler makes for comprehensions and generator expressions."""


def handled_now() -> BaseException | None:
    """The exception the handler control just reached handles, if it can be read yet; else None.

    3.10 sets it before the handler's first instruction.  3.11+ set it when the handler's
    PUSH_EXC_INFO has run: read before, `sys.exc_info()` gives an exception handled further out
    (the caller's `except` block the observed code runs in), never the one just raised.  (3.10 and
    3.11 also report it by the trace's 'exception' event; 3.12+ have no local event for it.)
    """
    return None if PY311 else sys.exc_info()[1]


def nested_code(code: types.CodeType) -> Iterator[types.CodeType]:
    """Comprehension/genexpr code objects in co_consts, recursively through them only."""
    for const in code.co_consts:
        if isinstance(const, types.CodeType) and const.co_name in COMPREHENSIONS:
            yield const
            yield from nested_code(const)


def instructions_with_lines(code: types.CodeType) -> Iterator[tuple[dis.Instruction, int | None]]:
    """Every instruction of `code` with its source line (None where the compiler gave none)."""
    line: int | None = None
    for ins in dis.get_instructions(code):
        if sys.version_info >= (3, 11):  # spelled out: mypy narrows only this form
            line = ins.positions.lineno if ins.positions else None
        elif ins.starts_line is not None:  # 3.10: the line lasts until the next start
            line = ins.starts_line
        yield ins, line


def qualified_name(code: types.CodeType) -> str:
    """`Class.method` where the version records it (3.11+), else the bare name."""
    if sys.version_info >= (3, 11):
        return code.co_qualname
    return code.co_name

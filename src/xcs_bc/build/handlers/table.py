"""The decision for every opcode: `HANDLERS` (opcode -> handler), `CONSERVATIVE` (the opcodes
not modelled), and `decision()`.
"""

from __future__ import annotations

from typing import Any

from xcs_bc._compat import (
    CALL_OPS,
    INSTRUMENTED,
)
from xcs_bc.build.calls import kw_names, precall
from xcs_bc.build.codeinfo import COND_POP_JUMPS
from xcs_bc.build.handlers.branches import jump_if_or_pop, pop_jump_if
from xcs_bc.build.handlers.containers import (
    binary_slice,
    binary_subscr,
    build_const_key_map,
    build_display,
    call_intrinsic_1,
    container_add,
    delete_subscr,
    list_to_tuple,
    store_slice,
    store_subscr,
    unpack_sequence,
)
from xcs_bc.build.handlers.iteration import for_iter, get_iter, pop_top
from xcs_bc.build.handlers.names import (
    delete_attr,
    delete_fast,
    delete_global,
    load_attr,
    load_const,
    load_fast,
    load_fast_and_clear,
    load_global_handler,
    load_name,
    push_null,
    store_attr,
    store_fast,
    store_global_handler,
)
from xcs_bc.build.handlers.operators import (
    BINARY_3_10,
    binary_op,
    compare_op,
    convert_value,
    format_value,
    pure_expression,
    set_function_attribute,
    unary_op,
)
from xcs_bc.build.handlers.stack import copy, nop, return_value, swap, yield_value
from xcs_bc.ir import ExprKind

HANDLERS: dict[str, Any] = {
    "LOAD_FAST": load_fast,
    "LOAD_FAST_CHECK": load_fast,
    "LOAD_FAST_LOAD_FAST": load_fast,
    "LOAD_DEREF": load_fast,
    "LOAD_CLASSDEREF": load_fast,
    "LOAD_FAST_AND_CLEAR": load_fast_and_clear,
    "STORE_FAST": store_fast,
    "STORE_FAST_STORE_FAST": store_fast,
    "STORE_FAST_LOAD_FAST": store_fast,
    "STORE_DEREF": store_fast,
    "STORE_NAME": store_fast,
    "DELETE_FAST": delete_fast,
    "DELETE_DEREF": delete_fast,
    "DELETE_NAME": delete_fast,
    "LOAD_NAME": load_name,
    "LOAD_GLOBAL": load_global_handler,
    "LOAD_CONST": load_const,
    "PUSH_NULL": push_null,
    "LOAD_ATTR": load_attr,
    "LOAD_METHOD": load_attr,
    "BINARY_SUBSCR": binary_subscr,
    "STORE_ATTR": store_attr,
    "SET_FUNCTION_ATTRIBUTE": set_function_attribute,
    "DELETE_ATTR": delete_attr,
    "STORE_SUBSCR": store_subscr,
    "DELETE_SUBSCR": delete_subscr,
    "STORE_SLICE": store_slice,
    "BINARY_SLICE": binary_slice,
    "STORE_GLOBAL": store_global_handler,
    "DELETE_GLOBAL": delete_global,
    "STORE_FAST_MAYBE_NULL": store_fast,  # a pseudo-instruction (3.12+): assembled to STORE_FAST
    "BUILD_LIST": build_display(ExprKind.LIST),
    "BUILD_TUPLE": build_display(ExprKind.TUPLE),
    "BUILD_SET": build_display(ExprKind.SET),
    "BUILD_MAP": build_display(ExprKind.DICT),
    "BUILD_CONST_KEY_MAP": build_const_key_map,
    "BUILD_STRING": build_display(ExprKind.FSTRING),
    "BUILD_SLICE": build_display(ExprKind.SLICE),
    "LIST_APPEND": container_add,
    "SET_ADD": container_add,
    "MAP_ADD": container_add,
    "LIST_EXTEND": container_add,
    "SET_UPDATE": container_add,
    "DICT_UPDATE": container_add,
    "DICT_MERGE": container_add,
    "LIST_TO_TUPLE": list_to_tuple,
    "CALL_INTRINSIC_1": call_intrinsic_1,
    "UNPACK_SEQUENCE": unpack_sequence,
    "GET_ITER": get_iter,
    "FOR_ITER": for_iter,
    "JUMP_IF_TRUE_OR_POP": jump_if_or_pop,
    "JUMP_IF_FALSE_OR_POP": jump_if_or_pop,
    "KW_NAMES": kw_names,
    "COPY": copy,
    "DUP_TOP": copy,
    "DUP_TOP_TWO": copy,
    "SWAP": swap,
    "ROT_TWO": swap,
    "ROT_THREE": swap,
    "ROT_FOUR": swap,
    "ROT_N": swap,
    "FORMAT_VALUE": format_value,
    "FORMAT_SIMPLE": format_value,
    "FORMAT_WITH_SPEC": format_value,
    # 3.13 splits `!r` off FORMAT_SIMPLE; before, FORMAT_VALUE did both at once
    "CONVERT_VALUE": convert_value,
    "BINARY_OP": binary_op,
    "COMPARE_OP": compare_op,
    "IS_OP": compare_op,
    "CONTAINS_OP": compare_op,
    "UNARY_NOT": unary_op,
    "UNARY_NEGATIVE": unary_op,
    "UNARY_INVERT": unary_op,
    "UNARY_POSITIVE": unary_op,
    "TO_BOOL": nop,  # 3.13 makes truth tests explicit; the value's truth is the same
    "RETURN_VALUE": return_value,
    "RETURN_CONST": return_value,
    "YIELD_VALUE": yield_value,
    "POP_TOP": pop_top,
    "END_FOR": nop,
    "NOP": nop,
    "RESUME": nop,
    "PRECALL": precall,
    "CACHE": nop,
    "EXTENDED_ARG": nop,
    "JUMP_FORWARD": nop,
    "JUMP_BACKWARD": nop,
    "JUMP_ABSOLUTE": nop,
    "JUMP_BACKWARD_NO_INTERRUPT": nop,
    "JUMP": nop,
    "JUMP_NO_INTERRUPT": nop,  # a pseudo-instruction (3.12+)
    # no stack effect beyond dropping what they pop: block setup, cells, leaving by an exception
    "SETUP_FINALLY": nop,
    "SETUP_CLEANUP": nop,
    "POP_BLOCK": nop,
    "POP_EXCEPT": nop,
    "GEN_START": nop,
    "MAKE_CELL": nop,
    "COPY_FREE_VARS": nop,
    "RAISE_VARARGS": nop,
    "RERAISE": nop,
    # pure expressions of their operands
    "MAKE_FUNCTION": pure_expression,
    "LOAD_CLOSURE": pure_expression,
    "LOAD_ASSERTION_ERROR": pure_expression,
    "UNPACK_EX": pure_expression,  # every target is an expression of the sequence (not a path)
    "RETURN_GENERATOR": pure_expression,  # the value a generator is first resumed with
    "PUSH_EXC_INFO": pure_expression,
    "CHECK_EXC_MATCH": pure_expression,
    "JUMP_IF_NOT_EXC_MATCH": pure_expression,
}
for _name in COND_POP_JUMPS:
    HANDLERS[_name] = pop_jump_if
for _name in BINARY_3_10:
    HANDLERS[_name] = binary_op
del _name

CONSERVATIVE: frozenset[str] = (
    frozenset(
        # `with` and `async with` run `__enter__`/`__exit__`; `await`, `yield from`, async iteration run
        # another frame's code; imports run a module; `match` runs `__match_args__`, `__len__`, `get`;
        # class bodies, annotations, `super()` attributes, exception groups and the REPL's print
        """BEFORE_WITH SETUP_WITH WITH_EXCEPT_START BEFORE_ASYNC_WITH SETUP_ASYNC_WITH
    GET_AWAITABLE GET_AITER GET_ANEXT END_ASYNC_FOR SEND END_SEND YIELD_FROM GET_YIELD_FROM_ITER
    ASYNC_GEN_WRAP CLEANUP_THROW
    IMPORT_NAME IMPORT_FROM IMPORT_STAR
    MATCH_CLASS MATCH_KEYS MATCH_MAPPING MATCH_SEQUENCE GET_LEN COPY_DICT_WITHOUT_KEYS
    LOAD_BUILD_CLASS SETUP_ANNOTATIONS LOAD_LOCALS LOAD_FROM_DICT_OR_DEREF LOAD_FROM_DICT_OR_GLOBALS
    LOAD_SUPER_ATTR LOAD_SUPER_METHOD LOAD_ZERO_SUPER_ATTR LOAD_ZERO_SUPER_METHOD
    CHECK_EG_MATCH PREP_RERAISE_STAR CALL_INTRINSIC_2 PRINT_EXPR
    EXIT_INIT_CHECK ENTER_EXECUTOR INTERPRETER_EXIT RESERVED""".split()
    )
    | INSTRUMENTED
)
"""Opcodes we do not model: their results are UNKNOWN and they may change what they take (see
`GraphBuilder.unmodelled`).  So is any opcode in no list (a new version's): conservative by default."""


def decision(opname: str) -> str | None:
    """How the builder treats an opcode: "handler", "call", "conservative", or None if undecided."""
    if opname in HANDLERS:
        return "handler"
    if opname in CALL_OPS:
        return "call"
    return "conservative" if opname in CONSERVATIVE else None

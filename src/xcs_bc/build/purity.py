"""What a fast (glue) call may do: the effect classes the dataflow builder relies on.

A slow call is an operation of the graph; a fast call is glue, and its result
and its effects must still be accounted for.  Four classes:

* PURE: the result depends only on the arguments (and the receiver); nothing
  is changed.  `len`, `str.join`, `json.dumps`, `str.format`, `sorted` ...
* MUTATES_INPUTS: may change its receiver or its mutable arguments, using only
  its inputs; the result depends only on its inputs.  `list.append`,
  `dict.update`, `list.sort` ...
* CLOCK: reads a clock (`time.perf_counter`, `time.time`): nothing is changed,
  but its result is the run's own, which no recipe may compute again.
* UNKNOWN: anything else.  Its result depends on every earlier operation, and
  every mutable object it was handed may have been changed by it.

Python helper functions are classified from their bytecode (`classify_code`):
a helper that only reads its arguments, constants and immutable globals, and
only calls PURE things (recursively, a few levels deep), is PURE.

A classification reads places anyone may rebind later: globals, builtins,
closure cells, module attributes, class dicts, functions' `__code__`.  It is
cached with what it read there (`_Reads`) and reused only while every place
still holds the very object it held, so rebinding a helper's helper to an
impure function is honoured on the next question.
"""

from __future__ import annotations

import builtins
import dis
import enum
import functools
import json
import logging
import math
import re
import textwrap
import time
import types
import warnings
from collections import Counter, OrderedDict, defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from xcs_bc._compat import CALL_OPS, CO_GENERATOR, CO_GENERATOR_LIKE, PY312, PY313
from xcs_bc.build.codeinfo import Instr, code_info
from xcs_bc.errors import UnsupportedCodeError
from xcs_bc.ir import MISSING
from xcs_bc.ir.values import class_lookup
from xcs_bc.observe.reach import library


class Effect(enum.Enum):
    PURE = "pure"
    MUTATES_INPUTS = "mutates inputs"
    CLOCK = "reads a clock"
    UNKNOWN = "unknown"


_PURE_BUILTINS: frozenset[Callable[..., Any]] = frozenset(
    {
        abs,
        all,
        any,
        ascii,
        bin,
        bool,
        bytes,
        callable,
        chr,
        complex,
        dict,
        divmod,
        enumerate,
        filter,
        float,
        format,
        frozenset,
        hash,
        hex,
        id,
        int,
        isinstance,
        issubclass,
        iter,
        len,
        list,
        map,
        max,
        min,
        oct,
        ord,
        pow,
        range,
        repr,
        reversed,
        round,
        set,
        slice,
        sorted,
        str,
        sum,
        tuple,
        type,
        zip,
        print,  # writes to stdout, which no slow call reads back
        warnings.warn,  # writes to stderr (or raises, as a filter says), which no slow call reads back
        json.dumps,
        json.loads,
        # regular expressions with a string replacement (a function given as `repl` is an argument a
        # recipe refuses: not plain data) and text reflowing: new values, nothing changed
        re.compile,
        re.escape,
        re.findall,
        re.fullmatch,
        re.match,
        re.search,
        re.split,
        re.sub,
        re.subn,
        textwrap.dedent,
        textwrap.fill,
        textwrap.indent,
        textwrap.shorten,
        textwrap.wrap,
        math.sqrt,
        math.ceil,
        math.floor,
        math.log,
        math.exp,
        math.isclose,
    }
)

# Methods of built-in types that read their receiver and return a new value.
_PURE_METHODS: dict[type, frozenset[str]] = {
    str: frozenset(
        "capitalize casefold center count encode endswith expandtabs find format format_map index isalnum "
        "isalpha isascii isdecimal isdigit isidentifier islower isnumeric isprintable isspace istitle "
        "isupper join ljust lower lstrip partition removeprefix removesuffix replace rfind rindex rjust "
        "rpartition rsplit rstrip split splitlines startswith strip swapcase title translate upper "
        "zfill __getitem__ __len__ __contains__ __add__ __mod__ __format__".split()
    ),
    bytes: frozenset(
        "decode count endswith find hex index join lower lstrip partition replace rsplit rstrip split "
        "splitlines startswith strip upper __getitem__ __len__ __contains__ __add__".split()
    ),
    re.Pattern: frozenset("findall fullmatch match search split sub subn".split()),
    re.Match: frozenset("end expand group groupdict groups span start __getitem__".split()),
    list: frozenset("copy count index __getitem__ __len__ __contains__".split()),
    tuple: frozenset("count index __getitem__ __len__ __contains__".split()),
    dict: frozenset("copy get items keys values __getitem__ __len__ __contains__".split()),
    set: frozenset(
        "copy difference intersection isdisjoint issubset issuperset symmetric_difference union".split()
    ),
    frozenset: frozenset("copy difference intersection isdisjoint issubset issuperset union".split()),
    deque: frozenset("copy count index __getitem__ __len__ __contains__".split()),
    int: frozenset("bit_length to_bytes __format__".split()),
    float: frozenset("is_integer hex __format__".split()),
}

_MUTATING_METHODS: dict[type, frozenset[str]] = {
    list: frozenset("append extend insert pop remove clear sort reverse __setitem__ __delitem__".split()),
    dict: frozenset("update setdefault pop popitem clear __setitem__ __delitem__".split()),
    set: frozenset("add discard remove pop clear update difference_update intersection_update".split()),
    bytearray: frozenset("append extend insert pop remove clear reverse".split()),
    deque: frozenset("append appendleft extend extendleft pop popleft remove clear rotate".split()),
}

_IMMUTABLE_TYPES: tuple[type, ...] = (
    str,
    bytes,
    int,
    float,
    complex,
    bool,
    type(None),
    range,
    frozenset,
    types.FunctionType,
    types.BuiltinFunctionType,
    type,
    types.ModuleType,
    type(Ellipsis),
    re.Pattern,
)


_IMMUTABLE_OR_ENUM = (*_IMMUTABLE_TYPES, enum.Enum)


def is_immutable(value: Any, depth: int = 2) -> bool:
    """True when nobody can change `value` in place (tuples are checked a few levels deep)."""
    if isinstance(value, _IMMUTABLE_OR_ENUM):
        return True
    if type(value) is tuple and depth > 0:
        return all(is_immutable(item, depth - 1) for item in value)
    return False


_UNBOUND: Any = object()  # what an unbound name, an empty cell or a missing class attribute reads as


class _Reads:
    """The places a classification looked at, each with the object it found there.

    Reused only while every place still holds that very object (`is`): rebinding a global, a cell,
    a module attribute, a class attribute or a function's `__code__` makes the next question
    classify afresh.  The objects are held strongly on purpose: an id alone could be taken by a new
    object once the old one is freed.  They live as long as the cache entry, which the next
    classification of the same code replaces.
    """

    __slots__ = ("cells", "codes", "lookups", "names")

    def __init__(self) -> None:
        self.names: dict[tuple[int, str], tuple[dict[str, Any], str, Any]] = {}
        self.cells: list[tuple[types.CellType, Any]] = []
        self.codes: list[tuple[types.FunctionType, types.CodeType]] = []
        self.lookups: list[tuple[type, str, Any]] = []

    def name(self, namespace: dict[str, Any], name: str) -> Any:
        value = namespace.get(name, _UNBOUND)
        self.names[id(namespace), name] = (namespace, name, value)
        return value

    def cell(self, cell: types.CellType) -> Any:
        value = _contents(cell)
        self.cells.append((cell, value))
        return value

    def code(self, function: types.FunctionType) -> types.CodeType:
        code = function.__code__
        self.codes.append((function, code))
        return code

    def lookup(self, cls: type, name: str) -> Any:
        value = class_lookup(cls, name)
        self.lookups.append((cls, name, value))
        return value

    def hold(self) -> bool:
        """Does every place still hold what it held?  (A few dict lookups: asked on hot paths.)"""
        for namespace, name, value in self.names.values():
            if namespace.get(name, _UNBOUND) is not value:
                return False
        for cell, value in self.cells:
            if _contents(cell) is not value:
                return False
        for function, code in self.codes:
            if function.__code__ is not code:
                return False
        return all(class_lookup(cls, name) is value for cls, name, value in self.lookups)


def _contents(cell: types.CellType) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # empty
        return _UNBOUND


def classify(callee: Any) -> Effect:
    """The effect class of calling `callee` (a concrete object seen at trace time)."""
    return _classify(callee, 0, None)


# new empty containers of the standard library's (`votes = Counter()`, `groups = defaultdict(list)`): made
# of nothing the caller has, by no user code (a defaultdict's factory a built-in type, called later)
# (each with the keywords it may be handed)
_EMPTY_CONTAINERS: dict[Any, frozenset[str]] = {
    Counter: frozenset(),
    OrderedDict: frozenset(),
    defaultdict: frozenset(),
    deque: frozenset({"maxlen"}),
}
_FACTORIES = frozenset({int, float, str, bool, list, dict, set, tuple, Counter, OrderedDict, deque})


def makes_empty_container(callee: Any, args: Sequence[Any], kwnames: Sequence[str]) -> bool:
    """Does calling `callee` with `args` (values, keyword values last, named by `kwnames`) make a new
    empty container and nothing else: `Counter()`, `OrderedDict()`, `defaultdict(list)` (its factory a
    built-in type), `deque(maxlen=3)`?  Like `dict()`, it is then pure, and the container the glue's."""
    try:
        keywords = _EMPTY_CONTAINERS.get(callee)
    except TypeError:  # unhashable callee
        return False
    if keywords is None or not set(kwnames) <= keywords:
        return False
    positional = len(args) - len(kwnames)
    if callee is defaultdict:
        return positional == 0 or (positional == 1 and _is_factory(args[0]))
    return positional == 0 and all(type(value) is int for value in args)  # (deque's maxlen)


def _is_factory(value: Any) -> bool:
    try:
        return value in _FACTORIES
    except TypeError:
        return False


def _classify(callee: Any, depth: int, reads: _Reads | None) -> Effect:
    try:
        if callee in _PURE_BUILTINS:
            return Effect.PURE
        if callee in _CLOCKS:
            return Effect.CLOCK
    except TypeError:  # unhashable callee
        return Effect.UNKNOWN
    if _logs(callee):
        return Effect.PURE
    owner = getattr(callee, "__self__", None)
    name = getattr(callee, "__name__", None)
    if isinstance(callee, (types.BuiltinMethodType, types.MethodWrapperType)) and owner is not None:
        return _classify_method(type(owner), name)
    if isinstance(callee, (types.MethodDescriptorType, types.WrapperDescriptorType)):
        return _classify_method(callee.__objclass__, name)
    if isinstance(callee, types.MethodType):
        callee = callee.__func__
    if isinstance(callee, types.FunctionType):
        code = callee.__code__ if reads is None else reads.code(callee)
        return classify_code(code, callee.__globals__, callee.__closure__, depth, reads)
    return Effect.UNKNOWN


_CLOCKS = frozenset(
    {
        time.time,
        time.time_ns,
        time.perf_counter,
        time.perf_counter_ns,
        time.monotonic,
        time.monotonic_ns,
        time.process_time,
        time.process_time_ns,
    }
)

# What a logger's methods (and logging's functions) change is what its handlers write to, which no slow
# call reads back, like `print`'s stdout; a logger of a class of its own (or an adapter) may do more.
_LOGGER_METHODS = frozenset(
    getattr(logging.Logger, name)
    for name in ("debug", "info", "warning", "error", "exception", "critical", "log")
)
_LOGGING_FUNCTIONS = frozenset(
    getattr(logging, name) for name in ("debug", "info", "warning", "error", "exception", "critical", "log")
)


def _logs(callee: Any) -> bool:
    """Is `callee` `logger.info` (and the like) of a plain `logging.Logger`, or `logging.info`?"""
    if isinstance(callee, types.MethodType):
        return (
            type(callee.__self__) in (logging.Logger, logging.RootLogger)
            and callee.__func__ in _LOGGER_METHODS
        )
    return isinstance(callee, types.FunctionType) and callee in _LOGGING_FUNCTIONS


def _classify_method(owner: type, name: str | None) -> Effect:
    for base in owner.__mro__:
        if name in _PURE_METHODS.get(base, ()):
            return Effect.PURE
        if name in _MUTATING_METHODS.get(base, ()):
            return Effect.MUTATES_INPUTS
    return Effect.UNKNOWN


_FORBIDDEN_OPS = frozenset(
    "STORE_GLOBAL DELETE_GLOBAL STORE_ATTR DELETE_ATTR STORE_SUBSCR DELETE_SUBSCR STORE_DEREF DELETE_DEREF "
    "IMPORT_NAME IMPORT_FROM IMPORT_STAR YIELD_VALUE YIELD_FROM GET_AWAITABLE SEND RETURN_GENERATOR "
    "GEN_START STORE_NAME DELETE_NAME LOAD_NAME LOAD_BUILD_CLASS SETUP_ANNOTATIONS RAISE_VARARGS".split()
)
_MAX_DEPTH = 3
# what a generator's body may hold besides a PURE function's (not `yield from`: what it delegates to
# could be anything, and `send` hands values in)
_YIELDS = frozenset({"YIELD_VALUE", "RETURN_GENERATOR", "GEN_START"})


class _CodeEntry(NamedTuple):
    """A helper's cached classification: valid for these globals and cells while `reads` holds."""

    globals: dict[str, Any]
    closure: tuple[types.CellType, ...] | None
    effect: Effect
    reads: _Reads


# One entry per code object and question (`yields`; another function of the same code replaces it), so
# the cache and the objects its entries hold stay bounded by the code objects ever classified.
_code_cache: dict[tuple[types.CodeType, bool], _CodeEntry] = {}


def pure_function(value: Any) -> bool:
    """Is `value` a Python function whose code is PURE (`key=lambda d: len(d)`, `filter(keep, docs)`)?"""
    return isinstance(value, types.FunctionType) and classify(value) is Effect.PURE


_HANDED_BUILTINS = (types.BuiltinFunctionType, types.MethodDescriptorType)


def pure_callable(value: Any) -> bool:
    """What a pure call may be handed to call (`sorted(xs, key=len)`, `map(str.strip, xs)`,
    `filter(keep, xs)`): a built-in function or method known to be pure, which runs no user code on
    plain data, or a Python function whose code is PURE (`pure_function`)."""
    if type(value) in _HANDED_BUILTINS:
        return classify(value) is Effect.PURE
    return pure_function(value)


def pure_generator(callee: Any) -> bool:
    """Is `callee` a generator function (or a method of one) whose body is PURE but for its `yield`s:
    the items of the generator a call makes depend only on the arguments, so the list of them can be
    computed again from the arguments (`for c in chunks(doc, 500)`), and whose loops are all `for`
    loops (`loops_but_for`)?  (A generator is no PURE callee:
    the object a call makes is consumed once, so only the call whose generator a loop takes at once is
    listed, see `build.generators.items_of`.)"""
    fn = callee.__func__ if isinstance(callee, types.MethodType) else callee
    if not isinstance(fn, types.FunctionType) or fn.__code__.co_flags & CO_GENERATOR_LIKE != CO_GENERATOR:
        return False
    return classify_code(fn.__code__, fn.__globals__, fn.__closure__, yields=True) is Effect.PURE


def classify_code(
    code: types.CodeType,
    globals_: dict[str, Any],
    closure: tuple[types.CellType, ...] | None = None,
    depth: int = 0,
    reads: _Reads | None = None,
    *,
    yields: bool = False,
) -> Effect:
    """Classify a Python helper from its bytecode: PURE when it provably only computes from its inputs.

    It must not store outside its own locals, not import, yield or raise on
    purpose, read only immutable globals or PURE callables (from its globals
    or its closure cells), and call only PURE things.  Calls are checked by the
    name they load: a global name or closure variable bound to a PURE callable,
    or a method of a built-in type reached from a local (checked at run time,
    so method calls on locals are not accepted here).  Anything else, or a
    helper nested deeper than a few levels, is UNKNOWN: precise enough for
    prompt builders, never optimistic.

    Every place looked at is recorded in `reads` (a nested helper's into its
    caller's); the outermost classification is cached with them.  With
    `yields`, a generator's body is classified, its `yield`s allowed.
    """
    if depth > 0 or reads is not None:
        return _classify_code_uncached(code, globals_, closure, depth, reads or _Reads())
    entry = _code_cache.get((code, yields))
    if entry is not None and entry.globals is globals_ and entry.closure is closure and entry.reads.hold():
        return entry.effect
    reads = _Reads()
    effect = _classify_code_uncached(code, globals_, closure, depth, reads, yields)
    _code_cache[code, yields] = _CodeEntry(globals_, closure, effect, reads)
    return effect


def _classify_code_uncached(
    code: types.CodeType,
    globals_: dict[str, Any],
    closure: tuple[types.CellType, ...] | None,
    depth: int,
    reads: _Reads,
    yields: bool = False,
) -> Effect:
    if depth > _MAX_DEPTH or code.co_flags & CO_GENERATOR_LIKE != (CO_GENERATOR if yields else 0):
        return Effect.UNKNOWN  # (generators, coroutines: unless a generator's body is asked about)
    if yields and loops_but_for(code):
        return Effect.UNKNOWN
    module: types.ModuleType | None = None  # a module global just loaded: `json.dumps(...)`
    for ins in dis.get_instructions(code):
        if ins.opname in _FORBIDDEN_OPS and not (yields and ins.opname in _YIELDS):
            return Effect.UNKNOWN
        loaded_module, module = module, None
        if loaded_module is not None and ins.opname in ("LOAD_METHOD", "LOAD_ATTR"):
            attribute = reads.name(loaded_module.__dict__, str(ins.argval))
            if _classify(attribute, depth + 1, reads) is not Effect.PURE:
                return Effect.UNKNOWN
        elif ins.opname in ("LOAD_METHOD",) or (ins.opname == "LOAD_ATTR" and _method_form(ins)):
            if ins.argval not in _ALL_PURE_METHOD_NAMES:
                return Effect.UNKNOWN
        elif ins.opname == "LOAD_GLOBAL":
            value = _global_value(str(ins.argval), globals_, reads)
            if isinstance(value, types.ModuleType):
                module = value
            elif _value_effect(value, depth, reads) is not Effect.PURE:
                return Effect.UNKNOWN
        elif ins.opname == "LOAD_DEREF":
            if (
                _value_effect(_free_value(code, closure, str(ins.argval), reads), depth, reads)
                is not Effect.PURE
            ):
                return Effect.UNKNOWN
        elif ins.opname == "LOAD_CLASSDEREF":
            return Effect.UNKNOWN
    for const in code.co_consts:
        if (
            isinstance(const, types.CodeType)
            and classify_code(const, globals_, None, depth + 1, reads) is not Effect.PURE
        ):
            return Effect.UNKNOWN
    return Effect.PURE if _calls_checked_callees(code) else Effect.UNKNOWN


def loops_but_for(code: types.CodeType) -> bool:
    """Does `code` jump back anywhere but to a `for` loop's FOR_ITER (a `while` loop)?  A generator
    listed ahead of its consumer runs to its end: a `for` loop over finite data ends, a `while` loop
    may spin without yielding past the item where the consumer would have stopped (`break`)."""
    instructions = list(dis.get_instructions(code))
    heads = {ins.offset for ins in instructions if ins.opname == "FOR_ITER"}
    return any(
        "JUMP" in ins.opname
        and type(ins.argval) is int
        and ins.argval < ins.offset
        and ins.argval not in heads
        for ins in instructions
    )


# what may load the callable of a call in a PURE helper: the loops above checked what each loads
_CALLEE_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_DEREF", "LOAD_METHOD", "MAKE_FUNCTION"})


def _calls_checked_callees(code: types.CodeType) -> bool:
    """Is the callable of every call `code` makes one the scan checked: a global or closure variable
    (`len`, a pure helper), a method of a built-in type by name, a module's function, a function made
    here?  Not a callable handed in (`fn(x)`), read from a container (`handlers[k](x)`) or from an
    attribute of a value (`obj.run(x)` on 3.10, with keywords), or returned by a call.  Each stack
    slot is followed back to the instruction that pushed it, along straight-line code (a slot coming
    from a join of paths is of unknown origin)."""
    try:
        info = code_info(code)
    except UnsupportedCodeError:
        return False
    targets = {ins.target for ins in info.instrs.values() if ins.target is not None}
    stack: list[Instr | None] = []
    checked: set[int] = set()  # offsets of the loads the scan checked (see `_checked_load`)
    previous: Instr | None = None
    for offset in info.order:
        ins = info.instrs[offset]
        if ins.depth is None:
            continue
        if offset in targets or previous is None or previous.next != offset or len(stack) != ins.depth:
            stack = [None] * ins.depth
        popped = stack[len(stack) - ins.pops :] if ins.pops else []
        if ins.opname in CALL_OPS and not _checked_callee(popped, checked):
            return False
        if _checked_load(ins, previous):
            checked.add(offset)
        del stack[len(stack) - len(popped) :]
        stack.extend([ins] * ins.pushes)
        previous = ins
    return True


def _checked_callee(popped: list[Instr | None], checked: set[int]) -> bool:
    """Was the callable of a call that popped `popped` pushed by a load the scan checked?  It is the
    first popped slot, or, where that one is a NULL (3.11, 3.12: `[NULL, callable, args...]`), the
    second; next to a callable, the second slot is the method's object, or an argument."""
    first = popped[0] if popped else None
    if first is None:
        return False
    if first.opname == "PUSH_NULL" or (first.opname == "LOAD_GLOBAL" and first.pushes == 2 and not PY313):
        callee = popped[1] if len(popped) > 1 else None
        return callee is first or (callee is not None and callee.offset in checked)
    return first.offset in checked


def _checked_load(load: Instr, previous: Instr | None) -> bool:
    """Does `load` push a callable the scan checked: a global, a closure variable, a method by name
    (LOAD_METHOD; LOAD_ATTR in method form on 3.12+), a function made here, or an attribute of the
    global just loaded (`json.dumps`)?"""
    if load.opname in _CALLEE_LOADS:
        return True
    if load.opname != "LOAD_ATTR":
        return False
    return (PY312 and load.arg is not None and bool(load.arg & 1)) or (
        previous is not None and previous.opname == "LOAD_GLOBAL"
    )


def _method_form(ins: dis.Instruction) -> bool:
    """LOAD_ATTR with the low bit set loads a method (3.12+); before 3.12 LOAD_METHOD did that."""
    return PY312 and ins.arg is not None and bool(ins.arg & 1)


_ALL_PURE_METHOD_NAMES = frozenset(name for names in _PURE_METHODS.values() for name in names)


def _global_value(name: str, globals_: dict[str, Any], reads: _Reads) -> Any:
    """What a LOAD_GLOBAL of `name` finds (a global, else a builtin, else _UNBOUND); both are recorded:
    a global defined later shadows the builtin."""
    value = reads.name(globals_, name)
    return reads.name(builtins.__dict__, name) if value is _UNBOUND else value


def _free_value(
    code: types.CodeType, closure: tuple[types.CellType, ...] | None, name: str, reads: _Reads
) -> Any:
    """The contents of closure variable `name` (_UNBOUND for an empty cell, or a cell variable of the
    helper's own, which is one of its locals and not known here)."""
    if closure is None or name not in code.co_freevars:
        return _UNBOUND
    return reads.cell(closure[code.co_freevars.index(name)])


def _value_effect(value: Any, depth: int, reads: _Reads) -> Effect:
    """The effect of reading (and calling) a global or closure variable holding `value`."""
    if value is _UNBOUND:
        return Effect.UNKNOWN
    if isinstance(value, types.FunctionType):
        return classify_code(reads.code(value), value.__globals__, value.__closure__, depth + 1, reads)
    if is_immutable(value) and not isinstance(value, (type, types.ModuleType, types.BuiltinFunctionType)):
        return Effect.PURE
    return _classify(value, depth + 1, reads)


def memo_wrapper(callee: Any) -> Any:
    """The functools.cache / lru_cache wrapper `callee` is (or a method bound from), else None."""
    if type(callee) is types.MethodType:
        callee = callee.__func__
    return callee if type(callee) is functools._lru_cache_wrapper else None


_ATTRIBUTE_STORES = frozenset({"STORE_ATTR", "DELETE_ATTR"})
# (code, class) -> (does it store, what the answer read: the class attributes its names found)
_stores_cache: dict[tuple[types.CodeType, type], tuple[bool, _Reads]] = {}


def sets_attributes(callee: Any) -> bool:
    """Does a bound Python method set or delete attributes (of its object, as far as can be told)?

    A slow call is a black box that is assumed not to change its receiver (an LLM client is not
    changed by a request).  A method of the caller's own class that stores state on `self`
    (`self.notes = ...`, `self.count += 1`), directly or through another method of its class it
    names, does: the calls after it that read that object must wait for it.  Read from the bytecode;
    any attribute store counts (over-approximating costs parallelism, never correctness).
    """
    func = getattr(callee, "__func__", None)
    receiver = getattr(callee, "__self__", None)
    if func is None and not isinstance(callee, (types.FunctionType, types.BuiltinFunctionType, type)):
        func, receiver = type(callee).__dict__.get("__call__"), callee  # a callable object
    code = getattr(func, "__code__", None)
    if not isinstance(code, types.CodeType) or receiver is None or isinstance(receiver, types.ModuleType):
        return False
    key = (code, type(receiver))
    entry = _stores_cache.get(key)
    if entry is None or not entry[1].hold():  # a method of the class it calls may have been rebound
        reads = _Reads()
        entry = _stores_cache[key] = (_stores(code, type(receiver), reads), reads)
    return entry[0]


_CONTAINER_CHANGES = frozenset(
    "append extend insert pop popitem remove clear update setdefault add discard sort reverse".split()
)


def _changes_self(code: types.CodeType) -> bool:
    """Any attribute store; or `self.items.append(...)`, `self.cache[k] = v` on the first argument's
    attributes (a local list's append is not one)."""
    instrs = list(dis.get_instructions(code))
    first = code.co_varnames[0] if code.co_argcount else None
    for i, ins in enumerate(instrs):
        if ins.opname in _ATTRIBUTE_STORES:
            return True
        if ins.opname != "LOAD_FAST" or ins.argval != first or i + 2 >= len(instrs):
            continue
        attr, then = instrs[i + 1], instrs[i + 2]
        if attr.opname != "LOAD_ATTR":
            continue
        if then.opname in ("LOAD_METHOD", "LOAD_ATTR") and then.argval in _CONTAINER_CHANGES:
            return True  # self.notes.append(...)
        if i + 3 < len(instrs) and instrs[i + 3].opname in ("STORE_SUBSCR", "DELETE_SUBSCR"):
            return True  # self.cache[key] = value
    return False


_ITEM_STORES = frozenset({"STORE_SUBSCR", "DELETE_SUBSCR", "STORE_SLICE", "DELETE_SLICE"})

_STATE_STORES = frozenset({"STORE_ATTR", "DELETE_ATTR", "STORE_GLOBAL", "DELETE_GLOBAL"})
_CELL_STORES = frozenset({"STORE_DEREF", "DELETE_DEREF"})
_STATE_WRITERS = frozenset({"setattr", "delattr", "vars", "globals", "__dict__"})


def stores_state(callee: Any) -> bool:
    """Does the code of the Python function `callee` runs (itself, a method's, a callable object's
    `__call__`) store an attribute, a global or a cell of the function around it (`nonlocal`), name
    `setattr`, `vars`, `globals` or `__dict__`, or change in place what a cell of the function
    around it holds (`escalated.append(p)`, `state["tone"] = t`)?  Its own code only, not what it
    calls: a slow call is assumed to change only what it is handed (an LLM client's request stores
    nothing of the kind), and a helper of the user's that does store state (`CFG.mode = d`) is told
    apart."""
    func = _python_function(callee)
    if func is None:
        return False
    code = func.__code__
    instrs = list(dis.get_instructions(code))
    for i, ins in enumerate(instrs):
        if (
            ins.opname in _STATE_STORES
            or (ins.opname in _CELL_STORES and ins.argval in code.co_freevars)
            or (ins.opname in _NAME_LOADS and ins.argval in _STATE_WRITERS)
        ):
            return True
        if ins.opname == "LOAD_DEREF" and ins.argval in code.co_freevars:
            then = instrs[i + 1 : i + 3]
            method = then[0].argval if then and then[0].opname in ("LOAD_ATTR", "LOAD_METHOD") else None
            if method in _CONTAINER_CHANGES:
                return True  # escalated.append(p)
            if len(then) == 2 and then[1].opname in _ITEM_STORES:
                return True  # state["tone"] = t
    return False


_NAME_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "LOAD_ATTR", "LOAD_METHOD"})


GlobalName = tuple[dict[str, Any], str]  # a module's namespace, and a name in it


class ModuleState(NamedTuple):
    """The module state a Python function's code may touch, with the code it calls (see `module_state`).

    `reads`: the globals it loads that hold data (str, numbers, None, tuples, lists, dicts, sets,
    deques, or nothing yet): not its modules, classes, functions and clients, which a call reads
    through a recipe's callee or arguments.  `writes`: the globals it assigns or deletes, the
    containers it changes (`TODO[:] = ...`, `CACHE.update(...)`) or hands on whole to what may
    change them (`heapq.heappush(QUEUE, x)`, `options=OPTIONS`, `items = TODO`); over-approximating
    costs parallelism, never correctness; `rebinds`, those of them it assigns or deletes."""

    reads: tuple[GlobalName, ...] = ()
    writes: tuple[GlobalName, ...] = ()
    rebinds: tuple[GlobalName, ...] = ()


_IMMUTABLE_DATA = (str, bytes, int, float, complex, bool, type(None), tuple, frozenset)
MUTABLE_DATA = (list, dict, set, bytearray, deque)  # what a helper may change in place
_DATA = (*_IMMUTABLE_DATA, *MUTABLE_DATA)
_MODULE_STATE_CODES = 64  # code objects `module_state` reads at most; past that, it stops (see below)


def module_state(callee: Any) -> ModuleState:
    """The module state a Python function (or a method's function) may read and change: its own code,
    the code nested in it, and the Python functions it loads from its globals, transitively (at most
    `_MODULE_STATE_CODES` code objects; calls through objects and modules are not followed).

    A slow call is assumed to change only what it is handed and to read only its arguments.  A
    helper of the user's (a Python function, or a callable object's `__call__` for what it reads) may
    also read or change module state it was not handed: a call reading a
    global that changed before it must not be issued ahead with the old value, and a call changing
    one runs in its turn, in the order the code makes it (nothing for what is not a Python function).

    Which container a change changes is read from the instructions before it: `CONFIG[k] = v` and
    `CONFIG.update(...)` change the global CONFIG; `notes[k] = v` on a local the code made itself
    (`notes = {}`) changes no global; a change of anything else (an argument, an attribute, a result
    of an augmented `CONFIG[k] += 1`) may change any data global the code it walked loads.  A data
    global only read where it is loaded (`G[k]`, `k in G`, `for x in G`, `G.get(k)`, `len(G)`,
    `f(**G)`, an f-string) is read; one handed on whole may be changed by what gets it."""
    func = _python_function(callee)
    if func is None:
        return ModuleState()
    reads: dict[tuple[int, str], GlobalName] = {}
    writes: dict[tuple[int, str], GlobalName] = {}
    rebinds: dict[tuple[int, str], GlobalName] = {}
    containers: list[GlobalName] = []  # data globals that may be changed in place
    anything = False  # a change of a container it cannot name
    own = _python_function(callee, objects=False) is not None
    walk = _CodeWalk(func) if own else _CodeWalk(func, *_methods_and_handlers(callee))
    for globals_, names in walk:
        anything = anything or names.changes_any
        for name in names.stored:
            rebinds[id(globals_), name] = (globals_, name)
        for name in (*names.stored, *names.changed):
            writes[id(globals_), name] = (globals_, name)
        for name in names.loaded:
            value = globals_.get(name, MISSING_GLOBAL)
            if value is MISSING_GLOBAL and hasattr(builtins, name):
                continue  # a builtin (`len`)
            if value is MISSING_GLOBAL or isinstance(value, _DATA):
                reads[id(globals_), name] = (globals_, name)
                if isinstance(value, MUTABLE_DATA):
                    containers.append((globals_, name))
                    if name in names.escaped:  # (what it was handed to may change it)
                        writes[id(globals_), name] = (globals_, name)
    if not own:
        # a callable object (a client, a fake): what its `__call__` changes is taken for the call's own
        # effect, as a C client's is, so that one that counts or logs its calls in a global still goes
        # ahead; what it reads is not: issued early, it would read what the code changes later
        return ModuleState(tuple(reads.values()))
    if anything or walk.cut:  # (too much to read: assume it changes them all)
        for globals_, name in containers:
            writes[id(globals_), name] = (globals_, name)
    return ModuleState(tuple(reads.values()), tuple(writes.values()), tuple(rebinds.values()))


MISSING_GLOBAL = object()  # (a global not defined yet: a helper may define it later)


def reaches(callee: Any, target: Any) -> bool:
    """May calling `callee` call `target`: does its code (a Python function's, through decorators made
    with `functools.wraps`, such as a jitted function), the code nested in it, or that of the Python
    functions it loads from its globals, transitively, load `target` from its globals?  Past
    `_MODULE_STATE_CODES` code objects, yes.  (Calls through objects, cells and modules are not
    followed, as in `module_state`.)"""
    func = _python_function(callee)
    if func is None:
        return False
    walk = _CodeWalk(func)
    if any(globals_.get(name, MISSING_GLOBAL) is target for globals_, names in walk for name in names.loaded):
        return True
    return walk.cut


def reaches_memo(callee: Any) -> bool:
    """May calling `callee` call a `functools.cache` / `lru_cache` wrapper of the user's: does its code,
    or that of the Python functions it loads from its globals or holds in its closure cells,
    transitively, load one from its globals or hold one in a cell?  Past `_MODULE_STATE_CODES` code
    objects, yes.  (Two calls of it made at once could then both miss an entry that, made one after
    the other, the second would find.)  Code of the standard library and of installed packages is
    not looked into: their caches (an HTTP client's, the type hints a client library reads) keep
    what no slow call of the user's makes."""
    func = _python_function(callee)
    if func is None or _library_function(func):
        return False
    cells = [_contents(cell) for cell in func.__closure__ or ()]
    if any(memo_wrapper(value) is not None for value in cells):
        return True
    held = [value for value in map(_python_function, cells) if value is not None]
    walk = _CodeWalk(func, *held, into=lambda function: not _library_function(function))
    for globals_, names in walk:
        if any(memo_wrapper(globals_.get(name)) is not None for name in names.loaded):
            return True
    return walk.cut


def _library_function(func: types.FunctionType) -> bool:
    return library(str(func.__globals__.get("__name__", "")), func.__code__.co_filename)


class _CodeWalk:
    """The code objects a Python function may run, with the globals each reads: its own, the code
    nested in it, and that of the Python functions it loads from its globals, transitively; at most
    `_MODULE_STATE_CODES` of them (`cut` tells whether there was more).  Calls through objects,
    cells and modules are not followed."""

    def __init__(
        self, *funcs: types.FunctionType, into: Callable[[types.FunctionType], bool] | None = None
    ) -> None:
        self.cut = False
        self._todo: list[tuple[types.CodeType, dict[str, Any]]] = [(f.__code__, f.__globals__) for f in funcs]
        self._into = into  # which loaded functions to walk into (all, if None)

    def __iter__(self) -> Iterator[tuple[dict[str, Any], _GlobalNames]]:
        seen: set[tuple[int, int]] = set()
        todo = self._todo
        while todo:
            if len(seen) >= _MODULE_STATE_CODES:
                self.cut = True
                return
            code, globals_ = todo.pop()
            if (id(code), id(globals_)) in seen:
                continue
            seen.add((id(code), id(globals_)))
            names = _global_names(code)
            todo.extend((inner, globals_) for inner in names.nested)
            for name in names.loaded:
                function = _python_function(globals_.get(name))
                if function is not None and (self._into is None or self._into(function)):
                    todo.append((function.__code__, function.__globals__))
            yield globals_, names


def _methods_and_handlers(obj: Any) -> list[types.FunctionType]:
    """The Python functions a callable object's `__call__` may run through it: its class's methods
    (`self._post(p)`) and those it holds (`self.respond = make_answer`), which a walk of the code
    does not follow (calls through objects)."""
    found = [
        value
        for klass in type(obj).__mro__[:-1]  # (not object's)
        for value in vars(klass).values()
        if isinstance(value, types.FunctionType)
    ]
    try:
        held = object.__getattribute__(obj, "__dict__")
    except (AttributeError, TypeError):
        held = {}
    for value in list(held.values())[:_MODULE_STATE_CODES] if type(held) is dict else ():
        function = _python_function(value, objects=False)
        if function is not None:
            found.append(function)
    return found


# values that run no Python function of their own: a module (calls through it are not followed), a
# function or method written in C, built-in data (looked up on every global a walked code loads, by
# far the most of them, so not through `inspect.getattr_static`)
_RUN_NO_PYTHON = frozenset(
    {types.ModuleType, types.BuiltinFunctionType, types.MethodWrapperType, types.WrapperDescriptorType}
    | {types.MethodDescriptorType, types.GetSetDescriptorType, type(None), bool, int, float, complex}
    | {str, bytes, tuple, list, dict, set, frozenset}
)


def _python_function(value: Any, *, objects: bool = True) -> types.FunctionType | None:
    """The Python function `value` runs: itself, a method's, the one a decorator made with
    `functools.wraps` wraps (`__wrapped__`: a jitted function's, an `lru_cache` wrapper's), or (with
    `objects`) a callable object's `__call__`, a Python function its class defines; else None."""
    if type(value) in _RUN_NO_PYTHON:
        return None
    for _ in range(8):
        if isinstance(value, types.FunctionType):
            return value
        if isinstance(value, types.MethodType):
            value = value.__func__
            continue
        wrapped = _wrapped(value)
        if wrapped is not MISSING:
            value = wrapped
            continue
        if not objects or isinstance(value, type):
            return None  # (a class: its `__call__` is its metaclass's)
        call = class_lookup(type(value), "__call__")
        if not isinstance(call, types.FunctionType):
            return None
        value = call
    return None


def _wrapped(value: Any) -> Any:
    """`value.__wrapped__` as `inspect.getattr_static` finds it (no `__getattr__` or property runs),
    without its cost: in the instance's own dict, unless its class holds a data descriptor of that
    name, else in the class's (for a class, in its own classes; a metaclass's is not looked at); else
    MISSING."""
    if isinstance(value, type):
        return class_lookup(value, "__wrapped__")
    found = class_lookup(type(value), "__wrapped__")
    try:
        own = object.__getattribute__(value, "__dict__")
    except (AttributeError, TypeError):
        return found
    if type(own) is dict and "__wrapped__" in own:
        kind = type(found)
        if found is MISSING or not (hasattr(kind, "__set__") or hasattr(kind, "__delete__")):
            return own["__wrapped__"]
    return found


ANY_GLOBAL = (0, "*")  # a key of the builder's `module_changed`: code that may change any global ran


class _GlobalNames(NamedTuple):
    loaded: frozenset[str]  # LOAD_GLOBAL
    stored: frozenset[str]  # STORE_GLOBAL, DELETE_GLOBAL
    changed: frozenset[str]  # globals changed in place by name (`CONFIG[k] = v`, `TODO.append(x)`)
    escaped: frozenset[str]  # globals handed on whole (`heapq.heappush(QUEUE, x)`, `items = TODO`)
    changes_any: bool  # a container changed that it cannot name
    nested: tuple[types.CodeType, ...]


_FAST_LOADS = frozenset({"LOAD_FAST", "LOAD_FAST_CHECK", "LOAD_FAST_AND_CLEAR"})
_SIMPLE_LOADS = frozenset(
    {"LOAD_CONST", "LOAD_GLOBAL", "LOAD_NAME", "LOAD_DEREF", "LOAD_SMALL_INT"} | _FAST_LOADS
)
_FRESH = frozenset({"BUILD_LIST", "BUILD_MAP", "BUILD_SET"})


@functools.lru_cache(maxsize=1024)
def _global_names(code: types.CodeType) -> _GlobalNames:
    """The globals one code object loads, assigns (or deletes) and changes in place, whether it changes
    a container it cannot name, and the code objects nested in it."""
    instrs = list(dis.get_instructions(code))
    loaded: set[str] = set()
    stored: set[str] = set()
    changed: set[str] = set()
    escaped: set[str] = set()
    changes_any = False
    for i, ins in enumerate(instrs):
        name = ins.opname
        if name in ("STORE_GLOBAL", "DELETE_GLOBAL"):
            stored.add(ins.argval)
        elif name == "LOAD_GLOBAL":
            loaded.add(ins.argval)
            if _handed_on(instrs, i):
                escaped.add(ins.argval)
        elif name in _ITEM_STORES or (
            name in ("LOAD_METHOD", "LOAD_ATTR") and ins.argval in _CONTAINER_CHANGES
        ):
            receiver = _receiver(instrs, i)
            if receiver is None or (receiver[0] == "fast" and not _fresh_local(code, instrs, receiver[1])):
                changes_any = True
            elif receiver[0] == "global":
                changed.add(receiver[1])
    nested = tuple(const for const in code.co_consts if isinstance(const, types.CodeType))
    return _GlobalNames(
        frozenset(loaded), frozenset(stored), frozenset(changed), frozenset(escaped), changes_any, nested
    )


_READ_USES = frozenset(
    {"GET_ITER", "CONTAINS_OP", "COMPARE_OP", "IS_OP", "FORMAT_VALUE", "FORMAT_SIMPLE", "BINARY_SUBSCR"}
    | {"POP_TOP", "LOAD_ATTR", "LOAD_METHOD"}  # (a method that changes it is a change by name)
    | {"DICT_MERGE", "DICT_UPDATE", "LIST_EXTEND", "SET_UPDATE", "LIST_TO_TUPLE"}  # `f(**G)`: a copy
)
_CALLS = frozenset({"CALL", "PRECALL", "CALL_FUNCTION"})


def _handed_on(instrs: list[dis.Instruction], i: int) -> bool:
    """Is the global loaded at `instrs[i]` handed on whole (to a call, into a local or a container,
    returned), rather than only read where it is (`G[k]`, `k in G`, `for x in G`, `G.get(k)`, an
    f-string, `len(G)`)?  What it is handed to may change it."""
    if i + 1 >= len(instrs):
        return True
    use = instrs[i + 1]
    if use.opname in _READ_USES:
        return False
    if use.opname in _SIMPLE_LOADS and i + 2 < len(instrs) and instrs[i + 2].opname == "BINARY_SUBSCR":
        return False  # G[k]
    if use.opname in _CALLS and use.arg == 1 and i >= 1 and instrs[i - 1].opname == "LOAD_GLOBAL":
        builtin = getattr(builtins, str(instrs[i - 1].argval), None)  # len(G), str(G), sorted(G)
        return builtin not in _PURE_BUILTINS
    return True


def _receiver(instrs: list[dis.Instruction], i: int) -> tuple[str, str] | None:
    """The container the change at `instrs[i]` changes, when a plain load names it: ("global", name) or
    ("fast", name); else None.  `x.append` (the load just before), `x[k] = v` and `del x[k]` (before
    a key that is one load), `x[a:b] = v` (before two loads, or a slice built of them)."""
    ins = instrs[i]
    back = 1
    if ins.opname in ("STORE_SUBSCR", "DELETE_SUBSCR", "STORE_SLICE", "DELETE_SLICE"):
        keys = 2 if ins.opname in ("STORE_SLICE", "DELETE_SLICE") else 1
        if i >= 1 and instrs[i - 1].opname == "BUILD_SLICE":
            keys, back = instrs[i - 1].arg or 0, 2
        for _ in range(keys):
            if i - back < 0:
                return None
            key = instrs[i - back]
            if key.opname == "LOAD_FAST_LOAD_FAST" and keys == 1:  # (3.13) the container and the key
                return ("fast", key.argval[0])
            if key.opname not in _SIMPLE_LOADS:
                return None
            back += 1
    if i - back < 0:
        return None
    load = instrs[i - back]
    if load.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
        return ("global", load.argval)
    if load.opname in _FAST_LOADS:
        return ("fast", load.argval)
    if load.opname == "LOAD_FAST_LOAD_FAST":
        return ("fast", load.argval[1])
    return None


def _fresh_local(code: types.CodeType, instrs: list[dis.Instruction], name: str) -> bool:
    """Is local `name` only ever assigned a container the code builds (`notes = {}`, `parts = [a]`)?
    Not an argument, nor a cell."""
    arguments = (
        code.co_argcount + code.co_kwonlyargcount + bool(code.co_flags & 0x04) + bool(code.co_flags & 0x08)
    )
    if name in code.co_varnames[:arguments] or name in code.co_cellvars:
        return False
    stores = [i for i, ins in enumerate(instrs) if ins.argval == name and ins.opname.startswith("STORE_FAST")]
    return bool(stores) and all(
        instrs[i].opname == "STORE_FAST" and i >= 1 and instrs[i - 1].opname in _FRESH for i in stores
    )


def _stores(code: types.CodeType, cls: type, reads: _Reads) -> bool:
    seen: set[types.CodeType] = set()
    todo = [code]
    while todo and len(seen) < 64:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if _changes_self(current):
            return True
        todo.extend(const for const in current.co_consts if isinstance(const, types.CodeType))
        for name in current.co_names:  # another method of the class it may call (`self._save(...)`)
            attribute = reads.lookup(cls, name)
            found = getattr(attribute, "__func__", attribute)  # a classmethod's or staticmethod's function
            if isinstance(found, types.FunctionType):
                todo.append(reads.code(found))
            elif isinstance(getattr(found, "__code__", None), types.CodeType):
                todo.append(found.__code__)
    return len(seen) >= 64  # too much to read: assume it does

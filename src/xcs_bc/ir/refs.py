"""The SSA IR's records: operations (slow calls) over provenance-carrying values.

A `ComputationGraph` (`xcs_bc.ir.graph`) lists the `Operation`s of one observed
run in program order.  Every value an operation consumes is a `ValueRef` that says
where it came from (its *provenance*, `Source`): an input of the function or
block, the output of an earlier operation (or a path into it), a constant, a
global or closure cell read at run time, a pure expression of other values, or
unknown.  Each `ValueRef` also carries `deps`, the ids of the operations it
depends on; an UNKNOWN value depends on every operation before it.  Analysis
passes (`xcs_bc.ir.passes`) and printing (`xcs_bc.ir.text`) live outside these
classes; the methods below only delegate to them.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final


class _Missing:
    """Marks a concrete value that was not observed (e.g. a C function's result)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()


class OpType(enum.Enum):
    """What kind of slow step an operation is."""

    CALL = "call"
    """A call made at a call site of the observed code."""
    IMPLICIT = "implicit"
    """A slow instruction that is not a call: a property, an iterator step, an operator."""


class Source(enum.Enum):
    """Where a value came from."""

    INPUT = "input"  # a parameter, or a local that existed when the block began; `name` + `path`
    OUTPUT = "output"  # the result of operation `op`, or a `path` into it
    CONST = "const"  # a constant of the code; `value`
    GLOBAL = "global"  # a global or builtin read at run time; `name` + `path`
    CELL = "cell"  # a closure cell read at run time; `name` + `path`
    EXPR = "expr"  # a pure expression of `operands`: its `kind` says which (an `ExprKind`)
    UNKNOWN = "unknown"  # not known: depends on every operation with id < `op`


class ExprKind(enum.Enum):
    """What an EXPR value computes from its operands; the value is how the SSA text spells it."""

    # displays and strings
    LIST = "list"
    TUPLE = "tuple"
    SET = "set"
    DICT = "dict"
    SLICE = "slice"
    FSTRING = "fstring"  # the pieces of an f-string joined
    FORMAT = "format"  # format(value[, spec])
    CONST = "const"  # a constant that a path starts from: `', '.join`
    # reads and calls
    GETITEM = "getitem"
    BINARY_SLICE = "binary_slice"  # container[start:stop] (3.12+)
    CALL = "call"  # a call known to be pure: callee, then the arguments
    CALL_KW = "call_kw"  # ... with a last CONST operand holding the keyword names
    CALL_EX = "call_ex"  # f(*seq, **kw): recipes do not evaluate it
    # what iterating and building made
    ITER = "iter"
    GENEXPR = "genexpr"
    GENERATED = "generated"  # what a consumer took from generator expressions
    UNPACK = "unpack"  # `*xs` in a display
    EFFECT = "effect"  # an object after a change in place: the object, then what changed it
    EACH = "@each"  # a plan's template: its operand once per round of loop `loop` (see plan.generalize)
    # instructions that are pure expressions of their operands (named after the opcode)
    MAKE_FUNCTION = "make_function"
    SET_FUNCTION_ATTRIBUTE = "set_function_attribute"
    LOAD_CLOSURE = "load_closure"
    LOAD_ASSERTION_ERROR = "load_assertion_error"
    UNPACK_EX = "unpack_ex"
    RETURN_GENERATOR = "return_generator"
    PUSH_EXC_INFO = "push_exc_info"
    CHECK_EXC_MATCH = "check_exc_match"
    JUMP_IF_NOT_EXC_MATCH = "jump_if_not_exc_match"
    # branch conditions that are not a value of the code
    CONSUMER = "consumer"  # a consumer stopped taking a generator's items
    RAISED = "raised"  # a call raised
    LEN = "len"  # how many items a loop's iterable had
    OR = "or"  # either of two conditions (paths that merge)
    # unary operators
    NOT = "not"
    NEG = "neg"
    POS = "pos"
    INVERT = "invert"
    # comparisons
    LT = "<"
    LE = "<="
    EQ = "=="
    NE = "!="
    GT = ">"
    GE = ">="
    IS = "is"
    IS_NOT = "is not"
    IN = "in"
    NOT_IN = "not in"
    COMPARE_OP = "compare_op"  # a comparison of another kind
    # binary operators, then their in-place forms
    ADD = "+"
    SUB = "-"
    MUL = "*"
    TRUEDIV = "/"
    FLOORDIV = "//"
    MOD = "%"
    POW = "**"
    MATMUL = "@"
    BIT_AND = "&"
    BIT_OR = "|"
    BIT_XOR = "^"
    LSHIFT = "<<"
    RSHIFT = ">>"
    IADD = "+="
    ISUB = "-="
    IMUL = "*="
    ITRUEDIV = "/="
    IFLOORDIV = "//="
    IMOD = "%="
    IPOW = "**="
    IMATMUL = "@="
    IAND = "&="
    IOR = "|="
    IXOR = "^="
    ILSHIFT = "<<="
    IRSHIFT = ">>="
    BINARY_OP = "binary_op"  # an operator of another kind

    @property
    def in_place(self) -> bool:
        """`+=` and the like: the left operand's own method, if it has one, changes it."""
        return self.value.endswith("=") and self not in _NOT_IN_PLACE

    def plain(self) -> ExprKind:
        """The operator an in-place one computes when the left operand has no method of its own
        (`n += 1` on an int is `n + 1`)."""
        return ExprKind(self.value[:-1]) if self.in_place else self


_NOT_IN_PLACE = frozenset({ExprKind.LE, ExprKind.EQ, ExprKind.NE, ExprKind.GE})


@dataclass(frozen=True, slots=True)
class PathStep:
    """One step into a value: `.name` ("attr"), `[key]` ("item"), or the k-th element iterated ("iter")."""

    kind: str
    key: Any

    def __str__(self) -> str:
        if self.kind == "attr":
            return f".{self.key}"
        if self.kind == "iter":
            return f"[{self.key}]"
        return f"[{self.key!r}]"


@dataclass(frozen=True, slots=True)
class Local:
    """A local of the observed function after its `assignment`-th assignment (1 for the first)."""

    name: str
    assignment: int

    def __str__(self) -> str:
        return f"{self.name}@{self.assignment}"


@dataclass(frozen=True, slots=True, eq=False)
class ValueRef:
    """An SSA value: its provenance, the operations it depends on, and the value seen at trace time.

    `deps` holds the ids of the operations the value depends on, by data or by
    effect (an object an earlier slow call may have changed).  `value` is the
    concrete object observed while tracing, or `MISSING`; it is evidence for
    guards and reports, never part of the value's identity.  `depth` is how
    deeply expressions nest in it (0 without operands, else 1 + the deepest
    operand's), known without walking it: a loop that accumulates
    (`text = text + llm(d)`) nests as deep as it has rounds, and the walks
    that recurse bound themselves by it (see `MAX_DEPTH`).

    An UNKNOWN value may say more: `origin` is the call that made it (`"helper()"`, a function
    not known to be pure) or "", and `local` the local of the observed function whose one
    assignment stored it, which a replay may read from the frame (see `xcs_bc.ir.values.as_local`).
    An EXPR value has a `kind` (what it computes); other values have none.  A CONST with `counter`
    set is a loop's counter (`enumerate`'s index, a `range` item), not a literal of the code.

    `under` holds the conditions (their values) of the branches on slow calls' results the value was
    made under, when that added to its `deps` (see `xcs_bc.ir.values.made_under`): a recipe under
    the same branches may read it, because a predicate on those branches decides whether it is made.

    `loop` is set only in a plan's templates (see `xcs_bc.plan.generalize`), never in a graph: an
    OUTPUT with a `loop` is the call at offset `op` of that loop's current round, and an EXPR
    `ExprKind.EACH` stands for its operand instantiated once per round of that loop.
    """

    source: Source
    name: str = ""
    path: tuple[PathStep, ...] = ()
    operands: tuple[ValueRef, ...] = ()
    op: int | None = None
    deps: frozenset[int] = frozenset()
    value: Any = field(default=MISSING, repr=False)
    origin: str = ""
    local: Local | None = None
    kind: ExprKind | None = None
    loop: int | None = None
    counter: bool = False
    under: tuple[ValueRef, ...] = ()
    _depth: int = field(default=-1, init=False, repr=False)  # `depth`, once asked for

    def __init__(  # (what the dataclass would write, without its cost: see below the class)
        self,
        source: Source,
        name: str = "",
        path: tuple[PathStep, ...] = (),
        operands: tuple[ValueRef, ...] = (),
        op: int | None = None,
        deps: frozenset[int] = frozenset(),
        value: Any = MISSING,
        origin: str = "",
        local: Local | None = None,
        kind: ExprKind | None = None,
        loop: int | None = None,
        counter: bool = False,
        under: tuple[ValueRef, ...] = (),
    ) -> None:
        me: Any = self  # (frozen for the type checker: see below the class)
        me.source = source
        me.name = name
        me.path = path
        me.operands = operands
        me.op = op
        me.deps = deps
        me.value = value
        me.origin = origin
        me.local = local
        me.kind = kind
        me.loop = loop
        me.counter = counter
        me.under = under
        me._depth = -1

    def replaced(self, **changes: Any) -> ValueRef:
        """`dataclasses.replace(self, **changes)`, at a third of its cost (a plan is rebuilt a ref at a
        time when it is released, see `plan.release`)."""
        new: Any = object.__new__(ValueRef)
        new.source, new.name, new.path, new.operands = self.source, self.name, self.path, self.operands
        new.op, new.deps, new.value, new.origin = self.op, self.deps, self.value, self.origin
        new.local, new.kind, new.loop, new.counter = self.local, self.kind, self.loop, self.counter
        new.under = self.under
        new._depth = self._depth if "operands" not in changes else -1
        for name, value in changes.items():
            if name not in _FIELDS:
                raise TypeError(f"ValueRef has no field {name!r}")
            setattr(new, name, value)
        made: ValueRef = new
        return made

    @property
    def depth(self) -> int:
        """How deeply expressions nest in this value: 0 without operands, else 1 + the deepest operand's.

        Measured on first use, without recursion, and remembered (a list a loop appends to is
        rebuilt every round: measuring each copy would cost as much as the copies)."""
        if self._depth < 0:
            _measure(self)
        return self._depth


# Frozen for the type checker, which holds every module of the package to never assign a field of a
# ref; not at run time, where a frozen dataclass's `__init__` sets each field through
# `object.__setattr__`, about four times the cost of this one: tracing makes a ref or more per
# observed instruction (a capture of glue takes 1-7% less time: docs/benchmarks.md).
# tests/ir/test_refs.py checks that `__init__` takes exactly the fields, with their defaults.
del ValueRef.__setattr__
del ValueRef.__delattr__
_FIELDS: Final = frozenset(f.name for f in fields(ValueRef) if f.init)


def _measure(root: ValueRef) -> None:
    """Set `_depth` on `root` and every operand below it not measured yet, deepest first."""
    stack = [root]
    while stack:
        ref = stack[-1]
        # (an operand that is not a ValueRef is the validator's to report: it counts as a leaf)
        pending = [o for o in ref.operands if isinstance(o, ValueRef) and o._depth < 0]
        if pending:
            stack.extend(pending)
            continue
        stack.pop()
        depths = [o._depth if isinstance(o, ValueRef) else 0 for o in ref.operands]
        object.__setattr__(ref, "_depth", 1 + max(depths, default=-1))


MAX_DEPTH: Final = 64
"""Expressions nested deeper than this are never computed by a recipe or a guard (the call runs in
its turn, and `explain()` says why), and print with their inner part elided; their `deps` stay
exact whatever the depth."""


@dataclass(frozen=True, slots=True)
class Site:
    """Where a call is in the source: file, line, code object name and instruction offset."""

    file: str
    line: int
    code: str
    offset: int

    def __str__(self) -> str:
        return f"{os.path.basename(self.file)}:{self.line}"


@dataclass(frozen=True, slots=True)
class Caller:
    """A function an operation was made inside (a capture traces through the functions its block
    calls): its qualified name, its module's name, the call that entered it, and which call of a
    function it was (a number counting the calls traced through: equal for the operations made in
    one call)."""

    function: str
    module: str
    site: Site
    call: int

    def __str__(self) -> str:
        return f"{self.function} ({self.site})"


@dataclass(frozen=True, slots=True, eq=False)
class Operation:
    """One slow call (or slow implicit step) of the observed run.

    `inputs` holds the callee first, then the positional arguments, then the
    keyword argument values named by `kwnames`.  `outputs` holds the result
    (empty when the call raised).  `control` holds the branch conditions through
    which the call was reached.  `metadata` carries `duration`, `start`, `end`
    (seconds, `time.perf_counter`), `occurrence` (the how-manieth run of this
    site), `thread`, `exception` when the call raised, and `outcomes`: the way the run went at
    each branch of `control` (see `build.trace.Condition`).  `stack` holds the functions the
    call was made inside, outermost first (empty for a call the observed code made itself).
    """

    id: int
    op_type: OpType
    name: str
    site: Site
    inputs: tuple[ValueRef, ...]
    outputs: tuple[ValueRef, ...]
    kwnames: tuple[str, ...] = ()
    control: tuple[ValueRef, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    stack: tuple[Caller, ...] = ()

    @property
    def duration(self) -> float:
        return float(self.metadata.get("duration", 0.0))

    @property
    def args(self) -> tuple[ValueRef, ...]:
        """The positional argument values (inputs without the callee and keywords)."""
        return self.inputs[1 : len(self.inputs) - len(self.kwnames)]

    @property
    def kwargs(self) -> dict[str, ValueRef]:
        values = self.inputs[len(self.inputs) - len(self.kwnames) :] if self.kwnames else ()
        return dict(zip(self.kwnames, values, strict=True))

    def __repr__(self) -> str:
        return f"<Operation %{self.id} {self.name} at {self.site}>"

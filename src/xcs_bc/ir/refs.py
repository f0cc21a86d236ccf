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
from dataclasses import dataclass, field
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
    EXPR = "expr"  # a pure expression `name` (e.g. "fstring", "+", "str.join", "tuple") of `operands`
    UNKNOWN = "unknown"  # not known: depends on every operation with id < `op`


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
    depth: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.operands:  # (an operand that is not a ValueRef is the validator's to report)
            deepest = max(getattr(operand, "depth", 0) for operand in self.operands)
            object.__setattr__(self, "depth", deepest + 1)


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


@dataclass(frozen=True, slots=True, eq=False)
class Operation:
    """One slow call (or slow implicit step) of the observed run.

    `inputs` holds the callee first, then the positional arguments, then the
    keyword argument values named by `kwnames`.  `outputs` holds the result
    (empty when the call raised).  `control` holds the branch conditions through
    which the call was reached.  `metadata` carries `duration`, `start`, `end`
    (seconds, `time.perf_counter`), `occurrence` (the how-manieth run of this
    site), `thread`, and `exception` when the call raised.
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

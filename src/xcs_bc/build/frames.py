"""Build: the per-frame shadow state, its value stack and the branches it is under."""

from __future__ import annotations

import types
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from xcs_bc.build.arms import NOTHING, Arm
from xcs_bc.build.awaiting import Awaiting
from xcs_bc.build.codeinfo import CodeInfo, Instr
from xcs_bc.build.trace import Condition, DecisionKind
from xcs_bc.ir import MISSING, Operation, Site, Source, ValueRef
from xcs_bc.ir.values import NULL, made_under, union, unknown

EXC = ValueRef(Source.CONST, name="<exception>", value=None)
"""A slot holding an exception (or exception bookkeeping) pushed by unwinding."""


@dataclass
class Control:
    """A branch the frame is still under: until `until` is reached, everything depends on `cond`."""

    branch: int
    until: int | None
    cond: ValueRef
    outcome: tuple[DecisionKind, Any] | None = None  # see `Condition`
    untaken: Arm = NOTHING  # what the arm the run did not take could do before `until` (see `arms`)
    site: Site | None = None  # where the branch is, for people


class RoundMark(NamedTuple):
    """What a loop's round may have done, as counts (see `GraphBuilder.round_mark`)."""

    effects: int = 0  # objects changed in place, calls of functions not known to be pure
    tests: int = 0  # conditional jumps
    unguarded: int = 0  # branches on results, handled exceptions
    loops: int = 0  # loops that ran out
    iters: int = 0  # loops under way
    global_changes: int = 0  # of `effects`, changes in place by the code of a global's object


class QuietBranch(NamedTuple):
    """A frame's first conditional jump since the run's last operation (a first call's, see
    `execute.first`): its offset, and the builder's operations, `round_mark()` and decisions then."""

    offset: int
    ops: int
    mark: RoundMark
    decisions: int


@dataclass
class FrameState:
    """The shadow of one target frame: its value stack and locals as `ValueRef`s, the branches it is
    under, and the instruction pending until the frame's next event."""

    frame: types.FrameType
    info: CodeInfo
    is_module: bool
    stack: list[ValueRef] = field(default_factory=list)
    locals: dict[str, ValueRef] = field(default_factory=dict)
    control: list[Control] = field(default_factory=list)
    # for a comprehension's frame: the conditions it runs under because of the frame that started (or,
    # a generator expression's, resumed) it; they count as branches, like `control`
    inherited: tuple[Condition, ...] = ()
    control_deps: frozenset[int] = frozenset()
    control_conds: tuple[ValueRef, ...] = ()  # the conditions of `conditions()`, for `made_under`
    resumes: int = 0  # generator expressions the pending instruction started or resumed so far
    pending: Instr | None = None
    # (a first call's) the frame's first conditional jump after each of the run's operations, in order
    quiet_branches: list[QuietBranch] = field(default_factory=list)
    awaiting: Awaiting | None = None  # an await under way (see `awaiting`)
    started: float = 0.0
    ops_before: int = 0
    operands: tuple[ValueRef, ...] = ()  # the slots the pending instruction will consume
    kwnames: tuple[str, ...] = ()  # 3.11/3.12 KW_NAMES register
    callee: Any = MISSING  # the callable, from a CALL monitoring event
    callee_args: dict[str, Any] | None = None  # bound arguments of a Python callee
    callee_result: Any = MISSING
    # positional parameter names, the *args name, the **kwargs name
    callee_params: tuple[tuple[str, ...], str | None, str | None] = ((), None, None)
    callee_code: types.CodeType | None = None  # the code of the Python callee `callee_args` were bound by
    child_return: ValueRef | None = None  # what a nested comprehension frame returned
    exception: BaseException | None = None
    generator: ValueRef | None = None  # for a genexpr frame: its generator's ref
    parent: FrameState | None = None  # for a comprehension frame: the frame that made it
    # for a frame followed into (see `following`): the frame whose call started it, the function's
    # qualified name, and how many followed frames deep it is
    caller: FrameState | None = None
    function: str = ""
    depth: int = 0
    entry: int = 0  # the how-manieth frame followed into
    made: ValueRef | None = None  # for a class's `__init__` followed into: the new object, the call's result
    called_back: bool = False  # a function a built-in called back: what it returns is no call's result
    callee_frame: FrameState | None = None  # the frame the pending call followed into
    precall: tuple[ValueRef, ...] = ()  # 3.11: the arguments PRECALL took off the stack for the next CALL
    # the builder's operations so far (shared): what an UNKNOWN slot made up for a missing one depends on
    ops: list[Operation] = field(default_factory=list)

    # -- the shadow stack ------------------------------------------------------------------------

    def push(self, ref: ValueRef) -> None:
        """Push `ref`; a value made under a branch on results depends on them too."""
        if self.control_deps and ref is not NULL:
            ref = self.under_control(ref)
        self.stack.append(ref)

    def under_control(self, ref: ValueRef) -> ValueRef:
        """`ref` made here and now: under the branches on results the frame is under."""
        return made_under(ref, self.control_deps, self.control_conds)

    def pop(self, n: int) -> list[ValueRef]:
        """The top `n` slots, bottom first (UNKNOWN ones when the shadow has fewer)."""
        if n == 0:
            return []
        if n > len(self.stack):
            self.stack[:0] = [unknown(len(self.ops))] * (n - len(self.stack))
        out = self.stack[-n:]
        del self.stack[-n:]
        return out

    # -- control dependence ----------------------------------------------------------------------

    def conditions(self) -> tuple[Condition, ...]:
        """The branches on results everything the frame does now is reached through."""
        return (
            *self.inherited,
            *(Condition(entry.cond, entry.outcome, entry.site) for entry in self.control),
        )

    def refresh_control(self) -> None:
        conditions = self.conditions()
        self.control_deps = union(condition.cond.deps for condition in conditions)
        self.control_conds = tuple(condition.cond for condition in conditions)


def merge_point(info: CodeInfo, a: int | None, b: int) -> int | None:
    """Where the paths from `a` and `b` meet again: their nearest common post-dominator."""
    if a is None:
        return None
    chain: set[int] = set()
    node: int | None = a
    while node is not None and node not in chain:
        chain.add(node)
        node = info.ipdom(node)
    node, seen = b, set()
    while node is not None and node not in seen:
        if node in chain:
            return node
        seen.add(node)
        node = info.ipdom(node)
    return None

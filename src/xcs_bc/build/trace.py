"""Build's records: what a finished build hands on to `plan`.

`Trace` is the value `GraphBuilder.finish` returns: the graph, the decisions the run took that a
replay must take again, the loops that ran out, and the values the planner may read.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from xcs_bc.ir import MISSING, ComputationGraph, Local, Site, ValueRef


class DecisionKind(enum.Enum):
    """What a replay must see again: a branch on a value, or an event no guard can check."""

    TRUTH = "truth"  # a branch on the truth of `cond`: `expected` is bool(cond)
    NONE = "none"  # a branch on whether `cond` is None: `expected` is `cond is None`
    LENGTH = "loop"  # a loop over `cond` ran out: `expected` is how many items it took
    MORE = "more"  # a loop over `cond` took item number `expected` (0 for the first): len(cond) > expected
    LEFT_LOOP = "left"  # a loop left by break or return on a result's say-so: no guard says when
    RAISED = "raised"  # an exception no slow call caused was handled
    CHANGED = "changed"  # a sequence changed in place while a loop walked it


# the kinds that are a branch on a value a guard may check; the others always cut a plan off
# (MORE as a decision: a loop left by break or return that only guarded decisions led to)
BRANCHES = frozenset({DecisionKind.TRUTH, DecisionKind.NONE, DecisionKind.LENGTH, DecisionKind.MORE})


@dataclass(frozen=True, slots=True)
class Condition:
    """A branch on a slow call's result that what follows is reached through, while it is.

    `cond` is the value branched on; `outcome` the way the run went, as `(TRUTH, bool(cond))`,
    `(NONE, cond is None)` or, in round k of a loop over a sequence that depends on results,
    `(MORE, k)` (`cond` is then a copy of the sequence made for that loop: len(cond) > k); or None
    when no predicate on `cond` says it: another loop's test (each round is reached through all the
    earlier ones), a handled exception, a consumer that may stop a generator.  `site` is where the
    branch is (None for a consumer), for people.
    """

    cond: ValueRef
    outcome: tuple[DecisionKind, Any] | None = None
    site: Site | None = None


@dataclass(frozen=True, slots=True)
class Fork:
    """A branch on results whose other arm may make calls: where a replay may go a way the trace never
    saw.  `condition` is the branch and the way the run went (a truth or a None test), `under` the
    branches it was itself reached through, `site` where it is.  A replay whose results go the other
    way there makes that arm's calls in their turn, and a later call is traced to learn it (see
    `plan.learn`).  Only those worth it are noted (see `arms.worth_learning`)."""

    condition: Condition
    under: tuple[Condition, ...]
    site: Site


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What `plan` reads of one operation beside its values (the graph's `metadata` is for people).

    `code` is the code object its call site is in; `callee` the object called (MISSING once a kept
    plan releases it, see `plan.release`); `star` whether it was `f(*seq, **kw)`; `after_unknown_call`
    whether a function not known to be pure ran before it; `effects` how many calls that may change
    objects ran before it, and `changer` the last of them, for people (`"Client() at app.py:12"`,
    `"the code at app.py:13"`, or "" when unknown); `assigned` how many times each local of the observed
    function had been assigned when it was made; `conditions` the branches on slow calls' results it
    was reached through (its operation's `control`, with the way the run went); `read` whether it is
    no slow call but a fast one to a function not known to be pure whose result the function keeps
    in a local (a tool reading mutable state, an object's constructor): made in its turn, its result
    is what the calls after it read, known once the run has made it (see `Calls.complete_call`);
    `module` why its callee's module state keeps it in its turn, when it does: a helper of the
    user's that changes module state (issued early, it would change it out of order) or reads a
    global the run changed before the call (issued early, it would read what the global was before;
    see `purity.module_state`); `stale` why it runs in its turn because it is handed, or its callee
    holds, an object the code itself changed in place before it (no operation a call issued ahead
    could wait for; see `Effects.changed_by_code_in`); `exits` why it runs in its turn because it is
    in a later round of a loop that a `try` in it may leave, or change what a later round reads (see
    `loopshape.handled_out`).
    """

    code: types.CodeType | None = None
    callee: Any = MISSING
    star: bool = False
    after_unknown_call: bool = False
    effects: int = 0
    assigned: Mapping[str, int] = field(default_factory=dict)
    conditions: tuple[Condition, ...] = ()
    read: bool = False
    changer: str = ""
    module: str = ""
    stale: str = ""
    exits: str = ""


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What `plan` reads of the whole run: the observed function's code (`root_code`), the
    instructions that ran (`executed`: (id(code), offset) pairs), and how many branches on slow
    calls' results and handled exceptions it went through (`unguarded_paths`)."""

    root_code: types.CodeType | None = None
    executed: frozenset[tuple[int, int]] = frozenset()
    unguarded_paths: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    """A branch the run took on a value that depends on no slow call, or an event no guard can check
    (see `DecisionKind`): a replay must take it again.

    `cond` is the value branched on (None for an event that is no branch on a value), `expected` what
    it gave (see `DecisionKind`; True for the events); `before` is how many operations had been made
    when it was taken; `site` where (for a loop left by break or return, seen only when the run is
    over, the loop's start: where it was left is not known).
    """

    kind: DecisionKind
    cond: ValueRef | None
    expected: Any
    before: int
    site: Site | None


@dataclass(frozen=True)
class LoopRecord:
    """A `for` loop (or comprehension) that ran out, over sequences whose length a guard checks.

    `op_starts[k]` and `decision_starts[k]` are how many operations and decisions had been
    made when item k came out; `op_end` and `decision_end` the same when the loop ran out (before
    its own length decisions, at indices `own_decisions`).  `depth` counts the loops it ran
    inside.  With these, `generalize` can tell
    whether every iteration made the same calls and replay the loop for another length.
    """

    iterable: ValueRef
    sequences: tuple[ValueRef, ...]
    op_starts: tuple[int, ...]
    op_end: int
    decision_starts: tuple[int, ...]
    decision_end: int
    own_decisions: tuple[int, ...]
    site: Site
    depth: int  # how many loops it ran inside


@dataclass(frozen=True)
class Trace:
    """What a finished build hands on: the graph and what `plan` needs beside it.

    `decisions` are the branches a replay must take again; `loops` the loops that ran out;
    `carried` maps loops (indices into `loops`) whose rounds assigned a local read after them to the
    number of operations made before that read; `retained` the containers that outlive the
    expression that built them (see `Effects.retain` in `build.effects`), and `unkept`, by operation,
    those of them the function never reads again after it (see `liveness.never_read_again`); `locals` the
    objects the observed function's single-assignment locals held (by `Local`: name and
    assignment), which a replay may read; `calls` what the planner reads of each operation (by id),
    `run` of the whole run; `forks` the branches on results whose other arm may make calls.
    """

    graph: ComputationGraph
    decisions: tuple[Decision, ...]
    loops: tuple[LoopRecord, ...]
    carried: Mapping[int, int]
    retained: Mapping[int, tuple[ValueRef, ...]]
    unkept: Mapping[int, frozenset[int]]
    locals: Mapping[Local, Any]
    calls: tuple[CallFacts, ...] = ()
    run: RunFacts = RunFacts()
    forks: tuple[Fork, ...] = ()

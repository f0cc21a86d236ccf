"""Build: a shadow stack machine that turns an observed run into an SSA graph.

The observation hooks report every instruction executed by the target frames
(the jitted function or the captured block, and its comprehension and
generator-expression frames).  For each frame, `GraphBuilder` keeps a shadow
of the value stack and of the locals in which every slot holds a `ValueRef`
instead of a value: where it came from and which slow calls it depends on.
An instruction's effect is applied when the *next* event of its frame arrives,
because only then do we know whether it jumped, raised, or how long it took.

Precision rests on a few rules, each conservative:

* Pure computations (operators, f-strings, displays, subscripts, calls to
  PURE functions, see `purity`) depend on exactly their operands.
* A slow call's result is the output of its operation; a fast call to
  anything not known to be pure has an UNKNOWN result, which depends on every
  operation made so far.
* Effects: a call may change the mutable objects it is handed (its receiver
  too, unless it is a slow call: an LLM client is not changed by a request,
  see docs).  A changed object is tracked by identity in the effects heap (`effects`), so every
  alias sees the change.
* Control: a value made, or a call reached, after a branch on a value that
  depends on operations, depends on them too, until the branch's immediate
  post-dominator.
* Every opcode of every supported version is decided: modelled by a handler (`handlers`), or CONSERVATIVE
  (`with`, imports, `match`, `await` ...): its results are UNKNOWN and it may have changed every
  mutable object it took, as a call to a function not known to be pure.  An opcode in no list
  (a new version's) is treated as conservative.
* When the shadow stack and the static stack depth disagree (a construct we
  do not model), the stack is rebuilt from UNKNOWN values.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import threading
import time
import types
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from xcs_bc._compat import (
    CALL_OPS,
    COMPREHENSIONS,
    PY311,
    PY312,
    handled_now,
)
from xcs_bc.build import skipping
from xcs_bc.build.arms import owe_untaken, untaken_arm, worth_learning
from xcs_bc.build.awaiting import Awaiting, awaited_call_at, send_loop_at
from xcs_bc.build.calls import bound_arguments, code_site, frame_arguments, parameters
from xcs_bc.build.codeinfo import CodeInfo, Instr, code_info
from xcs_bc.build.following import Following
from xcs_bc.build.frames import EXC, Control, FrameState, QuietBranch, RoundMark, merge_point
from xcs_bc.build.generators import Listed, identity
from xcs_bc.build.handlers.names import single_stores
from xcs_bc.build.handlers.stack import conservative, return_value
from xcs_bc.build.handlers.table import HANDLERS
from xcs_bc.build.liveness import fixed_closure, never_read_again
from xcs_bc.build.loops import LoopState
from xcs_bc.build.slow import IMPLICIT_MIN_S, may_run_user_code
from xcs_bc.build.trace import (
    CallFacts,
    Condition,
    Decision,
    DecisionKind,
    Fork,
    LoopRecord,
    RunFacts,
    Trace,
)
from xcs_bc.ir import (
    MISSING,
    ComputationGraph,
    ExprKind,
    Local,
    Operation,
    OpType,
    Site,
    Source,
    ValueRef,
)
from xcs_bc.ir.values import (
    NULL,
    as_local,
    expr,
    unknown,
    with_value,
)
from xcs_bc.observe.hooks import CallEvent

__all__ = ["GraphBuilder"]

_MAX_FORKS = 64  # branches on results a trace notes for learning their other arm (see `Fork`)
_MANY = 1 << 30  # the calls of an arm that was not read call by call
_SWALLOWING_HANDLERS = frozenset({"END_ASYNC_FOR", "CLEANUP_THROW"})  # handlers without PUSH_EXC_INFO
_BINDABLE = (types.FunctionType, types.MethodDescriptorType, types.WrapperDescriptorType)


class GraphBuilder(Following):
    """Receives observation events for the target frames and builds the graph."""

    def __init__(
        self,
        *,
        min_call_ms: float,
        name: str,
        reads: bool = False,
        originals: Mapping[types.CodeType, types.CodeType] | None = None,
        on_round: Callable[[GraphBuilder, FrameState, LoopState, RoundMark], None] | None = None,
        reach: Callable[[types.CodeType, object], bool] | None = None,
    ) -> None:
        self.min_call_s = min_call_ms / 1000.0
        # the code a clone's code object copies (a traced call may run a gated clone, whose events
        # arrive at the original's offsets): the builder reads the original's instructions
        self.originals: Mapping[types.CodeType, types.CodeType] = originals or {}
        # called when a loop starts its second round (its first is observed): see `execute.first`
        self.on_round = on_round
        # which Python functions the observed code calls are traced through (a capture's: see
        # `following`); None: none are, each call is one step
        self.reach = reach
        self.name = name
        self.reads = reads  # fast calls whose result is kept become operations (see `Calls.kept_read`)
        self.thread = threading.get_ident()
        self.ops: list[Operation] = []
        self.events: list[CallEvent] = []
        self.inputs: dict[str, ValueRef] = {}
        self.outputs: tuple[ValueRef, ...] = ()
        self.decisions: list[Decision] = []
        self.unknown_calls = 0  # fast calls to functions not known to be pure, so far
        # those, plus changes in place to objects other than containers the glue built: a local read
        # for a planned call must see none of them between the read and the call (see plan._ready_at)
        self.effects = 0
        self.global_changes = 0
        # the last call that may have changed objects, and `effects` once it had (see CallFacts.changer)
        self.changer: tuple[Any, types.CodeType, Instr, int] | None = None
        self.retained: dict[int, tuple[ValueRef, ...]] = {}  # see retain
        self.holders: dict[int, set[str] | None] = {}  # see retain
        self.resyncs: list[str] = []  # where the shadow stack had to be rebuilt (none in a well-modelled run)
        self.executed: set[tuple[int, int]] = set()  # (id(code), offset) of every instruction that ran
        # sites that stay no operation however long they take (see `steady`)
        self.steady_sites: frozenset[tuple[int, int]] = frozenset()
        # branches taken on values that depend on slow calls, and exceptions handled: where a replay may
        # go another way than the trace (and reach code the trace did not run)
        self.unguarded_paths = 0
        self.tests = 0  # conditional jumps so far (`if`, `while`, `and`, `or`, a comprehension's filter)
        # those of them whose other arm may make calls: (the branch, ops made before it, the arm's calls)
        self.forks: list[tuple[Fork, int, int]] = []
        self._frames: dict[types.FrameType, FrameState] = {}
        self._heap: dict[int, tuple[Any, ValueRef]] = {}  # id(obj) -> (obj, ref): objects changed in place
        self.changed_by_code: dict[int, tuple[Any, bool]] = {}  # of them, those no slow call changed
        self.by_call = False  # (while what a call may have changed is recorded: see Effects.changed_by_code)
        # (see Effects: kept only for a first call, whose loops' rounds go ahead)
        self.changes: list[tuple[Any, ValueRef, ValueRef]] | None = [] if on_round is not None else None
        self.contents_read: list[Any] | None = [] if on_round is not None else None
        # and the loop counters (`i` of `range()`, `enumerate()`) the code read an item by (`docs[i]`
        # is the path `docs[0]` in round 0: it names no counter, a recipe cannot make it again)
        self.counter_keys: list[ValueRef] | None = [] if on_round is not None else None
        # and, for each decision by index, the frame that took it, where the arm the run did not take
        # starts and where the arms meet again (see `arms.untaken_arm`)
        self.untaken: dict[int, tuple[FrameState, int | None, int | None]] = {}
        self._set_attributes: dict[int, tuple[ValueRef, ValueRef, frozenset[str]]] = {}  # see Effects
        # id(obj) -> (obj, n): objects handed n times to calls that may change them and what they hold
        self._handed: dict[int, tuple[Any, int]] = {}
        # these two are keyed by `identity` of a generator's or an iterator's ref:
        self._yields: dict[int, list[ValueRef]] = {}  # generator -> refs it yielded
        # a pure generator's listed items (see Calls.listed_generator) -> what they were computed from
        self.listed: dict[int, tuple[tuple[ValueRef, ...], Listed]] = {}
        # iterator -> its loop; shared by frames because a 3.10/3.11 comprehension frame (and a generator
        # expression's) iterates the iterator its parent made
        self.iters: dict[int, LoopState] = {}
        self.loops: list[LoopRecord] = []  # loops that ran out, in the order they ended
        # loops whose rounds assigned a local that is read after the loop (a counter, a flag, the loop
        # variable) -> how many ops had been made at the first such read: what follows depends on how
        # many rounds ran (see generalize)
        self.carried: dict[int, int] = {}  # indices into `loops`
        # (id(frame), local) -> the loops (indices into `loops`) whose rounds last assigned it
        self._watch: dict[tuple[int, str], list[int]] = {}
        # id(operands) -> (operands, deps): what the *length* of a container built by the observed
        # code depends on (the branches taken while it was built), as opposed to its elements' values.
        # Keyed by the operands tuple, which survives `with_deps`/`with_value` copies of the ref.
        self._shapes: dict[int, tuple[tuple[ValueRef, ...], frozenset[int]]] = {}
        self._occurrences: dict[tuple[int, int], int] = {}
        # the observed function's own frame: its locals a replay may read (see store_local)
        self.root: FrameState | None = None
        self.single_stores: frozenset[str] = frozenset()
        self.live: dict[str, int] = {}  # root-frame local -> how many times it has been assigned
        self.local_values: dict[Local, Any] = {}  # a local (which assignment) -> the object it stored
        self.call_facts: list[CallFacts] = []  # what plan reads of each operation, by id
        # the callees of slow calls (see `callee_key`), and the objects slow methods were called on (a
        # client, an image patch), by id: what a call in an arm the trace did not take is (`arms`)
        self.slow_callees: dict[Any, Any] = {}
        self.clients: dict[int, Any] = {}
        self._started = time.perf_counter()
        self.root_return: ValueRef | None = None
        # (id(module globals), name) -> what the observed code last stored in that global
        self._globals: dict[tuple[int, str], ValueRef] = {}
        self.module_changed: dict[tuple[int, str], str] = {}  # see Effects.changed_global
        self._cells: dict[int, tuple[Any, ValueRef]] = {}  # see `Following.celled`
        self.entered_frames = 0
        self.objects_handed: dict[int, tuple[tuple[str, Any], ...]] = {}  # see Following
        # calls that raised before their exception object was observable (see `handled_now`): filled
        # in at the next event after the handler's PUSH_EXC_INFO, or by `finish` if it ended the run
        self._awaiting_exception: list[dict[str, Any] | CallEvent] = []
        # what lets a loop's later rounds run unobserved (set by the jit; None: every round is observed)
        # and such a loop under way (see `skipping`)
        self.quieter: skipping.Quieter | None = None
        self.skipping: skipping.Skipping | None = None
        self.python_starts = 0  # Python frames the observed code started so far

    def instruction(self, frame: types.FrameType, offset: int, now: float | None = None) -> None:
        """The frame runs the instruction at `offset` (at `now`, if it ran earlier than it is told)."""
        now = time.perf_counter() if now is None else now
        fs = self._frames.get(frame)
        if self._awaiting_exception and (
            not PY311 or (fs is not None and fs.pending is not None and fs.pending.opname == "PUSH_EXC_INFO")
        ):
            self._fill_exception(sys.exc_info()[1])
        info = fs.info if fs is not None else self._info(frame)
        if offset not in info.instrs:
            # 3.12+ reports an EXTENDED_ARG prefix on its own just before its instruction: skip it;
            # 3.10/3.11 report the instruction at its prefix's offset: map it back
            resolved = None if PY312 else info.resolve(offset)
            if resolved is None:
                return
            offset = resolved
        if self.skipping is not None:
            skipping.resume(self, frame, offset)  # (or the trace ends here)
        if fs is None:
            fs = self._new_frame(frame, offset)
        elif fs.pending is not None and fs.awaiting is None:
            if fs.callee_frame is not None:
                self.close_callee(fs, now)
            self._complete(fs, fs.pending, offset, now)
        if fs.awaiting is not None:
            if offset in fs.awaiting.inside:
                return  # the await is under way: the frame suspends and resumes in its send loop
            self._end_await(fs, fs.awaiting, offset, now)
        ins = fs.info.instrs.get(offset)
        if ins is None:  # not an instruction we know (should not happen): forget the shadow
            fs.pending = None
            return
        self.executed.add((id(fs.info.code), offset))
        self._leave_branches(fs, offset)
        if ins.depth is not None and len(fs.stack) != ins.depth:
            self._resync(fs, ins, len(fs.stack))
        if ins.opname in ("RETURN_VALUE", "RETURN_CONST"):
            # the frame has no next event to complete this on: apply it now, and forget the frame
            fs.pending = None
            return_value(self, fs, ins, False)
            if fs.caller is not None:
                self.forget(fs)
            else:
                del self._frames[frame]
            return
        fs.pending = ins
        fs.operands = tuple(fs.stack[len(fs.stack) - ins.pops :]) if ins.pops else ()
        if ins.opname == "YIELD_VALUE" and fs.generator is not None and fs.stack:
            # now, not when it completes: a consumer that stops at this item never resumes the frame
            self._yields.setdefault(identity(fs.generator), []).append(fs.stack[-1])
        if ins.opname == "CALL" and not PY312:
            fs.operands += fs.precall
        fs.ops_before = len(self.ops)
        fs.callee = MISSING
        fs.callee_args = None
        fs.callee_params = ((), None, None)
        fs.callee_code = None
        fs.callee_result = MISSING
        fs.child_return = None
        fs.resumes = 0
        fs.exception = None
        fs.started = time.perf_counter()
        if (
            ins.opname == "LOAD_CONST"
            and ins.argval is None  # (what a send loop starts with: most constants are looked up no further)
            and (loop := send_loop_at(fs.info, offset)) is not None
        ):
            fs.pending = None  # an await of a value that is no call's result: one step (see `awaiting`)
            fs.awaiting = Awaiting(loop, None, loop.inside)

    def call(self, frame: types.FrameType, callee: Any, arg0: Any) -> None:
        """The callable of the call instruction now pending in `frame` (sys.monitoring CALL).

        A method call `obj.m(...)` is reported as (C.m, obj); bind it again so that the callee
        is what the code called.  (The builder prefers the callee it peeked itself, when it has one.)
        """
        fs = self._frames.get(frame)
        if fs is None or fs.pending is None or fs.pending.opname not in CALL_OPS:
            return
        head = fs.operands[:2]
        method_form = len(head) == 2 and head[0] is not NULL and head[1] is not NULL and arg0 is not MISSING
        if method_form and isinstance(callee, _BINDABLE):  # binding these runs no user code
            with contextlib.suppress(TypeError):
                callee = callee.__get__(arg0, type(arg0))
        fs.callee = callee

    def entered(self, caller: types.FrameType, callee_frame: types.FrameType) -> None:
        """A Python callee of the pending call in `caller` started: record its bound arguments."""
        self.python_starts += 1
        if self.skipping is not None:
            skipping.abandon(self, "started a Python function")
        fs = self._frames.get(caller)
        if fs is None:
            return
        if fs.callee_args is None:
            self._bound_arguments(fs, callee_frame)
        self.follow_into(fs, callee_frame)

    @staticmethod
    def _bound_arguments(fs: FrameState, callee_frame: types.FrameType) -> None:
        fs.callee_args = frame_arguments(callee_frame)
        fs.callee_params = parameters(callee_frame.f_code)
        fs.callee_code = callee_frame.f_code

    def served(
        self,
        frame: types.FrameType,
        steps: tuple[int, ...],
        callee: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        result: Any,
        started: float,
        reached: float,
    ) -> None:
        """A gated call site of a clone (see `execute.rewrite.gate`) had its call made elsewhere: the
        events its original instructions (`steps`, offsets) would have sent when the run `reached`
        them (a call before them ends then), with its arguments bound as the callee's frame would
        hold them, its result (MISSING if it raised: the exception reaches the frame as the
        original's would) and when it started."""
        if self.skipping is not None:
            skipping.abandon(self, "had a call issued ahead served")
        for offset in steps:
            self.instruction(frame, offset, reached)
        fs = self._frames.get(frame)
        if fs is None or fs.pending is None or fs.pending.opname not in CALL_OPS:
            return
        self.call(frame, callee, MISSING)
        code, bound = bound_arguments(callee, args, kwargs)
        if code is not None:
            fs.callee_args = bound
            fs.callee_params = parameters(code)
            fs.callee_code = code
        fs.callee_result = result
        fs.started = started

    def steady(self) -> None:
        """Calls issued ahead now run on other threads (a first call's, see `execute.first`), which
        take the GIL from this one: a step may now seem slow only because it waited.  So from now on
        an instruction or call at a site that ran before without being an operation stays none.  A
        site whose calls were operations in some rounds and not in others would make a plan whose
        replay matches a site's calls to its operations in order (`Replay.dispatch`) take one round's
        call for another's."""
        self.steady_sites = frozenset(self.executed - self._occurrences.keys())

    def round_mark(self) -> RoundMark:
        """What a loop's round may have done, as counts: two marks differ when, between them, the
        run changed an object in place or called a function not known to be pure (`effects`), took
        a conditional jump (`tests`), branched on a result or handled an exception
        (`unguarded_paths`), or ran a loop: one that ran out is a record more (`loops`), one left by
        `break` or `return` a loop still under way (`iters`, until the run ends); `global_changes`
        counts those of the effects that were changes in place of a global's object by the code."""
        return RoundMark(
            self.effects,
            self.tests,
            self.unguarded_paths,
            len(self.loops),
            len(self.iters),
            self.global_changes,
        )

    def returned(self, caller: types.FrameType, value: Any, code: types.CodeType) -> None:
        fs = self._frames.get(caller)
        if fs is not None and not self.calls_back(fs, code):  # (`sorted(xs, key=f)`: not what f returns)
            fs.callee_result = value

    def raised(self, frame: types.FrameType, exc: BaseException) -> None:
        fs = self._frames.get(frame)
        if fs is not None:
            fs.exception = exc

    def _fill_exception(self, exc: BaseException | None) -> None:
        if exc is None:
            return
        for record in self._awaiting_exception:
            if isinstance(record, dict):
                record["exception"] = exc
            else:
                record.exception = exc
        self._awaiting_exception.clear()

    def finish(self, exc: BaseException | None) -> Trace:
        """Close every frame (pending calls end now; one that raised takes `exc`) and make the graph."""
        now = time.perf_counter()
        if self.skipping is not None:
            skipping.abandon(self, "were not left before the run ended")
        self._fill_exception(exc)
        for state in self.iters.values():
            # a loop left by break or return: how many items it took is no guard we can check
            # before the run, so nothing from the loop on is issued ahead (where it was left is not known)
            site = code_site(*state.start) if state.start is not None else None
            self.decisions.append(Decision(DecisionKind.LEFT_LOOP, None, True, state.ops_before, site))
        for fs in list(self._frames.values()):
            if fs.callee_frame is not None and fs.caller is None:  # (followed frames an exception left)
                self.close_callee(fs, now, exc)
        for fs in list(self._frames.values()):
            if fs.pending is not None and fs.pending.opname in CALL_OPS and exc is not None:
                fs.exception = fs.exception or exc
                self.complete_call(fs, fs.pending, now, raised=True)
            fs.pending = None
            fs.awaiting = None
        metadata: dict[str, Any] = {
            "name": self.name,
            "wall_time": now - self._started,
            "min_call_ms": self.min_call_s * 1000.0,
            "resyncs": self.resyncs,
        }
        # (a capture that followed calls: what each was handed, for `analyze.wrapping`)
        if self.objects_handed:
            metadata["objects_handed"] = self.objects_handed
        run = RunFacts()
        if self.root is not None:  # the observed function's code (plan reads which call sites name what)
            run = RunFacts(self.root.info.code, frozenset(self.executed), self.unguarded_paths)
        if exc is not None:
            metadata["exception"] = exc
        outputs = (self.root_return,) if self.root_return is not None else ()
        graph = ComputationGraph(list(self.ops), tuple(self.inputs.values()), outputs, metadata)
        unkept = {}
        if self.root is not None:  # (the calls the observed function makes itself)
            own = [op for op in self.ops if self.call_facts[op.id].code is self.root.info.code]
            unkept = never_read_again(own, self.holders, self.root.info)
        # The frames watched refer to their callers (a finished frame keeps its f_back), and the caller
        # holds this builder: kept, they would make a cycle that only a collection frees, trace and all.
        self._frames.clear()
        self.iters.clear()
        self._cells.clear()
        self.root = None
        return Trace(
            graph,
            tuple(self.decisions),
            tuple(self.loops),
            MappingProxyType(dict(self.carried)),
            MappingProxyType(dict(self.retained)),
            MappingProxyType(unkept),
            MappingProxyType(dict(self.local_values)),
            tuple(self.call_facts),
            run,
            worth_learning(self.forks, self.ops),
        )

    def _info(self, frame: types.FrameType) -> CodeInfo:
        """What the builder reads of a frame's code: the original's, for a clone's (see `originals`)."""
        return code_info(self.originals.get(frame.f_code, frame.f_code))

    def _new_frame(self, frame: types.FrameType, offset: int) -> FrameState:
        fs = FrameState(frame, self._info(frame), frame.f_globals is frame.f_locals, ops=self.ops)
        if self.root is None:
            self.root = fs
            self.single_stores = single_stores(fs.info)
        ins = fs.info.instrs.get(offset)
        depth = ins.depth if ins is not None and ins.depth is not None else 0
        fs.stack = [unknown(0)] * depth  # a block may start with an enclosing loop's iterator on the stack
        parent = self._frames.get(frame.f_back) if frame.f_back is not None else None
        if frame.f_code.co_name in COMPREHENSIONS and fs is not self.root:
            if parent is not None:
                fs.parent = parent
                self._link_nested(fs, parent)
            fs.inherited = self._started_by(fs)
            fs.refresh_control()
        self._frames[frame] = fs
        return fs

    def _complete(self, fs: FrameState, ins: Instr, offset: int, now: float) -> None:
        fs.pending = None
        normal = offset == ins.next or offset == ins.target
        if ins.opname == "YIELD_VALUE" or ins.opname == "RETURN_GENERATOR":
            normal = True  # a generator resumes where it left off
            fs.inherited = self._started_by(fs)  # and runs on as its consumer (this time) decides
            fs.refresh_control()
        if not normal:
            self._unwind(fs, ins, offset, now)
            return
        jumped = offset == ins.target and offset != ins.next
        if ins.opname in CALL_OPS:
            loop = awaited_call_at(fs.info, offset) if offset == ins.next else None
            if loop is not None:  # `await f(x)`: the call completes when the await does
                fs.pending = ins
                fs.awaiting = Awaiting(loop, ins, loop.inside | {offset})
                fs.callee_result = MISSING  # (the awaitable it returned: the await's value comes back)
                return
            self.complete_call(fs, ins, now, raised=False)
        else:
            self._apply(fs, ins, jumped, now)

    def _end_await(self, fs: FrameState, waiting: Awaiting, offset: int, now: float) -> None:
        """The frame left an await's send loop for `offset`: its exit (the awaited object is done) or a
        handler (it raised).  ``await f(x)`` completes the call of `f`; any other await is a step of its
        own (see `awaiting`)."""
        loop = waiting.loop
        done = offset == loop.exit
        if waiting.call is not None:
            fs.pending = None
            if done:
                self.complete_call(fs, waiting.call, now, raised=False)
            else:
                self._unwind(fs, waiting.call, offset, now)
            fs.awaiting = None
            if loop.awaitable is not None:
                self._leave_branches(fs, loop.awaitable)  # (not seen while the call was pending)
            return
        fs.awaiting = None
        slow = now - fs.started >= self.min_call_s
        if not done:
            if slow:
                self.make_op(fs, loop.send, OpType.IMPLICIT, loop.what, (), (), now, raised=True)
            handler = fs.info.handler_at(loop.send.offset)
            if (
                handler is not None
                and handler.target == offset
                and fs.info.instrs[offset].opname == "END_ASYNC_FOR"
            ):
                # an `async for` ran out: its iterator's StopAsyncIteration is the loop's way to end
                fs.stack = fs.stack[: handler.depth] + [EXC] * handler.pushed
            else:
                self._unwind(fs, loop.send, offset, now)
            return
        popped = fs.pop(1)
        result = self.unmodelled(popped)  # awaiting a task or a future lets any code run meanwhile
        if slow:
            inputs = tuple(ref for ref in popped if ref is not NULL and ref is not EXC)
            result = self.make_op(fs, loop.send, OpType.IMPLICIT, loop.what, inputs, (), now).outputs[0]
        fs.push(result)

    def _unwind(self, fs: FrameState, ins: Instr, offset: int, now: float) -> None:
        """Control reached `offset` by an exception raised at `ins`."""
        if ins.opname in CALL_OPS:
            if fs.exception is None:
                fs.exception = handled_now()
            self.complete_call(fs, ins, now, raised=True)
        handler = fs.info.handler_at(ins.offset)
        if handler is not None and handler.target == offset:
            if fs.info.instrs[offset].opname in _SWALLOWING_HANDLERS:
                # it ends the exception (or raises another) without PUSH_EXC_INFO: the exception the
                # calls waiting for one raised is never observable, and the next one handled is not it
                self._awaiting_exception.clear()
            self.unguarded_paths += 1
            kept = fs.stack[: handler.depth]
            fs.stack = kept + [EXC] * handler.pushed
            # the handler runs because this raised: what it does depends on what made it raise
            raised_op = self.ops[-1].id if len(self.ops) > fs.ops_before else None
            why = frozenset({raised_op}) if raised_op is not None else frozenset(range(len(self.ops)))
            if why:
                cond = ValueRef(Source.EXPR, kind=ExprKind.RAISED, deps=why)
                until = merge_point(fs.info, ins.next, offset)
                fs.control.append(Control(-1 - offset, until, cond, site=self._site(fs, ins)))
                fs.refresh_control()
            elif not fs.control_deps:
                # an exception no slow call caused: a replay cannot promise to take this path again
                site = self._site(fs, ins)
                self.decisions.append(Decision(DecisionKind.RAISED, None, True, len(self.ops), site))

        # otherwise the static depth check in `instruction` resynchronises

    def _resync(self, fs: FrameState, ins: Instr, had: int) -> None:
        self.resyncs.append(
            f"{fs.info.code.co_name}@{ins.offset} {ins.opname}: shadow {had}, static {ins.depth}"
        )
        fs.stack = [unknown(len(self.ops))] * (ins.depth or 0)

    def branch(
        self,
        fs: FrameState,
        ins: Instr,
        cond: ValueRef,
        outcome: tuple[DecisionKind, bool] | None = None,
        *,
        jumped: bool,
    ) -> None:
        """A conditional jump on `cond`. One that depends on no slow call is recorded as a decision a
        replay must see again (a guard); one that does makes what follows control-dependent on it.
        Under a branch on results, one that depends on no slow call is reached only when those
        branches go this way again, so no guard checks it up front: it is one more condition of what
        follows (see `Condition`), though nothing depends on it through data.  A replay may take the
        other arm: what it could do is read now, and owed where the arms meet (`_leave_branches`)."""
        if outcome is not None:  # (a loop's own test has none)
            quiet = fs.quiet_branches
            if self.on_round is not None and (not quiet or quiet[-1].ops != len(self.ops)):
                mark = self.round_mark()
                quiet.append(QuietBranch(ins.offset, len(self.ops), mark, len(self.decisions)))
            self.tests += 1
        if not cond.deps:
            if not fs.control_deps:
                if outcome is not None:
                    kind, expected = outcome
                    self.decisions.append(Decision(kind, cond, expected, len(self.ops), self._site(fs, ins)))
                    if self.on_round is not None:  # (a first call: see `execute.first`)
                        start = ins.next if jumped else ins.target
                        self.untaken[len(self.decisions) - 1] = (fs, start, fs.info.ipdom(ins.offset))
                return
        else:
            self.unguarded_paths += 1
        until = fs.info.ipdom(ins.offset)
        untaken = untaken_arm(fs.info, ins.next if jumped else ins.target, until)
        for i, entry in enumerate(fs.control):
            if entry.branch == ins.offset:  # a loop test again: merge, and drop the body's branches
                del fs.control[i + 1 :]
                entry.cond = expr(ExprKind.OR, (entry.cond, cond))
                entry.outcome = None  # reached through every earlier test too: no one predicate says it
                entry.untaken |= untaken
                break
        else:
            site = self._site(fs, ins)
            if outcome is not None and (untaken.calls or untaken.acts):
                self._fork(
                    fs, Condition(cond, outcome, site), site, _MANY if untaken.acts else len(untaken.calls)
                )
            fs.control.append(Control(ins.offset, until, cond, outcome, untaken, site))
        fs.refresh_control()

    def _fork(self, fs: FrameState, condition: Condition, site: Site, calls: int) -> None:
        """Note a branch whose other arm makes `calls` calls, where a replay may go the other way
        (`Fork`), with how many operations were made before it.  (A helper's frame does not know every
        branch it is under: its own are not noted.)"""
        if (fs is self.root or fs.parent is not None) and len(self.forks) < _MAX_FORKS:
            fork = Fork(condition, fs.conditions(), site)
            self.forks.append((fork, len(self.ops), calls))

    def loop_round(self, fs: FrameState, ins: Instr, sequence: ValueRef, k: int) -> None:
        """Item `k` of a loop over `sequence`, which depends on results, came out of the loop's test at
        `ins`: the round is reached through `len(sequence) > k`, a predicate a replay can check once
        those results arrive (see `Condition`).  `sequence` is the loop's own copy of it, so that what
        the rounds make is told apart from what other branches on the same value make."""
        self.unguarded_paths += 1
        outcome = (DecisionKind.MORE, k)
        for i, entry in enumerate(fs.control):
            if entry.branch == ins.offset:  # the next round: the body's branches are left behind
                del fs.control[i + 1 :]
                entry.cond, entry.outcome = sequence, outcome
                break
        else:
            site = self._site(fs, ins)
            fs.control.append(Control(ins.offset, fs.info.ipdom(ins.offset), sequence, outcome, site=site))
        fs.refresh_control()

    def _leave_branches(self, fs: FrameState, offset: int) -> None:
        if fs.control and any(entry.until == offset for entry in fs.control):
            left = [entry for entry in fs.control if entry.until == offset]
            fs.control = [entry for entry in fs.control if entry.until != offset]
            fs.refresh_control()
            for entry in left:
                if entry.untaken:
                    owe_untaken(self, fs, entry)

    def _apply(self, fs: FrameState, ins: Instr, jumped: bool, now: float) -> None:
        duration = now - fs.started
        slow = duration >= max(self.min_call_s, IMPLICIT_MIN_S)
        if slow and (id(fs.info.code), ins.offset) in self.steady_sites:
            slow = False  # (see `steady`)
        if slow and len(self.ops) == fs.ops_before and may_run_user_code(fs, ins, jumped):
            self._implicit_op(fs, ins, jumped, now)
        else:
            before = self.effects
            HANDLERS.get(ins.opname, conservative)(self, fs, ins, jumped)
            if self.effects != before:  # (an attribute set, a `with`, an import: see CallFacts.changer)
                self.changer = (None, fs.info.code, ins, self.effects)

    def unmodelled(self, popped: list[ValueRef]) -> ValueRef:
        """An instruction we do not model ran (it may run any code: `__enter__`, an import, a match):
        like a call to a function not known to be pure, it may have changed every mutable object it
        took, and anything else; what it made depends on every operation so far."""
        self.unknown_calls += 1
        self.effects += 1
        everything = frozenset(range(len(self.ops)))
        for ref in popped:
            if ref is not NULL and ref is not EXC:
                self.mutate_arg(ref, everything)
        return unknown(len(self.ops))

    def _implicit_op(self, fs: FrameState, ins: Instr, jumped: bool, now: float) -> None:
        """A slow instruction that is not a call (a property, a slow iterator, an operator)."""
        popped = fs.pop(ins.jump_pops if jumped else ins.pops)
        pushes = ins.jump_pushes if jumped else ins.pushes
        inputs = tuple(r for r in popped if r is not NULL and r is not EXC)
        op = self.make_op(fs, ins, OpType.IMPLICIT, ins.opname.lower(), inputs, (), now, raised=False)
        out = op.outputs[0]
        if HANDLERS.get(ins.opname, conservative) is conservative:  # its effects too, results on all
            out = self.unmodelled(popped)
        if ins.opname == "FOR_ITER" and not jumped and popped:
            fs.push(popped[0])
            fs.push(out)
            return
        for _ in range(pushes):
            fs.push(out)

    def load_local(self, fs: FrameState, name: str) -> ValueRef:
        for loop in self._watch.get((id(fs.frame), name), ()):
            self.carried.setdefault(loop, len(self.ops))
        ref = fs.locals.get(name)
        f_locals = fs.frame.f_locals
        value = f_locals.get(name, MISSING) if hasattr(f_locals, "get") else MISSING
        if ref is None or (ref.value is not MISSING and ref.value is not value):
            # never stored by the observed code (or rebound behind our back: a cell written by a callee)
            if ref is not None:  # (a function followed into that wrote it left its ref: see `celled`)
                ref = self.cell_content(value) or unknown(len(self.ops), value=value)
            elif name in fs.info.code.co_freevars and fs.parent is not None:
                # a 3.10/3.11 comprehension reads its maker's variables through cells
                parent_ref = self.load_local(fs.parent, name)
                ref = parent_ref if parent_ref.value is value else unknown(len(self.ops), value=value)
            elif name in fs.info.code.co_freevars and fs.caller is not None:
                ref = self.closure_variable(name, value)
            elif name in fs.info.code.co_freevars:
                ref = ValueRef(Source.CELL, name=name, value=value)  # a closure variable of the function
            elif fs.caller is not None:  # (a followed frame's parameters are bound when it starts)
                ref = unknown(len(self.ops), value=value)
            else:
                ref = self._input(name, value)  # a parameter, or a local that existed before the block
            fs.locals[name] = ref
        return self.lookup(ref)

    def _input(self, name: str, value: Any) -> ValueRef:
        ref = self.inputs.get(name)
        if ref is None or ref.value is not value:
            ref = ValueRef(Source.INPUT, name=name, value=value)
            self.inputs.setdefault(name, ref)
        return ref

    def store_local(self, fs: FrameState, name: str, ref: ValueRef) -> None:
        f_locals = fs.frame.f_locals
        value = f_locals.get(name, MISSING) if hasattr(f_locals, "get") else MISSING
        if fs.control_deps:
            ref = fs.under_control(ref)
        if (
            ref.source is Source.OUTPUT
            and ref.op is not None
            and not ref.path
            and self.call_facts[ref.op].read
        ):
            self._kept(ref.op, value)
        self.retain(ref, name if fs is self.root else None)
        if self.reach is not None and (name in fs.info.code.co_cellvars or name in fs.info.code.co_freevars):
            self.celled(with_value(ref, value))
        key = (id(fs.frame), name)
        for state in self.iters.values():
            state.stored.add(key)
        self._watch.pop(key, None)  # assigned again after the loop: reads from now on see the new value
        if fs is self.root:
            count = self.live[name] = self.live.get(name, 0) + 1
            made = ref.source is Source.UNKNOWN or (
                ref.kind is ExprKind.MAKE_FUNCTION and fixed_closure(value, fs.info.code)
            )
            if made and not fs.control_deps and name in self.single_stores:
                # an object glue made (`patch = ImagePatch(img)`, a function defined here): no recipe
                # can rebuild it (a function made again would be another object), but a replay can
                # read it from the frame once this very assignment has run (see plan.ready_at)
                local = Local(name, count)
                self.local_values[local] = value
                ref = as_local(ref, local)
        fs.locals[name] = with_value(ref, value)
        if fs.is_module:  # a module's variable is a global of the functions it defines
            self._globals[(id(fs.frame.f_globals), name)] = fs.locals[name]

    def _kept(self, op_id: int, value: Any) -> None:
        """What a fast call whose result is read (see `Calls.kept_read`) returned, as the code stored it:
        a class's call is seen returning from `__init__` (None), not with the object it made."""
        op = self.ops[op_id]
        if op.outputs and value is not MISSING and op.outputs[0].value is not value:
            self.ops[op_id] = dataclasses.replace(op, outputs=(with_value(op.outputs[0], value),))

    def load_global(self, fs: FrameState, name: str) -> ValueRef:
        globals_ = fs.frame.f_globals
        if name in globals_:
            value = globals_[name]
            stored = self._globals.get((id(globals_), name))
            if stored is not None and stored.value is value:  # the observed code assigned it last
                return self.lookup(stored)
        else:
            builtins_ = fs.frame.f_builtins
            value = builtins_.get(name, MISSING)
        return self.lookup(ValueRef(Source.GLOBAL, name=name, value=value))

    def store_global(self, fs: FrameState, name: str, ref: ValueRef | None) -> None:
        """`global name; name = ref` (`del name` when `ref` is None): the module's namespace changed, and
        later reads of the global see what the code stored, not the value the run started with."""
        self.effects += 1
        globals_ = fs.frame.f_globals
        key = (id(globals_), name)
        self.module_changed[key] = "the code"
        if ref is None:
            self._globals.pop(key, None)
            return
        if fs.control_deps:
            ref = fs.under_control(ref)
        self.retain(ref)
        self._globals[key] = with_value(ref, globals_.get(name, MISSING))

    def frame_state(self, frame: types.FrameType) -> FrameState | None:
        """The shadow of `frame`, if it is a target frame under way."""
        return self._frames.get(frame)

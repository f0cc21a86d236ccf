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
  see docs).  A changed object is tracked by identity in `_heap`, so every
  alias sees the change.
* Control: a value made, or a call reached, after a branch on a value that
  depends on operations, depends on them too, until the branch's immediate
  post-dominator.
* Every opcode of every supported version is decided: modelled by a handler, or CONSERVATIVE
  (`with`, imports, `match`, `await` ...): its results are UNKNOWN and it may have changed every
  mutable object it took, as a call to a function not known to be pure.  An opcode in no list
  (a new version's) is treated as conservative.
* When the shadow stack and the static stack depth disagree (a construct we
  do not model), the stack is rebuilt from UNKNOWN values.
"""

from __future__ import annotations

import builtins
import contextlib
import dis
import inspect
import sys
import threading
import time
import types
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from xcs_bc._compat import (
    CALL_OPS,
    CO_VARARGS,
    CO_VARKEYWORDS,
    COMPREHENSIONS,
    INSTRUMENTED,
    PY311,
    PY312,
    PY313,
)
from xcs_bc.build import purity
from xcs_bc.build.codeinfo import CodeInfo, Instr, code_info
from xcs_bc.build.frames import EXC, Control, FrameState, merge_point
from xcs_bc.build.trace import CallFacts, Decision, DecisionKind, LoopRecord, RunFacts, Trace
from xcs_bc.ir import (
    MISSING,
    ComputationGraph,
    ExprKind,
    Local,
    Operation,
    OpType,
    PathStep,
    Site,
    Source,
    ValueRef,
)
from xcs_bc.ir.values import (
    NULL,
    as_local,
    const,
    describe_callee,
    expr,
    index_const,
    peek_attr,
    peek_item,
    peek_iter_item,
    step,
    union,
    unknown,
    with_deps,
    with_path,
    with_value,
)
from xcs_bc.observe.hooks import CallEvent

__all__ = ["CONSERVATIVE", "Decision", "GraphBuilder", "LoopRecord", "Trace", "decision"]

_COND_POP_JUMPS = frozenset(
    {
        "POP_JUMP_IF_TRUE",
        "POP_JUMP_IF_FALSE",
        "POP_JUMP_IF_NONE",
        "POP_JUMP_IF_NOT_NONE",
        "POP_JUMP_FORWARD_IF_TRUE",
        "POP_JUMP_FORWARD_IF_FALSE",
        "POP_JUMP_FORWARD_IF_NONE",
        "POP_JUMP_FORWARD_IF_NOT_NONE",
        "POP_JUMP_BACKWARD_IF_TRUE",
        "POP_JUMP_BACKWARD_IF_FALSE",
        "POP_JUMP_BACKWARD_IF_NONE",
        "POP_JUMP_BACKWARD_IF_NOT_NONE",
    }
)
_BINARY_3_10 = {
    "BINARY_ADD": ExprKind.ADD,
    "BINARY_SUBTRACT": ExprKind.SUB,
    "BINARY_MULTIPLY": ExprKind.MUL,
    "BINARY_TRUE_DIVIDE": ExprKind.TRUEDIV,
    "BINARY_FLOOR_DIVIDE": ExprKind.FLOORDIV,
    "BINARY_MODULO": ExprKind.MOD,
    "BINARY_POWER": ExprKind.POW,
    "BINARY_AND": ExprKind.BIT_AND,
    "BINARY_OR": ExprKind.BIT_OR,
    "BINARY_XOR": ExprKind.BIT_XOR,
    "BINARY_LSHIFT": ExprKind.LSHIFT,
    "BINARY_RSHIFT": ExprKind.RSHIFT,
    "INPLACE_ADD": ExprKind.IADD,
    "INPLACE_SUBTRACT": ExprKind.ISUB,
    "INPLACE_MULTIPLY": ExprKind.IMUL,
    "INPLACE_MODULO": ExprKind.IMOD,
    "BINARY_MATRIX_MULTIPLY": ExprKind.MATMUL,
    "INPLACE_TRUE_DIVIDE": ExprKind.ITRUEDIV,
    "INPLACE_FLOOR_DIVIDE": ExprKind.IFLOORDIV,
    "INPLACE_POWER": ExprKind.IPOW,
    "INPLACE_MATRIX_MULTIPLY": ExprKind.IMATMUL,
    "INPLACE_AND": ExprKind.IAND,
    "INPLACE_OR": ExprKind.IOR,
    "INPLACE_XOR": ExprKind.IXOR,
    "INPLACE_LSHIFT": ExprKind.ILSHIFT,
    "INPLACE_RSHIFT": ExprKind.IRSHIFT,
}
_BINDABLE = (types.FunctionType, types.MethodDescriptorType, types.WrapperDescriptorType)
_COMPARISONS = {
    kind.value: kind
    for kind in (ExprKind.LT, ExprKind.LE, ExprKind.EQ, ExprKind.NE, ExprKind.GT, ExprKind.GE)
}
_OPERATOR_SYMBOLS = {kind.value: kind for kind in _BINARY_3_10.values()}  # BINARY_OP's: spelled as the kinds
_CONTAINERS = frozenset({ExprKind.LIST, ExprKind.TUPLE, ExprKind.SET, ExprKind.DICT})
# callees that take every item of the iterable they are handed (unless an item makes them raise)
_TAKE_ALL: tuple[Any, ...] = (list, tuple, set, frozenset, dict, sorted, sum, min, max)
_TAKE_ALL_METHODS = frozenset(
    {(str, "join"), (bytes, "join"), (bytearray, "join"), (list, "extend"), (set, "update"), (dict, "update")}
)
_SELF = "<self>"


_Watched = tuple[Any, bool, Any, int]  # see GraphBuilder._snapshot


@dataclass
class _LoopState:
    """A loop under way: its iterator's ref, what it iterates, and where each item began."""

    iterator: ValueRef
    iterable: ValueRef
    ops_before: int
    op_starts: list[int] = field(default_factory=list)
    decision_starts: list[int] = field(default_factory=list)
    stored: set[tuple[int, str]] = field(default_factory=set)  # (id(frame), local) assigned in its rounds
    watched: tuple[_Watched, ...] = ()  # see GraphBuilder._snapshot


class GraphBuilder:
    """Receives observation events for the target frames and builds the graph."""

    def __init__(self, *, min_call_ms: float, name: str) -> None:
        self.min_call_s = min_call_ms / 1000.0
        self.name = name
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
        self.retained: dict[int, tuple[ValueRef, ...]] = {}  # see _retain
        self.resyncs: list[str] = []  # where the shadow stack had to be rebuilt (none in a well-modelled run)
        self.executed: set[tuple[int, int]] = set()  # (id(code), offset) of every instruction that ran
        # branches taken on values that depend on slow calls, and exceptions handled: where a replay may
        # go another way than the trace (and reach code the trace did not run)
        self.unguarded_paths = 0
        self._frames: dict[types.FrameType, FrameState] = {}
        self._heap: dict[int, tuple[Any, ValueRef]] = {}  # id(obj) -> (obj, ref): objects changed in place
        # id(obj) -> (obj, n): objects handed n times to calls that may change them and what they hold
        self._handed: dict[int, tuple[Any, int]] = {}
        # these two are keyed by `_identity` of a generator's or an iterator's ref:
        self._yields: dict[int, list[ValueRef]] = {}  # generator -> refs it yielded
        # iterator -> its loop; shared by frames because a 3.10/3.11 comprehension frame (and a generator
        # expression's) iterates the iterator its parent made
        self._iters: dict[int, _LoopState] = {}
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
        # the observed function's own frame: its locals a replay may read (see _store_local)
        self._root: FrameState | None = None
        self._single_stores: frozenset[str] = frozenset()
        self._live: dict[str, int] = {}  # root-frame local -> how many times it has been assigned
        self.local_values: dict[Local, Any] = {}  # a local (which assignment) -> the object it stored
        self.call_facts: list[CallFacts] = []  # what plan reads of each operation, by id
        self._started = time.perf_counter()
        self._root_return: ValueRef | None = None
        # (id(module globals), name) -> what the observed code last stored in that global
        self._globals: dict[tuple[int, str], ValueRef] = {}
        # calls that raised before the exception object was observable (3.12+: it is set when the
        # handler's PUSH_EXC_INFO has run): filled in at the next event, or by `finish`
        self._awaiting_exception: list[dict[str, Any] | CallEvent] = []

    # -- events from the observation layer -----------------------------------------------------

    def instruction(self, frame: types.FrameType, offset: int) -> None:
        now = time.perf_counter()
        if self._awaiting_exception:
            self._fill_exception(sys.exc_info()[1])
        fs = self._frames.get(frame)
        info = fs.info if fs is not None else code_info(frame.f_code)
        if offset not in info.instrs:
            # 3.12+ reports an EXTENDED_ARG prefix on its own just before its instruction: skip it;
            # 3.10/3.11 report the instruction at its prefix's offset: map it back
            resolved = None if PY312 else info.resolve(offset)
            if resolved is None:
                return
            offset = resolved
        if fs is None:
            fs = self._new_frame(frame, offset)
        elif fs.pending is not None:
            self._complete(fs, fs.pending, offset, now)
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
            _h_return(self, fs, ins, False)
            del self._frames[frame]
            return
        fs.pending = ins
        fs.operands = tuple(fs.stack[len(fs.stack) - ins.pops :]) if ins.pops else ()
        if ins.opname == "YIELD_VALUE" and fs.generator is not None and fs.stack:
            # now, not when it completes: a consumer that stops at this item never resumes the frame
            self._yields.setdefault(_identity(fs.generator), []).append(fs.stack[-1])
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
        fs = self._frames.get(caller)
        if fs is None or fs.callee_args is not None:
            return
        code = callee_frame.f_code
        n = (
            code.co_argcount
            + code.co_kwonlyargcount
            + bool(code.co_flags & CO_VARARGS)
            + bool(code.co_flags & CO_VARKEYWORDS)
        )
        f_locals = callee_frame.f_locals
        fs.callee_args = {name: f_locals[name] for name in code.co_varnames[:n] if name in f_locals}
        fs.callee_params = _parameters(code)
        fs.callee_code = code

    def returned(self, caller: types.FrameType, value: Any) -> None:
        fs = self._frames.get(caller)
        if fs is not None:
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
        self._fill_exception(exc)
        for state in self._iters.values():
            # a loop left by break or return: how many items it took is no guard we can check
            # before the run, so nothing from the loop on is issued ahead (where it was left is not known)
            self.decisions.append(Decision(DecisionKind.LEFT_LOOP, None, True, state.ops_before, None))
        for fs in list(self._frames.values()):
            if fs.pending is not None and fs.pending.opname in CALL_OPS and exc is not None:
                fs.exception = fs.exception or exc
                self._complete_call(fs, fs.pending, now, raised=True)
            fs.pending = None
        metadata: dict[str, Any] = {
            "name": self.name,
            "wall_time": now - self._started,
            "min_call_ms": self.min_call_s * 1000.0,
            "resyncs": self.resyncs,
        }
        run = RunFacts()
        if self._root is not None:  # the observed function's code (plan reads which call sites name what)
            run = RunFacts(self._root.info.code, frozenset(self.executed), self.unguarded_paths)
        if exc is not None:
            metadata["exception"] = exc
        outputs = (self._root_return,) if self._root_return is not None else ()
        graph = ComputationGraph(list(self.ops), tuple(self.inputs.values()), outputs, metadata)
        # The frames watched refer to their callers (a finished frame keeps its f_back), and the caller
        # holds this builder: kept, they would make a cycle that only a collection frees, trace and all.
        self._frames.clear()
        self._iters.clear()
        self._root = None
        return Trace(
            graph,
            tuple(self.decisions),
            tuple(self.loops),
            MappingProxyType(dict(self.carried)),
            MappingProxyType(dict(self.retained)),
            MappingProxyType(dict(self.local_values)),
            tuple(self.call_facts),
            run,
        )

    # -- frames --------------------------------------------------------------------------------

    def _new_frame(self, frame: types.FrameType, offset: int) -> FrameState:
        fs = FrameState(frame, code_info(frame.f_code), frame.f_globals is frame.f_locals, ops=self.ops)
        if self._root is None:
            self._root = fs
            self._single_stores = _single_stores(fs.info)
        ins = fs.info.instrs.get(offset)
        depth = ins.depth if ins is not None and ins.depth is not None else 0
        fs.stack = [unknown(0)] * depth  # a block may start with an enclosing loop's iterator on the stack
        parent = self._frames.get(frame.f_back) if frame.f_back is not None else None
        if frame.f_code.co_name in COMPREHENSIONS and fs is not self._root:
            if parent is not None:
                fs.parent = parent
                self._link_nested(fs, parent)
            fs.inherited = self._started_by(fs)
            fs.refresh_control()
        self._frames[frame] = fs
        return fs

    def _link_nested(self, fs: FrameState, parent: FrameState) -> None:
        """A comprehension's `.0` is the iterator its maker was called with; a genexpr's comes with it
        (to the call that consumes it, or to the `for` loop that walks it)."""
        for ref in parent.operands:
            generator = _generator_of(ref)
            if generator is not None:
                fs.generator = generator
                fs.locals[".0"] = generator.operands[0] if generator.operands else unknown(len(self.ops))
                return
        args = [ref for ref in parent.operands if ref is not NULL]
        fs.locals[".0"] = args[-1] if args else unknown(len(self.ops))

    def _started_by(self, fs: FrameState) -> tuple[ValueRef, ...]:
        """The conditions a comprehension's frame runs under once a frame has started or resumed it.

        The frame's that did: what it does is reached through its branches.  And a generator expression
        is run item by item by its consumer, which may stop early in code we do not see (any() at the
        first true item): unless the consumer surely asks for this item (see `_pulls`), the code up to
        the next one is reached through the consumer's choice, made on the items so far, and is not
        issued ahead.
        """
        back = fs.frame.f_back
        consumer = self._frames.get(back) if back is not None else None
        conds = consumer.conditions() if consumer is not None else ()
        if not fs.info.code.co_flags & inspect.CO_GENERATOR:
            return conds  # a list, set or dict comprehension's frame (3.10, 3.11): run at once, in full
        pulls = None
        if consumer is not None:
            consumer.resumes += 1
            pulls = self._pulls(consumer, fs.generator) if fs.generator is not None else None
        if pulls == "all" or (pulls == "first" and consumer is not None and consumer.resumes == 1):
            return conds
        yielded = self._yields.get(_identity(fs.generator), []) if fs.generator is not None else []
        # (each item depends on the choice to ask for it: the last one's deps include the earlier choices)
        why = ValueRef(Source.EXPR, kind=ExprKind.CONSUMER, deps=yielded[-1].deps if yielded else frozenset())
        return (*conds, why)

    def _pulls(self, fs: FrameState, generator: ValueRef) -> str | None:
        """How the instruction pending in `fs` takes items from `generator`: "all" of them (a `for` loop,
        `[*gen]`, list(), sum(), "".join() ...), "first" (any(), all() and next() ask for one at least,
        then stop where they like), or None (unknown, or the generator is not handed to it itself: zip(),
        islice() and a helper function stop where they like too)."""
        ins = fs.pending
        if ins is None or not any(_same(_generator_of(ref), generator) for ref in fs.operands):
            return None
        if ins.opname in ("FOR_ITER", "LIST_EXTEND", "SET_UPDATE", "CALL_FUNCTION_EX"):
            return "all"  # a loop here stops by its own branches, which we see; `f(*gen)` makes a tuple
        if ins.opname not in CALL_OPS:
            return None
        callee_ref = self._call_layout(fs, ins, fs.operands)[0]
        callee = callee_ref.value if callee_ref.value is not MISSING else fs.callee
        if any(callee is taker for taker in _TAKE_ALL):
            return "all"
        if any(callee is taker for taker in (any, all, next)):
            return "first"
        # "".join, xs.extend: a builtin method's attributes run no code
        if isinstance(callee, types.BuiltinMethodType) and (
            (type(callee.__self__), callee.__name__) in _TAKE_ALL_METHODS
        ):
            return "all"
        return None

    # -- completing an instruction --------------------------------------------------------------

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
            self._complete_call(fs, ins, now, raised=False)
        else:
            self._apply(fs, ins, jumped, now)

    def _unwind(self, fs: FrameState, ins: Instr, offset: int, now: float) -> None:
        """Control reached `offset` by an exception raised at `ins`."""
        if ins.opname in CALL_OPS:
            if fs.exception is None:
                fs.exception = sys.exc_info()[1]
            self._complete_call(fs, ins, now, raised=True)
        handler = fs.info.handler_at(ins.offset)
        if handler is not None and handler.target == offset:
            self.unguarded_paths += 1
            kept = fs.stack[: handler.depth]
            fs.stack = kept + [EXC] * handler.pushed
            # the handler runs because this raised: what it does depends on what made it raise
            raised_op = self.ops[-1].id if len(self.ops) > fs.ops_before else None
            why = frozenset({raised_op}) if raised_op is not None else frozenset(range(len(self.ops)))
            if why:
                cond = ValueRef(Source.EXPR, kind=ExprKind.RAISED, deps=why)
                until = merge_point(fs.info, ins.next, offset)
                fs.control.append(Control(-1 - offset, until, cond))
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

    def _lookup(self, ref: ValueRef) -> ValueRef:
        """The current ref of the object `ref` names, if that object was changed in place."""
        value = ref.value
        if value is MISSING or purity.is_immutable(value):
            return ref
        entry = self._heap.get(id(value))
        if entry is not None and entry[0] is value:
            return with_value(entry[1], value) if entry[1] is not ref else ref
        return ref

    def _mutate(self, obj: Any, ref: ValueRef, deps: frozenset[int], new: ValueRef | None = None) -> ValueRef:
        """Record that `obj` (whose ref is `ref`) may have changed, depending on `deps`."""
        changed = new if new is not None else with_deps(expr(ExprKind.EFFECT, (ref,), value=obj), deps)
        if ref.source is not Source.EXPR:  # not a container the glue built and we follow item by item
            self.effects += 1
        if obj is not MISSING and not purity.is_immutable(obj):
            self._heap[id(obj)] = (obj, changed)
            self._retain(changed)
        return changed

    def _retain(self, ref: ValueRef) -> None:
        """`ref`'s container outlives the expression that built it (stored, or changed in place).

        A planned call handed such a container would get a copy, not the object the code keeps
        and may read again: `plan` refuses those. Containers only the callee sees (`messages=[...]`
        built in the call itself) are not retained. Keyed by the operands tuple, like shapes.
        """
        if (
            ref.source is Source.EXPR
            and ref.kind in (ExprKind.LIST, ExprKind.DICT, ExprKind.SET)
            and ref.operands
        ):
            self.retained[id(ref.operands)] = ref.operands

    def _record_loop(
        self,
        fs: FrameState,
        ins: Instr,
        state: _LoopState,
        sequences: tuple[ValueRef, ...],
        own: tuple[int, ...],
    ) -> None:
        """A loop ran out: remember its rounds, and guard the length of the sequences it walked."""
        site = self._site(fs, ins)
        for key in state.stored:
            self._watch.setdefault(key, []).append(len(self.loops))
        self.loops.append(
            LoopRecord(
                state.iterable,
                sequences,
                tuple(state.op_starts),
                len(self.ops),
                tuple(state.decision_starts),
                len(self.decisions),
                own,
                site,
                len(self._iters),  # its own state is gone: what is left is the loops around it
            )
        )
        for sequence in sequences:
            # the loop's length decides every call made in it: the decision comes before them
            rounds = len(state.op_starts)
            self.decisions.append(Decision(DecisionKind.LENGTH, sequence, rounds, state.ops_before, site))

    def _set_shape(self, ref: ValueRef, deps: frozenset[int]) -> ValueRef:
        if ref.operands:
            self._shapes[id(ref.operands)] = (ref.operands, deps)
        return ref

    def _forget_shape(self, ref: ValueRef) -> None:
        """Drop `ref`'s shape entry (it keeps its operands alive: a list grown by n appends would
        keep n copies)."""
        entry = self._shapes.get(id(ref.operands))
        if entry is not None and entry[0] is ref.operands:
            del self._shapes[id(ref.operands)]

    def _shape_deps(self, ref: ValueRef) -> frozenset[int]:
        """What the number of items of `ref` depends on."""
        if ref.source is Source.EXPR and ref.kind in _CONTAINERS:
            if not ref.operands:
                return ref.deps
            entry = self._shapes.get(id(ref.operands))
            if entry is not None and entry[0] is ref.operands:
                return entry[1] | _key_deps(ref)
        return ref.deps

    # -- control dependence ----------------------------------------------------------------------

    def _branch(
        self, fs: FrameState, ins: Instr, cond: ValueRef, outcome: tuple[DecisionKind, bool] | None = None
    ) -> None:
        """A conditional jump on `cond`. One that depends on no slow call is recorded as a decision a
        replay must see again (a guard); one that does makes what follows control-dependent on it."""
        if not cond.deps:
            if outcome is not None and not fs.control_deps:
                kind, expected = outcome
                self.decisions.append(Decision(kind, cond, expected, len(self.ops), self._site(fs, ins)))
            return
        self.unguarded_paths += 1
        for i, entry in enumerate(fs.control):
            if entry.branch == ins.offset:  # a loop test again: merge, and drop the body's branches
                del fs.control[i + 1 :]
                entry.cond = expr(ExprKind.OR, (entry.cond, cond))
                break
        else:
            fs.control.append(Control(ins.offset, fs.info.ipdom(ins.offset), cond))
        fs.refresh_control()

    def _leave_branches(self, fs: FrameState, offset: int) -> None:
        if fs.control and any(entry.until == offset for entry in fs.control):
            fs.control = [entry for entry in fs.control if entry.until != offset]
            fs.refresh_control()

    # -- instruction semantics -------------------------------------------------------------------

    def _apply(self, fs: FrameState, ins: Instr, jumped: bool, now: float) -> None:
        duration = now - fs.started
        slow = duration >= max(self.min_call_s, _IMPLICIT_MIN_S)
        if slow and len(self.ops) == fs.ops_before and _may_run_user_code(fs, ins, jumped):
            self._implicit_op(fs, ins, jumped, now)
        else:
            _HANDLERS.get(ins.opname, _h_conservative)(self, fs, ins, jumped)

    def _unmodelled(self, popped: list[ValueRef]) -> ValueRef:
        """An instruction we do not model ran (it may run any code: `__enter__`, an import, a match):
        like a call to a function not known to be pure, it may have changed every mutable object it
        took, and anything else; what it made depends on every operation so far."""
        self.unknown_calls += 1
        self.effects += 1
        everything = frozenset(range(len(self.ops)))
        for ref in popped:
            if ref is not NULL and ref is not EXC:
                self._mutate_arg(ref, everything)
        return unknown(len(self.ops))

    def _implicit_op(self, fs: FrameState, ins: Instr, jumped: bool, now: float) -> None:
        """A slow instruction that is not a call (a property, a slow iterator, an operator)."""
        popped = fs.pop(ins.jump_pops if jumped else ins.pops)
        pushes = ins.jump_pushes if jumped else ins.pushes
        inputs = tuple(r for r in popped if r is not NULL and r is not EXC)
        op = self._make_op(fs, ins, OpType.IMPLICIT, ins.opname.lower(), inputs, (), now, raised=False)
        out = op.outputs[0]
        if _HANDLERS.get(ins.opname, _h_conservative) is _h_conservative:  # its effects too, results on all
            out = self._unmodelled(popped)
        if ins.opname == "FOR_ITER" and not jumped and popped:
            fs.push(popped[0])
            fs.push(out)
            return
        for _ in range(pushes):
            fs.push(out)

    def _load_local(self, fs: FrameState, name: str) -> ValueRef:
        for loop in self._watch.get((id(fs.frame), name), ()):
            self.carried.setdefault(loop, len(self.ops))
        ref = fs.locals.get(name)
        f_locals = fs.frame.f_locals
        value = f_locals.get(name, MISSING) if hasattr(f_locals, "get") else MISSING
        if ref is None or (ref.value is not MISSING and ref.value is not value):
            # never stored by the observed code (or rebound behind our back: a cell written by a callee)
            if ref is not None:
                ref = unknown(len(self.ops), value=value)
            elif name in fs.info.code.co_freevars and fs.parent is not None:
                # a 3.10/3.11 comprehension reads its maker's variables through cells
                parent_ref = self._load_local(fs.parent, name)
                ref = parent_ref if parent_ref.value is value else unknown(len(self.ops), value=value)
            elif name in fs.info.code.co_freevars:
                ref = ValueRef(Source.CELL, name=name, value=value)  # a closure variable of the function
            else:
                ref = self._input(name, value)  # a parameter, or a local that existed before the block
            fs.locals[name] = ref
        return self._lookup(ref)

    def _input(self, name: str, value: Any) -> ValueRef:
        ref = self.inputs.get(name)
        if ref is None or ref.value is not value:
            ref = ValueRef(Source.INPUT, name=name, value=value)
            self.inputs.setdefault(name, ref)
        return ref

    def _store_local(self, fs: FrameState, name: str, ref: ValueRef) -> None:
        f_locals = fs.frame.f_locals
        value = f_locals.get(name, MISSING) if hasattr(f_locals, "get") else MISSING
        if fs.control_deps:
            ref = with_deps(ref, fs.control_deps)
        self._retain(ref)
        key = (id(fs.frame), name)
        for state in self._iters.values():
            state.stored.add(key)
        self._watch.pop(key, None)  # assigned again after the loop: reads from now on see the new value
        if fs is self._root:
            count = self._live[name] = self._live.get(name, 0) + 1
            if ref.source is Source.UNKNOWN and not fs.control_deps and name in self._single_stores:
                # an object glue made (`patch = ImagePatch(img)`): no recipe can rebuild it, but a
                # replay can read it from the frame once this very assignment has run (see plan.ready_at)
                local = Local(name, count)
                self.local_values[local] = value
                ref = as_local(ref, local)
        fs.locals[name] = with_value(ref, value)

    def _load_global(self, fs: FrameState, name: str) -> ValueRef:
        globals_ = fs.frame.f_globals
        if name in globals_:
            value = globals_[name]
            stored = self._globals.get((id(globals_), name))
            if stored is not None and stored.value is value:  # the observed code assigned it last
                return self._lookup(stored)
        else:
            builtins_ = fs.frame.f_builtins
            value = builtins_.get(name, MISSING)
        return self._lookup(ValueRef(Source.GLOBAL, name=name, value=value))

    def _store_global(self, fs: FrameState, name: str, ref: ValueRef | None) -> None:
        """`global name; name = ref` (`del name` when `ref` is None): the module's namespace changed, and
        later reads of the global see what the code stored, not the value the run started with."""
        self.effects += 1
        globals_ = fs.frame.f_globals
        key = (id(globals_), name)
        if ref is None:
            self._globals.pop(key, None)
            return
        if fs.control_deps:
            ref = with_deps(ref, fs.control_deps)
        self._retain(ref)
        self._globals[key] = with_value(ref, globals_.get(name, MISSING))

    # -- calls -----------------------------------------------------------------------------------

    def _complete_call(self, fs: FrameState, ins: Instr, now: float, *, raised: bool) -> None:
        popped = fs.operands if raised else tuple(fs.pop(ins.pops))
        if ins.opname == "CALL" and not PY312 and not raised:
            popped += fs.precall
        fs.precall = ()
        callee_ref, args, kwnames, star = self._call_layout(fs, ins, popped)
        fs.kwnames = ()
        callee = callee_ref.value if callee_ref.value is not MISSING else fs.callee
        fs.callee = callee
        nested = len(self.ops) > fs.ops_before
        duration = now - fs.started
        made = _made_code(callee_ref)
        if made is not None and made.co_name == "<genexpr>" and not raised:
            # calling the genexpr function only makes the generator; its frame runs when consumed
            iterator = args[-1] if args else popped[-1]
            fs.push(expr(ExprKind.GENEXPR, (iterator,)))
            return
        # a pure consumer (sum(), "".join(), max() ...) that ran a generator expression's frame: its time
        # is the frame's, which we observe (slow steps in it are operations of their own) at the cost of
        # a hook per instruction, not a slow call of its own
        consumed = fs.resumes > 0 and callee is not MISSING and purity.classify(callee) is purity.Effect.PURE
        if nested or fs.child_return is not None:
            result = self._nested_result(fs, callee, callee_ref, args)
        elif consumed:
            self._record_event(fs, ins, callee, now, raised, fs.callee_result)  # a call all the same
            if raised:
                return
            result = self._nested_result(fs, callee, callee_ref, args)
        elif duration >= self.min_call_s and not (self.min_call_s and _plain_builtin(callee)):
            if not star:  # f(*seq, **kw): the slots are the sequence and the dict, not the arguments
                args = self._observed_values(fs, callee, args, kwnames)
            inputs = (callee_ref, *args)
            op = self._make_op(
                fs, ins, OpType.CALL, describe_callee(callee), inputs, kwnames, now, raised=raised
            )
            if star:
                self.call_facts[op.id] = replace(self.call_facts[op.id], star=True)
            for ref in args:  # a slow call may change the mutable objects it is handed
                self._mutate_arg(ref, frozenset({op.id}) | ref.deps)
            if purity.sets_attributes(callee):  # `self.gather(topic)` storing self.notes: and its object
                self._mutate_receiver(callee, callee_ref, frozenset({op.id}) | callee_ref.deps)
            self._record_event(fs, ins, callee, now, raised, op.outputs[0].value if op.outputs else MISSING)
            if raised:
                return
            result = op.outputs[0]
        else:
            self._record_event(fs, ins, callee, now, raised, fs.callee_result)
            if raised:
                return
            result = self._fast_call(callee, callee_ref, args, kwnames, star, fs.control_deps)
        if not raised:
            fs.push(with_value(result, fs.callee_result) if result.value is MISSING else result)

    def _call_layout(
        self, fs: FrameState, ins: Instr, popped: tuple[ValueRef, ...]
    ) -> tuple[ValueRef, tuple[ValueRef, ...], tuple[str, ...], bool]:
        """Split the consumed slots into callee, argument values and keyword names."""
        items = list(popped)
        kwnames: tuple[str, ...] = ()
        if ins.opname in ("CALL_FUNCTION_KW", "CALL_KW"):
            names = items.pop()
            kwnames = tuple(names.value) if isinstance(names.value, tuple) else ()
        elif ins.opname == "CALL" and not PY313:
            kwnames = fs.kwnames
        star = ins.opname == "CALL_FUNCTION_EX"
        lead = 1 if ins.opname in ("CALL_FUNCTION", "CALL_FUNCTION_KW") or (star and not PY311) else 2
        head, args = items[:lead], tuple(items[lead:])
        if lead == 1:
            callee = head[0]
        elif head[0] is NULL:
            callee = head[1]
        elif head[1] is NULL:
            callee = head[0]
        else:  # [method, self]
            callee = head[0]
        return callee, args, kwnames, star

    @staticmethod
    def _arguments(fs: FrameState, callee: Any) -> dict[str, Any] | None:
        """The bound arguments a Python callee received, without the receiver of a method."""
        bound = fs.callee_args
        params = fs.callee_params[0]
        if bound is None or not params or not _receiver_first(callee, fs.callee_code):
            return bound
        return {name: value for name, value in bound.items() if name != params[0]}

    def _observed_values(
        self, fs: FrameState, callee: Any, args: tuple[ValueRef, ...], kwnames: tuple[str, ...]
    ) -> tuple[ValueRef, ...]:
        """Attach the argument values a Python callee received to argument refs that lack one."""
        bound = fs.callee_args
        if bound is None:
            return args
        params, star, starstar = fs.callee_params
        if params and _receiver_first(callee, fs.callee_code):  # a bound method or callable object: skip self
            params = params[1:]
        n_positional = len(args) - len(kwnames)
        values: list[Any] = []
        for i in range(n_positional):
            if i < len(params):
                values.append(bound.get(params[i], MISSING))
            elif (
                star is not None and isinstance(bound.get(star), tuple) and i - len(params) < len(bound[star])
            ):
                values.append(bound[star][i - len(params)])
            else:
                values.append(MISSING)
        extra = bound.get(starstar) if starstar is not None else None
        for name in kwnames:  # a keyword lands in its parameter, or in **kwargs (a wrapper's)
            if name in bound and name not in (star, starstar):
                values.append(bound[name])
            else:
                values.append(extra.get(name, MISSING) if isinstance(extra, dict) else MISSING)
        return tuple(
            with_value(ref, value) if ref.value is MISSING and value is not MISSING else ref
            for ref, value in zip(args, values, strict=True)
        )

    def _fast_call(
        self,
        callee: Any,
        callee_ref: ValueRef,
        args: tuple[ValueRef, ...],
        kwnames: tuple[str, ...],
        star: bool,
        control: frozenset[int],
    ) -> ValueRef:
        effect = purity.classify(callee) if callee is not MISSING else purity.Effect.UNKNOWN
        operands = (callee_ref, *args) + ((const(kwnames),) if kwnames else ())
        # f(*seq, **kw) is not f(seq, kw): a kind of its own, which recipes do not evaluate
        kind = ExprKind.CALL_EX if star else ExprKind.CALL_KW if kwnames else ExprKind.CALL
        if effect is purity.Effect.UNKNOWN:
            self.unknown_calls += 1  # it may have changed anything, not only what it was handed
            self.effects += 1
            everything = frozenset(range(len(self.ops)))
            self._mutate_receiver(callee, callee_ref, everything, deep=True)
            for ref in args:
                self._mutate_arg(ref, everything)
            return unknown(len(self.ops), origin=f"{describe_callee(callee)}()")
        if effect is purity.Effect.MUTATES_INPUTS:
            deps = union(ref.deps for ref in operands)
            receiver = getattr(callee, "__self__", MISSING)
            if getattr(callee, "__name__", "") == "append" and isinstance(receiver, list) and len(args) == 1:
                self._append(receiver, callee_ref, args[0], control)
            else:
                self._mutate_receiver(callee, callee_ref, deps)
        return expr(kind, operands)

    def _append(
        self, receiver: list[Any], callee_ref: ValueRef, item: ValueRef, control: frozenset[int]
    ) -> None:
        """`xs.append(item)`: keep element-wise provenance when we know what `xs` holds."""
        base = self._receiver_ref(receiver, callee_ref)
        if (
            base.source is Source.EXPR
            and base.kind is ExprKind.LIST
            and len(base.operands) == len(receiver) - 1
        ):
            new = expr(ExprKind.LIST, (*base.operands, item), value=receiver)
            self._set_shape(new, self._shape_deps(base) | control)
        else:
            new = with_deps(expr(ExprKind.EFFECT, (base, item), value=receiver), base.deps)
        self._mutate(receiver, base, new.deps, new)

    def _receiver_ref(self, receiver: Any, callee_ref: ValueRef) -> ValueRef:
        entry = self._heap.get(id(receiver))
        if entry is not None and entry[0] is receiver:
            return entry[1]
        if callee_ref.path and callee_ref.path[-1].kind == "attr":  # `xs.append` -> `xs`
            return with_path(callee_ref, callee_ref.path[:-1], receiver)
        return with_value(callee_ref, receiver)

    def _mutate_receiver(
        self, callee: Any, callee_ref: ValueRef, deps: frozenset[int], *, deep: bool = False
    ) -> None:
        receiver = getattr(callee, "__self__", MISSING)
        if receiver is MISSING or isinstance(receiver, types.ModuleType) or purity.is_immutable(receiver):
            return
        if deep:
            self._hand(receiver)
        self._mutate(receiver, self._receiver_ref(receiver, callee_ref), deps)

    def _mutate_arg(self, ref: ValueRef, deps: frozenset[int]) -> None:
        """`ref` was handed to a call that may change it, and what it holds."""
        if ref.value is not MISSING and not purity.is_immutable(ref.value):
            self._hand(ref.value)
            self._mutate(ref.value, self._lookup(ref), deps)

    def _hand(self, obj: Any) -> None:
        entry = self._handed.get(id(obj))
        self._handed[id(obj)] = (obj, entry[1] + 1 if entry is not None and entry[0] is obj else 1)

    def _snapshot(self, fs: FrameState, refs: tuple[ValueRef, ...]) -> tuple[_Watched, ...]:
        """What a loop over `refs` must see unchanged when it runs out for its length to be a guard: each
        sequence itself (changed in place at all) and the objects it was read from (`self` of
        `self.items`: handed to a call, which may change what they hold). Entries: (object, whether it is
        the sequence, its _heap entry, how many times it was handed to a call)."""
        out = []
        for ref in refs:
            objects = [(ref.value, True)]
            value = self._root_value(fs, ref)
            for hop in ref.path:
                objects.append((value, False))
                value = _peek(value, hop)
            for obj, itself in objects:
                if obj is not MISSING and not purity.is_immutable(obj):
                    handed = self._handed.get(id(obj))
                    count = handed[1] if handed is not None and handed[0] is obj else 0
                    out.append((obj, itself, self._heap.get(id(obj)), count))
        return tuple(out)

    def _changed(self, snapshot: tuple[_Watched, ...]) -> bool:
        for obj, itself, entry, count in snapshot:
            handed = self._handed.get(id(obj))
            if itself and self._heap.get(id(obj)) is not entry:
                return True
            if handed is not None and handed[1] != count:
                return True
        return False

    def _root_value(self, fs: FrameState, ref: ValueRef) -> Any:
        """The object at the start of `ref`'s path: the input or global it reads (else MISSING)."""
        if not ref.path:
            return MISSING
        if ref.source is Source.INPUT and ref.name in self.inputs:
            return self.inputs[ref.name].value
        if ref.source is Source.GLOBAL:
            return fs.frame.f_globals.get(ref.name, MISSING)
        return MISSING

    def _nested_result(
        self, fs: FrameState, callee: Any, callee_ref: ValueRef, args: tuple[ValueRef, ...]
    ) -> ValueRef:
        """The result of a call during which observed frames ran (a comprehension, a genexpr's consumer)."""
        if fs.child_return is not None:
            return fs.child_return
        generated = [ref for ref in args if ref.source is Source.EXPR and ref.kind is ExprKind.GENEXPR]
        if generated and callee is not MISSING and purity.classify(callee) is purity.Effect.PURE:
            produced = self._yields.get(_identity(generated[0]), [])
            return expr(ExprKind.CALL, (callee_ref, expr(ExprKind.GENERATED, produced)))
        return unknown(len(self.ops))

    def _make_op(
        self,
        fs: FrameState,
        ins: Instr,
        op_type: OpType,
        name: str,
        inputs: tuple[ValueRef, ...],
        kwnames: tuple[str, ...],
        now: float,
        *,
        raised: bool,
    ) -> Operation:
        code = fs.info.code
        key = (id(code), ins.offset)
        occurrence = self._occurrences.get(key, 0)
        self._occurrences[key] = occurrence + 1
        op_id = len(self.ops)
        metadata: dict[str, Any] = {
            "start": fs.started,
            "end": now,
            "duration": now - fs.started,
            "occurrence": occurrence,
            "thread": self.thread,
            "args": self._arguments(fs, fs.callee),
        }
        if raised:
            metadata["exception"] = fs.exception
            if fs.exception is None:
                self._awaiting_exception.append(metadata)
        outputs = (
            ()
            if raised
            else (ValueRef(Source.OUTPUT, op=op_id, deps=frozenset({op_id}), value=fs.callee_result),)
        )
        control = fs.conditions()
        site = self._site(fs, ins)
        # how many times each local of the function was assigned: see CallFacts
        facts = CallFacts(code, fs.callee, False, self.unknown_calls > 0, self.effects, dict(self._live))
        self.call_facts.append(facts)
        op = Operation(op_id, op_type, name, site, inputs, outputs, kwnames, control, metadata)
        self.ops.append(op)
        return op

    @staticmethod
    def _site(fs: FrameState, ins: Instr) -> Site:
        code = fs.info.code
        line = ins.line if ins.line is not None else code.co_firstlineno
        return Site(code.co_filename, line, getattr(code, "co_qualname", code.co_name), ins.offset)

    def _record_event(
        self, fs: FrameState, ins: Instr, callee: Any, now: float, raised: bool, result: Any
    ) -> None:
        event = CallEvent(
            site=self._site(fs, ins),
            callee=callee,
            args=self._arguments(fs, callee),
            result=MISSING if raised else result,
            exception=fs.exception if raised else None,
            start=fs.started,
            end=now,
            thread=self.thread,
        )
        self.events.append(event)
        if raised and event.exception is None:
            self._awaiting_exception.append(event)


def _receiver_first(callee: Any, code: types.CodeType | None) -> bool:
    """Is the first parameter of the Python code a call entered the receiver (`self` of a bound method,
    of a callable object's `__call__`, of a class's `__init__`), not the call's first argument?

    Not when the code is the callee's own (a function) or the function a wrapper made by
    `functools.wraps`, `functools.cache` or `lru_cache` calls: those get the arguments as they are."""
    if isinstance(callee, types.FunctionType):
        return False
    wrapped = peek_attr(callee, "__wrapped__")  # read without running user code
    return not (isinstance(wrapped, types.FunctionType) and code is not None and wrapped.__code__ is code)


def _parameters(code: types.CodeType) -> tuple[tuple[str, ...], str | None, str | None]:
    """A function's positional parameter names, its *args name and its **kwargs name."""
    i = code.co_argcount + code.co_kwonlyargcount
    varargs = code.co_varnames[i] if code.co_flags & CO_VARARGS else None
    i += bool(code.co_flags & CO_VARARGS)
    varkw = code.co_varnames[i] if code.co_flags & CO_VARKEYWORDS else None
    return code.co_varnames[: code.co_argcount], varargs, varkw


def _peek(value: Any, hop: PathStep) -> Any:
    """One step of a path, on a concrete value, without running user code (else MISSING)."""
    if hop.kind == "attr":
        return peek_attr(value, hop.key)
    if hop.kind == "item":
        return peek_item(value, hop.key)
    return peek_iter_item(value, hop.key)


def _identity(ref: ValueRef) -> int:
    """Who a generator's or an iterator's ref stands for: its operands tuple, which the copies
    `with_deps` and `with_value` make (pushed under a branch, stored in a local) keep."""
    return id(ref.operands) if ref.operands else id(ref)


def _same(a: ValueRef | None, b: ValueRef) -> bool:
    return a is not None and _identity(a) == _identity(b)


def _generator_of(ref: ValueRef) -> ValueRef | None:
    """The generator expression `ref` is, or iterates (`iter(gen)`, made by a `for` loop over it)."""
    if ref.source is Source.EXPR and ref.kind is ExprKind.ITER and len(ref.operands) == 1:
        ref = ref.operands[0]
    if ref.source is Source.EXPR and ref.kind is ExprKind.GENEXPR:
        return ref
    return None


def _made_code(ref: ValueRef) -> types.CodeType | None:
    """The code object of a function made by MAKE_FUNCTION in the observed code, if `ref` is one."""
    if ref.source is Source.EXPR and ref.kind is ExprKind.MAKE_FUNCTION:
        for operand in ref.operands:
            if isinstance(operand.value, types.CodeType):
                return operand.value
    return None


# -- per-opcode handlers ---------------------------------------------------------------------------


def _h_load_fast(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    names = ins.argval if isinstance(ins.argval, tuple) else (ins.argval,)
    for name in names:
        fs.push(b._load_local(fs, str(name)))


def _h_load_fast_and_clear(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    name = str(ins.argval)
    ref = fs.locals.pop(name, None)
    fs.push(ref if ref is not None else NULL)


def _h_store_fast(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    names = ins.argval if isinstance(ins.argval, tuple) else (ins.argval,)
    if ins.opname == "STORE_FAST_LOAD_FAST":
        b._store_local(fs, str(names[0]), fs.pop(1)[0])
        fs.push(b._load_local(fs, str(names[1])))
        return
    for name in names:
        b._store_local(fs, str(name), fs.pop(1)[0])


def _h_delete_fast(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    fs.locals.pop(str(ins.argval), None)
    if fs is b._root:
        b._live[str(ins.argval)] = -1  # never the count of an assignment a recipe reads


def _single_stores(info: CodeInfo) -> frozenset[str]:
    """Locals the code assigns at exactly one instruction and never deletes: after that instruction has
    run k times, the local holds what its k-th run stored (the assignments a replay may read)."""
    stores: dict[str, int] = {}
    deleted = set()
    for ins in info.instrs.values():
        if ins.opname.startswith("STORE_FAST"):
            names = ins.argval if isinstance(ins.argval, tuple) else (ins.argval,)
            for name in names[:1] if ins.opname == "STORE_FAST_LOAD_FAST" else names:
                stores[str(name)] = stores.get(str(name), 0) + 1
        elif ins.opname == "DELETE_FAST":
            deleted.add(str(ins.argval))
    return frozenset(name for name, n in stores.items() if n == 1 and name not in deleted)


def _h_load_name(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    name = str(ins.argval)
    if name in fs.locals or not fs.is_module:
        fs.push(b._load_local(fs, name))
    else:
        fs.push(b._load_global(fs, name))


def _h_load_global(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    name = ins.argval[1] if isinstance(ins.argval, tuple) else ins.argval
    with_null = ins.pushes == 2
    ref = b._load_global(fs, str(name))
    if with_null and not PY313:
        fs.push(NULL)
    fs.push(ref)
    if with_null and PY313:
        fs.push(NULL)


def _h_load_const(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    fs.push(const(ins.argval))


def _h_push_null(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    fs.stack.append(NULL)


def _h_load_attr(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    (obj,) = fs.pop(1)
    name = ins.argval[1] if isinstance(ins.argval, tuple) else ins.argval
    name = str(name)
    attr = b._lookup(step(obj, "attr", name, peek_attr(obj.value, name)))
    if ins.pushes == 2:  # method form: [method, self]
        fs.push(attr)
        fs.push(ValueRef(Source.CONST, name=_SELF, operands=(obj,), deps=obj.deps))
    else:
        fs.push(attr)


def _h_binary_subscr(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    container, key = fs.pop(2)
    value = peek_item(container.value, key.value)
    # `xs[k]` on a list built here is its k-th operand only when k is the same in every run: a key read
    # from the inputs (`labels[i]`, i from `order`) is kept as getitem(xs, i), which follows it
    if _positional(container) and isinstance(key.value, int) and _fixed(key) and not key.deps:
        index = key.value
        if -len(container.operands) <= index < len(container.operands):
            fs.push(with_value(container.operands[index], value))
            return
    entry = _dict_entry(container, key)
    if entry is not None:
        fs.push(with_value(entry, value))
    elif key.source is Source.CONST and not key.deps:
        fs.push(b._lookup(step(container, "item", key.value, value)))
    else:
        fs.push(b._lookup(expr(ExprKind.GETITEM, (container, key), value)))


def _h_set_function_attribute(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    """3.13 gives a function MAKE_FUNCTION made its closure (defaults, ...) in an instruction of its own:
    it is still the function made here (a generator expression over a closure variable stays one)."""
    attribute, function = fs.pop(2)
    if function.source is Source.EXPR and function.kind is ExprKind.MAKE_FUNCTION:
        fs.push(expr(ExprKind.MAKE_FUNCTION, (*function.operands, attribute)))
    else:
        fs.push(expr(ExprKind.SET_FUNCTION_ATTRIBUTE, (attribute, function)))


def _positional(ref: ValueRef) -> bool:
    """Is `ref` a list or tuple built here whose k-th operand is its k-th item (no `*xs` kept whole)?"""
    return (
        ref.source is Source.EXPR
        and ref.kind in (ExprKind.LIST, ExprKind.TUPLE)
        and not any(_splat(operand) for operand in ref.operands)
    )


def _splat(ref: ValueRef) -> bool:
    """An operand of a display that stands for all the items of an iterable: `*xs`, `**kw`."""
    return ref.source is Source.EXPR and ref.kind is ExprKind.UNPACK


def _fixed(ref: ValueRef) -> bool:
    """Does `ref` have the same value in every run that reaches it: a literal or a loop counter (not a
    value read from the inputs, globals, cells or results, nor computed from one)?"""
    return ref.source is Source.CONST and not ref.operands and ref.name != _SELF


def _key_deps(ref: ValueRef) -> frozenset[int]:
    """For a set or dict built here, what its items' (keys') values depend on: equal ones collapse, so
    its size depends on them too. (Nothing for a list or tuple.)"""
    pairs = ref.operands
    if ref.kind is ExprKind.DICT and len(pairs) % 2 == 0 and not any(_splat(operand) for operand in pairs):
        return union(key.deps for key in pairs[::2])
    return ref.deps if ref.kind in (ExprKind.SET, ExprKind.DICT) else frozenset()


def _constant_keys(ref: ValueRef) -> bool:
    """Is `ref` a dict display built here whose operands are its (constant key, value) pairs?"""
    if ref.source is not Source.EXPR or ref.kind is not ExprKind.DICT or len(ref.operands) % 2:
        return False
    pairs = ref.operands
    return not any(_splat(operand) for operand in pairs) and all(
        key.source is Source.CONST and not key.operands and not key.deps for key in pairs[::2]
    )


def _dict_entry(container: ValueRef, key: ValueRef) -> ValueRef | None:
    """`{"a": x}["a"]` is `x`, for a dict built here with constant keys (operands: key, value pairs)."""
    if (
        container.source is not Source.EXPR
        or container.kind is not ExprKind.DICT
        or key.source is not Source.CONST
    ):
        return None
    if any(_splat(operand) for operand in container.operands):
        return None  # `{**kw, "a": x}`: the pairs are not the operands
    pairs = container.operands
    if len(pairs) % 2 or any(k.source is not Source.CONST for k in pairs[::2]):
        return None
    found = None
    for k, v in zip(pairs[::2], pairs[1::2], strict=True):
        if type(k.value) is type(key.value) and k.value == key.value:
            found = v  # the last one wins, as in a display
    return found


def _h_build_const_key_map(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    *values, keys = fs.pop(ins.pops)
    names = keys.value if isinstance(keys.value, tuple) else ()
    if len(names) != len(values):
        fs.push(b._set_shape(expr(ExprKind.DICT, (*values, keys)), fs.control_deps))
        return
    pairs = [ref for name, value in zip(names, values, strict=True) for ref in (const(name), value)]
    fs.push(b._set_shape(expr(ExprKind.DICT, pairs), fs.control_deps))


def _h_store_attr(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    value, obj = fs.pop(2)  # TOS is the object, TOS1 the value (popped bottom first)
    b._retain(value)
    b._mutate(obj.value, b._lookup(obj), obj.deps | value.deps | fs.control_deps)


def _h_store_subscr(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    value, container, key = fs.pop(3)
    b._retain(value)
    b._mutate(container.value, b._lookup(container), container.deps | value.deps | key.deps | fs.control_deps)


def _h_store_slice(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    """3.12+ `xs[i:j] = value` changes `xs` in place, as STORE_SUBSCR with a slice does on 3.10/3.11."""
    value, container, start, stop = fs.pop(4)
    deps = container.deps | value.deps | start.deps | stop.deps | fs.control_deps
    b._retain(value)
    b._mutate(container.value, b._lookup(container), deps)


def _h_binary_slice(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    """3.12+ `xs[i:j]`: a pure subscript of the container by a slice (which `plan` can evaluate)."""
    fs.push(expr(ExprKind.BINARY_SLICE, fs.pop(3)))


def _h_store_global(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    (value,) = fs.pop(1)
    b._store_global(fs, str(ins.argval), value)


def _h_delete_global(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    b._store_global(fs, str(ins.argval), None)


def _h_delete_attr(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    (obj,) = fs.pop(1)
    b._mutate(obj.value, b._lookup(obj), obj.deps | fs.control_deps)


def _h_delete_subscr(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    container, key = fs.pop(2)
    b._mutate(container.value, b._lookup(container), container.deps | key.deps | fs.control_deps)


def _h_build(kind: ExprKind) -> Any:
    def handler(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
        ref = expr(kind, fs.pop(ins.pops))
        fs.push(b._set_shape(ref, fs.control_deps) if kind in _CONTAINERS else ref)

    return handler


def _h_container_add(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    """LIST_APPEND/SET_ADD/MAP_ADD/LIST_EXTEND/...: add the popped items to the container `arg` deep."""
    items = fs.pop(2 if ins.opname == "MAP_ADD" else 1)  # codeinfo counts the container as re-pushed
    shape: frozenset[int] = frozenset()  # what the number of items added depends on
    depth = int(ins.arg or 1)
    index = len(fs.stack) - depth
    if index < 0:
        return
    target = fs.stack[index]
    if (
        ins.opname in ("LIST_EXTEND", "SET_UPDATE")
        and items
        and items[0].source is Source.CONST
        and isinstance(items[0].value, (tuple, frozenset))
    ):
        items = [const(v) for v in items[0].value]
    elif ins.opname in ("LIST_EXTEND", "SET_UPDATE") and items:
        spread = _spread(b, fs, ins, items[0])
        if spread is None:  # kept whole: the display's items are no longer its operands (see _positional)
            shape, items = items[0].deps, [expr(ExprKind.UNPACK, items)]
        else:
            shape, items = spread
    elif ins.opname in ("DICT_UPDATE", "DICT_MERGE") and items and _constant_keys(items[0]):
        # `f(**{"t": 1})`, `{**{"a": x}}`: the display's own pairs; with constant keys, as many every run
        items = list(items[0].operands)
    elif ins.opname in ("DICT_UPDATE", "DICT_MERGE"):
        shape, items = union(ref.deps for ref in items), [expr(ExprKind.UNPACK, items)]
    kind = (
        target.kind
        if target.source is Source.EXPR and target.kind in (ExprKind.LIST, ExprKind.SET, ExprKind.DICT)
        else ExprKind.EFFECT
    )
    if kind is ExprKind.EFFECT:
        new = expr(ExprKind.EFFECT, (target, *items))
    else:  # grown by the items: its deps and theirs, not a union over every item again (n^2 for n)
        new = expr(kind, (*target.operands, *items), deps=target.deps | union(item.deps for item in items))
    b._set_shape(new, b._shape_deps(target) | shape | fs.control_deps)
    b._forget_shape(target)  # the container is on the stack only: the old ref is gone
    fs.stack[index] = with_deps(new, fs.control_deps)


def _spread(
    b: GraphBuilder, fs: FrameState, ins: Instr, ref: ValueRef
) -> tuple[frozenset[int], list[ValueRef]] | None:
    """`[*ref]`: what its length depends on and a ref per item, when we can name them (else None).

    The items of a list or tuple built here are its operands; those of a list, tuple or str read from
    an input, global or cell are paths into it, and their number becomes a guard, as for a loop over it.
    """
    if _positional(ref):
        return b._shape_deps(ref), list(ref.operands)
    value = ref.value
    if ref.deps or ref.source not in (Source.INPUT, Source.GLOBAL, Source.CELL):
        return None
    if type(value) not in (list, tuple, str):
        return None
    b.decisions.append(Decision(DecisionKind.LENGTH, ref, len(value), len(b.ops), b._site(fs, ins)))
    return frozenset(), [b._lookup(step(ref, "iter", i, item)) for i, item in enumerate(value)]


def _h_call_intrinsic_1(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    """3.12+ CALL_INTRINSIC_1: `(*xs,)` and unary `+` are modelled; the others (an import *, a type
    parameter, print in the REPL, a generator's StopIteration) are not."""
    intrinsic = str(ins.argval)
    if "LIST_TO_TUPLE" in intrinsic:
        _h_list_to_tuple(b, fs, ins, jumped)
    elif "UNARY_POSITIVE" in intrinsic:
        fs.push(expr(ExprKind.POS, fs.pop(1)))
    else:
        _h_conservative(b, fs, ins, jumped)


def _h_list_to_tuple(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    (ref,) = fs.pop(1)
    if ref.source is Source.EXPR and ref.kind is ExprKind.LIST:
        fs.push(b._set_shape(expr(ExprKind.TUPLE, ref.operands), b._shape_deps(ref)))
    else:
        fs.push(expr(ExprKind.TUPLE, (ref,)))


def _h_unpack_sequence(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    (ref,) = fs.pop(1)
    n = int(ins.arg or 0)
    if _positional(ref) and len(ref.operands) == n:
        items = list(ref.operands)
    else:
        items = [b._lookup(step(ref, "item", i, peek_item(ref.value, i))) for i in range(n)]
    for item in reversed(items):
        fs.push(item)


def _h_get_iter(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    (ref,) = fs.pop(1)
    it = expr(ExprKind.ITER, (ref,))
    state = _LoopState(it, ref, len(b.ops))
    state.watched = b._snapshot(fs, (ref, *_lockstep(ref)[1]))
    b._iters[_identity(it)] = state  # popped when the loop runs out
    fs.push(it)


def _h_for_iter(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    (it,) = fs.pop(1)
    state = b._iters.get(_identity(it))
    if state is not None and state.iterator.operands is not it.operands:
        state = None
    iterable = state.iterable if state is not None else it
    # whether there is another item depends on the iterable's length, not on its items' values
    b._branch(fs, ins, ValueRef(Source.EXPR, kind=ExprKind.LEN, deps=b._shape_deps(iterable)))
    if jumped:
        b._iters.pop(_identity(it), None)
        # a list or tuple built here has the length earlier decisions gave it (a `*xs` in it is spread
        # into its items, under a guard, or kept whole, see _spread)
        built = _positional(iterable)
        # (recorded even under a branch on a result, e.g. a `break` that was not taken: a length
        # guard can only make a plan apply less often)
        if state is not None and b._changed(state.watched):
            # what it walked changed in place under it (`items.pop()` in its body): its length when the
            # run is over says nothing of how many rounds it made, so nothing from it on is issued ahead
            site = b._site(fs, ins)
            b.decisions.append(Decision(DecisionKind.CHANGED, None, True, state.ops_before, site))
        elif state is not None and not iterable.deps and not built:
            # anything else is a guard (on the sequences themselves when enumerate() or zip() walked
            # them), a set or dict built here too: equal items collapse
            sequences = tuple(_lockstep(iterable)[1] or [iterable])
            own = tuple(range(len(b.decisions), len(b.decisions) + len(sequences)))
            b._record_loop(fs, ins, state, sequences, own)
        elif state is not None and built and not b._shape_deps(iterable):
            # a list built here (by an earlier loop, say) is as long as it was built: no guard
            b._record_loop(fs, ins, state, (), ())
        for _ in range(ins.jump_pushes):
            fs.push(NULL)
        return
    fs.push(it)
    if state is None:
        fs.push(unknown(len(b.ops)))
        return
    index = len(state.op_starts)
    state.op_starts.append(len(b.ops))
    state.decision_starts.append(len(b.decisions))
    if _positional(iterable) and index < len(iterable.operands):
        item = iterable.operands[index]
    elif iterable.source is Source.EXPR and iterable.kind is ExprKind.GENEXPR:
        item = unknown(len(b.ops))
    else:
        item = _lockstep_item(b, iterable, index) or b._lookup(
            step(iterable, "iter", index, peek_iter_item(iterable.value, index))
        )
    fs.push(item)


_KEYWORDS: dict[Any, tuple[str, ...]] = {zip: ("strict",), enumerate: ("start",)}


def _lockstep(iterable: ValueRef) -> tuple[Any, list[ValueRef]]:
    """For `enumerate(xs)`, `zip(a, b)`, `reversed(xs)` and `range(...)` called in the code: the builtin
    and the sequences it walks."""
    if (
        iterable.source is Source.EXPR
        and iterable.kind in (ExprKind.CALL, ExprKind.CALL_KW)
        and iterable.operands
    ):
        callee, *args = iterable.operands
        if iterable.kind is ExprKind.CALL_KW:  # zip(a, b, strict=True), enumerate(xs, start=1)
            names = args.pop().value if args else ()
            if tuple(names) != _KEYWORDS.get(callee.value):
                return None, []
            args = args[:-1]
        callee = callee.value
        if iterable.path or not args:
            return None, []
        if callee in (enumerate, reversed):
            return callee, args[:1]
        if callee is zip:
            return callee, args
        if callee is range:
            return callee, []
    return None, []


def _enumerate_start(iterable: ValueRef) -> int | None:
    """The `start` of `enumerate(xs, start)` or `enumerate(xs, start=k)`: 0 when absent, None when it is
    not a constant (a counter from the inputs is not a fixed item of each round)."""
    operands = iterable.operands[2:-1] if iterable.kind is ExprKind.CALL_KW else iterable.operands[2:]
    if not operands:
        return 0
    start = operands[0]
    return start.value if start.source is Source.CONST and type(start.value) is int else None


def _lockstep_item(b: GraphBuilder, iterable: ValueRef, index: int) -> ValueRef | None:
    """The index-th item of `enumerate(xs)` is `(index, xs[index])`; of `zip(a, b)`, `(a[index], b[index])`;
    of `range(...)`, a constant: precise paths instead of "the index-th thing an iterator gave"."""
    kind, sequences = _lockstep(iterable)
    if kind is range:
        bounds = iterable.operands[1:]
        if len(bounds) > 1 and not all(_fixed(ref) for ref in (bounds[0], *bounds[2:])):
            return None  # range(start, ...) with a start or step from the inputs: item k is not a constant
        value = peek_iter_item(iterable.value, index) if iterable.value is not MISSING else MISSING
        return with_deps(index_const(value), iterable.deps) if isinstance(value, int) else None
    if kind is None:
        return None
    if kind is reversed:  # item k is xs[-1 - k], for a list, tuple, range or str (else no path)
        (seq,) = sequences
        if type(seq.value) not in (list, tuple, range, str) or index >= len(seq.value):
            return None
        return b._lookup(step(seq, "item", -1 - index, seq.value[-1 - index]))
    items = [b._lookup(step(seq, "iter", index, peek_iter_item(seq.value, index))) for seq in sequences]
    if kind is enumerate:
        start = _enumerate_start(iterable)
        if start is None:
            return None
        items.insert(0, index_const(start + index))
    return expr(ExprKind.TUPLE, items)


def _h_cond_jump(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    (cond,) = fs.pop(1)
    b._branch(fs, ins, cond, _outcome(ins.opname, jumped))


def _outcome(opname: str, jumped: bool) -> tuple[DecisionKind, bool]:
    """What the condition was, from the jump taken: (TRUTH, bool(cond)) or (NONE, cond is None)."""
    on_true = "TRUE" in opname and "NOT_NONE" not in opname
    if "NONE" in opname:
        return (DecisionKind.NONE, jumped if "NOT_NONE" not in opname else not jumped)
    return (DecisionKind.TRUTH, jumped if on_true else not jumped)


def _h_jump_or_pop(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    cond = fs.stack[-1] if fs.stack else unknown(len(b.ops))
    b._branch(fs, ins, cond, _outcome(ins.opname, jumped))
    if not jumped:
        fs.pop(1)


def _h_nop(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    """Instructions that only drop values (POP_TOP, END_FOR) or do nothing to the stack."""
    pops, pushes = (ins.jump_pops, ins.jump_pushes) if jumped else (ins.pops, ins.pushes)
    if pops != pushes:
        fs.pop(pops - pushes) if pops > pushes else fs.stack.extend([NULL] * (pushes - pops))


def _h_precall(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    """3.11 PRECALL takes the arguments off the stack as far as depths go; the CALL after it uses them."""
    fs.precall = tuple(fs.pop(ins.pops))


def _h_kw_names(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    # 3.11's dis does not resolve KW_NAMES' argument: it indexes co_consts
    names = ins.argval if isinstance(ins.argval, tuple) else fs.info.code.co_consts[int(ins.arg or 0)]
    fs.kwnames = tuple(names) if isinstance(names, tuple) else ()


def _h_copy(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    n = 1 if ins.opname == "DUP_TOP" else int(ins.arg or 1)
    if ins.opname == "DUP_TOP_TWO":
        fs.stack.extend(fs.stack[-2:])
        return
    fs.stack.append(fs.stack[-n] if len(fs.stack) >= n else unknown(len(b.ops)))


def _h_swap(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    s = fs.stack
    if ins.opname == "SWAP":
        n = int(ins.arg or 2)
        if len(s) >= n:
            s[-1], s[-n] = s[-n], s[-1]
        return
    n = {"ROT_TWO": 2, "ROT_THREE": 3, "ROT_FOUR": 4}.get(ins.opname, int(ins.arg or 2))
    if len(s) >= n:  # ROT_n: TOS moves down to position n
        s[-n:] = [s[-1], *s[-n:-1]]


def _h_format(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    operands = fs.pop(ins.pops)
    if ins.opname == "FORMAT_VALUE" and operands:  # 3.10-3.12: `!s`, `!r`, `!a` are in its argument
        operands[0] = _converted(operands[0], (ins.arg or 0) & 0x03)
    fs.push(expr(ExprKind.FORMAT, operands))


def _h_convert(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    """3.13 CONVERT_VALUE: `!s`, `!r`, `!a` before FORMAT_SIMPLE / FORMAT_WITH_SPEC."""
    (ref,) = fs.pop(1)
    fs.push(_converted(ref, ins.arg or 0))


def _converted(ref: ValueRef, conversion: int) -> ValueRef:
    """`ref` after an f-string conversion: str(), repr() or ascii() of it (calls `plan` can evaluate)."""
    convert = {1: str, 2: repr, 3: ascii}.get(conversion)
    return expr(ExprKind.CALL, (const(convert), ref)) if convert is not None else ref


def _h_binary_op(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    kind = _BINARY_3_10.get(ins.opname) or _binary_op_symbol(ins.arg)
    operands = fs.pop(ins.pops)
    target = operands[0] if operands else NULL
    if kind.in_place and target.value is not MISSING and not purity.is_immutable(target.value):
        # `xs += ys` changes the list xs in place (and any object whose `+=` is its own method may)
        base, rest = b._lookup(target), operands[1:]
        new = expr(ExprKind.EFFECT, (base, *rest), value=target.value)
        pair = (
            (base, rest[0]) if kind is ExprKind.IADD and base.kind is ExprKind.LIST and len(rest) == 1 else ()
        )
        if pair and all(_positional(ref) for ref in pair):  # both built here: still a list of known items
            new = expr(ExprKind.LIST, (*base.operands, *rest[0].operands), value=target.value)
            b._set_shape(new, b._shape_deps(base) | b._shape_deps(rest[0]) | fs.control_deps)
        new = with_deps(new, fs.control_deps)
        fs.push(b._mutate(target.value, base, new.deps, new))
        return
    if kind.in_place and target.value is not MISSING:
        kind = kind.plain()  # `n += 1` on an immutable value (an int, a str) is `n + 1`: no method of its own
    fs.push(expr(kind, operands))


def _h_compare(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    """COMPARE_OP / IS_OP / CONTAINS_OP as the operator they compute: `a < b`, `a is not b`, `a in b`."""
    if ins.opname == "IS_OP":
        kind = ExprKind.IS_NOT if ins.arg else ExprKind.IS
    elif ins.opname == "CONTAINS_OP":
        kind = ExprKind.NOT_IN if ins.arg else ExprKind.IN
    else:
        kind = _COMPARISONS.get(str(ins.argval), ExprKind.COMPARE_OP)
    fs.push(expr(kind, fs.pop(ins.pops)))


def _h_unary(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    (ref,) = fs.pop(1)
    kind = {
        "UNARY_NOT": ExprKind.NOT,
        "UNARY_NEGATIVE": ExprKind.NEG,
        "UNARY_INVERT": ExprKind.INVERT,
        "UNARY_POSITIVE": ExprKind.POS,
    }[ins.opname]
    fs.push(expr(kind, (ref,)))


def _binary_op_symbol(arg: int | None) -> ExprKind:
    """BINARY_OP's operator (`+`, `%=`, ...) from its argument (3.11+)."""
    names = getattr(dis, "_nb_ops", ())
    symbol = str(names[arg][1]) if arg is not None and 0 <= arg < len(names) else ""
    return _OPERATOR_SYMBOLS.get(symbol, ExprKind.BINARY_OP)


def _h_pure_expression(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    """An instruction whose results are a pure expression of its operands (named after the opcode):
    MAKE_FUNCTION, LOAD_CLOSURE, exception bookkeeping while a handler runs (which runs under the
    raise's control dependence, see `_unwind`)."""
    popped = fs.pop(ins.jump_pops if jumped else ins.pops)
    pushes = ins.jump_pushes if jumped else ins.pushes
    if pushes:
        result = expr(ExprKind(ins.opname.lower()), [r for r in popped if r is not EXC])
        for _ in range(pushes):
            fs.push(result)


def _h_conservative(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    """An instruction we do not model: see `GraphBuilder._unmodelled`."""
    popped = fs.pop(ins.jump_pops if jumped else ins.pops)
    result = b._unmodelled(popped)
    for _ in range(ins.jump_pushes if jumped else ins.pushes):
        fs.push(result)


def _h_return(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    ref = const(ins.argval) if ins.opname == "RETURN_CONST" else (fs.pop(1) or [unknown(len(b.ops))])[0]
    parent = b._frames.get(fs.frame.f_back) if fs.frame.f_back is not None else None
    if fs is not b._root and fs.info.code.co_flags & inspect.CO_GENERATOR:
        return  # a generator expression's return value is not what its consumer (traced or not) returns
    if parent is not None and parent.pending is not None:
        parent.child_return = ref
    if fs.frame.f_back is not None and parent is None and b._root_return is None:
        b._root_return = ref


def _h_yield(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    fs.pop(1)  # recorded when the instruction started (see `instruction`)
    for _ in range(ins.pushes):
        fs.push(const(None))


_HANDLERS: dict[str, Any] = {
    "LOAD_FAST": _h_load_fast,
    "LOAD_FAST_CHECK": _h_load_fast,
    "LOAD_FAST_LOAD_FAST": _h_load_fast,
    "LOAD_DEREF": _h_load_fast,
    "LOAD_CLASSDEREF": _h_load_fast,
    "LOAD_FAST_AND_CLEAR": _h_load_fast_and_clear,
    "STORE_FAST": _h_store_fast,
    "STORE_FAST_STORE_FAST": _h_store_fast,
    "STORE_FAST_LOAD_FAST": _h_store_fast,
    "STORE_DEREF": _h_store_fast,
    "STORE_NAME": _h_store_fast,
    "DELETE_FAST": _h_delete_fast,
    "DELETE_DEREF": _h_delete_fast,
    "DELETE_NAME": _h_delete_fast,
    "LOAD_NAME": _h_load_name,
    "LOAD_GLOBAL": _h_load_global,
    "LOAD_CONST": _h_load_const,
    "PUSH_NULL": _h_push_null,
    "LOAD_ATTR": _h_load_attr,
    "LOAD_METHOD": _h_load_attr,
    "BINARY_SUBSCR": _h_binary_subscr,
    "STORE_ATTR": _h_store_attr,
    "SET_FUNCTION_ATTRIBUTE": _h_set_function_attribute,
    "DELETE_ATTR": _h_delete_attr,
    "STORE_SUBSCR": _h_store_subscr,
    "DELETE_SUBSCR": _h_delete_subscr,
    "STORE_SLICE": _h_store_slice,
    "BINARY_SLICE": _h_binary_slice,
    "STORE_GLOBAL": _h_store_global,
    "DELETE_GLOBAL": _h_delete_global,
    "STORE_FAST_MAYBE_NULL": _h_store_fast,  # a pseudo-instruction (3.12+): assembled to STORE_FAST
    "BUILD_LIST": _h_build(ExprKind.LIST),
    "BUILD_TUPLE": _h_build(ExprKind.TUPLE),
    "BUILD_SET": _h_build(ExprKind.SET),
    "BUILD_MAP": _h_build(ExprKind.DICT),
    "BUILD_CONST_KEY_MAP": _h_build_const_key_map,
    "BUILD_STRING": _h_build(ExprKind.FSTRING),
    "BUILD_SLICE": _h_build(ExprKind.SLICE),
    "LIST_APPEND": _h_container_add,
    "SET_ADD": _h_container_add,
    "MAP_ADD": _h_container_add,
    "LIST_EXTEND": _h_container_add,
    "SET_UPDATE": _h_container_add,
    "DICT_UPDATE": _h_container_add,
    "DICT_MERGE": _h_container_add,
    "LIST_TO_TUPLE": _h_list_to_tuple,
    "CALL_INTRINSIC_1": _h_call_intrinsic_1,
    "UNPACK_SEQUENCE": _h_unpack_sequence,
    "GET_ITER": _h_get_iter,
    "FOR_ITER": _h_for_iter,
    "JUMP_IF_TRUE_OR_POP": _h_jump_or_pop,
    "JUMP_IF_FALSE_OR_POP": _h_jump_or_pop,
    "KW_NAMES": _h_kw_names,
    "COPY": _h_copy,
    "DUP_TOP": _h_copy,
    "DUP_TOP_TWO": _h_copy,
    "SWAP": _h_swap,
    "ROT_TWO": _h_swap,
    "ROT_THREE": _h_swap,
    "ROT_FOUR": _h_swap,
    "ROT_N": _h_swap,
    "FORMAT_VALUE": _h_format,
    "FORMAT_SIMPLE": _h_format,
    "FORMAT_WITH_SPEC": _h_format,
    "CONVERT_VALUE": _h_convert,  # 3.13 splits `!r` off FORMAT_SIMPLE; before, FORMAT_VALUE did both at once
    "BINARY_OP": _h_binary_op,
    "COMPARE_OP": _h_compare,
    "IS_OP": _h_compare,
    "CONTAINS_OP": _h_compare,
    "UNARY_NOT": _h_unary,
    "UNARY_NEGATIVE": _h_unary,
    "UNARY_INVERT": _h_unary,
    "UNARY_POSITIVE": _h_unary,
    "TO_BOOL": _h_nop,  # 3.13 makes truth tests explicit; the value's truth is the same
    "RETURN_VALUE": _h_return,
    "RETURN_CONST": _h_return,
    "YIELD_VALUE": _h_yield,
    "POP_TOP": _h_nop,
    "END_FOR": _h_nop,
    "NOP": _h_nop,
    "RESUME": _h_nop,
    "PRECALL": _h_precall,
    "CACHE": _h_nop,
    "EXTENDED_ARG": _h_nop,
    "JUMP_FORWARD": _h_nop,
    "JUMP_BACKWARD": _h_nop,
    "JUMP_ABSOLUTE": _h_nop,
    "JUMP_BACKWARD_NO_INTERRUPT": _h_nop,
    "JUMP": _h_nop,
    "JUMP_NO_INTERRUPT": _h_nop,  # a pseudo-instruction (3.12+)
    # no stack effect beyond dropping what they pop: block setup, cells, leaving by an exception
    "SETUP_FINALLY": _h_nop,
    "SETUP_CLEANUP": _h_nop,
    "POP_BLOCK": _h_nop,
    "POP_EXCEPT": _h_nop,
    "GEN_START": _h_nop,
    "MAKE_CELL": _h_nop,
    "COPY_FREE_VARS": _h_nop,
    "RAISE_VARARGS": _h_nop,
    "RERAISE": _h_nop,
    # pure expressions of their operands
    "MAKE_FUNCTION": _h_pure_expression,
    "LOAD_CLOSURE": _h_pure_expression,
    "LOAD_ASSERTION_ERROR": _h_pure_expression,
    "UNPACK_EX": _h_pure_expression,  # every target is an expression of the sequence (not a path)
    "RETURN_GENERATOR": _h_pure_expression,  # the value a generator is first resumed with
    "PUSH_EXC_INFO": _h_pure_expression,
    "CHECK_EXC_MATCH": _h_pure_expression,
    "JUMP_IF_NOT_EXC_MATCH": _h_pure_expression,
}
for _name in _COND_POP_JUMPS:
    _HANDLERS[_name] = _h_cond_jump
for _name in _BINARY_3_10:
    _HANDLERS[_name] = _h_binary_op
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
`GraphBuilder._unmodelled`).  So is any opcode in no list (a new version's): conservative by default."""


def decision(opname: str) -> str | None:
    """How the builder treats an opcode: "handler", "call", "conservative", or None if undecided."""
    if opname in _HANDLERS:
        return "handler"
    if opname in CALL_OPS:
        return "call"
    return "conservative" if opname in CONSERVATIVE else None


# Instructions whose time is never a slow step of their own (their time is the user's code between
# events, e.g. a generator's body, or ours).
# Instructions that run no user code: when one of them takes long, a collection or another thread
# took the time (and YIELD/RETURN time is the consumer's). Only the others can be slow steps.
_NEVER_SLOW = frozenset(
    """RESUME YIELD_VALUE RETURN_VALUE RETURN_CONST RETURN_GENERATOR NOP LOAD_CONST LOAD_FAST LOAD_FAST_CHECK
    LOAD_FAST_AND_CLEAR LOAD_FAST_LOAD_FAST STORE_FAST STORE_FAST_STORE_FAST STORE_FAST_LOAD_FAST DELETE_FAST
    LOAD_DEREF STORE_DEREF LOAD_CLOSURE MAKE_CELL COPY_FREE_VARS POP_TOP PUSH_NULL COPY SWAP DUP_TOP
    DUP_TOP_TWO ROT_TWO ROT_THREE ROT_FOUR ROT_N KW_NAMES PRECALL EXTENDED_ARG CACHE JUMP_FORWARD
    JUMP_BACKWARD JUMP_ABSOLUTE JUMP_BACKWARD_NO_INTERRUPT JUMP END_FOR BUILD_TUPLE BUILD_LIST BUILD_STRING
    BUILD_SLICE LIST_APPEND LIST_EXTEND LIST_TO_TUPLE UNPACK_SEQUENCE POP_BLOCK POP_EXCEPT PUSH_EXC_INFO
    SETUP_FINALLY GEN_START""".split()
)
_EMPTIES: tuple[Any, ...] = ("", b"", [], (), {}, set(), range(0), {}.keys(), {}.values(), {}.items())
_STORES = frozenset({"STORE_NAME", "STORE_GLOBAL", "DELETE_NAME", "DELETE_GLOBAL"})  # into a namespace dict
# Values whose operators, attributes, items, iteration and formatting run no user code.
_PLAIN_TYPES: frozenset[type] = frozenset(
    {str, bytes, bytearray, int, float, complex, bool, type(None), list, tuple, dict, set, frozenset}
    | {range, slice, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type}
    | {type(iter(empty)) for empty in _EMPTIES}
    | {type({}.keys()), type({}.values()), type({}.items())}
)


def _may_run_user_code(fs: FrameState, ins: Instr, jumped: bool) -> bool:
    """Can this instruction, on the values it takes, run code of the user's (a property, `__getitem__`,
    `__next__` of a generator, an operator or `__format__` of a user class)?  Only such an instruction
    is a slow step of its own: when another one takes long, a collection, another thread or the tracer
    took the time (under load, a `LOAD_GLOBAL` can take milliseconds).  Elements of a container are not
    looked into (`==` of two lists may call their items' `__eq__`: no API call hides there).  Of a
    value the builder holds no object for, only one a helper not known to be pure made may be anything;
    missing a slow step there costs no correctness (recipes never run user code), only a report line."""
    if ins.opname in _NEVER_SLOW or ins.opname in _STORES:
        return False
    taken = ins.jump_pops if jumped else ins.pops
    if taken == 0 or taken > len(fs.stack):
        return False  # it reads no value (LOAD_GLOBAL, LOAD_NAME, ...): no user code of a value runs
    operands = [ref for ref in fs.stack[len(fs.stack) - taken :] if ref is not NULL and ref is not EXC]
    if ins.opname in ("LOAD_ATTR", "LOAD_METHOD") and operands and operands[-1].value is not MISSING:
        return peek_attr(operands[-1].value, str(ins.argval)) is MISSING  # a plain attribute runs none
    return any(
        ref.source is Source.UNKNOWN if ref.value is MISSING else type(ref.value) not in _PLAIN_TYPES
        for ref in operands
    )


def _plain_builtin(callee: Any) -> bool:
    """A built-in method of a plain value (`list.append`, `str.join`) or a pure built-in (`len`): it
    does no IO and runs no user code of its own, so its time is never a slow call's (with
    `min_call_ms=0`, every call is an operation all the same)."""
    if not isinstance(callee, types.BuiltinMethodType):  # (built-in functions are of this type too)
        return False
    owner = getattr(callee, "__self__", None)
    if isinstance(owner, types.ModuleType):
        return owner is builtins and purity.classify(callee) is purity.Effect.PURE
    return type(owner) in _PLAIN_TYPES


# A slow step that is not a call is counted from 1 ms even with min_call_ms=0 (every instruction
# takes *some* time; only calls are meant to become operations at any duration).
_IMPLICIT_MIN_S = 0.001

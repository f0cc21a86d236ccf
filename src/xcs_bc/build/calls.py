"""Calls: completing a call instruction, from the observed callee, arguments and result.

`Calls` is a part of `GraphBuilder` (a base class of it).  A call that took `min_call_ms` or more
is an operation of the graph (a slow call); a fast one is a pure expression of its operands, or,
for a callee not known to be pure, an UNKNOWN result that may have changed what it was handed.
The 3.11 PRECALL and KW_NAMES handlers, which prepare the CALL after them, are here too.
"""

from __future__ import annotations

import inspect
import types
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from xcs_bc._compat import (
    CO_VARARGS,
    CO_VARKEYWORDS,
    PY311,
    PY312,
    PY313,
)
from xcs_bc.build import purity
from xcs_bc.build.codeinfo import COND_POP_JUMPS, Instr, in_loop
from xcs_bc.build.effects import Effects, Watched
from xcs_bc.build.frames import FrameState
from xcs_bc.build.generators import Listed, identity, items_of, made_code, takes_all
from xcs_bc.build.loopshape import handled_out, while_heads
from xcs_bc.build.slow import plain_builtin, reads_callers_frame
from xcs_bc.build.trace import CallFacts
from xcs_bc.ir import MISSING, Caller, ExprKind, Operation, OpType, Site, Source, ValueRef
from xcs_bc.ir.text import format_value
from xcs_bc.ir.values import (
    NULL,
    awaited_call,
    callee_key,
    const,
    describe_callee,
    expr,
    peek_attr,
    unknown,
    with_value,
)
from xcs_bc.observe.hooks import CallEvent

if TYPE_CHECKING:
    from xcs_bc.build.builder import GraphBuilder


# what the code does with a result it keeps: stores it, loops over it, or branches on it at once
# (`x = tool()`, `for x in tool():`, `if tool():`)
_KEEPS = frozenset({"STORE_FAST", "GET_ITER", "TO_BOOL", "UNARY_NOT"})
# ... or first compares it with a constant or a local (`if tool() > 3:`, `if tool() == "ok":`)
_TESTS = frozenset(
    {"LOAD_CONST", "LOAD_SMALL_INT", "LOAD_FAST", "LOAD_FAST_CHECK", "COMPARE_OP", "CONTAINS_OP", "IS_OP"}
)
_TEST_LENGTH = 4  # instructions between the call and the branch, at most


class Calls(Effects):
    """Completes call instructions: a slow call's operation, a fast call's expression or UNKNOWN."""

    # set by GraphBuilder.__init__
    ops: list[Operation]
    events: list[CallEvent]
    call_facts: list[CallFacts]
    clients: dict[int, Any]
    reads: bool
    root: FrameState | None
    iters: dict[int, Any]
    slow_callees: dict[Any, Any]
    min_call_s: float
    steady_sites: frozenset[tuple[int, int]]
    thread: int
    unknown_calls: int
    changer: tuple[Any, types.CodeType, Instr, int] | None
    live: dict[str, int]
    _occurrences: dict[tuple[int, int], int]
    _yields: dict[int, list[ValueRef]]
    listed: dict[int, tuple[tuple[ValueRef, ...], Listed]]
    _awaiting_exception: list[dict[str, Any] | CallEvent]

    def complete_call(self, fs: FrameState, ins: Instr, now: float, *, raised: bool) -> None:
        popped = fs.operands if raised else tuple(fs.pop(ins.pops))
        if ins.opname == "CALL" and not PY312 and not raised:
            popped += fs.precall
        fs.precall = ()
        callee_ref, args, kwnames, star = self.call_layout(fs, ins, popped)
        fs.kwnames = ()
        callee = callee_ref.value if callee_ref.value is not MISSING else fs.callee
        fs.callee = callee
        nested = len(self.ops) > fs.ops_before
        duration = now - fs.started
        made = made_code(callee_ref)
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
            result = self.nested_result(fs, callee, callee_ref, args)
        elif consumed:
            self.record_event(fs, ins, callee, now, raised, fs.callee_result)  # a call all the same
            if raised:
                return
            result = self.nested_result(fs, callee, callee_ref, args)
        elif (
            duration >= self.min_call_s
            and not (self.min_call_s and plain_builtin(callee, args, fs.frame.f_globals))
            and not reads_callers_frame(callee)
            and (id(fs.info.code), ins.offset) not in self.steady_sites  # (see GraphBuilder.steady)
        ):
            if not star:  # f(*seq, **kw): the slots are the sequence and the dict, not the arguments
                args = self.observed_values(fs, callee, args, kwnames)
            callee_ref, args = self.holding(callee_ref), tuple(map(self.holding, args))
            inputs = (callee_ref, *args)
            # an async function's `await f(x)` is a call of its await site's method (see awaited_call)
            awaited = awaited_call(callee, tuple(ref.value for ref in args))
            name = describe_callee(callee) if awaited is None else f"await {describe_callee(awaited[0])}"
            if fs.awaiting is not None:  # `await f(x)` in a coroutine's frame (see `awaiting`)
                name = f"await {name}"
            op = self.make_op(fs, ins, OpType.CALL, name, inputs, kwnames, now, raised=raised)
            if star:
                self.call_facts[op.id] = replace(self.call_facts[op.id], star=True)
            stale = _stale_reason(self, callee, args)
            if stale:
                self.call_facts[op.id] = replace(self.call_facts[op.id], stale=stale)
            exits = self._handled_out_of(fs, ins)
            if exits:
                self.call_facts[op.id] = replace(self.call_facts[op.id], exits=exits)
            # a slow call may change the mutable objects it is handed (an awaited call: those it
            # hands its callee, which is no argument but the callee itself)
            before = self.effects
            self.by_call = True
            try:
                for ref in args if awaited is None else args[1:]:
                    self.mutate_arg(ref, frozenset({op.id}) | ref.deps)
                method, method_ref = (callee, callee_ref) if awaited is None else (awaited[0], args[0])
                if purity.sets_attributes(method):  # `self.gather(topic)` storing self.notes: its object
                    self.mutate_receiver(method, method_ref, frozenset({op.id}) | method_ref.deps)
                state = purity.module_state(method)
                read = self.changed_global(state)
                if state.writes or read is not None:  # (see CallFacts.module)
                    reason = _module_reason(state, read)
                    self.call_facts[op.id] = replace(self.call_facts[op.id], module=reason)
                self.change_globals(method, state, frozenset({op.id}), len(self.ops))
            finally:
                self.by_call = False
            if self.effects != before:
                self.changer = (callee, fs.info.code, ins, self.effects)
            self.record_event(fs, ins, callee, now, raised, op.outputs[0].value if op.outputs else MISSING)
            if raised:
                return
            result = op.outputs[0]
        else:
            self.record_event(fs, ins, callee, now, raised, fs.callee_result)
            if raised:
                return
            before = self.effects
            result = self.listed_generator(
                fs, ins, callee, callee_ref, args, kwnames, star
            ) or self.fast_call(callee, callee_ref, args, kwnames, star, fs.control_deps)
            if self.effects != before:
                self.changer = (callee, fs.info.code, ins, self.effects)
            if self.kept_read(fs, ins, callee, result):
                # kept in a local: an operation made in its turn, whose result what follows reads
                op = self.make_op(
                    fs, ins, OpType.CALL, describe_callee(callee), (callee_ref, *args), kwnames, now
                )
                self.call_facts[op.id] = replace(self.call_facts[op.id], read=True, star=star)
                result = op.outputs[0]
        if not raised:
            fs.push(with_value(result, fs.callee_result) if result.value is MISSING else result)

    def listed_generator(
        self,
        fs: FrameState,
        ins: Instr,
        callee: Any,
        callee_ref: ValueRef,
        args: tuple[ValueRef, ...],
        kwnames: tuple[str, ...],
        star: bool,
    ) -> ValueRef | None:
        """`for c in chunks(doc, 500)`, `chunks` a generator function whose body is pure: the loop walks
        `list(chunks(doc, 500))`, which recipes compute again from the arguments (as they do
        `sorted(docs)`), so that its rounds are those of a loop over a list.  Only when the generator
        is taken at once (`_taken_at_once`): one kept in a local may be consumed elsewhere too."""
        if star or not purity.pure_generator(callee) or not _taken_at_once(fs, ins):
            return None
        values = [ref.value for ref in args]
        if not all(type(value) in _FINITE for value in values):
            return None  # (unknown, or an iterator of the user's, which may never end)
        held = self.snapshot_held((callee, *values))
        if held is None:
            return None
        positional = len(values) - len(kwnames)
        items = items_of(callee, values[:positional], dict(zip(kwnames, values[positional:], strict=True)))
        if items is None:
            return None
        call = call_expr(self.holding(callee_ref), tuple(map(self.holding, args)), kwnames, star, items)
        return self.keep_listed(expr(ExprKind.CALL, (const(list), call), items), callee, held)

    def keep_listed(self, listed: ValueRef, fn: Any, held: tuple[Watched, ...]) -> ValueRef:
        """Note what `listed`, the items of a pure generator (or of a map or filter of a pure function)
        listed by a call of ours, was computed from (`Listed`), for the loop that walks it."""
        reads = purity.module_state(fn).reads
        bound = tuple((namespace, name, namespace.get(name, MISSING)) for namespace, name in reads)
        self.listed[identity(listed)] = (listed.operands, Listed(held, bound))
        return listed

    def kept_read(self, fs: FrameState, ins: Instr, callee: Any, result: ValueRef) -> bool:
        """Is this fast call to a function not known to be pure (its result is UNKNOWN) one whose result
        the observed function keeps, loops over or branches on at once (`events = get_events(day)`,
        `for e in get_events(day):`, `if ready(q):`, `if load(q) > 3:`), outside any loop?  A replay may then
        take its result from the run, and issue what depends on it then (see `CallFacts.read`).  Only
        when tracing for `xcs.jit` (`reads`): a capture shows slow calls only.  Not for a built-in
        function (`time.perf_counter()`, `random.random()`): a tool is Python code, and a clock read
        kept for a log line is no decision worth a dispatch."""
        if not self.reads or fs is not self.root or self.iters or result.source is not Source.UNKNOWN:
            return False
        if isinstance(callee, types.BuiltinFunctionType) or callee is MISSING:
            return False
        if reads_callers_frame(callee) or in_loop(fs.info, ins.offset):
            return False  # (made through the dispatcher, it would see the dispatcher's frames)
        after = fs.info.instrs.get(ins.next) if ins.next is not None else None
        for _ in range(_TEST_LENGTH):
            if after is None or after.opname not in _TESTS:
                break
            after = fs.info.instrs.get(after.next) if after.next is not None else None
        return after is not None and (after.opname in _KEEPS or after.opname in COND_POP_JUMPS)

    @staticmethod
    def call_layout(
        fs: FrameState, ins: Instr, popped: tuple[ValueRef, ...]
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
    def arguments(fs: FrameState, callee: Any) -> dict[str, Any] | None:
        """The bound arguments a Python callee received, without the receiver of a method."""
        bound = fs.callee_args
        params = fs.callee_params[0]
        if bound is None or not params or not receiver_first(callee, fs.callee_code):
            return bound
        return {name: value for name, value in bound.items() if name != params[0]}

    def observed_values(
        self, fs: FrameState, callee: Any, args: tuple[ValueRef, ...], kwnames: tuple[str, ...]
    ) -> tuple[ValueRef, ...]:
        """Attach the argument values a Python callee received to argument refs that lack one."""
        bound = fs.callee_args
        if bound is None:
            return args
        params, star, starstar = fs.callee_params
        if params and receiver_first(callee, fs.callee_code):  # a bound method or callable object: skip self
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

    def _handled_out_of(self, fs: FrameState, ins: Instr) -> str:
        """Why a slow call in a later round of a loop (of its frame) whose `try` may leave it (`except
        ValueError: break`), or change what a later round reads (`except ValueError: ok = False`),
        waits for the rounds before it, for people (CallFacts.exits); else "".  Issued ahead, it would
        be made although an earlier round raised and the loop was left."""
        heads = [
            state.head
            for state in self.iters.values()
            if state.frame is fs.frame and len(state.op_starts) > 1 and state.head is not None
        ]
        if self._occurrences.get((id(fs.info.code), ins.offset), 0) > 1:  # (a `while` loop's later round)
            heads += while_heads(fs.info, ins.offset)
        for head in heads:
            if handled_out(fs.info, head):
                return (
                    f"it is in a later round of the loop at {self._site(fs, fs.info.instrs[head])}, which a "
                    "`try` in it may leave (or change what a later round reads): the round is made only "
                    "if no round before it raised"
                )
        return ""

    def fast_call(
        self,
        callee: Any,
        callee_ref: ValueRef,
        args: tuple[ValueRef, ...],
        kwnames: tuple[str, ...],
        star: bool,
        control: frozenset[int],
    ) -> ValueRef:
        effect = purity.classify(callee) if callee is not MISSING else purity.Effect.UNKNOWN
        if effect is purity.Effect.UNKNOWN and purity.makes_empty_container(
            callee, [ref.value for ref in args], () if star else kwnames
        ):
            effect = purity.Effect.PURE  # (`votes = Counter()`: the glue's own container)
        if effect is purity.Effect.PURE:  # (its result is made of what it is handed, whole)
            callee_ref, args = self.holding(callee_ref), tuple(map(self.holding, args))
        call = call_expr(callee_ref, args, kwnames, star)
        if effect is purity.Effect.CLOCK:  # (it changes nothing; what it read, no recipe reads again)
            return unknown(len(self.ops), origin=f"{describe_callee(callee)}()")
        if effect is purity.Effect.UNKNOWN:
            self.unknown_calls += 1  # it may have changed anything, not only what it was handed
            self.effects += 1
            everything = frozenset(range(len(self.ops)))
            self.by_call = True
            try:
                self.mutate_receiver(callee, callee_ref, everything, deep=True)
                for ref in args:
                    self.mutate_arg(ref, everything)
                self.change_globals(callee, purity.module_state(callee), everything, len(self.ops))
            finally:
                self.by_call = False
            return unknown(len(self.ops), origin=f"{describe_callee(callee)}()")
        if effect is purity.Effect.MUTATES_INPUTS:
            deps = call.deps
            receiver = getattr(callee, "__self__", MISSING)
            if getattr(callee, "__name__", "") == "append" and isinstance(receiver, list) and len(args) == 1:
                self._append(receiver, callee_ref, args[0], control)
            else:
                self.mutate_receiver(callee, callee_ref, deps)
        return call

    def nested_result(
        self, fs: FrameState, callee: Any, callee_ref: ValueRef, args: tuple[ValueRef, ...]
    ) -> ValueRef:
        """The result of a call during which observed frames ran (a comprehension, a genexpr's consumer)."""
        if fs.child_return is not None:
            return fs.child_return
        generated = [ref for ref in args if ref.source is Source.EXPR and ref.kind is ExprKind.GENEXPR]
        if generated and callee is not MISSING and purity.classify(callee) is purity.Effect.PURE:
            produced = self._yields.get(identity(generated[0]), [])
            # what a consumer that takes every item, and nothing else, was handed (`"".join(gen)`,
            # `max(gen)`), a recipe computes from the items (as long as a guard keeps their number); one
            # that may stop early (any()) or reads more (`sorted(gen, key=f)`) has its result unknown
            whole = takes_all(callee) and len(args) == 1
            items = expr(ExprKind.GENERATED if whole else ExprKind.CONSUMER, produced)
            return expr(ExprKind.CALL, (callee_ref, items))
        return unknown(len(self.ops))

    def make_op(
        self,
        fs: FrameState,
        ins: Instr,
        op_type: OpType,
        name: str,
        inputs: tuple[ValueRef, ...],
        kwnames: tuple[str, ...],
        now: float,
        *,
        raised: bool = False,
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
            "args": self.arguments(fs, fs.callee),
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
        conditions = fs.conditions()
        # (the graph's control holds the branches on results; those on other values under them are
        # conditions only: see GraphBuilder.branch)
        control = tuple(condition.cond for condition in conditions if condition.cond.deps)
        # the way the run went at each of them, for people (see `Condition`)
        metadata["outcomes"] = tuple(condition.outcome for condition in conditions if condition.cond.deps)
        site = self._site(fs, ins)
        # how many times each local of the function was assigned: see CallFacts
        facts = CallFacts(
            code,
            fs.callee,
            False,
            self.unknown_calls > 0,
            self.effects,
            dict(self.live),
            conditions,
            changer=self._changer(),
        )
        self.call_facts.append(facts)
        if fs.callee is not MISSING:
            self.slow_callees[callee_key(fs.callee)] = fs.callee
            receiver = getattr(fs.callee, "__self__", None)
            if receiver is not None and not isinstance(receiver, types.ModuleType):
                self.clients[id(receiver)] = receiver
        op = Operation(
            op_id, op_type, name, site, inputs, outputs, kwnames, control, metadata, caller_stack(fs)
        )
        self.ops.append(op)
        return op

    def _changer(self) -> str:
        """What last may have changed objects, for people (see `CallFacts.changer`): `Client() at
        app.py:3` for a call, `the code at app.py:4` for another instruction; "" when nothing did, or
        when the change was not one of those (a branch's arm the run did not take)."""
        if self.changer is None or self.changer[3] != self.effects:
            return ""
        callee, code, ins, _ = self.changer
        what = f"{describe_callee(callee)}()" if callee is not None else "the code"
        return f"{what} at {code_site(code, ins)}"

    @staticmethod
    def _site(fs: FrameState, ins: Instr) -> Site:
        return code_site(fs.info.code, ins)

    def record_event(
        self, fs: FrameState, ins: Instr, callee: Any, now: float, raised: bool, result: Any
    ) -> None:
        event = CallEvent(
            site=self._site(fs, ins),
            callee=callee,
            args=self.arguments(fs, callee),
            result=MISSING if raised else result,
            exception=fs.exception if raised else None,
            start=fs.started,
            end=now,
            thread=self.thread,
        )
        self.events.append(event)
        if raised and event.exception is None:
            self._awaiting_exception.append(event)


def _stale_reason(b: Calls, callee: Any, args: tuple[ValueRef, ...]) -> str:
    """Why a slow call runs in its turn when its callee (a method's object, a callable object, a
    closure's cells, a partial's arguments) or an argument is or holds an object the code changed in
    place before the call (`self.log.append(d)` then `self.ask(d)`), for people (CallFacts.stale);
    else ""."""
    roots: list[tuple[ValueRef | None, Any]] = [(None, callee), *((ref, ref.value) for ref in args)]
    for ref, value in roots:
        changed = b.changed_by_code_in(value)
        if changed is not MISSING:
            what = "its callee" if ref is None else f"argument {format_value(ref)}"  # (said only then)
            return (
                f"{what} holds a {type(changed).__name__} the code changed in place before the call: "
                "issued early, the call would see it as it was"
            )
    return ""


def _module_reason(state: purity.ModuleState, read: tuple[str, str] | None) -> str:
    """Why a slow call of a helper touching module state runs in its turn, for people (CallFacts.module)."""
    if state.writes:
        names = ", ".join(sorted({name for _, name in state.writes}))
        return f"its callee changes module state ({names}), which issued early it would change out of order"
    assert read is not None
    name, by = read
    return f"its callee reads the global {name}, which {by} changed before it"


def code_site(code: types.CodeType, ins: Instr) -> Site:
    line = ins.line if ins.line is not None else code.co_firstlineno
    return Site(code.co_filename, line, getattr(code, "co_qualname", code.co_name), ins.offset)


# what a pure generator listed ahead may be handed: data of a finite size, whose iteration ends
_FINITE = frozenset(
    {str, bytes, int, float, complex, bool, type(None), list, tuple, dict, set, frozenset, range}
)


def _consumer_call(fs: FrameState, ins: Instr) -> tuple[Instr | None, int, int]:
    """The instruction that takes the result of `ins` (past constants its call is also handed,
    `enumerate(gen, start=1)`), how many slots it pops, and how many of them those constants are
    (3.11: a PRECALL and its CALL are one call)."""
    after = fs.info.instrs.get(ins.next) if ins.next is not None else None
    constants = pops = 0
    while after is not None and after.opname in ("LOAD_CONST", "KW_NAMES", "PRECALL"):
        if after.opname == "PRECALL":
            pops += after.pops
        elif after.opname == "LOAD_CONST":
            constants += 1
        after = fs.info.instrs.get(after.next) if after.next is not None else None
    return after, pops + (after.pops if after is not None else 0), constants


_CONSUMER_CALLS = frozenset({"CALL", "CALL_KW", "CALL_FUNCTION", "CALL_FUNCTION_KW", "CALL_METHOD"})


def _taken_at_once(fs: FrameState, ins: Instr) -> bool:
    """Is the result of the call `ins` makes taken at once by a consumer that walks it from its start,
    so that nothing else ever holds it: a loop (`for c in chunks(doc)`), an `enumerate()` or `zip()` a
    loop walks (`for i, c in enumerate(chunks(doc))`), or a call that takes every item
    (`list(chunks(doc))`, `"".join(...)`)?"""
    after, pops, constants = _consumer_call(fs, ins)
    if after is None or after.opname == "GET_ITER":
        return after is not None and constants == 0
    below = pops - 1 - constants  # (the consumer's slots under the result: callee, other arguments)
    if after.opname not in _CONSUMER_CALLS or below < 1 or below > len(fs.stack):
        return False
    slots = (*fs.stack[len(fs.stack) - below :], NULL, *(NULL,) * constants)
    consumer = Calls.call_layout(fs, after, slots)[0].value
    if consumer in (enumerate, zip):
        then, _, constants = _consumer_call(fs, after)
        return then is not None and then.opname == "GET_ITER" and constants == 0
    return consumer is not MISSING and takes_all(consumer)


def call_expr(
    callee_ref: ValueRef,
    args: tuple[ValueRef, ...],
    kwnames: tuple[str, ...],
    star: bool,
    value: Any = MISSING,
) -> ValueRef:
    """The call `callee(*args)` as a pure expression of its callee and arguments (the keyword names
    last, as a constant).  ``f(*seq, **kw)`` is not ``f(seq, kw)``: a kind of its own, which recipes
    do not evaluate."""
    operands = (callee_ref, *args) + ((const(kwnames),) if kwnames else ())
    kind = ExprKind.CALL_EX if star else ExprKind.CALL_KW if kwnames else ExprKind.CALL
    return expr(kind, operands, value=value)


def caller_stack(fs: FrameState) -> tuple[Caller, ...]:
    """The functions followed into that `fs` runs inside (its own included), outermost first (see
    `following`); empty for the observed frame and its comprehensions.  A module's code run by
    `exec` is no function: its calls are made at the top."""
    stack: list[Caller] = []
    state: FrameState | None = fs
    while state is not None:
        caller = state.caller
        if caller is not None and caller.pending is not None:
            if not state.is_module:
                module = state.frame.f_globals.get("__name__")
                site = Calls._site(caller, caller.pending)
                stack.append(
                    Caller(state.function, module if isinstance(module, str) else "", site, state.entry)
                )
            state = caller
        else:
            state = state.parent  # a comprehension's frame runs in its maker's function
    return tuple(reversed(stack))


def receiver_first(callee: Any, code: types.CodeType | None) -> bool:
    """Is the first parameter of the Python code a call entered the receiver (`self` of a bound method,
    of a callable object's `__call__`, of a class's `__init__`), not the call's first argument?

    Not when the code is the callee's own (a function) or the function a wrapper made by
    `functools.wraps`, `functools.cache` or `lru_cache` calls: those get the arguments as they are."""
    if isinstance(callee, types.FunctionType):
        return False
    wrapped = peek_attr(callee, "__wrapped__")  # read without running user code
    return not (isinstance(wrapped, types.FunctionType) and code is not None and wrapped.__code__ is code)


def python_code(callee: Any) -> tuple[types.FunctionType, tuple[Any, ...]] | None:
    """The Python function a call of `callee` runs, and what it passes before the call's own
    arguments (a bound method's object, a callable object); None for any other callee."""
    if isinstance(callee, types.FunctionType):
        return callee, ()
    if type(callee) is types.MethodType and isinstance(callee.__func__, types.FunctionType):
        return callee.__func__, (callee.__self__,)
    call = getattr(type(callee), "__call__", None)  # noqa: B004 - the function it runs, not callable()
    if isinstance(call, types.FunctionType):
        return call, (callee,)
    return None


def bound_arguments(
    callee: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[types.CodeType | None, dict[str, Any]]:
    """The code a Python callee runs and its parameters as its frame would hold them when called with
    `args` and `kwargs` (what `entered` reads from that frame); (None, {}) for any other callee."""
    found = python_code(callee)
    if found is None:
        return None, {}
    function, first = found
    full = (*first, *args)
    try:
        bound = _signature(function).bind(*full, **kwargs)
    except (TypeError, ValueError):
        return None, {}
    bound.apply_defaults()
    return function.__code__, dict(bound.arguments)


# function id -> (function, what its signature is made of, the signature): a served call's arguments are
# bound as its callee's frame would hold them, once per call, and `inspect.signature` is slow
_SIGNATURES: dict[int, tuple[types.FunctionType, tuple[Any, ...], inspect.Signature]] = {}
_SIGNATURES_KEPT = 256


def _signature(function: types.FunctionType) -> inspect.Signature:
    """`inspect.signature(function)`, made again when the function's code, defaults or `__signature__`
    changed."""
    made_of = (
        function.__code__,
        function.__defaults__,
        function.__kwdefaults__,
        function.__dict__.get("__signature__"),
    )
    kept = _SIGNATURES.get(id(function))
    if (
        kept is not None
        and kept[0] is function
        and all(a is b for a, b in zip(kept[1], made_of, strict=True))
    ):
        return kept[2]
    signature = inspect.signature(function, follow_wrapped=False)
    if len(_SIGNATURES) >= _SIGNATURES_KEPT:
        _SIGNATURES.clear()
    _SIGNATURES[id(function)] = (function, made_of, signature)
    return signature


def frame_arguments(frame: types.FrameType) -> dict[str, Any]:
    """The parameters of a Python frame that is starting, by name, with what they were bound to."""
    code = frame.f_code
    n = (
        code.co_argcount
        + code.co_kwonlyargcount
        + bool(code.co_flags & CO_VARARGS)
        + bool(code.co_flags & CO_VARKEYWORDS)
    )
    f_locals = frame.f_locals
    return {name: f_locals[name] for name in code.co_varnames[:n] if name in f_locals}


def parameters(code: types.CodeType) -> tuple[tuple[str, ...], str | None, str | None]:
    """A function's positional parameter names, its *args name and its **kwargs name."""
    i = code.co_argcount + code.co_kwonlyargcount
    varargs = code.co_varnames[i] if code.co_flags & CO_VARARGS else None
    i += bool(code.co_flags & CO_VARARGS)
    varkw = code.co_varnames[i] if code.co_flags & CO_VARKEYWORDS else None
    return code.co_varnames[: code.co_argcount], varargs, varkw


def precall(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    """3.11 PRECALL takes the arguments off the stack as far as depths go; the CALL after it uses them."""
    fs.precall = tuple(fs.pop(ins.pops))


def kw_names(b: GraphBuilder, fs: FrameState, ins: Instr, jumped: bool) -> None:
    # 3.11's dis does not resolve KW_NAMES' argument: it indexes co_consts
    names = ins.argval if isinstance(ins.argval, tuple) else fs.info.code.co_consts[int(ins.arg or 0)]
    fs.kwnames = tuple(names) if isinstance(names, tuple) else ()

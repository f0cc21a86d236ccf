"""The first call: traced, and the rounds of its loops after the first issued ahead and served.

A function called once gains nothing from a plan made for its later calls.  So the traced call
runs a *gated* clone (`rewrite.gate`): each call site of the function's own code (and of its
comprehensions) first asks whether a call computed ahead waits for it; when none does, the
original instructions run, in the clone's frame.  The observer sees the clone through
`_Translated`, which maps its offsets back to the original's and hides what the gates add, so the
builder sees the original code run, and its trace and plan are what they would be.

When a loop of the traced frame starts its second round (`GraphBuilder.on_round`), its first
round has shown how each of its slow calls is computed.  A call of that round whose callee and
arguments the recipe machinery recomputes from the inputs, the results made before the loop and
the round's item (`plan.slices`), and which gives back exactly the call the round made, is issued
for every later item of the loop's list, tuple or range at once, and its site is armed.  When the
run reaches an armed site, `FirstCall.dispatch` serves the call issued ahead whose callee and
arguments are the very values the run passes (`same_value`), else makes the call in place; either
way the builder is told the events the original instructions would have sent (`served`).

What is issued ahead, and what is not (the rules of a replay, kept narrow):

- only loops over a list, tuple or range, or enumerate() or zip() of them (`_walked`), whose first
  round handled no exception, branched on no result (but in its tail, below), changed in place no
  object but the glue's own containers and, by its own code, a global's (`METRICS.append(row)`),
  and called no function not known to be pure (`GraphBuilder.round_mark`), and read no item by
  enumerate()'s counter (`GraphBuilder.counter_keys`); in a generator expression only when its
  consumer takes it whole (`_taken_whole`: `"".join(...)`, `list(...)`, `sum(...)`; not `any()`,
  which may stop it).  A loop the first round ran inside it must have walked sequences that are
  the same in every round (`for aspect in ASPECTS` in `for d in docs`, not `for part in d.parts`):
  the later rounds' calls, the inner loop's included, then go at once, and the inner loop issues
  nothing more in them;
- only recipes that read nothing the first round changed of the state it began with
  (`build.carried`: `i += 1` then `f"{i}: {d}"` would give round k the first round's `1`);
- only rounds that take each branch on a value the first round took (`if not d: continue`) the same
  way, checked by its recipe for their item (`_Branches`); a round that goes another way makes its
  calls in its turn, and when the arm it takes may leave the next round another state (a `break`, a
  call, a local a later round reads) no round after it is issued (`arms.leaves_rounds_alike`);
- except in the round's tail, from a branch after one of its calls on (`_tails`): there it may
  branch on a result, on the item or on what it carries, any way, when that code, read whole from
  the bytecode (`arms.round_tail`), changes nothing the code before its calls reads, never leaves
  the loop and calls only functions known to be pure or callees the first round called
  (`_tail_alike`): a judge keeping the best, a filter, a tally, `if "yes" in verdict:
  out.append(llm(d))`.  Only the calls before the tail go ahead; the tail's own are made in their
  turn;
- not a loop with a `try` inside it whose handler may leave it, or change what a later round reads
  (`loopshape.handled_out`);
- only callees that neither read through their module's globals nor hold an object the first
  round changed in place (`_callees_alike`);
- only calls of Python functions (and methods, and objects whose `__call__` is Python) made by
  the frame itself, not calls of an `lru_cache` wrapper, nor delays or synchronisation;
- only arguments of immutable built-in data (str, bytes, numbers, None, tuples of them) or lists
  and dicts of built-in data displayed in the call itself and kept nowhere, and only results from
  before the loop: no call waits for another round's.

A call taking a map whole (`list(map(llm, docs))`) is dispatched too, always: `execute.fanout`
issues the map's calls at once after its first.  So is a call of a helper by name
(`summarize_all(docs)`, `helpers.summarize(d)`) that `execute.follow` would follow: it is made
through the helper's own jitted function, whose trace runs on this thread with this session
detached (`Session.detached`), so the helper's loops go ahead as this function's do; and a call
of a helper issued ahead for a loop's later round runs through it too, on its worker.

As in a replay, a call issued ahead runs before the glue that precedes it (docs/jit.md, "The
assumptions"), and one the run does not reach (it raised, or a later round went another way) is
cancelled if it has not started, else counted in `stats.wasted`.  Only on the thread pools: on a
process pool, Ray or Dask, calls are issued ahead by replays only.
"""

from __future__ import annotations

import builtins
import contextlib
import contextvars
import dataclasses
import functools
import sys
import threading
import time
import types
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from xcs_bc._compat import CALL_OPS, CO_GENERATOR_LIKE, nested_code
from xcs_bc.build import purity
from xcs_bc.build.arms import Name, Tail, leaves_rounds_alike, names_loaded, round_tail
from xcs_bc.build.builder import GraphBuilder
from xcs_bc.build.calls import python_code
from xcs_bc.build.carried import Carried, carried
from xcs_bc.build.codeinfo import CodeInfo, code_info, in_loop
from xcs_bc.build.displays import positional
from xcs_bc.build.effects import holds
from xcs_bc.build.frames import FrameState, RoundMark
from xcs_bc.build.generators import same as same_generator
from xcs_bc.build.generators import takes_all
from xcs_bc.build.handlers.iteration import lockstep, round_item
from xcs_bc.build.liveness import loaded_names
from xcs_bc.build.loops import LoopState
from xcs_bc.build.loopshape import handled_out
from xcs_bc.build.purity import memo_wrapper
from xcs_bc.build.skipping import LoopBody, loop_body
from xcs_bc.build.trace import DecisionKind, LoopRecord
from xcs_bc.execute.apis import overloaded
from xcs_bc.execute.callsites import Named, SiteKey, find_calls, map_consumers, named_callees, walk_code
from xcs_bc.execute.executor import Executor, runs_in_process, wait_done
from xcs_bc.execute.fanout import Fanning, consume, fan, immutable
from xcs_bc.execute.follow import Follower
from xcs_bc.execute.limits import Room, Withdrawn, answered, call_in_turn, issue_ahead, take_over
from xcs_bc.execute.replay import Issued, Stats, rejected_counter, same_call
from xcs_bc.execute.rewrite import Dispatch, Gated, gate
from xcs_bc.ir import MISSING, ExprKind, Local, OpType, Source, ValueRef
from xcs_bc.ir.passes import fold, walk
from xcs_bc.ir.values import awaits, class_lookup, peek_attr
from xcs_bc.observe.hooks import Session
from xcs_bc.plan.guards import Guard, decision_guard
from xcs_bc.plan.recipes import never_ahead
from xcs_bc.plan.slices import Env, NotComputable, Slice, plain, same_value

__all__ = ["FirstCall", "first_call"]

# whose items are read without running user code, in an order fixed while they are not changed
_VIEWS: tuple[type, ...] = (type({}.keys()), type({}.values()), type({}.items()))
_SEQUENCES: tuple[type, ...] = (list, tuple, range, dict, *_VIEWS)
_VALUE_BRANCHES = (DecisionKind.TRUTH, DecisionKind.NONE)
_DISPLAYS = (ExprKind.LIST, ExprKind.TUPLE, ExprKind.SET, ExprKind.DICT)
_UNBOUND: Any = object()


@dataclass(frozen=True)
class _Step:
    """A call of a loop's round, as issued for each later round: its site, name, recipes (callee
    first, keyword values last), keyword names, and the operation it was in the first round."""

    key: SiteKey
    name: str
    inputs: tuple[ValueRef, ...]
    kwnames: tuple[str, ...]
    op: int


@dataclass
class _Round:
    """A later round of a loop, issued ahead: its calls, the results it has so far (in `env`), and
    which of its calls were issued."""

    steps: list[_Step]
    env: Env
    launched: set[int] = dataclasses.field(default_factory=set)

    def ready(self) -> list[int]:
        """The calls not issued yet whose results of the round are all known; now issued.  (Under the
        first call's lock, or before any of the round's calls is.)"""
        ours = {step.op for step in self.steps}
        ready = [
            index
            for index, step in enumerate(self.steps)
            if index not in self.launched and _deps(step) & ours <= self.env.outputs.keys()
        ]
        self.launched.update(ready)
        return ready


@dataclass
class _Ahead(Issued):
    """A call issued ahead for a later round, and when its worker started it (once it has)."""

    started: list[float] = dataclasses.field(default_factory=list)


def first_call(
    fn: types.FunctionType,
    env: Env,
    executor: Callable[[], Executor],
    stats: Stats,
    options: Mapping[str, Any],
    fanning: Fanning,
    follow: Follower,
) -> FirstCall | None:
    """A traced call of `fn` that issues its loops' later rounds and its maps' calls ahead, and
    follows into its helpers, or None when `fn` has no call site in a loop, no map consumer and no
    call of a helper to follow (it is traced as it is: nothing would go ahead).  `executor()` gives
    the executor, asked for only when calls may go ahead."""
    paths = {code: path for path, code in walk_code(fn.__code__, (fn.__code__.co_name,))}
    # (a generator expression's rounds go ahead only when its consumer takes it whole: `_taken_whole`)
    targets = [fn.__code__, *nested_code(fn.__code__)]
    sites = [(paths[code], offset) for code in targets for offset in _looped_calls(code)]
    consumers = [(paths[code], offset) for code in targets for offset in map_consumers(code)]
    helpers = [
        (paths[code], named.offset)
        for code in targets
        for named in named_callees(code)
        if follow.worth_following(_resolved(named, fn.__globals__, env.args))
    ]
    if not sites and not consumers and not helpers:
        return None
    return FirstCall(fn, paths, sites, consumers, helpers, follow, env, executor(), stats, options, fanning)


def _resolved(named: Named, globals_: Mapping[str, Any], arguments: Mapping[str, Any]) -> Any:
    """What a call's dotted name holds as the call starts, as far as it can be read without running
    code of the user's (`peek_attr`): a local's only when it is an argument; after a call of a class
    (`Pipe(llm).run`), the function its class defines by that name.  MISSING if unknown."""
    value = (arguments if named.local else globals_).get(named.names[0], MISSING)
    made: type | None = None  # the class whose instance the last call made
    for part in named.names[1:]:
        if part == "()":
            made, value = (value, MISSING) if isinstance(value, type) else (None, MISSING)
        elif made is not None:
            value = class_lookup(made, part)
            made = None
        else:
            value = peek_attr(value, part)
    return value


class FirstCall:
    """One traced call of `fn` on a gated clone (`function`), observed through `listener`."""

    def __init__(
        self,
        fn: types.FunctionType,
        paths: dict[types.CodeType, tuple[str, ...]],
        sites: list[SiteKey],
        consumers: list[SiteKey],
        helpers: list[SiteKey],
        follow: Follower,
        env: Env,
        executor: Executor,
        stats: Stats,
        builder_options: Mapping[str, Any],
        fanning: Fanning,
    ) -> None:
        self.paths = paths  # code object -> its path in site keys
        self.gated: Gated = gate(fn, _dispatcher(self), only=[*sites, *consumers, *helpers])
        # a map consumer's site is dispatched always (see `execute.fanout`); no call is issued for it
        self.consumers = frozenset(consumers) & self.gated.sites.keys()
        self.gated.armed.update(self.consumers)
        # so is a call of a helper to follow: made through its own jitted function (see `_dispatch`)
        self.helpers = frozenset(helpers) & self.gated.sites.keys()
        self.gated.armed.update(self.helpers)
        self.follow = follow
        self.fanning = fanning
        self.builder = GraphBuilder(**builder_options, originals=self.gated.originals, on_round=self._round)
        self.listener = _Translated(self.builder, self.gated)
        self.env = env
        self.executor = executor
        self.stats = stats
        self.context = contextvars.copy_context()
        self.in_process = runs_in_process(executor)
        self.lock = threading.Lock()
        self.pending: dict[SiteKey, list[_Ahead]] = {}
        # sites of loops some later round of which was not issued (it goes another way, or a recipe
        # could not be computed): a call there that matches none issued ahead may be that round's
        # own, not a sign that the calls issued for the site are wrong
        self.partial: set[SiteKey] = set()
        # the calls issued ahead that a site took: one made again there (a retry after its exception)
        # is a visit the prediction did not count, not a sign that it is wrong
        self.taken: dict[SiteKey, list[_Ahead]] = {}
        self.session: Session | None = None  # set by the caller once observing starts
        self.finished = False
        self.issued = 0  # calls issued ahead
        self.served = 0  # and served

    @property
    def function(self) -> types.FunctionType:
        return self.gated.function

    # -- the builder's quieter (see `build.skipping`): its offsets are the original's ---------------

    def quiet(self, frame: types.FrameType, offsets: frozenset[int]) -> None:
        mapping = self.gated.offsets.get(frame.f_code)
        if mapping is not None:
            offsets = _in_clone(frame.f_code, mapping, offsets)
        if self.session is not None:
            self.session.quiet(frame, offsets)

    def loud(self) -> None:
        if self.session is not None:
            self.session.loud()

    # -- issuing the later rounds ------------------------------------------------------------------

    def _round(self, b: GraphBuilder, fs: FrameState, state: LoopState, ended: RoundMark) -> None:
        """A loop of a traced frame starts its second round (its first left `ended`, a
        `GraphBuilder.round_mark`): issue the later rounds' calls."""
        try:
            self._issue_rounds(b, fs, state, ended)
        except Exception:  # noqa: BLE001 - a failed prediction costs time, never the trace
            return

    def _issue_rounds(self, b: GraphBuilder, fs: FrameState, state: LoopState, ended: RoundMark) -> None:
        path = self.paths.get(fs.info.code)
        if not self.in_process or path is None or state.first_item is None:
            return  # (a process pool, Ray, Dask: their calls are issued by replays only)
        start = state.op_starts[0]
        outputs = {op.id: op.outputs[0].value for op in b.ops[:start] if op.outputs}
        env = dataclasses.replace(self.env, outputs=outputs, locals=_fixed_locals(b, state))
        walked = _walked(state.iterable, env)
        rounds = min(map(len, walked)) if walked else 0  # (zip: the shortest)
        if rounds < 3:
            return  # (with two items, the second round's call is the next thing anyway)
        # (the loops around it: its frame's, and for a comprehension's frame, 3.10/3.11, its maker's)
        frames = (fs.frame, fs.frame.f_back if fs.info.code.co_name in _COMPREHENSIONS else None)
        around = [outer for outer in b.iters.values() if outer.frame in frames and outer is not state]
        if any(len(outer.op_starts) - 1 in outer.issued for outer in around):
            return  # a loop around it issued this round's calls already (see `_inner_loops_alike`)
        if not b.ops[start:] or state.head is None or handled_out(fs.info, state.head):
            return
        if fs.info.code.co_flags & CO_GENERATOR_LIKE and not _taken_whole(b, fs):
            return  # (a generator whose consumer may stop it at any item)
        if b.walked_changed(state):
            return  # (the list it walks changed under it, though the glue's own: `del docs[0]`)
        item = state.first_item
        displayed = positional(state.iterable)
        if displayed:
            # a list or tuple built in the function (`for m in [a, b]`, a list of results): its items
            # are refs, which other values may hold too (`parts[0]`, `"".join(parts)`); the round's
            # item is a copy of the first (see `handlers.iteration.for_iter`), and round k's is the k-th
            others = list(state.iterable.operands[:rounds])
            if not _own_copy(item, others[0]):
                return
        elif _same_item(item, round_item(b, state.iterable, 0)):
            others = [round_item(b, state.iterable, k) for k in range(rounds)]
        else:
            return  # (a generator: its items are no paths)
        counters = [part for part in _parts(item) if part.counter]
        if any(_like(key, counters) for key in (b.counter_keys or [])[state.first_keys :]):
            return  # `docs[i]` read the item the counter names as the path `docs[0]`: see `counter_keys`
        changed = carried(b, fs, state)
        alike = self._alike(b, fs, state, ended, item, others, env, changed, walked)
        if alike is None:
            return
        inner, varying, branches, upto = alike
        issue = self._steps(b, fs, state, path, item, others[0], env, upto.ops)
        if issue is None:
            return
        if not all(_keeps_to_itself(fs, state, inner[index]) for index in varying):
            return
        rounds_of = _inner_rounds(b, inner, varying, issue, env)
        if rounds_of is None:
            return
        if changed.read_by(ref for step in issue for ref in step.inputs):
            return  # a round reads what the round before it left (`i += 1`, `acc.append(d)`)
        recipes = [
            *(ref for step in issue for ref in step.inputs),
            *(guard.ref for guard in branches.guards),
            *(walked for record in inner for walked in record.sequences),
        ]
        if any(_like(ref, counters) and not any(ref is c for c in counters) for ref in walk(recipes)):
            return  # a copy of the counter (a branch on a result copies what it stores): not told apart
        if displayed and any(ref is not item and _same_head(ref, item) for ref in walk(recipes)):
            # the item read another way (`parts[0]`), or through a copy or a path of the loop
            # variable's (`c.text`): only the loop variable's own ref is put in round k's place
            return
        if upto.tail is not None and not _tail_alike(b, fs, state, upto, recipes, walked):
            return
        if not _callees_alike(b, state, issue):
            return
        # a call reading a result of the round's (`llm(f"Refine: {summary}")`) is issued for round k
        # once round k's call before it returns: a mismatch at its site may be a round's whose result
        # came too late, and says nothing of the others'
        ours = {step.op for step in issue}
        self.partial.update(step.key for step in issue if _deps(step) & ours)
        # (the round starting now too: every armed call is then one issued for it, see `dispatch`)
        for k in range(1, rounds):
            if not branches.taken_alike(item, others[k], env):
                # this round goes another way (it makes its calls in its turn), and when that way may
                # leave the next round another state, so may every round after it
                self.partial.update(step.key for step in issue)
                if not branches.rounds_alike_after:
                    return
                continue
            state.issued.add(k)
            steps = [
                dataclasses.replace(step, inputs=_with_item(step.inputs, item, others[k]))
                for step in rounds_of(k)
            ]
            later = _Round(steps, dataclasses.replace(env, outputs=dict(outputs)))
            for index in later.ready():
                self._chain(later, index)
        if self.issued:
            b.steady()  # (the calls issued run on other threads now)

    def _alike(
        self,
        b: GraphBuilder,
        fs: FrameState,
        state: LoopState,
        ended: RoundMark,
        item: ValueRef,
        others: list[ValueRef],
        env: Env,
        changed: Carried,
        walked: list[Any],
    ) -> tuple[Sequence[LoopRecord], dict[int, list[int]], _Branches, _Upto] | None:
        """The loops the first round ran and the branches it took, which every later round must run and
        take alike (see `_inner_loops_alike`, `_branches`): those of the round up to its tail (`_Upto`),
        whose code is then read whole (`_tail_alike`: whichever way a round goes there, the next round
        is issued), or else those of the whole round; None when neither will do (a branch on a result
        or a handled exception before the tail, an inner loop or a branch on a value that later
        rounds may not run alike, or that reads what the round carries)."""
        for upto in (*_tails(b, fs, state), _Upto(ended, len(b.decisions), None, len(b.ops))):
            mark, first = upto.mark, state.first_mark
            if mark.unguarded != first.unguarded or (
                mark.effects - first.effects != mark.global_changes - first.global_changes
            ):
                # a round that changed an object in place (the list it walks, say) but a global's by
                # its code (`METRICS.append(row)`, see `_callees_alike`), called a function not known
                # to be pure, branched on a result or handled an exception says nothing of the next
                continue
            inner = _inner_loops(b, state, upto.mark)
            if inner is None or not _walks_alone(b, state, inner):
                continue
            varying = self._inner_loops_alike(item, others, inner, env, changed)
            if varying is None:
                continue
            branches = _branches(b, fs, state, upto, inner, walked)
            if branches is None or changed.read_by(guard.ref for guard in branches.guards):
                continue
            return inner, varying, branches, upto
        return None

    def _steps(
        self,
        b: GraphBuilder,
        fs: FrameState,
        state: LoopState,
        path: tuple[str, ...],
        item: ValueRef,
        made: ValueRef,
        env: Env,
        until: int,
    ) -> list[_Step] | None:
        """The calls of the first round before its tail (`b.ops[:until]`, see `_Upto`), each as its
        recipes for any round; None unless every one can be issued so (the rounds then stay alike).
        `item`: the first round's, and `made` the same as `round_item` makes it."""
        steps: list[_Step] = []
        first_round = dataclasses.replace(env, outputs=dict(env.outputs))  # (with the round's results)
        for op in b.ops[state.op_starts[0] : until]:
            facts = b.call_facts[op.id]
            # (a call of a comprehension of the round's, which runs in a frame of its own on 3.10/3.11)
            code = facts.code
            own = code is fs.info.code or (
                code is not None and code.co_name in _COMPREHENSIONS and code in self.paths
            )
            key = (self.paths[code] if own and code is not None else path, op.site.offset)
            if (
                op.op_type is not OpType.CALL
                or "exception" in op.metadata
                or not own
                or facts.star
                or facts.read
                or key not in self.gated.sites
                or not _issuable(op.inputs[0].value, op.inputs[1:])
                or not all(_handed_as_is(b, ref) for ref in _arguments(op.inputs))
                # a result of the loop's own made outside the round's calls (an inner loop's): no
                # round-k value is known for it
                or any(
                    dep >= state.ops_before and not any(dep == step.op for step in steps)
                    for ref in op.inputs
                    for dep in ref.deps
                )
            ):
                return None
            # the recipe, made again for the first item, must give back the very call the round made
            again = Slice(_with_item(op.inputs, item, made))(first_round)
            if not all(same_value(a, ref.value) for a, ref in zip(again, op.inputs, strict=True)):
                return None
            if op.outputs:
                first_round.outputs[op.id] = op.outputs[0].value
            steps.append(_Step(key, op.name, op.inputs, op.kwnames, op.id))
        return steps

    def _chain(self, round_: _Round, index: int) -> None:
        """Issue call `index` of a later round.  The calls of the round that read its result are issued
        once it returns: on its worker, before its future is done, so the run never reaches one of them
        before it is pending."""
        step = round_.steps[index]
        try:
            values = Slice(step.inputs)(round_.env)
        except Exception:  # noqa: BLE001 - NotComputable, or glue over a result that raises: in turn
            with self.lock:
                self.partial.add(step.key)
            return
        readers = any(step.op in _deps(other) for other in round_.steps)

        def then(result: Any) -> None:
            if overloaded(result):
                return  # (not served: the run makes it again, and its readers in their turn)
            with self.lock:
                round_.env.outputs[step.op] = result
                ready = round_.ready()
            for reader in ready:
                self._chain(round_, reader)

        self._submit(step.key, step.name, values, step.kwnames, then if readers else None)

    def _inner_loops_alike(
        self, item: ValueRef, others: list[ValueRef], inner: Sequence[LoopRecord], env: Env, changed: Carried
    ) -> dict[int, list[int]] | None:
        """Will the loops the first round (of `item`) ran (`inner`) run alike in every round?  Each must
        have run out over sequences that are either the same for every item of the loop (`for aspect
        in ASPECTS` inside `for d in docs`), or the later rounds' own, made by the same recipes from
        their items (`for w in d.split()`): those are returned, by their index in `inner`, with how
        many rounds they run in each round of the loop (see `_inner_rounds`).  The calls of the later
        rounds, theirs included, are then issued at once, and the inner loops issue nothing more in
        those rounds (`LoopState.issued`).  None when one will not do."""
        if changed.read_by(walked for record in inner for walked in record.sequences):
            return None
        varying: dict[int, list[int]] = {}
        for index, record in enumerate(inner):
            lengths, same, countable = [len(record.op_starts)], True, True
            for other in others[1:]:
                made = []
                for walked in record.sequences:
                    try:
                        (again,) = Slice(_with_item((walked,), item, other))(env)
                    except NotComputable:
                        return None
                    same = same and same_value(again, walked.value)
                    made.append(again)
                sized = all(type(sequence) in _SEQUENCES for sequence in made)
                countable = countable and sized
                lengths.append(min(map(len, made), default=0) if sized else 0)  # (zip(): its shortest)
            if not same:
                if not countable or lockstep(record.iterable)[0] is reversed:
                    return None
                varying[index] = lengths
        return varying

    def _submit(
        self,
        key: SiteKey,
        name: str,
        values: Sequence[Any],
        kwnames: tuple[str, ...],
        then: Callable[[Any], None] | None = None,
    ) -> None:
        """Issue one call ahead; `then(result)` runs on its worker once it has returned, before its
        future is done."""
        callee, *values = values
        n = len(values) - len(kwnames)
        args, kwargs = tuple(values[:n]), dict(zip(kwnames, values[n:], strict=True))
        started: list[float] = []
        made = self.follow(callee)  # (a helper of the user's: through its own jitted function)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started.append(time.perf_counter())
            result = made(*args, **kwargs)
            if then is not None:
                with contextlib.suppress(Exception):  # (a failed prediction costs time, never the call)
                    then(result)
            return result

        with self.lock:
            if self.finished:
                return
            future = issue_ahead(self.executor, self.context, True, callee, args, kwargs, run=timed)
            future.add_done_callback(functools.partial(self._arrived, name))
            ahead = _Ahead.handing(name, callee, args, kwargs, future)
            ahead.started = started
            self.pending.setdefault(key, []).append(ahead)
            self.gated.armed.add(key)
            self.issued += 1

    def _arrived(self, name: str, future: Future[Any]) -> None:
        """An attempt answered as overloaded is counted (the run makes the call in its turn)."""
        withdrawn = None if future.cancelled() else future.exception()
        if isinstance(withdrawn, Withdrawn) and withdrawn.rejected is not None:
            self.stats.per_callee("rejected", name)

    # -- serving ----------------------------------------------------------------------------------

    def dispatch(self, key: SiteKey, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """An armed site: serve the call issued ahead that is this very call, or make it here (with the
        session's events paused: the builder hears of the call from `_served` alone)."""
        session = self.session
        if session is None or not session.pause():
            return self._dispatch(key, fn, args, kwargs)
        try:
            return self._dispatch(key, fn, args, kwargs)
        finally:
            session.resume()

    def _dispatch(self, key: SiteKey, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        frame = _caller(self.gated)
        with self.lock:
            ahead = self._take(key, fn, args, kwargs)
            # none is this call: the prediction for this site is wrong, the calls issued for it go
            # (unless some rounds' calls at the site were not issued: it may be one of those)
            wrong = ahead is None and key not in self.partial and not self._again(key, fn, args, kwargs)
            dropped = self.pending.pop(key, []) if wrong else []
            if dropped:
                self.gated.armed.discard(key)
        for other in dropped:
            other.unused(self.stats)
        started = reached = time.perf_counter()
        try:
            room, served = None, False
            if ahead is not None:
                cancelled, room = take_over(ahead.future)
                if not cancelled:
                    wait_done(ahead.future)
                    served = answered(ahead.future)
            fans = key in self.consumers and ahead is None and self.in_process
            fanned = fan(fn, args, kwargs) if fans else None
            if fanned is not None:
                result = consume(
                    fanned,
                    lambda mapped: call_in_turn(fn, (mapped,), {}, rejected_counter(self.stats, None, fn)),
                    key,
                    self.fanning,
                    self.executor,
                    self.context,
                    self.stats,
                    "served_in_trace",
                    None,
                    self.follow,
                )
            elif not served:  # (none, not started, or e.g. answered as overloaded)
                result, fast = self._in_turn(key, fn, args, kwargs, room)
                if fast:
                    started = reached = time.perf_counter()
            else:
                assert ahead is not None
                self.stats.bump("served_in_trace")
                self.served += 1
                started = ahead.started[0] if ahead.started else started
                result = ahead.future.result()  # (its exception, raised here)
        except BaseException:
            self._served(frame, key, fn, args, kwargs, MISSING, started, reached)
            raise
        self._served(frame, key, fn, args, kwargs, result, started, reached)
        return result

    def _in_turn(
        self, key: SiteKey, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], room: Room | None
    ) -> tuple[Any, bool]:
        """Make the call here, and say whether it is known to have made no slow call.  A helper to
        follow goes through its own jitted function, which may trace it on this thread (the session
        detached meanwhile: the builder hears of the call from `_served`); when its trace or replay
        made no slow call, the time that took is no sign that the call is slow."""
        rejected = rejected_counter(self.stats, None, fn)
        helper = self.follow.helper(fn) if key in self.helpers else None
        if helper is None or self.session is None:
            return call_in_turn(fn, args, kwargs, rejected, room), False
        runs, made = helper.tally()
        with self.session.detached() as detached:
            result = call_in_turn(helper.standing_for(fn) if detached else fn, args, kwargs, rejected, room)
        return result, detached and helper.tally() == (runs + 1, made)

    def _take(self, key: SiteKey, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Ahead | None:
        """The call issued ahead for this site that is this call (under the lock)."""
        waiting = self.pending.get(key, [])
        for index, ahead in enumerate(waiting):
            if same_call(ahead, fn, args, kwargs):
                del waiting[index]
                if not waiting:
                    self.gated.armed.discard(key)
                self.taken.setdefault(key, []).append(ahead)
                return ahead
        return None

    def _again(self, key: SiteKey, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        """Is this call one the site already took from those issued ahead (under the lock)?"""
        return any(same_call(ahead, fn, args, kwargs) for ahead in self.taken.get(key, ()))

    def _served(
        self,
        frame: types.FrameType | None,
        key: SiteKey,
        fn: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        result: Any,
        started: float,
        reached: float,
    ) -> None:
        session = self.session
        if session is not None and frame is not None:
            session.deliver(
                self.builder.served, frame, self.gated.steps[key], fn, args, kwargs, result, started, reached
            )

    def finish(self) -> None:
        """Cancel the calls issued ahead that the run did not reach; count those under way as wasted."""
        with self.lock:
            self.finished = True
            left = [ahead for waiting in self.pending.values() for ahead in waiting]
            self.pending.clear()
            self.taken.clear()
            self.gated.armed.clear()
        for ahead in left:
            ahead.unused(self.stats)
        # what refers back to this object (the builder's hook, the session, frames) goes now: a trace
        # leaves nothing for the cyclic collector
        self.builder.on_round = None
        self.builder.untaken.clear()  # (frames, and the objects the rounds changed or read)
        self.builder.changes = self.builder.contents_read = None
        self.listener.dispatching.clear()
        self.session = None


@dataclass(frozen=True)
class _Upto:
    """How far a loop's first round is judged by what the trace saw: to its end, or to a branch after
    one of its calls (`tail`: what the code from there on may do, read statically, see
    `arms.round_tail`).  `mark` is the builder's `round_mark()` there, `decisions` its decisions and
    `ops` its operations: those of the round before `ops` are the calls issued for later rounds."""

    mark: RoundMark
    decisions: int
    tail: Tail | None
    ops: int


def _tails(b: GraphBuilder, fs: FrameState, state: LoopState) -> list[_Upto]:
    """The first round up to a branch its frame took after one of the round's calls (a branch on a
    result, or on what the round carries: `if best is None or s > best[0]: best = (s, d)`), with what
    the rest of the round may do, for each such branch whose rest does no more than `arms.Tail` says:
    the last first.  The rest may make calls of its own (`if "yes" in verdict: out.append(llm(d))`):
    they are made in their turn, and only the calls before the branch go ahead (see `_tail_alike`)."""
    if state.head is None:
        return []
    body = loop_body(fs.info, state.head)
    if body is None:
        return []
    found = []
    for quiet in reversed(fs.quiet_branches):
        if quiet.ops <= state.op_starts[0]:
            break  # (before the round's first call)
        # (from the last call before the branch on, when it runs straight to the branch: `s =
        # judge(c)`, then a test that reads `best`; what the tail assigns, the code before it must not
        # read)
        last = b.ops[quiet.ops - 1]
        if b.call_facts[last.id].code is not fs.info.code:
            continue  # (the round's calls are the frame's own: see `_steps`)
        call = last.site.offset
        after = _straight(fs.info, call, quiet.offset)
        tail = None
        if after is not None and len(after) > 1:
            statement = _straight(fs.info, _statement_start(fs.info, call, state.head), call)
            if statement is not None:  # (what the call's statement left on the stack is known)
                tail = round_tail(fs.info, after[1], body.offsets, state.head, warm=(*statement, call))
        if tail is None:
            tail = round_tail(fs.info, quiet.offset, body.offsets, state.head)
        if tail is not None:
            found.append(_Upto(quiet.mark, quiet.decisions, tail, quiet.ops))
    return found


def _straight(info: CodeInfo, start: int | None, until: int) -> list[int] | None:
    """The instructions from `start` on, until `until` (not included), when the code runs from one to
    the other without a jump; else None."""
    run: list[int] = []
    offset = start
    while offset is not None and offset != until:
        ins = info.instrs[offset]
        run.append(offset)
        offset = ins.next if ins.target is None else None
    return run if offset == until else None


def _statement_start(info: CodeInfo, call: int, head: int) -> int | None:
    """The first instruction of the statement (of the loop at `head`) that holds the call at `call`:
    the last one before it where the stack holds only what the loop keeps there."""
    depth = info.instrs[head].depth
    before = [offset for offset, ins in info.instrs.items() if offset <= call and ins.depth == depth]
    return max(before) if before else None


def _tail_alike(
    b: GraphBuilder,
    fs: FrameState,
    state: LoopState,
    upto: _Upto,
    recipes: Sequence[ValueRef],
    walked: list[Any],
) -> bool:
    """Does the tail of a loop's rounds (see `_tails`) leave every later round's calls as the recipes
    say, whichever way its branches go?  What it assigns and changes, no code of the round before it
    reads by name; what it changes in place is immutable (`n += 1`) or a container the glue made
    (`kept.append(d)`), in a local the loop does not assign, and no recipe or item reads that
    container; what it hands a call whole is built-in data (not an object whose methods the call may
    run: `print(v, file=sink)`); and what it calls is known to be pure (`max`, `print`, a method of
    str), or is a callee the first round called (`out.append(llm(d))` under `if "yes" in
    verdict:`), whose calls in the tail are made in their turn.  That callee was traced in the first
    round: what it changed there (what it was handed, the module state a helper changes) the
    builder counted, no recipe reads (`build.carried`) and no callee issued ahead reads
    (`_callees_alike`); and its own code stores no attribute, global or cell
    (`purity.stores_state`: a helper setting `CFG.mode` would change what a later round's call
    reads, unseen), and it reaches no container the code before the tail reads
    (`_hands_nothing_read`).  A callee the first round did not call (its branch went the other way)
    is not known: the rounds go one at a time."""
    tail = upto.tail
    body = loop_body(fs.info, state.head) if state.head is not None and tail is not None else None
    if body is None or tail is None:
        return False
    round_ = b.ops[state.op_starts[0] :]
    traced = [op.inputs[0].value for op in round_ if op.op_type is OpType.CALL and op.inputs]
    requests = False  # (does the tail make slow calls?)
    for scope, name, attr in tail.calls:
        if scope == "local" and name in body.stored:
            return False
        value = _value_of(fs, (scope, name))
        if attr is not None and value is not _UNBOUND:
            value = peek_attr(value, attr)
        if value is _UNBOUND or value is MISSING:
            return False
        if purity.classify(value) is purity.Effect.PURE:
            continue
        if (
            not any(same_value(value, t) for t in traced)
            or purity.stores_state(value)
            or purity.sets_attributes(value)
        ):
            return False  # (not traced in the first round, or it stores state a later call may read)
        requests = True
    for scope, name in tail.handed:
        if scope == "local" and name in tail.stores:
            continue  # (made in the tail: a result, or a value of built-in data it computed)
        value = _value_of(fs, (scope, name))
        if not plain(value) and purity.classify(value) is not purity.Effect.PURE:
            return False  # (`map(ord, answer)` hands a pure function: it changes nothing)
    before = [
        fs.info.instrs[offset]
        for offset in body.offsets - tail.offsets - tail.kept
        if offset in fs.info.instrs
    ]
    named = [name for ins in before for name in names_loaded(ins)]
    read = {name for scope, name in named if scope == "local"}
    if requests and not _hands_nothing_read(fs, tail, named, recipes):
        return False
    unchangeable = _unchangeable(fs, body, walked)
    changed = {name for name in tail.changed if not unchangeable(("local", name))}  # (`d.strip()`)
    if read & (tail.stores | changed):
        return False
    # (what the recipes read, the sequences the loop walks, a view's dict, and their items)
    held = {id(ref.value) for ref in walk(recipes)}
    for sequence in (state.iterable.value, *(part.value for part in lockstep(state.iterable)[1])):
        held |= {id(sequence), id(getattr(sequence, "mapping", sequence))}
    held |= {id(item) for sequence in walked if not isinstance(sequence, range) for item in sequence}
    for name in changed:
        value = _value_of(fs, ("local", name))
        if immutable(value):
            continue
        ref = fs.locals.get(name)
        if ref is None or ref.source is not Source.EXPR or name in body.stored or id(value) in held:
            return False
    return True


def _hands_nothing_read(fs: FrameState, tail: Tail, before: list[Name], recipes: Sequence[ValueRef]) -> bool:
    """A slow call in the tail may change what it is handed and what that holds (`tool(d, box["h"])`
    appends to the list in `box`): no name the tail loads may reach a container that the round's
    code before the tail, or a recipe, reads; and each must hold built-in data."""
    outside = _containers([_value_of(fs, name) for name in before] + [ref.value for ref in walk(recipes)])
    callees = {(scope, name) for scope, name, _ in tail.calls} - tail.handed  # (checked above)
    for name in tail.loaded - callees:
        held = _value_of(fs, name)
        if name[0] == "local" and name[1] in tail.stores or callable(held):
            continue  # (made in the tail itself; a callee)
        if immutable(held):
            continue
        if not plain(held) or _containers([held]) & outside:
            return False
    return True


def _value_of(fs: FrameState, name: Name) -> Any:
    """What a name of the frame holds now: a local, or a global (else a built-in); `_UNBOUND` if none."""
    scope, key = name
    if scope == "local":
        return fs.frame.f_locals.get(key, _UNBOUND)
    return fs.frame.f_globals.get(key, getattr(builtins, key, _UNBOUND))


def _containers(values: list[Any]) -> set[int]:
    """The ids of the lists, dicts and sets in `values`, and in the built-in containers they hold."""
    found: set[int] = set()
    todo = list(values)
    while todo:
        current = todo.pop()
        if type(current) in (list, dict, set):
            if id(current) in found:
                continue
            found.add(id(current))
        if type(current) in (list, tuple, set, frozenset):
            todo.extend(current)
        elif type(current) is dict:
            todo.extend(current.keys())
            todo.extend(current.values())
    return found


def _taken_whole(b: GraphBuilder, fs: FrameState) -> bool:
    """Is the generator expression running in `fs` handed alone to a call that takes every item and
    fills no container that exists already (`"\n".join(...)`, `list(...)`, `sum(...)`; not `any()`,
    which may stop at any item, nor `out.extend(...)`, whose growing list a round may read)?"""
    generator = fs.generator
    parent = b.frame_state(fs.frame.f_back) if generator is not None and fs.frame.f_back else None
    if generator is None or parent is None or parent.pending is None or parent.pending.opname not in CALL_OPS:
        return False
    callee_ref, args, kwnames, star = b.call_layout(parent, parent.pending, parent.operands)
    callee = parent.callee if parent.callee is not MISSING else callee_ref.value
    if star or kwnames or len(args) != 1 or not same_generator(args[0], generator):
        return False
    return takes_all(callee) and type(getattr(callee, "__self__", None)) not in purity.MUTABLE_DATA


def _callees_alike(b: GraphBuilder, state: LoopState, issue: Sequence[_Step]) -> bool:
    """The first round changed objects in place (`METRICS.append(row)`, `notes.append(d)`): the calls
    issued for the later rounds run before those rounds change them, so no callee may read them,
    through its module's globals (`purity.module_state`) or as an object it holds (a client keeping
    the list).  (A recipe reading them is refused as reading what the round carries.)"""
    changed = [obj for obj, _, _ in (b.changes or [])[state.first_changes :]]
    if not changed:
        return True
    for step in issue:
        callee = step.inputs[0].value
        module = purity.module_state(callee)
        read = [where.get(name) for where, name in (*module.reads, *module.writes)]
        if any(value is obj for value in read for obj in changed):
            return False  # (`llm_with_history` reading the global HISTORY)
        if any(holds(callee, obj) for obj in changed):
            return False  # (a client keeping the list)
    return True


def _inner_loops(b: GraphBuilder, state: LoopState, ended: RoundMark) -> Sequence[LoopRecord] | None:
    """The loops the first round of `state`'s loop ran out (until `ended`, a `round_mark`); None when
    it left one by break: where the others leave theirs is not known."""
    if ended.iters != state.first_mark.iters:
        return None
    inner = b.loops[state.first_mark.loops : ended.loops]
    if any(index < state.decision_starts[0] for record in inner for index in record.own_decisions):
        return None
    return inner


def _inner_rounds(
    b: GraphBuilder,
    inner: Sequence[LoopRecord],
    varying: Mapping[int, list[int]],
    issue: list[_Step],
    env: Env,
) -> Callable[[int], list[_Step]] | None:
    """What round k of the loop calls, before its item is put in (see `_with_item`): the first round's
    calls, where each inner loop over a sequence of the round's own (`varying`, see
    `_inner_loops_alike`) runs as many rounds as round k's sequence has, each its first round's calls
    made for its item.  None unless those calls can be so made: every round of the inner loop made
    the same calls, which its first round's made for its item give back (at least two rounds, so
    that an item put in no place shows), on no branch of its own, and nothing reads their results."""
    first_round = dataclasses.replace(env, outputs=dict(env.outputs))
    for step in issue:  # (the results of the first round, for recipes reading them)
        op = b.ops[step.op]
        if op.outputs:
            first_round.outputs[op.id] = op.outputs[0].value
    spans: dict[int, tuple[range, list[_Step], ValueRef, ValueRef]] = {}
    for index in varying:
        record = inner[index]
        if record.decision_starts and record.decision_starts[0] != record.decision_end:
            return None  # (a branch in its rounds: those past the first round's count are not checked)
        starts = record.op_starts
        body = (starts[1] if len(starts) > 1 else record.op_end) - starts[0]
        if not body:
            continue  # (no call in it)
        ends = (*starts[1:], record.op_end)
        if len(starts) < 2:
            return None
        if any(end - start != body for start, end in zip(starts, ends, strict=True)):
            return None
        span = range(starts[0], record.op_end)
        if any(_deps(step) & set(span) for step in issue):
            return None  # (a call reading an inner call's result: its recipe has the first round's count)
        template = [step for step in issue if starts[0] <= step.op < starts[0] + body]
        first = _first_item(round_item(b, record.iterable, 0), template)
        for j in range(1, len(starts)):
            traced = [step for step in issue if starts[j] <= step.op < starts[j] + body]
            made = _inner_made(template, first, round_item(b, record.iterable, j))
            if len(traced) != len(made) or any(
                all(new is old for new, old in zip(again.inputs, step.inputs, strict=True))
                for again, step in zip(made, template, strict=True)
            ):
                return None  # (a call the item was put in no place of: it would show in no round)
            for again, step in zip(made, traced, strict=True):
                try:
                    values = Slice(again.inputs)(first_round)
                except NotComputable:
                    return None
                if again.key != step.key or not all(
                    same_value(value, ref.value) for value, ref in zip(values, step.inputs, strict=True)
                ):
                    return None
        spans[index] = (span, template, first, record.iterable)
    if not spans:
        return lambda k: issue
    inside = [span for span, _, _, _ in spans.values()]

    def rounds_of(k: int) -> list[_Step]:
        steps = [step for step in issue if not any(step.op in span for span in inside)]
        for index, (_, template, first, iterable) in spans.items():
            for j in range(varying[index][k]):
                steps += _inner_made(template, first, round_item(b, iterable, j))
        return steps

    return rounds_of


_COMPREHENSIONS = frozenset({"<listcomp>", "<setcomp>", "<dictcomp>"})


def _keeps_to_itself(fs: FrameState, state: LoopState, record: LoopRecord) -> bool:
    """Does nothing of the rest of the round read what an inner loop's rounds assigned (its loop
    variable, `title = line`, `count += 1`)?  Those hold what its last round left, and that loop runs
    another number of rounds in later rounds.  A comprehension's frame keeps its locals to itself (on
    3.10/3.11); an inner loop of the round's own code must assign no local that the rest of the
    loop's body loads."""
    code = fs.info.code
    names = (code.co_name, getattr(code, "co_qualname", code.co_name))  # (a site names the latter, 3.11+)
    if record.site.file != code.co_filename or record.site.code not in names:
        return record.site.code.rpartition(".")[2] in _COMPREHENSIONS
    if state.head is None or record.site.offset not in fs.info.instrs:
        return False
    inner, outer = loop_body(fs.info, record.site.offset), loop_body(fs.info, state.head)
    if inner is None or outer is None:
        return False
    rest = outer.offsets - inner.offsets
    loaded = {
        name
        for off in rest
        if off in fs.info.instrs and fs.info.instrs[off].opname != "LOAD_FAST_AND_CLEAR"
        for name in loaded_names(fs.info.instrs[off])
    }  # (LOAD_FAST_AND_CLEAR: an inlined comprehension keeps what its variable held, 3.12+)
    return not loaded & set(inner.stored)


def _first_item(made: ValueRef, template: list[_Step]) -> ValueRef:
    """An inner loop's first item as its first round's calls read it: a counter of enumerate() is put
    in place by identity (see `_with_item`), so the very counter ref they hold stands for the one
    `round_item` made again."""
    parts = _parts(made)
    if not any(part.counter for part in parts):
        return made
    held = [ref for ref in walk([ref for step in template for ref in step.inputs]) if ref.counter]
    found = []
    for part in parts:
        same = [ref for ref in held if _same_place(ref, part) and ref.value == part.value]
        found.append(same[0] if part.counter and len(same) == 1 else part)
    return made.replaced(operands=tuple(found))


def _inner_made(template: list[_Step], first: ValueRef, other: ValueRef) -> list[_Step]:
    """An inner loop's first round's calls made for the round of item `other`."""
    return [dataclasses.replace(step, inputs=_with_item(step.inputs, first, other)) for step in template]


@dataclass(frozen=True)
class _Branches:
    """The branches on values a loop's first round took (`guards`: each as the check that it goes
    the same way), and whether a round that goes another way leaves the next round the state the
    first left it (`rounds_alike_after`: every arm not taken is one `leaves_rounds_alike`)."""

    guards: tuple[Guard, ...]
    rounds_alike_after: bool

    def taken_alike(self, item: ValueRef, other: ValueRef, env: Env) -> bool:
        """Does the round of item `other` take every branch the first round (of `item`) took, the way
        it took it?  (A check that cannot be computed says no.)"""
        for guard in self.guards:
            (ref,) = _with_item((guard.ref,), item, other)
            if dataclasses.replace(guard, ref=ref).check(env) is not None:
                return False
        return True


def _branches(
    b: GraphBuilder,
    fs: FrameState,
    state: LoopState,
    upto: _Upto,
    inner: Sequence[LoopRecord],
    walked: list[Any],
) -> _Branches | None:
    """The branches the first round of `state`'s loop took (on values that depend on no result:
    `if not d.strip(): continue`, `"?" in d`) until `upto`, other than its inner loops' lengths; None
    when one is not such a branch of the loop's own frame, or a conditional jump went unrecorded."""
    own = {index for record in inner for index in record.own_decisions}
    first = state.decision_starts[0]
    decided = [
        (index, d) for index, d in enumerate(b.decisions[first : upto.decisions], first) if index not in own
    ]
    # a loop the round left by break or return where branches on values said (see
    # `handlers.iteration.pop_top`): round k leaves its own where the first did when those branches go
    # the same way and it has as many items (a guard); one that has fewer goes another way
    left = [decision_guard(d) for _, d in decided if d.kind is DecisionKind.MORE]
    if None in left:
        return None
    decided = [(index, d) for index, d in decided if d.kind is not DecisionKind.MORE]
    if len(decided) != upto.mark.tests - state.first_mark.tests:
        return None  # (one under a branch on a result, say: no decision records it)
    body = loop_body(fs.info, state.head) if decided and state.head is not None else None
    unchangeable = _unchangeable(fs, body, walked) if body is not None else None
    guards = [guard for guard in left if guard is not None]
    alike = not left
    for index, decision in decided:
        guard = decision_guard(decision)
        where = b.untaken.get(index)
        if guard is None or decision.kind not in _VALUE_BRANCHES or where is None or where[0] is not fs:
            return None
        guards.append(guard)
        _, start, until = where
        alike = (
            alike
            and body is not None
            and unchangeable is not None
            and leaves_rounds_alike(fs.info, start, until, body.offsets, body.head, unchangeable)
        )
    return _Branches(tuple(guards), alike)


def _unchangeable(fs: FrameState, body: LoopBody, walked: list[Any]) -> Callable[[tuple[str, str]], bool]:
    """Which names hold, in every round of the loop of `body`, objects no code can change: the loop's
    variable when every item is immutable built-in data, a local the body never assigns or a global
    that holds such data now (the first round changed nothing that is not the glue's own)."""
    following = fs.info.instrs[body.head].next
    store = fs.info.instrs[following] if following is not None else None
    target = store.argval if store is not None and store.opname == "STORE_FAST" else None

    def unchangeable(name: tuple[str, str]) -> bool:
        scope, key = name
        if scope == "local" and key == target:  # (its items: each walked sequence's, and counters)
            return all(immutable(item) for sequence in walked for item in sequence)
        if scope == "local" and key in body.stored:
            return False
        where = fs.frame.f_locals if scope == "local" else fs.frame.f_globals
        return immutable(where.get(key, _UNBOUND))

    return unchangeable


def _fixed_locals(b: GraphBuilder, state: LoopState) -> dict[Local, Any]:
    """The objects glue made before the loop and stored in locals the loop does not assign (a helper
    defined in the function, `def prompt(d): ...`): no recipe rebuilds them, but every round sees
    them (see `GraphBuilder.local_values`)."""
    if b.root is None:
        return {}
    stored = {name for frame, name in state.stored if frame == id(b.root.frame)}
    return {local: value for local, value in b.local_values.items() if local.name not in stored}


def _caller(gated: Gated) -> types.FrameType | None:
    """The clone's frame whose gated site is being dispatched (a few frames up this thread's stack)."""
    frame: types.FrameType | None = sys._getframe(1)
    for _ in range(8):
        if frame is None or frame.f_code in gated.offsets:
            return frame
        frame = frame.f_back
    return None


def _dispatcher(first: FirstCall) -> Dispatch:
    """`first.dispatch`, for the clone's sites to hold without holding `first` (and the trace)."""
    ref = weakref.ref(first)

    def dispatch(key: SiteKey, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        target = ref()
        if target is None:  # (the clone outlived its trace)
            return fn(*args, **kwargs)
        return target.dispatch(key, fn, args, kwargs)

    return dispatch


class _Translated:
    """The builder's view of a gated clone: the original's offsets, without what the gates add."""

    def __init__(self, builder: GraphBuilder, gated: Gated) -> None:
        self.builder = builder
        self.gated = gated
        self.dispatching: set[types.FrameType] = set()  # frames inside a gated site's dispatch

    def instruction(self, frame: types.FrameType, offset: int) -> None:
        offsets = self.gated.offsets.get(frame.f_code)
        if offsets is not None:
            original = offsets.get(offset)
            if original is None:
                return  # an instruction the gate added
            offset = original
        self.builder.instruction(frame, offset)

    def call(self, frame: types.FrameType, callee: Any, arg0: Any) -> None:
        if not self.gated.inserted(callee):
            self.builder.call(frame, callee, arg0)

    def entered(self, caller: types.FrameType, callee_frame: types.FrameType) -> None:
        if Gated.dispatching(callee_frame.f_code):
            self.dispatching.add(caller)
            return
        self.builder.entered(caller, callee_frame)

    def returned(self, caller: types.FrameType, value: Any, code: types.CodeType) -> None:
        if caller in self.dispatching:
            self.dispatching.discard(caller)
            return
        self.builder.returned(caller, value, code)

    def raised(self, frame: types.FrameType, exc: BaseException) -> None:
        self.builder.raised(frame, exc)

    def follows(self, frame: types.FrameType) -> bool:
        return self.builder.follows(frame)

    def pending_codes(self, frame: types.FrameType) -> tuple[types.CodeType, ...]:
        return self.builder.pending_codes(frame)


def _in_clone(clone: types.CodeType, mapping: dict[int, int], offsets: frozenset[int]) -> frozenset[int]:
    """`offsets`, offsets of the original, as the clone's: an instruction a gate added belongs where
    the copied instruction before it does."""
    inside: set[int] = set()
    here = False
    for unit in range(0, len(clone.co_code), 2):
        original = mapping.get(unit)
        if original is not None:
            here = original in offsets
        if here:
            inside.add(unit)
    return frozenset(inside)


def _looped_calls(code: types.CodeType) -> list[int]:
    """The offsets of the call sites of `code` that a dispatcher may take, inside a loop."""
    info = code_info(code)
    return [call.offset for call in find_calls(code) if call.reason is None and in_loop(info, call.offset)]


def _issuable(callee: Any, args: Sequence[ValueRef]) -> bool:
    """A Python callee that may be called ahead: not a cache wrapper, a delay or a lock's method (for
    an async function's awaited call, `ir.values.awaited_call`, the callee it awaits)."""
    if awaits(callee) and args:
        callee = args[0].value
    return (
        python_code(callee) is not None
        and memo_wrapper(callee) is None
        and not purity.reaches_memo(callee)  # (two calls at once could both miss a cache entry)
        and not never_ahead(callee)
    )


def _arguments(inputs: Sequence[ValueRef]) -> Sequence[ValueRef]:
    """A call's arguments (for an awaited call, those packed with the callee it awaits)."""
    callee, *args = inputs
    return args[1:] if awaits(callee.value) and args else args


def _handed_as_is(b: GraphBuilder, ref: ValueRef) -> bool:
    """Immutable built-in data, a list or dict displayed in the call (`_displayed`), or a tuple
    displayed of such (the arguments an awaited call packs)."""
    if immutable(ref.value) or _displayed(b, ref):
        return True
    return (
        ref.source is Source.EXPR
        and ref.kind is ExprKind.TUPLE
        and not ref.path
        and all(_handed_as_is(b, operand) for operand in ref.operands)
    )


def _displayed(b: GraphBuilder, ref: ValueRef) -> bool:
    """A list or dict of built-in data displayed in the call itself (`messages=[{"role": "user",
    "content": p}]`), which the code keeps nowhere (`Effects.retain`): only the callee sees it, so a
    copy made ahead is the same."""
    return (
        ref.source is Source.EXPR
        and ref.kind in (ExprKind.LIST, ExprKind.DICT)
        and id(ref.operands) not in b.retained
        and plain(ref.value)
    )


def _walked(iterable: ValueRef, env: Env) -> list[Any]:
    """The sequences a loop over `iterable` walks, when its items are read without running user code:
    a list, tuple, range or dict (or a dict's view), or enumerate() or zip() of them called in the
    code (none otherwise; not reversed(), whose items are paths the code may name too, `docs[-1]`).
    Each is what its recipe makes (a range() whose object the trace did not see, a C call's result on
    3.12+, is made again so), and none if that is not the sequence the loop walks: the later rounds'
    items are read through those recipes (`list(gen)` after `next(gen)` is not the list of every item
    the generator made)."""
    if lockstep(iterable)[0] is reversed:
        return []
    sequences = _sequences(iterable)
    try:
        made = list(Slice(tuple(sequences))(env))
    except NotComputable:
        return []
    if not all(type(value) in _SEQUENCES for value in made):
        return []
    seen = [sequence.value for sequence in sequences]
    if any(
        value is not MISSING and not _same_items(again, value)
        for again, value in zip(made, seen, strict=True)
    ):
        return []
    return made


def _same_items(a: Any, b: Any) -> bool:
    """Do the sequences `a` and `b` (see `_SEQUENCES`) give the same items, the same way?"""
    if type(a) is not type(b):
        return False
    if type(a) is range:
        return bool(a == b)
    return same_value(list(a), list(b)) if type(a) in _VIEWS else same_value(a, b)


def _like(ref: ValueRef, counters: list[ValueRef]) -> bool:
    """Is `ref` a loop counter with the value of one of `counters` (maybe a copy of it: the trace may
    wrap what a local holds, and another loop's counter may hold the same value)?"""
    return ref.counter and any(ref.value == counter.value for counter in counters)


def _walks_alone(b: GraphBuilder, state: LoopState, inner: Sequence[LoopRecord]) -> bool:
    """Does no other loop under way, nor one the first round ran, walk a sequence this loop walks
    (`for a in docs: for b in docs`)?  Its items would be the same paths as this loop's
    (`docs[0]` for both in the first round), which `_with_item` could not tell apart."""
    ours = _sequences(state.iterable)
    theirs = [seq for other in b.iters.values() if other is not state for seq in _sequences(other.iterable)]
    theirs += [seq for record in inner for seq in record.sequences]
    return not any(_same_place(a, other) for a in ours for other in theirs)


def _sequences(iterable: ValueRef) -> list[ValueRef]:
    """What a loop over `iterable` walks: the sequences of enumerate() or zip(), else `iterable`."""
    return lockstep(iterable)[1] or [iterable]


def _same_place(a: ValueRef, b: ValueRef) -> bool:
    """Do `a` and `b` name the same value the same way (so their paths could not be told apart)?"""
    return (
        a.source is b.source
        and a.name == b.name
        and a.path == b.path
        and a.kind is b.kind
        and _same_operands(a.operands, b.operands)
    )


def _parts(item: ValueRef) -> tuple[ValueRef, ...]:
    """What a round's item is made of: `(i, docs[k])` of enumerate(), `(a[k], b[k])` of zip(), else
    the item."""
    return item.operands if item.source is Source.EXPR and item.kind is ExprKind.TUPLE else (item,)


def _same_item(item: ValueRef, made: ValueRef) -> bool:
    """Is the first round's item the ref `round_item` makes for it (the paths into the sequences it
    walks, a counter), so that `_with_item` can put another round's in its place?"""
    parts, others = _parts(item), _parts(made)
    return len(parts) == len(others) and all(
        _same_place(part, other)
        and part.counter == other.counter
        and (not part.counter or part.value == other.value)
        and (part.counter or bool(part.path))
        for part, other in zip(parts, others, strict=True)
    )


def _with_item(refs: tuple[ValueRef, ...], item: ValueRef, other: ValueRef) -> tuple[ValueRef, ...]:
    """`refs` of the first round (whose item is `item`), made for the round of item `other`: each part
    of the first round's item (see `_parts`) replaced by the other's."""
    pairs = list(zip(_parts(item), _parts(other), strict=True))
    done: dict[int, ValueRef] = {id(item): other, **{id(part): new for part, new in pairs}}

    def visit(ref: ValueRef, operands: tuple[ValueRef, ...]) -> ValueRef:
        for part, new in pairs:
            if _below(ref, part):  # a path into the item (`d.title`, `d[0]`)
                return ref.replaced(path=(*new.path, *ref.path[len(part.path) :]))
        if all(new is old for new, old in zip(operands, ref.operands, strict=True)):
            return ref
        return ref.replaced(operands=operands)

    return tuple(fold(ref, done, visit) for ref in refs)


def _deps(step: _Step) -> frozenset[int]:
    """The operations whose results a step's recipes read."""
    return frozenset().union(*(ref.deps for ref in step.inputs))


def _own_copy(item: ValueRef, first: ValueRef) -> bool:
    """Is `item` the copy the loop variable got of a displayed list's `first` item, one no other ref
    can be told from by its parts (not itself a display, whose items are read as its operands)?"""
    return (
        item is not first
        and _same_place(item, first)
        and (item.value is first.value or first.value is MISSING)
        and not (item.source is Source.EXPR and item.kind in _DISPLAYS)
    )


def _same_head(ref: ValueRef, item: ValueRef) -> bool:
    """Does `ref` name the value `item` names, or a path into it, so that it may stand for `item`?
    (A constant: only one holding the very same object.)"""
    return (
        ref.source is item.source
        and ref.name == item.name
        and ref.op == item.op
        and ref.kind is item.kind
        and _same_operands(ref.operands, item.operands)
        and ref.path[: len(item.path)] == item.path
        and (item.source is not Source.CONST or ref.value is item.value)
    )


def _below(ref: ValueRef, item: ValueRef) -> bool:
    """Is `ref` the value `item` names (a copy of it: the local it was stored in, say) or a path into
    it (`d.title`, `d[0]`)?"""
    return (
        bool(item.path)
        and ref.source is item.source
        and ref.name == item.name
        and _same_operands(ref.operands, item.operands)
        and ref.kind is item.kind
        and ref.path[: len(item.path)] == item.path
    )


def _same_operands(a: tuple[ValueRef, ...], b: tuple[ValueRef, ...]) -> bool:
    """The same operands (a path into a constant wraps it anew at every step: see `values.step`)."""
    return a is b or (len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True)))

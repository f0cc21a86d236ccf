"""Build: what the arm of a branch the run did not take could do, read from the bytecode.

The trace sees only the arm a branch on results took.  A replay whose results go the other way runs
the other arm, which may assign locals, change objects in place, or call anything, before the paths
meet again.  A value read after they meet, or an object changed there, may then not be what the
trace saw: where the arms meet, the builder makes what follows owe that branch (`owe_untaken`).
`untaken_arm` reads the arm statically: every instruction reachable from its first one without
passing the point where the paths meet; a straight arm slot by slot (which names each call is
handed), an arm with branches of its own as a whole.  Not followed: an exception raised in the arm
into a handler of the function (that path is one no trace saw, like any exception the trace did
not see).
"""

from __future__ import annotations

import dis
import functools
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from xcs_bc._compat import PY311, PY313
from xcs_bc.build import purity
from xcs_bc.build.codeinfo import COND_POP_JUMPS, UNCONDITIONAL_JUMPS, CodeInfo, Instr
from xcs_bc.build.liveness import LOCAL_LOADS, LOCAL_STORES, arg_names, loaded_names, read_after, stored_names
from xcs_bc.build.trace import Fork
from xcs_bc.ir import MISSING, Operation, ValueRef
from xcs_bc.ir.values import callee_key, made_under, peek_attr, unknown

if TYPE_CHECKING:
    from xcs_bc.build.builder import GraphBuilder
    from xcs_bc.build.frames import Control, FrameState

__all__ = [
    "Arm",
    "ArmCall",
    "Callee",
    "Tail",
    "leaves_rounds_alike",
    "owe_untaken",
    "round_tail",
    "untaken_arm",
    "worth_learning",
]


Name = tuple[str, str]  # ("local" or "global", name)
Callee = tuple[str, str, "str | None"]  # a name, and the attribute of it called (None: the name itself)


@dataclass(frozen=True, slots=True)
class ArmCall:
    """A call in an arm: its callee when the code names it (`llm`, `client.ask`), else None, and the
    locals and globals handed to it as arguments."""

    callee: Callee | None
    args: frozenset[Name]


@dataclass(frozen=True, slots=True)
class Arm:
    """What an arm may do: assign (or delete) the locals `stores`; change in place the objects of the
    names `changed` (a store into an item or an attribute, an in-place operator, or, conservatively,
    anything that takes them but a read); make the calls `calls`; or run code that may do anything
    (`acts`: an import, a store to a global, or a call the arm's straight-line code does not name).
    """

    stores: frozenset[str] = frozenset()
    changed: frozenset[Name] = frozenset()
    calls: tuple[ArmCall, ...] = ()
    acts: bool = False

    def __bool__(self) -> bool:
        return bool(self.stores or self.changed or self.calls) or self.acts

    def __or__(self, other: Arm) -> Arm:
        if not other or other == self:
            return self  # (a loop's test merges its arm once a round)
        return Arm(
            self.stores | other.stores,
            self.changed | other.changed,
            tuple(dict.fromkeys(self.calls + other.calls)),
            self.acts or other.acts,
        )


NOTHING = Arm()

# changes an object it is handed in place (a list += another, `d[k] = v`, `obj.x = v`)
_CHANGES = frozenset(
    {
        "STORE_SUBSCR",
        "DELETE_SUBSCR",
        "STORE_SLICE",
        "STORE_ATTR",
        "DELETE_ATTR",
        *(name for name in dis.opmap if name.startswith("INPLACE_")),
    }
)
# instructions that read values, build new ones, move them on the stack, or jump: none changes an
# object that existed before it (attribute loads are taken as reads, as everywhere in the builder)
_QUIET = frozenset(
    {
        *LOCAL_LOADS,
        "LOAD_CONST",
        "LOAD_SMALL_INT",
        "LOAD_GLOBAL",
        "LOAD_ATTR",
        "LOAD_METHOD",
        "LOAD_ASSERTION_ERROR",
        "RETURN_VALUE",
        "RETURN_CONST",
        "POP_TOP",
        "NOP",
        "NOT_TAKEN",
        "RESUME",
        "CACHE",
        "EXTENDED_ARG",
        "COPY",
        "SWAP",
        "ROT_TWO",
        "ROT_THREE",
        "ROT_FOUR",
        "ROT_N",
        "DUP_TOP",
        "DUP_TOP_TWO",
        "PUSH_NULL",
        "KW_NAMES",
        *UNCONDITIONAL_JUMPS,
        *COND_POP_JUMPS,
        "JUMP_IF_TRUE_OR_POP",
        "JUMP_IF_FALSE_OR_POP",
        "BUILD_TUPLE",
        "BUILD_LIST",
        "BUILD_SET",
        "BUILD_MAP",
        "BUILD_CONST_KEY_MAP",
        "BUILD_STRING",
        "BUILD_SLICE",
        "LIST_APPEND",  # (these five add to a container being built, not to one that existed)
        "SET_ADD",
        "MAP_ADD",
        "LIST_EXTEND",
        "SET_UPDATE",
        "DICT_UPDATE",
        "DICT_MERGE",
        "LIST_TO_TUPLE",
        "FORMAT_VALUE",
        "FORMAT_SIMPLE",
        "FORMAT_WITH_SPEC",
        "CONVERT_VALUE",
        "COMPARE_OP",
        "IS_OP",
        "CONTAINS_OP",
        "UNARY_NEGATIVE",
        "UNARY_NOT",
        "UNARY_INVERT",
        "UNARY_POSITIVE",
        "TO_BOOL",
        "BINARY_SUBSCR",
        "BINARY_SLICE",
        "BINARY_OP",  # (an in-place one is told apart below)
        *(name for name in dis.opmap if name.startswith("BINARY_") and name != "BINARY_OP"),
        "GET_ITER",
        "FOR_ITER",
        "END_FOR",
        "POP_ITER",
        "GET_LEN",
        "UNPACK_SEQUENCE",
        "UNPACK_EX",
        "MAKE_FUNCTION",
        "SET_FUNCTION_ATTRIBUTE",
    }
)
# stores that others see: a closure's cell, a module's namespace
_SHARED_STORES = frozenset({"STORE_DEREF", "DELETE_DEREF", "STORE_NAME", "DELETE_NAME"})
_FIRST_INPLACE = 13  # BINARY_OP's argument for `+=` (NB_INPLACE_ADD); all in-place operators follow it


def untaken_arm(info: CodeInfo, start: int | None, until: int | None) -> Arm:
    """What the code from `start` may do before it reaches `until` (where the arms meet again; None:
    they never do, and the arm runs to the end of the frame)."""
    if start is None or start == until:
        return NOTHING
    return _arm(info, start, until)


@functools.lru_cache(maxsize=4096)
def _arm(info: CodeInfo, start: int, until: int | None) -> Arm:
    try:
        straight = _straight(info, start, until)
    except (IndexError, TypeError, ValueError):  # a shape not followed: read the arm as branching
        straight = None
    if straight is not None:
        return straight
    # branches inside the arm: no stack is followed, every name it reads may be changed by any call
    stores: set[str] = set()
    names: set[Name] = set()
    acts = False
    for offset in _region(info, start, until):
        ins = info.instrs[offset]
        if ins.opname in LOCAL_STORES:
            stores.update(stored_names(ins))
        names.update(names_loaded(ins))
        if ins.opname not in _QUIET and ins.opname not in LOCAL_STORES:
            acts = True  # (a store into an object, too: which one is not followed here)
    return Arm(frozenset(stores), frozenset(names) if acts else frozenset(), (), acts)


def leaves_rounds_alike(
    info: CodeInfo,
    start: int | None,
    until: int | None,
    body: frozenset[int],
    head: int,
    unchangeable: Callable[[Name], bool],
) -> bool:
    """Does the arm from `start` to `until`, one a loop's first round did not take, leave what the
    next round begins with as the arm taken does?  It must stay in the loop's `body` (whose FOR_ITER
    is at `head`: no `break` or `return`), call nothing, take no object but those of names that are
    `unchangeable` in every round (a string item, for `"short " + d`), and assign only locals no later
    round reads before assigning them (`p = "short " + d` in one arm, `p = "long " + d` in the
    other); a `continue` does."""
    arm = untaken_arm(info, start, until)
    if arm.acts or arm.calls or not all(unchangeable(name) for name in arm.changed):
        return False
    if start is not None and start != until and any(at not in body for at in _region(info, start, until)):
        return False
    return not any(read_after(info, head, name) for name in arm.stores)


@dataclass(frozen=True, slots=True)
class Tail:
    """What the rest of a loop's round may do, from a branch on to the loop's next round (see
    `round_tail`): assign the locals `stores`; change in place the objects of the locals `changed`
    (their items, or through a method of theirs) and nothing else; call `calls` (each named by a
    name, or by a name and one attribute, and never a method of a local's object).  `offsets`: its
    code; `kept`: the loads before it whose names it takes from the stack (`out` and its `append` in
    `out.append(llm(d))`).  A method of a value the tail made itself is called only when it is one of
    str's (`answer.strip().lower()`, see `_TEXT_METHODS`).  `handed`: the names whose values a call
    is handed whole (`print(v, file=sink)`, `map(keep, xs)`), which it may change or call; `loaded`:
    every name it loads (a call may be handed what they hold through an item, `box["h"]`)."""

    offsets: frozenset[int]
    kept: frozenset[int]
    stores: frozenset[str]
    changed: frozenset[str]
    calls: frozenset[Callee]
    handed: frozenset[Name]
    loaded: frozenset[Name]


def round_tail(
    info: CodeInfo, start: int, body: frozenset[int], head: int, warm: Sequence[int] = ()
) -> Tail | None:
    """What the code of a loop's round from `start` to the loop's FOR_ITER (at `head`) may do, every
    arm of every branch on the way included (see `Tail`); None when some path leaves the loop
    (`break`, `return`, `raise`), an exception may land in a handler of the loop's body, or an
    instruction may do what `Tail` cannot say (a store to a global, a cell or an attribute, a change
    in place of an object no local names, a call of what the code does not name).  Each stretch
    without a jump into it is followed slot by slot; at a jump target the stack is unknown.  `warm`:
    the instructions that run straight into `start` from where the stack held nothing of the
    statement (`len(llm(d))` after its inner call), followed only for what they leave on it."""
    region = _region(info, start, head)
    if any(offset not in body for offset in region):
        return None
    targets = {info.instrs[offset].target for offset in region}
    stores: set[str] = set()
    changed: set[str] = set()
    calls: set[Callee] = set()
    handed: set[Name] = set()
    named: set[Name] = set()
    stack: list[_Tag] = []
    pending: list[_Tag] = []  # (3.11) the arguments PRECALL took for the next CALL
    loads: list[int | None] = []  # beside `stack`, in `warm`: the load each slot holds a name from
    kept = frozenset[int]()
    previous: Instr | None = None
    for index, offset in enumerate((*warm, *region)):
        ins = info.instrs[offset]
        recording = index >= len(warm)
        if recording and index == len(warm):
            kept = frozenset(load for load in loads if load is not None)
        if recording:
            handler = info.handler_at(offset)
            if handler is not None and handler.target in body:
                return None
            if previous is None or offset in targets or previous.next != offset:
                stack, pending = [], []
        previous = ins
        taken = [stack.pop() if stack else None for _ in range(ins.pops)][::-1]
        taken_loads = [loads.pop() if loads else None for _ in range(ins.pops)][::-1]
        pushed: list[_Tag] = [None] * ins.pushes
        pushed_loads: list[int | None] = [None] * ins.pushes
        names = arg_names(ins)
        name = names[-1] if names else ""
        if ins.opname in LOCAL_LOADS or ins.opname == "STORE_FAST_LOAD_FAST":
            loaded = [name for _, name in names_loaded(ins)]
            if len(loaded) == ins.pushes:
                pushed = [("local", one, None) for one in loaded]
                pushed_loads = [offset] * ins.pushes
        elif ins.opname == "LOAD_GLOBAL":
            pushed[-1 if not PY313 else 0] = ("global", name, None)
        elif ins.opname in ("LOAD_ATTR", "LOAD_METHOD"):
            base = taken[0] if taken else None
            if base is None:
                pushed[0] = (_TEMPORARY, "", name)  # (a method of a value made in the tail)
            elif base[2] is None:
                pushed[0] = (base[0], base[1], name)
                pushed_loads[0] = taken_loads[0]
        elif ins.opname == "PRECALL":
            pending = taken
        if not recording:
            if ins.opname in _CALLS:
                pending = []
            stack.extend(pushed)
            loads.extend(pushed_loads)
            continue
        named.update(names_loaded(ins))
        if ins.opname in LOCAL_STORES:
            stores.update(stored_names(ins))
        elif ins.opname in _CALLS:
            taken, pending = [*taken, *pending], []
            head_slots = taken[: 1 if not PY311 and ins.opname != "CALL_METHOD" else 2]
            tagged = [tag for tag in head_slots if tag is not None]
            if len(tagged) != 1:
                return None
            (callee,) = tagged
            assert callee is not None
            if callee[0] == _TEMPORARY and callee[2] not in _TEXT_METHODS:
                return None
            for slot in taken:  # a method handed on (`map(notes.append, xs)`) changes its object
                if slot is None or slot is callee:
                    continue
                if slot[2] is not None:
                    if slot[0] != "local":
                        return None
                    changed.add(slot[1])
                else:
                    handed.add((slot[0], slot[1]))
            if callee[0] == "local" and callee[2] is not None:
                changed.add(callee[1])  # a method of a local's object: it may change that object
            elif callee[0] != _TEMPORARY:
                calls.add(callee)
        elif ins.opname in _CHANGES or _in_place(ins):
            target = taken[_CHANGED_AT.get(ins.opname, 0)] if taken else None
            if target is None or target[0] != "local" or target[2] is not None:
                return None  # (an object no local names, a global's, one an attribute holds)
            changed.add(target[1])
        elif ins.opname not in _QUIET and ins.opname not in _TAGGED or ins.opname in _ENDS:
            return None
        stack.extend(pushed)
    return Tail(
        frozenset(region),
        kept,
        frozenset(stores),
        frozenset(changed),
        frozenset(calls),
        frozenset(handed),
        frozenset(named),
    )


_TAGGED = frozenset({"PRECALL", "STORE_FAST_LOAD_FAST"})  # (followed above)


_TEMPORARY = "temporary"
# methods of str, which change nothing, and which no built-in container has: one called on a value
# the tail made (`answer.strip().lower()`) is taken to be str's
_TEXT_METHODS = frozenset(
    {
        "strip",
        "lstrip",
        "rstrip",
        "lower",
        "upper",
        "casefold",
        "title",
        "capitalize",
        "startswith",
        "endswith",
        "split",
        "rsplit",
        "splitlines",
        "partition",
        "rpartition",
        "replace",
        "find",
        "rfind",
        "removeprefix",
        "removesuffix",
        "isdigit",
        "isalpha",
        "isalnum",
        "isnumeric",
        "isspace",
        "isupper",
        "islower",
    }
)
# where the object an instruction changes in place is among the slots it takes
_CHANGED_AT = {"STORE_SUBSCR": 1, "STORE_SLICE": 1, "STORE_ATTR": 1}  # (else the first)


def _region(info: CodeInfo, start: int, until: int | None) -> list[int]:
    """The offsets reachable from `start` before `until`, in code order."""
    todo, seen = [start], {start}
    while todo:
        for successor in info.successors(todo.pop()):
            if successor != until and successor not in seen:
                seen.add(successor)
                todo.append(successor)
    return sorted(seen)


_Tag = tuple[str, str, "str | None"] | None  # what a stack slot holds: a name (and an attribute of it)


def _straight(info: CodeInfo, start: int, until: int | None) -> Arm | None:
    """An arm without branches of its own, followed slot by slot: which names each instruction takes,
    and what each call is handed.  None when the arm branches (or its shape is not followed)."""
    stores: set[str] = set()
    changed: set[Name] = set()
    calls: list[ArmCall] = []
    acts = False
    stack: list[_Tag] = []
    pending: list[_Tag] = []  # (3.11) the arguments PRECALL took for the next CALL
    offset: int | None = start
    while offset is not None and offset != until:
        ins = info.instrs[offset]
        last = ins.opname in _ENDS
        if ins.target is not None:
            if ins.opname not in UNCONDITIONAL_JUMPS or ins.target != until:
                return None  # a branch (or a jump elsewhere) inside the arm
            last = True
        taken = [stack.pop() if stack else None for _ in range(ins.pops)][::-1]
        pushed: list[_Tag] = [None] * ins.pushes
        names = arg_names(ins)
        name = names[-1] if names else ""
        if ins.opname in LOCAL_STORES:
            stores.update(stored_names(ins))
            changed.update(_names_of(taken))  # an alias of the object now: conservatively, handed on
        if ins.opname in LOCAL_LOADS or ins.opname == "STORE_FAST_LOAD_FAST":
            loaded = [name for _, name in names_loaded(ins)]
            if len(loaded) == ins.pushes:
                pushed = [("local", one, None) for one in loaded]
        elif ins.opname == "LOAD_GLOBAL":
            pushed[-1 if not PY313 else 0] = ("global", name, None)
        elif ins.opname in ("LOAD_ATTR", "LOAD_METHOD") and taken and taken[0] is not None:
            base = taken[0]
            if base[2] is None:  # `client.ask`: a callee named by a name and one attribute
                pushed[0] = (base[0], base[1], name)
            else:
                changed.add((base[0], base[1]))  # deeper paths are not followed: taken as handed on
        elif ins.opname == "PRECALL":
            pending = taken
        elif ins.opname in _CALLS:
            taken, pending = [*taken, *pending], []
            head = taken[: 1 if not PY311 and ins.opname != "CALL_METHOD" else 2]
            tagged = [i for i, tag in enumerate(head) if tag is not None]
            callee = taken[tagged[0]] if len(tagged) == 1 else None
            rest = [tag for i, tag in enumerate(taken) if not (callee is not None and i == tagged[0])]
            calls.append(ArmCall(callee, frozenset(_names_of(rest))))
            if callee is None:
                changed.update(_names_of(taken))
        elif ins.opname in _CHANGES or _in_place(ins):
            changed.update(_names_of(taken))
        elif ins.opname in _SHARED_STORES or (ins.opname not in _QUIET and ins.opname not in LOCAL_STORES):
            acts = True
            changed.update(_names_of(taken))
        elif ins.opname not in _READS and ins.opname not in LOCAL_STORES:
            changed.update(_names_of(taken))  # put in a container, unpacked...: conservatively, handed on
        stack.extend(pushed)
        if last:
            break
        offset = ins.next
    return Arm(frozenset(stores), frozenset(changed), tuple(calls), acts)


def _names_of(tags: list[_Tag]) -> list[Name]:
    return [(tag[0], tag[1]) for tag in tags if tag is not None]


def names_loaded(ins: Instr) -> list[Name]:
    """The names `ins` loads, each with its scope."""
    if ins.opname == "LOAD_GLOBAL":
        return [("global", arg_names(ins)[-1])]
    return [("local", name) for name in loaded_names(ins)]


_CALLS = frozenset(
    {"CALL", "CALL_KW", "CALL_FUNCTION", "CALL_FUNCTION_KW", "CALL_METHOD", "CALL_FUNCTION_EX"}
)
# instructions that take values only to read them: what they take is not handed on
_READS = frozenset(
    {
        "POP_TOP",
        "BINARY_SUBSCR",
        "BINARY_SLICE",
        "COMPARE_OP",
        "IS_OP",
        "CONTAINS_OP",
        "FORMAT_VALUE",
        "FORMAT_SIMPLE",
        "FORMAT_WITH_SPEC",
        "CONVERT_VALUE",
        "BUILD_STRING",
        "TO_BOOL",
        "UNARY_NOT",
        "GET_LEN",
        "RETURN_VALUE",
        "KW_NAMES",
    }
)
_ENDS = frozenset({"RETURN_VALUE", "RETURN_CONST", "RAISE_VARARGS", "RERAISE"})


def _in_place(ins: Instr) -> bool:
    return ins.opname == "BINARY_OP" and ins.arg is not None and ins.arg >= _FIRST_INPLACE


# -- owing what the arm could do, where the arms meet (the builder's state) ----------------------------


def owe_untaken(b: GraphBuilder, fs: FrameState, entry: Control) -> None:
    """The arms of a branch on results meet again, and a replay may have run the one the trace did
    not: a local it may assign holds, from here on, a value made under that branch (no call after
    it is issued ahead with it); an object it may change in place, or hand to a call that is not
    known to be pure, was changed by the branch; and if it may call anything not known to be pure
    or slow, that counts as a call to a function not known to be pure (whatever existed before it
    may have changed).  A slow call in the arm (the callee of one the run made, or a method of an
    object it made slow calls on) is a request: it may change what it is handed, not its receiver."""
    arm, deps = entry.untaken, entry.cond.deps
    acts, changed = arm.acts, set(arm.changed)
    for call in arm.calls:
        value = _callee_value(b, fs, call.callee)
        kind = _callee_kind(b, value)
        if kind is purity.Effect.PURE:
            continue
        if value is not MISSING:  # a helper of the user's: the module state it changes
            b.change_globals(value, purity.module_state(value), deps, len(b.ops))
        changed |= call.args
        if kind is purity.Effect.UNKNOWN:
            acts = True
            if call.callee is not None and call.callee[2] is not None:
                changed.add((call.callee[0], call.callee[1]))  # the receiver of a method not known
    if acts:
        b.unknown_calls += 1
        b.effects += 1
        b.module_changed[purity.ANY_GLOBAL] = "an arm of a branch the trace did not take"
    for scope, name in changed:
        ref = _ref(b, fs, scope, name)
        if ref is not None and not callable(ref.value) and not isinstance(ref.value, types.ModuleType):
            b.mutate_arg(ref, deps)
    for name in arm.stores:
        ref = _ref(b, fs, "local", name) or unknown(len(b.ops))
        fs.locals[name] = made_under(ref, deps, (entry.cond,))


def _ref(b: GraphBuilder, fs: FrameState, scope: str, name: str) -> ValueRef | None:
    """The ref of a name an arm the trace did not take reads: a global, or a local (a parameter not
    read so far too); None for a local that holds nothing yet."""
    if scope != "local":
        return b.load_global(fs, name)
    if name in fs.locals:
        return fs.locals[name]
    f_locals = fs.frame.f_locals
    return b.load_local(fs, name) if hasattr(f_locals, "__contains__") and name in f_locals else None


def _callee_kind(b: GraphBuilder, value: object) -> purity.Effect:
    """What a call in an arm the trace did not take calls (`value`, see `_callee_value`): PURE,
    MUTATES_INPUTS for a slow call (a request, see `owe_untaken`), or UNKNOWN."""
    if value is MISSING:
        return purity.Effect.UNKNOWN
    if purity.classify(value) is purity.Effect.PURE:
        return purity.Effect.PURE
    receiver = getattr(value, "__self__", None)
    if b.slow_callees.get(callee_key(value)) is not None or (
        receiver is not None and b.clients.get(id(receiver)) is receiver
    ):
        return purity.Effect.MUTATES_INPUTS
    return purity.Effect.UNKNOWN


def _callee_value(b: GraphBuilder, fs: FrameState, callee: Callee | None) -> object:
    """What a call in an arm the trace did not take calls, as far as the names it reads hold it now
    (MISSING when the code does not name it or a name holds nothing)."""
    if callee is None:
        return MISSING
    scope, name, attr = callee
    ref = _ref(b, fs, scope, name)
    value = ref.value if ref is not None else MISSING
    return peek_attr(value, attr) if attr is not None else value


def worth_learning(forks: Sequence[tuple[Fork, int, int]], ops: Sequence[Operation]) -> tuple[Fork, ...]:
    """The forks (each with how many operations had been made before it and how many calls its other
    arm makes) whose other arm's calls could go ahead of the run once learned (see `plan.learn`): it
    makes two calls or more (they may overlap), or the run made calls after the fork, outside it
    (the arm's may overlap with those).  A lone call that the run reaches as soon as its branch is
    decided is made as early in its turn: a trace to learn it would cost a call made one after
    another."""
    return tuple(
        fork
        for fork, before, calls in forks
        if calls >= 2 or any(all(c is not fork.condition.cond for c in op.control) for op in ops[before:])
    )

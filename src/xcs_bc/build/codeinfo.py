"""A static description of every instruction of a code object.

The shadow stack machine replays each executed instruction on a stack of
provenance values, so for every instruction it must know how many items it
consumes and produces on each outgoing edge, where control goes next, the
stack depth before it, and where an exception raised by it lands.
`code_info(code)` computes that once per code object (and caches it).

Offsets are `dis` offsets of real instructions.  ``CACHE`` entries and
``EXTENDED_ARG`` prefixes are not instructions here: a prefix is folded into
the ``arg`` of the instruction it extends, and `CodeInfo.extended_arg` maps the
prefix's offset to that instruction.  What the observation hooks report
(measured on 3.10.13, 3.11.7, 3.12.1, 3.13.0):

* 3.12+ ``sys.monitoring`` INSTRUCTION events report an instruction at its own
  offset (as here), *and* report each ``EXTENDED_ARG`` prefix separately just
  before it: skip events at offsets in `CodeInfo.extended_arg`.
* 3.10/3.11 ``settrace`` 'opcode' events fire once per instruction, with
  ``frame.f_lasti`` at its *first* ``EXTENDED_ARG`` prefix if it has one (the
  interpreter dispatches from the prefix straight into the instruction without
  tracing): `CodeInfo.resolve` maps that offset to the instruction.
* 3.11+: neither hook reports ``RESUME``, nor the prologue before the first
  ``RESUME`` (``MAKE_CELL``, ``COPY_FREE_VARS``, ``RETURN_GENERATOR``,
  ``POP_TOP``); the first event of a frame is the instruction after it.

Stack effects follow ``dis.stack_effect`` (``pushes - pops`` equals it), with
the split between popped and pushed items taken from `bytecode` and corrected
where that library only gets the net effect right.  Where ``dis`` disagrees with
what the interpreter does, this module follows the interpreter:

* ``RETURN_GENERATOR`` (3.11/3.12) pushes 1, the value sent on first resume.
* A 3.10 generator starts at depth 1: ``GEN_START`` pops that sent value.
* An exhausted ``FOR_ITER`` (3.12+) pops the iterator and jumps *past* the
  ``END_FOR`` (3.13: ``END_FOR`` + ``POP_TOP``) that ``dis`` names as target.
* 3.10 ``YIELD_FROM`` has a self edge (``target`` is its own offset): it runs
  again on each resumption with the sent value in place of the old one.

On 3.11 ``PRECALL n`` pops the *n* arguments and ``CALL`` pops the callable
pair and pushes the result, as ``dis`` accounts them.
"""

from __future__ import annotations

import dataclasses
import dis
import functools
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, Protocol, TypeAlias

from bytecode import ConcreteInstr

from xcs_bc._compat import PY311, PY312, PY313, instructions_with_lines, nested_code, qualified_name
from xcs_bc.errors import UnsupportedCodeError


@dataclass(frozen=True, slots=True)
class Instr:
    """One instruction: what it does to the stack on each edge and where it goes.

    `pops`/`pushes` apply when control falls through to `next`, `jump_pops` /
    `jump_pushes` when it goes to `target`; `depth` is the stack depth before
    the instruction (None: statically unreachable).  `arg` is the raw oparg
    with any EXTENDED_ARG folded in, `argval` is dis' (its jump offsets may
    name an EXTENDED_ARG prefix; `target` never does), `line` its source line.
    """

    offset: int
    opname: str
    arg: int | None
    argval: object
    line: int | None
    pops: int
    pushes: int
    jump_pops: int
    jump_pushes: int
    next: int | None
    target: int | None
    depth: int | None


@dataclass(frozen=True, slots=True)
class Handler:
    """Where unwinding goes: keep `depth` items, push `pushed`, jump to `target`.

    3.11+: `pushed` is 1 (the exception) or 2 (lasti, then the exception).
    3.10: 6 (old exception tb/value/type, then the new one's).
    """

    target: int
    depth: int
    pushed: int


# A 3.10 block stack: (handler target, saved depth) per SETUP_* block, and
# (-1, saved depth) for the EXCEPT_HANDLER block that entering a handler pushes.
_Blocks: TypeAlias = tuple[tuple[int, int], ...]


class _Entry(Protocol):
    """An exception table entry as `dis` parses it (3.11+); `end` is exclusive."""

    start: int
    end: int
    target: int
    depth: int
    lasti: bool


# Jumps taken every time, and the conditional jumps that pop their condition (of any version).
UNCONDITIONAL_JUMPS: Final = frozenset(
    {"JUMP_ABSOLUTE", "JUMP_FORWARD", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT"}
)
COND_POP_JUMPS: Final = frozenset(
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

# Instructions after which control never reaches the next instruction.
_NO_FALLTHROUGH: Final = (
    frozenset({"RETURN_VALUE", "RETURN_CONST", "RAISE_VARARGS", "RERAISE"}) | UNCONDITIONAL_JUMPS
)

# 3.10 block-stack instructions: `dis` lists them as relative jumps, but their
# argument is a handler, reached only by unwinding, never a normal successor.
_SETUP: Final = frozenset({"SETUP_FINALLY", "SETUP_WITH", "SETUP_ASYNC_WITH"})

_JUMPS: Final = frozenset(dis.opname[op] for op in (*dis.hasjrel, *dis.hasjabs)) - _SETUP

# Items consumed, for instructions `bytecode` gets wrong: for an opcode it does
# not list it returns (net effect, 0), i.e. a pure push or a pure pop, although
# these replace their inputs.  The split matters because the shadow machine
# gives every pushed item a new provenance: LOAD_METHOD must consume the object
# it loads from, YIELD_VALUE must replace the yielded value by the sent one.
_CONSUMES: Final[dict[str, int]] = {
    "LOAD_METHOD": 1,  # obj -> meth, self|NULL (3.10/3.11)
    "YIELD_VALUE": 1,  # yielded value -> sent value
    "YIELD_FROM": 2,  # 3.10: receiver, value -> result
    "BEFORE_WITH": 1,  # mgr -> __exit__, __enter__() (3.11+)
    "SETUP_WITH": 1,  # the same on 3.10's fall-through edge
    "END_SEND": 2,  # receiver, value -> value (3.12+)
    "CLEANUP_THROW": 3,  # sub_iter, last_sent, exc -> None, value (3.12+)
    "CALL_INTRINSIC_1": 1,
    "CALL_INTRINSIC_2": 2,
    "STORE_FAST_LOAD_FAST": 1,  # 3.13
    "FORMAT_WITH_SPEC": 2,  # 3.13: value, spec -> str
}


def _split(ins: dis.Instruction, jump: bool) -> tuple[int, int]:
    """(pops, pushes) of `ins` on its fall-through (`jump` False) or jump edge."""
    name = ins.opname
    if name == "RETURN_GENERATOR":
        # When the generator is first resumed the sent value (None) is pushed and
        # POP_TOP drops it.  dis says 0 on 3.11/3.12 (the compiler inserts the
        # pair after computing depths); 3.13 fixed it to +1.
        return 0, 1
    arg = ins.arg  # None exactly when the opcode takes no argument
    effect = dis.stack_effect(ins.opcode, arg, jump=jump)
    if name == "SEND":
        # receiver, value -> receiver, yielded; on return (jump) 3.11 leaves
        # only the result, 3.12+ replaces the value with it before END_SEND.
        pops = 1 - effect
    elif name in _CONSUMES:
        pops = _CONSUMES[name]
    else:
        concrete = ConcreteInstr(name, arg) if arg is not None else ConcreteInstr(name)
        pre, post = concrete.pre_and_post_stack_effect(jump=jump)
        return max(0, -pre), post + max(0, pre)
    return pops, pops + effect


class _Builder:
    """Decodes a code object into `Instr`s and runs the static flow analysis."""

    def __init__(self, code: types.CodeType) -> None:
        self.code = code
        self.raw: dict[int, dis.Instruction] = {}
        self.extended_arg: dict[int, int] = {}
        self.lines: dict[int, int | None] = {}
        self._decode()
        self.order = tuple(self.raw)
        # Exception-table handlers are static on 3.11+; on 3.10 they come from
        # the block stack, i.e. out of the flow analysis below.
        self.table: dict[int, Handler] = self._exception_table()
        self.shapes: dict[int, Instr] = {off: self._shape(i) for i, off in enumerate(self.order)}
        self.depth: dict[int, int] = {}
        self.blocks: dict[int, _Blocks] = {}
        self.handlers: dict[int, Handler] = {}

    def _decode(self) -> None:
        """Collect real instructions, fold EXTENDED_ARG prefixes, track lines."""
        pending: list[int] = []
        for ins, line in instructions_with_lines(self.code):
            if ins.opname == "EXTENDED_ARG":  # dis already folded it into the next arg
                pending.append(ins.offset)
                continue
            for prefix in pending:
                self.extended_arg[prefix] = ins.offset
            pending.clear()
            self.raw[ins.offset] = ins
            self.lines[ins.offset] = line

    def canon(self, offset: int) -> int:
        """A jump or handler target may name the EXTENDED_ARG prefix; use the instruction."""
        return self.extended_arg.get(offset, offset)

    def _exception_table(self) -> dict[int, Handler]:
        if not PY311:
            return {}
        table: dict[int, Handler] = {}
        # Not in typeshed, hence getattr.
        entries: list[_Entry] = getattr(dis.Bytecode(self.code), "exception_entries")  # noqa: B009
        for entry in entries:
            handler = Handler(self.canon(entry.target), entry.depth, 1 + int(entry.lasti))
            for off in self.order:
                if entry.start <= off < entry.end:  # `end` is exclusive
                    table.setdefault(off, handler)
        return table

    def _shape(self, index: int) -> Instr:
        """The Instr at `self.order[index]` without its depth."""
        off = self.order[index]
        ins = self.raw[off]
        pops, pushes = _split(ins, jump=False)
        jump_pops = jump_pushes = 0
        target: int | None = None
        if ins.opname in _JUMPS:
            assert isinstance(ins.argval, int)
            target = self.canon(ins.argval)
            jump_pops, jump_pushes = _split(ins, jump=True)
            if ins.opname == "FOR_ITER" and PY312:
                target, jump_pops, jump_pushes = self._for_iter_exit(target)
        elif ins.opname == "YIELD_FROM":
            # 3.10: while the sub-iterator yields, YIELD_FROM rewinds f_lasti and
            # runs again on resumption with the sent value in place of the old
            # one: a self edge, taken once per value passed through.
            target, jump_pops, jump_pushes = off, 1, 1
        falls = ins.opname not in _NO_FALLTHROUGH and index + 1 < len(self.order)
        nxt = self.order[index + 1] if falls else None
        return Instr(
            offset=off,
            opname=ins.opname,
            arg=ins.arg,
            argval=ins.argval,
            line=self.lines[off],
            pops=pops,
            pushes=pushes,
            jump_pops=jump_pops,
            jump_pushes=jump_pushes,
            next=nxt,
            target=target,
            depth=None,  # filled in by `build` after the flow analysis
        )

    def _for_iter_exit(self, end_for: int) -> tuple[int, int, int]:
        """Where an exhausted FOR_ITER really goes on 3.12+, and its (pops, pushes).

        dis targets END_FOR with iterator + a dummy value (+1), but the interpreter
        pops the iterator and skips END_FOR (3.12: ``JUMPBY(oparg + 1)``), or
        END_FOR and POP_TOP (3.13: ``JUMPBY(oparg + 2)``); monitoring then reports
        the instruction after them.  Only a generator returning into a specialised
        FOR_ITER_GEN lands on END_FOR itself, and monitoring de-specialises that.
        """
        skipped = ("END_FOR",) if not PY313 else ("END_FOR", "POP_TOP")
        off = end_for
        for name in skipped:
            if self.raw[off].opname != name:
                raise UnsupportedCodeError(f"{self.where(off)}: FOR_ITER target is not {name}")
            off += 2  # neither END_FOR nor POP_TOP has an argument or caches
        return self.canon(off), 1, 0

    def where(self, offset: int) -> str:
        """`file:line (name) @offset` for error messages."""
        line = self.lines.get(offset) or self.code.co_firstlineno
        return f"{self.code.co_filename}:{line} ({qualified_name(self.code)}) @{offset}"

    # -- flow analysis -------------------------------------------------------

    def flow(self) -> None:
        """Propagate (depth, 3.10 block stack) from the entry; check every edge agrees."""
        if not self.order:
            return
        first = self.order[0]
        # A 3.10 generator is entered with the first sent value (None) on the
        # stack, which its leading GEN_START pops.
        start = 1 if self.raw[first].opname == "GEN_START" else 0
        self.depth[first], self.blocks[first] = start, ()
        work = [first]
        while work:
            off = work.pop()
            for dest, depth, blocks in self._edges(off):
                if depth < 0:
                    raise UnsupportedCodeError(f"{self.where(off)}: stack underflow on edge to {dest}")
                if dest not in self.depth:
                    self.depth[dest], self.blocks[dest] = depth, blocks
                    work.append(dest)
                elif (self.depth[dest], self.blocks[dest]) != (depth, blocks):
                    raise UnsupportedCodeError(
                        f"{self.where(dest)}: reached with stack depth {self.depth[dest]} and "
                        f"{depth} (from @{off}); blocks {self.blocks[dest]} vs {blocks}"
                    )

    def _edges(self, off: int) -> Iterator[tuple[int, int, _Blocks]]:
        """(destination, depth there, block stack there) for every edge out of `off`."""
        ins, depth, blocks = self.shapes[off], self.depth[off], self.blocks[off]
        if ins.next is not None:
            yield ins.next, depth - ins.pops + ins.pushes, self._blocks_after(ins, depth, blocks)
        if ins.target is not None:
            yield ins.target, depth - ins.jump_pops + ins.jump_pushes, blocks
            if ins.opname == "FOR_ITER" and PY312:
                # Give END_FOR (reachable via FOR_ITER_GEN) the depth dis intends.
                effect = dis.stack_effect(dis.opmap["FOR_ITER"], ins.arg, jump=True)
                yield self.canon(self.raw[off].argval), depth + effect, blocks
        handler, handler_blocks = self._unwind(off, blocks)
        if handler is not None:
            self.handlers[off] = handler
            yield handler.target, handler.depth + handler.pushed, handler_blocks

    def _blocks_after(self, ins: Instr, depth: int, blocks: _Blocks) -> _Blocks:
        """3.10 block stack after `ins` falls through (see `_Blocks`)."""
        if PY311:  # no block stack: exception table instead
            return blocks
        if ins.opname in _SETUP:
            assert isinstance(ins.argval, int)
            # dis' jump effect is "what the handler finds": saved level + 6 items.
            level = depth + dis.stack_effect(dis.opmap[ins.opname], ins.arg, jump=True) - 6
            return (*blocks, (self.canon(ins.argval), level))
        expected = {"POP_BLOCK": True, "POP_EXCEPT": False, "END_ASYNC_FOR": False}.get(ins.opname)
        if expected is None:
            return blocks
        if not blocks or (blocks[-1][0] >= 0) != expected:
            raise UnsupportedCodeError(f"{self.where(ins.offset)}: {ins.opname} with block stack {blocks}")
        return blocks[:-1]

    def _unwind(self, off: int, blocks: _Blocks) -> tuple[Handler | None, _Blocks]:
        """Handler of an exception raised at `off`, and the block stack it starts with."""
        if PY311:
            return self.table.get(off), ()
        # 3.10: unwinding pops EXCEPT_HANDLER blocks until a SETUP_* block, which
        # becomes an EXCEPT_HANDLER block with the same level; 6 values are pushed
        # (old exception tb/value/type, then the new one's).
        for i in range(len(blocks) - 1, -1, -1):
            target, level = blocks[i]
            if target >= 0:
                return Handler(target, level, 6), (*blocks[:i], (-1, level))
        return None, ()

    def build(self) -> CodeInfo:
        """Run the flow analysis and freeze the result."""
        self.flow()
        instrs = {
            off: dataclasses.replace(ins, depth=self.depth.get(off)) for off, ins in self.shapes.items()
        }
        handlers = self.table if PY311 else self.handlers
        return CodeInfo(self.code, instrs, self.order, handlers, self.extended_arg)


_RAISES: Final = frozenset({"RAISE_VARARGS", "RERAISE"})


def _async_for_ends(instrs: dict[int, Instr], handlers: dict[int, Handler]) -> dict[int, int]:
    """An ``async for`` ends when its iterator raises StopAsyncIteration: the await of its next item
    (``SEND``, 3.10 ``YIELD_FROM``) -> the ``END_ASYNC_FOR`` it then goes to, the loop's normal exit
    (without it, nothing before the loop would have a post-dominator)."""
    return {
        off: handler.target
        for off, handler in handlers.items()
        if instrs[off].opname in ("SEND", "YIELD_FROM") and instrs[handler.target].opname == "END_ASYNC_FOR"
    }


def _post_dominators(
    order: tuple[int, ...], instrs: dict[int, Instr], successors: Callable[[int], tuple[int, ...]]
) -> dict[int, int | None]:
    """Immediate post-dominator of every instruction on the normal CFG (`successors`).

    Iterative data flow over bit sets (bit i = order[i], bit n = the virtual
    exit): pdom(n) = {n} | AND of pdom(successors), starting from "everything";
    instructions without normal successors go to the exit, except raises, which
    constrain nothing (see the loop).  Instructions that
    never reach the exit (an endless loop) get None, like those whose only
    strict post-dominator is the exit.
    """
    n = len(order)
    index = {off: i for i, off in enumerate(order)}
    succ = [[index[s] for s in successors(off)] for off in order]
    raises = {i for i, off in enumerate(order) if instrs[off].opname in _RAISES}
    exit_bit, full = 1 << n, (1 << (n + 1)) - 1
    pdom = [full] * n
    changed = True
    while changed:
        changed = False
        for i in range(n - 1, -1, -1):  # mostly forward code: reverse order converges fast
            # A path that leaves by raising never reaches what follows a branch, so for control
            # dependence it constrains nothing (it post-dominates "everything").
            meet = full if succ[i] or i in raises else exit_bit
            for s in succ[i]:
                meet &= pdom[s]
            new = meet | (1 << i)
            if new != pdom[i]:
                pdom[i], changed = new, True
    reaches = _reaching_exit(succ, raises)
    result: dict[int, int | None] = {}
    for i, off in enumerate(order):
        strict = pdom[i] & ~(1 << i)
        result[off] = None
        if i not in reaches or strict == exit_bit:
            continue
        # The immediate one is the strict post-dominator that all others post-dominate.
        for j in _bits(strict & ~exit_bit):
            if pdom[j] == strict:
                result[off] = order[j]
                break
    return result


def _reaching_exit(succ: list[list[int]], raises: set[int]) -> set[int]:
    """Indices of the nodes from which some path leads to a normal exit (not a raise)."""
    preds: list[list[int]] = [[] for _ in succ]
    for i, targets in enumerate(succ):
        for t in targets:
            preds[t].append(i)
    todo = [i for i, targets in enumerate(succ) if not targets and i not in raises]
    seen = set(todo)
    while todo:
        for p in preds[todo.pop()]:
            if p not in seen:
                seen.add(p)
                todo.append(p)
    return seen


def _bits(mask: int) -> Iterator[int]:
    """Indices of the set bits of `mask`."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


class CodeInfo:
    """Static facts about every instruction of one code object; see the module doc."""

    __slots__ = ("code", "instrs", "order", "nested", "extended_arg", "_handlers", "_ends", "_ipdom")

    code: types.CodeType
    instrs: dict[int, Instr]  # offset -> Instr
    order: tuple[int, ...]  # offsets in code order
    nested: tuple[types.CodeType, ...]  # comprehension / genexpr code, recursively
    extended_arg: dict[int, int]  # EXTENDED_ARG offset -> offset of its instruction

    def __init__(
        self,
        code: types.CodeType,
        instrs: dict[int, Instr],
        order: tuple[int, ...],
        handlers: dict[int, Handler],
        extended_arg: dict[int, int],
    ) -> None:
        self.code = code
        self.instrs = instrs
        self.order = order
        self.nested = tuple(nested_code(code))
        self.extended_arg = extended_arg
        self._handlers = handlers
        self._ends = _async_for_ends(instrs, handlers)
        self._ipdom = _post_dominators(order, instrs, self.successors)

    def handler_at(self, offset: int) -> Handler | None:
        """Where an exception raised by the instruction at `offset` goes; None: out of the frame."""
        return self._handlers.get(offset)

    def ipdom(self, offset: int) -> int | None:
        """Immediate post-dominator of `offset` on the normal CFG; None if only the exit."""
        return self._ipdom[offset]

    def successors(self, offset: int) -> tuple[int, ...]:
        """Normal (non-exceptional) successors: fall-through, then jump target (and, for the await of
        an ``async for``'s next item, the loop's end: see `_async_for_ends`)."""
        ins = self.instrs[offset]
        return tuple(
            dict.fromkeys(s for s in (ins.next, ins.target, self._ends.get(offset)) if s is not None)
        )

    def resolve(self, offset: int) -> int | None:
        """The instruction at `offset`, or extended by the EXTENDED_ARG there; else None."""
        if offset in self.instrs:
            return offset
        return self.extended_arg.get(offset)

    def __repr__(self) -> str:
        return f"<CodeInfo {self.code.co_name} {len(self.order)} instructions>"


# id(code) -> (code, info): code objects compare by value, so two distinct but
# equal ones (e.g. the same source compiled twice) must not share an entry; the
# stored reference keeps the id from being reused.
_CACHE: dict[int, tuple[types.CodeType, CodeInfo]] = {}


def code_info(code: types.CodeType) -> CodeInfo:
    """The (cached) `CodeInfo` of `code`; raises UnsupportedCodeError if the analysis fails."""
    hit = _CACHE.get(id(code))
    if hit is not None and hit[0] is code:
        return hit[1]
    info = _Builder(code).build()
    _CACHE[id(code)] = (code, info)
    return info


def in_loop(info: CodeInfo, offset: int) -> bool:
    """Is the instruction at `offset` inside a loop of its code (between a backward jump's target and
    the jump)?  A call there runs once a round."""
    return any(start <= offset <= end for start, end in _loops(info))


@functools.lru_cache(maxsize=1024)
def _loops(info: CodeInfo) -> tuple[tuple[int, int], ...]:
    return tuple(
        (ins.target, ins.offset)
        for ins in info.instrs.values()
        if ins.target is not None and ins.target <= ins.offset
    )

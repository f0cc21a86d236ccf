"""Tests of xcs_bc.build.codeinfo: static checks over real code, and executed-offset traces.

The static checks hold the analysis to its invariants (stack effects agree with
`dis`, depths agree along every edge, targets are instructions).  The dynamic
checks record the offsets the interpreter really executes (sys.monitoring
INSTRUCTION events on 3.12+, settrace 'opcode' events on 3.10/3.11) and check
that each step follows a normal edge, or an exception edge to `handler_at`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dis
import importlib
import json
import sys
import textwrap
import types
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest

from xcs_bc.build.codeinfo import CodeInfo, Handler, Instr, code_info
from xcs_bc.build.liveness import read_after

PY311 = sys.version_info >= (3, 11)
PY312 = sys.version_info >= (3, 12)
PY313 = sys.version_info >= (3, 13)

# Instructions the hooks never report: RESUME (3.11+; its events are PY_START /
# PY_RESUME, or settrace's 'call').  END_FOR is not listed: it is never executed
# under the hooks either, because an exhausted FOR_ITER jumps past it (3.12+), so
# leaving it out makes the step check test exactly that.
SILENT = {"RESUME"}


# -- sample code -------------------------------------------------------------


class Boom(Exception):
    pass


def gen(n: int) -> Generator[int, None, int]:
    for i in range(n):
        if i == 3:
            continue
        yield i * 2
    yield from range(2)
    return n


def delegating(n: int) -> Generator[int, None, int]:
    got = yield from gen(n)
    try:
        yield 1 // n
    except ZeroDivisionError:
        yield -1
    return got


def boom(x: int) -> int:
    if x < 0:
        raise Boom(x)
    return x


def loops(n: int) -> int:
    total, i = 0, 0
    while True:
        i += 1
        if i > n:
            break
        if i % 2:
            continue
        for j in range(i):
            if j == 5:
                break
            total += j
        else:
            total -= 1
    return total


def comprehensions(xs: list[int]) -> object:
    a = [x * 2 for x in xs if x % 2]
    b = {x: [y for y in range(x)] for x in xs}
    c = {x for x in xs}
    d = sum(x for x in xs if x > 1)
    e = [x if x else -x for x in (x - 2 for x in xs)]
    return a, b, c, d, e, (lambda z: z + 1)(1)


def exceptions(x: int) -> int:
    r = 0
    try:
        r = boom(x)
    except Boom as e:
        r = -1 if e.args else 0
    except (ValueError, TypeError):
        r = -2
    else:
        r += 10
    finally:
        r += 100
    try:
        try:
            1 / x
        finally:
            r += 1000
    except ZeroDivisionError:
        r += 10000
    return r


def early(x: int | None) -> int:
    if x is None:
        return -1
    for i in range(10):
        if i == x:
            return i
    with contextlib.suppress(Boom):
        boom(-x)
        return 7
    return 0


def boolean(a: object, b: object, c: object) -> object:
    x = a and b or c
    y = not a or (b and not c)
    z = a if b else c
    w = (a or b) and (b or c)
    if a and (b or c):
        return x, y, z, w, 1
    return x, y, z, w, 0


def matching(v: object) -> str:
    match v:
        case 0 | 1:
            return "small"
        case [x, *rest] if x:
            return f"seq {x} {len(rest)}"
        case {"k": y, **kw}:
            return f"map {y!r} {kw}"
        case str() as s if len(s) > 2:
            return s
        case Boom(args=(a,)):
            return f"boom {a:>4}"
        case _:
            return "other"


def strings(name: str, n: float) -> str:
    # Old-style formatting on purpose: different bytecode from f-strings.
    return f"{name!r:>10}-{n:.{2}f}-{name}" + "%s" % name + "{0}".format(n)  # noqa: UP031, UP032, UP030


def with_blocks(path: list[str]) -> int:
    with contextlib.ExitStack() as stack:
        stack.callback(path.append, "a")
        try:
            with contextlib.suppress(LookupError):
                path[len(path)] = "k"  # IndexError is a LookupError
            with contextlib.nullcontext(path) as p, contextlib.nullcontext(1):
                p.append("b")
                if len(p) > 100:
                    raise Boom()
        except Boom:
            return -1
    return len(path)


def generators(n: int) -> list[int]:
    out = list(gen(n))
    out += list(delegating(n))
    g = delegating(3)
    next(g)
    g.close()
    return out


def unpacking(d: dict[str, int], *args: int, **kw: int) -> object:
    a, *b = args or (1, 2)
    (c, d2), e = (1, 2), 3
    x = y = len(d)
    del x
    return a, b, c, d2, e, y, {**d, **kw}, [*args, 1], print(*args, sep="", file=None) if False else 0


class Widget:
    def __init__(self, v: int) -> None:
        self.v = v

    def method(self, k: int = 1) -> int:
        return self.v * k

    @property
    def prop(self) -> int:
        return self.v


def closures(n: int) -> int:
    k = n  # a cell: MAKE_CELL runs in the unreported prologue on 3.11+

    def inner(d: int) -> int:
        return k + d

    return inner(1) + (lambda: k)() + sum(k * i for i in range(3))


def methods(n: int) -> int:
    w = Widget(n)
    w.v += 1
    return w.method() + w.method(k=2) + w.prop + int(getattr(w, "v"))  # noqa: B009 + len(str(w.v))


def chained(a: int, b: int, c: int) -> bool:
    a, b = b, a
    return a < b < c or a == b


class AsyncCM:
    async def __aenter__(self) -> AsyncCM:
        return self

    async def __aexit__(self, *exc: object) -> bool:
        return False


async def agen(n: int) -> Any:
    for i in range(n):
        yield i
        await asyncio.sleep(0)


async def coro(n: int) -> int:
    total = 0
    async with AsyncCM():
        async for v in agen(n):
            total += v
    try:
        await asyncio.sleep(0)
        if n < 0:
            raise Boom()
    except Boom:
        total = -1
    return total


def drive(c: Any) -> object:
    """Run a coroutine that never really waits (sleep(0) yields None)."""
    while True:
        try:
            c.send(None)
        except StopIteration as stop:
            return stop.value


SAMPLES: list[tuple[Callable[..., object], list[tuple[Any, ...]]]] = [
    (loops, [(0,), (3,), (12,)]),
    (comprehensions, [([],), ([1, 2, 3, 4],)]),
    (exceptions, [(1,), (-1,), (0,)]),
    (early, [(None,), (4,), (50,), (0,)]),
    (boolean, [(a, b, c) for a in (0, 1) for b in (0, 1) for c in (0, 1)]),
    (
        matching,
        [(0,), ([1, 2, 3],), ([0],), ({"k": 1, "j": 2},), ("abcd",), ("a",), (Boom(5),), (Boom(),), (2.5,)],
    ),
    (strings, [("x", 1.5)]),
    (with_blocks, [([],), (["x"] * 101,)]),
    (generators, [(5,), (0,)]),
    (unpacking, [({"a": 1},), ({}, 4, 5, 6), ({}, 1)]),
    (methods, [(3,)]),
    (closures, [(2,)]),
    (chained, [(1, 2, 3), (3, 2, 1), (2, 2, 2)]),
    (lambda n: drive(coro(n)), [(3,), (-1,)]),
]

SAMPLE_FUNCS = [f for f, _ in SAMPLES[:-1]] + [gen, delegating, boom, coro, agen, drive, Widget.method]


def all_codes(code: types.CodeType) -> Iterator[types.CodeType]:
    """`code` and every code object nested in it (defs, lambdas, classes, comprehensions)."""
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from all_codes(const)


def module_codes(name: str) -> list[types.CodeType]:
    """Every code object of a stdlib module, compiled from its source."""
    mod = importlib.import_module(name)
    assert mod.__file__
    with open(mod.__file__, encoding="utf-8") as f:
        return list(all_codes(compile(f.read(), mod.__file__, "exec")))


STDLIB = (
    "json.decoder",
    "json.encoder",
    "json.scanner",
    "textwrap",
    "argparse",
    "dataclasses",
    "asyncio.tasks",
)
CORPUS: list[types.CodeType] = [c for m in STDLIB for c in module_codes(m)] + [
    c for f in SAMPLE_FUNCS for c in all_codes(f.__code__)
]


# -- recording executed offsets -----------------------------------------------


def record(
    fn: Callable[..., object], args: tuple[Any, ...], codes: set[types.CodeType]
) -> list[tuple[types.CodeType, list[int]]]:
    """Run fn(*args) and return, per frame of a code in `codes`, the offsets it executed.

    3.12+: sys.monitoring INSTRUCTION events (EXTENDED_ARG events dropped after
    checking the prefixed instruction follows at once); 3.10/3.11: settrace with
    f_trace_opcodes, f_lasti mapped through `CodeInfo.resolve`.
    """
    frames: dict[int, tuple[types.FrameType, list[int]]] = {}

    def log(frame: types.FrameType, offset: int) -> None:
        frames.setdefault(id(frame), (frame, []))[1].append(offset)  # the frame ref pins its id

    if sys.version_info >= (3, 12):
        mon = sys.monitoring
        tool = next(i for i in range(6) if mon.get_tool(i) is None)
        mon.use_tool_id(tool, "xcs_bc-test")
        mon.register_callback(tool, mon.events.INSTRUCTION, lambda code, off: log(sys._getframe(1), off))
        try:
            for c in codes:
                mon.set_local_events(tool, c, mon.events.INSTRUCTION)
            with contextlib.suppress(Boom):
                fn(*args)
        finally:
            for c in codes:
                mon.set_local_events(tool, c, 0)
            mon.register_callback(tool, mon.events.INSTRUCTION, None)
            mon.free_tool_id(tool)
    else:

        def local(frame: types.FrameType, event: str, arg: object) -> Any:
            if event == "opcode":
                log(frame, frame.f_lasti)
            return local

        def tracer(frame: types.FrameType, event: str, arg: object) -> Any:
            if frame.f_code in codes:
                frame.f_trace_opcodes = True
                return local
            return None

        old = sys.gettrace()
        sys.settrace(tracer)
        try:
            with contextlib.suppress(Boom):
                fn(*args)
        finally:
            sys.settrace(old)
    return [(frame.f_code, offs) for frame, offs in frames.values()]


def normalise(info: CodeInfo, offsets: list[int]) -> list[int]:
    """Map raw hook offsets to instruction offsets (see the codeinfo module doc)."""
    out: list[int] = []
    for i, off in enumerate(offsets):
        if off in info.extended_arg:
            if PY312:  # reported separately, immediately before its instruction
                assert offsets[i + 1] in (off + 2, info.extended_arg[off]), (off, offsets[i : i + 3])
                continue
            off = info.extended_arg[off]  # settrace reports the instruction at its prefix
        assert off in info.instrs, (info, off)
        out.append(off)
    return out


def reach(info: CodeInfo, start: int) -> set[int]:
    """`start` plus what follows it through instructions the hooks never report."""
    seen, todo = {start}, [start]
    while todo:
        off = todo.pop()
        if info.instrs[off].opname in SILENT:
            for s in info.successors(off):
                if s not in seen:
                    seen.add(s)
                    todo.append(s)
    return seen


def entry(info: CodeInfo) -> set[int]:
    """Where the first reported offset may be.

    3.11+ hooks start at the first RESUME: the prologue before it (MAKE_CELL,
    COPY_FREE_VARS, RETURN_GENERATOR + POP_TOP) runs unreported.
    """
    resumes = [o for o in info.order if info.instrs[o].opname == "RESUME"]
    start = resumes[0] if resumes else info.order[0]
    return reach(info, start)


def check_steps(info: CodeInfo, offsets: list[int]) -> int:
    """Every step is a normal edge, or an exception edge; returns how many were exceptional."""
    assert offsets[0] in entry(info), offsets[:3]
    exceptional = 0
    for a, b in zip(offsets, offsets[1:], strict=False):
        assert info.instrs[a].depth is not None and info.instrs[b].depth is not None
        if any(b in reach(info, s) for s in info.successors(a)):
            continue
        handler = info.handler_at(a)
        assert handler is not None and b == handler.target, (info, a, b, info.instrs[a], handler)
        exceptional += 1
    return exceptional


# -- static checks over the corpus --------------------------------------------


def expected_effect(info: CodeInfo, ins: Instr, jump: bool) -> int:
    """dis.stack_effect, except where codeinfo deliberately follows the interpreter."""
    if ins.opname == "RETURN_GENERATOR":
        return 1
    if jump and ins.opname == "FOR_ITER" and PY312:
        return -1  # pops the exhausted iterator, skips END_FOR (+ POP_TOP on 3.13)
    if jump and ins.opname == "YIELD_FROM":
        return 0  # 3.10 re-executes YIELD_FROM on resumption: sent value replaces the old
    return dis.stack_effect(dis.opmap[ins.opname], ins.arg, jump=jump)


def test_corpus_is_large() -> None:
    assert len(CORPUS) > 300
    assert sum(len(code_info(c).order) for c in CORPUS) > 15000


@pytest.mark.parametrize("code", CORPUS, ids=lambda c: f"{c.co_name}:{c.co_firstlineno}")
def test_static_invariants(code: types.CodeType) -> None:
    info = code_info(code)
    real = [i for i in dis.get_instructions(code) if i.opname not in ("EXTENDED_ARG", "CACHE")]
    assert info.order == tuple(i.offset for i in real) == tuple(info.instrs)
    assert info.instrs[info.order[0]].depth == (1 if info.instrs[info.order[0]].opname == "GEN_START" else 0)
    for k, off in enumerate(info.order):
        ins = info.instrs[off]
        assert ins.offset == off and ins.opname == real[k].opname and ins.arg == real[k].arg
        assert ins.pushes - ins.pops == expected_effect(info, ins, jump=False), ins
        if ins.next is not None:
            assert ins.next == info.order[k + 1]
        if ins.target is not None:
            assert ins.target in info.instrs
            assert ins.jump_pushes - ins.jump_pops == expected_effect(info, ins, jump=True), ins
        else:
            assert ins.jump_pops == ins.jump_pushes == 0
        if ins.depth is None:
            continue
        assert ins.pops <= ins.depth and ins.jump_pops <= ins.depth
        assert max(ins.depth, ins.depth - ins.pops + ins.pushes) <= code.co_stacksize
        if ins.next is not None:
            assert info.instrs[ins.next].depth == ins.depth - ins.pops + ins.pushes
        if ins.target is not None:
            assert info.instrs[ins.target].depth == ins.depth - ins.jump_pops + ins.jump_pushes
        handler = info.handler_at(off)
        if handler is not None:
            assert info.instrs[handler.target].depth == handler.depth + handler.pushed
            assert handler.target in info.instrs and handler.depth <= ins.depth


@pytest.mark.parametrize(
    "code", [c for c in CORPUS if len(list(dis.get_instructions(c))) < 150], ids=lambda c: c.co_name
)
def test_ipdom_matches_brute_force(code: types.CodeType) -> None:
    """ipdom(n) == the nearest q whose removal cuts every path from n to a normal exit.

    Paths that end in a raise do not count: code after a branch is never reached along them.
    """
    info = code_info(code)
    preds: dict[int, list[int]] = {o: [] for o in info.order}
    for o in info.order:
        for s in info.successors(o):
            preds[s].append(o)

    def exiting(avoid: int | None) -> set[int]:
        """Nodes with a path to the exit that does not pass through `avoid`."""
        todo = [
            o
            for o in info.order
            if not info.successors(o)
            and o != avoid
            and info.instrs[o].opname not in ("RAISE_VARARGS", "RERAISE")
        ]
        seen = set(todo)
        while todo:
            for p in preds[todo.pop()]:
                if p != avoid and p not in seen:
                    seen.add(p)
                    todo.append(p)
        return seen

    reach_exit = exiting(None)
    cut = {q: exiting(q) for q in info.order}  # n not in cut[q] (and n != q): q post-dominates n
    for n in info.order:
        if n not in reach_exit:
            assert info.ipdom(n) is None
            continue
        strict = [q for q in info.order if q != n and n not in cut[q]]
        nearest = [q for q in strict if all(r == q or q not in cut[r] for r in strict)]
        assert len(nearest) <= 1
        assert info.ipdom(n) == (nearest[0] if nearest else None), n


# -- executed offsets --------------------------------------------------------


@pytest.mark.parametrize("fn,arglist", SAMPLES, ids=[f.__name__ for f, _ in SAMPLES])
def test_executed_steps_follow_edges(fn: Callable[..., object], arglist: list[tuple[Any, ...]]) -> None:
    codes = {c for f in SAMPLE_FUNCS for c in all_codes(f.__code__)} | {fn.__code__}
    frames = 0
    for args in arglist:
        for code, raw in record(fn, args, codes):
            info = code_info(code)
            check_steps(info, normalise(info, raw))
            frames += 1
    assert frames


def test_exception_steps_are_checked() -> None:
    """The try/except samples really take exception edges, to the recorded handler."""
    runs = record(exceptions, (-1,), {exceptions.__code__})
    ((code, raw),) = runs
    info = code_info(code)
    assert check_steps(info, normalise(info, raw)) >= 1


@pytest.mark.parametrize(
    "fn,args",
    [
        (json.dumps, ({"a": [1, 2.5, None, {"b": "c"}], "d": True},)),
        (lambda o: json.dumps(o, indent=2, sort_keys=True), ({"z": [1, {"y": []}], "a": "\u00e9"},)),
        (json.loads, ('{"a": [1, 2.5, null, {"b": "c\\n"}], "d": true}',)),
        (lambda s: textwrap.fill(s, width=12), ("the quick brown fox jumps over the lazy dog " * 3,)),
        (lambda s: textwrap.dedent(s), ("    a\n      b\n    c\n",)),
    ],
)
def test_stdlib_steps_follow_edges(fn: Callable[..., object], args: tuple[Any, ...]) -> None:
    codes = {
        c
        for m in ("json.encoder", "json.decoder", "json.scanner", "json", "textwrap")
        for c in functions_of(m)
    }
    runs = record(fn, args, codes)
    assert runs
    for code, raw in runs:
        info = code_info(code)
        check_steps(info, normalise(info, raw))


def functions_of(name: str) -> Iterator[types.CodeType]:
    """Code objects of the live functions and methods of a module (not recompiled)."""
    mod = importlib.import_module(name)
    for obj in vars(mod).values():
        for f in [obj, *vars(obj).values()] if isinstance(obj, type) else [obj]:
            if isinstance(f, types.FunctionType) and f.__module__ == name:
                yield from all_codes(f.__code__)


def test_hook_offsets_are_instruction_offsets() -> None:
    """3.12+ INSTRUCTION offsets / 3.10-3.11 f_lasti are Instr offsets or EXTENDED_ARG prefixes."""
    src = "def big(x):\n    a = 0\n" + "".join(f"    a += {i}.5\n" for i in range(300))
    src += "    if x:\n        b = 1001.5\n    else:\n        b = 1002.5\n    return a + b\n"
    ns: dict[str, Any] = {}
    exec(compile(src, "<big>", "exec"), ns)
    code = ns["big"].__code__
    info = code_info(code)
    assert info.extended_arg and not set(info.extended_arg) & set(info.instrs)
    for prefix, off in info.extended_arg.items():
        arg = info.instrs[off].arg
        assert info.resolve(prefix) == off == info.resolve(off) and arg is not None and arg > 255
    # Jump targets name the prefix in `argval`; `target` is the instruction.
    branch = next(i for i in info.instrs.values() if i.opname.startswith("POP_JUMP"))
    assert branch.argval in info.extended_arg and branch.target == info.extended_arg[branch.argval]
    for x in (0, 1):
        ((_, raw),) = record(ns["big"], (x,), {code})
        reported_prefixes = [o for o in raw if o in info.extended_arg]
        assert reported_prefixes  # both hook kinds report the prefix ...
        for o in reported_prefixes:  # ... and only 3.12+ also reports the instruction itself
            assert (info.extended_arg[o] in raw) == PY312
        check_steps(info, normalise(info, raw))


# -- individual instructions --------------------------------------------------


def instrs(fn: Callable[..., object], opname: str) -> list[Instr]:
    found = [i for i in code_info(fn.__code__).instrs.values() if i.opname == opname]
    assert found, (opname, [i.opname for i in code_info(fn.__code__).instrs.values()])
    return found


def shape(i: Instr) -> tuple[int, int, int, int]:
    return i.pops, i.pushes, i.jump_pops, i.jump_pushes


def test_basic_shapes() -> None:
    def f(xs: list[int], o: Any) -> object:
        for x in xs:
            o.m(x, len(xs), f"{x}{x}")
        return o.attr

    (load_fast, *_) = instrs(f, "LOAD_FAST")
    assert shape(load_fast) == (0, 1, 0, 0)
    (for_iter,) = instrs(f, "FOR_ITER")
    assert (for_iter.pops, for_iter.pushes, for_iter.jump_pops, for_iter.jump_pushes) == (1, 2, 1, 0)
    (build,) = instrs(f, "BUILD_STRING")
    assert shape(build) == (2, 1, 0, 0)
    loads = {
        i.argval: i for i in code_info(f.__code__).instrs.values() if i.opname in ("LOAD_ATTR", "LOAD_METHOD")
    }
    assert (loads["m"].pops, loads["m"].pushes) == (1, 2)  # obj -> meth, self|NULL
    assert (loads["attr"].pops, loads["attr"].pushes) == (1, 1)
    (glob,) = instrs(f, "LOAD_GLOBAL")
    assert (glob.pops, glob.pushes) == ((0, 2) if PY311 else (0, 1))  # NULL + len on 3.11+
    if PY311:
        inner, outer = sorted(instrs(f, "CALL"), key=lambda i: i.offset)  # len(xs), o.m(...)
        if PY312:  # [NULL, len, xs] and [meth, self, 3 args] -> result
            assert [(c.pops, c.pushes) for c in (inner, outer)] == [(3, 1), (5, 1)]
        else:  # 3.11: PRECALL pops the arguments (dis' accounting), CALL the callable pair
            pre_inner, pre_outer = sorted(instrs(f, "PRECALL"), key=lambda i: i.offset)
            assert [(c.pops, c.pushes) for c in (pre_inner, pre_outer)] == [(1, 0), (3, 0)]
            assert [(c.pops, c.pushes) for c in (inner, outer)] == [(2, 1), (2, 1)]
    else:
        (call,) = instrs(f, "CALL_FUNCTION")
        (meth,) = instrs(f, "CALL_METHOD")
        assert (call.pops, call.pushes, meth.pops, meth.pushes) == (2, 1, 5, 1)


def test_stack_shuffles() -> None:
    def f(a: int, b: int, c: int) -> object:
        a, b = b, a
        a, b, c = c, b, a
        return a < b < c

    if PY311:
        swaps = instrs(f, "SWAP")
        assert all((i.pops, i.pushes) == (i.arg, i.arg) for i in swaps)
        assert all((i.pops, i.pushes) == (i.arg, i.arg + 1) for i in instrs(f, "COPY"))  # type: ignore[operator]
    else:
        assert shape(instrs(f, "ROT_TWO")[0]) == (2, 2, 0, 0)
        assert shape(instrs(f, "DUP_TOP")[0]) == (1, 2, 0, 0)
        assert shape(instrs(f, "ROT_THREE")[0]) == (3, 3, 0, 0)


def for_list(xs: list[int]) -> int:
    t = 0
    for x in xs:
        t += x
    return t


def for_gen(n: int) -> int:
    t = 0
    for x in gen(n):
        t += x
    return t


@pytest.mark.parametrize("fn,args", [(for_list, ([1, 2],)), (for_gen, (2,))])
def test_for_iter_exit(fn: Callable[..., int], args: tuple[Any, ...]) -> None:
    """An exhausted FOR_ITER lands on `target`: past END_FOR (+ POP_TOP) on 3.12+.

    The function first runs unobserved so that 3.12+ specialises FOR_ITER (to
    FOR_ITER_LIST / FOR_ITER_GEN); the recorded run must still match.
    """
    info = code_info(fn.__code__)
    (fi,) = [i for i in info.instrs.values() if i.opname == "FOR_ITER"]
    assert fi.target is not None and fi.depth is not None and isinstance(fi.argval, int)
    skipped = [info.instrs[o].opname for o in info.order if fi.argval <= o < fi.target]
    assert skipped == ([] if not PY312 else ["END_FOR"] if not PY313 else ["END_FOR", "POP_TOP"])
    assert (fi.jump_pops, fi.jump_pushes) == (1, 0)
    assert info.instrs[fi.target].depth == fi.depth - 1
    for o in info.order:  # the skipped ones are still analysed, at the depth dis gives them
        assert info.instrs[o].depth is not None

    for _ in range(200):
        fn(*args)
    ((_, raw),) = [run for run in record(fn, args, {fn.__code__}) if run[0] is fn.__code__]
    offsets = normalise(info, raw)
    last = max(i for i, o in enumerate(offsets) if o == fi.offset)
    assert offsets[last + 1] == fi.target
    assert not {o for o in offsets if info.instrs[o].opname == "END_FOR"}
    check_steps(info, offsets)


def test_short_circuit_keeps_value_on_jump() -> None:
    def f(a: object, b: object) -> object:
        return a or b

    if PY312:
        pytest.skip("3.12+ compiles `or` to COPY + POP_JUMP_IF_TRUE")
    (j,) = instrs(f, "JUMP_IF_TRUE_OR_POP")
    assert shape(j) == (1, 0, 0, 0)


def test_generator_shapes() -> None:
    first = code_info(gen.__code__).instrs[code_info(gen.__code__).order[0]]
    if PY311:
        assert (first.opname, first.depth, first.pops, first.pushes) == ("RETURN_GENERATOR", 0, 0, 1)
    else:
        assert (first.opname, first.depth, first.pops, first.pushes) == ("GEN_START", 1, 1, 0)
    assert all((i.pops, i.pushes) == (1, 1) for i in instrs(gen, "YIELD_VALUE"))
    if PY312:
        assert all(shape(i) == (2, 1, 0, 0) for i in instrs(delegating, "END_SEND"))


def test_handlers() -> None:
    info = code_info(exceptions.__code__)
    call = next(i for i in info.instrs.values() if i.argval == "boom")
    handler = info.handler_at(call.offset)
    assert isinstance(handler, Handler)
    assert info.instrs[handler.target].depth == handler.depth + handler.pushed
    if PY311:
        assert handler.pushed == 1 and info.instrs[handler.target].opname == "PUSH_EXC_INFO"
        entries = getattr(dis.Bytecode(exceptions), "exception_entries")  # noqa: B009 (not in typeshed)
        assert {(e.target, e.depth, 1 + e.lasti) for e in entries} >= {
            (h.target, h.depth, h.pushed) for h in map(info.handler_at, info.order) if h
        }
        assert any(h.pushed == 2 for h in map(info.handler_at, info.order) if h)  # lasti entries
    else:
        assert handler.pushed == 6
        assert dis.stack_effect(dis.opmap["SETUP_FINALLY"], 0, jump=True) == 6
        with_info = code_info(with_blocks.__code__)
        setup_with = [i for i in with_info.instrs.values() if i.opname == "SETUP_WITH"]
        for s in setup_with:
            h = with_info.handler_at(s.next)  # type: ignore[arg-type]
            assert h is not None and h.target == s.argval and h.pushed == 6
            assert h.depth + 6 == s.depth + dis.stack_effect(dis.opmap["SETUP_WITH"], 0, jump=True)  # type: ignore[operator]
    ret = max(o for o in info.order if info.instrs[o].opname == "RETURN_VALUE")
    assert info.handler_at(ret) is None


def test_ipdom_of_if_else() -> None:
    def f(x: int, xs: list[int]) -> int:
        if x:  # noqa: SIM108 (a statement-level branch is what is tested)
            y = len(xs)
        else:
            y = -len(xs)
        z = sorted(xs, key=abs, reverse=bool(y))
        return z[0] + z[-1] + y

    info = code_info(f.__code__)
    (branch,) = [i for i in info.instrs.values() if i.opname.startswith("POP_JUMP")]
    join = info.ipdom(branch.offset)
    assert join is not None and info.instrs[join].argval == "sorted"
    assert info.ipdom(info.order[-1]) is None
    assert set(info.successors(branch.offset)) == {branch.next, branch.target}


def test_lines() -> None:
    info = code_info(exceptions.__code__)
    first = exceptions.__code__.co_firstlineno
    stores = [i for i in info.instrs.values() if i.opname == "STORE_FAST" and i.argval == "r"]
    assert stores[0].line == first + 1  # r = 0
    assert {i.line for i in stores} >= {first + 3, first + 7}  # r = boom(x) ... r = -2
    assert all(
        i.line is not None
        for i in info.instrs.values()
        if i.opname in ("LOAD_GLOBAL", "CALL_FUNCTION", "CALL")
    )


def test_nested() -> None:
    def f(xs: list[int]) -> object:
        def inner() -> list[int]:
            return [x for x in xs]

        return (
            [[y for y in range(x)] for x in xs],
            {x for x in xs},
            {x: 1 for x in xs},
            (x for x in xs),
            lambda: [1 for _ in xs],
            inner,
        )

    names = [c.co_name for c in code_info(f.__code__).nested]
    if PY312:  # PEP 709: list/set/dict comprehensions are inlined
        assert names == ["<genexpr>"]
    else:
        assert sorted(names) == ["<dictcomp>", "<genexpr>", "<listcomp>", "<listcomp>", "<setcomp>"]


def test_cache_keys_by_identity() -> None:
    src = "def f(x):\n    return x + 1\n"
    c1 = compile(src, "<same>", "exec").co_consts[0]
    c2 = compile(src, "<same>", "exec").co_consts[0]
    assert c1 == c2 and c1 is not c2
    i1, i2 = code_info(c1), code_info(c2)
    assert i1 is code_info(c1) and i1 is not i2 and i1.code is c1 and i2.code is c2


# -- read_after: is a local read again after an instruction, before it is assigned again? ------------


def _call_offsets(fn: Any, name: str) -> list[int]:
    """The offsets of the calls whose callee is the global `name`, in `fn`'s code."""
    info = code_info(fn.__code__)
    calls, seen = [], False
    for offset in info.order:
        ins = info.instrs[offset]
        if ins.opname == "LOAD_GLOBAL" and str(ins.argval).endswith(name):
            seen = True
        elif seen and ins.opname in ("CALL", "CALL_FUNCTION", "CALL_METHOD", "CALL_KW", "CALL_FUNCTION_KW"):
            calls.append(offset)
            seen = False
    return calls


def _uses_messages(docs: list[str]) -> list[str]:
    out = []
    for doc in docs:
        messages = [doc]
        out.append(ask(messages))  # noqa: F821 - never called: only its bytecode is read
    return out


def _reads_it_after(doc: str) -> list[str]:
    messages = [doc]
    ask(messages)  # noqa: F821
    return messages


def _reads_it_in_a_handler(doc: str) -> None:
    messages = [doc]
    try:
        ask(messages)  # noqa: F821
    except ValueError:
        print(messages)


def _closes_over_it(doc: str) -> Any:
    messages = [doc]
    ask(messages)  # noqa: F821
    return lambda: messages


@pytest.mark.parametrize(
    ("fn", "read"),
    [
        (_uses_messages, False),
        (_reads_it_after, True),
        (_reads_it_in_a_handler, True),
        (_closes_over_it, True),
    ],
)
def test_a_local_is_read_after_a_call_only_where_a_path_reads_it_before_assigning_it(
    fn: Any, read: bool
) -> None:
    (offset,) = _call_offsets(fn, "ask")
    assert read_after(code_info(fn.__code__), offset, "messages") is read


def test_an_async_for_ends_on_the_normal_cfg() -> None:
    """An `async for` ends when its iterator raises StopAsyncIteration: the await of the next item
    goes on to END_ASYNC_FOR as a loop's test goes to its exit, so what comes before the loop has a
    post-dominator (a branch before it is left once the loop is over)."""

    async def f(flag: bool, items: Any) -> int:
        total = 1 if flag else 2
        async for item in items:
            total += item
        return total

    info = code_info(f.__code__)
    (end,) = [i.offset for i in info.instrs.values() if i.opname == "END_ASYNC_FOR"]
    sends = [i.offset for i in info.instrs.values() if i.opname in ("SEND", "YIELD_FROM")]
    assert [end in info.successors(offset) for offset in sends] == [True]
    (branch,) = [i for i in info.instrs.values() if i.opname.startswith("POP_JUMP")]
    assert info.ipdom(branch.offset) is not None

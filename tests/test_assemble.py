"""Code the library assembles keeps its source positions: the location table of 3.11+ (`_assemble`).

`bytecode` writes an instruction whose columns lie between 128 and 255, on a line just below the
previous entry's, as bytes CPython reads as the start of another entry: positions shift, the table
outgrows the code, and 3.11's settrace line array is written past its end (a crash at a later
garbage collection).  These tests hold the table the library writes instead.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import types
from collections.abc import Iterator

import pytest

from xcs_bc._assemble import line_table, location_table
from xcs_bc.execute import rewrite as rewrite_module
from xcs_bc.execute.rewrite import gate, rewrite

PY311 = sys.version_info >= (3, 11)
# a string constant that takes the line past column 128: the first instruction of the line spans it
PAD = "x" * 120


def nested_codes(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from nested_codes(const)


def lines_per_unit(code: types.CodeType) -> list[int | None]:
    return [line for start, end, line in code.co_lines() for _ in range(start, end, 2)]


@pytest.mark.parametrize("module", [asyncio.base_events, asyncio.tasks, textwrap, rewrite_module])
def test_the_table_written_gives_every_code_unit_its_position(module: types.ModuleType) -> None:
    path = module.__file__
    assert path is not None
    with open(path, encoding="utf-8") as source:
        top = compile(source.read(), path, "exec")
    for code in nested_codes(top):
        lines = lines_per_unit(code)
        if PY311:
            positions = list(code.co_positions())
            again = code.replace(co_linetable=location_table(code.co_firstlineno, positions))
            assert list(again.co_positions()) == positions, code.co_name
        else:
            again = code.replace(co_linetable=line_table(code.co_firstlineno, lines))
        assert lines_per_unit(again) == lines, code.co_name


@pytest.mark.skipif(PY311, reason="3.11+ read a location table (the test below)")
def test_line_deltas_past_a_byte_and_long_runs_fit_3_10_s_table() -> None:
    lines = [5, 5, None, 400, *[400] * 300, 2, None, None, 1000]
    code = compile("\n" * 10, "m", "exec").replace(co_code=bytes(2 * len(lines)))
    assert lines_per_unit(code.replace(co_linetable=line_table(1, lines))) == lines


@pytest.mark.skipif(not PY311, reason="3.10's line table has no columns (the test above)")
def test_columns_past_127_are_written_in_the_long_form() -> None:
    # one code unit per case: (line, end line, column, end column), each form's bounds
    positions = [
        (2, 2, 10, 20),  # one-line form, line + 1
        (3, 3, 120, 140),  # the case `bytecode` gets wrong: one line, line + 1, columns over 127
        (3, 3, 79, 94),  # short form
        (3, 3, 80, 81),  # past the short form's columns
        (3, 3, 127, 127),
        (3, 3, 200, 255),
        (1, 9, 0, 300),  # several lines, back up
        (None, None, None, None),
        (4, 4, None, None),  # no columns
        (4, 6, 3, None),
    ]
    code = compile("\n" * 10, "m", "exec").replace(co_code=bytes(2 * len(positions)))
    table = location_table(1, positions)
    assert list(code.replace(co_linetable=table).co_positions()) == positions


long_lines_source = textwrap.dedent(
    """
    def long_lines(docs, ask):
        out = []
        for d in docs:
            out.append(ask(d))
        head = "PAD" + ask(out[0]) + ask(out[-1])
        return [head, *(ask(f"{o}!") for o in out)]
    """
).replace("PAD", PAD)


def made(source: str, name: str) -> types.FunctionType:
    namespace: dict[str, object] = {}
    exec(compile(source, "<long lines>", "exec"), namespace)
    fn = namespace[name]
    assert isinstance(fn, types.FunctionType)
    return fn


def test_a_rewritten_clone_s_table_covers_its_code_exactly() -> None:
    fn = made(long_lines_source, "long_lines")
    for clone in (rewrite(fn, lambda key, f, a, k: f(*a, **k)).function, gate(fn, lambda *a: None).function):
        for code in nested_codes(clone.__code__):
            ends = [end for _, end, _ in code.co_lines()]
            assert max(ends) == len(code.co_code), code.co_name


def test_a_gated_clone_keeps_the_position_of_every_instruction_it_copies() -> None:
    fn = made(long_lines_source, "long_lines")
    gated = gate(fn, lambda *a: None)
    for clone_code, offsets in gated.offsets.items():
        original = gated.originals[clone_code]
        if PY311:
            mine, theirs = list(clone_code.co_positions()), list(original.co_positions())
        else:
            mine, theirs = lines_per_unit(clone_code), lines_per_unit(original)
        for at, copied in offsets.items():
            assert mine[at // 2] == theirs[copied // 2], (clone_code.co_name, at, copied)


TWIN_UNDER_DEBUG_ALLOCATOR = textwrap.dedent(
    """
    import asyncio
    import xcs_bc as xcs

    async def ask(p):
        await asyncio.sleep(0)
        return p.upper()

    async def f(docs):
        out = [await ask(d) for d in docs]
        head = "PAD" + await ask(out[0]) + await ask(out[-1])
        return head

    async def main():
        for _ in range(5):
            fast = xcs.jit(f)
            for j in range(3):
                assert await fast([f"a{j}", "b"]) == await f([f"a{j}", "b"])
        print("done")

    asyncio.run(main())
    """
).replace("PAD", PAD)


def test_an_async_twin_with_long_lines_is_traced_without_harm_to_the_heap() -> None:
    # the twin is traced on its first call (settrace on 3.10/3.11); CPython's debug allocator
    # reports a write past a block's end when the block is freed, at exit at the latest
    env = {**os.environ, "PYTHONMALLOC": "debug"}
    run = subprocess.run(
        [sys.executable, "-c", TWIN_UNDER_DEBUG_ALLOCATOR],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0 and run.stdout.strip() == "done", run.stderr[-2000:]
    assert "Debug memory block" not in run.stderr

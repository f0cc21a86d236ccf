"""Code objects assembled from `bytecode`'s instruction lists, with a location table CPython reads right.

Every code object the library makes (a clone whose call sites go through a dispatcher, an async
function's synchronous twin, a compiled recipe) is assembled here.  `bytecode` (0.19) writes the
location table of CPython 3.11+ itself, and gets one case wrong: an instruction on a line 1 or 2
below the previous entry's, whose columns lie between 128 and 255, goes in the table's one-line
form, whose two column bytes must stay under 128.  The byte read back starts a new entry, every
later instruction gets another's position, and the table covers more code than there is.  CPython
3.11 writes past the end of the line array it makes for a `sys.settrace` tracer from that table
(heap corruption, seen as a crash at a later garbage collection); 3.12+ report wrong lines and
columns in tracebacks.  Any source line longer than 128 characters can do it.

So on 3.11+ the table is written again here, from each instruction's own location, by the rules
of CPython's compiler (Objects/locations.md in CPython's source):

- an entry covers 1 to 8 code units: a header byte ``1 cccc lll`` (code, length - 1), then the
  code's fields;
- code 15: no location; 14: the long form (signed line delta, end-line delta, column + 1, end
  column + 1, as varints); 13: the line only (signed line delta); 10-12: one line, line delta 0-2,
  then the columns as two bytes, each under 128; 0-9: the short form, on the same line, column
  under 80 and at most 15 columns wide, in one byte;
- a varint is 6-bit chunks, least significant first, bit 6 set on all but the last; a signed one
  has the sign in its lowest bit;
- a line delta is against the previous entry with a line (co_firstlineno at first).
"""

from __future__ import annotations

import dis
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from bytecode import Bytecode, Instr

from xcs_bc._compat import PY311
from xcs_bc.errors import UnsupportedCodeError

__all__ = ["Placed", "Position", "assemble", "line_table", "location_table"]

Position = tuple[int | None, int | None, int | None, int | None]
"""(line, end line, column, end column) of one code unit, as `code.co_positions()` gives them."""

_NONE = (None, None, None, None)
_T = TypeVar("_T")


@dataclass(frozen=True)
class Placed:
    """Where an instruction of the list landed in the code: at `offset` (what `dis`, `f_lasti` and
    `sys.monitoring` report), its EXTENDED_ARG prefixes at `prefixes` (where 3.10/3.11's settrace
    reports it)."""

    instr: Instr
    offset: int
    prefixes: tuple[int, ...]


def assemble(bc: Bytecode, where: str) -> tuple[types.CodeType, list[Placed]]:
    """`bc` assembled (`bc.to_code()`) with a sound line or location table, and where each of its
    instructions landed.  `where` names the code in the error raised when the instructions of the
    code made do not line up with `bc`'s."""
    code: types.CodeType = bc.to_code()
    placed = _placed(code, [item for item in bc if isinstance(item, Instr)], where)
    # an instruction's code units: its prefixes, itself and its caches, up to the next one's
    starts = [place.prefixes[0] if place.prefixes else place.offset for place in placed]
    starts.append(len(code.co_code))
    positions: list[Position] = []
    position: Position = _NONE
    for index, place in enumerate(placed):
        location = place.instr.location
        if location is not None:  # (one without a location has its predecessor's, as in `bytecode`)
            position = (location.lineno, location.end_lineno, location.col_offset, location.end_col_offset)
        positions += [position] * ((starts[index + 1] - starts[index]) // 2)
    if PY311:
        table = location_table(code.co_firstlineno, positions)
    else:
        table = line_table(code.co_firstlineno, [line for line, *_ in positions])
    return code.replace(co_linetable=table), placed


def _placed(code: types.CodeType, mine: list[Instr], where: str) -> list[Placed]:
    placed: list[Placed] = []
    prefixes: list[int] = []
    for real in dis.get_instructions(code):
        if real.opname == "EXTENDED_ARG":
            prefixes.append(real.offset)
            continue
        if len(placed) >= len(mine) or mine[len(placed)].name != real.opname:
            raise UnsupportedCodeError(f"{where}: the assembled instructions do not line up with the list")
        placed.append(Placed(mine[len(placed)], real.offset, tuple(prefixes)))
        prefixes = []
    if len(placed) != len(mine):
        raise UnsupportedCodeError(f"{where}: the assembled code has fewer instructions than its list")
    return placed


def location_table(first_line: int, positions: Sequence[Position]) -> bytes:
    """The 3.11+ location table (co_linetable) giving code unit i the position `positions[i]`."""
    out = bytearray()
    line = first_line
    for position, units in _runs(positions):
        while units > 0:
            line = _entry(out, min(units, 8), position, line)
            units -= 8
    return bytes(out)


def line_table(first_line: int, lines: Sequence[int | None]) -> bytes:
    """The 3.10 line table (co_linetable, PEP 626) giving code unit i the line `lines[i]`: pairs of
    (bytes covered, up to 254; line delta, -127 to 127, or -128 for no line)."""
    out = bytearray()
    previous = first_line
    for line, units in _runs(lines):
        covered = 2 * units
        if line is None:
            delta = -128
        else:
            delta, previous = line - previous, line
            while not -127 <= delta <= 127:  # the line moves first, covering nothing
                step = 127 if delta > 0 else -127
                out += bytes((0, step & 0xFF))
                delta -= step
        while covered > 254:
            out += bytes((254, delta & 0xFF))
            covered -= 254
            delta = -128 if line is None else 0
        out += bytes((covered, delta & 0xFF))
    return bytes(out)


def _runs(items: Sequence[_T]) -> Iterator[tuple[_T, int]]:
    """Each item of `items` with how many times it repeats from there, runs merged."""
    index = 0
    while index < len(items):
        run = 1
        while index + run < len(items) and items[index + run] == items[index]:
            run += 1
        yield items[index], run
        index += run


def _entry(out: bytearray, size: int, position: Position, line: int) -> int:
    """Append the entry giving `size` code units `position`; the line later deltas start from."""
    start, end_line, column, end_column = position
    if start is None:
        out.append(_header(15, size))
        return line
    delta = start - line
    if column is None or end_column is None:
        if end_line is None or end_line == start:
            out.append(_header(13, size))
            out += _svarint(delta)
            return start
    elif end_line == start:
        if delta == 0 and column < 80 and 0 <= end_column - column < 16:
            out += bytes((_header(column // 8, size), (column % 8) << 4 | (end_column - column)))
            return start
        if 0 <= delta < 3 and column < 128 and end_column < 128:
            out += bytes((_header(10 + delta, size), column, end_column))
            return start
    out.append(_header(14, size))
    out += _svarint(delta)
    out += _varint((end_line if end_line is not None else start) - start)
    out += _varint(0 if column is None else column + 1)
    out += _varint(0 if end_column is None else end_column + 1)
    return start


def _header(code: int, size: int) -> int:
    return 0x80 | code << 3 | (size - 1)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 64:
        out.append(0x40 | (value & 63))
        value >>= 6
    out.append(value)
    return bytes(out)


def _svarint(value: int) -> bytes:
    return _varint(-value << 1 | 1 if value < 0 else value << 1)

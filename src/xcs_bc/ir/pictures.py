"""Pictures of a graph: Graphviz DOT and Mermaid text, and an SVG drawn here.

- `to_dot(graph)`: DOT text, for Graphviz (``dot -Tsvg graph.dot > graph.svg``) or any viewer
  that reads DOT;
- `to_mermaid(graph)`: a Mermaid flowchart, which GitHub, GitLab and Jupyter render inside
  Markdown;
- `to_svg(graph)`: one self-contained SVG with the dataflow (the slow calls by how early each
  could start, with arrows from what they need) and a timeline (each call as it ran, and when it
  could have run had every call started as soon as its inputs were ready);
- `bars_svg(title, legend, rows)`: a timeline alone, from bars given (a jitted function's replay,
  against its traced run: see `execute.timeline`).

No rendering library is needed: Graphviz is a system program pip cannot install, and the two
drawings are boxes, arrows and bars placed from `levels()` and the calls' times, written out as
SVG text that any browser opens.

Every label is escaped for its format: a prompt, a callee's name or a file name can hold any
character (quotes, backslashes, ``<script>``, newlines, Mermaid's ``#`` and backticks).  A box
shows the call's name, where it is and how long it took; its full SSA line, arguments and all,
is the box's tooltip.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from xcs_bc.ir import passes, text
from xcs_bc.ir.passes import Direct
from xcs_bc.ir.refs import Operation

if TYPE_CHECKING:
    from xcs_bc.ir.graph import ComputationGraph

__all__ = ["Bar", "bars_svg", "to_dot", "to_mermaid", "to_svg"]

# control characters (newlines, tabs, escapes) and lone surrogates (no encoding can write them)
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def to_dot(graph: ComputationGraph) -> str:
    """The graph as Graphviz DOT: a box per slow call, an arrow from each call it needs directly
    (dashed when it needs it only through a branch on its result)."""
    names = text.op_names(graph)
    lines = [
        f"digraph {_dot_string(str(graph.metadata.get('name', 'graph')))} {{",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontname="Helvetica"];',
    ]
    for op in graph.operations:
        label = "\n".join(_label(op, names))
        tooltip = text.format_op(op, names)
        lines.append(f"  op{op.id} [label={_dot_string(label)}, tooltip={_dot_string(tooltip)}];")
    for op, dep, control_only in _edges(graph, passes.dependency_bits(graph)):
        style = " [style=dashed]" if control_only else ""
        lines.append(f"  op{dep} -> op{op.id}{style};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(graph: ComputationGraph) -> str:
    """The graph as a Mermaid flowchart (left to right), with the same boxes and arrows as `to_dot`."""
    names = text.op_names(graph)
    lines = ["flowchart LR"]
    for op in graph.operations:
        label = "<br/>".join(_mermaid_text(line) for line in _label(op, names))
        lines.append(f'  op{op.id}["{label}"]')
    for op, dep, control_only in _edges(graph, passes.dependency_bits(graph)):
        arrow = "-.->" if control_only else "-->"
        lines.append(f"  op{dep} {arrow} op{op.id}")
    return "\n".join(lines) + "\n"


# -- the SVG ---------------------------------------------------------------------------------

_BOX_W, _BOX_H, _GAP_X, _GAP_Y, _MARGIN = 250, 54, 60, 16, 20
_ROW_H, _NAME_W, _CHART_W = 22, 260, 560


def to_svg(graph: ComputationGraph) -> str:
    """One SVG: the dataflow on top, the timeline below it (see the module's docstring)."""
    names = text.op_names(graph)
    direct = passes.dependency_bits(graph)  # (once, for every part of the picture)
    title = str(graph.metadata.get("name", "graph"))
    parts: list[str] = []
    flow_w, flow_h = _dataflow(graph, direct, names, parts, top=_MARGIN + 24)
    chart_h = _timeline(graph, direct, names, parts, top=_MARGIN + 24 + flow_h + 40)
    width = _MARGIN * 2 + max(flow_w, _NAME_W + _CHART_W + 80)
    sequential = passes.sequential_seconds(graph)
    ready = passes.critical_path(graph, direct=direct).seconds
    height = _MARGIN + 24 + flow_h + 40 + chart_h + _MARGIN
    head = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{_MARGIN}" y="{_MARGIN + 8}" font-size="15" font-weight="bold">{_xml(title)}: '
        f"{len(graph.operations)} slow calls, {sequential * 1000:.0f} ms one after another, "
        f"{ready * 1000:.0f} ms as soon as inputs are ready</text>",
    ]
    return "\n".join([*head, *parts, "</svg>"]) + "\n"


def _dataflow(
    graph: ComputationGraph, direct: Direct, names: dict[int, str], parts: list[str], top: int
) -> tuple[int, int]:
    """Boxes by level (a column per level, in program order within it) and arrows; its width and
    height."""
    levels = passes.levels(graph, direct=direct)
    where: dict[int, tuple[int, int]] = {}
    rows: dict[int, int] = {}
    for op in graph.operations:
        level = levels[op.id]
        row = rows.get(level, 0)
        rows[level] = row + 1
        where[op.id] = (_MARGIN + level * (_BOX_W + _GAP_X), top + row * (_BOX_H + _GAP_Y))
    for op, dep, control_only in _edges(graph, direct):
        (x1, y1), (x2, y2) = where[dep], where[op.id]
        dash = ' stroke-dasharray="5,4"' if control_only else ""
        parts.append(
            f'<line x1="{x1 + _BOX_W}" y1="{y1 + _BOX_H // 2}" x2="{x2}" y2="{y2 + _BOX_H // 2}" '
            f'stroke="#555"{dash} marker-end="url(#arrow)"/>'
        )
    for op in graph.operations:
        x, y = where[op.id]
        name, site, took = _label(op, names)
        color = "#fbeaea" if "exception" in op.metadata else "#eef3fb"
        parts += [
            f"<g><title>{_xml(text.format_op(op, names))}</title>",
            f'<rect x="{x}" y="{y}" width="{_BOX_W}" height="{_BOX_H}" rx="6" fill="{color}" '
            'stroke="#6b8cc7"/>',
            f'<text x="{x + 8}" y="{y + 18}" font-weight="bold">{_xml(_clip(name, 30))}</text>',
            f'<text x="{x + 8}" y="{y + 33}" fill="#444">{_xml(_clip(site, 36))}</text>',
            f'<text x="{x + 8}" y="{y + 47}" fill="#444">{_xml(took)}</text></g>',
        ]
    return len(rows) * (_BOX_W + _GAP_X), max(rows.values(), default=0) * (_BOX_H + _GAP_Y)


def _timeline(
    graph: ComputationGraph, direct: Direct, names: dict[int, str], parts: list[str], top: int
) -> int:
    """A row per call: a grey bar for when it ran, a blue one for when it could have (every call
    started as soon as the calls it needs were done, each taking as long as it took); its height."""
    ops = graph.operations
    starts = (op.metadata.get("start") for op in ops)
    origin = min((start for start in starts if isinstance(start, (int, float))), default=0.0)
    could = _as_soon_as_ready(graph, direct)
    rows = []
    for op in ops:
        bars = []
        for (start, end), color in ((_ran(op, origin), _GREY), (could[op.id], _BLUE)):
            bars.append(Bar(start, end, color, f"{names[op.id]}: {start * 1000:.1f}-{end * 1000:.1f} ms"))
        rows.append((f"{names[op.id]} {op.name}", bars))
    return _bars(rows, "Timeline: as run (grey) and as soon as inputs are ready (blue)", parts, top)


class Bar(NamedTuple):
    """A bar of a timeline: from `start` to `end` (seconds from the row's origin), its color and tooltip."""

    start: float
    end: float
    color: str
    tooltip: str


_GREY, _BLUE = "#b8b8b8", "#5b8def"


def bars_svg(title: str, legend: str, rows: Sequence[tuple[str, Sequence[Bar]]]) -> str:
    """One SVG of a timeline alone: a row per label, its bars (two at most) on a common time axis."""
    parts: list[str] = []
    top = _MARGIN + 24 + 24
    height = top + _bars(rows, legend, parts, top) + _MARGIN
    width = _MARGIN * 2 + _NAME_W + _CHART_W + 80
    head = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{_MARGIN}" y="{_MARGIN + 8}" font-size="15" font-weight="bold">{_xml(title)}</text>',
    ]
    return "\n".join([*head, *parts, "</svg>"]) + "\n"


def _bars(rows: Sequence[tuple[str, Sequence[Bar]]], legend: str, parts: list[str], top: int) -> int:
    """Draw `rows` under `legend`, with a time axis; their height."""
    span = max([bar.end for _, bars in rows for bar in bars] + [1e-9])
    scale = _CHART_W / span
    left = _MARGIN + _NAME_W
    parts.append(f'<text x="{_MARGIN}" y="{top - 14}" font-weight="bold">{_xml(legend)}</text>')
    for index, (label, bars) in enumerate(rows):
        y = top + index * _ROW_H
        parts.append(f'<text x="{_MARGIN}" y="{y + 14}">{_xml(_clip(label, 40))}</text>')
        for bar, offset in zip(bars, (2, 11), strict=False):
            width = max((bar.end - bar.start) * scale, 1.0)
            parts.append(
                f'<rect x="{left + bar.start * scale:.1f}" y="{y + offset}" width="{width:.1f}" height="8" '
                f'fill="{bar.color}"><title>{_xml(bar.tooltip)}</title></rect>'
            )
    axis_y = top + len(rows) * _ROW_H + 6
    parts.append(f'<line x1="{left}" y1="{axis_y}" x2="{left + _CHART_W}" y2="{axis_y}" stroke="#555"/>')
    for tick in range(5):
        seconds = span * tick / 4
        x = left + seconds * scale
        parts.append(
            f'<text x="{x:.1f}" y="{axis_y + 16}" text-anchor="middle">{seconds * 1000:.0f} ms</text>'
        )
    return len(rows) * _ROW_H + 24


def _ran(op: Operation, origin: float) -> tuple[float, float]:
    start = op.metadata.get("start")
    if not isinstance(start, (int, float)):
        return 0.0, op.duration
    return start - origin, start - origin + op.duration


def _as_soon_as_ready(graph: ComputationGraph, direct: Direct) -> dict[int, tuple[float, float]]:
    """When each call would start and end if it started as soon as the calls it needs had ended."""
    by_id = {op.id: op for op in graph.operations}
    times: dict[int, tuple[float, float]] = {}
    for op_id, deps in direct.items():
        start = max((times[dep][1] for dep in deps), default=0.0)
        times[op_id] = (start, start + by_id[op_id].duration)
    return times


# -- shared ----------------------------------------------------------------------------------


def _edges(graph: ComputationGraph, direct: Direct) -> list[tuple[Operation, int, bool]]:
    """(operation, an operation it needs directly, whether only through a branch on its result),
    for the immediate dependencies: an arrow implied by a path of others is left out."""
    _, immediate = passes.reduction_bits(direct)
    edges = []
    for op in graph.operations:
        data = frozenset().union(*(ref.deps for ref in op.inputs))
        edges += [(op, dep, dep not in data) for dep in immediate[op.id]]
    return edges


def _label(op: Operation, names: dict[int, str]) -> tuple[str, str, str]:
    """A box's lines: `%0 llm`, `file.py:12` (`in summarize` when made inside a function the
    observed code called), `50.2 ms` (and `raised ValueError`)."""
    took = f"{op.duration * 1000:.1f} ms"
    if "exception" in op.metadata:
        took += f", raised {type(op.metadata['exception']).__name__}"
    site = f"{os.path.basename(op.site.file)}:{op.site.line}"
    if op.stack:
        site += f" in {op.stack[-1].function}"
    return _clean(f"{names[op.id]} {op.name}"), _clean(site), took


def _clean(value: str) -> str:
    """One printable line: what `_UNPRINTABLE` matches becomes a space."""
    return _UNPRINTABLE.sub(" ", value)


def _clip(value: str, width: int) -> str:
    return value if len(value) <= width else value[: width - 1] + "…"


def _dot_string(value: str) -> str:
    """A DOT double-quoted string; its lines joined by DOT's centred line break."""
    lines = [_clean(line).replace("\\", "\\\\").replace('"', '\\"') for line in value.split("\n")]
    return '"' + "\\n".join(lines) + '"'


def _mermaid_text(value: str) -> str:
    """Text inside a Mermaid quoted label: entity codes for what Mermaid or HTML would read."""
    value = _clean(value).replace("#", "#35;")  # first: the codes below start with '#'
    for char, code in (('"', "#quot;"), ("&", "#amp;"), ("<", "#lt;"), (">", "#gt;"), ("`", "#96;")):
        value = value.replace(char, code)
    return value


def _xml(value: str) -> str:
    """Text or an attribute value in the SVG."""
    value = _clean(value)
    for char, code in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;")):
        value = value.replace(char, code)
    return value

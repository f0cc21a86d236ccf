"""The graph of one observed run: its operations in program order, with the queries people ask of it.

The queries delegate to the passes (`xcs_bc.ir.passes`) and the SSA text
(`xcs_bc.ir.text`), which work on the records of `xcs_bc.ir.refs` alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from xcs_bc.ir import passes, pictures, text
from xcs_bc.ir.passes import CriticalPath
from xcs_bc.ir.refs import Operation, ValueRef


@dataclass(eq=False)
class ComputationGraph:
    """The slow calls of one observed run, in program order, with their dataflow.

    `inputs` are the values the run started from; `outputs` what it produced
    (the return value of a jitted function; empty for a captured block).
    `metadata` carries `wall_time` (seconds the whole run took), `min_call_ms`,
    `name` and, when the run raised, `exception`.
    """

    operations: list[Operation]
    inputs: tuple[ValueRef, ...] = ()
    outputs: tuple[ValueRef, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)

    def dependencies(self, op: Operation) -> set[Operation]:
        """The operations `op` needs directly, through data, effects or control (glue in between)."""
        return passes.dependencies(self, op)

    def levels(self) -> dict[int, int]:
        """ASAP level of every operation id: 0 for operations that need nothing."""
        return passes.levels(self)

    def independent_sets(self) -> list[set[Operation]]:
        """Groups of two or more slow calls that can run at the same time."""
        return passes.independent_sets(self)

    def critical_path(self) -> CriticalPath:
        return passes.critical_path(self)

    def to_dot(self) -> str:
        """The graph as Graphviz DOT text (`dot -Tsvg`): a box per slow call, arrows from what it needs."""
        return pictures.to_dot(self)

    def to_mermaid(self) -> str:
        """The graph as a Mermaid flowchart, which GitHub, GitLab and Jupyter render in Markdown."""
        return pictures.to_mermaid(self)

    def to_svg(self) -> str:
        """One self-contained SVG: the dataflow, and a timeline of the calls as they ran and as they
        could have run had each started as soon as its inputs were ready."""
        return pictures.to_svg(self)

    def __str__(self) -> str:

        return text.format_graph(self)

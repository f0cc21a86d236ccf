"""The SSA IR: the records every stage hands on, and what can be asked of them.

Modules, bottom up: `refs` (the records: `ValueRef`, `Operation`, `Site`, ...),
`values` (making values, peeking at real objects without running user code),
`passes` (dependencies, levels, independent sets, critical path), `text` (the
SSA text), `check` (the invariants every builder output keeps) and `graph`
(`ComputationGraph`, whose methods delegate to `passes` and `text`).  Outside
this package, import the records from `xcs_bc.ir`.
"""

from __future__ import annotations

from xcs_bc.ir.graph import ComputationGraph
from xcs_bc.ir.refs import (
    MAX_DEPTH,
    MISSING,
    Caller,
    ExprKind,
    Local,
    Operation,
    OpType,
    PathStep,
    Site,
    Source,
    ValueRef,
)

__all__ = [
    "MAX_DEPTH",
    "MISSING",
    "Caller",
    "ComputationGraph",
    "ExprKind",
    "Local",
    "OpType",
    "Operation",
    "PathStep",
    "Site",
    "Source",
    "ValueRef",
]

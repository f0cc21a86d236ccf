"""xcs_bc: run the independent slow calls of ordinary Python code at the same time.

    import xcs_bc as xcs

    fast = xcs.jit(pipeline)              # behaves exactly like `pipeline`, faster from its 2nd call
    with xcs.capture() as cap:            # or look at the dataflow graph of any block
        pipeline(docs)
    print(cap.report())

What is public, and kept stable between releases:

- `xcs_bc` itself: the names in its `__all__` (the entry points `jit` and `capture`, the objects
  they hand back, `Stats`, `ComputationGraph` and its records, `CallEvent`, `CriticalPath`,
  `Pattern`, the `Executor` protocol, the errors) and `__version__`;
- `xcs_bc.testing`: fakes for users' own tests (`FakeLLM`, `slow`, `CallLog`);
- `xcs_bc.errors`: the exception tree (also exported here).

Everything else is internal: the stage packages `xcs_bc.ir`, `xcs_bc.observe`, `xcs_bc.build`,
`xcs_bc.analyze`, `xcs_bc.plan` and `xcs_bc.execute`, and the modules `xcs_bc.capture`,
`xcs_bc.jit` and `xcs_bc.demo`.  Import the names above from `xcs_bc`: the modules that define
them may move or be renamed between releases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xcs_bc.analyze.patterns import Pattern
from xcs_bc.capture import capture
from xcs_bc.errors import CaptureError, ConfigError, IRError, UnsupportedCodeError, XCSError
from xcs_bc.execute.cluster import DaskExecutor, RayExecutor
from xcs_bc.execute.executor import Executor
from xcs_bc.execute.limits import Limit, limit
from xcs_bc.execute.replay import Stats
from xcs_bc.ir import MISSING, ComputationGraph, Operation, OpType, PathStep, Site, Source, ValueRef
from xcs_bc.ir.passes import CriticalPath
from xcs_bc.jit import JittedFunction, jit
from xcs_bc.observe.hooks import CallEvent

if TYPE_CHECKING:
    import os

__all__ = [
    "MISSING",
    "CallEvent",
    "CaptureError",
    "ComputationGraph",
    "ConfigError",
    "CriticalPath",
    "DaskExecutor",
    "Executor",
    "IRError",
    "JittedFunction",
    "Limit",
    "OpType",
    "Operation",
    "PathStep",
    "Pattern",
    "RayExecutor",
    "Site",
    "Source",
    "Stats",
    "UnsupportedCodeError",
    "ValueRef",
    "XCSError",
    "capture",
    "jit",
    "limit",
]

_DISTRIBUTION = "xcs-bc"


def _version() -> str:
    """The installed distribution's version; from a source tree that is not installed, pyproject's."""
    import pathlib
    from importlib import metadata

    try:
        return metadata.version(_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        # `src/xcs_bc/__init__.py` -> the tree's `pyproject.toml`
        pyproject = pathlib.Path(__file__).resolve().parent.parent.parent / "pyproject.toml"
        return _pyproject_version(pyproject) or "0+unknown"


def _pyproject_version(pyproject: os.PathLike[str]) -> str | None:
    """The `[project]` version of a pyproject.toml, if the file exists and is xcs-bc's.

    Read line by line (`tomllib` is 3.11+): the `name` and `version` lines of the `[project]` table."""
    import re

    try:
        with open(pyproject, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except OSError:
        return None
    table, project = None, {}
    for line in lines:
        header = re.fullmatch(r"\s*\[([^\[\]]+)\]\s*(#.*)?", line)
        if header:
            table = header.group(1).strip()
            continue
        field = re.fullmatch(r"""\s*(name|version)\s*=\s*["']([^"']+)["']\s*(#.*)?""", line)
        if table == "project" and field:
            project[field.group(1)] = field.group(2)
    return project.get("version") if project.get("name") == _DISTRIBUTION else None


__version__ = _version()

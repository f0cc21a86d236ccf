"""xcs_bc: run the independent slow calls of ordinary Python code at the same time."""

from __future__ import annotations

from xcs_bc.capture import capture
from xcs_bc.errors import CaptureError, ConfigError, UnsupportedCodeError, XCSError
from xcs_bc.ir import MISSING, ComputationGraph, Operation, OpType, PathStep, Site, Source, ValueRef
from xcs_bc.jit import JittedFunction, jit

__all__ = [
    "MISSING",
    "CaptureError",
    "ComputationGraph",
    "ConfigError",
    "JittedFunction",
    "OpType",
    "Operation",
    "PathStep",
    "Site",
    "Source",
    "UnsupportedCodeError",
    "ValueRef",
    "XCSError",
    "capture",
    "jit",
]

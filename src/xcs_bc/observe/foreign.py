"""Hooks of others on the calling thread that a jitted call must not disturb.

A replay runs a rewritten clone of the function and issues its slow calls on pool threads,
and a trace may issue the rest of a loop the same way.  A per-thread hook (a debugger's
`sys.settrace`, a profiler's `sys.setprofile`) would not see those calls, and local
`sys.monitoring` events another tool set on the function's code do not fire in the clone.
While such a hook is installed, the jit runs the call plainly: the hook sees exactly the
plain function.  coverage.py is the exception: it installs itself on every thread and
measures lines by file, so the clone and the pool threads are measured too.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from xcs_bc._compat import PY312, nested_code

_monitoring: Any = getattr(sys, "monitoring", None)
_TOLERATED_TOOLS = frozenset({"xcs_bc", "coverage.py"})


def foreign_hook(code: types.CodeType) -> str | None:
    """What hook of someone else's watches this thread or `code`, or None when there is none."""
    trace = sys.gettrace()
    if trace is not None and not _is_coverage(trace):
        return f"a trace function is installed ({_describe(trace)}: a debugger or tracer)"
    profile = sys.getprofile()
    if profile is not None and not _is_coverage(profile):
        return f"a profile function is installed ({_describe(profile)})"
    if PY312:
        return _monitoring_tool_on(code)
    return None


def _monitoring_tool_on(code: types.CodeType) -> str | None:
    for tool_id in range(6):
        name = _monitoring.get_tool(tool_id)
        if name is None or name in _TOLERATED_TOOLS:
            continue
        for each in (code, *nested_code(code)):
            if _monitoring.get_local_events(tool_id, each):
                return f"sys.monitoring tool {tool_id} ({name!r}) has events on {each.co_name}"
    return None


def _is_coverage(hook: object) -> bool:
    owner = getattr(hook, "__self__", hook)  # PyTracer._trace is a bound method; CTracer is the object
    return type(owner).__module__.split(".")[0] == "coverage"


def _describe(hook: object) -> str:
    return getattr(hook, "__qualname__", None) or type(hook).__qualname__

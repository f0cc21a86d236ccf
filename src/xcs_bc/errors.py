"""Errors raised by xcs_bc.

Every error derives from `XCSError`, and also from the built-in exception a
user would already catch for that kind of mistake::

    XCSError(Exception)
    ├── CaptureError(RuntimeError)        a capture cannot start or observe (nested on one
    │                                      thread, no free sys.monitoring tool id, ...)
    ├── UnsupportedCodeError(NotImplementedError)
    │                                      code the tracer or rewriter does not handle
    ├── ConfigError(ValueError, TypeError) a bad argument to a public function
    │                                      (min_call_ms=-1, max_workers="8", ...)
    └── IRError(ValueError)               a graph breaks an invariant of the IR: a bug in
                                           whatever built it (see `xcs_bc.ir.check`)

Messages say what went wrong, where (`file:line` when there is a place), the
offending value, and how to fix it.  Errors raised by the user's own code are
never wrapped: they propagate unchanged.
"""

from __future__ import annotations


class XCSError(Exception):
    """Base class of every error xcs_bc raises itself."""


class CaptureError(XCSError, RuntimeError):
    """Observation could not start or could not observe the code it was asked to."""


class UnsupportedCodeError(XCSError, NotImplementedError):
    """The code uses a construct the tracer or the rewriter does not support."""


class ConfigError(XCSError, ValueError, TypeError):
    """A public function was given an argument it cannot use."""


class IRError(XCSError, ValueError):
    """A graph breaks an invariant of the IR: a bug in whatever built it."""

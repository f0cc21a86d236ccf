"""Observe: how far a capture reaches into the Python functions its block calls.

`xcs.capture()` traces through the user's own functions, at any depth, down to the *leaves*:
calls it does not look inside, which are operations of the graph when they take `min_call_ms` or
more.  A leaf is:

* a function of the standard library, of an installed package (its file is under a
  ``site-packages`` or ``dist-packages`` folder: an HTTP or LLM client), or of xcs_bc itself;
* a generator, coroutine or async generator function (its frame suspends; calling it only makes
  the object, whose work is done by whoever consumes it);
* a function of a module the user names in ``leaves=`` (or a function named there itself).

A module named in ``through=`` is traced through even when installed.  `Reach` answers for a
code object and its module's name; the builder asks it when a traced frame calls a Python
function (see `build.following`).
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterable
from typing import Any

from xcs_bc._compat import CO_GENERATOR_LIKE
from xcs_bc.errors import ConfigError

_INSTALLED = ("site-packages", "dist-packages")
_OWN_MODULES = frozenset({"xcs_bc"})


def _in(module: str, names: frozenset[str]) -> bool:
    """Is `module` one of `names`, or a submodule of one of them?"""
    while True:
        if module in names:
            return True
        module, dot, _ = module.rpartition(".")
        if not dot:
            return False


class Reach:
    """Which Python functions a capture traces through (see the module's docstring)."""

    def __init__(self, leaves: Iterable[Any] = (), through: Iterable[Any] = ()) -> None:
        leaf_modules: set[str] = set()
        leaf_codes: set[types.CodeType] = set()
        for entry in _entries("leaves", leaves, "module names or functions"):
            if isinstance(entry, str):
                leaf_modules.add(_module_name("leaves", entry))
                continue
            code = _code_of(entry)
            if code is None:
                raise ConfigError(
                    f"leaves= takes module names and Python functions, got {entry!r}: name its module "
                    f"as a string (for example {getattr(entry, '__module__', None) or 'mypackage'!r})"
                )
            leaf_codes.add(code)
        through_modules = set()
        for entry in _entries("through", through, "module names"):
            if not isinstance(entry, str):
                raise ConfigError(f"through= takes module names (strings), got {entry!r}")
            through_modules.add(_module_name("through", entry))
        self.leaf_modules = frozenset(leaf_modules)
        self.leaf_codes = frozenset(leaf_codes)
        self.through_modules = frozenset(through_modules)

    def __call__(self, code: types.CodeType, module: object) -> bool:
        """Is a frame of `code`, a function of `module` (its name), traced through, rather than a leaf?"""
        if code.co_flags & CO_GENERATOR_LIKE or code in self.leaf_codes:
            return False
        module = module if isinstance(module, str) else ""
        if _in(module, self.leaf_modules) or _in(module, _OWN_MODULES):
            return False
        if _in(module, self.through_modules):
            return True
        return not library(module, code.co_filename)


def library(module: str, filename: str) -> bool:
    """Code of the standard library or of an installed package."""
    if filename.startswith("<frozen"):
        return True
    if any(part in filename for part in _INSTALLED):
        return True
    top = module.partition(".")[0]
    return top in sys.stdlib_module_names and top != "__main__"


def _entries(option: str, given: Iterable[Any], what: str) -> list[Any]:
    if isinstance(given, (str, bytes)) or not isinstance(given, Iterable):
        raise ConfigError(
            f"{option}= takes a list of {what}, got {given!r}; for one, write {option}=[{given!r}]"
        )
    return list(given)


def _module_name(option: str, name: str) -> str:
    if not name or not all(part.isidentifier() for part in name.split(".")):
        raise ConfigError(f"{option}= holds {name!r}, which is no module name (like 'openai' or 'mypkg.llm')")
    return name


def _code_of(entry: Any) -> types.CodeType | None:
    function = getattr(entry, "__func__", entry)
    code = getattr(function, "__code__", None)
    return code if isinstance(code, types.CodeType) else None

"""The public API: the names `xcs_bc` exports, its version, its documentation.

Changing `PUBLIC` is changing the public API: do it on purpose, with the docs.
"""

from __future__ import annotations

import inspect
import pathlib
import pydoc
import re
import sys
from importlib import metadata
from typing import Any

import pytest

import xcs_bc as xcs
from xcs_bc.analyze import patterns as patterns_module
from xcs_bc.errors import IRError
from xcs_bc.execute import executor as executor_module
from xcs_bc.execute import replay as replay_module
from xcs_bc.ir import passes as passes_module
from xcs_bc.observe import hooks as hooks_module
from xcs_bc.testing import slow

ROOT = pathlib.Path(__file__).resolve().parent.parent  # the source tree the tests belong to

PUBLIC = [
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
    "MISSING",
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


def test_public_names_are_pinned() -> None:
    assert sorted(xcs.__all__) == PUBLIC
    assert len(set(xcs.__all__)) == len(xcs.__all__)


def test_every_public_name_is_importable_and_documented() -> None:
    namespace: dict[str, Any] = {}
    exec("from xcs_bc import *", namespace)  # what `import *` gives is exactly __all__
    assert sorted(name for name in namespace if name != "__builtins__") == PUBLIC
    for name in PUBLIC:
        doc = inspect.getdoc(namespace[name])
        assert doc and len(doc.split()) >= 3, f"xcs_bc.{name} has no docstring"


def test_exported_types_are_the_ones_users_receive() -> None:
    assert xcs.Stats is replay_module.Stats
    assert xcs.CallEvent is hooks_module.CallEvent
    assert xcs.Executor is executor_module.Executor
    assert xcs.CriticalPath is passes_module.CriticalPath
    assert xcs.Pattern is patterns_module.Pattern
    assert xcs.IRError is IRError and issubclass(xcs.IRError, xcs.XCSError)

    @slow(0.02)
    def fetch(x: str) -> str:
        return x.upper()

    with xcs.capture(min_call_ms=10) as cap:
        shouted = [fetch(x) for x in "abc"]
    assert shouted == ["A", "B", "C"]
    assert all(isinstance(event, xcs.CallEvent) for event in cap.events) and cap.events
    assert isinstance(cap.graph, xcs.ComputationGraph)
    assert isinstance(cap.graph.critical_path(), xcs.CriticalPath)
    found = patterns_module.patterns(cap.graph)
    assert found and all(isinstance(pattern, xcs.Pattern) for pattern in found)

    def twice(x: str) -> str:
        return fetch(x) + fetch(x + "!")

    fast = xcs.jit(twice, min_call_ms=10)
    assert fast("q") == "QQ!"
    assert isinstance(fast.stats, xcs.Stats) and fast.stats.traces == 1
    assert isinstance(fast._get_executor(), xcs.Executor)


# -- version -------------------------------------------------------------------------------------


def pyproject_version() -> str:
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib  # pytest's own dependency on 3.10
    with open(ROOT / "pyproject.toml", "rb") as file:
        return str(tomllib.load(file)["project"]["version"])


def test_version_is_pyproject_version() -> None:
    assert xcs.__version__ == pyproject_version() == "0.1.0"


def test_version_comes_from_the_installed_distribution_first(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = []

    def version(name: str) -> str:
        asked.append(name)
        return "7.8.9"

    monkeypatch.setattr(metadata, "version", version)
    assert xcs._version() == "7.8.9"
    assert asked == ["xcs-bc"]


def test_version_from_the_source_tree_when_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    def version(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", version)
    # as if imported from the source tree (tox installs a wheel: there is no pyproject beside it)
    monkeypatch.setattr(xcs, "__file__", str(ROOT / "src" / "xcs_bc" / "__init__.py"))
    assert xcs._version() == pyproject_version()


def test_pyproject_version_reads_only_xcs_bc_project_table(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "pyproject.toml"
    assert xcs._pyproject_version(path) is None  # no file
    path.write_text('[tool.other]\nversion = "9"\n[project]\nname = "xcs-bc"\nversion = "1.2.3"  # bump\n')
    assert xcs._pyproject_version(path) == "1.2.3"
    path.write_text('[project]\nname = "something-else"\nversion = "1.2.3"\n')
    assert xcs._pyproject_version(path) is None
    path.write_text('[project]\nname = "xcs-bc"\n[tool.x]\nversion = "4"\n')
    assert xcs._pyproject_version(path) is None


# -- what is public, in the docs -----------------------------------------------------------------


def test_package_docstring_and_layout_agree_on_what_is_public() -> None:
    doc = xcs.__doc__ or ""
    for module in ("xcs_bc.testing", "xcs_bc.errors", "__all__", "__version__"):
        assert module in doc
    assert "internal" in doc
    layout = (ROOT / "docs" / "layout.md").read_text()
    assert "Only `xcs_bc` (its `__all__`), `xcs_bc.testing` and `xcs_bc.errors` are public." in layout
    stages = ("ir", "observe", "build", "analyze", "plan", "execute")
    for stage in stages:
        assert f"`xcs_bc.{stage}`" in doc, f"the package docstring does not call xcs_bc.{stage} internal"
    assert "stage packages are internal" in squeeze(layout)


# -- help(xcs.jit), help(xcs.capture) ------------------------------------------------------------


def squeeze(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_jit_docstring_documents_every_option() -> None:
    doc = squeeze(xcs.jit.__doc__ or "")
    assert set(inspect.signature(xcs.jit).parameters) == {
        "fn",
        "max_workers",
        "min_call_ms",
        "cache_size",
        "executor",
        "speculate",
        "max_wasted_per_call",
    }
    for documented in (
        "`max_workers` (int >= 1, or None; default None)",
        "`min_call_ms` (a number >= 0, default 1.0)",
        "`cache_size` (int >= 1, default 8)",
        "`executor` (default None)",
        "`speculate` (default False)",
        "`max_wasted_per_call` (int >= 1, default 8)",
        "submit(fn, *args)",
        "ConfigError",
        "`executor` and `max_workers` together",
        "already jitted",
        "`stats`",
        "explain()",
        "JittedFunction",
    ):
        assert documented in doc
    for counter in xcs.Stats.__dataclass_fields__:
        if not counter.startswith("_"):
            assert f"`{counter}`" in doc, f"jit's docstring does not name stats.{counter}"
    rendered = squeeze(pydoc.render_doc(xcs.jit, renderer=pydoc.plaintext))
    assert "`cache_size` (int >= 1, default 8)" in rendered


def test_capture_docstring_documents_its_option_and_results() -> None:
    doc = squeeze(xcs.capture.__doc__ or "")
    assert set(inspect.signature(xcs.capture).parameters) == {"min_call_ms", "leaves", "through"}
    for documented in (
        "`min_call_ms` (a number >= 0, default 1.0)",
        "`leaves` (a list of module names and functions, default none)",
        "`through` (a list of module names, default none)",
        "ConfigError",
        "CaptureError",
        "`cap.graph`",
        "`cap.events`",
        "`cap.report()`",
    ):
        assert documented in doc
    assert "min_call_ms" in squeeze(pydoc.render_doc(xcs.capture, renderer=pydoc.plaintext))

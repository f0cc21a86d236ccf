"""The package's import graph follows the pipeline and has no cycles.

Every module of `xcs_bc` belongs to a layer, listed bottom up in `LAYERS`
(the order of `docs/layout.md`).  A module may import modules of its own layer
or of layers below it, never above; and the graph of runtime imports (those
inside functions included, `if TYPE_CHECKING:` blocks excluded) has no cycle.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

import xcs_bc

PACKAGE = pathlib.Path(xcs_bc.__file__).parent

LAYERS: list[set[str]] = [
    {"xcs_bc.errors", "xcs_bc._compat", "xcs_bc._assemble"},  # foundations: no xcs_bc import but each other
    {"xcs_bc.testing"},  # public fakes for users' tests: need only the errors
    {"xcs_bc.ir"},  # the records every stage hands on
    {"xcs_bc.observe"},  # stage 1: hooks
    {"xcs_bc.build"},  # stage 2: events -> graph
    {"xcs_bc.analyze"},  # stage 3: patterns and the report
    {"xcs_bc.plan"},  # stage 4: guards and recipes
    {"xcs_bc.execute"},  # stage 5: rewrite and replay
    {"xcs_bc.capture"},  # the public entry points, built on the stages
    {"xcs_bc.profiler"},  # a whole script under capture
    {"xcs_bc.jit"},
    {"xcs_bc", "xcs_bc.demo", "xcs_bc.__main__"},  # the package facade and the demo
]


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    for index, members in enumerate(LAYERS):
        for member in members:
            if module == member or (member != "xcs_bc" and module.startswith(member + ".")):
                return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__} and to docs/layout.md")


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under `if TYPE_CHECKING:` (imports made for annotations only)."""
    out: list[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            stack.extend(node.orelse)
            continue
        out.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return out


def imports_of(module: str) -> set[str]:
    """The xcs_bc modules `module` imports at run time (a `from pkg import sub` names the submodule)."""
    tree = ast.parse(MODULES[module].read_text())
    found: set[str] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "xcs_bc")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "xcs_bc":
            assert node.level == 0, f"{module}: use absolute imports"
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    found.discard(module)
    return found


def test_every_module_is_in_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_the_layers(module: str) -> None:
    own = layer_of(module)
    upward = sorted(target for target in imports_of(module) if layer_of(target) > own)
    assert not upward, f"{module} (layer {own}) imports a later stage: {upward}"


def test_the_import_graph_has_no_cycle() -> None:
    graph = {module: imports_of(module) for module in MODULES}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycle = path[path.index(target) :] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_the_checker_sees_an_upward_import() -> None:
    """The walk finds imports inside functions and skips TYPE_CHECKING blocks (so the tests above bite)."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from xcs_bc.jit import jit\n"
        "def f():\n    from xcs_bc.plan import planner\n"
    )
    nodes = _runtime_nodes(ast.parse(source))
    names = sorted(n.module or "" for n in nodes if isinstance(n, ast.ImportFrom))
    assert names == ["typing", "xcs_bc.plan"]

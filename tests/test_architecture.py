"""The package layout is the architecture: imports point down the layers, never in a loop.

Layers, bottom to top (docs/architecture.md says what each owns).  A module
may import modules of its own layer and of the layers below it; imports
under ``if TYPE_CHECKING:`` are only for annotations and do not count.
Imports inside functions count: they run too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ckpt"

#: Bottom to top.  A module belongs to the first layer whose prefix names it.  The
#: package itself (``ckpt/__init__.py``) is at the bottom: it imports nothing when it
#: runs (its names are imported lazily, on first use), so anything may read
#: ``ckpt.__version__``.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("package", ("ckpt",)),
    ("errors", ("ckpt.errors",)),
    ("storage", ("ckpt.storage",)),
    ("objects", ("ckpt.objects",)),
    ("values", ("ckpt.values",)),
    ("history", ("ckpt.history",)),
    ("maintenance", ("ckpt.maintenance",)),
    ("repository", ("ckpt.repository",)),
    ("transfer", ("ckpt.transfer",)),
    ("pipeline", ("ckpt.pipeline",)),
    ("integrations", ("ckpt.integrations",)),
    ("ui", ("ckpt.ui",)),
    ("cli", ("ckpt.cli", "ckpt.__main__")),
]

#: Modules allowed at the package root: the public face.
ROOT_MODULES = {"__init__", "__main__", "errors", "repository"}

#: Longest a module may be without saying at its top why it is longer.
MAX_LINES = 600
LONG_MODULE_MARK = "Why this module is long:"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    if module == "ckpt":
        return 0
    for index, (_, prefixes) in enumerate(LAYERS[1:], start=1):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                return index
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The ckpt modules ``module`` imports at run time (not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def resolve(node: ast.Import | ast.ImportFrom) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("ckpt"):
                    found.add(alias.name)
            return
        if node.level:
            base = module.split(".")
            if not is_package:
                base = base[:-1]
            base = base[: len(base) - (node.level - 1)]
            target = ".".join([*base, *([node.module] if node.module else [])])
        else:
            target = node.module or ""
        if not target.startswith("ckpt"):
            return
        for alias in node.names:
            # `from ckpt.objects import codec` imports a module; `from ckpt.x import Name` does not.
            sub = f"{target}.{alias.name}"
            found.add(sub if sub in known else target)

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, ast.Import | ast.ImportFrom):
                resolve(node)
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    visit([child])
                elif isinstance(child, ast.excepthandler):
                    visit(child.body)

    visit(tree.body)
    found.discard(module)
    return {name for name in found if name in known}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    known = all_modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def test_every_import_points_down_the_layers(graph: dict[str, set[str]]) -> None:
    upward = [
        f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for module, targets in graph.items()
        for target in sorted(targets)
        if layer_of(target) > layer_of(module)
    ]
    assert upward == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strongconnect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                strongconnect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            strongconnect(node)
    return found


def test_no_import_cycles(graph: dict[str, set[str]]) -> None:
    # A package's __init__ re-exporting its own modules is not a cycle of ideas.
    without_reexports = {
        module: {t for t in targets if not (PACKAGE.parent / module.replace(".", "/")).is_dir()}
        for module, targets in graph.items()
    }
    assert _cycles(without_reexports) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_an_upward_import_would_be_caught(tmp_path: Path) -> None:
    source = tmp_path / "job.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from ckpt.cli.main import main\n"
        "def f():\n    from ckpt.maintenance.gc import collect\n"
    )
    known = {"ckpt.cli.main": source, "ckpt.maintenance.gc": source}
    found = imports_of("ckpt.history.job", source, known)
    assert found == {"ckpt.maintenance.gc"}
    assert layer_of("ckpt.maintenance.gc") > layer_of("ckpt.history.job")


def test_the_package_root_holds_only_the_public_face() -> None:
    root = {path.stem for path in PACKAGE.glob("*.py")}
    assert root <= ROOT_MODULES, sorted(root - ROOT_MODULES)


def test_long_modules_say_why() -> None:
    unexplained = []
    for name, path in all_modules().items():
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        if lines > MAX_LINES and LONG_MODULE_MARK not in text[:3000]:
            unexplained.append(f"{name}: {lines} lines")
    assert unexplained == []

"""The package's shape: one-way layers and no import circle, counting every import statement.

Module-level, ``if TYPE_CHECKING:`` and function-local imports all count: the source is parsed
with ``ast`` and every ``import``/``from ... import`` node anywhere in a file is an edge.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

import metacrl

ROOT = Path(metacrl.__file__).parent

# Bottom to top; a unit imports only from its own layer or the layers below it.
LAYERS: list[set[str]] = [
    {"errors", "profiling", "typing", "validation"},
    {"models"},
    {"learners"},
    {"regularizer"},
    {"distributed"},
    {"data"},
    {"train"},
    {"cli"},
    {"<root>", "__main__"},
]


def _modules(root: Path = ROOT) -> dict[str, Path]:
    mods = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _resolve(name: str, mods: dict[str, Path]) -> str:
    while name not in mods:
        name = name.rpartition(".")[0]
    return name


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (a package means its ``__init__``)."""
    mods = _modules(root)
    name = root.name
    edges: dict[str, set[str]] = defaultdict(set)
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                if target == name or target.startswith(name + "."):
                    edges[mod].add(_resolve(target, mods))
        edges[mod].discard(mod)
    return dict(edges)


def unit(module: str) -> str:
    """The layer unit of a module: its subpackage or top-level module, ``<root>`` for metacrl."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "<root>"


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """Return one cycle of the directed graph as a path, or ``None``."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def unit_graph(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    units: dict[str, set[str]] = defaultdict(set)
    for mod, targets in edges.items():
        for target in targets:
            if unit(mod) != unit(target):
                units[unit(mod)].add(unit(target))
    return dict(units)


def test_the_cycle_finder_finds_a_planted_circle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_counts_type_checking_function_local_and_relative_imports(
    tmp_path: Path,
) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .b import B\n")
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.sub.b import B\n"
    )
    (pkg / "sub" / "b.py").write_text("def f():\n    from pkg import a\n    from . import c\n")
    (pkg / "sub" / "c.py").write_text("")
    edges = import_graph(pkg)
    assert edges["pkg.a"] == {"pkg.sub.b"}
    assert edges["pkg.sub.b"] == {"pkg.a", "pkg.sub.c"}
    assert find_cycle(edges) == ["pkg.a", "pkg.sub.b", "pkg.a"]


def test_no_import_circle_between_modules() -> None:
    assert find_cycle(import_graph()) is None


def test_no_import_circle_between_subpackages() -> None:
    assert find_cycle(unit_graph(import_graph())) is None


def test_every_unit_is_placed_in_a_layer() -> None:
    placed = set().union(*LAYERS)
    assert {unit(m) for m in _modules()} <= placed


@pytest.mark.parametrize("source", sorted({unit(m) for m in _modules()}))
def test_each_unit_imports_only_from_layers_below(source: str) -> None:
    level = {name: i for i, layer in enumerate(LAYERS) for name in layer}
    upward = sorted(
        target
        for target in unit_graph(import_graph()).get(source, set())
        if level[target] > level[source]
    )
    assert upward == [], f"{source} (layer {level[source]}) imports from higher layers {upward}"


def test_train_does_not_import_the_command_line() -> None:
    edges = import_graph()
    assert not [
        (m, t) for m, ts in edges.items() for t in ts if unit(m) == "train" and unit(t) == "cli"
    ]

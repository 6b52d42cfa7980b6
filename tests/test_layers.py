"""The import layers of ``config.layers`` hold: no module imports one from a higher layer, and no import cycle.

Every project module is parsed with ``ast``; every import counts, at module level, inside a function,
and under ``if TYPE_CHECKING:``. TYPE_CHECKING-only imports count too: a type names the module it comes
from, so an annotation that needs a higher layer's type is the same upward dependency as a call, and a
cycle that only type checkers see still makes the modules impossible to read bottom-up.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from config.layers import LAYER_NAMES, layer_of

ROOT = Path(__file__).resolve().parent.parent
# Project code: the apps, config, bench and manage.py; not tests, migrations or the virtualenv.
SKIP_DIRS = {".venv", "tests", "migrations", "node_modules", "var", "static", "templates", "docs", "scripts", "deploy"}


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    line: int


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if any(part in SKIP_DIRS or part.startswith(".") for part in parts[:-1]):
            continue
        names = list(parts[:-1]) + ([] if path.name == "__init__.py" else [path.stem])
        if not names or (not (ROOT / parts[0]).is_dir() and path.name != "manage.py"):
            continue
        found[".".join(names)] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an imported dotted name lives in (None: not ours)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _edges(module: str, path: Path, modules: dict[str, Path]) -> Iterator[Edge]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _resolve(alias.name, modules)
                if target is not None and target != module:
                    yield Edge(module, target, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            for alias in node.names:
                # ``from package import module`` imports the submodule; ``from module import name`` the module.
                target = _resolve(f"{prefix}.{alias.name}", modules) or _resolve(prefix, modules)
                if target is not None and target != module:
                    yield Edge(module, target, node.lineno)


def _graph() -> tuple[dict[str, Path], list[Edge]]:
    modules = _modules()
    # One edge per importing line (``from x import a, b`` names x once).
    edges = list(dict.fromkeys(edge for module, path in modules.items() for edge in _edges(module, path, modules)))
    return modules, edges


def _where(edge: Edge, modules: dict[str, Path]) -> str:
    return f"{modules[edge.source].relative_to(ROOT)}:{edge.line} ({edge.source} imports {edge.target})"


def test_layers_when_every_module_is_read_then_each_belongs_to_one_layer():
    modules = _modules()
    assert "wallets.ledger" in modules and "payments.services.refunds" in modules  # the walk found the apps
    unplaced = []
    for module in modules:
        try:
            layer_of(module)
        except LookupError:
            unplaced.append(module)
    assert unplaced == [], f"modules no layer of config.layers names: {unplaced}"


def test_layers_when_imports_are_parsed_then_none_points_upward():
    modules, edges = _graph()
    upward = [
        f"{_where(edge, modules)}: layer {LAYER_NAMES[layer_of(edge.source)]!r} imports"
        f" layer {LAYER_NAMES[layer_of(edge.target)]!r}"
        for edge in edges
        if layer_of(edge.target) > layer_of(edge.source)
    ]
    assert upward == [], "upward imports:\n" + "\n".join(upward)


def test_layers_when_imports_are_parsed_then_no_module_cycle():
    modules, edges = _graph()
    graph: dict[str, list[Edge]] = {module: [] for module in modules}
    for edge in edges:
        graph[edge.source].append(edge)
    # Tarjan's strongly connected components (iterative); any component of two or more modules is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                target = child.target
                if target not in index:
                    index[target] = low[target] = counter
                    counter += 1
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(graph[target])))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    described = []
    for component in cycles:
        members = set(component)
        inside = [_where(edge, modules) for edge in edges if edge.source in members and edge.target in members]
        described.append(" <-> ".join(component) + ":\n  " + "\n  ".join(inside))
    assert cycles == [], "import cycles:\n" + "\n".join(described)

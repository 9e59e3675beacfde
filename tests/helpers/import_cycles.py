"""Find import cycles inside a package: ``python -m tests.helpers.import_cycles lockkit``.

Reads the source (nothing is imported), so it works on a broken tree too. Every
``import`` and ``from ... import`` of a module of the package is an edge, labelled:

* **module-level**: runs when the importing module is imported (a cycle of these alone
  can fail at import time, depending on which module is imported first);
* **function-level**: inside a function or method body, run when it is called (a lazy
  import, usually there to dodge a cycle: it still couples the two modules both ways).

Imports under ``if TYPE_CHECKING:`` never run and are not edges. ``from pkg import name``
is an edge to ``pkg.name`` when that is a module, else to ``pkg``. Importing a module
also imports its parent packages; those implicit edges are left out (every module would
otherwise be in a cycle with a package ``__init__`` that re-exports it).

Prints each cycle (a strongly connected component: its modules, then the edges among
them with file lines), and exits 1 when there is any, 0 otherwise.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

__all__ = ["Edge", "cycles", "edges", "main", "modules"]

MODULE_LEVEL = "module-level"
FUNCTION_LEVEL = "function-level"


@attrs.frozen
class Edge:
    """One import of a package module by another.

    Attributes:
        source: The importing module.
        target: The imported module.
        kind: `MODULE_LEVEL` or `FUNCTION_LEVEL`.
        line: The import's line in ``source``.
    """

    source: str
    target: str
    kind: str
    line: int


def modules(package_dir: Path) -> dict[str, Path]:
    """Every module of the package at ``package_dir``, by dotted name."""
    root = package_dir.parent
    found: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Each import statement that can run, with whether it is inside a function."""

    def walk(
        node: ast.AST, in_function: bool
    ) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for other in child.orelse:  # only the else branch runs
                    yield from walk(ast.Module(body=[other], type_ignores=[]), in_function)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, in_function
                continue
            inner = in_function or isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            )
            yield from walk(child, inner)

    yield from walk(tree, False)


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module name a (possibly relative) ``from`` import names."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def edges(found: dict[str, Path]) -> list[Edge]:
    """The imports among the modules in ``found`` (see the module docstring)."""
    result: list[Edge] = []
    for module, path in found.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, in_function in _imports(tree):
            kind = FUNCTION_LEVEL if in_function else MODULE_LEVEL
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = _resolve(module, path, node)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in found else base)
            result.extend(
                Edge(module, target, kind, node.lineno)
                for target in dict.fromkeys(targets)
                if target in found and target != module
            )
    return result


def cycles(all_edges: Sequence[Edge]) -> list[list[str]]:  # noqa: C901 - Tarjan, in one piece
    """The strongly connected components of more than one module (Tarjan), sorted."""
    graph: dict[str, set[str]] = {}
    for edge in all_edges:
        graph.setdefault(edge.source, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def report(package_dir: Path) -> tuple[list[str], int]:
    """The lines to print for the package at ``package_dir``, and the number of cycles."""
    found = modules(package_dir)
    all_edges = edges(found)
    components = cycles(all_edges)
    lines: list[str] = []
    for number, component in enumerate(components, 1):
        members = set(component)
        inner = [e for e in all_edges if e.source in members and e.target in members]
        kinds = sorted({e.kind for e in inner})
        lines.append(f"cycle {number} ({' + '.join(kinds)}): {' <-> '.join(component)}")
        lines.extend(
            f"  {e.source} -> {e.target}  [{e.kind}, {found[e.source]}:{e.line}]"
            for e in sorted(inner, key=lambda e: (e.source, e.target, e.line))
        )
    lines.append(
        f"{len(components)} import cycle(s) among {len(found)} modules of {package_dir.name}"
    )
    return lines, len(components)


def _locate(name: str) -> Path | None:
    """The directory of package ``name``: a path, else where ``sys.path`` finds it.

    `importlib.util.find_spec` of a top-level package only locates it (nothing runs), so
    with ``PYTHONPATH=<worktree>`` the worktree's copy is the one read.
    """
    given = Path(name)
    if (given / "__init__.py").is_file():
        return given
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def main(argv: Sequence[str] | None = None) -> int:
    """Print the import cycles of each package named in ``argv``; 1 if there are any."""
    names = list(sys.argv[1:] if argv is None else argv) or ["lockkit"]
    total = 0
    for name in names:
        package_dir = _locate(name)
        if package_dir is None:
            print(f"{name}: no such package", file=sys.stderr)
            return 2
        lines, count = report(package_dir)
        print("\n".join(lines))
        total += count
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())

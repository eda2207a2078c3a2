"""The seams between modules, read from the source (static import graph, no imports run):
no import cycle, and no module reaching for another module's private names."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Where cycles are forbidden.
ACYCLIC = ("octviewer", "training", "benchmarks")
#: Where a private name must stay in its module.
PRIVATE_CHECKED = ("octviewer", "training", "benchmarks", "scripts")


def _modules(roots: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name -> file, for every module under ``roots``."""
    out: dict[str, Path] = {}
    for root in roots:
        for path in sorted((ROOT / root).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(
    name: str, path: Path, known: dict[str, Path]
) -> Iterator[tuple[str, str | None, str]]:
    """(module imported, name taken from it or None, the name bound) for every import of a
    module: top level, inside functions and under TYPE_CHECKING alike. ``from pkg import sub``
    counts as importing the module ``pkg.sub``; relative imports are resolved."""
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, alias.asname or alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                bound = alias.asname or alias.name
                yield (sub, None, bound) if sub in known else (base, alias.name, bound)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[v] = min(low[v], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles() -> None:
    """An import cycle (even one of lazy or TYPE_CHECKING imports) means two modules are one
    room split in two: break it by moving the shared part or passing a callable in."""
    known = _modules(ACYCLIC)
    graph = {
        m: {dep for dep, _, _ in _imports(m, p, known) if dep in known and dep != m}
        for m, p in known.items()
    }
    assert len(known) > 100  # the walk found the code
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _private_uses(module: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """``from other import _name`` and ``other._name`` (other: a project module) in ``path``."""
    modules_bound: dict[str, str] = {}  # name in this module -> the project module it is
    for dep, name, bound in _imports(module, path, known):
        if dep not in known or dep == module:
            continue
        if name is None:
            modules_bound[bound] = dep
        elif _private(name):
            yield f"{module} imports {dep}.{name}"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules_bound
            and _private(node.attr)
        ):
            yield f"{module} uses {modules_bound[node.value.id]}.{node.attr}"


def test_no_module_uses_another_modules_private_names() -> None:
    """A name with a leading underscore belongs to its module. If another module needs it, it
    is public (drop the underscore) or the code moves to where it is used."""
    known = _modules(PRIVATE_CHECKED)
    found = sorted({v for m, p in known.items() for v in _private_uses(m, p, known)})
    assert found == []

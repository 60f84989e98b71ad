"""The one-way structure: ``conform`` <- ``reference`` <- ``suite`` <- ``reports`` <- ``torchconform``.

Measured from the import statements with ``ast``, including imports inside functions, so a lazy import
cannot hide a cycle.  A package may import its own modules and any package below it, never one above.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("conform", "reference", "suite", "reports", "torchconform")


def _files(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "out" not in p.relative_to(ROOT).parts)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file, at any depth."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # `from pkg import module` imports pkg.module
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names
                      if f"{target}.{alias.name}" in PROJECT_MODULES]
    return found


PROJECT_MODULES = {_module_name(p) for package in LAYERS for p in _files(package)}


@pytest.mark.parametrize("package", LAYERS)
def test_a_package_imports_only_the_layers_below_it(package):
    allowed = set(LAYERS[: LAYERS.index(package) + 1])
    bad = [f"{path.relative_to(ROOT)}:{line} imports {target}"
           for path in _files(package) for line, target in _imports(path)
           if target.split(".")[0] in LAYERS and target.split(".")[0] not in allowed]
    assert not bad, "\n".join(bad)


def test_the_reference_imports_no_test_side_code():
    """The specification can be read, reused and packaged without the test side: only conform, numpy,
    the standard library and documented torch primitives (each call site says why)."""
    bad = [f"{path.relative_to(ROOT)}:{line} imports {target}"
           for path in _files("reference") for line, target in _imports(path)
           if target.split(".")[0] in ("suite", "reports", "torchconform", "pytest", "hypothesis")]
    assert not bad, "\n".join(bad)


def test_no_module_cycle_inside_a_package():
    modules = PROJECT_MODULES
    graph: dict[str, set[str]] = {}
    for package in LAYERS:
        for path in _files(package):
            name = _module_name(path)
            graph[name] = {t for _, t in _imports(path) if t in modules and t != name
                           and t.split(".")[0] == package and not name.startswith(t + ".")}
    cycles = []

    def visit(node: str, stack: list[str], done: set[str]) -> None:
        if node in stack:
            cycles.append(" -> ".join(stack[stack.index(node):] + [node]))
            return
        if node in done:
            return
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, stack + [node], done)
        done.add(node)

    done: set[str] = set()
    for node in sorted(graph):
        visit(node, [], done)
    assert not cycles, "\n".join(sorted(set(cycles)))


def test_the_core_imports_only_the_standard_library_and_numpy():
    import sys

    stdlib = set(sys.stdlib_module_names)
    bad = [f"{path.relative_to(ROOT)}:{line} imports {target}"
           for path in _files("conform") for line, target in _imports(path)
           if target.split(".")[0] not in stdlib | {"numpy", "conform", "__future__"}]
    assert not bad, "\n".join(bad)

"""Standalone repro scripts for minimized failures.

A script inlines what the failing case needs and nothing more: the top-level
definitions (with their imports) that the torch-side runner, the Case type and
the comparison reach, taken from ``conform/`` and the area's ``suite`` modules;
the shrunk Case as a literal; and the reference's expected outcome, its
tolerance and the part of torch's outcome it is compared with.  It needs only
torch and numpy, prints expected vs actual, and exits 1 while the divergence
exists (0 once torch conforms).
"""
from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib
import inspect
import math
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from conform.rules import RULES
from conform.outcome import Raised
from conform.tolerance import Tol

HEADER = '''#!/usr/bin/env python3
"""torchconform repro: {rule}

Rule:     {statement}
Citation: {citation}
Found on: torch {torch_version}, device {device}

Run: python {name} [DEVICE]   (exit 1: torch still differs from the reference; 0: it conforms)
Needs only torch and numpy.
"""
from __future__ import annotations

import sys

nan, inf = float("nan"), float("inf")
'''

MAIN = '''

# ---- the minimized case and the reference's expected outcome -------------------------
RULE = {rule!r}
CASE = {case}
EXPECTED = {expected}
TOL = {tol!r}
KEY = {key}  # the part of torch's outcome the rule is about (None: all of it)


def select(actual, key):
    for step in key if isinstance(key, tuple) else (() if key is None else (key,)):
        try:
            actual = actual[step]
        except (KeyError, IndexError, TypeError):
            return actual
    return actual


if __name__ == "__main__":
    import torch

    device = sys.argv[1] if len(sys.argv) > 1 else {device!r}
    try:
        actual = select({torch_fn}(CASE, device), KEY)
    except Exception as exc:  # an exception is an outcome, as in the suite (conform.check)
        actual = Raised(type(exc).__name__, str(exc))
    mismatches = compare(EXPECTED, actual, TOL, RULE)
    print(f"torch {{torch.__version__}} on {{device}}: {{RULE}}")
    print("case:    ", CASE)
    print("expected:", _short(EXPECTED, 2000))
    print("actual:  ", _short(actual, 2000))
    for m in mismatches:
        print("MISMATCH", m)
    print("REPRODUCES" if mismatches else "CONFORMS (the divergence no longer reproduces)")
    sys.exit(1 if mismatches else 0)
'''


def literal(value: Any) -> str:
    """Python source that evaluates to ``value`` (numpy arrays, NaN/inf, dataclasses, containers)."""
    if isinstance(value, np.ndarray):
        return f"np.array({value.tolist()!r}, dtype={str(value.dtype)!r}).reshape({value.shape!r})"
    if isinstance(value, np.generic):
        return literal(value.item())
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return "(" + "".join(f"{literal(v)}, " for v in value) + ")"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        args = ", ".join(f"{f.name}={literal(getattr(value, f.name))}" for f in dataclasses.fields(value))
        return f"{type(value).__name__}({args})"
    return repr(value)


INLINED = ("suite", "conform")  # packages whose modules a repro inlines (never reference/: it is the other side)


def _suite_imports(module_name: str) -> list[str]:
    """Names of ``suite`` / ``conform`` modules imported at the top level of a module."""
    tree = ast.parse(inspect.getsource(importlib.import_module(module_name)))
    found = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module_name.rsplit(".", node.level)[0]
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            if name.startswith("reference"):
                raise ValueError(f"{module_name} imports {name}: torch-side code must not use the reference")
            if name.startswith(INLINED):
                found.append(name)
        elif isinstance(node, ast.Import) and any(a.name.split(".")[0] in ("suite", "reference", "conform")
                                                   for a in node.names):
            raise ValueError(f"{module_name}: use 'from suite... import ...' so the repro writer can inline it")
    return found


def _modules_in_order(roots: list[str]) -> list[str]:
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        for dep in _suite_imports(name):
            visit(dep)
        order.append(name)

    for root in roots:
        visit(root)
    return order


def _defined(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
    return {n.id for t in targets if t is not None for n in ast.walk(t) if isinstance(n, ast.Name)}


def _used(node: ast.stmt) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _pruned_sources(modules: list[str], roots: set[str]) -> str:
    """The top-level statements of ``modules`` that ``roots`` reach (by name, transitively), in source order.

    Imports of inlined packages are dropped (their definitions are inlined); ``if``/``try`` blocks and bare
    expressions at the top level are kept whole, since they may define or configure anything."""
    chunks: list[tuple[str, ast.stmt, list[str]]] = []
    for name in modules:
        source = inspect.getsource(importlib.import_module(name))
        lines = source.splitlines()
        for node in ast.parse(source).body:
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(
                    (*INLINED, "__future__"))):
                continue
            if isinstance(node, ast.Expr) and isinstance(getattr(node, "value", None), ast.Constant):
                continue  # module docstring
            start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            chunks.append((name, node, lines[start - 1:node.end_lineno]))
    needed, keep = set(roots), set()
    changed = True
    while changed:
        changed = False
        for index, (_, node, _) in enumerate(chunks):
            if index in keep:
                continue
            always = not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign,
                                           ast.AnnAssign, ast.Import, ast.ImportFrom))
            if always or _defined(node) & needed:
                keep.add(index)
                needed |= _used(node)
                changed = True
    out, current = [], None
    for index, (name, _, lines) in enumerate(chunks):
        if index not in keep:
            continue
        if name != current:
            out.append(f"\n# ---- from {name} " + "-" * max(0, 70 - len(name)))
            current = name
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def _type_names(value: Any) -> set[str]:
    """Names of the dataclass types in a literal (the Case and any nested spec types)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = {type(value).__name__}
        for f in dataclasses.fields(value):
            names |= _type_names(getattr(value, f.name))
        return names
    if isinstance(value, dict):
        return set().union(*(_type_names(v) for v in value.values())) if value else set()
    if isinstance(value, (list, tuple)):
        return set().union(*(_type_names(v) for v in value)) if value else set()
    return set()


def render(rule: str, case: Any, expected: Any, tol: Tol, torch_fn: Callable, device: str, key: Any = None) -> str:
    import torch

    roots = ["conform.tolerance", "conform.outcome", type(case).__module__, torch_fn.__module__]
    modules = _modules_in_order(list(dict.fromkeys(roots)))
    info = RULES.get(rule)
    head = HEADER.format(rule=rule, statement=info.statement if info else "?", citation=info.citation if info else "?",
                         torch_version=torch.__version__, device=device, name="repro.py")
    names = {torch_fn.__name__, "compare", "_short", "Tol", "Raised", "np"} | _type_names(case) | _type_names(expected)
    body = _pruned_sources(modules, names)
    main = MAIN.format(rule=rule, case=literal(case), expected=literal(expected), tol=tol, key=literal(key),
                       device=device, torch_fn=torch_fn.__name__)
    return head + body + main


def repro_name(rule: str, case: Any, device: str) -> str:
    digest = hashlib.sha1(f"{rule}|{case!r}|{device}".encode()).hexdigest()[:10]
    return f"{rule}-{digest}.py"


def write_repro(directory: Path, rule: str, case: Any, expected: Any, tol: Tol, torch_fn: Callable, device: str,
                key: Any = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / repro_name(rule, case, device)
    path.write_text(render(rule, case, expected, tol, torch_fn, device, key).replace("repro.py", path.name, 1))
    return path



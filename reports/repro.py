"""Standalone repro scripts for minimized failures.

A script embeds the source of ``suite/compare.py``, of the module that defines
the Case and of the torch-side runner (and of any ``suite`` module those import),
the shrunk Case as a literal, and the reference's expected outcome as a literal.
It needs only torch and numpy, prints expected vs actual, and exits 1 while the
divergence exists (0 once torch conforms).
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

from reference.rules import RULES
from suite.compare import Raised, Tol

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


if __name__ == "__main__":
    import torch

    device = sys.argv[1] if len(sys.argv) > 1 else {device!r}
    actual = {torch_fn}(CASE, device)
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


def _suite_imports(module_name: str) -> list[str]:
    """Names of ``suite`` modules imported at the top level of a module."""
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
            if name.startswith("suite"):
                found.append(name)
        elif isinstance(node, ast.Import) and any(a.name.split(".")[0] in ("suite", "reference") for a in node.names):
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


def _stripped_source(module_name: str) -> str:
    source = inspect.getsource(importlib.import_module(module_name))
    tree = ast.parse(source)
    drop: set[int] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(("suite", "__future__"))):
            drop.update(range(node.lineno, node.end_lineno + 1))
    lines = [line for i, line in enumerate(source.splitlines(), start=1) if i not in drop]
    return f"# ---- from {module_name} " + "-" * max(0, 70 - len(module_name)) + "\n" + "\n".join(lines) + "\n"


def render(rule: str, case: Any, expected: Any, tol: Tol, torch_fn: Callable, device: str) -> str:
    import torch

    roots = ["suite.compare", type(case).__module__, torch_fn.__module__]
    modules = _modules_in_order(list(dict.fromkeys(roots)))
    info = RULES.get(rule)
    head = HEADER.format(rule=rule, statement=info.statement if info else "?", citation=info.citation if info else "?",
                         torch_version=torch.__version__, device=device, name="repro.py")
    body = "\n\n".join(_stripped_source(m) for m in modules)
    main = MAIN.format(rule=rule, case=literal(case), expected=literal(expected), tol=tol,
                       device=device, torch_fn=torch_fn.__name__)
    return head + "\n" + body + main


def repro_name(rule: str, case: Any, device: str) -> str:
    digest = hashlib.sha1(f"{rule}|{case!r}|{device}".encode()).hexdigest()[:10]
    return f"{rule}-{digest}.py"


def write_repro(directory: Path, rule: str, case: Any, expected: Any, tol: Tol, torch_fn: Callable, device: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / repro_name(rule, case, device)
    path.write_text(render(rule, case, expected, tol, torch_fn, device).replace("repro.py", path.name, 1))
    return path



"""Coverage of torch's own Python code under test: which lines and branches of the five areas' torch files
the suite reached (coverage.py, branch mode, DataLoader workers and SyncBN ranks included).

``torchconform run --coverage`` runs pytest under ``coverage run`` with the rc file ``rcfile()`` writes
(``concurrency = multiprocessing``: every process started through ``multiprocessing`` -- fork, spawn or
forkserver -- measures itself), combines the data files and calls ``summarize``; the result is
``<out>/coverage.json`` and the page ``<out>/coverage.html``.

Each unreached range carries its reason where an area's ``suite/<area>/unreached.py`` explains it (see
``suite.unreached``); ``open_pct`` is the line percentage once the explained ranges are set aside.

In ``nn/functional.py`` and ``nn/modules/activation.py`` only the parts of the areas count (the MHA,
mask and normalization functions; the MultiheadAttention class): the rest of those files is other
operators' code.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

from suite.unreached import Unreached, all_entries, explain

# torch file (relative to the torch package) -> area
FILES = {
    "nn/modules/module.py": "module",
    "nn/modules/container.py": "module",
    "nn/modules/batchnorm.py": "norm",
    "nn/modules/normalization.py": "norm",
    "nn/modules/instancenorm.py": "norm",
    "nn/modules/_functions.py": "norm",
    "nn/modules/transformer.py": "attention",
    "nn/modules/activation.py": "attention",
    "nn/functional.py": "attention, norm",
    "nn/parallel/scatter_gather.py": "parallel",
    "nn/parallel/replicate.py": "parallel",
    "nn/parallel/parallel_apply.py": "parallel",
    "nn/parallel/data_parallel.py": "parallel",
    "utils/data/dataloader.py": "data",
    "utils/data/sampler.py": "data",
    "utils/data/dataset.py": "data",
    "utils/data/distributed.py": "data",
    "utils/data/_utils/collate.py": "data",
    "utils/data/_utils/worker.py": "data",
    "utils/data/_utils/fetch.py": "data",
}
# Files of which only these top-level definitions are the areas' code.
PARTS = {
    "nn/functional.py": ("batch_norm", "instance_norm", "layer_norm", "rms_norm", "group_norm",
                         "_verify_batch_size", "_verify_spatial_size", "_in_projection_packed", "_in_projection",
                         "_mha_shape_check", "_canonical_mask", "_none_or_dtype", "_check_key_padding_mask",
                         "multi_head_attention_forward"),
    "nn/modules/activation.py": ("MultiheadAttention", "_check_arg_device", "_arg_requires_grad",
                                 "_is_make_fx_tracing"),
}


def torch_dir() -> Path:
    import torch

    return Path(torch.__file__).resolve().parent


def rcfile(directory: Path) -> Path:
    """Write the coverage rc file for a run whose data goes to ``directory``."""
    root = torch_dir()
    include = ",\n    ".join(str(root / f) for f in FILES)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "coveragerc"
    path.write_text(f"""[run]
branch = True
parallel = True
concurrency = multiprocessing,thread
sigterm = True
data_file = {directory / '.coverage'}
include =
    {include}
disable_warnings = no-data-collected, module-not-imported, couldnt-parse
""")
    return path


def _part_lines(source: str, names: tuple[str, ...]) -> set[int]:
    lines: set[int] = set()
    for node in ast.parse(source).body:
        if getattr(node, "name", None) in names:
            start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            lines.update(range(start, node.end_lineno + 1))
    return lines


def _ranges(lines: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for n in sorted(lines):
        if out and n == out[-1][1] + 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


def _enclosing(source: str) -> dict[int, str]:
    """line -> the qualified name of the innermost def/class containing it."""
    names: dict[int, str] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                for line in range(child.lineno, child.end_lineno + 1):
                    names[line] = name
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return names


def summarize(coverage_json: dict[str, Any], root: Path | None = None,
              entries: list[Unreached] | None = None) -> list[dict]:
    """Per torch file of the areas: line and branch percentages and the unreached line ranges (each with the
    function it lies in and, where an area's ``unreached.py`` explains it, the reason), from ``coverage json``
    output.  ``open_pct``: the line percentage once the explained ranges are set aside."""
    root = root or torch_dir()
    entries = all_entries() if entries is None else entries
    by_path = {str(Path(p).resolve()): data for p, data in coverage_json.get("files", {}).items()}
    table = []
    for rel, area in FILES.items():
        path = root / rel
        source = path.read_text(encoding="utf-8") if path.exists() else ""
        data = by_path.get(str(path.resolve()), {})
        executed = set(data.get("executed_lines", []))
        missing = set(data.get("missing_lines", []))
        if not data and source:  # never imported: every statement is missing; coverage did not list them
            missing = _statements(source)
        branches_hit = [tuple(b) for b in data.get("executed_branches", [])]
        branches_missed = [tuple(b) for b in data.get("missing_branches", [])]
        if rel in PARTS and source:
            keep = _part_lines(source, PARTS[rel])
            executed, missing = executed & keep, missing & keep
            branches_hit = [b for b in branches_hit if b[0] in keep]
            branches_missed = [b for b in branches_missed if b[0] in keep]
        names = _enclosing(source) if source else {}
        text = source.splitlines()
        statements = len(executed) + len(missing)
        branches = len(branches_hit) + len(branches_missed)
        unreached = []
        for a, b in _ranges(list(missing)):
            function = names.get(a, "<module>")
            entry = explain(entries, rel, function, text[a - 1] if a <= len(text) else "")
            unreached.append({"from": a, "to": b, "in": function, "lines": len(missing & set(range(a, b + 1))),
                              "reason": entry.reason if entry else None, "why": entry.why if entry else None})
        explained = sum(r["lines"] for r in unreached if r["reason"])
        table.append({
            "file": rel, "area": area, "part": ", ".join(PARTS.get(rel, ())),
            "lines": statements, "line_pct": _pct(len(executed), statements),
            "branches": branches, "branch_pct": _pct(len(branches_hit), branches),
            # of the lines no entry explains (CUDA-only, deprecated, unreachable from the public API)
            "explained": explained, "open_pct": _pct(len(executed), statements - explained),
            "unreached": unreached,
        })
    return table


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def _statements(source: str) -> set[int]:
    return {node.lineno for node in ast.walk(ast.parse(source)) if isinstance(node, ast.stmt)}


def write_summary(out: Path, table: list[dict]) -> Path:
    path = out / "coverage.json"
    path.write_text(json.dumps({"files": table}, indent=1))
    return path


def render_page(out: Path, table: list[dict], torch_version: str) -> Path:
    """``out/coverage.html``: one row per file, its percentages and unreached ranges."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    templates = Path(__file__).resolve().parent / "templates"
    env = Environment(loader=FileSystemLoader(str(templates)), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    html = env.get_template("coverage.html.j2").render(table=table, torch_version=torch_version)
    path = out / "coverage.html"
    path.write_text(html, encoding="utf-8")
    return path

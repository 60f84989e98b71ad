"""Performance records: file pytest-benchmark results per machine and torch build, and compare two builds.

Layout: ``<save-dir>/<machine>/<build>/<UTC time>.json`` -- plain pytest-benchmark
JSON (``pytest-benchmark compare`` reads it) with a ``torchconform`` block naming
build and machine.

Comparison of A (baseline) and B, per benchmark present in both: the ratio of
medians B/A (> 1: B is slower).  Its noise comes from the same runs: the larger
relative IQR (IQR / median) of the two runs' per-round times, widened to the
drift between the passes of one run (``torchconform bench`` goes over all
benchmarks several times; max/min of the per-pass medians) and to the
bootstrap 95% interval of the ratio when those are wider, to the change of a
torch-free control benchmark between the two runs (the machine's own drift),
and never below
``MIN_EFFECT`` -- the same 10% floor as asv's default ``--factor 1.1``, because
on a shared machine load drifts between runs by more than within one.  A
regression is flagged only when the ratio exceeds 1 + noise AND the bootstrap
interval lies wholly above 1.
"""
from __future__ import annotations

import json
import math
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from suite.results import machine_key

MIN_EFFECT = 0.10
CONTROL = "test_machine_control"  # suite/perf/test_perf.py: pure Python, the same work on every build
BOOTSTRAP = 400


class BenchError(Exception):
    """An unusable benchmark input; the message is one line naming the file or build."""


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+_-]", "_", text)


@dataclass
class BenchRun:
    path: Path
    build: str
    machine: str
    benchmarks: dict[str, dict]  # fullname -> pytest-benchmark entry


def load_bench(path: Path) -> BenchRun:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path}: corrupt benchmark JSON (line {exc.lineno}: {exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"{path}: unreadable ({getattr(exc, 'strerror', None) or exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise BenchError(f"{path}: not a pytest-benchmark JSON file (no 'benchmarks' list)")
    meta = data.get("torchconform") or {}
    machine = meta.get("machine") or machine_key(data.get("machine_info") or {})
    build = meta.get("build") or "unknown build"
    benchmarks = {}
    for b in data["benchmarks"]:
        if isinstance(b, dict) and isinstance(b.get("stats"), dict) and "median" in b["stats"]:
            benchmarks[b.get("fullname") or b.get("name")] = b
    return BenchRun(path=path, build=build, machine=machine, benchmarks=benchmarks)


def resolve(spec: str, save_dir: Path, machine: str | None) -> Path:
    """A JSON file, a directory of them (newest wins), or a build name saved for this machine."""
    path = Path(spec)
    if path.is_file():
        return path
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise BenchError(f"{path}: no benchmark JSON files in this directory")
        return files[-1]
    if machine is None:
        raise BenchError(f"unknown build {spec!r}: not a file, and no machine to look it up for")
    build_dir = save_dir / machine / safe_name(spec)
    files = sorted(build_dir.glob("*.json"))
    if not files:
        known = sorted(p.name for p in (save_dir / machine).glob("*") if p.is_dir())
        raise BenchError(f"unknown build {spec!r}: nothing saved in {build_dir} "
                         f"(builds saved for this machine: {', '.join(known) or 'none'})")
    return files[-1]


def this_machine() -> str:
    """The key of the machine we run on, as pytest-benchmark would describe it."""
    try:
        from pytest_benchmark.plugin import pytest_benchmark_generate_machine_info

        return machine_key(pytest_benchmark_generate_machine_info())
    except Exception:  # pytest-benchmark internals moved: fall back to the node name alone
        return machine_key({"node": platform.node()})


def merge_passes(passes: list[dict]) -> dict:
    """One pytest-benchmark document from several passes over the same benchmarks.

    Each benchmark's per-round data are concatenated and its stats recomputed
    (pytest-benchmark's own Stats), so ``pytest-benchmark compare`` reads the
    result; the per-pass medians are kept in ``extra_info["pass_medians"]``:
    their spread is the drift of the machine over the run, part of the noise.
    """
    from pytest_benchmark.stats import Stats

    merged = json.loads(json.dumps(passes[0]))
    by_name = {b["fullname"]: b for b in merged["benchmarks"]}
    for entry in by_name.values():
        entry["extra_info"]["pass_medians"] = []
        entry["_data"] = []
    for doc in passes:
        for b in doc["benchmarks"]:
            target = by_name.get(b["fullname"])
            if target is not None and b["stats"].get("data"):
                target["_data"].extend(b["stats"]["data"])
                target["extra_info"]["pass_medians"].append(b["stats"]["median"])
    for entry in by_name.values():
        stats = Stats()
        for value in entry.pop("_data"):
            stats.update(value)
        if stats:
            entry["stats"] = {**stats.as_dict(), "iterations": entry["stats"].get("iterations", 1),
                              "data": stats.data}
    merged["torchconform"] = {**(merged.get("torchconform") or {}), "passes": len(passes)}
    return merged


def drift(entry: dict) -> float:
    """Relative spread of the per-pass medians (max/min - 1); 0 with fewer than two passes."""
    medians = [m for m in (entry.get("extra_info") or {}).get("pass_medians") or [] if m > 0]
    return max(medians) / min(medians) - 1 if len(medians) > 1 else 0.0


def _rounds(entry: dict) -> np.ndarray | None:
    data = entry["stats"].get("data")
    return np.asarray(data, dtype=float) if data else None


def compare_entries(a: dict, b: dict, rng: np.random.Generator, machine_drift: float = 0.0) -> dict[str, Any]:
    """Ratio of medians B/A with its noise estimate and a verdict.

    ``machine_drift``: how much the torch-free control benchmark moved between the two runs.
    """
    sa, sb = a["stats"], b["stats"]
    med_a, med_b = float(sa["median"]), float(sb["median"])
    ratio = med_b / med_a if med_a > 0 else math.inf
    spread = max(float(sa.get("iqr") or 0) / med_a if med_a else 0.0,
                 float(sb.get("iqr") or 0) / med_b if med_b else 0.0)
    da, db = _rounds(a), _rounds(b)
    if da is not None and db is not None and len(da) > 1 and len(db) > 1 and med_a > 0:
        boot_a = np.median(da[rng.integers(0, len(da), (BOOTSTRAP, len(da)))], axis=1)
        boot_b = np.median(db[rng.integers(0, len(db), (BOOTSTRAP, len(db)))], axis=1)
        ci_low, ci_high = (float(v) for v in np.percentile(boot_b / boot_a, [2.5, 97.5]))
    else:  # no per-round data saved: the IQR alone estimates the noise
        ci_low, ci_high = ratio / (1 + spread), ratio * (1 + spread)
    wander = max(drift(a), drift(b), machine_drift)
    noise = max(MIN_EFFECT, spread, wander, ci_high / ratio - 1 if ratio else 0.0,
                1 - ci_low / ratio if ratio else 0.0)
    if ratio > 1 + noise and ci_low > 1:
        verdict = "regression"
    elif ratio < 1 / (1 + noise) and ci_high < 1:
        verdict = "improvement"
    else:
        verdict = "within noise"
    return {"median_a": med_a, "median_b": med_b, "ratio": ratio, "ci_low": ci_low, "ci_high": ci_high,
            "noise": noise, "drift": wander, "verdict": verdict, "rounds_a": int(sa.get("rounds") or 0),
            "rounds_b": int(sb.get("rounds") or 0)}


def compare_runs(a: BenchRun, b: BenchRun) -> list[dict]:
    if a.machine != b.machine:
        raise BenchError(f"{b.path}: benchmark file from another machine ({b.machine}, baseline {a.path} is from "
                         f"{a.machine}); timings of different machines are not comparable")
    rng = np.random.default_rng(0)  # the bootstrap is reproducible
    control = [n for n in a.benchmarks if n.split("::")[-1] == CONTROL and n in b.benchmarks]
    machine_drift = 0.0
    if control:
        ratio = float(b.benchmarks[control[0]]["stats"]["median"]) / float(
            a.benchmarks[control[0]]["stats"]["median"])
        machine_drift = max(ratio, 1 / ratio) - 1
    rows = []
    for name in a.benchmarks:
        if name in b.benchmarks:
            row = compare_entries(a.benchmarks[name], b.benchmarks[name], rng,
                                  0.0 if name in control else machine_drift)
            if name in control:
                row["verdict"] = "control (machine drift)"
            rows.append({"name": name.split("::")[-1], "fullname": name, **row,
                         "median_a_text": fmt_time(row["median_a"]), "median_b_text": fmt_time(row["median_b"])})
    if not rows:
        raise BenchError(f"{b.path}: no benchmark in common with {a.path}")
    return rows


def fmt_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def comparison(spec_a: str, spec_b: str, save_dir: Path, machine: str | None = None) -> dict[str, Any]:
    """Everything the report and the CLI show for A vs B; BenchError on an unusable input."""
    machine = machine or this_machine()
    a = load_bench(resolve(spec_a, save_dir, machine))
    b = load_bench(resolve(spec_b, save_dir, machine))
    rows = compare_runs(a, b)
    return {"a": {"label": a.build, "file": str(a.path), "machine": a.machine},
            "b": {"label": b.build, "file": str(b.path), "machine": b.machine},
            "rows": rows, "svg": svg_chart(rows), "regressions": sum(r["verdict"] == "regression" for r in rows)}


def svg_chart(rows: list[dict], width: int = 640, bar: int = 18) -> str:
    """Horizontal bars of log2(ratio) around 1.0 with each benchmark's noise band (no plotting dependency)."""
    label_w, pad = 260, 10
    plot_w = width - label_w - 2 * pad
    span = max([1.0] + [abs(math.log2(max(r["ratio"], 1e-9))) for r in rows]
               + [math.log2(1 + r.get("noise", 0.0)) for r in rows]
               + [abs(math.log2(min(max(r[k], 1e-9), 1e9))) for r in rows if "pairs" in r for k in ("ci_low", "ci_high")
                  if not math.isnan(r[k])])
    span = min(span * 1.1, 8.0)

    def x(ratio: float) -> float:
        v = max(-span, min(span, math.log2(max(ratio, 1e-9))))
        return label_w + pad + plot_w * (v + span) / (2 * span)

    height = (len(rows) + 2) * (bar + 6)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="ratio of medians per benchmark" font-family="sans-serif" font-size="11">']
    for i, r in enumerate(rows):
        y = 6 + i * (bar + 6)
        if "pairs" in r:  # an interleaved comparison's row: the band is its confidence interval
            lo, hi = x(r["ci_low"]), x(r["ci_high"])
        else:
            lo, hi = x(1 / (1 + r["noise"])), x(1 + r["noise"])
        colour = {"regression": "#d33", "improvement": "#393", "slower": "#d33", "faster": "#393"}.get(
            r["verdict"], "#89a")
        x1, xr = x(1.0), x(r["ratio"])
        parts.append(f'<text x="{label_w}" y="{y + bar - 5}" text-anchor="end">{_esc(r["name"])}</text>')
        parts.append(f'<rect x="{lo:.1f}" y="{y}" width="{hi - lo:.1f}" height="{bar}" fill="#eee"/>')
        parts.append(f'<rect x="{min(x1, xr):.1f}" y="{y + 4}" width="{abs(xr - x1):.1f}" height="{bar - 8}" '
                     f'fill="{colour}"/>')
        parts.append(f'<text x="{max(x1, xr) + 3:.1f}" y="{y + bar - 5}">{r["ratio"]:.2f}x</text>')
    axis_y = 6 + len(rows) * (bar + 6)
    parts.append(f'<line x1="{x(1.0):.1f}" y1="0" x2="{x(1.0):.1f}" y2="{axis_y}" stroke="#333"/>')
    for tick in (2 ** -math.floor(span), 0.5, 1.0, 2.0, 2 ** math.floor(span)):
        parts.append(f'<text x="{x(tick):.1f}" y="{axis_y + 14}" text-anchor="middle">{tick:g}x</text>')
    band = "interval" if rows and "pairs" in rows[0] else "noise band"
    parts.append(f'<text x="{label_w + pad}" y="{axis_y + 28}">ratio of medians B/A (log scale); grey: {band}'
                 f'</text></svg>')
    return "\n".join(parts)


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

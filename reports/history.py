"""Performance history across releases: a star of interleaved comparisons around one anchor build.

Each ``torchconform bench --against PYTHON`` run leaves a record at
``<save-dir>/history/<machine>/<anchor build>/<other build>.json`` (the newest
run of a pair replaces the older).  Only ratios measured within one run are
compared: every release's point is its own interleaved ratio to the anchor,
with that run's interval, so machine drift between runs never enters.  The
anchor's absolute time is shown as this machine's own, nothing more.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from packaging.version import InvalidVersion, Version


def record_path(save_dir: Path, machine: str, anchor: str, other: str) -> Path:
    from reports.perf import safe_name

    return save_dir / "history" / machine / safe_name(anchor) / f"{safe_name(other)}.json"


def save_record(record: dict, save_dir: Path) -> Path:
    path = record_path(save_dir, record["machine"], record["a"]["build"], record["b"]["build"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def _version_key(build: str):
    try:
        return (0, Version(build.split("+")[0]), build)
    except InvalidVersion:
        return (1, Version("0"), build)


def load_history(directory: Path) -> list[dict]:
    """The records of one anchor (a ``history/<machine>/<anchor>`` directory), ordered by release."""
    records = []
    for path in sorted(Path(directory).glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("kind") == "interleaved":
            records.append(record)
    return sorted(records, key=lambda r: _version_key(r["b"]["build"]))


def anchors(save_dir: Path) -> list[Path]:
    return sorted(p for p in (Path(save_dir) / "history").glob("*/*") if p.is_dir() and any(p.glob("*.json")))


def history_table(records: list[dict]) -> dict[str, list[dict]]:
    """benchmark -> one point per release: build, ratio to the anchor, interval, verdict."""
    table: dict[str, list[dict]] = {}
    for record in records:
        for row in record["rows"]:
            table.setdefault(row["name"], []).append({
                "build": record["b"]["build"], "ratio": row["ratio"], "ci_low": row["ci_low"],
                "ci_high": row["ci_high"], "verdict": row["verdict"], "median_a": row["median_a"],
                "datetime": record["datetime"]})
    return table


def svg_history_chart(name: str, anchor: str, points: list[dict], width: int = 520, height: int = 170) -> str:
    """Ratio to the anchor per release (log scale), the run's interval as a whisker, 1.0 as a line."""
    from reports.perf import _esc, fmt_time

    left, right, top, bottom = 50, 10, 22, 40
    finite = [p for p in points if all(math.isfinite(p[k]) and p[k] > 0 for k in ("ratio", "ci_low", "ci_high"))]
    span = max([0.1] + [abs(math.log2(p[k])) for p in finite for k in ("ci_low", "ci_high")])
    span = min(span * 1.15, 4.0)

    def y(ratio: float) -> float:
        v = max(-span, min(span, math.log2(ratio)))
        return top + (height - top - bottom) * (span - v) / (2 * span)

    step = (width - left - right) / max(1, len(points))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{_esc(name)}: time relative to {_esc(anchor)} per release" font-family="sans-serif" '
             f'font-size="10">',
             f'<text x="{left}" y="12" font-size="11" font-weight="bold">{_esc(name)}</text>',
             f'<line x1="{left}" y1="{y(1):.1f}" x2="{width - right}" y2="{y(1):.1f}" stroke="#333"/>']
    for tick in sorted({2 ** -span, 1.0, 2 ** span} | {t for t in (0.5, 0.8, 1.25, 2.0) if abs(math.log2(t)) < span}):
        parts.append(f'<text x="{left - 4}" y="{y(tick) + 3:.1f}" text-anchor="end">{tick:.2g}x</text>')
    for i, p in enumerate(points):
        cx = left + step * (i + 0.5)
        colour = {"slower": "#d33", "faster": "#393"}.get(p["verdict"], "#58a")
        if p in finite:
            parts.append(f'<line x1="{cx:.1f}" y1="{y(p["ci_low"]):.1f}" x2="{cx:.1f}" y2="{y(p["ci_high"]):.1f}" '
                         f'stroke="{colour}" stroke-width="2"/>')
            parts.append(f'<circle cx="{cx:.1f}" cy="{y(p["ratio"]):.1f}" r="3.5" fill="{colour}">'
                         f'<title>{_esc(p["build"])}: {p["ratio"]:.3f}x ({p["ci_low"]:.3f}-{p["ci_high"]:.3f}), '
                         f'{p["verdict"]}</title></circle>')
        parts.append(f'<text x="{cx:.1f}" y="{height - bottom + 14}" text-anchor="middle">{_esc(p["build"])}</text>')
    own = next((p["median_a"] for p in points if math.isfinite(p.get("median_a", math.nan))), math.nan)
    parts.append(f'<text x="{left}" y="{height - 6}">time relative to {_esc(anchor)} (log scale; '
                 f'{_esc(anchor)} here: {fmt_time(own) if math.isfinite(own) else "?"} a call, this machine only)'
                 f'</text></svg>')
    return "\n".join(parts)


def history_view(directory: Path) -> dict | None:
    """What the report shows for one anchor: the newest comparison and a chart per benchmark."""
    records = load_history(directory)
    if not records:
        return None
    anchor = records[0]["a"]["build"]
    table = history_table(records)
    charts = [{"name": name, "svg": svg_history_chart(name, anchor, points), "points": points}
              for name, points in table.items()]
    newest = max(records, key=lambda r: r["datetime"])
    return {"anchor": anchor, "machine": records[0]["machine"], "releases": [r["b"]["build"] for r in records],
            "records": records, "charts": charts, "latest": newest}


def comparison_view(record: dict) -> dict:
    """One interleaved record as the report's ``bench`` section (with its ratio chart)."""
    from reports.perf import svg_chart

    return {**record, "a": {**record["a"], "label": record["a"]["build"]},
            "b": {**record["b"], "label": record["b"]["build"]}, "svg": svg_chart(record["rows"])}

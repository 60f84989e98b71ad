"""The HTML conformance report, built only from recorded results.

``load_run(dir)`` reads one run (``results.json``, or rebuilds from ``records/``
when the run died before writing it); ``render_report(runs, out)`` merges any
number of runs -- other devices, other torch builds -- into one rule x build x
device matrix and writes ``out/index.html``: one self-contained file (inline
CSS, JS and SVG; no network) whose links point at the runs' repro scripts.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape

from conform.rules import AREAS

TEMPLATES = Path(__file__).parent / "templates"
STATUSES = ("pass", "fail", "fixed?", "known_divergence", "skipped")
WORST_FIRST = ("fail", "fixed?", "known_divergence", "pass", "skipped")


def css_class(status: str) -> str:
    """A status as a CSS class name (``fixed?`` is not a valid one)."""
    return {"fixed?": "fixed_maybe"}.get(status, status)


class InputError(Exception):
    """A run directory or file that cannot be used; the message is one line naming the file."""


@dataclass
class Run:
    label: str  # the build column's name (torch build, made unique across inputs)
    path: Path  # the run directory (repro paths are relative to it)
    data: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: corrupt JSON (line {exc.lineno}: {exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: unreadable ({getattr(exc, 'strerror', None) or exc})") from None


def _check_results(path: Path, data: Any) -> dict:
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise InputError(f"{path}: not a torchconform results file (no 'rules' list)")
    for i, entry in enumerate(data["rules"]):
        if not isinstance(entry, dict) or not {"id", "device", "status"} <= entry.keys() \
                or entry["status"] not in STATUSES:
            raise InputError(f"{path}: rules[{i}] lacks id/device/a valid status")
    return data


def load_run(path: Path | str) -> Run:
    """One run from a directory (or its results.json); raise InputError naming the bad file."""
    path = Path(path)
    if path.is_file():
        directory, results = path.parent, path
    else:
        directory, results = path, path / "results.json"
    notes: list[str] = []
    if results.is_file():
        data = _check_results(results, _read_json(results))
    elif (directory / "records").is_dir():
        data = _rebuild(directory)
        notes.append(f"{directory}: no results.json; rebuilt from records/ (the run did not finish)")
    elif not directory.exists():
        raise InputError(f"{directory}: no such run directory")
    else:
        raise InputError(f"{results}: missing (and no records/ to rebuild from)")
    notes += list(data.get("record_problems") or [])
    build = data.get("build") or {}
    return Run(label=str(build.get("name") or data.get("torch_version") or "unknown build"), path=directory,
               data=data, notes=notes)


def _rebuild(directory: Path) -> dict:
    """results.json from records + run.json (what `torchconform run` wrote before starting)."""
    from reference import load_all
    from suite.results import build_results

    meta: dict[str, Any] = {}
    if (directory / "run.json").is_file():
        try:
            meta = dict(_read_json(directory / "run.json"))
        except InputError:
            meta = {}
    rows_meta = {**meta, "interrupted": True, "status": "interrupted (rebuilt from records)"}
    data = build_results(directory, rows_meta, load_all(), list(meta.get("areas") or []), [], [])
    data["devices"] = sorted({e["device"] for e in data["rules"]})
    return data


def unique_labels(runs: list[Run]) -> None:
    """Two runs of the same build on the same device get distinct columns (label + directory name)."""
    seen: dict[tuple[str, str], int] = {}
    for run in runs:
        devices = {e["device"] for e in run.data["rules"]}
        if any((run.label, d) in seen for d in devices):
            run.label = f"{run.label} ({run.path.name})"
        for d in devices:
            seen[(run.label, d)] = 1


def frame(runs: list[Run], out: Path) -> pd.DataFrame:
    rows = []
    for run in runs:
        for e in run.data["rules"]:
            repro = e.get("repro")
            rows.append({
                "id": e["id"], "area": e.get("area") or e["id"].split(".", 1)[0], "device": str(e["device"]),
                "build": run.label, "status": e["status"], "examples": int(e.get("examples") or 0),
                "detail": e.get("detail") or "", "statement": e.get("statement") or "",
                "citation": e.get("citation") or "",
                "repro": os.path.relpath(run.path / repro, out) if repro else None,
                "mismatches": e.get("mismatches") or [], "case": e.get("case"), "note": e.get("note") or "",
                "divergence": e.get("divergence") or _legacy_divergence(e),
            })
    columns = ["id", "area", "device", "build", "status", "examples", "detail", "statement", "citation", "repro",
               "mismatches", "case", "note", "divergence"]
    return pd.DataFrame(rows, columns=columns)


def _legacy_divergence(entry: dict) -> str | None:
    """Results written before records had a ``divergence`` field: their detail starts with the entry id."""
    if entry.get("status") != "known_divergence":
        return None
    return (entry.get("detail") or "").split(":", 1)[0] or None


def summary(df: pd.DataFrame, runs: list[Run]) -> list[dict]:
    """Per area x build x device: rules in each status and examples run; every area appears."""
    table = []
    builds = [r.label for r in runs]
    for area in list(AREAS) + sorted(set(df["area"]) - set(AREAS)):
        part = df[df["area"] == area]
        if part.empty:
            table.append({"area": area, "build": "", "device": "", "empty": True,
                          **{s: 0 for s in STATUSES}, "examples": 0})
            continue
        grouped = part.groupby(["build", "device"], sort=False)
        for (build, device), g in sorted(grouped, key=lambda kv: (builds.index(kv[0][0]), kv[0][1])):
            counts = g["status"].value_counts()
            table.append({"area": area, "build": build, "device": device, "empty": False,
                          **{s: int(counts.get(s, 0)) for s in STATUSES}, "examples": int(g["examples"].sum())})
    return table


def matrix(df: pd.DataFrame, runs: list[Run]) -> tuple[list[tuple[str, str]], list[dict]]:
    """Columns (build, device) and one row per rule; ``differs`` when builds disagree on a device."""
    builds = [r.label for r in runs]
    columns = sorted({(b, d) for b, d in zip(df["build"], df["device"])},
                     key=lambda c: (builds.index(c[0]), c[1]))
    rows = []
    for rid, g in df.groupby("id", sort=True):
        cells = {(b, d): {"status": s, "examples": x, "note": t.strip().splitlines()[0][:200] if t.strip() else ""}
                 for b, d, s, x, t in zip(g["build"], g["device"], g["status"], g["examples"], g["detail"])}
        changes = outcome_changes(cells, builds, sorted({c[1] for c in columns}))
        first = g.iloc[0]
        rows.append({"id": rid, "area": first["area"], "statement": first["statement"],
                     "citation": first["citation"], "cells": [cells.get(c) for c in columns],
                     "differs": bool(changes), "changes": changes, "worst": _worst(cells.values())})
    return columns, rows


def outcome_changes(cells: dict, builds: list[str], devices: list[str]) -> list[str]:
    """Where a rule's outcome changes from one build to the next (builds in column order, e.g. by release):
    ``"2.6.0 (cpu): fail -> pass"``."""
    changes = []
    for device in devices:
        seen = [(b, cells[(b, device)]["status"]) for b in builds if (b, device) in cells]
        for (_, before), (build, after) in zip(seen, seen[1:]):
            if before != after:
                changes.append(f"{build} ({device}): {before.replace('_', ' ')} -> {after.replace('_', ' ')}")
    return changes


def _worst(cells) -> str:
    statuses = {c["status"] for c in cells}
    return next((s for s in WORST_FIRST if s in statuses), "skipped")


def failures(df: pd.DataFrame) -> list[dict]:
    """Failing rules with their structured evidence: mismatches (path, expected, actual, tolerance), the
    minimal case and what else the failure says.  Read from the record's fields, never parsed from text."""
    fails = df[df["status"] == "fail"]
    out = []
    for row in fails.to_dict("records"):
        mismatches = [{**m, "tol": m.get("tolerance", "")} for m in (row.get("mismatches") or [])]
        note = row.get("note") or ("" if mismatches else row.get("detail") or "")
        out.append({**row, "mismatches": mismatches, "case": row.get("case") or "", "other": note})
    return out


def release_history(runs: list[Run]) -> dict[str, dict[str, str]]:
    """entry id -> {release: outcome of its repro}: the committed release matrix (reports/matrix/), overlaid
    with the outcomes the given runs measured (their own builds)."""
    from suite.matrix import MATRIX_DIR, base_version, load

    history: dict[str, dict[str, str]] = {}
    sources = [(release, data.get("registry") or {}) for release, data in load(MATRIX_DIR).items()]
    for run in runs:
        version = (run.data.get("build") or {}).get("version") or run.data.get("torch_version")
        by_entry = run.data.get("registry_outcomes") or {}
        if version:
            by_device: dict[str, dict[str, str]] = {}
            for entry_id, outcomes in by_entry.items():
                for device, outcome in outcomes.items():
                    by_device.setdefault(device.split(":")[0], {})[entry_id] = outcome
            sources.append((str(base_version(version)), by_device))
    for release, by_device in sources:
        for device, outcomes in by_device.items():
            for entry_id, outcome in outcomes.items():
                history.setdefault(entry_id, {})[f"{release}|{device}"] = outcome
    return history


def first_seen_fixed_in(outcomes: dict[str, str]) -> tuple[str, str]:
    """From {"release|device": outcome}: the first release where the repro reproduced, and the first release
    after the last reproducing one where it did not (empty: still reproduces on the newest measured)."""
    from packaging.version import Version

    from suite.matrix import REPRODUCES

    per_release: dict[str, bool] = {}
    for key, outcome in outcomes.items():
        release = key.split("|", 1)[0]
        per_release[release] = per_release.get(release, False) or outcome == REPRODUCES
    ordered = sorted(per_release.items(), key=lambda kv: Version(kv[0]))
    seen = [r for r, reproduces in ordered if reproduces]
    if not seen:
        return "never reproduced", ""
    later = [r for r, reproduces in ordered if Version(r) > Version(seen[-1]) and not reproduces]
    return seen[0], (later[0] if later else "")


def divergences(runs: list[Run], df: pd.DataFrame) -> list[dict]:
    """Registry entries of all runs, with where a run actually hit them and their history across releases."""
    entries: dict[str, dict] = {}
    for run in runs:
        for d in run.data.get("divergences") or []:
            entry = entries.setdefault(d["id"], {**d, "applies": [], "hit": []})
            if d.get("applies_to_this_build"):
                entry["applies"].append(run.label)
    history = release_history(runs)
    for entry in entries.values():
        entry["first_seen"], entry["fixed_in"] = first_seen_fixed_in(history.get(entry["id"], {}))
    known = df[df["status"] == "known_divergence"]
    for entry in entries.values():
        hits = known[known["divergence"] == entry["id"]]
        entry["hit"] = sorted({f"{b} / {d}" for b, d in zip(hits["build"], hits["device"])})
    return sorted(entries.values(), key=lambda e: e["id"])


def render_report(runs: list[Run], out: Path, bench: dict | None = None, errors: list[str] | None = None,
                  history: dict | None = None) -> Path:
    """Write ``out/index.html`` from ``runs`` (and an optional benchmark comparison and release history,
    reports/history.py: history_view)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    unique_labels(runs)
    df = frame(runs, out)
    columns, rows = matrix(df, runs)
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["css"] = css_class
    html = env.get_template("report.html.j2").render(
        runs=runs, areas=list(AREAS), summary=summary(df, runs), columns=columns, rows=rows,
        failures=failures(df), divergences=divergences(runs, df), bench=bench, history=history, errors=errors or [],
        builds=[r.label for r in runs], multi_build=len({r.label for r in runs}) > 1,
        repros=sorted({(r["id"], r["build"], r["device"], r["repro"]) for r in df.to_dict("records") if r["repro"]}),
        generated=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        differs=sum(r["differs"] for r in rows), coverage=(out / "coverage.html").is_file())
    path = out / "index.html"
    tmp = path.with_name("index.html.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, path)
    return path

"""Aggregate the plugin's per-test records into ``results.json``.

The plugin appends one row per (test, rule) to ``<out>/records/<pid>.jsonl`` as
each test finishes.  A rule can be reached by several tests (and each
hypothesis test records once), so rows are merged to one entry per rule and
device: the worst status wins (fail > known_divergence > pass > skipped),
examples add up, and the details of the rows carrying the winning status are
kept.  Every registered rule of the selected areas that no test recorded is
listed as skipped, so the report shows coverage gaps instead of hiding them.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Iterable

SCHEMA = 1
# worst first; `fixed?`: a registered divergence stopped reproducing on a build newer than every measured release
STATUSES = ("fail", "fixed?", "known_divergence", "pass", "skipped")
_RANK = {s: i for i, s in enumerate(STATUSES)}
NOT_RECORDED = "no test recorded this rule"
NOT_REACHED_INTERRUPTED = "the run was interrupted before any test recorded this rule"


def read_records(out: Path) -> tuple[list[dict], list[str]]:
    """All record rows under ``out/records`` and one line per unreadable line or file.

    A run killed mid-write leaves at most a truncated last line per file; it is
    reported and skipped, everything else is kept.
    """
    rows: list[dict] = []
    problems: list[str] = []
    for path in sorted((out / "records").glob("*.jsonl")):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            problems.append(f"{path}: unreadable: {exc.strerror or exc}")
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                problems.append(f"{path}:{number}: truncated or corrupt record skipped")
                continue
            if not isinstance(row, dict) or not {"id", "device", "status"} <= row.keys() or row["status"] not in _RANK:
                problems.append(f"{path}:{number}: record without id/device/valid status skipped")
                continue
            rows.append(row)
    return rows, problems


def read_registry_outcomes(out: Path) -> dict[str, dict[str, str]]:
    """How each registry entry's repro came out, per device (``<out>/registry/*.jsonl``)."""
    outcomes: dict[str, dict[str, str]] = {}
    for path in sorted((out / "registry").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
                outcomes.setdefault(row["entry"], {})[str(row["device"])] = row["outcome"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a truncated last line of a killed run
    return outcomes


def merge_rows(rows: Iterable[dict]) -> list[dict]:
    """One entry per (rule, device), in first-seen order."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["id"], str(row["device"])), []).append(row)
    merged = []
    for (rid, device), group in groups.items():
        status = min((r["status"] for r in group), key=_RANK.__getitem__)
        winners = [r for r in group if r["status"] == status]
        details = list(dict.fromkeys(r.get("detail") or "" for r in winners if r.get("detail")))
        repros = list(dict.fromkeys(r["repro"] for r in winners if r.get("repro")))
        merged.append({
            "id": rid,
            "area": group[0].get("area") or rid.split(".", 1)[0],
            "device": device,
            "status": status,
            "examples": sum(int(r.get("examples") or 0) for r in group),
            "repro": repros[0] if repros else None,
            "repros": repros,
            "detail": "\n---\n".join(details),
            "tests": list(dict.fromkeys(r["test"] for r in group if r.get("test"))),
            # structured fields of the first winning record (the report reads these, never the text)
            "mismatches": next((r["mismatches"] for r in winners if r.get("mismatches")), []),
            "case": next((r["case"] for r in winners if r.get("case")), None),
            "note": next((r["note"] for r in winners if r.get("note")), ""),
            "divergence": next((r["divergence"] for r in winners if r.get("divergence")), None),
        })
    return merged


def add_unrecorded(entries: list[dict], rule_ids: Iterable[str], devices: list[str], interrupted: bool) -> list[dict]:
    """Append a skipped entry for every (rule, device) of the selection that nothing recorded."""
    seen = {(e["id"], e["device"]) for e in entries}
    detail = NOT_REACHED_INTERRUPTED if interrupted else NOT_RECORDED
    extra = [{"id": rid, "area": rid.split(".", 1)[0], "device": dev, "status": "skipped", "examples": 0,
              "repro": None, "repros": [], "detail": detail, "tests": [], "mismatches": [], "case": None,
              "note": "", "divergence": None}
             for rid in rule_ids for dev in devices if (rid, dev) not in seen]
    return entries + extra


def annotate(entries: list[dict], rules: dict) -> list[dict]:
    """Attach each rule's statement and citation so the report needs no registry."""
    for entry in entries:
        info = rules.get(entry["id"])
        entry["statement"] = info.statement if info else ""
        entry["citation"] = info.citation if info else ""
    return sorted(entries, key=lambda e: (e["area"], e["id"], e["device"]))


def counts(entries: list[dict]) -> dict[str, int]:
    tally = {s: 0 for s in STATUSES}
    for entry in entries:
        tally[entry["status"]] += 1
    tally["examples"] = sum(e["examples"] for e in entries)
    return tally


def torch_build() -> dict[str, Any]:
    """What identifies the torch build under test (the report's build column)."""
    import torch

    version = getattr(torch, "version", None)
    cudnn = None
    try:
        if torch.backends.cudnn.is_available():
            cudnn = torch.backends.cudnn.version()
    except Exception:  # a build without cudnn bindings
        pass
    return {
        "name": torch.__version__,
        "version": torch.__version__,
        "git_version": getattr(version, "git_version", None),
        "cuda": getattr(version, "cuda", None),
        "hip": getattr(version, "hip", None),
        "cudnn": cudnn,
        "debug": getattr(version, "debug", None),
        "path": str(Path(torch.__file__).parent),
    }


def machine_info() -> dict[str, Any]:
    return {"node": platform.node(), "platform": platform.platform(), "machine": platform.machine(),
            "python": platform.python_version(), "cpus": os.cpu_count()}


def suite_commit(root: Path) -> str | None:
    """The suite's git commit (``+dirty`` when the work tree has changes), or None outside git."""
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def divergence_list() -> list[dict]:
    """The registry as plain data, with whether each entry applies to the installed build."""
    import torch

    from suite.divergences import all_divergences, applies_to_build

    return [{"id": d.id, "rule": d.rule, "also_rules": list(d.also_rules), "bug_in": d.bug_in,
             "arguable": d.arguable, "torch": d.torch, "reason": d.reason, "evidence": d.evidence,
             "devices": list(d.devices), "applies_to_this_build": applies_to_build(d.torch, torch.__version__),
             "repro_case": repr(d.repro)}
            for d in all_divergences()]


def build_results(out: Path, meta: dict[str, Any], rules: dict, selected_areas: list[str], devices: list[str],
                  divergences: list[dict]) -> dict[str, Any]:
    rows, problems = read_records(out)
    entries = merge_rows(rows)
    rule_ids = [rid for rid in rules if rid.split(".", 1)[0] in selected_areas]
    entries = annotate(add_unrecorded(entries, rule_ids, devices, bool(meta.get("interrupted"))), rules)
    build = meta.get("build") or {}
    return {
        "schema": SCHEMA,
        "torch_version": build.get("version"),
        "devices": devices,
        **meta,
        "counts": counts(entries),
        "record_problems": problems,
        "rules": entries,
        "divergences": divergences,
        "registry_outcomes": read_registry_outcomes(out),
    }


def write_json(path: Path, data: Any) -> None:
    """Write atomically: a reader never sees half a results.json."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, path)


def machine_key(machine_info: dict) -> str:
    """``<node>-<hash of cpu brand, count, arch>``: the same machine gives the same key in any file."""
    import hashlib
    import re

    cpu = machine_info.get("cpu") or {}
    ident = f"{cpu.get('brand_raw', '')}|{cpu.get('count', '')}|{machine_info.get('machine', '')}"
    node = re.sub(r"[^A-Za-z0-9._-]", "_", str(machine_info.get("node") or platform.node())) or "machine"
    return f"{node}-{hashlib.sha1(ident.encode()).hexdigest()[:8]}"

"""The findings page (``findings.html``) and its data (``findings-list.json``) of one or more campaigns or runs.

Built from ``suite.findings`` states only: a campaign's ``findings.json``, or, for a plain run folder, the
findings its records give (stamped with the run's start time), so campaigns and runs merge alike.
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from suite import findings as F

TEMPLATES = Path(__file__).parent / "templates"


def state_of(directory: Path, started: str | None = None) -> tuple[str, dict]:
    """(label, findings state) of a campaign folder or a run folder."""
    path = directory / "findings.json"
    if path.is_file():
        state = F.load(path)
        return state.get("campaign") or directory.name, state
    return directory.name, F.from_records(directory, started or "")


def write_findings_page(findings: list[dict], out: Path, roots: dict[str, Path] | None = None) -> Path:
    """Write ``out/findings.html`` and ``out/findings-list.json``; repro links relative to ``out`` (``roots``: the
    folder of each source label, where its repro paths start; default ``out`` itself)."""
    out.mkdir(parents=True, exist_ok=True)
    for f in findings:
        root = (roots or {}).get(f.get("repro_source") or "", out)
        f["link"] = os.path.relpath(root / f["repro"], out) if f.get("repro") else None
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    html = env.get_template("findings.html.j2").render(
        new=[f for f in findings if f["new"]], registered=[f for f in findings if not f["new"]],
        counts=F.summary_counts(findings), sources=sorted({s for f in findings for s in f.get("sources", [])}),
        generated=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    # The list as shown (a campaign's own findings.json is its state, with tail offsets: never overwritten).
    F.save(out / "findings-list.json", {"counts": F.summary_counts(findings), "findings": findings})
    path = out / "findings.html"
    path.write_text(html, encoding="utf-8")
    return path

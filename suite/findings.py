"""Distinct findings: failures deduplicated into bugs, each with its smallest example.

A fuzzing campaign fails the same check thousands of times; a finding is one *kind* of deviation.  Its
signature is the rule, the test that reached it (the path taken, without its parameters) and the shape
of the deviation, from the record's structured fields (never its free text where a field exists):

- per mismatch: its kind (``exception``: the exception types and their message with numbers and addresses
  stripped; ``shape``; ``keys``; ``dtype``; ``value``: ``nan``/``inf`` when torch produced one the reference
  did not, else ``differs``) and its path with indices replaced by ``N`` (the same bug at another element
  is the same bug);
- a failure without mismatches (a registered divergence that did not reproduce, a test that broke): its
  note or exception line, stabilised the same way;
- a registered divergence that was hit: the entry's id (already known, counted but not new; one finding
  whichever of the entry's rules saw it).

For each finding the state keeps the hit count, first and last seen times, the smallest example (the
shortest case repr) and a copy of that example's repro script under ``<campaign>/findings/<id>.py``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Iterable

SCHEMA = 1
_ADDR = re.compile(r"0x[0-9a-fA-F]+")
_NUM = re.compile(r"(?<![A-Za-z_])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_INDEX = re.compile(r"\[[\d, ]+\]")
_RAISED = re.compile(r"^Raised\(type='([^']*)'(?:, message=(.*))?\)$", re.S)
_REPR = re.compile(r"\b[A-Z]\w*\(.*\)")
_EXC_LINE = re.compile(r"^E\s+((?:[\w.]+)(?:Error|Exception|Failure|Warning|Interrupt|Exit)\b.*)$", re.M)


def stable(text: str, limit: int = 160) -> str:
    """``text`` without what changes from example to example: addresses, numbers, runs of spaces."""
    text = _NUM.sub("N", _ADDR.sub("ADDR", text or ""))
    return " ".join(text.split())[:limit]


def _first_line(text: str | None) -> str:
    return (text or "").strip().split("\n", 1)[0]


def test_function(nodeid: str) -> str:
    return re.sub(r"\[.*\]$", "", nodeid or "")


def _raised(text: str) -> str | None:
    match = _RAISED.match(text or "")
    if not match:
        return None
    return f"{match.group(1)}({stable(match.group(2) or '', 80)})"


def mismatch_shape(m: dict) -> str:
    """``kind:path[:detail]`` of one mismatch record."""
    path, exp, act = str(m.get("path") or ""), str(m.get("expected") or ""), str(m.get("actual") or "")
    where = _INDEX.sub("[N]", path.split(" (", 1)[0])
    raised_e, raised_a = _raised(exp), _raised(act)
    if raised_e or raised_a:
        return f"exception:{where}:expected {raised_e or 'a value'}, got {raised_a or 'a value'}"
    if where.endswith(".shape"):
        return f"shape:{where}"
    if where.endswith(".keys()"):
        return f"keys:{where}:{stable(exp, 60)} -> {stable(act, 60)}"
    if "dtype" in where or "dtype" in exp or "dtype" in act:
        return f"dtype:{where}"
    for special in ("nan", "inf"):
        if special in act.lower() and special not in exp.lower():
            return f"value:{where}:{special}"
    if not _NUM.fullmatch(exp.strip()) and len(exp) < 40 and len(act) < 40 and "array" not in exp + act:
        return f"value:{where}:{stable(exp, 40)} -> {stable(act, 40)}"  # categorical: True/False, 'a'/'b'
    return f"value:{where}:differs"


def signature(row: dict) -> tuple[str, str]:
    """(kind, signature text) of a fail or known_divergence record row."""
    if row["status"] != "fail":
        return "registered", f"registered:{row.get('divergence')}"
    test = test_function(row.get("test") or "")
    shapes = sorted({mismatch_shape(m) for m in row.get("mismatches") or []})
    if shapes:
        kinds = sorted({s.split(":", 1)[0] for s in shapes})
        return "+".join(kinds), f"{test}|" + ";".join(shapes[:6])
    note = row.get("note") or ""
    if note.startswith("registered divergence"):
        return "stale-registry", f"{test}|{stable(note.split(':', 1)[0])}"
    if row.get("crash"):  # the exception line pytest reported; reprs in it (the case) vary per example
        return "error", f"{test}|{stable(_REPR.sub('<repr>', _first_line(row['crash'])))}"
    detail = row.get("detail") or note
    match = _EXC_LINE.search(detail)
    return "error", f"{test}|{stable(match.group(1) if match else detail.splitlines()[0] if detail else '')}"


def _registered(kind: str, row: dict) -> str | None:
    """The registry entry a finding is about: the one hit, or the one that did not reproduce."""
    if kind == "registered":
        return row.get("divergence")
    if kind == "stale-registry":  # "registered divergence <id> did not reproduce: ..."
        return (row.get("note") or "").split()[2]
    return None


def finding_id(key: str, sig: str) -> str:
    """``<rule>-<hash>`` (a registered divergence: ``<entry id>-<hash>``; a broken test:
    ``<test path>.<test>-<hash>``), usable as a file name."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", ".", key).strip(".")  # ids name files (findings/<id>.py)
    return f"{safe}-{hashlib.sha1(sig.encode()).hexdigest()[:8]}"


def new_state(campaign: str | None = None) -> dict:
    return {"schema": SCHEMA, "campaign": campaign, "findings": {}, "offsets": {}}


def update(state: dict, row: dict, when: str, out: Path | None) -> str | None:
    """Fold one record row into ``state``; return the finding id if the row started a new finding.

    ``out``: the campaign directory holding the row's repro (copied to ``findings/<id>.py`` whenever a
    smaller example of the finding arrives); None leaves repros where they are.
    """
    if row.get("status") not in ("fail", "known_divergence"):
        return None
    kind, sig = signature(row)
    # A test that broke fails every rule it declares with the one error: one finding, all its rules; a
    # registered divergence is one finding whichever of its rules (also_rules) saw it.
    key = {"error": test_function(row.get("test") or ""), "registered": str(row.get("divergence"))}.get(kind, row["id"])
    fid = finding_id(key, sig)
    found = state["findings"].get(fid)
    created = found is None
    if created:
        found = state["findings"][fid] = {
            "id": fid, "rule": row["id"], "area": row.get("area") or row["id"].split(".", 1)[0], "kind": kind,
            "signature": sig, "registered": _registered(kind, row),
            "new": kind != "registered", "hits": 0, "rules": [], "first_seen": when, "last_seen": when, "tests": [],
            "devices": [], "case": None, "mismatches": [], "note": "", "repro": None}
    if not found["rules"] or row["id"] == found["rules"][0]:
        found["hits"] += 1  # a run that shows it through several rules is one hit
    found["last_seen"] = max(found["last_seen"], when)
    found["first_seen"] = min(found["first_seen"], when)
    for key, value in (("tests", row.get("test")), ("devices", str(row.get("device"))), ("rules", row["id"])):
        if value and value not in found[key]:
            found[key].append(value)
    case = row.get("case")
    if not case and kind == "error":  # a broken test's case is named only in its crash line
        match = _REPR.search(_first_line(row.get("crash")))
        case = match.group(0) if match else None
        row = {**row, "note": _first_line(row.get("crash"))}
    if case and (found["case"] is None or len(case) < len(found["case"])):
        found.update(case=case, mismatches=row.get("mismatches") or [], note=row.get("note") or "")
        if row.get("repro") and out is not None and (out / row["repro"]).is_file():
            target = out / "findings" / f"{fid}.py"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out / row["repro"], target)
            found["repro"] = str(target.relative_to(out))
        elif row.get("repro"):
            found["repro"] = row["repro"]
    elif not found["note"] and not case:
        found["note"] = (row.get("note") or row.get("detail") or "")[:2000]
    return fid if created else None


def entry_repro_script(entry_id: str) -> str | None:
    """A standalone script of a registry entry's own minimal repro (None if it cannot be rendered)."""
    try:
        from suite.divergences import all_divergences
        from suite.repro import render

        entry = next(e for e in all_divergences() if e.id == entry_id)
        device = "cpu" if "*" in entry.devices or "cpu" in entry.devices else entry.devices[0]
        expect = entry.expectation(entry.repro, device)
        return render(entry.rule, entry.repro, expect.expected, expect.tol, entry.run, device, expect.key)
    except Exception:  # an entry of another build or a broken registry: the finding keeps no script
        return None


REPLAY = '''#!/usr/bin/env python3
r"""torchconform finding {fid}: replay the failing test from the campaign's example database.

No standalone torch-only script exists for it ({why}): hypothesis saved the failing
example in the database below and replays it first.
Failure: {crash}
Smallest example seen: {case}
Run from the suite's checkout: python {name}   (exit 1: it still fails)
"""
import os
import subprocess
import sys

env = {{**os.environ, "TORCHCONFORM_DB": {db!r}}}
sys.exit(subprocess.call([sys.executable, "-m", "pytest", {test!r}, "-x", "-q", "-p", "no:cacheprovider",
                          "--hypothesis-profile", "dev"], env=env))
'''


def complete_repros(state: dict, out: Path, db: str) -> None:
    """Give every finding without a repro one under ``findings/<id>.py``: a registered divergence its entry's
    minimal repro; any other (a broken test, a check without a torch-side runner) a script replaying its
    test from the example database ``db``."""
    for fid, f in state["findings"].items():
        if f.get("repro"):
            continue
        target = out / "findings" / f"{fid}.py"
        if f["kind"] == "registered":
            text = entry_repro_script(f["registered"] or "")
        elif f.get("tests"):
            why = ("the test broke rather than a check failing" if f["kind"] == "error" else
                   "its check gives the plugin no torch-side runner to inline")
            failure = f.get("note") or "; ".join(f"{m.get('path')}: expected {m.get('expected')}, got "
                                                 f"{m.get('actual')}" for m in f.get("mismatches") or [])
            text = REPLAY.format(fid=fid, why=why, crash=" ".join(failure.split())[:300].replace('"', "'"),
                                 case=(f.get("case") or "unknown")[:500].replace('"', "'"), name=target.name,
                                 db=db, test=f["tests"][0])
        else:
            text = None
        if text:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            f["repro"] = str(target.relative_to(out))


def from_records(out: Path, when: str) -> dict:
    """Findings of a finished run directory (no campaign): every row stamped ``when``."""
    from suite.results import read_records

    state = new_state()
    rows, _ = read_records(out)
    for row in rows:
        update(state, row, when, out)
    return state


def merge(states: Iterable[tuple[str, dict]]) -> list[dict]:
    """Findings of several campaigns or runs (``(source label, state)``), one entry per finding id: hits
    add up, the earliest first-seen and the smallest example win; ``sources`` says who saw it."""
    merged: dict[str, dict] = {}
    for source, state in states:
        for fid, f in state["findings"].items():
            if fid not in merged:
                merged[fid] = {**f, "sources": [source], "repro_source": source if f.get("repro") else None}
                continue
            m = merged[fid]
            m["hits"] += f["hits"]
            m["first_seen"], m["last_seen"] = min(m["first_seen"], f["first_seen"]), max(m["last_seen"], f["last_seen"])
            m["sources"].append(source)
            for key in ("tests", "devices", "rules"):
                m[key] = list(dict.fromkeys(m[key] + f[key]))
            if f.get("case") and (not m.get("case") or len(f["case"]) < len(m["case"])):
                m.update(case=f["case"], mismatches=f["mismatches"], note=f["note"], repro=f.get("repro"),
                         repro_source=source if f.get("repro") else None)
    return sorted(merged.values(), key=lambda f: (not f["new"], f["first_seen"], f["id"]))


def load(path: Path) -> dict:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("findings"), dict):
        raise ValueError(f"{path}: not a findings file")
    return data


def save(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, path)


def summary_counts(findings: list[dict]) -> dict[str, Any]:
    return {"distinct": len(findings), "new": sum(f["new"] for f in findings),
            "registered": sum(not f["new"] for f in findings), "hits": sum(f["hits"] for f in findings)}

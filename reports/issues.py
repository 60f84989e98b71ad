"""Drafts of upstream bug reports (``torchconform report --issues DIR``): one markdown file per new finding
of torch's behaviour (not a test that broke, nor a registry entry that stopped reproducing: those are the
suite's) and per registered divergence.

Each draft says what the documentation promises (the rule's statement and citation), what torch does
instead (the finding's smallest example and its mismatches, or the registry entry's description), which
releases are affected (the committed release matrix, ``reports/matrix/*.json``), the minimal repro inlined
and the environment.  When the registry entry's ``evidence`` already names an upstream issue
(``pytorch/pytorch#N`` or ``github.com/pytorch/pytorch/issues/N``) the draft says so at the top: comment
there instead of filing a duplicate.
"""
from __future__ import annotations

import re
from pathlib import Path

from suite.findings import entry_repro_script
from suite.matrix import MATRIX_DIR, REPRODUCES, load as load_matrix

SUITE_KINDS = ("error", "stale-registry")
_UPSTREAM = re.compile(r"(?:pytorch/pytorch#|github\.com/pytorch/pytorch/(?:issues|pull)/)(\d+)")


def upstream_issues(evidence: str) -> list[str]:
    return list(dict.fromkeys(f"pytorch/pytorch#{n}" for n in _UPSTREAM.findall(evidence or "")))


def rule_releases(rule: str, matrix: dict) -> dict[str, list[str]]:
    """status -> releases, of ``rule`` in the release matrix (any device)."""
    out: dict[str, list[str]] = {}
    for release, data in matrix.items():
        for device, statuses in (data.get("rules") or {}).items():
            status = statuses.get(rule)
            if status:
                out.setdefault(status, []).append(f"{release} ({device})")
    return out


def entry_releases(entry_id: str, matrix: dict) -> tuple[list[str], list[str]]:
    """(releases where the entry's repro reproduces, releases where it does not)."""
    yes, no = [], []
    for release, data in matrix.items():
        for device, outcomes in (data.get("registry") or {}).items():
            if entry_id in outcomes:
                (yes if outcomes[entry_id] == REPRODUCES else no).append(f"{release} ({device})")
    return yes, no


def _environment(results: dict) -> str:
    build, machine = results.get("build") or {}, results.get("machine") or {}
    return (f"- torch {build.get('version')} (git {build.get('git_version')}, CUDA {build.get('cuda')}, "
            f"HIP {build.get('hip')})\n- Python {machine.get('python')} on {machine.get('platform')}\n"
            f"- found by torchconform (suite commit {results.get('suite_commit')})")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:120]


def finding_draft(finding: dict, rules: dict, matrix: dict, results: dict, repro_text: str | None) -> str:
    info = rules.get(finding["rule"])
    statement = info.statement if info else "(rule not registered in this checkout)"
    citation = info.citation if info else ""
    by_status = rule_releases(finding["rule"], matrix)
    failing = by_status.get("fail", [])
    affected = (f"found on torch {(results.get('build') or {}).get('version')}; the release matrix's fixed "
                f"(derandomized) cases fail this rule on: {', '.join(failing)}" if failing else
                f"found on torch {(results.get('build') or {}).get('version')}; the release matrix's fixed "
                f"(derandomized) cases pass this rule on every measured release ({len(matrix)}), so the "
                f"fuzzed case lies outside them: run the repro on other releases to bound it")
    observed = "\n".join(f"- at `{m.get('path')}`: expected `{m.get('expected')}`, got `{m.get('actual')}` "
                         f"(tolerance {m.get('tolerance')})" for m in finding.get("mismatches") or [])
    observed = observed or f"```\n{(finding.get('note') or '').strip()[:3000]}\n```"
    repro = (f"```python\n{repro_text.rstrip()}\n```" if repro_text else
             f"(no standalone repro was written; smallest case: `{finding.get('case')}`)")
    return f"""# {finding['rule']}: {statement}

_Draft from torchconform finding `{finding['id']}` ({finding['kind']}; {finding['hits']} hits, first seen \
{finding['first_seen']}). Check it is not a duplicate upstream and that the documented behaviour is quoted \
right before filing._

## Affected releases
{affected}

## Documented behaviour
{statement}

Source: {citation}

## Observed behaviour
Smallest example: `{finding.get('case')}`

{observed}

## Minimal repro
Needs only torch and numpy; exit status 1 while torch differs from the documented behaviour.

{repro}

## Environment
{_environment(results)}
"""


def divergence_draft(entry: dict, rules: dict, matrix: dict, results: dict, hits: int) -> str:
    info = rules.get(entry["rule"])
    statement = info.statement if info else "(rule not registered in this checkout)"
    yes, no = entry_releases(entry["id"], matrix)
    known = upstream_issues(entry.get("evidence") or "")
    upstream = (f"**Already reported upstream: {', '.join(known)}.** Add the repro below there if it helps; "
                f"do not file a duplicate.\n\n" if known else
                "No upstream issue is known to the registry (searched its evidence field).\n\n")
    where = "the documentation" if entry.get("bug_in") == "docs" else "torch"
    script = entry_repro_script(entry["id"])
    repro = (f"```python\n{script.rstrip()}\n```" if script else
             f"Case: `{entry.get('repro_case')}` (`pytest suite/test_divergences.py -k {entry['id']}`)")
    return f"""# {entry['rule']}: {statement}

{upstream}_Draft from torchconform registry entry `{entry['id']}` (the bug is in {where}\
{'; arguable' if entry.get('arguable') else ''}; hit {hits} times by the campaigns given)._

## Affected releases
Registered range: `torch{entry.get('torch')}`, devices {', '.join(entry.get('devices') or [])}.
Measured (release matrix): reproduces on {', '.join(yes) or 'no measured release'}; \
does not reproduce on {', '.join(no) or 'none'}.

## Documented behaviour
{statement}

Source: {info.citation if info else ''}

## Observed behaviour
{entry.get('reason')}

Evidence: {entry.get('evidence')}

## Minimal repro
{repro}

## Environment
{_environment(results)}
"""


def write_issue_drafts(findings: list[dict], results: dict, out: Path, read_repro) -> list[Path]:
    """One ``<id>.md`` per new finding and per registered divergence; ``read_repro(finding)`` gives the
    text of a finding's repro script or None."""
    from reference import load_all

    rules = load_all()
    matrix = load_matrix(MATRIX_DIR)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for finding in findings:
        # A test that broke, or a registry entry that stopped reproducing, is the suite's to fix, not torch's.
        if finding["new"] and finding["kind"] not in SUITE_KINDS:
            path = out / f"finding-{_slug(finding['id'])}.md"
            path.write_text(finding_draft(finding, rules, matrix, results, read_repro(finding)), encoding="utf-8")
            written.append(path)
    hits = {}
    for f in findings:
        if f.get("registered"):
            hits[f["registered"]] = hits.get(f["registered"], 0) + f["hits"]
    for entry in results.get("divergences") or []:
        path = out / f"divergence-{_slug(entry['id'])}.md"
        path.write_text(divergence_draft(entry, rules, matrix, results, hits.get(entry["id"], 0)), encoding="utf-8")
        written.append(path)
    return written

"""``torchconform report DIR... [--out OUT] [--bench A B]``: rebuild and merge reports without rerunning."""
from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from torchconform.options import UsageError


def report(args: argparse.Namespace) -> int:
    from reports.html import InputError, load_run, render_report

    if not args.dirs and not args.bench and args.bench_history is None:
        raise UsageError("give at least one run directory (or --bench A B, --bench-history)")
    runs, errors = [], []
    for item in args.dirs:
        try:
            runs.append(load_run(item))
        except InputError as exc:
            errors.append(str(exc))
            print(f"torchconform: error: {exc}", file=sys.stderr)
    bench = None
    if args.bench:
        from reports.perf import BenchError, comparison

        try:
            bench = comparison(args.bench[0], args.bench[1], Path(args.bench_dir))
        except BenchError as exc:
            errors.append(str(exc))
            print(f"torchconform: error: {exc}", file=sys.stderr)
    history = None
    if args.bench_history is not None:
        from reports.history import comparison_view, history_view, record_path
        from reports.perf import this_machine

        if args.bench_history:
            directory = Path(args.bench_history)
        else:
            import torch

            directory = record_path(Path(args.bench_dir), this_machine(), torch.__version__, "x").parent
        if not directory.is_dir():
            raise UsageError(f"--bench-history: no history in {directory} (run `torchconform bench --against PYTHON`)")
        history = history_view(directory)
        if history is None:
            raise UsageError(f"--bench-history: no comparison records in {directory}")
        if bench is None:
            bench = comparison_view(history["latest"])
    if not runs and bench is None:
        print("torchconform: error: no usable input; nothing written", file=sys.stderr)
        return 2
    if args.out:
        out = Path(args.out)
    elif len(args.dirs) == 1 and runs:
        out = runs[0].path
    else:
        out = Path("reports") / "out" / f"report-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    path = render_report(runs, out, bench=bench, errors=errors, history=history)
    print(f"torchconform: report {path} ({len(runs)} run(s)" + (", with benchmarks" if bench else "") + ")")
    if runs:
        findings_and_issues(runs, Path(out), args.issues)
    return 1 if errors else 0


def findings_and_issues(runs: list, out: Path, issues: str | None) -> None:
    """The findings page of all the runs and campaigns given (merged), and the upstream drafts if asked."""
    from reports.findings import state_of, write_findings_page
    from suite import findings as F

    states, roots = [], {}
    for run in runs:
        label, state = state_of(run.path, run.data.get("started"))
        states.append((label, state))
        roots[label] = run.path
    merged = F.merge(states)
    page = write_findings_page(merged, out, roots)
    counts = F.summary_counts(merged)
    print(f"torchconform: findings {page} ({counts['new']} new, {counts['registered']} registered)")
    if issues:
        from reports.issues import write_issue_drafts

        def read_repro(finding: dict) -> str | None:
            root = roots.get(finding.get("repro_source") or "")
            path = root / finding["repro"] if root and finding.get("repro") else None
            return path.read_text(encoding="utf-8") if path and path.is_file() else None

        written = write_issue_drafts(merged, runs[0].data, Path(issues), read_repro)
        print(f"torchconform: {len(written)} issue draft(s) in {issues}")

"""``torchconform report DIR... [--out OUT] [--bench A B]``: rebuild and merge reports without rerunning."""
from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from torchconform.options import UsageError


def report(args: argparse.Namespace) -> int:
    from reports.html import InputError, load_run, render_report

    if not args.dirs and not args.bench:
        raise UsageError("give at least one run directory (or --bench A B)")
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
    if not runs and bench is None:
        print("torchconform: error: no usable input; nothing written", file=sys.stderr)
        return 2
    if args.out:
        out = Path(args.out)
    elif len(args.dirs) == 1 and runs:
        out = runs[0].path
    else:
        out = Path("reports") / "out" / f"report-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    path = render_report(runs, out, bench=bench, errors=errors)
    print(f"torchconform: report {path} ({len(runs)} run(s)" + (", with benchmarks" if bench else "") + ")")
    return 1 if errors else 0

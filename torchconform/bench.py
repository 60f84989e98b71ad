"""``torchconform bench``: benchmark the installed torch build, or compare two saved builds."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from torchconform.options import UsageError


def bench(args: argparse.Namespace) -> int:
    from reports.perf import BenchError, comparison

    save_dir = Path(args.save_dir)
    if args.compare:
        try:
            result = comparison(args.compare[0], args.compare[1], save_dir)
        except BenchError as exc:
            print(f"torchconform: error: {exc}", file=sys.stderr)
            return 2
        print_comparison(result)
        return 1 if result["regressions"] else 0
    if args.max_time <= 0:
        raise UsageError(f"--max-time must be positive, not {args.max_time}")
    if args.passes < 1:
        raise UsageError(f"--passes must be at least 1, not {args.passes}")
    return run_benchmarks(save_dir, args.max_time, args.select, args.passes)


def run_benchmarks(save_dir: Path, max_time: float, select: str | None, passes: int) -> int:
    """``passes`` sweeps over all benchmarks (spread in time, so machine drift shows), merged into one file."""
    from reports.perf import load_bench, merge_passes, safe_name
    from torchconform.run import repo_root

    root = repo_root()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    save_dir.mkdir(parents=True, exist_ok=True)
    tmp = save_dir / f".running-{stamp}.json"
    docs, returncode = [], 0
    for number in range(passes):
        returncode = max(returncode, one_pass(root, tmp, max_time, select, quiet=number > 0))
        if not tmp.is_file():
            print(f"torchconform: error: the benchmarks wrote no results (pytest exit {returncode})", file=sys.stderr)
            return returncode or 1
        docs.append(json.loads(tmp.read_text()))
        tmp.unlink()
        print(f"torchconform: bench pass {number + 1}/{passes} done", flush=True)
    tmp.write_text(json.dumps(merge_passes(docs)))
    run = load_bench(tmp)
    target = save_dir / run.machine / safe_name(run.build) / f"{stamp}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp.replace(target)
    print(f"torchconform: saved {len(run.benchmarks)} benchmarks x {passes} passes of torch {run.build} on "
          f"{run.machine}: {target}")
    print(f"  compare with: torchconform bench --save-dir {save_dir} --compare <other build> {run.build}")
    return returncode


def one_pass(root: Path, tmp: Path, max_time: float, select: str | None, quiet: bool) -> int:
    # min-time 0.2 ms per round bounds the rounds (max-time / min-time) so per-round data stays small.
    cmd = [sys.executable, "-m", "pytest", str(root / "suite" / "perf"), "-q", "-p", "no:cacheprovider",
           "--benchmark-only", "--benchmark-save-data", f"--benchmark-json={tmp}",
           f"--benchmark-max-time={max_time}", "--benchmark-min-time=0.0002", "--benchmark-min-rounds=5",
           "--benchmark-columns=median,iqr,rounds", "--benchmark-sort=fullname"]
    if select:
        cmd += ["-k", select]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL if quiet else None)
    return proc.returncode


def print_comparison(result: dict) -> None:
    a, b = result["a"], result["b"]
    print(f"A = {a['label']} ({a['file']})\nB = {b['label']} ({b['file']})\nmachine {a['machine']}")
    print(f"{'benchmark':42} {'median A':>10} {'median B':>10} {'B/A':>7} {'95% interval':>15} {'noise':>7}  verdict")
    for r in result["rows"]:
        print(f"{r['name'][:42]:42} {r['median_a_text']:>10} {r['median_b_text']:>10} {r['ratio']:7.3f} "
              f"{r['ci_low']:7.3f}-{r['ci_high']:<7.3f} {100 * r['noise']:6.1f}%  {r['verdict']}")
    print("noise = max(10% floor, relative IQR of rounds, drift between passes, change of the torch-free control "
          "benchmark, bootstrap 95% interval)")
    print(f"{result['regressions']} regression(s) beyond the noise")

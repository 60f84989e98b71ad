"""``torchconform bench``: benchmark the installed torch build, compare two saved builds, or compare the
installed build with another environment's torch in one interleaved run (``--against``)."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from torchconform.options import UsageError


def bench(args: argparse.Namespace) -> int:
    from reports.perf import BenchError, comparison

    save_dir = Path(args.save_dir)
    if args.against and args.compare:
        raise UsageError("--against and --compare exclude each other")
    if args.against:
        return against(args, save_dir)
    if args.compare:
        try:
            result = comparison(args.compare[0], args.compare[1], save_dir)
        except BenchError as exc:
            print(f"torchconform: error: {exc}", file=sys.stderr)
            return 2
        print_comparison(result)
        return 1 if result["regressions"] else 0
    max_time = 0.3 if args.max_time is None else args.max_time
    if max_time <= 0:
        raise UsageError(f"--max-time must be positive, not {max_time}")
    if args.passes < 1:
        raise UsageError(f"--passes must be at least 1, not {args.passes}")
    return run_benchmarks(save_dir, max_time, args.select, args.passes)


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


def against(args: argparse.Namespace, save_dir: Path) -> int:
    """The installed build (A) against ``--against PYTHON`` (B), interleaved; exit 1 when B is slower."""
    from reports.paired import LEVEL, THRESHOLD
    from torchconform.interleave import EnvironmentProblem, Side, probe
    from torchconform.run import repo_root

    max_time = 0.4 if args.max_time is None else args.max_time
    if max_time <= 0:
        raise UsageError(f"--max-time must be positive, not {max_time}")
    if args.sessions < 1:
        raise UsageError(f"--sessions must be at least 1, not {args.sessions}")
    if args.duration is not None and args.duration <= 0:
        raise UsageError(f"--duration must be positive, not {args.duration}")
    threshold = THRESHOLD if args.threshold is None else args.threshold
    if not 0 <= threshold < 1:
        raise UsageError(f"--threshold is a fraction (0.05 = 5%), not {threshold}")
    root = repo_root()
    try:
        b_info = probe(args.against, root)
    except EnvironmentProblem as exc:
        raise UsageError(str(exc)) from None
    inject = {k: v for k, v in os.environ.items() if k in INJECT_TO_B}
    a = Side("A", sys.executable)
    b = Side("B", args.against, env=inject)
    try:
        record = interleaved_comparison(a, b, root, save_dir, sessions=args.sessions, duration=args.duration,
                                        max_time=max_time, select=args.select, seed=args.seed,
                                        threshold=threshold, level=LEVEL)
    except EnvironmentProblem as exc:
        print(f"torchconform: error: {exc}", file=sys.stderr)
        return 2
    print_interleaved(record)
    if args.out:
        print(f"  report: {write_report(record, save_dir, Path(args.out))}")
    if inject:
        print(f"  (injected into B only: {', '.join(f'{k}={v}' for k, v in inject.items())})")
    print(f"  B was python {b_info['python']} at {args.against}")
    return 1 if record["slower"] else 0


INJECT_TO_B = ("TORCHCONFORM_BENCH_INJECT_SLOWDOWN", "TORCHCONFORM_BENCH_INJECT_SLEEP_S")


def interleaved_comparison(a, b, root: Path, save_dir: Path, *, sessions: int, duration: float | None,
                           max_time: float, select: str | None, seed: int | None, threshold: float,
                           level: float, log=print) -> dict:
    """Run the sessions, save each side's merged pytest-benchmark JSON and the comparison record."""
    import random
    import tempfile
    import time

    from reports.history import save_record
    from reports.paired import compare_rounds, slower
    from reports.perf import load_bench, merge_passes, safe_name
    from torchconform.interleave import interleave, machine_info

    seed = random.randrange(2**31) if seed is None else seed
    info = machine_info()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="torchconform-bench-", dir=os.environ.get("TORCHCONFORM_BENCH_TMP")) as work:
        orders = interleave(a, b, root, Path(work), sessions=sessions, duration=duration, max_time=max_time,
                            select=select, seed=seed, machine_info=info, log=log)
    seconds = time.perf_counter() - start
    sides = {}
    for side in (a, b):
        merged = merge_passes(side.docs)
        merged["torchconform"]["interleaved"] = {"side": side.name, "python": side.python,
                                                 "sessions": len(side.docs)}
        tmp = save_dir / f".running-{stamp}-{side.name}.json"
        save_dir.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(merged))
        run = load_bench(tmp)
        target = save_dir / run.machine / safe_name(run.build) / f"{stamp}-{side.name}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.replace(target)
        failed = sorted({f for doc in side.docs for f in (doc.get("torchconform") or {}).get("failed", [])})
        sides[side.name] = {"build": run.build, "python": side.python, "file": str(target), "machine": run.machine,
                            "failed": failed, "round_seconds": side.seconds, "env": side.env}
    rows = compare_rounds(a.docs, b.docs, threshold, level)
    record = {"kind": "interleaved", "datetime": stamp, "machine": sides["A"]["machine"], "a": sides["A"],
              "b": sides["B"], "sessions": len(a.docs), "orders": orders, "seed": seed, "max_time": max_time,
              "select": select, "threshold": threshold, "level": level, "seconds": seconds,
              "load": os.getloadavg() if hasattr(os, "getloadavg") else None, "rows": rows,
              "slower": [r["name"] for r in slower(rows)]}
    record["file"] = str(save_record(record, save_dir))
    return record


def print_interleaved(record: dict) -> None:
    a, b = record["a"], record["b"]
    print(f"A = torch {a['build']} ({a['python']})\nB = torch {b['build']} ({b['python']})")
    print(f"{record['sessions']} session(s), {sum(record['orders'].values())} pairs of turns in "
          f"{record['seconds']:.0f} s on {record['machine']}; "
          f"pytest-benchmark JSON: {a['file']}, {b['file']}")
    width = max([42] + [len(r["name"]) for r in record["rows"]])
    print(f"{'benchmark':{width}} {'median A':>10} {'median B':>10} {'B/A':>7} {'interval':>15} {'turns':>5}  verdict")
    for r in record["rows"]:
        note = " (control)" if r["control"] else ""
        print(f"{r['name']:{width}} {r['median_a_text']:>10} {r['median_b_text']:>10} {r['ratio']:7.3f} "
              f"{r['ci_low']:7.3f}-{r['ci_high']:<7.3f} {r['pairs']:5d}  {r['verdict']}{note}")
    level = min((r["level"] for r in record["rows"]), default=record["level"])
    print(f"B/A: median of the paired turns' ratios; interval: sign test, {100 * record['level']:.0f}% family-wise "
          f"({100 * level:.2f}% each); slower/faster: interval excludes 1 and B/A beyond "
          f"{100 * record['threshold']:.0f}%")
    for side in (a, b):
        if side["failed"]:
            print(f"  side {'A' if side is a else 'B'} failed: {'; '.join(side['failed'])}")
    print(f"{len(record['slower'])} benchmark(s) slower on B; record: {record['file']}")


def write_report(record: dict, save_dir: Path, out: Path) -> Path:
    """The HTML report of this comparison and of the anchor's history across releases."""
    from reports.history import comparison_view, history_view, record_path
    from reports.html import render_report

    anchor_dir = record_path(save_dir, record["machine"], record["a"]["build"], record["b"]["build"]).parent
    return render_report([], out, bench=comparison_view(record), history=history_view(anchor_dir))

"""How well does ``torchconform bench --against`` tell a real slowdown from noise, on this machine?

    python -m torchconform.bench_power [--runs 10] [--inject 'test_norm_forward_backward[[]group_norm[]]:0.10']

Runs ``--runs`` same-build comparisons and as many with an injected relative
slowdown in one benchmark of side B (``TORCHCONFORM_BENCH_INJECT_SLOWDOWN``:
every call of it followed by a busy wait of 10% of that call's own time),
alternating the two kinds so that the machine's load hits both alike.  It
counts the comparisons whose verdicts flag anything, and the largest
|B/A - 1| that same-build runs produced (what the threshold must stay above).
A measurement, not a test: pytest does not collect it, and its counts go to
stdout and ``--out`` (JSON).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reports.paired import LEVEL, THRESHOLD  # noqa: E402
from torchconform.bench import interleaved_comparison  # noqa: E402
from torchconform.interleave import Side  # noqa: E402

SELECT = "norm or module_call or collate or control"


def one(kind: str, inject: str, args, save_dir: Path) -> dict:
    env = {"TORCHCONFORM_BENCH_INJECT_SLOWDOWN": inject} if kind == "injected" else {}
    a, b = Side("A", sys.executable), Side("B", args.python or sys.executable, env=env)
    record = interleaved_comparison(a, b, ROOT, save_dir, sessions=args.sessions, duration=None,
                                    max_time=args.max_time, select=args.select, seed=None,
                                    threshold=args.threshold, level=LEVEL, log=lambda *a, **k: None)
    rows = [r for r in record["rows"] if not r["control"]]
    return {"kind": kind, "seconds": record["seconds"], "slower": record["slower"],
            "faster": [r["name"] for r in rows if r["verdict"] == "faster"],
            "ratios": {r["name"]: round(r["ratio"], 4) for r in record["rows"]},
            "intervals": {r["name"]: [round(r["ci_low"], 4), round(r["ci_high"], 4)] for r in record["rows"]},
            "load": os.getloadavg()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--inject", default="test_norm_forward_backward[[]group_norm[]]:0.10",
                   help="PATTERN:FRACTION (fnmatch glob; [[] and []] are literal brackets)")
    p.add_argument("--select", default=SELECT)
    p.add_argument("--sessions", type=int, default=2)
    p.add_argument("--max-time", type=float, default=0.4)
    p.add_argument("--threshold", type=float, default=THRESHOLD)
    p.add_argument("--python", help="side B's python (default: this one, i.e. the same build)")
    p.add_argument("--out", default=str(ROOT / "reports" / "out" / "bench_power.json"))
    args = p.parse_args()
    target = args.inject.rpartition(":")[0].replace("[[]", "[").replace("[]]", "]")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-power-") as tmp:
        for number in range(args.runs):
            for kind in ("same", "injected"):
                result = one(kind, args.inject, args, Path(tmp))
                results.append(result)
                hit = target in result["slower"]
                print(f"run {number + 1:2d} {kind:8s} {result['seconds']:5.0f} s  load {result['load'][0]:4.1f}  "
                      f"slower: {', '.join(result['slower']) or '-'}"
                      + (f"  [{target}: {result['ratios'].get(target)}x, {'flagged' if hit else 'MISSED'}]"
                         if kind == "injected" else ""), flush=True)
    same = [r for r in results if r["kind"] == "same"]
    injected = [r for r in results if r["kind"] == "injected"]
    summary = {
        "injected_flagged": sum(target in r["slower"] for r in injected),
        "injected_other_flags": sum(bool(set(r["slower"]) - {target}) for r in injected),
        "same_flagged_anything": sum(bool(r["slower"] or r["faster"]) for r in same),
        "runs": args.runs, "threshold": args.threshold, "select": args.select, "inject": args.inject,
        "sessions": args.sessions, "max_time": args.max_time,
        "same_build_max_deviation": max((abs(v - 1) for r in same for n, v in r["ratios"].items()), default=0.0),
        "seconds_per_comparison": sum(r["seconds"] for r in results) / max(1, len(results)),
        "load_mean": sum(r["load"][0] for r in results) / max(1, len(results)),
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=1))
    print(f"injected {args.inject}: flagged in {summary['injected_flagged']}/{len(injected)} "
          f"(other benchmarks flagged in {summary['injected_other_flags']}); same build: something flagged in "
          f"{summary['same_flagged_anything']}/{len(same)}; largest same-build |B/A - 1| "
          f"{summary['same_build_max_deviation']:.3f}; {summary['seconds_per_comparison']:.0f} s a comparison, "
          f"mean load {summary['load_mean']:.1f}; details: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

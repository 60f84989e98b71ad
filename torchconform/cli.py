"""``torchconform``: run the conformance suite, build reports, benchmark, replay repros.

    torchconform run    [--area A[,B]] [--profile ci|dev|fuzz] [--device D[,E]] [--out DIR] [--jobs N] [--coverage]
    torchconform matrix [--release R[,S]] [--keep-envs] [--registry-only] [-- RUN ARGS]
    torchconform fuzz   --budget DURATION [--area A[,B]] [-j N|auto] [--device D] [--out DIR | --resume DIR] [--db URL]
    torchconform report DIR... [--out OUT] [--bench A B] [--bench-history [DIR]] [--issues DIR]
    torchconform bench  [--save-dir D] [--compare A B | --against PYTHON [--sessions N | --duration S]]
    torchconform repro  PATH [--device D] [--timeout S]
    torchconform mutate --file F [--file G] [--out DIR] [--max-mutants N [--sample SEED]] [--timeout S]

Bad options are one line on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import sys

from torchconform.options import UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints usage + message over several lines
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="torchconform", description="Differential conformance suite and fuzzer for PyTorch builds.")
    sub = p.add_subparsers(dest="command", parser_class=_Parser, metavar="{run,fuzz,matrix,report,bench,repro,mutate}")
    sub.required = True

    r = sub.add_parser("run", help="run the suite against the installed torch and write results + report")
    r.add_argument("--area", action="append", help="area(s), comma-separated or repeated (default: all)")
    r.add_argument("--profile", default="ci", help="hypothesis profile: ci (default, deterministic), dev, fuzz")
    r.add_argument("--device", action="append", help="torch device(s), comma-separated or repeated "
                                                     "(default: cpu + every accelerator)")
    r.add_argument("--out", help="output directory (default: reports/out/<timestamp>/)")
    r.add_argument("--jobs", "-j", help="run tests in N processes (pytest-xdist), or auto (every core); default: "
                                          "one per core, at most 4, but 1 with --tests or --coverage")
    r.add_argument("--seed", help="hypothesis seed (replays one random run; note that hypothesis then "
                                         "skips its example database)")
    r.add_argument("--tests", action="append", help="run these test files/directories instead of the areas' "
                                                    "(the areas still define which rules are expected)")
    r.add_argument("--strict-registry", action="store_true",
                   help="fail a registered divergence that no longer reproduces even on a build newer than every "
                        "measured release (default there: status `fixed?`, which does not fail the run)")
    r.add_argument("--coverage", action="store_true",
                   help="measure which lines and branches of torch's own code under test the run reached "
                        "(coverage.py; workers and ranks included): <out>/coverage.html; not with --jobs")
    r.add_argument("-q", "--quiet", action="store_true", help="only rule progress and the summary")
    r.add_argument("pytest_args", nargs="*", help="after '--': extra pytest arguments (e.g. -- -k setattr)")

    f = sub.add_parser("fuzz", help="a time-boxed fuzzing campaign: property and stateful tests under random seeds, "
                                    "time shared by what each test finds; distinct findings with repros")
    f.add_argument("--budget", required=True, help="wall time of this session, e.g. 90s, 10m, 1h30m")
    f.add_argument("--area", action="append", help="area(s), comma-separated or repeated (default: all)")
    f.add_argument("--jobs", "-j", help="pytest-xdist workers: N, or auto (every core; default 1)")
    f.add_argument("--device", action="append", help="torch device(s) (default: cpu + every accelerator)")
    f.add_argument("--out", help="campaign folder, new or empty (default: reports/out/fuzz-<timestamp>/)")
    f.add_argument("--resume", metavar="DIR", help="continue the campaign in DIR (its areas, devices, database)")
    f.add_argument("--db", help="example database shared by workers and campaigns: a directory, or "
                                "redis://host:port (default: <campaign>/examples)")
    f.add_argument("--round", help="planned length of one round (default: a quarter of the budget, 60s-10m)")
    f.add_argument("--no-schedule", action="store_true", help="equal time shares (no proportional scheduling)")
    f.add_argument("--profile", default="dev", help="hypothesis profile of one test run (default dev: 60 examples)")
    f.add_argument("--tests", action="append", help="fuzz these test files/directories instead of the areas'")
    f.add_argument("-q", "--quiet", action="store_true", help="only rounds, new findings and the summary")
    f.add_argument("-v", "--verbose", action="store_true", help="also pytest's output")

    m = sub.add_parser("matrix", help="run the suite on every torch release of the matrix (tox), record each "
                                      "release's outcome in reports/matrix/, merge the reports")
    m.add_argument("--release", action="append", help="release(s), comma-separated or repeated (default: all)")
    m.add_argument("--keep-envs", action="store_true", help="keep each release's tox env (~5 GB) after its run")
    m.add_argument("--registry-only", action="store_true",
                   help="run only the registry entries' repros and update only their outcomes (a new entry's range)")
    m.add_argument("run_args", nargs="*", help="after '--': extra `torchconform run` arguments")

    rep = sub.add_parser("report", help="rebuild the HTML report from recorded results; merge several runs")
    rep.add_argument("dirs", nargs="*", help="run directories (each with results.json, or records/ to rebuild from)")
    rep.add_argument("--out", help="output directory (default: the run's own directory for one run, "
                                   "else reports/out/report-<timestamp>/)")
    rep.add_argument("--bench", nargs=2, metavar=("A", "B"), help="add the benchmark comparison of A vs B "
                                                                 "(build names or pytest-benchmark JSON files)")
    rep.add_argument("--issues", metavar="DIR", help="also write a markdown draft of an upstream bug report per "
                                                     "new finding and per registered divergence into DIR")
    rep.add_argument("--bench-dir", default="reports/perf", help="where `torchconform bench` saved results")
    rep.add_argument("--bench-history", nargs="?", const="", metavar="DIR",
                     help="add the performance history across releases: a <bench-dir>/history/<machine>/<anchor> "
                          "directory (default: the installed build's, on this machine) and its newest comparison")

    b = sub.add_parser("bench", help="benchmark the installed torch build, compare two saved builds, or "
                                     "compare it with another environment's torch in one interleaved run")
    b.add_argument("--save-dir", default="reports/perf", help="results root: <dir>/<machine>/<build>/<time>.json")
    b.add_argument("--compare", nargs=2, metavar=("A", "B"),
                   help="compare saved results of build (or file) A against B instead of running")
    b.add_argument("--against", metavar="PYTHON", help="the python executable of another environment with torch "
                                                      "(B): interleaved rounds of both builds, paired ratios B/A")
    b.add_argument("--sessions", type=int, default=2, help="--against: fresh pairs of processes, each running "
                                                           "every benchmark in alternating turns (default 2)")
    b.add_argument("--duration", type=float, help="--against: run sessions for this many seconds instead")
    b.add_argument("--threshold", type=float, help="--against: smallest change called slower/faster "
                                                   "(default 0.07, from same-build runs; see README)")
    b.add_argument("--seed", type=int, help="--against: seed of the A/B order within rounds (default: random)")
    b.add_argument("--out", default="reports/out/bench", help="--against: where to write the HTML report of the "
                                                               "comparison and the history across releases")
    b.add_argument("--max-time", type=float, help="seconds per benchmark and pass or round (pytest-benchmark; "
                                                  "default 0.3; with --against 0.4, each side)")
    b.add_argument("--passes", type=int, default=5, help="sweeps over all benchmarks, merged (default 5): "
                                                          "their spread measures the machine's drift")
    b.add_argument("-k", dest="select", help="only benchmarks matching this pytest -k expression")

    rp = sub.add_parser("repro", help="rerun one repro script and say whether it still reproduces")
    rp.add_argument("path")
    rp.add_argument("--device", help="device to replay on (default: the one recorded in the script)")
    rp.add_argument("--timeout", type=float, default=300.0, help="seconds before the replay is abandoned")

    mu = sub.add_parser("mutate", help="mutation testing of torch's code under test (cosmic-ray, on copies of the "
                                       "files): per-mutant outcomes and a score per file")
    mu.add_argument("--file", action="append", help="torch file(s) under test, relative to the torch package, "
                                                    "comma-separated or repeated (e.g. utils/data/sampler.py)")
    mu.add_argument("--out", help="output directory (default: reports/mutation/<torch version>/)")
    mu.add_argument("--max-mutants", help="run at most N mutants per file (the first N, or a random sample with "
                                          "--sample)")
    mu.add_argument("--sample", help="seed of the random sample of --max-mutants mutants")
    mu.add_argument("--timeout", help="seconds per mutant before it counts as killed by timeout "
                                      "(default: 2x the baseline run + 30, at least 60)")
    mu.add_argument("--nice", default="15", help="niceness of the test runs (default 15)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parser().parse_args(argv)
        if args.command == "run":
            from torchconform.run import run
            return run(args)
        if args.command == "fuzz":
            from torchconform.fuzz import fuzz
            return fuzz(args)
        if args.command == "matrix":
            from torchconform.matrix import matrix
            return matrix(args)
        if args.command == "report":
            from torchconform.report import report
            return report(args)
        if args.command == "bench":
            from torchconform.bench import bench
            return bench(args)
        if args.command == "mutate":
            from torchconform.mutate import mutate
            return mutate(args)
        from torchconform.repro import repro
        return repro(args)
    except UsageError as exc:
        print(f"torchconform: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("torchconform: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

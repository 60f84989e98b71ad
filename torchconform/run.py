"""``torchconform run``: validate options, run pytest in a child, aggregate, report."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from torchconform.options import PROFILES, UsageError, split_list
from suite.results import (build_results, divergence_list, machine_info, suite_commit, torch_build,
                                  write_json)
from torchconform.runner import Progress, RecordTail, child_env, python, run_child


def repo_root() -> Path:
    """The checkout holding the suite (editable install): the parent of the ``suite`` package."""
    import suite

    return Path(suite.__file__).resolve().parent.parent


def parse_areas(values: list[str] | None) -> list[str]:
    from conform.rules import AREAS

    areas = split_list(values)
    unknown = [a for a in areas if a not in AREAS]
    if unknown:
        raise UsageError(f"unknown area {unknown[0]!r} (choose from {', '.join(AREAS)})")
    return areas or list(AREAS)


MAX_DEFAULT_JOBS = 4


def default_jobs(args: argparse.Namespace) -> int:
    """Test processes when --jobs is not given: one per core (at most MAX_DEFAULT_JOBS) for a run of the
    areas -- the data area's workers and spawned processes spend much of their time waiting, and another
    process uses it -- but one for --tests (a few chosen files: pytest.log then names the test a crash or an
    interrupt stopped in) and for --coverage (which measures one pytest process and its children)."""
    if getattr(args, "tests", None) or getattr(args, "coverage", False):
        return 1
    return min(cores(), MAX_DEFAULT_JOBS)


def cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def parse_options(args: argparse.Namespace) -> dict:
    """Every option check before anything runs or is written."""
    from suite.devices import DeviceError, parse_devices

    areas = parse_areas(args.area)
    if args.profile not in PROFILES:
        raise UsageError(f"unknown profile {args.profile!r} (choose from {', '.join(PROFILES)})")
    try:
        devices = parse_devices(args.device)
    except DeviceError as exc:
        raise UsageError(str(exc)) from None
    jobs = default_jobs(args)
    if args.jobs == "auto":
        jobs = cores()
    elif args.jobs is not None:
        if not str(args.jobs).isdigit() or int(args.jobs) < 1:
            raise UsageError(f"--jobs must be a positive integer or auto, not {args.jobs!r}")
        jobs = int(args.jobs)
    if jobs > 1 and getattr(args, "coverage", False):
        raise UsageError("--coverage measures one pytest process and its workers: run it without --jobs")
    if getattr(args, "coverage", False):
        import importlib.util

        if importlib.util.find_spec("coverage") is None:
            raise UsageError("--coverage needs coverage.py: pip install coverage")
    seed = None
    if args.seed is not None:
        if not str(args.seed).isdigit():
            raise UsageError(f"--seed must be a non-negative integer, not {args.seed!r}")
        seed = int(args.seed)
    # No seed by default: hypothesis ignores its example database when a seed is given, and dev/fuzz
    # rely on the database (.hypothesis/ in the current directory) so that a failure replays first.
    root = repo_root()
    if not (root / "conftest.py").is_file():
        raise UsageError(f"no conftest.py in {root}: install the suite from its checkout (pip install -e .)")
    for test in args.tests or []:
        path = Path(test).resolve()
        if not path.exists():
            raise UsageError(f"--tests {test}: no such file or directory")
        if root not in path.parents and path != root:
            raise UsageError(f"--tests {test}: not inside the suite's checkout {root} (its conftest.py would not load)")
    return {"areas": areas, "devices": devices, "jobs": jobs, "seed": seed, "root": root}


def load_rules() -> tuple[dict, list[str]]:
    """The rule registry, area by area: one broken area module is reported, not fatal."""
    import importlib

    from conform.rules import AREAS, RULES

    problems = []
    for area in AREAS:
        try:
            importlib.import_module(f"reference.{area}")
        except ModuleNotFoundError as exc:
            if exc.name != f"reference.{area}":
                problems.append(f"reference.{area}: {type(exc).__name__}: {exc}")
        except Exception as exc:
            problems.append(f"reference.{area}: {type(exc).__name__}: {exc}")
    for problem in problems:
        print(f"torchconform: warning: rules of {problem}", file=sys.stderr)
    return RULES, problems


def suite_paths(root: Path, areas: list[str], explicit: list[str] | None) -> list[str]:
    """The areas' test directories that exist, plus the registry's repro test (run on every run)."""
    if explicit:
        return [str(Path(p).resolve()) for p in explicit]
    paths = [root / "suite" / area for area in areas]
    paths.append(root / "suite" / "test_divergences.py")
    return [str(p) for p in paths if p.exists()]


def pytest_command(paths: list[str], out: Path, profile: str, devices: list[str], jobs: int | None,
                   seed: int | None, extra: list[str], strict_registry: bool = False) -> list[str]:
    # Always -v: pytest.log then names each test before it runs, so a crash can be pinned on one test.
    cmd = [python(), "-m", "pytest", *paths, "--conform-out", str(out), "--hypothesis-profile", profile,
           "--device", ",".join(devices), "-rfE", "--tb=short", "-v"]
    if seed is not None:
        cmd += ["--hypothesis-seed", str(seed)]
    if jobs is not None and jobs > 1:
        cmd += ["-n", str(jobs)]
    if strict_registry:
        cmd.append("--strict-registry")
    return cmd + list(extra)


def seed_text(profile: str, seed: int | None) -> str | int:
    if seed is not None:
        return seed
    if profile == "ci":
        return "derandomized"
    return f"random; example database {Path.cwd() / '.hypothesis' / 'examples'}"


def default_out() -> Path:
    return Path("reports") / "out" / datetime.now().strftime("%Y%m%d-%H%M%S")


def run(args: argparse.Namespace) -> int:
    opts = parse_options(args)
    out = Path(args.out or default_out()).resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create output directory {out}: {exc.strerror or exc}") from None

    rules, problems = load_rules()
    paths = suite_paths(opts["root"], opts["areas"], args.tests)
    cmd = pytest_command(paths, out, args.profile, opts["devices"], opts["jobs"], opts["seed"], args.pytest_args,
                         strict_registry=args.strict_registry)
    if getattr(args, "coverage", False):
        from reports.coverage import rcfile

        # coverage run instead of python: the same pytest command, measured (workers and ranks included)
        cmd = [cmd[0], "-m", "coverage", "run", f"--rcfile={rcfile(out / 'coverage')}", *cmd[1:]]
    started = datetime.now(timezone.utc)
    meta = {
        "build": torch_build(),
        "machine": machine_info(),
        "suite_commit": suite_commit(opts["root"]),
        "profile": args.profile,
        "seed": seed_text(args.profile, opts["seed"]),
        "areas": opts["areas"],
        "started": started.isoformat(timespec="seconds"),
        "command": cmd,
    }
    # Written first, so `torchconform report DIR` can rebuild from the records even if this process dies.
    write_json(out / "run.json", meta)
    progress = Progress(sys.stdout, quiet=args.quiet)
    print(f"torchconform: torch {meta['build']['version']} on {', '.join(opts['devices'])}, profile "
          f"{args.profile}, areas {', '.join(opts['areas'])} -> {out}", flush=True)

    t0 = time.monotonic()
    if paths:
        tail = RecordTail(out / "records")
        env = child_env()
        # Lets suite/test_divergences.py run only the selected areas' registry entries.
        env["TORCHCONFORM_AREAS"] = ",".join(opts["areas"])
        child = run_child(cmd, cwd=Path.cwd(), env=env, log_path=out / "pytest.log",
                          on_line=progress.pytest_line, on_poll=lambda: [progress.record(r) for r in tail.new_rows()])
        returncode, interrupted = child.returncode, child.interrupted
    else:
        print("torchconform: the selected areas have no tests yet", flush=True)
        returncode, interrupted = 5, False

    meta.update({"duration_s": round(time.monotonic() - t0, 2), "pytest_exit_code": returncode,
                 "interrupted": interrupted, "status": run_status(returncode, interrupted)})
    if interrupted:
        # However pytest ended after the interrupt (its own exit 2, or killed by the signal or after GRACE_S,
        # depending on where the interrupt landed), the run's status is "interrupted"; where it stopped is a
        # field of its own.
        meta["interrupted_in"] = last_started_test(out / "pytest.log")
    elif returncode < 0:
        meta["crashed_in"] = last_started_test(out / "pytest.log")
        meta["status"] += f" in {meta['crashed_in']}" if meta["crashed_in"] else ""
    try:
        divergences = divergence_list()
    except Exception as exc:  # an area's registry that does not import: say so, keep the results
        divergences = []
        problems.append(f"divergence registry: {type(exc).__name__}: {exc}")
    results = build_results(out, meta, rules, opts["areas"], opts["devices"], divergences)
    results["record_problems"] = problems + results["record_problems"]
    write_json(out / "results.json", results)
    if getattr(args, "coverage", False):
        write_coverage(out, results)
    report_ok = write_report(out, results)
    write_findings(out, results)
    print_summary(results, out, report_ok)
    failed = results["counts"]["fail"] > 0
    return 0 if not failed and returncode in (0, 5) and not interrupted else 1


def run_status(returncode: int, interrupted: bool) -> str:
    if interrupted:
        return "interrupted"
    if returncode < 0:
        return f"crashed (signal {-returncode})"
    return {0: "complete", 1: "complete (tests failed)", 5: "complete (no tests collected)"}.get(
        returncode, f"pytest error (exit {returncode}): see pytest.log")


def last_started_test(log: Path) -> str | None:
    """The test pytest -v announced last: the one running when the process died."""
    import re

    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        match = re.match(r"^(?:\[gw\d+\] )?(?:\[\s*\d+%\] )?(?:PASSED |FAILED |SKIPPED |ERROR )?(\S+::\S+)", line)
        if match:
            return match.group(1)
    return None


def write_coverage(out: Path, results: dict) -> None:
    """Combine the processes' coverage data and write coverage.json and coverage.html (never fatal)."""
    import subprocess

    from reports.coverage import render_page, summarize, write_summary

    rc = out / "coverage" / "coveragerc"
    try:
        for step in (["combine", "--quiet"], ["json", "--quiet", "-o", str(out / "coverage" / "raw.json")]):
            subprocess.run([python(), "-m", "coverage", *step, f"--rcfile={rc}"], check=True, cwd=out / "coverage",
                           capture_output=True, text=True, timeout=600)
        table = summarize(json.loads((out / "coverage" / "raw.json").read_text()))
        write_summary(out, table)
        render_page(out, table, results["build"]["name"])
        print(f"torchconform: coverage of torch's code under test: {out / 'coverage.html'}")
        for row in table:
            pct = {k: "-" if row[k] is None else row[k] for k in ("line_pct", "open_pct", "branch_pct")}
            print(f"  {pct['line_pct']:>5}% lines ({pct['open_pct']:>5}% of the unexplained) "
                  f"{pct['branch_pct']:>5}% branches  torch/{row['file']}")
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        print(f"torchconform: error: coverage could not be summarized: {type(exc).__name__}: {exc}", file=sys.stderr)


def write_report(out: Path, results: dict) -> bool:
    try:
        from reports.html import Run, render_report

        render_report([Run(label=results["build"]["name"], path=out, data=results)], out)
        return True
    except Exception as exc:  # the report must never lose the recorded results
        print(f"torchconform: error: could not write {out / 'index.html'}: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return False


def write_findings(out: Path, results: dict) -> None:
    """``findings.html``: this run's failures as distinct findings (as a fuzzing campaign shows them)."""
    try:
        from reports.findings import write_findings_page
        from suite import findings

        state = findings.from_records(out, results.get("started") or "")
        write_findings_page(findings.merge([(out.name, state)]), out)
    except Exception as exc:  # never lose the results over the findings page
        print(f"torchconform: error: could not write {out / 'findings.html'}: {type(exc).__name__}: {exc}",
              file=sys.stderr)


def print_summary(results: dict, out: Path, report_ok: bool) -> None:
    by_area: dict[str, dict[str, int]] = {}
    for entry in results["rules"]:
        tally = by_area.setdefault(entry["area"], {"pass": 0, "fail": 0, "known_divergence": 0, "fixed?": 0,
                                                   "skipped": 0, "examples": 0})
        tally[entry["status"]] += 1
        tally["examples"] += entry["examples"]
    print(f"\ntorchconform: {results['status']} in {results['duration_s']:.1f}s "
          f"(pytest exit {results['pytest_exit_code']})")
    for area, t in by_area.items():
        print(f"  {area:10} pass {t['pass']:4}  fail {t['fail']:3}  known {t['known_divergence']:3}  "
              f"skipped {t['skipped']:4}  " + (f"fixed? {t['fixed?']:3}  " if t['fixed?'] else "")
              + f"examples {t['examples']}")
    for problem in results["record_problems"]:
        print(f"  warning: {problem}")
    for entry in results["rules"]:
        if entry["status"] == "fixed?":
            print(f"  fixed? {entry['id']} [{entry['device']}]: {entry['detail'].splitlines()[0][:160]}")
        if entry["status"] == "fail":
            repro = f"  repro: {out / entry['repro']}" if entry["repro"] else ""
            print(f"  FAIL {entry['id']} [{entry['device']}]{repro}")
    print(f"  results: {out / 'results.json'}")
    if report_ok:
        print(f"  report:  {out / 'index.html'}")

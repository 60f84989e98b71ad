"""``torchconform fuzz``: a time-boxed fuzzing campaign over the suite's property and stateful tests.

A campaign is a folder (``campaign.json`` with an id) and a sequence of *rounds*.  Each round is one pytest
child (pytest-xdist ``-n N`` workers, the ``dev`` profile's examples per run, random seeds) that runs each
test as many times as its share of the round buys (``suite/fuzzplugin.py`` repeats it); every run's records go
to the campaign's ``records/`` like any run's, so ``torchconform report DIR`` reads a campaign too.

Scheduling (proportional, on top of plain hypothesis): the first round(s) run every test once (breadth
first) and measure what a run of each costs.  From then on a test's share of the next round's CPU time is proportional to
``1 + the new signals its last round yielded`` -- new distinct findings (``suite/findings.py``), new
hypothesis ``event()`` labels, new (rule, outcome) pairs -- and its number of runs is that share divided
by its measured seconds per run (stochastically rounded: a test whose share buys half a run runs with
probability one half).  ``--no-schedule`` gives every test the same share (for comparison).

Every worker shares one hypothesis example database (``<campaign>/examples``, or ``--db`` a directory or
``redis://host:port`` shared by several campaigns and machines), so a failure found by one replays first in
all others.  The budget's end or Ctrl-C stops the round like an interrupt of ``torchconform run`` (SIGINT to
the child's process group, SIGKILL after a short grace); the findings so far are kept and the report is
written.  ``--resume DIR`` continues the campaign in DIR.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from suite import findings as F
from suite.exampledb import ENV as DB_ENV, DatabaseError, example_database, is_redis
from torchconform.options import UsageError
from torchconform.runner import RecordTail, child_env, python, run_child

GRACE_S = 5.0  # after the budget's SIGINT, the child's group is killed this much later
RESERVE_S = 8.0  # of the budget, kept for stopping the last round and writing results + report
MIN_ROUND_S = 20.0  # less budget left (a quarter of a small budget): no new round (a child takes ~10 s to start)
MAX_RUNS = 200  # per test and round: bounds the collection work of a very fast test's repeats


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``1h30m`` -> seconds (> 0)."""
    match = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*",
                         text or "")
    if not match or not any(match.groups()):
        raise UsageError(f"--budget {text!r}: not a duration (e.g. 90s, 10m, 1h30m)")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise UsageError(f"--budget {text!r}: must be more than zero")
    return total


def parse_jobs(text: str | None) -> int:
    if text is None:
        return 1
    if text == "auto":
        return os.cpu_count() or 1
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"-j {text!r}: a positive integer or 'auto'")
    return int(text)


def _campaign_file(directory: Path) -> dict | None:
    path = directory / "campaign.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: unreadable campaign file ({exc})") from None
    if not isinstance(data, dict) or not data.get("id"):
        raise UsageError(f"{path}: not a torchconform campaign file (no id)")
    return data


def campaign_folder(args: argparse.Namespace) -> tuple[Path, dict | None]:
    """The campaign's folder and, when resuming, its campaign.json; refuses a folder of another campaign."""
    if args.resume:
        folder = Path(args.resume).resolve()
        if args.out and Path(args.out).resolve() != folder:
            raise UsageError(f"--resume {args.resume} continues that campaign in its own folder; drop --out")
        existing = _campaign_file(folder)
        if existing is None:
            raise UsageError(f"--resume {args.resume}: no campaign.json there (not a campaign folder)")
        return folder, existing
    folder = Path(args.out or Path("reports") / "out" / f"fuzz-{datetime.now():%Y%m%d-%H%M%S}").resolve()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        existing = _campaign_file(folder) if folder.is_dir() else None
        if existing is not None:
            raise UsageError(f"--out {folder} belongs to campaign {existing['id']}: continue it with --resume "
                             f"{folder}, or choose another folder")
        raise UsageError(f"--out {folder} is not empty and holds no campaign: choose an empty or new folder")
    return folder, None


def parse_options(args: argparse.Namespace) -> dict:
    """Every check before anything runs or is written."""
    from suite.devices import DeviceError, parse_devices
    from torchconform.run import parse_areas, repo_root

    from torchconform.options import PROFILES

    budget = parse_duration(args.budget)
    jobs = parse_jobs(args.jobs)
    if args.profile not in PROFILES:
        raise UsageError(f"unknown profile {args.profile!r} (choose from {', '.join(PROFILES)})")
    folder, existing = campaign_folder(args)
    areas = parse_areas(args.area)
    if existing is not None and args.area and areas != existing["areas"]:
        raise UsageError(f"--resume: campaign {existing['id']} fuzzes {','.join(existing['areas'])}; "
                         f"leave --area out, or start a new campaign")
    areas = existing["areas"] if existing is not None else areas
    try:
        devices = parse_devices(args.device or (existing or {}).get("devices"))
    except DeviceError as exc:
        raise UsageError(str(exc)) from None
    db = args.db or (existing or {}).get("db") or str(folder / "examples")
    try:
        if args.db and not is_redis(db):
            Path(db).expanduser().mkdir(parents=True, exist_ok=True)
        if is_redis(db):
            example_database(db, check=True)
    except DatabaseError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"--db {db}: cannot use the directory ({exc.strerror or exc})") from None
    root = repo_root()
    tests = [str(Path(t).resolve()) for t in args.tests or []]
    if existing is not None:
        if tests and tests != existing.get("tests", []):
            raise UsageError(f"--resume: campaign {existing['id']} fuzzes other tests; leave --tests out, or start "
                             f"a new campaign")
        tests = list(existing.get("tests") or [])
    for test in tests:
        if not Path(test).exists():
            raise UsageError(f"--tests {test}: no such file or directory")
    round_s = parse_duration(args.round) if args.round else min(max(budget / 4, 60.0), 600.0)
    return {"budget": budget, "jobs": jobs, "folder": folder, "existing": existing, "areas": areas,
            "devices": devices, "db": db, "root": root, "tests": tests, "round_s": round_s}


def plan(tests: list[str], seconds: dict[str, float], weights: dict[str, float], capacity_s: float,
         rng: random.Random) -> dict[str, int]:
    """Runs per test for a round of ``capacity_s`` CPU-seconds.

    Breadth first: while some tests have never run, the round is those tests, once each (most distinct
    findings come from covering every test once: a campaign that sampled the suite instead found a third of
    what one plain ``dev`` pass found in the same time).  Then time shares are proportional to the weights
    and a test's runs are its share over its measured seconds per run, stochastically rounded (a share worth
    half a run is a run with probability one half), at most ``MAX_RUNS``."""
    untried = [t for t in tests if t not in seconds]
    if untried:
        return {t: 1 for t in untried}
    total = sum(weights.get(t, 1.0) for t in tests) or 1.0
    runs = {}
    for test in tests:
        expected = capacity_s * weights.get(test, 1.0) / total / max(seconds[test], 0.05)
        whole = int(expected)
        runs[test] = min(MAX_RUNS, whole + (rng.random() < expected - whole))
    return runs


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class _Campaign:
    """The live state of one campaign process: findings, scheduler statistics, and the record tails."""

    def __init__(self, folder: Path, campaign_id: str, quiet: bool):
        self.folder, self.quiet = folder, quiet
        path = folder / "findings.json"
        self.state = F.load(path) if path.is_file() else F.new_state(campaign_id)
        sched = folder / "scheduler.json"
        self.sched = json.loads(sched.read_text()) if sched.is_file() else {
            "seconds": {}, "runs": {}, "weights": {}, "events": [], "outcomes": [], "offsets": {}}
        self.records = RecordTail(folder / "records", {Path(k): v for k, v in self.state["offsets"].items()})
        self.telemetry = RecordTail(folder / "fuzz", {Path(k): v for k, v in self.sched["offsets"].items()})
        self.events = set(map(tuple, self.sched["events"]))
        self.outcomes = set(map(tuple, self.sched["outcomes"]))
        self.signals: dict[str, int] = {}  # this round: test -> new signals
        self.round_runs: dict[str, int] = {}  # this round: test -> runs that reported

    def poll(self) -> None:
        when = _now()
        for row in self.records.new_rows():
            test = row.get("test") or "?"
            outcome = (row.get("id"), row.get("status"), row.get("divergence"))
            if outcome not in self.outcomes:
                self.outcomes.add(outcome)
                self.signals[test] = self.signals.get(test, 0) + 1
            new = F.update(self.state, row, when, self.folder)
            if new:
                self.signals[test] = self.signals.get(test, 0) + 1
                finding = self.state["findings"][new]
                label = "registered divergence hit" if not finding["new"] else "NEW finding"
                print(f"torchconform fuzz: {label} {new} ({finding['kind']}) in {test}", flush=True)
        for row in self.telemetry.new_rows():
            test = row.get("test") or "?"
            self.round_runs[test] = self.round_runs.get(test, 0) + 1
            total, n = self.sched["runs"].get(test, [0.0, 0])
            self.sched["runs"][test] = [total + float(row.get("seconds") or 0.0), n + 1]
            self.sched["seconds"][test] = (total + float(row.get("seconds") or 0.0)) / (n + 1)
            for label in row.get("events") or []:
                key = (F.test_function(test), label)
                if key not in self.events:
                    self.events.add(key)
                    self.signals[test] = self.signals.get(test, 0) + 1

    def end_round(self, scheduled: list[str] | None) -> int:
        """The tests that ran (``None``: all that reported) get the weight their signals earned (the others keep
        theirs); returns how many test runs reported."""
        for test in self.round_runs if scheduled is None else scheduled:
            self.sched["weights"][test] = 1.0 + self.signals.get(test, 0)
        ran = sum(self.round_runs.values())
        self.signals, self.round_runs = {}, {}
        self.save()
        return ran

    def save(self) -> None:
        self.state["offsets"] = {str(k): v for k, v in self.records.offsets.items()}
        F.save(self.folder / "findings.json", self.state)
        self.sched.update(offsets={str(k): v for k, v in self.telemetry.offsets.items()},
                          events=sorted(self.events), outcomes=sorted(self.outcomes, key=str))
        F.save(self.folder / "scheduler.json", self.sched)


def collect(paths: list[str], cwd: Path, env: dict) -> list[str]:
    """The node ids the round's paths collect (one quick ``pytest --collect-only``)."""
    import subprocess

    proc = subprocess.run([python(), "-m", "pytest", *paths, "--collect-only", "-q", "-p", "no:cacheprovider"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    return [line.strip() for line in proc.stdout.splitlines() if "::" in line and not line.startswith(" ")]


def fuzz(args: argparse.Namespace) -> int:
    from suite.results import build_results, divergence_list, machine_info, suite_commit, torch_build, write_json
    from torchconform.run import load_rules, suite_paths, write_report

    t0 = time.monotonic()
    opts = parse_options(args)
    folder = opts["folder"]
    folder.mkdir(parents=True, exist_ok=True)
    campaign = opts["existing"] or {"id": uuid.uuid4().hex[:12], "created": _now(), "areas": opts["areas"],
                                    "devices": opts["devices"], "db": opts["db"], "tests": opts["tests"], "sessions": []}
    session = {"started": _now(), "budget_s": opts["budget"], "jobs": opts["jobs"],
               "schedule": "uniform" if args.no_schedule else "proportional", "rounds": [], "status": "running"}
    campaign["sessions"].append(session)
    write_json(folder / "campaign.json", campaign)
    rules, problems = load_rules()
    paths = suite_paths(opts["root"], opts["areas"], opts["tests"] or None)
    # The registry's repro test runs once per `torchconform run`; fuzzing it would only repeat it.
    fuzz_paths = [p for p in paths if not p.endswith("test_divergences.py")] or paths
    env = child_env()
    env.update({DB_ENV: opts["db"], "TORCHCONFORM_AREAS": ",".join(opts["areas"])})
    live = _Campaign(folder, campaign["id"], args.quiet)
    print(f"torchconform fuzz: campaign {campaign['id']} -> {folder}; budget {opts['budget']:.0f}s, "
          f"{opts['jobs']} worker(s), example database {opts['db']}", flush=True)

    deadline = t0 + opts["budget"]
    rng = random.Random()
    stopped_by = "budget"
    try:
        # A new campaign's first round runs every test once (no schedule) and so learns the node ids; a resumed
        # one collects them (tests its earlier sessions never got to are then tried first).
        tests = collect(fuzz_paths, Path.cwd(), env) if live.sched["seconds"] else None
        if tests == []:
            print("torchconform fuzz: the selected tests collect nothing (see pytest --collect-only)", flush=True)
        min_round = min(MIN_ROUND_S, opts["budget"] / 4)
        while tests != [] and deadline - time.monotonic() - RESERVE_S > min_round:
            number = len(session["rounds"]) + 1
            left = deadline - time.monotonic() - RESERVE_S
            round_s = min(opts["round_s"], left)
            round_env = dict(env)
            if tests is None:
                runs, what = None, "every test once"
            else:
                weights = {} if args.no_schedule else live.sched["weights"]
                runs = plan(tests, live.sched["seconds"], weights, round_s * opts["jobs"], rng)
                runs = {t: n for t, n in runs.items() if n > 0} or {rng.choice(tests): 1}
                schedule_path = folder / "schedules" / f"{len(campaign['sessions'])}-{number}.json"
                schedule_path.parent.mkdir(exist_ok=True)
                schedule_path.write_text(json.dumps(runs, indent=0))
                round_env["TORCHCONFORM_FUZZ_SCHEDULE"] = str(schedule_path)
                what = f"{sum(runs.values())} runs of {len(runs)} tests"
            cmd = [python(), "-m", "pytest", *fuzz_paths, "-p", "suite.fuzzplugin", "--conform-out", str(folder),
                   "--hypothesis-profile", args.profile, "--device", ",".join(opts["devices"]), "-q", "-rN",
                   "--tb=line", "-p", "no:cacheprovider"]
            if opts["jobs"] > 1:
                cmd += ["-n", str(opts["jobs"])]
            started = time.monotonic()
            print(f"torchconform fuzz: round {number}: {what}, ~{round_s:.0f}s planned, {left:.0f}s of budget left",
                  flush=True)
            child = run_child(cmd, cwd=Path.cwd(), env=round_env, log_path=folder / "pytest.log",
                              on_line=(lambda line: None) if args.quiet or not args.verbose else print,
                              on_poll=live.poll, timeout=max(1.0, deadline - RESERVE_S - time.monotonic()),
                              grace=GRACE_S)
            live.poll()
            ran = live.end_round(list(runs) if runs is not None else None)
            tests = tests if tests is not None else sorted(live.sched["seconds"])
            session["rounds"].append({"round": number, "runs": ran, "tests": len(runs or tests),
                                      "seconds": round(time.monotonic() - started, 1),
                                      "pytest_exit_code": child.returncode})
            write_json(folder / "campaign.json", campaign)
            if child.interrupted:
                stopped_by = "interrupt"
                break
    except KeyboardInterrupt:  # between rounds
        stopped_by = "interrupt"
    finally:
        live.poll()
        F.complete_repros(live.state, folder, opts["db"])
        live.save()
    session.update(ended=_now(), status="interrupted" if stopped_by == "interrupt" else "complete",
                   duration_s=round(time.monotonic() - t0, 1))
    write_json(folder / "campaign.json", campaign)

    meta = {"build": torch_build(), "machine": machine_info(), "suite_commit": suite_commit(opts["root"]),
            "profile": f"fuzz campaign ({args.profile} runs)", "seed": "random",
            "areas": opts["areas"], "started": campaign["created"], "campaign": campaign["id"],
            "duration_s": session["duration_s"], "interrupted": stopped_by == "interrupt",
            "status": session["status"], "pytest_exit_code": None}
    write_json(folder / "run.json", meta)
    try:
        divergences = divergence_list()
    except Exception as exc:
        divergences, problems = [], problems + [f"divergence registry: {type(exc).__name__}: {exc}"]
    results = build_results(folder, meta, rules, opts["areas"], opts["devices"], divergences)
    results["record_problems"] = problems + results["record_problems"]
    write_json(folder / "results.json", results)
    write_report(folder, results)
    from reports.findings import write_findings_page

    found = F.merge([(campaign["id"], live.state)])
    write_findings_page(found, folder)
    counts = F.summary_counts(found)
    print(f"torchconform fuzz: {session['status']} after {session['duration_s']:.0f}s, {len(session['rounds'])} "
          f"round(s): {counts['new']} new finding(s), {counts['registered']} registered divergence(s) hit, "
          f"{counts['hits']} hits\n  findings: {folder / 'findings.html'}\n  report:   {folder / 'index.html'}")
    return 130 if stopped_by == "interrupt" else (1 if counts["new"] else 0)

"""The `torchconform` command: option errors, results.json, interrupted runs, repro replay."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from torchconform.cli import main
from suite.results import add_unrecorded, merge_rows, read_records

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
CLI = [sys.executable, "-m", "torchconform"]
# The CLI under test is this checkout's, even where another checkout is pip-installed (editable).
CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


@pytest.mark.parametrize("argv, words", [
    (["run", "--area", "nope"], "unknown area 'nope'"),
    (["run", "--area", "module,nope"], "unknown area 'nope'"),
    (["run", "--profile", "turbo"], "unknown profile 'turbo'"),
    (["run", "--device", "warp9"], "unknown device 'warp9'"),
    (["run", "--device", "cpu,cuda:7"], "cuda:7"),
    (["run", "--jobs", "0"], "--jobs"),
    (["run", "--jobs", "many"], "positive integer or auto"),
    (["run", "--seed", "x"], "--seed"),
    (["run", "--tests", "/nonexistent/test_x.py"], "no such file"),
    (["run", "--tests", "/tmp"], "not inside the suite's checkout"),
    (["frobnicate"], "invalid choice"),
    ([], "required"),
    (["report"], "at least one run directory"),
    (["bench", "--passes", "0"], "--passes"),
])
def test_bad_options_are_one_line_and_exit_2(argv, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("torchconform: error: ") and words in err, err
    assert not list(tmp_path.iterdir()), "a rejected command must not write anything"


@pytest.mark.parametrize("argv, jobs", [
    ([], min(4, len(os.sched_getaffinity(0)))),  # a run of the areas: one process per core, at most 4
    (["--jobs", "auto"], len(os.sched_getaffinity(0))),
    (["--jobs", "3"], 3),
    (["--tests", str(FIXTURES / "cli_interrupt_test.py")], 1),  # pytest.log names the test an interrupt stopped
    (["--coverage"], 1),  # coverage measures one pytest process and its children
])
def test_default_jobs(argv, jobs):
    from torchconform.cli import _parser
    from torchconform.run import parse_options

    assert parse_options(_parser().parse_args(["run", *argv]))["jobs"] == jobs


def test_console_script_error_has_no_traceback(tmp_path):
    exe = shutil.which("torchconform")
    cmd = [exe] if exe else CLI
    proc = subprocess.run(cmd + ["run", "--area", "nope"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env=CHILD_ENV)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr + proc.stdout


def test_merge_rows_worst_status_wins_and_examples_add_up():
    rows = [
        {"id": "module.a", "area": "module", "device": "cpu", "status": "pass", "examples": 3, "repro": None,
         "detail": "", "test": "t1"},
        {"id": "module.a", "area": "module", "device": "cpu", "status": "fail", "examples": 2, "repro": "repro/x.py",
         "detail": "boom", "test": "t2"},
        {"id": "module.a", "area": "module", "device": "cuda", "status": "skipped", "examples": 0, "repro": None,
         "detail": "needs cuda", "test": "t1"},
        {"id": "module.b", "area": "module", "device": "cpu", "status": "known_divergence", "examples": 4,
         "repro": None, "detail": "module.x: why", "test": "t3"},
        {"id": "module.b", "area": "module", "device": "cpu", "status": "skipped", "examples": 0, "repro": None,
         "detail": "reached no example", "test": "t4"},
    ]
    merged = {(e["id"], e["device"]): e for e in merge_rows(rows)}
    a = merged[("module.a", "cpu")]
    assert (a["status"], a["examples"], a["repro"], a["detail"], a["tests"]) == ("fail", 5, "repro/x.py", "boom",
                                                                                 ["t1", "t2"])
    b = merged[("module.b", "cpu")]
    assert (b["status"], b["examples"], b["detail"]) == ("known_divergence", 4, "module.x: why")
    assert merged[("module.a", "cuda")]["status"] == "skipped"
    full = add_unrecorded(list(merged.values()), ["module.a", "module.c"], ["cpu", "cuda"], interrupted=False)
    missing = [e for e in full if e["id"] == "module.c"]
    assert [(e["device"], e["status"], e["detail"]) for e in missing] == [
        ("cpu", "skipped", "no test recorded this rule"), ("cuda", "skipped", "no test recorded this rule")]
    assert len([e for e in full if e["id"] == "module.b"]) == 1  # (module.b, cuda) is not in the selection


def test_truncated_record_line_is_reported_and_the_rest_kept(tmp_path):
    (tmp_path / "records").mkdir()
    good = {"id": "module.a", "area": "module", "device": "cpu", "status": "pass", "examples": 1, "repro": None,
            "detail": "", "test": "t"}
    (tmp_path / "records" / "1.jsonl").write_text(json.dumps(good) + "\n" + '{"id": "module.b", "sta')
    rows, problems = read_records(tmp_path)
    assert rows == [good] and len(problems) == 1 and "1.jsonl:2" in problems[0]


def test_area_without_tests_lists_its_rules_as_skipped_and_exits_0(tmp_path, monkeypatch, capsys):
    from conform.rules import RULES

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("torchconform.run.suite_paths", lambda root, areas, explicit: [])
    assert main(["run", "--area", "norm", "--device", "cpu"]) == 0
    [out] = list((tmp_path / "reports" / "out").iterdir())  # the default output directory
    results = json.loads((out / "results.json").read_text())
    assert results["pytest_exit_code"] == 5 and results["status"] == "complete (no tests collected)"
    norm_rules = sorted(r for r in RULES if r.startswith("norm."))
    assert sorted(e["id"] for e in results["rules"]) == norm_rules
    assert all(e["status"] == "skipped" and e["detail"] == "no test recorded this rule" for e in results["rules"])
    assert (out / "index.html").is_file() and "no tests yet" in capsys.readouterr().out


def _cli(args, cwd, **kw):
    return subprocess.run(CLI + args, cwd=cwd, capture_output=True, text=True, timeout=240, env=CHILD_ENV, **kw)


@pytest.mark.timeout(240)
def test_run_writes_results_report_and_a_repro_that_torchconform_repro_confirms(tmp_path):
    out = tmp_path / "run"
    proc = _cli(["run", "--area", "module", "--out", str(out), "-q",
                 "--tests", str(FIXTURES / "planted_test.py")], cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "== area module ==" in proc.stdout and "FAIL" in proc.stdout  # per-rule progress
    results = json.loads((out / "results.json").read_text())
    assert {"torch_version", "devices", "rules", "build", "suite_commit", "profile", "seed", "started",
            "duration_s", "areas", "pytest_exit_code", "interrupted", "divergences"} <= results.keys()
    assert results["profile"] == "ci" and results["seed"] == "derandomized" and results["devices"] == ["cpu"]
    assert results["pytest_exit_code"] == 1 and results["interrupted"] is False
    keys = [(e["id"], e["device"]) for e in results["rules"]]
    assert len(keys) == len(set(keys)), "one entry per rule and device"
    for entry in results["rules"]:
        assert {"id", "area", "device", "status", "examples", "repro", "detail"} <= entry.keys()
        assert entry["status"] in ("pass", "fail", "known_divergence", "skipped")
    [planted] = [e for e in results["rules"] if e["id"] == "module.selftest.planted"]
    assert planted["status"] == "fail" and planted["examples"] > 0 and planted["repro"]
    others = [e for e in results["rules"] if e["id"] != "module.selftest.planted"]
    assert all(e["status"] == "skipped" and e["detail"] == "no test recorded this rule" for e in others)
    assert (out / "index.html").is_file() and "module.selftest.planted" in (out / "index.html").read_text()

    replay = _cli(["repro", str(out / planted["repro"])], cwd=tmp_path)
    assert replay.returncode == 1 and "STILL REPRODUCES" in replay.stdout, replay.stdout + replay.stderr
    assert main(["repro", str(out / "repro" / "missing.py")]) == 2
    (tmp_path / "not_a_repro.py").write_text("print('hi')\n")
    assert main(["repro", str(tmp_path / "not_a_repro.py")]) == 2


@pytest.mark.timeout(120)
def test_interrupted_run_keeps_the_finished_results(tmp_path):
    """The promise: status "interrupted" (however pytest ended), the finished test's result kept, the test
    that was running named, nothing left behind.  The interrupt is sent once the hanging test has started
    (it leaves a marker file), not after a guessed delay, so the outcome does not depend on the load."""
    out = tmp_path / "run"
    marker = tmp_path / "hanging"
    proc = subprocess.Popen(CLI + ["run", "--area", "module", "--out", str(out),
                                   "--tests", str(FIXTURES / "cli_interrupt_test.py")],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**CHILD_ENV, "TORCHCONFORM_TEST_HANG_MARKER": str(marker)})
    try:
        deadline = time.monotonic() + 180
        while not marker.exists():
            assert time.monotonic() < deadline and proc.poll() is None, "the hanging test never started"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert proc.returncode == 1, output[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["interrupted"] is True and results["status"] == "interrupted"
    assert results["interrupted_in"].endswith("cli_interrupt_test.py::test_hangs[cpu]"), results["interrupted_in"]
    status = {e["id"]: e for e in results["rules"] if e["device"] == "cpu"}
    assert status["module.selftest.quick"]["status"] == "pass" and status["module.selftest.quick"]["examples"] == 1
    assert (out / "index.html").is_file()
    # The hanging test's process is gone: nothing of the run is left behind.
    leftover = subprocess.run(["pgrep", "-f", str(out)], capture_output=True, text=True).stdout.split()
    assert not [pid for pid in leftover if int(pid) != os.getpid()], leftover


def test_a_crash_is_pinned_on_the_test_pytest_announced_last(tmp_path):
    from torchconform.run import last_started_test, run_status

    log = tmp_path / "pytest.log"
    log.write_text("collecting ... collected 2 items\n\nsuite/x/test_a.py::test_one[cpu] PASSED  [ 50%]\n"
                   "suite/x/test_a.py::test_two[cpu] Fatal Python error: Segmentation fault\n\nCurrent thread:\n"
                   '  File "/x/torch/nn/functional.py", line 3 in f\n')
    assert last_started_test(log) == "suite/x/test_a.py::test_two[cpu]"
    assert run_status(-11, False) == "crashed (signal 11)" and run_status(2, True) == "interrupted"
    assert run_status(4, False).startswith("pytest error (exit 4)")


@pytest.mark.timeout(240)
def test_a_failing_check_fails_only_its_rule(tmp_path):
    out = tmp_path / "run"
    proc = _cli(["run", "--area", "module", "--out", str(out), "-q",
                 "--tests", str(FIXTURES / "attribution_test.py"), "--", "-k", "many_rules"], cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    status = {e["id"]: e for e in json.loads((out / "results.json").read_text())["rules"]}
    assert status["module.selftest.planted"]["status"] == "fail"
    assert status["module.selftest.honest"]["status"] == "pass" and status["module.selftest.honest"]["examples"] > 0
    too = status["module.selftest.planted_too"]
    assert too["status"] == "skipped" and "stopped at another rule's failure" in too["detail"]


@pytest.mark.timeout(240)
def test_an_error_no_check_claims_fails_every_declared_rule(tmp_path):
    out = tmp_path / "run"
    proc = _cli(["run", "--area", "module", "--out", str(out), "-q",
                 "--tests", str(FIXTURES / "attribution_test.py"), "--", "-k", "broken_harness"], cwd=tmp_path)
    assert proc.returncode == 1
    status = {e["id"]: e for e in json.loads((out / "results.json").read_text())["rules"]}
    assert status["module.selftest.honest"]["status"] == "fail"
    assert "the test itself broke" in status["module.selftest.honest"]["detail"]

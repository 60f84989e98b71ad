"""Self-tests of fuzzing campaigns: durations, the proportional plan, finding signatures and their merge,
bad input (one line, exit 2, nothing lost), and -- with a real redis-server -- a finding of one campaign
replayed first by another run pointed at the same database."""
from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reports.issues import upstream_issues
from suite import findings as F
from suite.fuzzplugin import events_of
from torchconform.cli import main
from torchconform.fuzz import parse_duration, plan
from torchconform.options import UsageError

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90s", 90), ("10m", 600), ("1h30m", 5400), ("1.5m", 90)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["0s", "0", "-5m", "ten minutes", ""])
def test_a_zero_negative_or_unreadable_budget_is_refused(text):
    with pytest.raises(UsageError):
        parse_duration(text)


def test_the_plan_shares_time_in_proportion_to_the_weights():
    tests = ["a", "b", "c"]
    seconds = {"a": 1.0, "b": 1.0, "c": 4.0}
    runs = [plan(tests, seconds, {"a": 3.0}, 100.0, random.Random(i)) for i in range(200)]
    mean = {t: sum(r[t] for r in runs) / len(runs) for t in tests}
    # shares 3:1:1 of 100 s -> 60 s, 20 s, 20 s; runs = share / seconds per run
    assert mean["a"] == pytest.approx(60, abs=1) and mean["b"] == pytest.approx(20, abs=1)
    assert mean["c"] == pytest.approx(5, abs=0.5)
    # a share worth a fraction of a run is a run with that probability (nothing is starved for good)
    tiny = [plan(tests, seconds, {}, 0.6, random.Random(i))["a"] for i in range(400)]
    assert 0.1 < sum(tiny) / len(tiny) < 0.3
    # breadth first: tests never run run once each, before any test runs twice
    assert plan(tests + ["d", "e"], seconds, {"a": 9.0}, 1000.0, random.Random(0)) == {"d": 1, "e": 1}


def _fail(test="suite/x/test_y.py::test_z[cpu]", rule="norm.train.r", mismatches=(), case="C(1)", **kw):
    return {"id": rule, "area": rule.split(".")[0], "device": "cpu", "status": "fail", "test": test,
            "mismatches": list(mismatches), "case": case, "note": "", "detail": "", "repro": None, **kw}


def _m(path, expected, actual):
    return {"rule": "r", "path": path, "expected": expected, "actual": actual, "tolerance": "exact"}


def test_signatures_ignore_numbers_indices_and_addresses_but_not_the_kind_of_deviation():
    sig = lambda row: F.signature(row)[1]  # noqa: E731
    exc = lambda msg, typ="RuntimeError": _fail(mismatches=[_m("['out']", "array(3,)=...", f"Raised(type='{typ}', message='{msg}')")])  # noqa: E731
    assert sig(exc("size 3 != 4 at 0x7f00ab")) == sig(exc("size 17 != 2 at 0x55ee01"))
    assert sig(exc("size 3 != 4")) != sig(exc("size 3 != 4", "ValueError"))
    assert sig(exc("size 3")) != sig(exc("cannot broadcast"))
    value = lambda path, act: _fail(mismatches=[_m(path, "array(2,)=[1. 2.]", act)])  # noqa: E731
    assert sig(value("[0] (1 of 2 elements differ; first: expected 1.0, got 1.5)", "array(2,)=[1.5 2.]")) == \
        sig(value("[1] (2 of 2 elements differ; first: expected 2.0, got 9.0)", "array(2,)=[3. 9.]"))
    assert F.signature(value("[0] (1 of 2 elements differ)", "array(2,)=[nan 2.]"))[1].endswith(":nan")
    assert F.signature(_fail(mismatches=[_m(".shape", "shape (2,)", "shape (3,)")]))[0] == "shape"
    assert sig(_fail(mismatches=[_m("['training']", "True", "False")])) != \
        sig(_fail(mismatches=[_m("['training']", "False", "True")]))
    # the same deviation reached by another test is another path taken
    assert sig(exc("x")) != sig({**exc("x"), "test": "suite/x/test_other.py::test_w[cpu]"})
    assert F.signature({"id": "a.b", "status": "known_divergence", "divergence": "entry-1"}) == \
        ("registered", "registered:entry-1")
    stale = _fail(mismatches=[], note="registered divergence entry-2 did not reproduce: torch 2.13 conforms")
    assert F.signature(stale)[0] == "stale-registry"
    broken = _fail(mismatches=[], detail="x failed: ...\nE   TypeError: f() got 3 arguments\n")
    assert F.signature(broken) == ("error", "suite/x/test_y.py::test_z|TypeError: f() got N arguments")


def test_a_finding_keeps_the_smallest_example_its_repro_and_counts_hits(tmp_path):
    (tmp_path / "repro").mkdir()
    for name in ("big.py", "small.py"):
        (tmp_path / "repro" / name).write_text(f"# {name}\n")
    state = F.new_state("c1")
    mm = [_m("[0] (1 of 1 elements differ)", "array(1,)=[1.]", "array(1,)=[2.]")]
    first = F.update(state, _fail(mismatches=mm, case="Case(a=123456, b=2)", repro="repro/big.py"), "t1", tmp_path)
    again = F.update(state, _fail(mismatches=mm, case="Case(a=1, b=2)", repro="repro/small.py"), "t2", tmp_path)
    assert first and again is None
    [f] = state["findings"].values()
    assert f["hits"] == 2 and f["first_seen"] == "t1" and f["case"] == "Case(a=1, b=2)" and f["new"]
    assert (tmp_path / f["repro"]).read_text() == "# small.py\n"
    F.update(state, {"id": "norm.a", "status": "known_divergence", "divergence": "e1", "test": "t"}, "t3", tmp_path)
    F.update(state, {"id": "norm.a", "status": "pass", "test": "t"}, "t3", tmp_path)
    other = F.new_state("c2")
    F.update(other, _fail(mismatches=mm, case="C()", repro=None), "t0", None)
    merged = F.merge([("c1", state), ("c2", other)])
    assert [(m["new"], m["hits"]) for m in merged] == [(True, 3), (False, 1)]
    assert merged[0]["first_seen"] == "t0" and merged[0]["sources"] == ["c1", "c2"] and merged[0]["case"] == "C()"
    assert merged[1]["registered"] == "e1"


def test_events_are_read_from_hypothesis_statistics():
    stats = ("  - during generate phase (1.00 seconds):\n    - Typical runtimes: ~ 1ms\n    - Events:\n"
             "      * 60.00%, backend=math outcome=ndarray\n      * 40.00%, fast path expected: True\n"
             "  - Stopped because settings.max_examples=60\n")
    assert events_of(stats) == ["backend=math outcome=ndarray", "fast path expected: True"]


def test_upstream_issue_numbers_are_found_in_evidence():
    assert upstream_issues("pytorch/pytorch#160064 (open); see https://github.com/pytorch/pytorch/issues/12345") == \
        ["pytorch/pytorch#160064", "pytorch/pytorch#12345"]
    assert upstream_issues("measured on CPU 2.4.1") == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("args, message", [
    (["--budget", "10m", "--area", "nosuch"], "unknown area 'nosuch'"),
    (["--budget", "0m"], "must be more than zero"),
    (["--budget=-3s"], "not a duration"),
    (["--budget", "1m", "--db", "redis://127.0.0.1:{port}"], "unreachable"),
    (["--budget", "1m", "-j", "0"], "positive integer"),
])
def test_bad_fuzz_options_are_one_line_and_exit_2(args, message, tmp_path, capsys):
    args = [a.format(port=_free_port()) for a in args]
    assert main(["fuzz", *args, "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "c").exists()


def test_a_folder_of_another_campaign_or_of_other_files_is_refused_and_kept(tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    (other / "campaign.json").write_text(json.dumps({"id": "abc123", "areas": ["module"]}))
    (other / "findings.json").write_text("{}")
    assert main(["fuzz", "--budget", "1m", "--out", str(other)]) == 2
    assert "belongs to campaign abc123" in capsys.readouterr().err
    assert main(["fuzz", "--budget", "1m", "--resume", str(other), "--area", "data"]) == 2
    assert "fuzzes module" in capsys.readouterr().err
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "results.json").write_text("{}")
    assert main(["fuzz", "--budget", "1m", "--out", str(plain)]) == 2
    assert main(["fuzz", "--budget", "1m", "--resume", str(plain)]) == 2
    assert "not a campaign folder" in capsys.readouterr().err
    assert sorted(p.name for p in other.iterdir()) == ["campaign.json", "findings.json"]
    assert [p.name for p in plain.iterdir()] == ["results.json"]


@pytest.fixture
def redis_url(tmp_path):
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server): the shared-database test "
                    "needs a real server")
    pytest.importorskip("redis", reason="the redis client is not installed (pip install 'torchconform[redis]')")
    import redis

    port = _free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        for _ in range(100):
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.timeout(120)
def test_a_campaign_finding_replays_first_in_another_run_sharing_the_redis_database(redis_url, tmp_path):
    log1, log2 = tmp_path / "first.log", tmp_path / "second.log"
    out = tmp_path / "campaign"
    proc = subprocess.run([sys.executable, "-m", "torchconform", "fuzz", "--budget", "20s", "--device", "cpu",
                           "--db", redis_url, "--out", str(out), "--tests", str(FIXTURES / "planted_rare_test.py")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=100,
                          env={**CHILD_ENV, "TORCHCONFORM_SELFTEST_LOG": str(log1)})
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    state = json.loads((out / "findings.json").read_text())
    [finding] = [f for f in state["findings"].values() if f["rule"] == "module.selftest.planted"]
    assert finding["case"] == "AddCase(a=500.0, b=1.0, fail_with=None)"  # shrunk to the boundary
    assert (out / finding["repro"]).is_file() and (out / "findings.html").is_file()
    assert log1.read_text().split()[0] != "500"  # the first campaign searched from scratch
    # Another run (another folder, another process) on the same Redis: the failure comes first.
    second = subprocess.run([sys.executable, "-m", "pytest", str(FIXTURES / "planted_rare_test.py"), "-q",
                             "-p", "no:cacheprovider", "--device", "cpu", "--hypothesis-profile", "dev"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=100,
                            env={**CHILD_ENV, "TORCHCONFORM_DB": redis_url, "TORCHCONFORM_SELFTEST_LOG": str(log2)})
    assert second.returncode == 1, second.stdout[-3000:]
    assert log2.read_text().split()[0] == "500"
    # the findings page and the upstream drafts of the campaign
    drafts = tmp_path / "issues"
    rep = subprocess.run([sys.executable, "-m", "torchconform", "report", str(out), "--out", str(tmp_path / "r"),
                          "--issues", str(drafts)], cwd=tmp_path, capture_output=True, text=True, timeout=100,
                         env=CHILD_ENV)
    assert rep.returncode == 0, rep.stdout + rep.stderr
    [draft] = drafts.glob("finding-module.selftest.planted-*.md")
    text = draft.read_text()
    assert "a + b == a + b + 1" in text and "AddCase(a=500.0" in text and "```python" in text
    assert (tmp_path / "r" / "findings.html").is_file()


def test_a_broken_test_is_one_finding_whatever_the_example_and_however_many_rules_it_declares():
    state = F.new_state()
    for run, case in enumerate(["Case(a=1)", "Case(a=22, b=(3,))"]):
        for rule in ("module.x.one", "module.x.two"):
            F.update(state, _fail(rule=rule, case=None, crash=f"OverlappingEntries: entries e1, e2 all apply to "
                                                                  f"module.x.one on {case}"), f"t{run}", None)
    [f] = state["findings"].values()
    assert f["kind"] == "error" and f["hits"] == 2 and f["rules"] == ["module.x.one", "module.x.two"]
    assert f["case"] == "Case(a=1)"  # the smallest example named in the crash lines


def test_every_finding_without_a_standalone_script_gets_a_replay_from_the_database(tmp_path):
    state = F.new_state()
    F.update(state, _fail(case=None, crash="OverlappingEntries: entries a, b all apply to r on Case(a=1)\nmore"), "t",
             tmp_path)
    F.update(state, _fail(rule="norm.other", mismatches=[_m("['v'][0] (1 of 1 elements differ)", "1e-08", "0.0")]),
             "t", tmp_path)
    F.complete_repros(state, tmp_path, "redis://db:6379/0")
    for f in state["findings"].values():
        script = (tmp_path / f["repro"]).read_text()
        compile(script, f["repro"], "exec")
        assert "redis://db:6379/0" in script and "suite/x/test_y.py::test_z[cpu]" in script


def test_every_registry_entry_renders_a_standalone_repro_for_its_finding():
    """A registered divergence's finding gets the entry's own minimal repro (the writer hides its errors,
    so this test is what notices a broken one)."""
    from suite.divergences import all_divergences
    from suite.findings import entry_repro_script

    broken = [e.id for e in all_divergences() if not (entry_repro_script(e.id) or "").startswith("#!")]
    assert not broken, broken

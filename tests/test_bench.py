"""Performance records: the comparison logic on synthetic pytest-benchmark JSON, and the benchmarks' gating."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reports.perf import BenchError, comparison, compare_runs, load_bench, merge_passes, resolve, svg_chart
from torchconform.cli import main

ROOT = Path(__file__).resolve().parents[1]
MACHINE = {"node": "vm", "machine": "x86_64", "cpu": {"brand_raw": "Test CPU", "count": 2}}


def bench_doc(build, medians, seed, spread=0.05, rounds=200, machine=MACHINE, passes=1):
    """A pytest-benchmark document whose per-round times are lognormal around each median."""
    rng = np.random.default_rng(seed)
    from pytest_benchmark.stats import Stats

    docs = []
    for _ in range(passes):
        benchmarks = []
        for name, median in medians.items():
            stats = Stats()
            for value in median * rng.lognormal(0.0, spread, rounds):
                stats.update(float(value))
            benchmarks.append({"group": None, "name": name, "fullname": f"suite/perf/test_perf.py::{name}",
                               "params": None, "param": None, "extra_info": {}, "options": {},
                               "stats": {**stats.as_dict(), "iterations": 1, "data": stats.data}})
        docs.append({"machine_info": machine, "commit_info": {}, "benchmarks": benchmarks,
                     "datetime": "2026-11-27T12:00:00", "version": "5.2.3",
                     "torchconform": {"build": build, "machine": None}})
    return merge_passes(docs) if passes > 1 else docs[0]


BASE = {"test_module_call[hooks]": 10e-6, "test_bn": 300e-6, "test_loader": 8e-3}


def save(path: Path, doc) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def verdicts(tmp_path, doc_a, doc_b):
    a, b = save(tmp_path / "a.json", doc_a), save(tmp_path / "b.json", doc_b)
    return {r["name"]: r for r in compare_runs(load_bench(a), load_bench(b))}


def test_two_runs_of_the_same_build_are_within_noise(tmp_path):
    rows = verdicts(tmp_path, bench_doc("2.13.0", BASE, 1), bench_doc("2.13.0", BASE, 2))
    assert {r["verdict"] for r in rows.values()} == {"within noise"}
    for r in rows.values():
        assert 0.9 < r["ratio"] < 1.1 and r["ci_low"] <= r["ratio"] <= r["ci_high"] and r["noise"] >= 0.10


def test_an_injected_slowdown_is_flagged_and_nothing_else(tmp_path):
    slow = dict(BASE, **{"test_module_call[hooks]": 10e-6 + 100e-6})  # a 100 us sleep in the hook
    rows = verdicts(tmp_path, bench_doc("2.13.0", BASE, 1), bench_doc("2.13.0", slow, 2))
    assert rows["test_module_call[hooks]"]["verdict"] == "regression"
    assert rows["test_module_call[hooks]"]["ratio"] == pytest.approx(11, rel=0.1)
    assert rows["test_bn"]["verdict"] == rows["test_loader"]["verdict"] == "within noise"


def test_a_slowdown_smaller_than_the_noise_is_not_flagged(tmp_path):
    # 30% slower, but the rounds scatter by ~50%: not distinguishable from noise.
    rows = verdicts(tmp_path, bench_doc("a", BASE, 1, spread=0.5), bench_doc("b", {k: v * 1.3 for k, v in BASE.items()},
                                                                            2, spread=0.5))
    assert {r["verdict"] for r in rows.values()} == {"within noise"}
    assert all(r["noise"] > 0.3 for r in rows.values())


def test_drift_between_passes_widens_the_noise(tmp_path):
    steady = bench_doc("a", BASE, 1, passes=3)
    assert all(len(b["extra_info"]["pass_medians"]) == 3 for b in steady["benchmarks"])
    assert all(b["stats"]["rounds"] == 600 for b in steady["benchmarks"])
    drifting = json.loads(json.dumps(steady))
    for b in drifting["benchmarks"]:
        b["extra_info"]["pass_medians"] = [1.0, 1.6, 1.1]
    rows = verdicts(tmp_path, drifting, bench_doc("b", {k: v * 1.4 for k, v in BASE.items()}, 2))
    assert all(r["noise"] >= 0.6 - 1e-9 and r["verdict"] == "within noise" for r in rows.values())


def test_a_machine_that_slowed_down_as_a_whole_is_not_a_regression(tmp_path):
    base = dict(BASE, test_machine_control=50e-6)
    slower = {k: v * 1.5 for k, v in base.items()}  # everything, the torch-free control too, is 50% slower
    rows = verdicts(tmp_path, bench_doc("a", base, 1), bench_doc("a", slower, 2))
    assert rows["test_machine_control"]["verdict"] == "control (machine drift)"
    others = [r for n, r in rows.items() if n != "test_machine_control"]
    assert all(r["verdict"] == "within noise" and r["noise"] >= 0.45 for r in others)
    # without the control the same numbers are flagged: the control is what tells machine drift from torch
    rows = verdicts(tmp_path, bench_doc("a", BASE, 1), bench_doc("a", {k: v * 1.5 for k, v in BASE.items()}, 2))
    assert {r["verdict"] for r in rows.values()} == {"regression"}


def test_bad_benchmark_inputs_name_the_file(tmp_path):
    good = save(tmp_path / "good.json", bench_doc("a", BASE, 1))
    other = save(tmp_path / "other.json", bench_doc("a", BASE, 2, machine={**MACHINE, "node": "elsewhere"}))
    with pytest.raises(BenchError, match=f"{other}: benchmark file from another machine"):
        compare_runs(load_bench(good), load_bench(other))
    with pytest.raises(BenchError, match="corrupt benchmark JSON"):
        load_bench(save(tmp_path / "corrupt.json", "{"))
    with pytest.raises(BenchError, match="not a pytest-benchmark JSON"):
        load_bench(save(tmp_path / "odd.json", {"x": 1}))
    with pytest.raises(BenchError, match="unknown build '9.9.9'.*builds saved for this machine: 2.13.0"):
        (tmp_path / "store" / "vm-1" / "2.13.0").mkdir(parents=True)
        resolve("9.9.9", tmp_path / "store", "vm-1")


def test_compare_by_build_name_through_the_cli(tmp_path, capsys, monkeypatch):
    store = tmp_path / "perf"
    monkeypatch.setattr("reports.perf.this_machine", lambda: "vm-1")
    save(store / "vm-1" / "2.13.0+cpu" / "20260101T000000Z.json", bench_doc("2.13.0+cpu", BASE, 1))
    save(store / "vm-1" / "2.14.1" / "20260101T000000Z.json",
         bench_doc("2.14.1", dict(BASE, test_bn=900e-6), 2))
    assert main(["bench", "--save-dir", str(store), "--compare", "2.13.0+cpu", "2.14.1"]) == 1
    out = capsys.readouterr().out
    assert "test_bn" in out and "regression" in out and "1 regression(s)" in out
    assert main(["bench", "--save-dir", str(store), "--compare", "2.13.0+cpu", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown build 'nope'" in err
    result = comparison("2.13.0+cpu", "2.14.1", store)
    assert result["regressions"] == 1 and result["svg"].startswith("<svg") and "test_bn" in result["svg"]
    # the report shows the comparison and its chart
    assert main(["report", "--bench", "2.13.0+cpu", "2.14.1", "--bench-dir", str(store),
                 "--out", str(tmp_path / "rep")]) == 0
    html = (tmp_path / "rep" / "index.html").read_text()
    assert 'id="performance"' in html and "<svg" in html and "regression" in html


def test_saved_files_are_readable_by_pytest_benchmark_compare(tmp_path, capsys, monkeypatch):
    from pytest_benchmark.cli import main as pytest_benchmark_main

    path = save(tmp_path / "a.json", bench_doc("a", BASE, 1, passes=2))
    monkeypatch.setattr(sys, "argv", ["pytest-benchmark", "compare", str(path)])
    try:
        pytest_benchmark_main()
    except SystemExit as exc:
        assert not exc.code
    assert "test_bn" in capsys.readouterr().out


def test_svg_chart_handles_extreme_ratios():
    rows = [{"name": "x<y", "ratio": 1e6, "noise": 0.1, "verdict": "regression"},
            {"name": "z", "ratio": 1e-6, "noise": 5.0, "verdict": "improvement"}]
    svg = svg_chart(rows)
    assert "x&lt;y" in svg and svg.count("<rect") == 4


def test_plain_pytest_skips_benchmarks():
    from types import SimpleNamespace

    from suite.perf.conftest import pytest_collection_modifyitems

    items = [SimpleNamespace(path=ROOT / "suite" / "perf" / "test_perf.py", marks=[]),
             SimpleNamespace(path=ROOT / "suite" / "module" / "test_x.py", marks=[])]
    for it in items:
        it.add_marker = it.marks.append
    options = {"benchmark_only": False, "benchmark_disable": False}
    config = SimpleNamespace(getoption=lambda name, default=None: options.get(name, default))
    pytest_collection_modifyitems(config, items)
    assert [len(it.marks) for it in items] == [1, 0] and "torchconform bench" in items[0].marks[0].kwargs["reason"]
    options["benchmark_only"] = True
    items[0].marks.clear()
    pytest_collection_modifyitems(config, items)
    assert items[0].marks == []


@pytest.mark.timeout(300)
def test_every_benchmark_body_runs():
    """What `pytest suite/perf --benchmark-disable` does: each benchmark body once, in the standalone mode
    that `bench --against` uses in another environment (--confcutdir: no suite plugin)."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "suite/perf", "-q", "-p", "no:cacheprovider",
                           "--confcutdir", "suite/perf", "--benchmark-disable", "-rs"], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
    # what CPU cannot run is skipped with its reason, never silently
    if not torch_has_cuda():
        assert "SyncBatchNorm needs CUDA" in proc.stdout


def torch_has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


# ---------------------------------------------------------------- interleaved comparison (bench --against)
def turns_doc(medians: dict[str, float], seed: int, turns: int = 120, per_turn: int = 4, spread: float = 0.05,
              tail: float = 0.0) -> dict:
    """One side's pytest-benchmark document from a turn-taking session: ``tail`` of the turns are
    preempted (2x slow), as on a loaded machine."""
    rng = np.random.default_rng(seed)
    benchmarks = []
    for name, median in medians.items():
        data = median * rng.lognormal(0.0, spread, turns * per_turn)
        slow = rng.random(turns) < tail
        data = (data.reshape(turns, per_turn) * np.where(slow, 2.0, 1.0)[:, None]).ravel()
        benchmarks.append({"name": name, "fullname": f"suite/perf/test_x.py::{name}", "extra_info":
                           {"per_turn": per_turn}, "stats": {"median": float(np.median(data)),
                                                               "data": [float(x) for x in data]}})
    return {"benchmarks": benchmarks}


def test_same_build_turns_are_within_noise_even_with_heavy_tails():
    from reports.paired import compare_rounds, slower

    base = {"test_a": 10e-6, "test_b": 300e-6, "test_machine_control": 100e-6}
    rows = compare_rounds([turns_doc(base, 1, tail=0.15), turns_doc(base, 2, tail=0.15)],
                          [turns_doc(base, 3, tail=0.15), turns_doc(base, 4, tail=0.15)])
    assert {r["verdict"] for r in rows} == {"within noise"} and not slower(rows)
    assert all(r["ci_low"] <= r["ratio"] <= r["ci_high"] and r["pairs"] == 240 for r in rows)
    assert rows[0]["level"] == pytest.approx(1 - 0.05 / 3)  # Bonferroni over the benchmarks


def test_a_ten_percent_slowdown_in_turns_is_slower_and_nothing_else():
    from reports.paired import compare_rounds, slower

    base = {"test_a": 10e-6, "test_b": 300e-6, "test_machine_control": 100e-6}
    rows = {r["name"]: r for r in compare_rounds([turns_doc(base, 1, tail=0.1)],
                                                 [turns_doc(dict(base, test_b=330e-6), 2, tail=0.1)])}
    assert rows["test_b"]["verdict"] == "slower" and rows["test_b"]["ratio"] == pytest.approx(1.1, abs=0.03)
    assert rows["test_a"]["verdict"] == "within noise"
    assert [r["name"] for r in slower(list(rows.values()))] == ["test_b"]


def test_a_significant_change_below_the_threshold_is_within_noise():
    from reports.paired import compare_rounds

    base = {"test_a": 10e-6}
    rows = compare_rounds([turns_doc(base, 1, turns=400, spread=0.01)],
                          [turns_doc({"test_a": 10.3e-6}, 2, turns=400, spread=0.01)])
    assert rows[0]["ci_low"] > 1 and rows[0]["verdict"] == "within noise"  # 3%: real, but below 5%


def test_too_few_turns_give_no_verdict():
    from reports.paired import compare_rounds

    rows = compare_rounds([turns_doc({"test_a": 1e-3}, 1, turns=2)], [turns_doc({"test_a": 2e-3}, 2, turns=2)])
    assert rows[0]["verdict"] == "too few turns"


def test_relative_slowdown_injection():
    from suite.perf.conftest import slowdown_for, slowed

    assert slowdown_for("test_norm_forward_backward[group_norm]", "test_norm_*[[]group_norm[]]:0.10") == 0.10
    assert slowdown_for("test_module_call[hooks]", "test_norm_*:0.10") == 0.0 and slowdown_for("x", None) == 0.0
    import time

    def work():
        end = time.perf_counter() + 0.002
        while time.perf_counter() < end:
            pass

    start = time.perf_counter()
    slowed(work, 0.5)()
    assert time.perf_counter() - start >= 0.003  # 2 ms of work + half of it spinning


def run_cli(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_against_a_bad_python_is_one_line_and_exit_2(tmp_path, capsys):
    code, _, err = run_cli(["bench", "--against", str(tmp_path / "nope" / "python")], capsys)
    assert code == 2 and err.count("\n") == 1 and "no such file" in err
    code, _, err = run_cli(["bench", "--against", str(tmp_path)], capsys)
    assert code == 2 and err.count("\n") == 1 and "not an executable" in err
    no_torch = tmp_path / "python"  # a python that cannot import torch (no site-packages)
    no_torch.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")
    no_torch.chmod(0o755)
    code, _, err = run_cli(["bench", "--against", str(no_torch)], capsys)
    assert code == 2 and err.count("\n") == 1 and "not an environment with torch" in err and "torch" in err
    code, _, err = run_cli(["bench", "--against", sys.executable, "--compare", "a", "b"], capsys)
    assert code == 2 and "exclude each other" in err
    code, _, err = run_cli(["bench", "--against", sys.executable, "--sessions", "0"], capsys)
    assert code == 2 and err.count("\n") == 1


@pytest.mark.timeout(300)
def test_same_build_against_itself_is_within_noise(tmp_path, capsys):
    """The self-test of the method: the installed build against itself, in turns.  Gated by verdict only."""
    store, out = tmp_path / "perf", tmp_path / "report"
    code, stdout, _ = run_cli(["bench", "--against", sys.executable, "--sessions", "1", "--max-time", "0.1",
                               "-k", "control or module_call", "--save-dir", str(store), "--out", str(out)], capsys)
    assert code == 0, stdout
    record = json.loads(next((store / "history").glob("*/*/*.json")).read_text())
    assert {r["name"] for r in record["rows"]} == {"test_machine_control", "test_module_call[no_hooks]",
                                                   "test_module_call[hooks]"}
    assert {r["verdict"] for r in record["rows"]} == {"within noise"} and record["slower"] == []
    assert all(r["pairs"] >= 5 for r in record["rows"])
    # each side's pytest-benchmark JSON stays readable by pytest-benchmark itself
    for side in ("a", "b"):
        run = load_bench(Path(record[side]["file"]))
        assert len(run.benchmarks) == 3 and run.build == record[side]["build"]
    html = (out / "index.html").read_text()
    assert 'id="performance"' in html and 'id="performance-history"' in html and html.count("<svg") >= 4


def history_record(build: str, ratio: float, verdict: str = "within noise") -> dict:
    row = {"name": "test_a", "ratio": ratio, "ci_low": ratio * 0.97, "ci_high": ratio * 1.03, "verdict": verdict,
           "median_a": 1e-5, "median_a_text": "10 us", "median_b_text": "11 us", "pairs": 50, "control": False}
    return {"kind": "interleaved", "datetime": f"2026120{len(build)}T000000Z", "machine": "vm-1",
            "a": {"build": "2.13.0+cpu", "python": "a", "file": "a.json"},
            "b": {"build": build, "python": "b", "file": "b.json"}, "rows": [row], "sessions": 2,
            "orders": {"AB": 1, "BA": 1}, "seconds": 1.0, "level": 0.95, "threshold": 0.05,
            "slower": ["test_a"] if verdict == "slower" else []}


def test_history_orders_releases_and_draws_one_chart_per_benchmark(tmp_path, capsys):
    from reports.history import history_view, record_path

    for build, ratio, verdict in [("2.14.1", 1.2, "slower"), ("2.9.1", 1.0, "within noise"),
                                  ("2.12.1", 0.9, "faster")]:
        path = record_path(tmp_path, "vm-1", "2.13.0+cpu", build)
        save(path, history_record(build, ratio, verdict))
    view = history_view(path.parent)
    assert view["releases"] == ["2.9.1", "2.12.1", "2.14.1"] and view["anchor"] == "2.13.0+cpu"
    (chart,) = view["charts"]
    assert chart["svg"].startswith("<svg") and chart["svg"].count("<circle") == 3 and "#d33" in chart["svg"]
    code, _, err = run_cli(["report", "--bench-history", str(path.parent), "--out", str(tmp_path / "r")], capsys)
    assert code == 0, err
    html = (tmp_path / "r" / "index.html").read_text()
    assert 'id="performance-history"' in html and "2.12.1" in html and "slower" in html
    code, _, err = run_cli(["report", "--bench-history", str(tmp_path / "none")], capsys)
    assert code == 2 and err.count("\n") == 1

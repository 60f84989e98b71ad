"""Performance records: the comparison logic on synthetic pytest-benchmark JSON, and the benchmarks' gating."""
from __future__ import annotations

import json
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


@pytest.mark.timeout(120)
def test_every_benchmark_body_runs():
    """What `pytest suite/perf --benchmark-disable` does, in-process: each benchmark body once."""
    from suite.perf import test_perf

    calls = []

    def benchmark(fn):
        calls.append(fn())

    test_perf.test_machine_control(benchmark)
    test_perf.test_dataloader_epoch(benchmark, 0)
    test_perf.test_dataloader_epoch(benchmark, 2)
    test_perf.test_batchnorm2d_forward_backward(benchmark)
    test_perf.test_mha_fast_path(benchmark)
    test_perf.test_mha_slow_path(benchmark)
    test_perf.test_module_call(benchmark, True)
    test_perf.test_module_call(benchmark, False)
    test_perf.test_state_dict_round_trip(benchmark)
    assert len(calls) == 9 and calls[0] == sum(i * i for i in range(2000))

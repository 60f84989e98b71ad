"""The release matrix's machinery: what a release's run leaves in reports/matrix/, and how the report reads
a divergence's history from it."""
from __future__ import annotations

import json

import pytest

from reports.html import first_seen_fixed_in
from torchconform.cli import main
from torchconform.options import UsageError
from torchconform.matrix import parse_releases, record_release


def _results(version: str) -> dict:
    return {
        "build": {"version": version, "cuda": "12.4"}, "machine": {"python": "3.11.7", "machine": "x86_64", "cpus": 2},
        "suite_commit": "abc", "profile": "ci", "started": "2026-12-03T08:00:00+00:00", "duration_s": 120.5,
        "counts": {"fail": 0, "fixed?": 0, "known_divergence": 1, "pass": 2, "skipped": 1, "examples": 9},
        "rules": [{"id": "norm.a", "device": "cpu", "status": "pass"}, {"id": "norm.b", "device": "cpu", "status": "known_divergence"}],
        "registry_outcomes": {"norm-x": {"cpu": "reproduces"}, "norm-y": {"cpu": "conforms"}},
    }


def test_a_release_run_is_recorded_as_small_committed_data(tmp_path):
    run = tmp_path / "torch2.6.0"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(_results("2.6.0+cu124")))
    path = record_release(run, "2.6.0", tmp_path / "matrix")
    data = json.loads(path.read_text())
    assert path.name == "2.6.0.json" and data["release"] == "2.6.0" and data["torch"] == "2.6.0+cu124"
    assert data["rules"] == {"cpu": {"norm.a": "pass", "norm.b": "known_divergence"}}
    assert data["registry"] == {"cpu": {"norm-x": "reproduces", "norm-y": "conforms"}}
    assert data["duration_s"] == 120.5 and "examples" not in data["counts"]


def test_a_run_of_another_release_is_not_recorded_under_this_one(tmp_path):
    run = tmp_path / "torch2.6.0"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(_results("2.7.1")))
    with pytest.raises(UsageError, match="not 2.6.0"):
        record_release(run, "2.6.0", tmp_path / "matrix")


def test_unknown_release_is_one_line_and_exit_2(capsys):
    assert main(["matrix", "--release", "2.6.0,1.13.1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown release '1.13.1'" in err
    assert parse_releases(["2.6.0", "2.15.0,2.6.0"]) == ["2.6.0", "2.15.0"]


def test_first_seen_and_fixed_in_come_from_the_releases_in_version_order():
    r, c = "reproduces", "conforms"
    assert first_seen_fixed_in({"2.10.0|cpu": c, "2.4.1|cpu": c, "2.6.0|cpu": r, "2.9.1|cpu": r}) == ("2.6.0", "2.10.0")
    assert first_seen_fixed_in({"2.4.1|cpu": r, "2.15.0|cpu": r}) == ("2.4.1", "")
    assert first_seen_fixed_in({"2.4.1|cpu": c}) == ("never reproduced", "")


def test_a_run_of_some_areas_updates_only_those_areas(tmp_path):
    full = _results("2.6.0+cu124")
    full["areas"] = ["module", "data", "norm", "parallel", "attention"]
    run = tmp_path / "torch2.6.0"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(full))
    record_release(run, "2.6.0", tmp_path / "matrix")
    part = _results("2.6.0+cu124")
    part["areas"] = ["attention"]
    part["rules"] = [{"id": "attention.a", "device": "cpu", "status": "pass"}]
    part["registry_outcomes"] = {"attention-z": {"cpu": "reproduces"}}
    (run / "results.json").write_text(json.dumps(part))
    data = json.loads(record_release(run, "2.6.0", tmp_path / "matrix").read_text())
    assert data["rules"]["cpu"] == {"attention.a": "pass", "norm.a": "pass", "norm.b": "known_divergence"}
    assert data["registry"]["cpu"] == {"attention-z": "reproduces", "norm-x": "reproduces", "norm-y": "conforms"}
    assert data["counts"]["pass"] == 2 and data["updates"][0]["areas"] == ["attention"]


def test_a_registry_only_run_updates_only_the_entries_it_measured(tmp_path):
    run = tmp_path / "torch2.6.0"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(_results("2.6.0+cu124")))
    with pytest.raises(UsageError, match="does not exist"):  # nothing measured yet to update
        record_release(run, "2.6.0", tmp_path / "matrix", registry_only=True)
    record_release(run, "2.6.0", tmp_path / "matrix")
    only = _results("2.6.0+cu124")
    only["rules"] = [{"id": "norm.a", "device": "cpu", "status": "skipped"}]  # deselected by -k, not measured
    only["registry_outcomes"] = {"norm-y": {"cpu": "reproduces"}, "norm-new": {"cpu": "reproduces"}}
    (run / "results.json").write_text(json.dumps(only))
    data = json.loads(record_release(run, "2.6.0", tmp_path / "matrix", registry_only=True).read_text())
    assert data["rules"]["cpu"] == {"norm.a": "pass", "norm.b": "known_divergence"}
    assert data["registry"]["cpu"] == {"norm-new": "reproduces", "norm-x": "reproduces", "norm-y": "reproduces"}
    assert data["updates"][-1]["registry_only"] is True


def test_registry_only_with_its_own_pytest_arguments_is_one_line_and_exit_2(capsys):
    assert main(["matrix", "--release", "2.6.0", "--registry-only", "--", "--area", "norm", "--", "-k", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--registry-only" in err


def test_a_matrix_run_records_the_release_and_merges_the_report(tmp_path, monkeypatch):
    """The whole loop without tox: the release's run is faked, the recording and the merged report are real."""
    import torchconform.matrix as matrix_module

    root = tmp_path / "checkout"
    (root / "torchconform").mkdir(parents=True)
    (root / "tox.ini").write_text("")
    monkeypatch.setattr(matrix_module, "__file__", str(root / "torchconform" / "matrix.py"))
    monkeypatch.setattr(matrix_module.shutil, "which", lambda name: "/usr/bin/tox")
    monkeypatch.setattr("suite.matrix.MATRIX_DIR", root / "reports" / "matrix")

    def fake_tox(cmd, cwd):
        run = root / matrix_module.OUT / "torch2.6.0"
        run.mkdir(parents=True)
        results = _results("2.6.0+cu124")
        results.update(areas=["norm"], devices=["cpu"], status="completed", seed="derandomized",
                       torch_version="2.6.0+cu124", registry_outcomes={})
        (run / "results.json").write_text(json.dumps(results))
        return 0

    monkeypatch.setattr(matrix_module.subprocess, "call", fake_tox)
    code = main(["matrix", "--release", "2.6.0"])
    assert (root / "reports" / "matrix" / "2.6.0.json").is_file()
    assert (root / matrix_module.OUT / "index.html").is_file() and code == 0

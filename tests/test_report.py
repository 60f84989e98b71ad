"""The HTML report: built from recorded results only, merges runs, survives bad inputs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conform.rules import AREAS
from reports.html import InputError, load_run, render_report
from torchconform.cli import main


def rule(id, device, status, examples=5, detail="", repro=None, **fields):
    return {"id": id, "area": id.split(".")[0], "device": device, "status": status, "examples": examples,
            "repro": repro, "detail": detail, "statement": f"statement of {id}", "citation": "torch/x.py: f",
            **fields}


FAIL_DETAIL = ("module.b at ['w'][0]: expected 1.0, got 2.0 [rtol=1.19e-07 atol=0 (float32)]\n"
               "case: AddCase(a=1.0, b=0.0, fail_with=None)\nrepro: repro/module.b-abc.py")
FAIL_FIELDS = {"mismatches": [{"rule": "module.b", "path": "['w'][0]", "expected": "1.0", "actual": "2.0",
                               "tolerance": "rtol=1.19e-07 atol=0 (float32)"}],
               "case": "AddCase(a=1.0, b=0.0, fail_with=None)", "note": ""}


def results(build, rules, **extra):
    return {"schema": 1, "torch_version": build, "devices": sorted({r["device"] for r in rules}),
            "build": {"name": build, "version": build, "git_version": "abc", "cuda": None},
            "profile": "ci", "seed": "derandomized", "suite_commit": "deadbeef", "areas": list(AREAS),
            "started": "2026-11-27T12:00:00+00:00", "duration_s": 1.5, "pytest_exit_code": 0,
            "interrupted": False, "status": "complete", "machine": {"node": "vm"}, "rules": rules,
            "divergences": [{"id": "module.div.one", "rule": "module.c", "torch": ">=2.13", "reason": "torch differs",
                             "evidence": "https://example.invalid/issue", "devices": ["*"],
                             "applies_to_this_build": True}], **extra}


def write_run(directory: Path, data) -> Path:
    directory.mkdir(parents=True)
    (directory / "results.json").write_text(data if isinstance(data, str) else json.dumps(data))
    return directory


@pytest.fixture
def two_builds(tmp_path):
    old = write_run(tmp_path / "torch213", results("2.13.0+cpu", [
        rule("module.a", "cpu", "pass"), rule("module.b", "cpu", "pass"),
        rule("module.c", "cpu", "known_divergence", detail="module.div.one: torch differs (2 of 5 examples)"),
        rule("norm.x", "cpu", "skipped", 0, "no test recorded this rule")]))
    new = write_run(tmp_path / "torch2141", results("2.14.1", [
        rule("module.a", "cpu", "pass"),
        rule("module.b", "cpu", "fail", detail=FAIL_DETAIL, repro="repro/module.b-abc.py", **FAIL_FIELDS),
        rule("module.c", "cpu", "known_divergence", detail="module.div.one: torch differs (1 of 5 examples)"),
        rule("norm.x", "cpu", "skipped", 0, "no test recorded this rule")]))
    (new / "repro").mkdir()
    (new / "repro" / "module.b-abc.py").write_text("# repro\n")
    return old, new


def test_merge_marks_rules_that_differ_between_builds(two_builds, tmp_path, capsys):
    out = tmp_path / "merged"
    assert main(["report", str(two_builds[0]), str(two_builds[1]), "--out", str(out)]) == 0
    html = (out / "index.html").read_text()
    assert "2.13.0+cpu" in html and "2.14.1" in html
    assert "1 rule(s) differ between builds" in html
    def row(rid):
        start = html.rindex("<tr", 0, html.index(f"<b>{rid}</b>"))
        return html[start:html.index("</tr>", start)]

    # the row says on which build (in column order) the outcome changed, and how
    assert 'data-differs="1"' in row("module.b") and "2.14.1 (cpu): pass -&gt; fail" in row("module.b")
    assert 'class="fail"' in row("module.b") and 'class="pass"' in row("module.b")
    assert 'data-differs="0"' in row("module.a") and "-&gt;" not in row("module.a")
    # the failure detail is split into path / expected / actual / tolerance, and the repro link resolves
    assert "<code>[&#39;w&#39;][0]</code>" in html and "rtol=1.19e-07" in html and "AddCase(a=1.0" in html
    assert 'href="../torch2141/repro/module.b-abc.py"' in html
    assert (out / "../torch2141/repro/module.b-abc.py").resolve().is_file()
    assert "https://example.invalid/issue" in html and "2.13.0+cpu / cpu" in html  # divergence and where it hit
    for area in AREAS:
        assert f'data-area="{area}"' in html


def test_bad_inputs_are_one_line_each_and_the_rest_still_renders(two_builds, tmp_path, capsys):
    corrupt = write_run(tmp_path / "corrupt", '{"rules": [')
    wrong = write_run(tmp_path / "wrong", {"hello": 1})
    missing = tmp_path / "nowhere"
    out = tmp_path / "merged"
    code = main(["report", str(two_builds[0]), str(corrupt), str(wrong), str(missing), "--out", str(out)])
    assert code == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("torchconform: error: ") for line in err)
    assert str(corrupt / "results.json") in err[0] and "corrupt JSON" in err[0]
    assert str(wrong / "results.json") in err[1] and str(missing) in err[2]
    html = (out / "index.html").read_text()
    assert "2.13.0+cpu" in html and "corrupt JSON" in html  # the good run renders, the errors are listed


def test_nothing_usable_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path / "a"), "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


def test_report_rebuilds_from_records_when_results_json_is_missing(tmp_path):
    run = tmp_path / "killed"
    (run / "records").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"areas": ["module"], "profile": "ci",
                                              "build": {"name": "2.13.0+cpu", "version": "2.13.0+cpu"}}))
    row = {"id": "module.selftest.x", "area": "module", "device": "cpu", "status": "pass", "examples": 3,
           "repro": None, "detail": "", "test": "t"}
    (run / "records" / "9.jsonl").write_text(json.dumps(row) + "\n{truncat")
    loaded = load_run(run)
    assert loaded.label == "2.13.0+cpu" and loaded.data["interrupted"] is True
    assert any(e["id"] == "module.selftest.x" and e["status"] == "pass" for e in loaded.data["rules"])
    assert any("rebuilt from records" in n for n in loaded.notes) and any("9.jsonl:2" in n for n in loaded.notes)
    render_report([loaded], run)
    assert "module.selftest.x" in (run / "index.html").read_text()


def test_same_build_twice_gets_two_columns(two_builds, tmp_path):
    again = write_run(tmp_path / "again", json.loads((two_builds[0] / "results.json").read_text()))
    runs = [load_run(two_builds[0]), load_run(again)]
    render_report(runs, tmp_path / "out")
    assert runs[1].label == "2.13.0+cpu (again)"


def test_load_run_rejects_bad_status(tmp_path):
    bad = write_run(tmp_path / "bad", {"rules": [{"id": "module.a", "device": "cpu", "status": "great"}]})
    with pytest.raises(InputError, match="rules\\[0\\]"):
        load_run(bad)


def test_failures_and_divergence_hits_are_read_from_record_fields_not_text(tmp_path):
    """The report reads a record's structured fields; the detail text (here deliberately misleading) is only
    shown, never parsed."""
    from reports.html import divergences, failures, frame, load_run

    mismatch = {"rule": "module.a", "path": "['out'][0]", "expected": "array(2,)=array([1., 2.])",
                "actual": "array(2,)=array([1., 3.])", "tolerance": "rtol=0 atol=0 (exact)"}
    run = load_run(write_run(tmp_path / "r", {"rules": [
        {"id": "module.a", "device": "cpu", "status": "fail", "detail": "x at y: expected 1, got 2 [z]",
         "mismatches": [mismatch], "case": "Case(seed=1)", "note": ""},
        {"id": "module.b", "device": "cpu", "status": "known_divergence", "detail": "other-id: text",
         "divergence": "module-b-entry"}],
        "divergences": [{"id": "module-b-entry", "rule": "module.b", "applies_to_this_build": True},
                        {"id": "other-id", "rule": "module.b", "applies_to_this_build": True}]}))
    df = frame([run], tmp_path)
    [failure] = failures(df)
    assert failure["mismatches"] == [{**mismatch, "tol": "rtol=0 atol=0 (exact)"}]
    assert failure["case"] == "Case(seed=1)" and failure["other"] == ""
    hits = {d["id"]: d["hit"] for d in divergences([run], df)}
    assert hits["module-b-entry"] and not hits["other-id"]

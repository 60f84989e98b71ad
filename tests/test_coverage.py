"""``torchconform run --coverage``: the summary of torch's code under test, and its option errors."""
from __future__ import annotations

from reports.coverage import FILES, PARTS, summarize
from suite.unreached import CUDA_ONLY, Unreached
from torchconform.cli import main

SOURCE = '''import x


def multi_head_attention_forward(a):
    if a:
        return 1
    return 2


def relu(a):
    return a
'''


def test_summary_counts_only_the_areas_parts_and_lists_unreached_ranges(tmp_path):
    root = tmp_path / "torch"
    for rel in FILES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(SOURCE)
    functional = str(root / "nn/functional.py")
    raw = {"files": {functional: {"executed_lines": [1, 4, 5, 6, 10], "missing_lines": [7, 11],
                                  "executed_branches": [[5, 6]], "missing_branches": [[5, 7]]}}}
    table = {row["file"]: row for row in summarize(raw, root, entries=[])}
    f = table["nn/functional.py"]
    assert "multi_head_attention_forward" in PARTS["nn/functional.py"]
    # relu (lines 10-11) is not the areas' code: neither its hit nor its miss counts
    assert (f["lines"], f["line_pct"]) == (4, 75.0) and (f["branches"], f["branch_pct"]) == (2, 50.0)
    assert f["unreached"] == [{"from": 7, "to": 7, "in": "multi_head_attention_forward", "lines": 1,
                               "reason": None, "why": None}]
    assert (f["explained"], f["open_pct"]) == (0, 75.0)
    # a file the run never imported: every statement is unreached
    never = table["utils/data/sampler.py"]
    assert never["line_pct"] == 0.0 and never["unreached"][0]["from"] == 1


def test_coverage_with_several_jobs_is_one_line_and_exit_2(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--coverage", "--jobs", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--coverage" in err[0]


def test_an_explained_range_carries_its_reason_and_leaves_the_open_percentage(tmp_path):
    root = tmp_path / "torch"
    for rel in FILES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(SOURCE)
    sampler = str(root / "utils/data/sampler.py")
    raw = {"files": {sampler: {"executed_lines": [1, 4, 5, 6], "missing_lines": [7, 10, 11]}}}
    entries = [Unreached("utils/data/sampler.py", "relu", CUDA_ONLY, "needs a GPU"),
               # only ranges whose first line contains the text: line 7 is "return 2"
               Unreached("utils/data/sampler.py", "multi_head_attention_forward", CUDA_ONLY, "x", contains="return 1")]
    row = {r["file"]: r for r in summarize(raw, root, entries=entries)}["utils/data/sampler.py"]
    by_function = {r["in"]: r for r in row["unreached"]}
    assert by_function["relu"]["reason"] == CUDA_ONLY and by_function["relu"]["why"] == "needs a GPU"
    assert by_function["multi_head_attention_forward"]["reason"] is None  # a gap, not explained
    assert row["explained"] == 2 and row["line_pct"] == 57.1 and row["open_pct"] == 80.0


def test_an_unknown_reason_is_refused():
    import pytest

    with pytest.raises(ValueError, match="reason"):
        Unreached("nn/modules/module.py", "Module.forward", "too hard", "x")

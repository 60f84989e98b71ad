"""``torchconform mutate``: argument errors (one line, exit 2) and the scoring/summary of recorded mutants,
on a tiny fixture -- no torch run, no mutation tool needed."""
from __future__ import annotations

import json

import pytest

from torchconform import cli, mutate


def _run(argv, capsys):
    code = cli.main(argv)
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize("argv, message", [
    (["mutate"], "give at least one --file"),
    (["mutate", "--file", "utils/data/nope.py"], "unknown file 'utils/data/nope.py'"),
    (["mutate", "--file", "nn/parallel/scatter_gather.py,bogus.py"], "unknown file 'bogus.py'"),
    (["mutate", "--file", "utils/data/sampler.py", "--bogus"], "unrecognized arguments"),
])
def test_argument_errors_are_one_line_exit_2(argv, message, capsys):
    code, err = _run(argv, capsys)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and err.startswith("torchconform: error:")


def test_missing_tool_is_a_usage_error(monkeypatch, capsys):
    real = mutate.importlib.util.find_spec
    monkeypatch.setattr(mutate.importlib.util, "find_spec",
                        lambda name, *a: None if name == "cosmic_ray" else real(name, *a))
    code, err = _run(["mutate", "--file", "utils/data/sampler.py"], capsys)
    assert code == 2 and "cosmic-ray is not installed" in err and err.count("\n") == 1


@pytest.mark.parametrize("extra, message", [
    (["--max-mutants", "0"], "--max-mutants must be a positive integer"),
    (["--max-mutants", "x"], "--max-mutants must be a positive integer"),
    (["--sample", "3"], "give --max-mutants too"),
    (["--max-mutants", "5", "--sample", "-1"], "--sample must be a non-negative integer"),
    (["--timeout", "0"], "--timeout must be a positive number"),
    (["--timeout", "soon"], "--timeout must be a positive number"),
])
def test_number_errors(extra, message, monkeypatch, capsys):
    monkeypatch.setattr(mutate.importlib.util, "find_spec", lambda name, *a: object())  # tool "installed"
    code, err = _run(["mutate", "--file", "utils/data/sampler.py", *extra], capsys)
    assert code == 2 and message in err and err.count("\n") == 1


def test_out_that_is_a_file_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(mutate.importlib.util, "find_spec", lambda name, *a: object())
    target = tmp_path / "f"
    target.write_text("")
    code, err = _run(["mutate", "--file", "utils/data/sampler.py", "--out", str(target)], capsys)
    assert code == 2 and "is not a directory" in err


def test_tests_for_files():
    assert mutate.tests_for("utils/data/sampler.py")[0] == "suite/data/test_samplers.py"
    assert mutate.tests_for("nn/functional.py") == ["suite/attention", "suite/norm"]
    assert mutate.tests_for("nn/modules/batchnorm.py") == ["suite/norm"]
    assert mutate.module_name("utils/data/_utils/fetch.py") == "torch.utils.data._utils.fetch"


SOURCE = '''\
import torch


@staticmethod
def f(x: int | None = None, *, y: "list[int]" = ()) -> int | None:
    z: int | None = (x +
                     1)
    if (x is not None and
            x > 2):
        return x - 1
    return z
'''


def test_static_filters():
    spans = mutate.annotation_spans(SOURCE)
    assert mutate.in_annotation((5, 11), spans)            # `int | None` of x
    assert mutate.in_annotation((5, 57), spans)            # the return annotation
    assert mutate.in_annotation((6, 7), spans)             # z's annotation
    assert not mutate.in_annotation((6, 21), spans)        # the value of z
    stmts = mutate.statement_lines(SOURCE)
    assert stmts[7] == (6,)                                # continuation line -> its statement
    assert stmts[9] == (8,)                                # a condition's second line -> the if
    assert stmts[10] == (10,)
    assert 4 in stmts[5]                                   # decorated def: the decorator line counts too
    assert mutate.covered(9, {8}, stmts) and not mutate.covered(10, {8}, stmts)


def _fixture(out, name, outcomes, **extra):
    mutants = [{"id": f"op#{i}", "line": 0, "outcome": o, "seconds": 2.0 if o in ("killed", "survived", "timeout") else None}
               for i, o in enumerate(outcomes)]
    data = {"file": name, "area": "data", "population": len(outcomes), "tests": ["suite/data"],
            "command": f"torchconform mutate --file {name}", "suite_commit": "abc", "torch": "2.13.0",
            "baseline_s": 10.0, "wall_s": 60, "complete": True, "sample_seed": None, "mutants": mutants, **extra}
    (out / mutate.json_name(name)).write_text(json.dumps(data))


def test_score_and_summary(tmp_path):
    _fixture(tmp_path, "utils/data/_utils/fetch.py",
             ["killed"] * 6 + ["timeout", "survived", "not-covered", "incompetent", "annotation"])
    _fixture(tmp_path, "nn/modules/container.py", ["killed", "survived"], sample_seed=1, population=900)
    (tmp_path / "notes.json").write_text("{}")                # not a per-file record: ignored
    summary = mutate.summarize(tmp_path)
    rows = {r["file"]: r for r in summary["files"]}
    fetch = rows["utils/data/_utils/fetch.py"]
    assert (fetch["killed"], fetch["timeout"], fetch["survived"], fetch["not-covered"], fetch["incompetent"],
            fetch["annotation"]) == (6, 1, 1, 1, 1, 1)
    assert fetch["scored"] == 9 and fetch["score"] == round(7 / 9, 3) and fetch["score_covered"] == 0.875
    assert fetch["seconds_per_run"] == 2.0
    lo, hi = fetch["ci95"]
    assert lo < 7 / 9 < hi
    assert rows["nn/modules/container.py"]["sampled"] and rows["nn/modules/container.py"]["score"] == 0.5
    md = (tmp_path / "summary.md").read_text()
    assert "| utils/data/_utils/fetch.py | data | 11 | 11 | 6 | 1 | 1 | 1 | 1 | 1 | 0.78 | 0.88 |" in md
    assert "| 0.50 | 0.50 | 0.10-0.91 |" in md and "| 0.78 | 0.88 |  |" in md  # the interval only for a sample
    assert "2 (sample)" in md and "`torchconform mutate --file nn/modules/container.py`" in md
    assert json.loads((tmp_path / "summary.json").read_text())["tool"] == "cosmic-ray"


def test_verdicts_triage_the_survivors(tmp_path):
    _fixture(tmp_path, "utils/data/_utils/fetch.py", ["killed"] * 6 + ["survived", "survived", "not-covered"])
    (tmp_path / "verdicts.csv").write_text(
        "file,id,line,verdict,reason\n"
        'utils/data/_utils/fetch.py,op#6,0,equivalent,"a length is never negative"\n'
        "utils/data/_utils/fetch.py,op#8,0,cuda-only,streams\n"
        "utils/data/_utils/fetch.py,op#7,99,closed,another line: not this mutant\n")
    row = mutate.summarize(tmp_path)["files"][0]
    assert row["triage"] == {"equivalent": 1, "cuda-only": 1, "deprecated": 0, "closed": 0, "needs-check": 0,
                             "untriaged": 1}
    assert row["score"] == round(6 / 9, 3) and row["score_non_equivalent"] == 0.75  # 6 of the 8 non-equivalent
    assert "| 1 / 1 / 0 / 0 / 0 / 1 | 0.75 |" in (tmp_path / "summary.md").read_text()


@pytest.mark.parametrize("text, message", [
    ("file,id,line,verdict\nx.py,op#0,3,maybe\n", "line 2: verdict 'maybe' is not one of equivalent"),
    ("file,id,line,verdict\nx.py,op#0,three,closed\n", "line 2: line 'three' is not a line number"),
    ("file,id,verdict\n", "no column line"),
    (b"\xff\xfe\x00", "unreadable")])
def test_bad_verdicts_are_refused_before_running(tmp_path, monkeypatch, capsys, text, message):
    monkeypatch.setattr(mutate.importlib.util, "find_spec", lambda name, *a: object())  # the tools look installed
    path = tmp_path / "verdicts.csv"
    path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    assert cli.main(["mutate", "--file", "utils/data/sampler.py", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_wilson_interval():
    assert mutate.wilson(0, 0) is None
    lo, hi = mutate.wilson(30, 60)
    assert 0.37 < lo < 0.38 and 0.62 < hi < 0.63


def test_select():
    population = [(i, i % 3 == 0) for i in range(30)]          # every third mutant is in an annotation
    assert mutate.select(population, None, None) == population
    first = mutate.select(population, 4, None)
    assert [i for i, _ in first] == [1, 2, 4, 5]
    sample = mutate.select(population, 5, 7)
    assert sample == mutate.select(population, 5, 7) and len(sample) == 5 and not any(a for _, a in sample)
    assert sample != mutate.select(population, 5, 8)
    assert len(mutate.select(population, 100, 1)) == 20         # more than there are: every runnable one


def test_suite_tree_ignores_other_paths():
    root = mutate._repo_root()
    tree = mutate.suite_tree(root)
    if tree is None:
        pytest.skip("not a git checkout")
    assert tree == mutate.suite_tree(root) and len(tree) == 40

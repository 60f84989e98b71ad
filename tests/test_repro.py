"""The repro writer: a planted divergence yields a standalone script that reproduces it."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from suite.repro import literal
from conform.outcome import Raised
from conform.tolerance import tolerance

ROOT = Path(__file__).resolve().parents[1]


def test_literals_round_trip():
    from tests.planted_torch import AddCase

    values = [1.5, float("nan"), float("-inf"), (1,), [1, (2, 3)], {"a": None}, Raised("KeyError", "x"),
              AddCase(1.0, 2.0), np.arange(6.0).reshape(2, 3), np.array([1, 2], dtype=np.int64), tolerance("float32")]
    namespace = {"np": np, "nan": float("nan"), "inf": float("inf"), "Raised": Raised, "AddCase": AddCase,
                 "Tol": type(tolerance("float32"))}
    for value in values:
        back = eval(literal(value), namespace)
        if isinstance(value, np.ndarray):
            assert back.dtype == value.dtype and np.array_equal(back, value)
        elif value != value:  # nan
            assert back != back
        else:
            assert back == value and type(back) is type(value)


def test_planted_divergence_yields_a_reproducing_standalone_script(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--hypothesis-profile", "ci",
                           "--conform-out", str(out), "tests/fixtures/planted_test.py"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout[-2000:]
    rows = [json.loads(line) for f in (out / "records").glob("*.jsonl") for line in f.read_text().splitlines()]
    [row] = rows
    assert row["status"] == "fail" and row["id"] == "module.selftest.planted" and row["repro"]
    script = out / row["repro"]
    text = script.read_text()
    code = [line for line in text.splitlines() if line.lstrip().startswith(("import ", "from "))]
    assert not [line for line in code if "suite" in line or "reference" in line], code
    # Run it from an empty directory with a clean path: it must need only torch and numpy.
    moved = tmp_path / "elsewhere" / script.name
    moved.parent.mkdir()
    moved.write_text(text)
    run = subprocess.run([sys.executable, "-I", str(moved)], cwd=moved.parent, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "expected: 1.0" in run.stdout and "actual:   0.0" in run.stdout and "REPRODUCES" in run.stdout



def test_a_repro_whose_torch_side_raises_reports_the_exception_as_the_outcome(tmp_path):
    """conform.check turns an escaping exception into Raised; the standalone script replays it the same way."""
    from suite.repro import write_repro
    from tests.planted_torch import AddCase, torch_add_refusing

    path = write_repro(tmp_path, "module.selftest.planted", AddCase(1.0, 2.0), 4.0, tolerance("float64"),
                       torch_add_refusing, "cpu")
    run = subprocess.run([sys.executable, "-I", str(path)], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 1 and "REPRODUCES" in run.stdout, run.stdout + run.stderr
    assert "ValueError" in run.stdout and "Traceback" not in run.stderr

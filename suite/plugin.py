"""pytest plugin: run options, the ``device`` parametrisation, the ``conform``
fixture that compares and records, and the per-test result records.

A test declares the rules it exercises with ``@pytest.mark.rules(...)`` and
calls ``conform.check(rule, case, expected, actual, tol, torch_fn)`` for every
comparison.  Records are appended (and flushed) to
``<conform-out>/records/<pid>.jsonl`` as each test finishes, so an interrupted
or crashed run keeps everything that finished before it.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from reference.rules import RULES, load_all
from suite import divergences, matrix
from suite.compare import EXACT, Mismatch, Tol, compare
from suite.devices import DeviceError, parse_devices


class ConformanceFailure(AssertionError):
    """torch's outcome differs from the reference (and no registered divergence explains it)."""


@dataclass
class RuleRecord:
    examples: int = 0
    known: int = 0
    failure: str | None = None
    divergence: str | None = None
    repro: str | None = None
    last_failing: tuple | None = None  # (case, expected, tol, torch_fn): the shrunk example, written out at the end
    fixed: str | None = None  # a registered divergence that no longer reproduced on a build beyond the matrix


@dataclass
class Conform:
    device: str
    out: Path | None
    test: str
    records: dict[str, RuleRecord] = field(default_factory=dict)
    # True: a registered divergence that stops reproducing fails the rule even on a build newer than
    # every measured release (--strict-registry); False: there it is reported as `fixed?`.
    strict_registry: bool = True
    # registry entry id -> how its repro came out here (suite/test_divergences.py)
    measurements: dict[str, str] = field(default_factory=dict)

    def measure(self, entry_id: str, outcome: str) -> None:
        self.measurements[entry_id] = outcome

    def check(self, rule: str, case: Any, expected: Any, actual: Any, tol: Tol = EXACT,
              torch_fn: Callable[[Any, str], Any] | None = None) -> None:
        """Compare one outcome; raise ConformanceFailure on an unexplained mismatch.

        ``torch_fn(case, device)`` must recompute ``actual`` from ``case`` alone,
        using only torch, numpy and the standard library: the repro writer embeds
        its module in the standalone script.
        """
        if rule not in RULES:
            raise KeyError(f"unregistered rule id {rule!r}")
        record = self.records.setdefault(rule, RuleRecord())
        record.examples += 1
        mismatches = compare(expected, actual, tol, rule)
        entry = divergences.find(rule, case, self.device, torch.__version__)
        if entry is not None:
            if entry.torch_does is None:
                diverges_as_registered = bool(mismatches)
            else:
                diverges_as_registered = not compare(entry.torch_does(case, expected), actual, tol, rule)
            if diverges_as_registered:
                record.known += 1
                record.divergence = entry.id
                return
            if not mismatches and not self.strict_registry and matrix.beyond_measured(torch.__version__):
                record.fixed = entry.id
                return
            if not mismatches:
                self._fail(record, rule, case, expected, tol, torch_fn,
                           f"registered divergence {entry.id} did not reproduce: torch {torch.__version__} "
                           f"conforms on {self.device}; narrow or close the entry", [])
        if mismatches:
            self._fail(record, rule, case, expected, tol, torch_fn, "", mismatches)

    def _fail(self, record: RuleRecord, rule: str, case: Any, expected: Any, tol: Tol,
              torch_fn: Callable | None, headline: str, mismatches: list[Mismatch]) -> None:
        lines = [headline] if headline else []
        lines += [str(m) for m in mismatches[:5]]
        if len(mismatches) > 5:
            lines.append(f"... and {len(mismatches) - 5} more mismatches")
        lines.append(f"case: {case!r}")
        record.failure = "\n".join(lines)
        record.last_failing = (case, expected, tol, torch_fn) if torch_fn is not None else None
        raise ConformanceFailure(record.failure)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("torchconform")
    group.addoption("--device", action="append", default=None,
                    help="torch device(s) to test, comma-separated or repeated (default: cpu + every accelerator)")
    group.addoption("--strict-registry", action="store_true", default=False,
                    help="a registered divergence that no longer reproduces fails even on a build newer than "
                         "every release of the matrix (default there: status `fixed?`)")
    group.addoption("--conform-out", default=None,
                    help="directory for result records and repro scripts (written by `torchconform run`)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "rules(*ids): rule ids this test exercises")
    try:
        config.conform_devices = parse_devices(config.getoption("--device"))
    except DeviceError as exc:
        raise pytest.UsageError(str(exc)) from None
    out = config.getoption("--conform-out")
    config.conform_out = Path(out) if out else None
    if config.conform_out is not None:
        (config.conform_out / "records").mkdir(parents=True, exist_ok=True)
    load_all()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "device" in metafunc.fixturenames:
        metafunc.parametrize("device", metafunc.config.conform_devices, ids=str)


@pytest.fixture
def conform(request: pytest.FixtureRequest) -> Conform:
    device = request.getfixturevalue("device") if "device" in request.fixturenames else "cpu"
    c = Conform(device=device, out=request.config.conform_out, test=request.node.nodeid,
                strict_registry=request.config.getoption("--strict-registry"))
    request.node.conform = c
    return c


def _declared_rules(item: pytest.Item) -> list[str]:
    ids: list[str] = []
    for mark in item.iter_markers("rules"):
        ids.extend(mark.args)
    for rid in ids:
        if rid not in RULES:
            raise KeyError(f"{item.nodeid}: unregistered rule id {rid!r}")
    return ids


def _device_of(item: pytest.Item) -> str:
    callspec = getattr(item, "callspec", None)
    return str(callspec.params.get("device", "cpu")) if callspec else "cpu"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    # Record once per test: at the call phase, or at setup when it never got there.
    if report.when == "call" or (report.when == "setup" and not report.passed):
        _record(item, report)


def _record(item: pytest.Item, report: pytest.TestReport) -> None:
    out: Path | None = item.config.conform_out
    conform: Conform | None = getattr(item, "conform", None)
    checked = conform.records if conform else {}
    device = conform.device if conform else _device_of(item)
    rules = list(dict.fromkeys(_declared_rules(item) + list(checked)))
    # A failing check names its rule; every other rule of the test keeps what it saw (pass, or not
    # reached).  Only an error that no check claimed (the test itself broke) fails every declared rule.
    attributed = any(r.failure is not None for r in checked.values())
    rows = []
    for rid in rules:
        rec = checked.get(rid, RuleRecord())
        if report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            status, detail = "skipped", reason.removeprefix("Skipped: ")
        elif rec.failure is not None:
            status, detail = "fail", rec.failure
            if out is not None and rec.last_failing is not None:
                from reports.repro import write_repro

                try:
                    rec.repro = str(write_repro(out / "repro", rid, *rec.last_failing, device).relative_to(out))
                    detail += f"\nrepro: {rec.repro}"
                except Exception as exc:  # a broken repro must not lose the result itself
                    detail += f"\nrepro could not be written: {type(exc).__name__}: {exc}"
        elif report.failed and not attributed:
            status, detail = "fail", f"{item.nodeid} failed: {report.longreprtext[-2000:]}"
        elif rec.known:
            entry = next(e for e in divergences.all_divergences() if e.id == rec.divergence)
            status, detail = "known_divergence", f"{entry.id}: {entry.reason} ({rec.known} of {rec.examples} examples)"
        elif rec.fixed:
            status, detail = "fixed?", (f"{rec.fixed} no longer reproduces on torch {torch.__version__}, newer than "
                                        f"every measured release: probably fixed upstream (--strict-registry fails it)")
        elif rec.examples:
            status, detail = "pass", ""
        elif report.failed:
            status, detail = "skipped", f"{item.nodeid} stopped at another rule's failure before reaching this one"
        else:
            status, detail = "skipped", f"{item.nodeid} reached no example of this rule"
        rows.append({"id": rid, "area": RULES[rid].area, "device": device, "status": status,
                     "examples": rec.examples, "repro": rec.repro, "detail": detail, "test": item.nodeid})
    if out is not None and rows:
        _append(out / "records" / f"{os.getpid()}.jsonl", rows)
    if out is not None and conform is not None and conform.measurements:
        _append(out / "registry" / f"{os.getpid()}.jsonl",
                [{"entry": e, "device": device, "outcome": o} for e, o in conform.measurements.items()])


def _append(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
        fh.flush()
        os.fsync(fh.fileno())

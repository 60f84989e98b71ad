"""pytest plugin: run options, the ``device`` parametrisation, the ``conform``
fixture that compares and records, and the per-test result records.

A test declares the rules it exercises with ``@pytest.mark.rules(...)``, asks
the reference for the case's expectations and calls
``conform.check(case, expects, run=torch_side.run_x)``: the plugin runs torch
once and compares each ``Expect`` (rule, expected, tolerance, part) with it, so
a repro replays exactly what was compared.  Records are structured (status,
mismatches with path / expected / actual / tolerance, divergence id, case) and
appended (and flushed) to
``<conform-out>/records/<pid>.jsonl`` as each test finishes, so an interrupted
or crashed run keeps everything that finished before it.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import pytest
import torch

from conform.expect import Expect
from conform.outcome import Mismatch, Raised, compare
from conform.rules import RULES
from conform.tolerance import EXACT, Tol
from reference import load_all
from suite import divergences, matrix
from suite.devices import DeviceError, parse_devices


class ConformanceFailure(AssertionError):
    """torch's outcome differs from the reference (and no registered divergence explains it)."""


@dataclass
class RuleRecord:
    examples: int = 0
    known: int = 0
    failure: str | None = None
    mismatches: list[dict] = field(default_factory=list)  # of the last failing example (Mismatch.to_dict)
    case: str | None = None  # repr of the last failing example's case
    note: str = ""  # what the failure is, beyond the mismatches (e.g. "registered divergence ... did not reproduce")
    divergence: str | None = None
    repro: str | None = None
    last_failing: tuple | None = None  # (case, expected, tol, run, key): the shrunk example, written out at the end
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

    def check(self, case: Any, expects: Expect | Iterable[Expect], run: Callable[[Any, str], Any]) -> Any:
        """Run torch once on ``case`` and compare every expectation with its part of the outcome.

        ``run(case, device)`` computes torch's outcome from ``case`` alone, with only torch, numpy, the
        standard library and ``conform`` (the repro writer inlines what it needs); an exception it lets
        escape is the outcome ``Raised``.  Every expectation is compared, so each rule gets its own
        verdict; a ConformanceFailure naming the failed rules is raised at the end.  Returns torch's
        outcome.
        """
        expects = [expects] if isinstance(expects, Expect) else list(expects)
        try:
            actual = run(case, self.device)
        except Exception as exc:  # an outcome, compared like any other
            actual = Raised.from_exception(exc)
        failures = []
        for expect in expects:
            try:
                self._check_rule(expect.rule, case, expect.expected, expect.select(actual), expect.tol, run,
                                 expect.key)
            except ConformanceFailure as exc:
                failures.append(str(exc))
        if failures:
            raise ConformanceFailure("\n\n".join(failures))
        return actual

    def _check_rule(self, rule: str, case: Any, expected: Any, actual: Any, tol: Tol,
                    run: Callable[[Any, str], Any] | None, key: Any = None) -> None:
        if rule not in RULES:
            raise KeyError(f"unregistered rule id {rule!r}")
        record = self.records.setdefault(rule, RuleRecord())
        record.examples += 1
        mismatches = compare(expected, actual, tol, rule)
        entry = divergences.find(rule, case, self.device, torch.__version__)
        if entry is not None:
            if not compare(entry.torch_does(case, expected), actual, tol, rule):
                record.known += 1
                record.divergence = entry.id
                return
            if not mismatches and not self.strict_registry and matrix.beyond_measured(torch.__version__):
                record.fixed = entry.id
                return
            if not mismatches:
                self._fail(record, rule, case, expected, tol, run, key,
                           f"registered divergence {entry.id} did not reproduce: torch {torch.__version__} "
                           f"conforms on {self.device}; narrow or close the entry", [])
        if mismatches:
            self._fail(record, rule, case, expected, tol, run, key, "", mismatches)

    def _fail(self, record: RuleRecord, rule: str, case: Any, expected: Any, tol: Tol,
              run: Callable | None, key: Any, headline: str, mismatches: list[Mismatch]) -> None:
        lines = [headline] if headline else []
        lines += [str(m) for m in mismatches[:5]]
        if len(mismatches) > 5:
            lines.append(f"... and {len(mismatches) - 5} more mismatches")
        lines.append(f"case: {case!r}")
        record.failure = "\n".join(lines)
        record.mismatches = [m.to_dict() for m in mismatches[:20]]
        record.note = headline
        record.case = repr(case)
        record.last_failing = (case, expected, tol, run, key) if run is not None else None
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
    crash = getattr(getattr(report.longrepr, "reprcrash", None), "message", None) if report.failed else None
    rows = []
    for rid in rules:
        rec = checked.get(rid, RuleRecord())
        if report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            status, detail = "skipped", reason.removeprefix("Skipped: ")
        elif rec.failure is not None:
            status, detail = "fail", rec.failure
            if out is not None and rec.last_failing is not None:
                from suite.repro import write_repro

                try:
                    case, expected, tol, run, key = rec.last_failing
                    rec.repro = str(write_repro(out / "repro", rid, case, expected, tol, run, device, key)
                                    .relative_to(out))
                    detail += f"\nrepro: {rec.repro}"
                except Exception as exc:  # a broken repro must not lose the result itself
                    detail += f"\nrepro could not be written: {type(exc).__name__}: {exc}"
        elif report.failed and not attributed:
            status, detail = "fail", f"{item.nodeid} failed: {report.longreprtext[-2000:]}"
            rec.note = detail
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
                     "examples": rec.examples, "repro": rec.repro, "detail": detail, "test": item.nodeid,
                     "mismatches": rec.mismatches, "case": rec.case, "note": rec.note if status == "fail" else "",
                     "divergence": rec.divergence or rec.fixed,
                     # the exception line of a test that broke (no check claimed it): a fuzzing signature
                     "crash": crash if status == "fail" and not rec.failure else None})
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

"""pytest plugin for one round of a fuzzing campaign (``torchconform fuzz`` loads it with ``-p``).

Two things the ordinary run does not need:

- **Shares.** ``TORCHCONFORM_FUZZ_SCHEDULE`` names a JSON file ``{nodeid: runs}``: each test runs that many
  times in this round (each run a fresh random seed of the profile's examples), a test given 0 (or not
  named) is deselected.  Repeats are freshly collected items with the *same* node id, so hypothesis uses the
  same example-database key as ``torchconform run`` does and a failure replays in either.  Without the
  variable every collected test runs once (the discovery round).
- **Telemetry.** One line per test run to ``<conform-out>/fuzz/<pid>.jsonl``: node id, seconds, outcome and the
  hypothesis ``event()`` labels it saw -- the coverage signal the scheduler rewards.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

SCHEDULE_ENV = "TORCHCONFORM_FUZZ_SCHEDULE"
# "    - Events:" then "      * 12.50%, label" in hypothesis' statistics text
_EVENT = re.compile(r"^\s+\* [\d.]+%, (.*)$")


def _schedule() -> dict[str, int] | None:
    path = os.environ.get(SCHEDULE_ENV)
    if not path:
        return None
    return {str(k): int(v) for k, v in json.loads(Path(path).read_text(encoding="utf-8")).items()}


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    schedule = _schedule()
    if schedule is None:
        return
    kept, dropped = [], []
    for item in items:
        runs = schedule.get(item.nodeid, 0)
        if runs <= 0:
            dropped.append(item)
            continue
        kept.append(item)
        for _ in range(runs - 1):
            # A fresh item (collect() again): re-running one item object would reuse its fixture state.
            kept += [c for c in item.parent.collect() if c.nodeid == item.nodeid][:1]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = kept


def events_of(statistics: str) -> list[str]:
    """The event labels in hypothesis' per-test statistics text (``item.hypothesis_statistics``)."""
    labels, inside = [], False
    for line in statistics.splitlines():
        if line.strip() == "- Events:":
            inside = True
            continue
        match = _EVENT.match(line) if inside else None
        if match:
            labels.append(match.group(1))
        elif inside and line.strip():
            inside = False
    return labels


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem):
    item.stash[_DURATION] = 0.0
    yield
    out = item.config.getoption("--conform-out", None)
    if not out:
        return
    row = {"test": item.nodeid, "seconds": round(item.stash.get(_DURATION, 0.0), 3),
           "outcome": item.stash.get(_OUTCOME, "?"),
           "events": sorted(set(events_of(getattr(item, "hypothesis_statistics", "") or "")))}
    path = Path(out) / "fuzz" / f"{os.getpid()}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")


_DURATION = pytest.StashKey[float]()
_OUTCOME = pytest.StashKey[str]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = (yield).get_result()
    item.stash[_DURATION] = item.stash.get(_DURATION, 0.0) + report.duration
    if report.when == "call" or not report.passed:
        item.stash[_OUTCOME] = report.outcome

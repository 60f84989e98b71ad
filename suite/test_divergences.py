"""Strictness of the known-divergence registry, and the matrix's measurement of it.

Every entry's minimal repro runs deterministically on every device it names, on
every build -- also where its declared range excludes the build -- and its outcome
(reproduces / conforms / differs otherwise) is recorded for the release matrix
(``suite/matrix.py``), from which the ranges are measured.

Where the range includes the build, ``conform.check`` records the entry as a known
divergence while torch still behaves as registered, and fails ("did not reproduce
... narrow or close the entry") the day torch changes -- or reports ``fixed?`` on a
build newer than every measured release, unless ``--strict-registry``.
"""
from __future__ import annotations

import os

import pytest
import torch

from conform.outcome import Raised, compare
from suite.divergences import all_divergences, applies_to_build
from suite.matrix import CONFORMS, DIFFERS, REPRODUCES

# `torchconform run --area A` sets TORCHCONFORM_AREAS: run only the selected areas' entries.
_AREAS = {a for a in os.environ.get("TORCHCONFORM_AREAS", "").split(",") if a}
ENTRIES = [e for e in all_divergences() if not _AREAS or e.rule.split(".", 1)[0] in _AREAS]


def repro_outcome(entry, device: str) -> tuple[str, object, object]:
    """Run the entry's repro once: (outcome, expected, actual)."""
    case = entry.repro
    expect = entry.expectation(case, device)
    expected, tol = expect.expected, expect.tol
    try:
        actual = expect.select(entry.run(case, device))
    except Exception as exc:  # e.g. an API this release lacks: recorded, not raised
        actual = Raised.from_exception(exc)
    try:
        registered = not compare(entry.torch_does(case, expected), actual, tol)
    except Exception:  # torch_does assumes an outcome shape this build does not give: not as registered
        registered = False
    if registered:
        return REPRODUCES, expected, actual
    return (CONFORMS if not compare(expected, actual, tol) else DIFFERS), expected, actual


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.id)
def test_registered_divergence_still_reproduces(entry, device, conform):
    if "*" not in entry.devices and device.split(":")[0] not in entry.devices:
        pytest.skip(f"{entry.id} is registered for {', '.join(entry.devices)} only")
    case = entry.repro
    if not entry.when(case):
        # e.g. a NumPy-2-only bug under NumPy 1.x; a predicate its own repro never satisfies is caught by
        # tests/test_registry.py::test_every_registered_entry_is_well_formed
        pytest.skip(f"{entry.id}: in this environment its repro lies outside its predicate")
    outcome, expected, actual = repro_outcome(entry, device)
    conform.measure(entry.id, outcome)
    if not applies_to_build(entry.torch, torch.__version__):
        pytest.skip(f"{entry.id} is registered for torch {entry.torch}; here its repro {outcome}")
    conform.check(case, [entry.expectation(case, device)], run=entry.run)
    record = conform.records[entry.rule]
    assert record.known == 1 or record.fixed, f"{entry.id} no longer diverges on torch {torch.__version__}"

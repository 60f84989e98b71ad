"""Strictness of the known-divergence registry.

Every entry that applies to the installed torch runs its minimal repro
deterministically on every device it names.  ``conform.check`` records it as a
known divergence while torch still behaves as registered, and fails ("did not
reproduce ... narrow or close the entry") the day torch changes.
"""
from __future__ import annotations

import os

import pytest
import torch

from suite.divergences import all_divergences, applies_to_build

# `torchconform run --area A` sets TORCHCONFORM_AREAS: run only the selected areas' entries.
_AREAS = {a for a in os.environ.get("TORCHCONFORM_AREAS", "").split(",") if a}
ENTRIES = [e for e in all_divergences() if applies_to_build(e.torch, torch.__version__)
           and (not _AREAS or e.rule.split(".", 1)[0] in _AREAS)]


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.id)
def test_registered_divergence_still_reproduces(entry, device, conform):
    if "*" not in entry.devices and device.split(":")[0] not in entry.devices:
        pytest.skip(f"{entry.id} is registered for {', '.join(entry.devices)} only")
    case = entry.repro
    assert entry.when(case), f"{entry.id}: its own repro case does not satisfy its predicate"
    conform.check(entry.rule, case, entry.reference_fn(case), entry.torch_fn(case, device),
                  tol=entry.tol_for(case), torch_fn=entry.torch_fn)
    assert conform.records[entry.rule].known == 1, f"{entry.id} no longer diverges on torch {torch.__version__}"

"""Torch side of the planted divergence (see tests/planted.py)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from conform.outcome import Raised


@dataclass(frozen=True)
class AddCase:
    a: float
    b: float
    fail_with: str | None = None


def torch_add(case: AddCase, device: str):
    if case.fail_with:
        return Raised(case.fail_with, "planted")
    return (torch.tensor(case.a, dtype=torch.float64, device=device) + case.b).item()

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


def torch_add_refusing(case: AddCase, device: str):
    """A torch side that lets an exception escape (the suite records it as the outcome ``Raised``)."""
    raise ValueError(f"planted refusal of {case.a} + {case.b} on {device}")

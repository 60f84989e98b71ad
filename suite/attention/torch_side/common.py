"""What every attention runner shares: exceptions as outcomes, and masks as tensors."""
from __future__ import annotations

import functools

import numpy as np
import torch

from conform.outcome import Raised


def outcome(fn):
    """Any exception escaping torch becomes an outcome (``Raised``): it is compared with the reference and
    attributed to the rule being checked, also when a repro script replays the runner alone."""

    @functools.wraps(fn)
    def run(case, device: str, *args, **kwargs):
        try:
            return fn(case, device, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 -- every exception is an outcome
            return Raised.from_exception(exc)

    return run


def mask_tensor(kind: str, masked: np.ndarray | None, add: np.ndarray | None, dtype: torch.dtype,
                device: str, attend_true: bool = False) -> torch.Tensor | None:
    """The mask torch is given: bool (True = masked out, or = attend with ``attend_true``), int, or float values."""
    if masked is None:
        return None
    if kind in ("bool", "causal"):
        t = torch.from_numpy(~masked if attend_true else masked.copy())
    elif kind == "int":
        t = torch.from_numpy(masked.astype(np.int64))
    else:
        t = torch.from_numpy(add).to(dtype)
    return t.to(device)

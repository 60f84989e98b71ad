"""What every attention runner shares: exceptions as outcomes, and masks as tensors."""
from __future__ import annotations

import contextlib
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


class Passthrough(torch.Tensor):
    """A Tensor subclass that changes nothing: its default ``__torch_function__`` makes torch take the
    overridable (``has_torch_function``) route, as any user subclass does."""


@contextlib.contextmanager
def fastpath_enabled(enabled: bool):
    """torch.backends.mha.set_fastpath_enabled(enabled) for the block, restored after."""
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(enabled)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)

"""Helpers the norm runners share: exact conversions between the cases' numpy inputs and tensors, and
building / presetting a BatchNorm-like module."""
from __future__ import annotations

import numpy as np
import torch

from suite.norm.cases import dtype_of


def to_torch(arr: np.ndarray, dtype: str, device: str) -> torch.Tensor:
    # values are already representable in ``dtype``: the conversions are exact
    return torch.tensor(arr, dtype=torch.float64).to(dtype_of(dtype)).to(device)


def to_np(t: torch.Tensor | None):
    # copy: for float64 CPU tensors .to() is a no-op and numpy() would alias a buffer that later calls update
    return None if t is None else t.detach().to("cpu", torch.float64).numpy().copy()


def grad_of(p: torch.Tensor | None):
    """A parameter's gradient, None where the module has no such parameter."""
    return None if p is None else to_np(p.grad)


def bn_kwargs(eps, momentum, affine, track, bias=True) -> dict:
    kw = {"eps": eps, "momentum": momentum, "affine": affine, "track_running_stats": track}
    if not bias:
        kw["bias"] = False  # only drawn where cases.BN_HAS_BIAS_KW
    return kw


def preset(m: torch.nn.Module, case, inputs: dict, device: str) -> None:
    """Copy a case's drawn parameters and running stats into ``m`` and set its counter to case.nbt_before
    (a BNCase or SyncCase: cases.BNOptions)."""
    with torch.no_grad():
        if case.affine:
            m.weight.copy_(to_torch(inputs["weight"], case.dtype, device))
            if m.bias is not None:
                m.bias.copy_(to_torch(inputs["bias"], case.dtype, device))
        if case.track:
            m.running_mean.copy_(to_torch(inputs["running_mean"], case.dtype, device))
            m.running_var.copy_(to_torch(inputs["running_var"], case.dtype, device))
            m.num_batches_tracked.fill_(case.nbt_before)

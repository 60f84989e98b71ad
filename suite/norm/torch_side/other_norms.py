"""Runner of reference/norm/other_norms.py: InstanceNorm, GroupNorm, LayerNorm."""
from __future__ import annotations

import warnings

import torch

from conform.outcome import Raised
from suite.norm.cases import OtherNormCase, dtype_of, make_other_inputs
from suite.norm.torch_side.common import grad_of, to_np, to_torch


def build_other(case: OtherNormCase) -> torch.nn.Module:
    if "InstanceNorm" in case.kind:
        kw = {"eps": case.eps, "affine": case.affine, "track_running_stats": case.track, "momentum": case.momentum}
        if case.kind.startswith("Lazy"):
            return getattr(torch.nn, case.kind)(**kw)
        C = case.num_features if case.num_features is not None else case.shape[1]
        return getattr(torch.nn, case.kind)(C, **kw)
    kw = {} if case.bias else {"bias": False}
    if case.kind == "GroupNorm":
        return torch.nn.GroupNorm(case.groups, case.shape[1], eps=case.eps, affine=case.affine, **kw)
    return torch.nn.LayerNorm(tuple(case.shape[-case.norm_dims:]), eps=case.eps, elementwise_affine=case.affine,
                              **kw)


def run_other_norm(case: OtherNormCase, device: str) -> dict | Raised:
    """One forward: the output (and InstanceNorm's running stats when tracked); with ``case.backward`` the
    gradients instead (None for a parameter the module does not have)."""
    inputs = make_other_inputs(case)
    try:
        m = build_other(case).to(device=device, dtype=dtype_of(case.dtype))
        with torch.no_grad():
            for name in ("weight", "bias", "running_mean", "running_var"):
                t = getattr(m, name, None)
                if isinstance(t, torch.Tensor) and not case.kind.startswith("Lazy"):  # Lazy: the initial values
                    t.copy_(to_torch(inputs[name], case.dtype, device))
        m.train(case.training)
        x = to_torch(inputs["x"], case.dtype, device).requires_grad_(case.backward)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            y = m(x)
    except (ValueError, RuntimeError) as exc:
        return Raised.from_exception(exc)
    warned = any(issubclass(w.category, UserWarning) and "num_features" in str(w.message) for w in caught)
    if case.backward:
        y.backward(to_torch(inputs["dy"], case.dtype, device))
        return {"grad_input": to_np(x.grad), "grad_weight": grad_of(getattr(m, "weight", None)),
                "grad_bias": grad_of(getattr(m, "bias", None))}
    if "InstanceNorm" not in case.kind:
        return {"y": to_np(y)}
    if case.track:
        return {"y": to_np(y), "warned": warned, "running_mean": to_np(m.running_mean),
                "running_var": to_np(m.running_var)}
    return {"y": to_np(y), "warned": warned}

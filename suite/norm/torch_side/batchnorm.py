"""Runners of reference/norm/batchnorm.py and backward.py: construction, defaults, one forward (and
backward) of a fresh BatchNorm-like module."""
from __future__ import annotations

import warnings

import torch

from conform.outcome import Raised
from suite.norm.cases import BNCase, ConstructCase, DefaultsCase, dtype_of, make_bn_inputs
from suite.norm.torch_side.common import bn_kwargs, grad_of, preset, to_np, to_torch


def build_bn(case: BNCase, device: str) -> torch.nn.Module:
    cls = getattr(torch.nn, case.kind)
    kw = bn_kwargs(case.eps, case.momentum, case.affine, case.track, case.bias)
    m = cls(**kw) if case.kind.startswith("Lazy") else cls(case.num_features, **kw)
    return m.to(device=device, dtype=dtype_of(case.dtype))


def run_bn(case: BNCase, device: str) -> dict | Raised:
    """One forward of a fresh module with preset parameters and running stats; with ``case.backward`` the
    gradients for the drawn grad_output (None for a parameter the module does not have)."""
    inputs = make_bn_inputs(case)
    m = build_bn(case, device)
    preset(m, case, inputs, device)
    m.train(case.training)
    x = to_torch(inputs["x"], case.dtype, device).requires_grad_(case.backward)
    try:
        y = m(x)
    except (ValueError, RuntimeError) as exc:  # an expected error is an outcome, also in a repro script
        return Raised.from_exception(exc)
    out = {"dtype": str(y.dtype).removeprefix("torch."), "shape": list(y.shape), "y": to_np(y)}
    if case.track:
        out.update(running_mean=to_np(m.running_mean), running_var=to_np(m.running_var),
                   num_batches_tracked=int(m.num_batches_tracked))
    if case.backward and x.numel():
        y.backward(to_torch(inputs["dy"], case.dtype, device))
        out.update(grad_input=to_np(x.grad), grad_weight=grad_of(m.weight), grad_bias=grad_of(m.bias))
    return out


def run_construct(case: ConstructCase, device: str) -> dict:
    cls = getattr(torch.nn, case.kind)
    # built with the factory keywords (not moved after): every tensor must be made on the device
    m = cls(case.num_features, **bn_kwargs(1e-5, 0.1, case.affine, case.track, case.bias), device=device,
            dtype=dtype_of(case.dtype))
    out = {"weight": to_np(m.weight), "bias": to_np(m.bias),
           "device_types": sorted({t.device.type for t in (*m.parameters(), *m.buffers())})}
    if case.track:
        out["buffers"] = {"running_mean": to_np(m.running_mean), "running_var": to_np(m.running_var),
                          "num_batches_tracked": int(m.num_batches_tracked),
                          "dtypes": [str(t.dtype).removeprefix("torch.") for t in
                                     (m.running_mean, m.running_var, m.num_batches_tracked)]}
    else:
        out["buffers"] = {"running_mean": m.running_mean, "running_var": m.running_var,
                          "num_batches_tracked": m.num_batches_tracked}
    return out


def run_defaults(case: DefaultsCase, device: str) -> dict:
    """The documented defaults as the constructed module holds them."""
    if case.kind == "LayerNorm":
        m = torch.nn.LayerNorm(case.num_features, device=device)
        return {"eps": m.eps, "elementwise_affine": m.elementwise_affine, "has_bias": m.bias is not None}
    if case.kind == "GroupNorm":
        m = torch.nn.GroupNorm(1, case.num_features, device=device)
        return {"eps": m.eps, "affine": m.affine, "has_bias": m.bias is not None}
    lazy = case.kind.startswith("Lazy")
    cls = getattr(torch.nn, case.kind)
    m = cls(device=device) if lazy else cls(case.num_features, device=device)
    out = {"eps": m.eps, "momentum": m.momentum, "affine": m.affine,
           "track_running_stats": m.track_running_stats, "has_bias": m.bias is not None}
    if lazy:  # the first call of a (2, num_features, 2, ...) input: what it materialized
        x = torch.linspace(-1.0, 1.0, 2 * case.num_features * 2 ** int(case.kind[-2]), device=device)
        with warnings.catch_warnings():  # a num_features warning is another rule's (norm.instance.channels)
            warnings.simplefilter("ignore")
            m(x.reshape((2, case.num_features) + (2,) * int(case.kind[-2])))
        out["after_first_call"] = {name: None if getattr(m, name, None) is None else list(getattr(m, name).shape)
                                   for name in ("weight", "bias", "running_mean", "running_var")}
    return out

"""RMSNorm: construction, forward (with the documented default eps), backward.

Source: the RMSNorm docstring (torch/nn/modules/normalization.py; docs.pytorch.org
.../generated/torch.nn.RMSNorm.html): y = x / RMS(x) * gamma, RMS(x) = sqrt(eps + mean(x^2)) over the last
len(normalized_shape) dims; an int normalized_shape is a singleton list; gamma is initialized to ones.

The default eps (eps=None) is documented as the machine epsilon of the computation type; before 2.11 the
docs said ``torch.finfo(x.dtype).eps``.  Both readings agree for float32 and float64, the only dtypes the
suite draws eps=None with (float16/bfloat16 would need a per-release reading).
"""
from __future__ import annotations

import numpy as np

from conform.expect import Expect
from conform.rules import rule
from reference.norm import tolerances as tols
from reference.norm.core import part

RMS_DOC = "https://docs.pytorch.org/docs/stable/generated/torch.nn.RMSNorm.html"

RMS_CONSTRUCT = rule(
    "norm.rms.construct",
    "RMSNorm(normalized_shape): an int is a singleton shape; elementwise_affine=True gives weight = ones of "
    "normalized_shape (reset_parameters restores ones), False registers weight as None; no bias.",
    f"{RMS_DOC} (normalized_shape, elementwise_affine)")
RMS_FORWARD = rule(
    "norm.rms.forward",
    "RMSNorm: y = x / sqrt(eps + mean(x^2)) * weight, the mean over the last len(normalized_shape) dims.",
    f"{RMS_DOC} (formula)")
RMS_EPS_DEFAULT = rule(
    "norm.rms.eps_default",
    "RMSNorm with eps=None uses the machine epsilon: torch.finfo(float32).eps for float32 input, "
    "torch.finfo(float64).eps for float64 input.",
    f"{RMS_DOC} (eps)")
RMS_BACKWARD = rule(
    "norm.rms.backward",
    "RMSNorm backward: with r = 1/RMS(x), g = dy * weight: dx = r * (g - x * r^2 * mean(g * x)) over the "
    "normalized dims; dweight = sum(dy * x * r) over the leading dims.",
    "arXiv:1910.07467; derivatives.yaml: _fused_rms_norm / the composite rms_norm")

FINFO_EPS = {"float32": float(np.finfo(np.float32).eps), "float64": float(np.finfo(np.float64).eps)}


def eps_of(case) -> float:
    return FINFO_EPS[case.dtype] if case.eps is None else case.eps


def rms_outcome(case, inputs: dict) -> dict:
    """Construction facts, the output and (with case.backward) the gradients of an RMSCase."""
    x = inputs["x"]
    axes = tuple(range(x.ndim - case.norm_dims, x.ndim))
    pshape = list(x.shape[x.ndim - case.norm_dims:])
    w = inputs["weight"] if case.affine else None
    r = 1.0 / np.sqrt(eps_of(case) + (x ** 2).mean(axis=axes, keepdims=True))
    y = x * r * (w if w is not None else 1.0)
    out = {"construct": {"normalized_shape": pshape, "weight": [1.0] * int(np.prod(pshape)) if case.affine else None,
                         "eps": case.eps},
           "y": y}
    if case.backward:
        g = inputs["dy"] * (w if w is not None else 1.0)
        out["grad_input"] = r * (g - x * r ** 2 * (g * x).mean(axis=axes, keepdims=True))
        lead = tuple(range(x.ndim - case.norm_dims))
        out["grad_weight"] = (inputs["dy"] * x * r).sum(axis=lead) if w is not None else None
    return out


def expectations(case, inputs: dict) -> list[Expect]:
    out = rms_outcome(case, inputs)
    x = inputs["x"]
    w = inputs["weight"] if case.affine else None
    expects = [Expect(RMS_CONSTRUCT, out["construct"], key="construct")]
    if case.backward:
        gi, gw = tols.rms_grad_tols(case.dtype, x, inputs["dy"], case.norm_dims, eps_of(case), w)
        return expects + [part(RMS_BACKWARD, out, "grad_input", gi), part(RMS_BACKWARD, out, "grad_weight", gw)]
    rule_ = RMS_EPS_DEFAULT if case.eps is None else RMS_FORWARD
    return expects + [part(rule_, out, "y", tols.rms_output_tol(case.dtype, x, case.norm_dims, eps_of(case), w))]

"""Runner of reference/norm/rms.py: an RMSNorm module."""
from __future__ import annotations

import torch

from suite.norm.cases import RMSCase, dtype_of, make_rms_inputs
from suite.norm.torch_side.common import grad_of, to_np, to_torch


def run_rms(case: RMSCase, device: str) -> dict:
    """What construction made (normalized_shape, the initial weight after reset_parameters, eps), then one forward
    with the drawn weight (and, with ``case.backward``, the gradients)."""
    inputs = make_rms_inputs(case)
    k = case.norm_dims
    shape = case.shape[-1] if case.shape_as_int else list(case.shape[len(case.shape) - k:])
    m = torch.nn.RMSNorm(shape, eps=case.eps, elementwise_affine=case.affine).to(device=device,
                                                                                  dtype=dtype_of(case.dtype))
    with torch.no_grad():
        if m.weight is not None:
            m.weight.mul_(3.0)  # reset_parameters must bring back the documented initial ones
    m.reset_parameters()
    out = {"construct": {"normalized_shape": list(m.normalized_shape),
                         "weight": None if m.weight is None else to_np(m.weight).reshape(-1).tolist(),
                         "eps": m.eps}}
    if m.weight is not None:
        with torch.no_grad():
            m.weight.copy_(to_torch(inputs["weight"], case.dtype, device))
    x = to_torch(inputs["x"], case.dtype, device).requires_grad_(case.backward)
    y = m(x)
    out["y"] = to_np(y)
    if case.backward:
        y.backward(to_torch(inputs["dy"], case.dtype, device))
        out.update(grad_input=to_np(x.grad), grad_weight=grad_of(m.weight))
    return out

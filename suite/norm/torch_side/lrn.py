"""Runner of reference/norm/lrn.py: LocalResponseNorm and CrossMapLRN2d modules."""
from __future__ import annotations

import torch

from conform.outcome import Raised
from suite.norm.cases import LRNCase, make_lrn_inputs
from suite.norm.torch_side.common import to_np, to_torch


def run_lrn(case: LRNCase, device: str) -> dict | Raised:
    """One forward of the module; with ``case.backward`` the input gradient for the drawn grad_output instead."""
    inputs = make_lrn_inputs(case)
    # alpha, beta, k passed only where they differ from the documented defaults (1e-4, 0.75, 1), which then apply
    defaults = {"alpha": 1e-4, "beta": 0.75, "k": 1.0}
    m = getattr(torch.nn, case.kind)(case.size, **{name: value for name, value in
                                                   (("alpha", case.alpha), ("beta", case.beta), ("k", case.k))
                                                   if value != defaults[name]})
    x = to_torch(inputs["x"], case.dtype, device).requires_grad_(case.backward)
    try:
        y = m(x)
        if case.backward:
            y.backward(to_torch(inputs["dy"], case.dtype, device))
            return {"grad_input": to_np(x.grad)}
    except (ValueError, RuntimeError) as exc:
        return Raised.from_exception(exc)
    return {"y": to_np(y)}

"""Runner of reference/norm/lazy.py: a LazyBatchNorm module's first call."""
from __future__ import annotations

from conform.outcome import Raised
from suite.norm.cases import BNCase, make_bn_inputs
from suite.norm.torch_side.batchnorm import build_bn
from suite.norm.torch_side.common import to_np, to_torch


def run_lazy(case: BNCase, device: str) -> dict | Raised:
    """A Lazy module's first call (default parameters): the class it became, its structure, the output
    and the running stats."""
    inputs = make_bn_inputs(case)
    m = build_bn(case, device).train(case.training)
    try:
        y = m(to_torch(inputs["x"], case.dtype, device))
    except (ValueError, RuntimeError) as exc:
        return Raised.from_exception(exc)
    out = {"class": type(m).__name__,
           "structure": {"num_features": m.num_features,
                         "weight_shape": None if m.weight is None else list(m.weight.shape),
                         "bias_shape": None if m.bias is None else list(m.bias.shape),
                         "running_shape": None if m.running_mean is None else list(m.running_mean.shape)},
           "y": to_np(y)}
    if case.track:
        out.update(running_mean=to_np(m.running_mean), running_var=to_np(m.running_var),
                   num_batches_tracked=int(m.num_batches_tracked))
    return out

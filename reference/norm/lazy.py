"""LazyBatchNorm{1,2,3}d: num_features inferred at the first call, then what a fresh
BatchNorm{1,2,3}d(input.shape[1]) computes."""
from __future__ import annotations

import numpy as np

from conform.expect import Expect
from conform.outcome import Raised
from conform.rules import rule
from reference.norm import tolerances as tols
from reference.norm.batchnorm import BATCHNORM_PY, base_kind, bn_call, bn_state0
from reference.norm.core import part

# ---- lazy ---------------------------------------------------------------------------------
LAZY_INFER = rule(
    "norm.lazy.infer",
    "LazyBatchNorm{1,2,3}d infers num_features = input.shape[1] at the first call and materializes weight, bias "
    "and running stats of that size (those its flags ask for).",
    f"{BATCHNORM_PY}: _LazyNormBase.initialize_parameters; LazyBatchNorm1d docstring")
LAZY_FORWARD = rule(
    "norm.lazy.forward",
    "A LazyBatchNorm{1,2,3}d's first call computes what a fresh BatchNorm{1,2,3}d(input.shape[1]) computes "
    "(output, running stats, counter).",
    f"{BATCHNORM_PY}: LazyBatchNorm1d docstring")
LAZY_CLASS = rule(
    "norm.lazy.becomes",
    "After the first call a LazyBatchNorm{k}d instance becomes a BatchNorm{k}d (cls_to_become).",
    "torch/nn/modules/lazy.py: LazyModuleMixin._infer_parameters")


def lazy_forward(case, inputs: dict) -> dict | Raised:
    """A Lazy module's first call (a BNCase of a Lazy kind, default parameters): the class it becomes,
    its inferred structure, the output and the running stats."""
    C = inputs["x"].shape[1]
    out = {"class": base_kind(case.kind),
           "structure": {"num_features": C, "weight_shape": [C] if case.affine else None,
                         "bias_shape": [C] if case.affine and case.bias else None,
                         "running_shape": [C] if case.track else None}}
    state = bn_state0(case)
    state["training"] = case.training
    if case.track:
        state["running_mean"], state["running_var"] = np.zeros(C), np.ones(C)
    weight = np.ones(C) if case.affine else None
    bias = np.zeros(C) if case.affine and case.bias else None
    y = bn_call(state, inputs["x"], case.kind, C, case.eps, weight, bias)
    if isinstance(y, Raised):
        return y
    out["y"] = y
    if case.track:
        out.update(running_mean=state["running_mean"], running_var=state["running_var"],
                   num_batches_tracked=state["num_batches_tracked"])
    return out


def expectations(case, inputs: dict) -> list[Expect]:
    out = lazy_forward(case, inputs)
    bounds = tols.lazy_tols(case, inputs["x"])
    expects = [part(LAZY_CLASS, out, "class"), part(LAZY_INFER, out, "structure"),
               part(LAZY_FORWARD, out, "y", bounds["y"])]
    if case.track:
        expects += [part(LAZY_FORWARD, out, key, bounds[key])
                    for key in ("running_mean", "running_var", "num_batches_tracked")]
    return expects

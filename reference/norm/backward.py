"""BatchNorm backward against the analytic formulas, with batch statistics (training, or eval without
running stats) and with the running stats as constants (eval)."""
from __future__ import annotations

import numpy as np

from conform.expect import Expect
from conform.outcome import Raised
from conform.rules import rule
from reference.norm import tolerances as tols
from reference.norm.batchnorm import bn_forward, weight_bias
from reference.norm.core import batch_stats, channel_axes, per_channel

# ---- backward -------------------------------------------------------------------------------
BACKWARD_INPUT = rule(
    "norm.backward.train_input",
    "Training backward: dx = w / sqrt(var + eps) * (dy - mean(dy) - xhat * mean(dy * xhat)) per channel.",
    "Ioffe & Szegedy 2015 (arXiv:1502.03167), eq. for dL/dx; torch/csrc/autograd derivatives.yaml: "
    "native_batch_norm")
BACKWARD_PARAMS = rule(
    "norm.backward.train_params",
    "Training backward: dweight = sum(dy * xhat), dbias = sum(dy) per channel over batch and spatial dims.",
    "arXiv:1502.03167; derivatives.yaml: native_batch_norm")
BACKWARD_EVAL = rule(
    "norm.backward.eval",
    "Eval backward (running stats are constants): dx = dy * w / sqrt(running_var + eps), "
    "dweight = sum(dy * xhat), dbias = sum(dy).",
    "derivatives.yaml: native_batch_norm (training=False)")


def backward_train(x, dy, mean, var, eps, weight):
    """Analytic BN backward with batch statistics: (dx, dweight, dbias)."""
    axes = channel_axes(x.ndim)
    n = x.size // x.shape[1]
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - per_channel(mean, x.ndim)) * per_channel(invstd, x.ndim)
    sum_dy = dy.sum(axis=axes)
    sum_dy_xhat = (dy * xhat).sum(axis=axes)
    w = weight if weight is not None else np.ones_like(mean)
    dx = per_channel(w * invstd, x.ndim) * (dy - per_channel(sum_dy / n, x.ndim)
                                            - xhat * per_channel(sum_dy_xhat / n, x.ndim))
    return dx, sum_dy_xhat, sum_dy


def backward_eval(x, dy, mean, var, eps, weight):
    axes = channel_axes(x.ndim)
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - per_channel(mean, x.ndim)) * per_channel(invstd, x.ndim)
    w = weight if weight is not None else np.ones_like(mean)
    return dy * per_channel(w * invstd, x.ndim), (dy * xhat).sum(axis=axes), dy.sum(axis=axes)


def bn_backward(case, inputs: dict) -> dict | Raised:
    """The gradients of one forward of a fresh module (a BNCase with ``backward``) for the upstream
    gradient inputs["dy"]; None for a parameter the module does not have."""
    fwd = bn_forward(case, inputs)
    if isinstance(fwd, Raised):
        return fwd
    x, dy = inputs["x"], inputs["dy"]
    weight, bias = weight_bias(case, inputs)
    if case.training or not case.track:
        mean, var, _ = batch_stats(x)
        dx, dw, db = backward_train(x, dy, mean, var, case.eps, weight)
    else:
        dx, dw, db = backward_eval(x, dy, inputs["running_mean"], inputs["running_var"], case.eps, weight)
    return {"grad_input": dx, "grad_weight": dw if weight is not None else None,
            "grad_bias": db if bias is not None else None}


def expectations(case, inputs: dict) -> list[Expect]:
    """Batch statistics: dx under norm.backward.train_input, the parameter grads under train_params;
    running stats as constants: all three under norm.backward.eval."""
    out = bn_backward(case, inputs)
    if isinstance(out, Raised):
        return [Expect(BACKWARD_INPUT, out)]
    x, dy = inputs["x"], inputs["dy"]
    w = inputs["weight"] if case.affine else None
    if case.training or not case.track:
        bounds = (tols.grad_input_tol(case.dtype, x, dy, case.eps, w),
                  tols.grad_weight_tol(case.dtype, x, dy, case.eps), tols.grad_bias_tol(case.dtype, x, dy))
        rules = (BACKWARD_INPUT, BACKWARD_PARAMS, BACKWARD_PARAMS)
    else:
        bounds = tols.eval_grad_tols(case.dtype, x, dy, case.eps, w, inputs["running_mean"], inputs["running_var"])
        rules = (BACKWARD_EVAL,) * 3
    return [Expect(r, out[key], tol, key) for key, tol, r in zip(("grad_input", "grad_weight", "grad_bias"),
                                                                  bounds, rules)]

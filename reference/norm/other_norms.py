"""InstanceNorm{1,2,3}d, GroupNorm and LayerNorm: forward formulas, their errors, InstanceNorm's
running statistics, and the backward of the normalized-group formula.

Sources: torch/nn/modules/{instancenorm,normalization}.py docstrings; torch/nn/functional.py
(instance_norm, group_norm).
"""
from __future__ import annotations

import numpy as np

from conform.expect import Expect
from conform.outcome import Raised
from conform.rules import rule
from reference.norm import tolerances as tols
from reference.norm.core import channel_axes, ema, normalize, part, per_channel, standardize

# ---- other norms ---------------------------------------------------------------------------
INSTANCE_FORWARD = rule(
    "norm.instance.forward",
    "InstanceNorm{1,2,3}d: per-sample, per-channel mean and biased variance over the spatial dims; affine and "
    "track_running_stats default to False.",
    "torch/nn/modules/instancenorm.py: InstanceNorm1d docstring")
INSTANCE_SPATIAL = rule(
    "norm.instance.spatial_size",
    "InstanceNorm normalizing with input statistics raises ValueError 'Expected more than 1 spatial element when "
    "training' when the spatial dims hold a single element.",
    "torch/nn/functional.py: instance_norm, _verify_spatial_size")
INSTANCE_RUNNING = rule(
    "norm.instance.running_stats",
    "InstanceNorm with track_running_stats=True: training normalizes with instance statistics and sets running = "
    "(1 - momentum) * running + momentum * (batch average of the per-instance mean / UNBIASED variance); eval "
    "normalizes with the running stats.",
    "torch/nn/modules/instancenorm.py: InstanceNorm1d docstring (track_running_stats, momentum); ATen "
    "instance_norm (per-instance batch_norm, running stats averaged over the batch)")
INSTANCE_RANK = rule(
    "norm.instance.rank",
    "InstanceNorm{k}d (and LazyInstanceNorm{k}d) accept (k+1)D unbatched or (k+2)D batched input; any other rank "
    "raises ValueError 'expected (k+1)D or (k+2)D input (got nD input)'.",
    "torch/nn/modules/instancenorm.py: InstanceNorm1d/2d/3d docstrings (Shape), _check_input_dim")
INSTANCE_UNBATCHED = rule(
    "norm.instance.unbatched",
    "InstanceNorm{k}d on an unbatched (C, *) input normalizes it as a batch of one sample and returns the input's "
    "shape (running stats, when tracked, updated as for that batch).",
    "torch/nn/modules/instancenorm.py: InstanceNorm1d docstring (Input: (N, C, L) or (C, L))")
INSTANCE_CHANNELS = rule(
    "norm.instance.channels",
    "An input whose channel dim (dim 0 unbatched, 1 batched) differs from num_features: with affine=True "
    "ValueError 'expected input's size at dim=d to match num_features'; with affine=False a UserWarning (num_features "
    "is not used) and the usual instance normalization -- unless running stats of num_features entries are tracked, "
    "which cannot apply: RuntimeError.",
    "torch/nn/modules/instancenorm.py: _InstanceNorm.forward; InstanceNorm1d docstring (num_features)")
LAZY_INSTANCE = rule(
    "norm.lazy.instance",
    "LazyInstanceNorm{k}d's first call infers num_features from input.size(1) (as documented, also for unbatched "
    "input) and computes what InstanceNorm{k}d(num_features) with its initial parameters (weight ones, bias zeros, "
    "running stats zeros and ones) computes.",
    "torch/nn/modules/instancenorm.py: LazyInstanceNorm1d docstring; batchnorm.py: _LazyNormBase")
GROUP_FORWARD = rule(
    "norm.group.forward",
    "GroupNorm(G, C): per-sample mean and biased variance over each group of C/G channels and all spatial "
    "dims, then a per-channel affine; ValueError 'Expected more than 1 value per channel' when "
    "N * C/G * prod(spatial) == 1.",
    "torch/nn/modules/normalization.py: GroupNorm docstring")
GROUP_RANK = rule(
    "norm.group.rank",
    "GroupNorm takes (N, C, *) input: an input of fewer than 2 dims raises RuntimeError 'Expected at least 2 "
    "dimensions for input tensor but received k'.",
    "torch/nn/modules/normalization.py: GroupNorm docstring (Shape: Input (N, C, *)); torch/nn/functional.py: "
    "group_norm")
GROUP_DIVISIBLE = rule(
    "norm.group.divisible",
    "GroupNorm raises ValueError at construction when num_channels is not divisible by num_groups.",
    "torch/nn/modules/normalization.py: GroupNorm.__init__")
LAYER_FORWARD = rule(
    "norm.layer.forward",
    "LayerNorm(normalized_shape): mean and biased variance over the last len(normalized_shape) dims, then an "
    "elementwise affine of that shape (bias optional).",
    "torch/nn/modules/normalization.py: LayerNorm docstring")

OTHER_BACKWARD = rule(
    "norm.other.backward",
    "InstanceNorm/GroupNorm/LayerNorm backward: per normalized group dx = invstd * (g - mean(g) - xhat * "
    "mean(g * xhat)) with g = dy * weight; dweight = sum(dy * xhat) and dbias = sum(dy) over the dims the "
    "parameter is broadcast along.",
    "arXiv:1607.06450 (LayerNorm), arXiv:1803.08494 (GroupNorm); derivatives.yaml: native_layer_norm, "
    "native_group_norm")


# =========================================================================================
# forward formulas
# =========================================================================================

def instance_norm(x, eps, weight, bias) -> np.ndarray:
    y = standardize(x, tuple(range(2, x.ndim)), eps)
    if weight is not None:
        y = y * per_channel(weight, x.ndim) + per_channel(bias, x.ndim)
    return y


def group_norm(x, groups, eps, weight, bias) -> np.ndarray:
    N, C = x.shape[:2]
    g = x.reshape((N, groups, -1))
    y = standardize(g, (2,), eps).reshape(x.shape)
    if weight is not None:
        y = y * per_channel(weight, x.ndim)
    if bias is not None:
        y = y + per_channel(bias, x.ndim)
    return y


def layer_norm(x, k, eps, weight, bias) -> np.ndarray:
    y = standardize(x, tuple(range(x.ndim - k, x.ndim)), eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def instance_dims(kind: str) -> int:
    return int(kind[-2])


def instance_num_features(case, x: np.ndarray) -> int:
    """The module's num_features: the constructor's, or for a Lazy module input.size(1) at the first call."""
    if case.kind.startswith("Lazy"):
        return x.shape[1]
    nf = getattr(case, "num_features", None)  # a Case without the field: the input's channels
    return nf if nf is not None else case.shape[1]


def instance_checks(case, x: np.ndarray) -> tuple[str | None, Raised | None, bool]:
    """(the rule of the module's own checks that decides the outcome, its error, whether it warns)."""
    k = instance_dims(case.kind)
    if x.ndim not in (k + 1, k + 2):
        return INSTANCE_RANK, Raised("ValueError", rf"^expected {k + 1}D or {k + 2}D input \(got {x.ndim}D input\)"), False
    dim = x.ndim - (k + 1)
    nf = instance_num_features(case, x)
    if x.shape[dim] != nf:
        if case.affine:
            return INSTANCE_CHANNELS, Raised("ValueError", rf"^expected input's size at dim={dim} to match num_features "
                                                           rf"\({nf}\), but got: {x.shape[dim]}"), False
        if getattr(case, "track", False):
            return INSTANCE_CHANNELS, Raised("RuntimeError"), True
        return INSTANCE_CHANNELS, None, True
    return None, None, False


def instance_outcome(case, inputs: dict) -> dict | Raised:
    """InstanceNorm forward: instance statistics unless eval with tracked running stats; an unbatched input as
    a batch of one."""
    x = inputs["x"]
    _, err, warns = instance_checks(case, x)
    if err is not None:
        return err
    if x.ndim == instance_dims(case.kind) + 1:
        out = instance_outcome(case, {**inputs, "x": x[None]})
        if not isinstance(out, Raised):
            out["y"] = out["y"][0]
            out["warned"] = warns
        return out
    out = _instance_batched(case, inputs)
    if not isinstance(out, Raised):
        out["warned"] = warns
    return out


def _instance_batched(case, inputs: dict) -> dict | Raised:
    x = inputs["x"]
    w, b = (inputs["weight"], inputs["bias"]) if case.affine else (None, None)
    track, training = getattr(case, "track", False), getattr(case, "training", True)
    if training or not track:
        n = int(np.prod(x.shape[2:]))
        if n == 1:
            # F.instance_norm: _verify_spatial_size whenever input statistics are used
            return Raised("ValueError", r"^Expected more than 1 spatial element when training")
        out = {"y": instance_norm(x, case.eps, w, b)}
        if track:
            axes = tuple(range(2, x.ndim))
            mean = x.mean(axis=axes)
            var = ((x - x.mean(axis=axes, keepdims=True)) ** 2).mean(axis=axes) * n / (n - 1)
            out["running_mean"] = ema(inputs["running_mean"], mean.mean(axis=0), case.momentum)
            out["running_var"] = ema(inputs["running_var"], var.mean(axis=0), case.momentum)
        return out
    y = normalize(x, inputs["running_mean"], inputs["running_var"], case.eps, w, b)
    return {"y": y, "running_mean": inputs["running_mean"], "running_var": inputs["running_var"]}


def other_norm(case, inputs: dict) -> dict | Raised:
    """Forward outcome of an OtherNormCase (InstanceNorm, GroupNorm or LayerNorm)."""
    x = inputs["x"]
    w = inputs["weight"] if case.affine else None
    b = inputs["bias"] if case.affine and case.bias else None
    if "InstanceNorm" in case.kind:
        return instance_outcome(case, inputs)
    if case.kind == "GroupNorm":
        if x.ndim < 2:
            # the message is the same in 2.4.1 ... 2.15.0 (read from each release's F.group_norm)
            return Raised("RuntimeError", rf"^Expected at least 2 dimensions for input tensor but received {x.ndim}$")
        if x.shape[1] % case.groups:
            # The stable, documented part only ("num_channels must be divisible by num_groups", GroupNorm's
            # docstring): 2.4 raises exactly that, later releases insert the values ("num_channels (3) must ...").
            return Raised("ValueError", r"num_channels\b.* must be divisible by num_groups")
        N, C = x.shape[:2]
        if (N * C // case.groups) * int(np.prod(x.shape[2:])) == 1:
            # F.group_norm: _verify_batch_size([N * C // G, G, *spatial]), the BatchNorm check reused
            return Raised("ValueError", r"^Expected more than 1 value per channel when training")
        return {"y": group_norm(x, case.groups, case.eps, w, b)}
    return {"y": layer_norm(x, case.norm_dims, case.eps, w, b)}


def norm_groups(case, x: np.ndarray) -> tuple[np.ndarray, tuple[int, ...], tuple[int, ...]]:
    """(x reshaped so that each normalized group spans ``axes``, those axes, the axes a parameter is summed
    over in its gradient) for an OtherNormCase."""
    if case.kind.startswith("InstanceNorm"):
        return x, tuple(range(2, x.ndim)), channel_axes(x.ndim)
    if case.kind == "GroupNorm":
        return x.reshape(x.shape[0], case.groups, -1), (2,), channel_axes(x.ndim)
    k = case.norm_dims
    return x, tuple(range(x.ndim - k, x.ndim)), tuple(range(x.ndim - k))


def _broadcast_param(case, p: np.ndarray | None, x: np.ndarray) -> np.ndarray:
    if p is None:
        return np.ones_like(x)
    return np.broadcast_to(p if case.kind == "LayerNorm" else per_channel(p, x.ndim), x.shape)


def other_norm_backward(case, inputs: dict) -> dict | Raised:
    """The input and parameter gradients of an OtherNormCase's y = xhat * w + b for the upstream gradient
    inputs["dy"]; None for a parameter the module does not have."""
    fwd = other_norm(case, inputs)
    if isinstance(fwd, Raised):
        return fwd
    x, dy = inputs["x"], inputs["dy"]
    w = inputs["weight"] if case.affine else None
    has_bias = case.affine and (case.bias or case.kind.startswith("InstanceNorm"))
    xr, axes, param_axes = norm_groups(case, x)
    mean = xr.mean(axis=axes, keepdims=True)
    invstd = 1.0 / np.sqrt(((xr - mean) ** 2).mean(axis=axes, keepdims=True) + case.eps)
    xhat = (xr - mean) * invstd
    g = (dy * _broadcast_param(case, w, x)).reshape(xr.shape)
    dx = invstd * (g - g.mean(axis=axes, keepdims=True) - xhat * (g * xhat).mean(axis=axes, keepdims=True))
    return {"grad_input": dx.reshape(x.shape),
            "grad_weight": (dy * xhat.reshape(x.shape)).sum(axis=param_axes) if w is not None else None,
            "grad_bias": dy.sum(axis=param_axes) if has_bias else None}



# =========================================================================================
# expectations
# =========================================================================================

def forward_rule(case, x: np.ndarray) -> str:
    """The rule an OtherNormCase's forward is about, in the module's own check order."""
    if "InstanceNorm" in case.kind:
        checked = instance_checks(case, x)[0]
        if checked is not None:
            return checked
        if case.kind.startswith("Lazy"):
            return LAZY_INSTANCE
        if x.ndim == instance_dims(case.kind) + 1:
            return INSTANCE_UNBATCHED
        if not case.training and case.track:  # running stats, per channel as in BatchNorm eval
            return INSTANCE_RUNNING
        return INSTANCE_SPATIAL if int(np.prod(x.shape[2:])) == 1 else INSTANCE_FORWARD
    if case.kind == "GroupNorm":
        if x.ndim < 2:
            return GROUP_RANK
        return GROUP_DIVISIBLE if x.shape[1] % case.groups else GROUP_FORWARD
    return LAYER_FORWARD


def expectations(case, inputs: dict) -> list[Expect]:
    """One forward: the output (an error where the rule is an error rule), and InstanceNorm's running
    stats when it tracks them."""
    x = inputs["x"]
    rule_ = forward_rule(case, x)
    out = other_norm(case, inputs)
    if rule_ in (INSTANCE_SPATIAL, GROUP_DIVISIBLE, INSTANCE_RANK) or isinstance(out, Raised):
        return [Expect(rule_, out)]
    batched = {**inputs, "x": x if "InstanceNorm" not in case.kind or x.ndim != instance_dims(case.kind) + 1 else x[None]}
    expects = [part(rule_, out, "y", tols.other_output_tol(case, batched))]
    if "InstanceNorm" in case.kind:
        expects.append(part(rule_ if rule_ == INSTANCE_CHANNELS else INSTANCE_CHANNELS, out, "warned"))
    if "InstanceNorm" in case.kind and case.track:
        x = batched["x"]
        mean_tol, var_tol = tols.instance_running_tols(case.dtype, x, case.eps, inputs["running_mean"],
                                                       inputs["running_var"])
        expects += [part(INSTANCE_RUNNING, out, "running_mean", mean_tol),
                    part(INSTANCE_RUNNING, out, "running_var", var_tol)]
    return expects


def backward_expectations(case, inputs: dict) -> list[Expect]:
    """The gradients (a training OtherNormCase with ``backward``), or the forward's error."""
    out = other_norm_backward(case, inputs)
    if isinstance(out, Raised):
        return [Expect(OTHER_BACKWARD, out)]
    x = inputs["x"]
    xr, axes, _ = norm_groups(case, x)
    n = int(np.prod([xr.shape[a] for a in axes]))
    w = inputs["weight"] if case.affine else None
    bounds = tols.other_grad_tols(case.dtype, xr.reshape(-1, n), x, inputs["dy"], case.eps, w,
                                  inputs["weight"].size)
    return [Expect(OTHER_BACKWARD, out[key], tol, key)
            for key, tol in zip(("grad_input", "grad_weight", "grad_bias"), bounds)]

"""Executable spec of torch's normalization layers (area ``norm``).

numpy float64 for the math, plain Python for module state.  Nothing here calls
torch: the runners in ``suite/norm`` build the input values (from a Case's seed,
with torch's RNG, which is not under test) and hand them over as numpy arrays.

Sources: torch/nn/modules/batchnorm.py (_NormBase, _BatchNorm, _LazyNormBase,
SyncBatchNorm, convert_sync_batchnorm), torch/nn/modules/_functions.py
(SyncBatchNorm autograd function), torch/nn/modules/{instancenorm,normalization}.py
and the BatchNorm1d docstring (biased variance to normalize, unbiased variance in
the running estimate, ``momentum`` update rule).
"""
from __future__ import annotations

import numpy as np

from conform.rules import rule
from conform.outcome import Raised

BN_DOC = "https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm1d.html"
BATCHNORM_PY = "torch/nn/modules/batchnorm.py"
FUNCTIONS_PY = "torch/nn/modules/_functions.py"

# ---- construction --------------------------------------------------------------------
CONSTRUCT_PARAMS = rule(
    "norm.construct.parameters",
    "affine=True creates weight=ones(C) and bias=zeros(C) Parameters (bias=None when bias=False); "
    "affine=False registers both as None.",
    f"{BATCHNORM_PY}: _NormBase.__init__, reset_parameters")
CONSTRUCT_BUFFERS = rule(
    "norm.construct.buffers",
    "track_running_stats=True registers running_mean=zeros(C), running_var=ones(C) in the module dtype and "
    "num_batches_tracked=0 (int64); track_running_stats=False registers all three as None.",
    f"{BATCHNORM_PY}: _NormBase.__init__")

CONSTRUCT_DEFAULTS = rule(
    "norm.construct.defaults",
    "Documented constructor defaults: BatchNorm{1,2,3}d and SyncBatchNorm eps=1e-5, momentum=0.1, affine=True, "
    "track_running_stats=True; InstanceNorm{1,2,3}d eps=1e-5, momentum=0.1, affine=False, "
    "track_running_stats=False; GroupNorm eps=1e-5, affine=True; LayerNorm eps=1e-5, elementwise_affine=True; "
    "bias=True wherever the keyword exists.",
    "BatchNorm1d, SyncBatchNorm, InstanceNorm1d, GroupNorm, LayerNorm docstrings (signatures)")

# ---- input checks ----------------------------------------------------------------------
INPUT_RANK = rule(
    "norm.input.rank",
    "BatchNorm1d accepts 2D/3D, BatchNorm2d 4D, BatchNorm3d 5D input, SyncBatchNorm at least 2D; anything else "
    "raises ValueError 'expected ... input (got kD input)' before any state changes.",
    f"{BATCHNORM_PY}: BatchNorm1d/2d/3d._check_input_dim, SyncBatchNorm._check_input_dim")
INPUT_CHANNELS = rule(
    "norm.input.channels",
    "input.shape[1] must equal num_features when the module holds per-channel tensors (weight or running "
    "stats): RuntimeError naming the tensor; with neither it normalizes any channel count.",
    "torch/nn/functional.py: batch_norm (ATen batch_norm shape checks)")
INPUT_SINGLE_VALUE = rule(
    "norm.input.single_value",
    "Normalizing with batch statistics (training, or eval without running stats) when each channel has exactly "
    "one value raises ValueError 'Expected more than 1 value per channel when training'; eval with running "
    "stats accepts it.",
    "torch/nn/functional.py: batch_norm, _verify_batch_size")

# ---- forward -----------------------------------------------------------------------------
FORWARD_BATCH = rule(
    "norm.forward.batch_stats",
    "Training forward: y = (x - mean) / sqrt(var + eps) * weight + bias with per-channel mean and BIASED "
    "variance over the batch and spatial dims (var(correction=0)).",
    f"{BN_DOC} (docstring of BatchNorm1d)")
FORWARD_AFFINE = rule(
    "norm.forward.affine_options",
    "affine=False applies no scale or shift; bias=False applies the scale only.",
    f"{BATCHNORM_PY}: _NormBase.__init__ (bias keyword)")
FORWARD_EVAL = rule(
    "norm.forward.eval_running",
    "Eval mode with running stats normalizes with running_mean and running_var (no batch statistics).",
    f"{BATCHNORM_PY}: _BatchNorm.forward (bn_training)")
FORWARD_UNTRACKED = rule(
    "norm.forward.eval_untracked",
    "track_running_stats=False at construction: eval mode normalizes with batch statistics, like training.",
    f"{BN_DOC} (track_running_stats)")
FORWARD_DTYPE = rule(
    "norm.forward.dtype",
    "The output has the input's shape and dtype (float32, float64, and bfloat16/float16 with modules of that "
    "dtype, which torch 2.13's CPU build and CUDA support).",
    f"{BN_DOC}")
FORWARD_ILL = rule(
    "norm.forward.ill_conditioned",
    "Inputs with a large common offset or a variance far below eps are normalized (and their running variance "
    "estimated) within the forward-error bound grown by max|x| / sqrt(var + eps).",
    f"{BN_DOC}")

# ---- running statistics -------------------------------------------------------------------
RUNNING_MOMENTUM = rule(
    "norm.running.momentum",
    "Training with tracked stats: running = (1 - momentum) * running + momentum * batch_stat, with the batch "
    "mean and the UNBIASED batch variance (var(correction=1)).",
    f"{BN_DOC} (note on momentum; biased vs unbiased)")
RUNNING_CUMULATIVE = rule(
    "norm.running.cumulative",
    "momentum=None: the running stats are the simple (cumulative) average of the batch statistics, factor "
    "1/num_batches_tracked.",
    f"{BN_DOC} (momentum); {BATCHNORM_PY}: _BatchNorm.forward")
RUNNING_COUNTER = rule(
    "norm.running.counter",
    "num_batches_tracked increases by 1 on every training forward that tracks stats, never in eval.",
    f"{BATCHNORM_PY}: _BatchNorm.forward")
RUNNING_EVAL_FROZEN = rule(
    "norm.running.eval_frozen",
    "Eval mode leaves running_mean, running_var and num_batches_tracked unchanged.",
    f"{BATCHNORM_PY}: _BatchNorm.forward")
TOGGLE_TRACK = rule(
    "norm.toggle.track_running_stats",
    "Setting track_running_stats=False after construction keeps the buffers: training then uses batch stats "
    "without updating them or the counter, while eval still normalizes with the (kept) buffers.",
    f"{BATCHNORM_PY}: _BatchNorm.forward (bn_training depends on the buffers being None)")
TOGGLE_MOMENTUM = rule(
    "norm.toggle.momentum",
    "Changing momentum after construction takes effect at the next training forward; switching to None "
    "averages with factor 1/num_batches_tracked, counting every earlier tracked batch.",
    f"{BATCHNORM_PY}: _BatchNorm.forward")
EMPTY_BATCH = rule(
    "norm.empty.batch",
    "An empty batch (N=0) returns an empty output of the input's shape and leaves running_mean/running_var "
    "unchanged; in training it still counts in num_batches_tracked.",
    f"{BATCHNORM_PY}: _BatchNorm.forward (counter incremented before F.batch_norm); ATen _batch_norm_impl_index "
    "(numel()==0 path)")

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
GROUP_FORWARD = rule(
    "norm.group.forward",
    "GroupNorm(G, C): per-sample mean and biased variance over each group of C/G channels and all spatial "
    "dims, then a per-channel affine; ValueError 'Expected more than 1 value per channel' when "
    "N * C/G * prod(spatial) == 1.",
    "torch/nn/modules/normalization.py: GroupNorm docstring")
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

# ---- SyncBatchNorm ----------------------------------------------------------------------------
SYNC_REFERENCE_CONCAT = rule(
    "norm.sync.reference_concat",
    "SyncBatchNorm's defining property, reference side: global statistics over R ranks with uneven (or empty) "
    "per-rank batches reproduce BatchNorm over the concatenated batch (outputs, input grads, summed "
    "weight/bias grads, running stats) -- checked against torch's single-process BatchNorm.",
    f"{BATCHNORM_PY}: SyncBatchNorm docstring; {FUNCTIONS_PY}: SyncBatchNorm")
SYNC_FORWARD = rule(
    "norm.sync.function_forward",
    "torch's SyncBatchNorm autograd function over R ranks: every rank normalizes with the global mean/biased "
    "variance (counts weight each rank) and every rank ends with the same running stats (unbiased global var). "
    "On CPU this runs torch's Python-side function with CPU stand-in kernels; on CUDA the real module.",
    f"{FUNCTIONS_PY}: SyncBatchNorm.forward")
SYNC_BACKWARD = rule(
    "norm.sync.function_backward",
    "torch's SyncBatchNorm backward: input grads use globally all-reduced sum(dy), sum(dy*(x-mean)) and the "
    "global count; weight/bias grads are the rank's LOCAL sums (DDP all-reduces them). On CPU: CPU stand-in "
    "kernels; on CUDA: real kernels.",
    f"{FUNCTIONS_PY}: SyncBatchNorm.backward")
SYNC_EMPTY_RANK = rule(
    "norm.sync.empty_rank",
    "A rank with an empty batch contributes nothing to the statistics, gets an empty output, zero/None "
    "grads, and still participates in the collectives so its peers finish (CPU: CPU stand-in kernels).",
    f"{FUNCTIONS_PY}: SyncBatchNorm.forward/backward (numel()==0 branches)")
SYNC_EQUALS_CONCAT = rule(
    "norm.sync.equals_concat",
    "torch SyncBatchNorm over R ranks equals torch BatchNorm over the concatenated batch: outputs, input grads, "
    "sum over ranks of weight/bias grads, running stats (CPU: SyncBN side on CPU stand-in kernels).",
    f"{BATCHNORM_PY}: SyncBatchNorm docstring")
SYNC_CPU_REJECTED = rule(
    "norm.sync.cpu_rejected",
    "SyncBatchNorm in training with an initialized process group of size > 1 raises ValueError "
    "'SyncBatchNorm expected input tensor to be on GPU...' for CPU input.",
    f"{BATCHNORM_PY}: SyncBatchNorm.forward")
SYNC_FALLBACK = rule(
    "norm.sync.fallback",
    "Without an initialized process group (or in eval) SyncBatchNorm computes exactly what BatchNorm does; it "
    "accepts any input of rank >= 2 and rejects zero channels with ValueError.",
    f"{BATCHNORM_PY}: SyncBatchNorm.forward, _check_input_dim, _check_non_zero_input_channels")
SYNC_CUDA_MODULE = rule(
    "norm.sync.cuda_module",
    "Real nn.SyncBatchNorm (CUDA kernels) over R ranks equals the reference's global-statistics math and "
    "BatchNorm over the concatenated batch.",
    f"{BATCHNORM_PY}: SyncBatchNorm.forward")
CONVERT_REPLACE = rule(
    "norm.convert.replace",
    "convert_sync_batchnorm replaces every _BatchNorm (any depth) by a SyncBatchNorm under the same name and "
    "position, returns a new object for a BatchNorm root and the same object otherwise, leaves other modules.",
    f"{BATCHNORM_PY}: SyncBatchNorm.convert_sync_batchnorm")
CONVERT_SHARES = rule(
    "norm.convert.shares",
    "The SyncBatchNorm shares (same objects) weight, bias and the three buffers with the replaced BatchNorm, "
    "copies num_features/eps/momentum/affine/track_running_stats/training/qconfig and keeps requires_grad.",
    f"{BATCHNORM_PY}: SyncBatchNorm.convert_sync_batchnorm")


# =========================================================================================
# math
# =========================================================================================

def channel_axes(ndim: int) -> tuple[int, ...]:
    """Batch and spatial axes of an (N, C, *) array."""
    return (0,) + tuple(range(2, ndim))


def per_channel(v: np.ndarray, ndim: int) -> np.ndarray:
    """Reshape a (C,) vector to broadcast against an (N, C, *) array."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def batch_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-channel mean, biased variance and count n = N * prod(spatial)."""
    axes = channel_axes(x.ndim)
    n = x.size // x.shape[1] if x.shape[1] else 0
    mean = x.mean(axis=axes)
    var = ((x - per_channel(mean, x.ndim)) ** 2).mean(axis=axes)
    return mean, var, n


def normalize(x, mean, var, eps, weight, bias) -> np.ndarray:
    y = (x - per_channel(mean, x.ndim)) / np.sqrt(per_channel(var, x.ndim) + eps)
    if weight is not None:
        y = y * per_channel(weight, x.ndim)
    if bias is not None:
        y = y + per_channel(bias, x.ndim)
    return y


def ema(running: np.ndarray, observed: np.ndarray, factor: float) -> np.ndarray:
    # BatchNorm1d docstring: x_new = (1 - momentum) * x_hat + momentum * x_t
    return (1.0 - factor) * running + factor * observed


def unbiased(var_biased: np.ndarray, n: int) -> np.ndarray:
    return var_biased * n / (n - 1)


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


# =========================================================================================
# BatchNorm modules: one forward (BNCase) and sequences of calls (BNSeqCase)
# =========================================================================================

RANKS = {"BatchNorm1d": (2, 3), "BatchNorm2d": (4,), "BatchNorm3d": (5,)}


def base_kind(kind: str) -> str:
    return kind.removeprefix("Lazy")


def check_rank(kind: str, ndim: int) -> Raised | None:
    kind = base_kind(kind)
    if kind == "SyncBatchNorm":
        return None if ndim >= 2 else Raised("ValueError", rf"^expected at least 2D input \(got {ndim}D input\)$")
    allowed = RANKS[kind]
    if ndim in allowed:
        return None
    want = "2D or 3D" if kind == "BatchNorm1d" else f"{allowed[0]}D"
    return Raised("ValueError", rf"^expected {want} input \(got {ndim}D input\)$")


def single_value_error(shape: tuple[int, ...]) -> Raised:
    return Raised("ValueError", r"^Expected more than 1 value per channel when training, got input size "
                  + _torch_size_re(shape))


def _torch_size_re(shape) -> str:
    return r"torch\.Size\(\[" + ", ".join(str(s) for s in shape) + r"\]\)"


def bn_state0(case) -> dict:
    """Module state right after construction."""
    return {"track": case.track, "momentum": case.momentum, "training": True, "has_buffers": case.track,
            "running_mean": None, "running_var": None, "num_batches_tracked": 0, "averaged": 0}


# What the documented behaviour leaves open, the reference fixes as follows (torch's choices are
# registered divergences, suite/norm/divergences.py):
# - a call that raises changes no state (torch: num_batches_tracked was already incremented);
# - momentum=None averages the batches that had statistics: an empty batch counts as a call in
#   num_batches_tracked but adds nothing to the simple average (torch: factor 1/num_batches_tracked).
DOCUMENTED = {"empty_in_average": False, "failed_counted": False}
TORCH_COUNTING = {"empty_in_average": True, "failed_counted": True}


def bn_call(state: dict, x: np.ndarray, kind: str, num_features: int, eps: float, weight, bias,
            empty_in_average: bool = False, failed_counted: bool = False):
    """One forward of a BatchNorm module; mutates ``state``; returns y or Raised."""
    err = check_rank(kind, x.ndim)
    if err is not None:
        return err  # _check_input_dim runs before any state changes, in torch too
    C = x.shape[1]
    if base_kind(kind) == "SyncBatchNorm" and C == 0:
        return Raised("ValueError", r"^SyncBatchNorm number of input channels should be non-zero$")
    use_batch = state["training"] or not state["has_buffers"]
    # counter and buffers move only when tracking AND the buffers exist (torch checks both)
    update = state["training"] and state["track"] and state["has_buffers"]
    passes_running = state["has_buffers"] and (not state["training"] or state["track"])
    if use_batch and x.size // max(C, 1) == 1:
        err = single_value_error(x.shape)
    elif passes_running and C != num_features:
        err = Raised("RuntimeError", rf"running_mean should contain {C} elements not {num_features}")
    elif weight is not None and C != num_features:
        err = Raised("RuntimeError", rf"weight should contain {C} elements not {num_features}")
    if err is not None:
        if update and failed_counted:
            state["num_batches_tracked"] += 1
            state["averaged"] += 1
        return err
    factor = 0.0 if state["momentum"] is None else state["momentum"]
    if update:
        state["num_batches_tracked"] += 1
        if x.size or empty_in_average:
            state["averaged"] += 1
        if state["momentum"] is None:
            # simple average: weight 1/k for the k-th averaged batch (counting every earlier tracked batch,
            # also those averaged while momentum was a number)
            factor = 1.0 / state["averaged"] if state["averaged"] else 0.0
    if x.size == 0:
        # ATen's numel()==0 path: output = input * weight + bias (empty), stats untouched
        return x.copy()
    if use_batch:
        mean, var, n = batch_stats(x)
        if update:
            state["running_mean"] = ema(state["running_mean"], mean, factor)
            state["running_var"] = ema(state["running_var"], unbiased(var, n), factor)
        return normalize(x, mean, var, eps, weight, bias)
    return normalize(x, state["running_mean"], state["running_var"], eps, weight, bias)


def bn_forward(case, inputs: dict) -> dict | Raised:
    """Reference outcome of suite.norm.torch_side.run_bn: one forward (and backward) of a fresh module."""
    x = inputs["x"]
    C = case.num_features
    weight = inputs["weight"] if case.affine else None
    bias = inputs["bias"] if case.affine and case.bias else None
    state = bn_state0(case)
    state["training"] = case.training
    state["num_batches_tracked"] = state["averaged"] = case.nbt_before
    if case.track:
        state["running_mean"], state["running_var"] = inputs["running_mean"], inputs["running_var"]
    y = bn_call(state, x, case.kind, C, case.eps, weight, bias)
    if isinstance(y, Raised):
        return y
    out = {"dtype": case.dtype, "y": y}
    if case.track:
        out.update(running_mean=state["running_mean"], running_var=state["running_var"],
                   num_batches_tracked=state["num_batches_tracked"])
    if case.backward and x.size:
        use_batch = case.training or not case.track
        if use_batch:
            mean, var, _ = batch_stats(x)
            dx, dw, db = backward_train(x, inputs["dy"], mean, var, case.eps, weight)
        else:
            dx, dw, db = backward_eval(x, inputs["dy"], inputs["running_mean"], inputs["running_var"],
                                       case.eps, weight)
        out["grad_input"] = dx
        if weight is not None:
            out["grad_weight"] = dw
        if bias is not None:
            out["grad_bias"] = db
    return out


def bn_sequence(case, inputs: list[dict], empty_in_average: bool = False, failed_counted: bool = False) -> list:
    """Reference for suite.norm.torch_side.run_bn_sequence: a fresh module, then ``case.ops`` in order.

    Returns one record per ("forward", n) op: the output (or Raised) and the module state after it.
    """
    state = bn_state0(case)
    if case.track:
        state["running_mean"] = np.zeros(case.num_features)
        state["running_var"] = np.ones(case.num_features)
    weight = inputs[0]["weight"] if case.affine else None
    bias = inputs[0]["bias"] if case.affine else None
    records = []
    step = 0
    for op in case.ops:
        name = op[0]
        if name == "train":
            state["training"] = True
        elif name == "eval":
            state["training"] = False
        elif name == "track":
            state["track"] = op[1]
        elif name == "momentum":
            state["momentum"] = op[1]
        elif name == "forward":
            step += 1
            y = bn_call(state, inputs[step]["x"], case.kind, case.num_features, case.eps, weight, bias,
                        empty_in_average=empty_in_average, failed_counted=failed_counted)
            rec = {"y": y}
            if state["has_buffers"]:
                rec.update(running_mean=state["running_mean"], running_var=state["running_var"],
                           num_batches_tracked=state["num_batches_tracked"])
            records.append(rec)
    return records


def construct(case) -> dict:
    """Reference for suite.norm.torch_side.run_construct."""
    C = case.num_features
    f = np.zeros(C)
    out = {"weight": np.ones(C) if case.affine else None,
           "bias": f if case.affine and case.bias else None}
    out["buffers"] = ({"running_mean": f, "running_var": np.ones(C), "num_batches_tracked": 0,
                       "dtypes": [case.dtype, case.dtype, "int64"]} if case.track else
                      {"running_mean": None, "running_var": None, "num_batches_tracked": None})
    return out


def lazy_forward(case, inputs: dict) -> dict | Raised:
    """Reference for suite.norm.torch_side.run_lazy: a Lazy module's first call(s)."""
    C = inputs["x"].shape[1]
    out = {"class": base_kind(case.kind), "num_features": C,
           "weight_shape": [C] if case.affine else None,
           "bias_shape": [C] if case.affine and case.bias else None,
           "running_shape": [C] if case.track else None}
    state = bn_state0(case)
    state["training"] = case.training
    if case.track:
        state["running_mean"], state["running_var"] = np.zeros(C), np.ones(C)
    weight = np.ones(C) if case.affine else None
    bias = np.zeros(C) if case.affine and case.bias else None
    y = bn_call(state, inputs["x"], case.kind, C, case.eps, weight, bias)
    out["y"] = y
    if case.track:
        out.update(running_mean=state["running_mean"], running_var=state["running_var"],
                   num_batches_tracked=state["num_batches_tracked"])
    return out


# =========================================================================================
# Instance / Group / Layer norm (forward formulas)
# =========================================================================================

def _standardize(x: np.ndarray, axes: tuple[int, ...], eps: float) -> np.ndarray:
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


def instance_norm(x, eps, weight, bias) -> np.ndarray:
    y = _standardize(x, tuple(range(2, x.ndim)), eps)
    if weight is not None:
        y = y * per_channel(weight, x.ndim) + per_channel(bias, x.ndim)
    return y


def group_norm(x, groups, eps, weight, bias) -> np.ndarray:
    N, C = x.shape[:2]
    g = x.reshape((N, groups, -1))
    y = _standardize(g, (2,), eps).reshape(x.shape)
    if weight is not None:
        y = y * per_channel(weight, x.ndim)
    if bias is not None:
        y = y + per_channel(bias, x.ndim)
    return y


def layer_norm(x, k, eps, weight, bias) -> np.ndarray:
    y = _standardize(x, tuple(range(x.ndim - k, x.ndim)), eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def instance_outcome(case, inputs: dict) -> dict | Raised:
    """InstanceNorm forward: instance statistics unless eval with tracked running stats."""
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
    """Reference for suite.norm.torch_side.run_other_norm."""
    x = inputs["x"]
    w = inputs["weight"] if case.affine else None
    b = inputs["bias"] if case.affine and case.bias else None
    if case.kind.startswith("InstanceNorm"):
        return instance_outcome(case, inputs)
    if case.kind == "GroupNorm":
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
    """Reference for suite.norm.torch_side.run_other_norm with ``case.backward``: the input and parameter
    gradients of y = xhat * w + b for the upstream gradient inputs["dy"]."""
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
    out = {"grad_input": dx.reshape(x.shape)}
    if w is not None:
        out["grad_weight"] = (dy * xhat.reshape(x.shape)).sum(axis=param_axes)
    if has_bias:
        out["grad_bias"] = dy.sum(axis=param_axes)
    return out


def defaults(case) -> dict:
    """Reference for suite.norm.torch_side.run_defaults: documented constructor defaults."""
    kind = case.kind
    if kind == "LayerNorm":
        return {"eps": 1e-5, "elementwise_affine": True, "has_bias": True}
    if kind == "GroupNorm":
        return {"eps": 1e-5, "affine": True, "has_bias": True}
    instance = kind.startswith("InstanceNorm")
    return {"eps": 1e-5, "momentum": 0.1, "affine": not instance, "track_running_stats": not instance,
            "has_bias": not instance}


# =========================================================================================
# SyncBatchNorm: global statistics over ranks and the distributed backward
# =========================================================================================

def sync_global_stats(xs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, int]:
    """Merge per-rank (count, mean, biased var) into the global ones (Chan et al. pairwise formula);
    empty ranks carry count 0 and drop out."""
    parts = [batch_stats(x) for x in xs if x.size]
    counts = np.array([n for _, _, n in parts], dtype=np.float64)
    means = np.stack([m for m, _, _ in parts])
    vars_ = np.stack([v for _, v, _ in parts])
    total = counts.sum()
    mean = (counts[:, None] * means).sum(axis=0) / total
    var = (counts[:, None] * (vars_ + (means - mean) ** 2)).sum(axis=0) / total
    return mean, var, int(total)


def sync_forward_backward(case, inputs: dict) -> dict:
    """Per-rank outcome of SyncBatchNorm over ``len(xs)`` ranks in training mode.

    Running stats: one update with the global mean and unbiased global variance (every rank holds the
    same result).  Backward: dx from globally reduced sums; weight/bias grads are the rank-local sums.
    """
    xs, dys = inputs["xs"], inputs["dys"]
    weight = inputs["weight"] if case.affine else None
    bias = inputs["bias"] if case.affine and case.bias else None
    mean, var, n = sync_global_stats(xs)
    factor = case.momentum if case.momentum is not None else 1.0 / (case.nbt_before + 1)
    invstd = 1.0 / np.sqrt(var + case.eps)
    ys, dxs, dws, dbs = [], [], [], []
    nd = xs[0].ndim
    axes = channel_axes(nd)
    sum_dy = sum(dy.sum(axis=axes) for dy in dys)
    sum_dy_xmu = sum((dy * (x - per_channel(mean, nd))).sum(axis=axes) for x, dy in zip(xs, dys))
    w = weight if weight is not None else np.ones_like(mean)
    for x, dy in zip(xs, dys):
        ys.append(normalize(x, mean, var, case.eps, weight, bias))
        xmu = x - per_channel(mean, nd)
        dxs.append(per_channel(w * invstd, nd) * (dy - per_channel(sum_dy / n, nd)
                                                  - xmu * per_channel(invstd ** 2 * sum_dy_xmu / n, nd)))
        dws.append((dy * xmu).sum(axis=axes) * invstd)
        dbs.append(dy.sum(axis=axes))
    out = {"y": ys, "grad_input": dxs}
    if weight is not None:
        out["grad_weight"] = dws
    if bias is not None:
        out["grad_bias"] = dbs
    if case.track:
        out["running_mean"] = ema(inputs["running_mean"], mean, factor)
        out["running_var"] = ema(inputs["running_var"], unbiased(var, n), factor)
    return out


def sync_as_concat(case, inputs: dict) -> dict:
    """The multi-rank reference assembled the way BatchNorm on the concatenated batch reports it:
    per-rank pieces of y and dx, weight/bias grads summed over ranks (what DDP's all-reduce produces)."""
    out = sync_forward_backward(case, inputs)
    for key in ("grad_weight", "grad_bias"):
        if key in out:
            out[key] = np.sum(out[key], axis=0)
    return out


def convert_outcome(case) -> dict:
    """Reference for suite.norm.torch_side.run_convert: structure and sharing after convert_sync_batchnorm."""
    converted = [(name, "SyncBatchNorm" if kind.startswith("BatchNorm") else kind) for name, kind in case.layout]
    bns = [name for name, kind in case.layout if kind.startswith("BatchNorm")]
    root_is_bn = case.layout[0][1].startswith("BatchNorm")
    present = [k for k, on in (("weight", case.affine), ("bias", case.affine and case.bias),
                               ("running_mean", case.track), ("running_var", case.track),
                               ("num_batches_tracked", case.track)) if on]
    share = {k: True for k in present}
    per_bn = {name: {"same": share,
                     "hyper": [case.num_features, case.eps, case.momentum, case.affine, case.track],
                     "training": case.bn_training, "requires_grad": [case.requires_grad] * (
                         (1 if case.affine else 0) + (1 if case.affine and case.bias else 0)),
                     "qconfig": case.qconfig} for name in bns}
    return {"root_same_object": not root_is_bn, "modules": converted, "bn": per_bn}

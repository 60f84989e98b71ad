"""BatchNorm{1,2,3}d: construction, input checks, one forward (train/eval, tracked/untracked statistics)
and the running-statistics update it makes; the model of one call that the other topics reuse.

Sources: torch/nn/modules/batchnorm.py (_NormBase, _BatchNorm) and the BatchNorm1d docstring (biased
variance to normalize, unbiased variance in the running estimate, the ``momentum`` update rule).
"""
from __future__ import annotations

import numpy as np

from conform.expect import Expect
from conform.outcome import Raised
from conform.rules import rule
from conform.tolerance import EXACT
from reference.norm import tolerances as tols
from reference.norm.core import batch_stats, ema, normalize, part, unbiased
from reference.versions import since

BN_DOC = "https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm1d.html"
BATCHNORM_PY = "torch/nn/modules/batchnorm.py"

# ---- construction --------------------------------------------------------------------
CONSTRUCT_PARAMS = rule(
    "norm.construct.parameters",
    "affine=True creates weight=ones(C) and bias=zeros(C) Parameters (bias=None when bias=False); "
    "affine=False registers both as None.",
    f"{BATCHNORM_PY}: _NormBase.__init__, reset_parameters")
CONSTRUCT_BUFFERS = rule(
    "norm.construct.buffers",
    "track_running_stats=True registers running_mean=zeros(C), running_var=ones(C) in the module dtype and "
    "num_batches_tracked=0 (int64); track_running_stats=False registers all three as None. Built with the factory "
    "keywords device=/dtype=, every parameter and buffer is made on that device (num_batches_tracked stays int64).",
    f"{BATCHNORM_PY}: _NormBase.__init__; docs: the device and dtype factory keywords of modules")

CONSTRUCT_DEFAULTS = rule(
    "norm.construct.defaults",
    "Documented constructor defaults: BatchNorm{1,2,3}d and SyncBatchNorm eps=1e-5, momentum=0.1, affine=True, "
    "track_running_stats=True; InstanceNorm{1,2,3}d eps=1e-5, momentum=0.1, affine=False, "
    "track_running_stats=False; GroupNorm eps=1e-5, affine=True; LayerNorm eps=1e-5, elementwise_affine=True; "
    "bias=True wherever the keyword exists. The Lazy forms have their eager twin's defaults: "
    "LazyBatchNorm{1,2,3}d affine=True, track_running_stats=True (after the first call weight, bias and running "
    "stats of input.size(1) entries), LazyInstanceNorm{1,2,3}d affine=False, track_running_stats=False (after the "
    "first call no weight, bias or running stats).",
    "BatchNorm1d, SyncBatchNorm, InstanceNorm1d, GroupNorm, LayerNorm docstrings (signatures); "
    "LazyBatchNorm1d/2d/3d docstrings (affine, track_running_stats: Default: True); torch/nn/modules/instancenorm.py: "
    "LazyInstanceNorm1d/2d/3d docstrings (affine, track_running_stats: Default: False; "
    "docs.pytorch.org/docs/stable/generated/torch.nn.LazyInstanceNorm1d.html)")

# ---- input checks ----------------------------------------------------------------------
INPUT_RANK = rule(
    "norm.input.rank",
    "BatchNorm1d accepts 2D/3D, BatchNorm2d 4D, BatchNorm3d 5D input, SyncBatchNorm at least 2D; anything else "
    "raises ValueError 'expected ... input (got kD input)' before any state changes; LazyBatchNorm{1,2,3}d "
    "accepts and refuses what BatchNorm{1,2,3}d does, on its first call too (also a 0D or 1D input).",
    f"{BATCHNORM_PY}: BatchNorm1d/2d/3d._check_input_dim, SyncBatchNorm._check_input_dim; LazyBatchNorm1d/2d/3d "
    "docstrings (a BatchNorm{k}d with lazy initialization) and _check_input_dim")
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

INPUT_EPS = rule(
    "norm.input.eps",
    "eps is added to the variance, so it must keep the denominator positive: from 2.12 on, normalizing with batch "
    "statistics (training, or no running stats) with eps <= 0, or with running stats with eps < 0, raises ValueError "
    "'batch_norm eps must be ...' (eps == 0 with running stats normalizes); 2.10 and 2.11 reject every eps <= 0; "
    "before 2.10 any eps is used as given in the formula.",
    f"{BN_DOC} (eps: a value added to the denominator for numerical stability); torch/nn/functional.py: batch_norm "
    "(the eps checks added in 2.10 and narrowed in 2.12)")

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


# =========================================================================================
# the module: one call
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


def eps_rejected(eps: float, use_batch: bool) -> bool:
    """F.batch_norm's eps check, after the single-value check (it runs after _verify_batch_size).  Measured by
    reading torch/nn/functional.py: batch_norm of every release 2.4.1 ... 2.15.0: no check up to 2.9.1; 2.10.0 and
    2.11.0 reject eps <= 0; 2.12.1 on reject eps <= 0 when ``training`` (batch statistics) and eps < 0 otherwise.
    The messages differ ("must be positive", "... during training", "must be non-negative"): only their common
    start is compared."""
    if since("2.12"):
        return eps <= 0.0 if use_batch else eps < 0.0
    return since("2.10") and eps <= 0.0


def _torch_size_re(shape) -> str:
    return r"torch\.Size\(\[" + ", ".join(str(s) for s in shape) + r"\]\)"


def bn_state0(case) -> dict:
    """Module state right after construction."""
    return {"track": case.track, "momentum": case.momentum, "training": True, "has_buffers": case.track,
            "running_mean": None, "running_var": None, "num_batches_tracked": 0, "averaged": 0}


def documented_counts(call: str) -> tuple[int, int]:
    """How a training call that tracks statistics moves (num_batches_tracked, the number of batches in the
    momentum=None average), for a ``call`` that "raised", had an "empty" batch or had "data".

    What the documentation leaves open, the reference fixes as follows: a call that raises changes no
    state; an empty batch is a call (it counts in num_batches_tracked) but has no statistics, so it adds
    nothing to the simple average.  (torch's own counting is a registered divergence,
    suite/norm/divergences.py.)"""
    return {"raised": (0, 0), "empty": (1, 0), "data": (1, 1)}[call]


def bn_call(state: dict, x: np.ndarray, kind: str, num_features: int, eps: float, weight, bias,
            counts=documented_counts):
    """One forward of a BatchNorm module; mutates ``state``; returns y or Raised.  ``counts``: how a
    tracked training call moves the counters (see ``documented_counts``)."""
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
    elif eps_rejected(eps, use_batch):
        err = Raised("ValueError", r"^batch_norm eps must be ")
    elif passes_running and C != num_features:
        err = Raised("RuntimeError", rf"running_mean should contain {C} elements not {num_features}")
    elif weight is not None and C != num_features:
        err = Raised("RuntimeError", rf"weight should contain {C} elements not {num_features}")
    if update:
        tracked, averaged = counts("raised" if err is not None else "data" if x.size else "empty")
        state["num_batches_tracked"] += tracked
        state["averaged"] += averaged
    if err is not None:
        return err
    factor = 0.0 if state["momentum"] is None else state["momentum"]
    if update and state["momentum"] is None:
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


def weight_bias(case, inputs: dict):
    """The preset parameters of a BNCase (None where the module has none)."""
    weight = inputs["weight"] if case.affine else None
    return weight, (inputs["bias"] if case.affine and case.bias else None)


def bn_forward(case, inputs: dict) -> dict | Raised:
    """Outcome of one forward of a fresh module with preset parameters and running stats (a BNCase)."""
    weight, bias = weight_bias(case, inputs)
    state = bn_state0(case)
    state["training"] = case.training
    state["num_batches_tracked"] = state["averaged"] = case.nbt_before
    if case.track:
        state["running_mean"], state["running_var"] = inputs["running_mean"], inputs["running_var"]
    y = bn_call(state, inputs["x"], case.kind, case.num_features, case.eps, weight, bias)
    if isinstance(y, Raised):
        return y
    out = {"dtype": case.dtype, "shape": list(y.shape), "y": y}
    if case.track:
        out.update(running_mean=state["running_mean"], running_var=state["running_var"],
                   num_batches_tracked=state["num_batches_tracked"])
    return out


def construct(case) -> dict:
    """A freshly constructed module's parameters and buffers (a ConstructCase)."""
    C = case.num_features
    f = np.zeros(C)
    out = {"weight": np.ones(C) if case.affine else None,
           "bias": f if case.affine and case.bias else None}
    out["buffers"] = ({"running_mean": f, "running_var": np.ones(C), "num_batches_tracked": 0,
                       "dtypes": [case.dtype, case.dtype, "int64"]} if case.track else
                      {"running_mean": None, "running_var": None, "num_batches_tracked": None})
    return out


def defaults(case) -> dict:
    """The documented constructor defaults of a DefaultsCase's kind."""
    kind = case.kind
    if kind == "LayerNorm":
        return {"eps": 1e-5, "elementwise_affine": True, "has_bias": True}
    if kind == "GroupNorm":
        return {"eps": 1e-5, "affine": True, "has_bias": True}
    instance = base_kind(kind).startswith("InstanceNorm")
    out = {"eps": 1e-5, "momentum": 0.1, "affine": not instance, "track_running_stats": not instance,
           "has_bias": not instance}
    if kind.startswith("Lazy"):  # what the first call of a (N, num_features, *) input materializes
        shape = None if instance else [case.num_features]
        out["after_first_call"] = {name: shape for name in ("weight", "bias", "running_mean", "running_var")}
    return out


# =========================================================================================
# expectations, one function per test family
# =========================================================================================

def construct_expectations(case) -> list[Expect]:
    out = construct(case)
    return [part(CONSTRUCT_PARAMS, out, "weight"), part(CONSTRUCT_PARAMS, out, "bias"),
            part(CONSTRUCT_BUFFERS, out, "buffers")]


def defaults_expectations(case) -> list[Expect]:
    return [Expect(CONSTRUCT_DEFAULTS, defaults(case))]


def forward_rule(case) -> str:
    """The rule a BNCase's output is about: eval with or without running stats, or training with the
    full affine or one of the affine options."""
    if not case.training:
        return FORWARD_EVAL if case.track else FORWARD_UNTRACKED
    return FORWARD_BATCH if case.affine and case.bias else FORWARD_AFFINE


def running_rules(case) -> tuple[str, str]:
    """(rule of the running stats, rule of the counter) after one forward of a BNCase."""
    if not case.training:
        return RUNNING_EVAL_FROZEN, RUNNING_EVAL_FROZEN
    return (RUNNING_CUMULATIVE if case.momentum is None else RUNNING_MOMENTUM), RUNNING_COUNTER


def running_expectations(case, inputs: dict, out, rules: tuple[str, str]) -> list[Expect]:
    """running_mean / running_var / num_batches_tracked after one forward of a fresh module with tracked
    stats, under ``rules`` = (rule of the stats, rule of the counter)."""
    if not case.track:
        return []
    x = inputs["x"]
    return [part(rules[0], out, "running_mean", tols.running_mean_tol(case.dtype, x, case.eps, inputs["running_mean"])),
            part(rules[0], out, "running_var", tols.running_var_tol(case.dtype, x, case.eps, inputs["running_var"])),
            part(rules[1], out, "num_batches_tracked")]


def forward_expectations(case, inputs: dict) -> list[Expect]:
    """One forward of a fresh module: dtype and shape, the output, and the running statistics."""
    out = bn_forward(case, inputs)
    return [part(FORWARD_DTYPE, out, "dtype"), part(FORWARD_DTYPE, out, "shape"),
            part(forward_rule(case), out, "y", tols.bn_case_output_tol(case, inputs)),
            *running_expectations(case, inputs, out, running_rules(case))]


def ill_conditioned_expectations(case, inputs: dict) -> list[Expect]:
    """Large offsets, tiny variances: the output and the running variance within the grown bound."""
    out = bn_forward(case, inputs)
    expects = [part(FORWARD_ILL, out, "y", tols.bn_case_output_tol(case, inputs))]
    if case.track:
        expects.append(part(FORWARD_ILL, out, "running_var",
                            tols.running_var_tol(case.dtype, inputs["x"], case.eps, inputs["running_var"])))
    return expects


def rank_expectations(case, inputs: dict) -> list[Expect]:
    return [part(INPUT_RANK, bn_forward(case, inputs), "y")]


def channels_expectations(case, inputs: dict) -> list[Expect]:
    """A channel count other than num_features: only a module without per-channel tensors accepts it,
    and then its output is plain standardization."""
    tol = tols.bn_output_tol(case.dtype, inputs["x"], case.eps, None, None)
    return [part(INPUT_CHANNELS, bn_forward(case, inputs), "y", tol)]


def eps_expectations(case, inputs: dict) -> list[Expect]:
    return [part(INPUT_EPS, bn_forward(case, inputs), "y", tols.bn_case_output_tol(case, inputs))]


def single_value_expectations(case, inputs: dict) -> list[Expect]:
    return [part(INPUT_SINGLE_VALUE, bn_forward(case, inputs), "y", tols.bn_case_output_tol(case, inputs))]

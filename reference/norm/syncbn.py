"""SyncBatchNorm: global statistics over ranks, the distributed backward, the single-process fallback,
and convert_sync_batchnorm.

Sources: torch/nn/modules/batchnorm.py (SyncBatchNorm, convert_sync_batchnorm) and
torch/nn/modules/_functions.py (the SyncBatchNorm autograd function).
"""
from __future__ import annotations

import numpy as np

from conform.expect import Expect
from conform.outcome import Raised
from conform.rules import rule
from conform.tolerance import EXACT
from reference.norm import tolerances as tols
from reference.norm.batchnorm import BATCHNORM_PY, bn_forward
from reference.norm.core import batch_stats, channel_axes, ema, normalize, part, per_channel, unbiased

FUNCTIONS_PY = "torch/nn/modules/_functions.py"

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
# global statistics over ranks and the distributed backward
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
        # a frozen weight (requires_grad False) gets no gradient: autograd's None, which means zeros
        out["grad_weight"] = [np.zeros_like(d) for d in dws] if getattr(case, "frozen_weight", False) else dws
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
    """Structure and sharing after convert_sync_batchnorm (a ConvertCase)."""
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


# =========================================================================================
# expectations
# =========================================================================================

FORWARD_FIELDS = ("y", "running_mean", "running_var")
BACKWARD_FIELDS = ("grad_input", "grad_weight", "grad_bias")
CPU_REJECTED = Raised("ValueError", r"^SyncBatchNorm expected input tensor to be on GPU")


def _fields(rule_: str, expected: dict, bounds: dict, keys) -> list[Expect]:
    return [Expect(rule_, expected[key], bounds[key], key) for key in keys if key in expected]


def concat_expectations(case, inputs: dict) -> list[Expect]:
    """The multi-rank math (a SyncCase, inputs: cases.make_sync_inputs) against BatchNorm over the
    concatenated batch, field by field."""
    return _fields(SYNC_REFERENCE_CONCAT, sync_as_concat(case, inputs), tols.sync_field_tols(case, inputs),
                   FORWARD_FIELDS + BACKWARD_FIELDS)


def _ranks_expectations(case, inputs: dict, forward_rule: str, backward_rule: str) -> list[Expect]:
    """Every rank's outcome (lists over ranks); every rank ends with the same running stats and counter."""
    world = len(case.rank_batches)
    expected = sync_forward_backward(case, inputs)
    for key in ("running_mean", "running_var"):
        if key in expected:
            expected[key] = [expected[key]] * world
    if case.track:
        expected["num_batches_tracked"] = [case.nbt_before + 1] * world
    bounds = {**tols.sync_field_tols(case, inputs), "num_batches_tracked": EXACT}
    return (_fields(forward_rule, expected, bounds, FORWARD_FIELDS)
            + _fields(backward_rule, expected, bounds, BACKWARD_FIELDS)
            + _fields(forward_rule, expected, bounds, ("num_batches_tracked",)))


def function_expectations(case, inputs: dict) -> list[Expect]:
    """torch's SyncBatchNorm function over the ranks; a case with an empty rank is about that rule."""
    if 0 in case.rank_batches:
        return _ranks_expectations(case, inputs, SYNC_EMPTY_RANK, SYNC_EMPTY_RANK)
    return _ranks_expectations(case, inputs, SYNC_FORWARD, SYNC_BACKWARD)


def cuda_module_expectations(case, inputs: dict) -> list[Expect]:
    """The real nn.SyncBatchNorm module (CUDA kernels) over the ranks."""
    return _ranks_expectations(case, inputs, SYNC_CUDA_MODULE, SYNC_CUDA_MODULE)


def equals_concat_expectations(case, inputs: dict, concat: dict) -> list[Expect]:
    """torch against torch: SyncBatchNorm over the ranks, assembled as BatchNorm on the concatenated batch
    reports it, equals ``concat`` (torch's BatchNorm on the concatenated batch) within both sides' errors."""
    return _fields(SYNC_EQUALS_CONCAT, concat, tols.sync_field_tols(case, inputs, sides=2),
                   FORWARD_FIELDS + BACKWARD_FIELDS)


def cpu_rejected_expectations(case) -> list[Expect]:
    """Every rank's nn.SyncBatchNorm rejects CPU input once a process group of size > 1 exists."""
    return [Expect(SYNC_CPU_REJECTED, [CPU_REJECTED] * len(case.rank_batches))]


def fallback_expectations(case, inputs: dict) -> list[Expect]:
    """SyncBatchNorm without a process group (a BNCase of kind SyncBatchNorm): BatchNorm's outcome."""
    out = bn_forward(case, inputs)
    expects = [part(SYNC_FALLBACK, out, "y", tols.bn_case_output_tol(case, inputs))]
    if case.track and not isinstance(out, Raised):
        expects += [part(SYNC_FALLBACK, out, "running_var",
                         tols.running_var_tol(case.dtype, inputs["x"], case.eps, inputs["running_var"])),
                    part(SYNC_FALLBACK, out, "num_batches_tracked")]
    return expects


def convert_expectations(case) -> list[Expect]:
    out = convert_outcome(case)
    return [part(CONVERT_REPLACE, out, "root_same_object"), part(CONVERT_REPLACE, out, "modules"),
            part(CONVERT_SHARES, out, "bn")]

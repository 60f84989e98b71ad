"""CPU stand-ins for the five SyncBatchNorm kernels torch's CPU build lacks (float64 math, the CUDA
kernels' calling conventions): "CPU stand-in kernels", installed in CPU rank processes only, so that
torch's own ``_functions.SyncBatchNorm`` (all_gather, count masking, all_reduce, backward) runs for real."""
from __future__ import annotations

import torch


def _acc_dtype(t: torch.Tensor) -> torch.dtype:
    # the CUDA kernels return statistics in the accumulate type (float for half inputs)
    return t.dtype if t.dtype in (torch.float32, torch.float64) else torch.float32


def _cview(v: torch.Tensor, ndim: int) -> torch.Tensor:
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _axes(ndim: int) -> list[int]:
    return [0] + list(range(2, ndim))


def stand_in_stats(input, eps):
    x = input.double()
    mean = x.mean(dim=_axes(x.dim()))
    var = ((x - _cview(mean, x.dim())) ** 2).mean(dim=_axes(x.dim()))
    return mean.to(_acc_dtype(input)), (1.0 / torch.sqrt(var + eps)).to(_acc_dtype(input))


def stand_in_gather_stats_with_counts(input, mean_all, invstd_all, running_mean, running_var, momentum, eps,
                                      counts):
    n = counts.double().reshape(-1, 1)
    means, invstds = mean_all.double(), invstd_all.double()
    total = n.sum()
    mean = (n * means).sum(0) / total
    var = (n * (1.0 / invstds ** 2 - eps + (means - mean) ** 2)).sum(0) / total
    with torch.no_grad():
        if running_mean is not None:
            running_mean.copy_((1 - momentum) * running_mean.double() + momentum * mean)
        if running_var is not None:
            running_var.copy_((1 - momentum) * running_var.double() + momentum * var * total / (total - 1))
    return mean.to(mean_all.dtype), (1.0 / torch.sqrt(var + eps)).to(mean_all.dtype)


def stand_in_elemt(input, weight, bias, mean, invstd, eps):
    nd = input.dim()
    y = (input.double() - _cview(mean.double(), nd)) * _cview(invstd.double(), nd)
    if weight is not None:
        y = y * _cview(weight.double(), nd)
    if bias is not None:
        y = y + _cview(bias.double(), nd)
    return y.to(input.dtype)


def stand_in_backward_reduce(grad_out, input, mean, invstd, weight, input_g, weight_g, bias_g):
    nd = input.dim()
    dy = grad_out.double()
    xmu = input.double() - _cview(mean.double(), nd)
    sum_dy = dy.sum(dim=_axes(nd))
    sum_dy_xmu = (dy * xmu).sum(dim=_axes(nd))
    wdt = weight.dtype if weight is not None else input.dtype
    grad_weight = (sum_dy_xmu * invstd.double()).to(wdt) if weight_g else None
    grad_bias = sum_dy.to(wdt) if bias_g else None
    return sum_dy.to(mean.dtype), sum_dy_xmu.to(mean.dtype), grad_weight, grad_bias


def stand_in_backward_elemt(grad_out, input, mean, invstd, weight, sum_dy, sum_dy_xmu, count):
    nd = input.dim()
    total = count.double().sum()
    inv = _cview(invstd.double(), nd)
    xmu = input.double() - _cview(mean.double(), nd)
    w = _cview(weight.double(), nd) if weight is not None else 1.0
    dx = (grad_out.double() - _cview(sum_dy.double(), nd) / total
          - xmu * inv ** 2 * _cview(sum_dy_xmu.double(), nd) / total) * inv * w
    return dx.to(input.dtype)


STAND_INS = {"batch_norm_stats": stand_in_stats,
             "batch_norm_gather_stats_with_counts": stand_in_gather_stats_with_counts,
             "batch_norm_elemt": stand_in_elemt,
             "batch_norm_backward_reduce": stand_in_backward_reduce,
             "batch_norm_backward_elemt": stand_in_backward_elemt}


def install_stand_ins() -> None:
    """Rank processes on CPU only: torch's _functions.SyncBatchNorm looks these up on the torch module."""
    for name, fn in STAND_INS.items():
        setattr(torch, name, fn)

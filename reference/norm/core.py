"""What the topics share: per-channel statistics, the normalization formulas (numpy float64), and
``part``, the expectation on one part of an outcome."""
from __future__ import annotations

import numpy as np

from conform.expect import Expect
from conform.outcome import Raised
from conform.tolerance import EXACT, Tol


def part(rule: str, outcome, key, tol: Tol = EXACT) -> Expect:
    """``rule``'s expectation on ``outcome[key]``; an expected error is about the whole outcome."""
    if isinstance(outcome, Raised):
        return Expect(rule, outcome)
    return Expect(rule, outcome[key], tol, key)


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


def standardize(x: np.ndarray, axes: tuple[int, ...], eps: float) -> np.ndarray:
    """(x - mean) / sqrt(biased var + eps) with the statistics over ``axes``."""
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)

"""LocalResponseNorm and CrossMapLRN2d: normalization across neighbouring channels, forward and input gradient.

Sources: the LocalResponseNorm docstring (torch/nn/modules/normalization.py, docs.pytorch.org
.../generated/torch.nn.LocalResponseNorm.html):

    b_c = a_c (k + alpha / n * sum_{c' = max(0, c - n/2)}^{min(N - 1, c + n/2)} a_{c'}^2)^(-beta)

with n = size and N the number of channels; the summation bounds are integers, so the window of channel c
is [c - floor(n/2), c + floor(n/2)] clipped to the channels.  CrossMapLRN2d (torch.nn.CrossMapLRN2d, the
legacy "SpatialCrossMapLRN"; no Python doc page: its C++ counterpart torch::nn::CrossMapLRN2d documents the
same four options size, alpha, beta, k) is the same cross-channel normalization restricted to 4D input.
The backward of either is the gradient of that formula (autograd's contract for a Function).
"""
from __future__ import annotations

import numpy as np

from conform.expect import Expect
from conform.outcome import Raised
from conform.rules import rule
from reference.norm import tolerances as tols

LRN_DOC = "https://docs.pytorch.org/docs/stable/generated/torch.nn.LocalResponseNorm.html"
NORMALIZATION_PY = "torch/nn/modules/normalization.py"

LRN_FORWARD = rule(
    "norm.lrn.forward",
    "LocalResponseNorm(n, alpha, beta, k): b_c = a_c (k + alpha/n * sum of a_c'^2 over the channels c' in "
    "[c - floor(n/2), c + floor(n/2)] clipped to [0, N-1])^(-beta), for input (N, C, *) of any rank >= 3.",
    f"{LRN_DOC} (formula)")
LRN_BACKWARD = rule(
    "norm.lrn.backward",
    "LocalResponseNorm's input gradient is the gradient of the documented formula: dx_j = dy_j D_j^-beta - "
    "2 alpha beta / n * a_j * sum over the channels c whose window holds j of dy_c a_c D_c^(-beta-1).",
    f"{LRN_DOC} (formula); autograd")
LRN_RANK = rule(
    "norm.lrn.rank",
    "LocalResponseNorm rejects input of fewer than 3 dims and CrossMapLRN2d any input that is not 4D, with "
    "ValueError.",
    "torch/nn/functional.py: local_response_norm; torch/nn/modules/_functions.py: CrossMapLRN2d.forward")
CROSSMAP_FORWARD = rule(
    "norm.crossmap.forward",
    "CrossMapLRN2d(size, alpha, beta, k) on (N, C, H, W) input computes the cross-channel LRN formula of "
    "LocalResponseNorm(size, alpha, beta, k).",
    f"{NORMALIZATION_PY}: CrossMapLRN2d; C++ torch::nn::CrossMapLRN2d (docs.pytorch.org/cppdocs); {LRN_DOC}")
CROSSMAP_BACKWARD = rule(
    "norm.crossmap.backward",
    "CrossMapLRN2d's backward returns the gradient of its forward formula (the LocalResponseNorm gradient).",
    "torch/nn/modules/_functions.py: CrossMapLRN2d.backward; autograd.Function contract")


def documented_windows(channels: int, size: int) -> list[list[int]]:
    """The channels summed for each channel c: [c - floor(n/2), c + floor(n/2)] within [0, channels - 1]."""
    h = size // 2
    return [list(range(max(0, c - h), min(channels - 1, c + h) + 1)) for c in range(channels)]


def rank_error(case, ndim: int) -> Raised | None:
    if case.kind == "CrossMapLRN2d":
        return None if ndim == 4 else Raised("ValueError", rf"^CrossMapLRN2d: Expected input to be 4D, got {ndim}D")
    return None if ndim >= 3 else Raised("ValueError", r"^Expected 3D or higher dimensionality")


def denominators(x: np.ndarray, size: int, alpha: float, k: float, windows) -> np.ndarray:
    """D_c = k + alpha / n * sum_{c' in window(c)} a_c'^2, shaped like x."""
    sq = x ** 2
    s = np.stack([sq[:, w].sum(axis=1) for w in windows], axis=1) if x.shape[1] else sq
    return k + alpha / size * s


def lrn_forward(x, size, alpha, beta, k, windows) -> np.ndarray:
    return x * denominators(x, size, alpha, k, windows) ** (-beta)


def lrn_grad(x, dy, size, alpha, beta, k, windows) -> np.ndarray:
    """The gradient of lrn_forward for the upstream gradient dy."""
    D = denominators(x, size, alpha, k, windows)
    t = dy * x * D ** (-beta - 1.0)  # per channel c: dy_c a_c D_c^(-beta-1)
    back = np.zeros_like(x)
    for c, w in enumerate(windows):
        back[:, w] += t[:, c:c + 1]
    return dy * D ** (-beta) - 2.0 * alpha * beta / size * x * back


def lrn_outcome(case, inputs: dict, windows=documented_windows) -> dict | Raised:
    """Forward (or, with case.backward, the input gradient) of an LRNCase; ``windows(C, size)``: the channels
    summed per channel (the documented ones unless a divergence entry says what torch sums)."""
    x = inputs["x"]
    err = rank_error(case, x.ndim)
    if err is not None:
        return err
    w = windows(x.shape[1], case.size)
    if case.backward:
        return {"grad_input": lrn_grad(x, inputs["dy"], case.size, case.alpha, case.beta, case.k, w)}
    return {"y": lrn_forward(x, case.size, case.alpha, case.beta, case.k, w)}


def rules_of(case) -> tuple[str, str]:
    """(forward rule, backward rule) of an LRNCase's kind."""
    if case.kind == "CrossMapLRN2d":
        return CROSSMAP_FORWARD, CROSSMAP_BACKWARD
    return LRN_FORWARD, LRN_BACKWARD


def expectations(case, inputs: dict) -> list[Expect]:
    out = lrn_outcome(case, inputs)
    if isinstance(out, Raised):
        return [Expect(LRN_RANK, out)]
    forward, backward = rules_of(case)
    if case.backward:
        tol = tols.lrn_grad_tol(case.dtype, inputs["x"], inputs["dy"], case.size, case.alpha, case.beta, case.k)
        return [Expect(backward, out["grad_input"], tol, "grad_input")]
    tol = tols.lrn_output_tol(case.dtype, inputs["x"], case.size, case.beta, case.k)
    return [Expect(forward, out["y"], tol, "y")]

"""Tolerances of the ``norm`` area: its one home, all through ``conform.tolerance.tolerance``.

Error model (float ``dtype`` with unit roundoff u, per channel: n summed values, M = max|x|,
sd = sqrt(var + eps), c = M / sd >= 1, xhat = (x - mean) / sd):

- the mean is a sum of n terms: absolute error <= (n - 1) u M; after the subtraction and the
  division by sd this is (n - 1) u c in xhat -- the "growth by 1/sqrt(var + eps) x magnitude";
- the variance from a stable algorithm (two-pass on CPU, Welford on CUDA) has relative error
  <= (n - 1) u c (Chan, Golub & LeVeque 1983), i.e. an error (n - 1) u c |xhat| / 2 in xhat;
- scale, shift and the few elementwise ops add ``ops`` roundings.

So an output's absolute error is <= 2 u (ops + n - 1) c * S with S = (1 + max|xhat|) max|w| + max|b|,
which is ``tolerance(dtype, ops, reduction=n, cond=c, scale=S)``.  A planted bug (biased vs unbiased
variance, a dropped eps, a wrong count across ranks) is an O(1/n) relative error, far above it.
Comparisons of torch against torch (``sides=2``) double ops and reduction: each side has the error.
"""
from __future__ import annotations

import numpy as np

from conform.tolerance import EXACT, Tol, tolerance
from reference.norm.core import channel_axes


def _max(a, default: float = 0.0) -> float:
    if a is None:
        return default
    a = np.asarray(a, dtype=np.float64)
    return float(np.max(np.abs(a))) if a.size else default


def _groups(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """x as (groups, n): one row per normalized group (axes = the reduced axes)."""
    keep = [a for a in range(x.ndim) if a not in axes]
    return np.transpose(x, keep + list(axes)).reshape(int(np.prod([x.shape[a] for a in keep])), -1)


def normalize_tol(dtype: str, x: np.ndarray, axes: tuple[int, ...], eps: float, weight=None, bias=None,
                  mean=None, var=None, ops: int = 8, sides: int = 1) -> Tol:
    """Bound for y = (x - mean) / sqrt(var + eps) * w + b, statistics over ``axes`` (or given: eval)."""
    if x.size == 0:
        return tolerance(dtype, ops=ops * sides)
    g = _groups(x, axes)
    n = g.shape[1]
    if mean is None:
        m = g.mean(axis=1)
        v = ((g - m[:, None]) ** 2).mean(axis=1)
        reduction = n
    else:
        # eval: per-channel given stats; rows of g are channels when axes are (0, 2, ...)
        m, v = np.asarray(mean, dtype=np.float64), np.asarray(var, dtype=np.float64)
        reduction = 1
    sd = np.sqrt(v + eps)
    mag = np.max(np.abs(g), axis=1) + (np.abs(m) if mean is not None else 0.0)
    cond = max(1.0, float(np.max(mag / sd)))
    xhat = float(np.max(np.abs(g - m[:, None]) / sd[:, None]))
    scale = (1.0 + xhat) * (_max(weight, 1.0) if weight is not None else 1.0) + _max(bias)
    return tolerance(dtype, ops=ops * sides, reduction=reduction * sides, cond=cond, scale=scale)


def bn_output_tol(dtype, x, eps, weight, bias, running=None, sides: int = 1) -> Tol:
    """BatchNorm output; ``running=(mean, var)`` in eval with running stats."""
    axes = channel_axes(x.ndim)
    if running is None:
        return normalize_tol(dtype, x, axes, eps, weight, bias, sides=sides)
    return normalize_tol(dtype, x, axes, eps, weight, bias, mean=running[0], var=running[1], sides=sides)


def channel_stats(x: np.ndarray, eps: float):
    g = _groups(x, channel_axes(x.ndim))
    n = g.shape[1]
    m = g.mean(axis=1)
    v = ((g - m[:, None]) ** 2).mean(axis=1)
    sd = np.sqrt(v + eps)
    cond = max(1.0, float(np.max(np.max(np.abs(g), axis=1) / sd)))
    xhat = float(np.max(np.abs(g - m[:, None]) / sd[:, None]))
    return n, m, v, sd, cond, xhat


def running_mean_tol(dtype, x, eps, running_mean, steps: int = 1, sides: int = 1) -> Tol:
    """(1 - f) r + f mean: the mean's sum error (n - 1) u M plus a few roundings per update; errors of
    ``steps`` updates add up (each update contracts the previous error by 1 - f <= 1)."""
    if x.size == 0:
        return tolerance(dtype, ops=4 * steps * sides, scale=_max(running_mean))
    n = x.size // x.shape[1]
    scale = max(_max(x), _max(running_mean))
    return tolerance(dtype, ops=4 * steps * sides, reduction=n * steps * sides, scale=scale)


def running_var_tol(dtype, x, eps, running_var, steps: int = 1, sides: int = 1) -> Tol:
    """(1 - f) r + f var * n / (n - 1): relative error of the variance (n - 1) u c (see module doc)."""
    if x.size == 0 or x.size // x.shape[1] < 2:
        return tolerance(dtype, ops=4 * steps * sides, scale=_max(running_var))
    n, _, v, _, cond, _ = channel_stats(x, eps)
    scale = max(_max(running_var), float(np.max(v)) * n / (n - 1), 1e-300)
    return tolerance(dtype, ops=6 * steps * sides, reduction=n * steps * sides, cond=cond, scale=scale)


def grad_input_tol(dtype, x, dy, eps, weight, sides: int = 1) -> Tol:
    """dx = w invstd (dy - mean(dy) - xhat mean(dy xhat)): sums of n terms of size |dy|(1 + |xhat|),
    then the forward's xhat error (n - 1) u c; scaled by |w| invstd."""
    n, _, _, sd, cond, xhat = channel_stats(x, eps)
    scale = _max(weight, 1.0) * float(np.max(1.0 / sd)) * _max(dy, 1.0) * (1.0 + xhat) ** 2
    return tolerance(dtype, ops=10 * sides, reduction=n * sides, cond=cond, scale=scale)


def grad_weight_tol(dtype, x, dy, eps, sides: int = 1) -> Tol:
    """sum(dy * xhat): n terms of size |dy||xhat|, each xhat off by (n - 1) u c."""
    n, _, _, _, cond, xhat = channel_stats(x, eps)
    scale = n * _max(dy, 1.0) * (1.0 + xhat)
    return tolerance(dtype, ops=8 * sides, reduction=n * sides, cond=cond, scale=scale)


def grad_bias_tol(dtype, x, dy, sides: int = 1) -> Tol:
    """sum(dy): n terms."""
    n = max(x.size // max(x.shape[1], 1), 1)
    return tolerance(dtype, ops=2 * sides, reduction=n * sides, scale=n * _max(dy, 1.0))


def eval_grad_tols(dtype, x, dy, eps, weight, running_mean, running_var) -> tuple[Tol, Tol, Tol]:
    """Eval backward: dx = dy w / sqrt(rv + eps) (elementwise); dw = sum(dy xhat); db = sum(dy)."""
    n = max(x.size // x.shape[1], 1)
    sd = np.sqrt(np.asarray(running_var) + eps)
    g = _groups(x, channel_axes(x.ndim))
    mag = np.max(np.abs(g), axis=1) + np.abs(running_mean)
    cond = max(1.0, float(np.max(mag / sd)))
    xhat = float(np.max(np.abs(g - np.asarray(running_mean)[:, None]) / sd[:, None]))
    dx = tolerance(dtype, ops=4, scale=_max(dy, 1.0) * _max(weight, 1.0) * float(np.max(1.0 / sd)))
    dw = tolerance(dtype, ops=6, reduction=n, cond=cond, scale=n * _max(dy, 1.0) * (1.0 + xhat))
    return dx, dw, grad_bias_tol(dtype, x, dy)


def other_grad_tols(dtype, groups: np.ndarray, x: np.ndarray, dy: np.ndarray, eps: float, weight,
                    param_size: int) -> tuple[Tol, Tol, Tol]:
    """Instance/Group/LayerNorm backward.  ``groups`` is x as (rows, n), one row per normalized group.

    - dx: the BatchNorm bound of ``grad_input_tol`` with the groups in the role of channels (sums of n
      terms, xhat off by (n - 1) u c, scaled by |w| invstd);
    - dweight = sum of P = x.size / param_size terms dy * xhat, each xhat off by (n - 1) u c: reduction
      n + P, terms of size |dy| (1 + |xhat|);
    - dbias = sum of P terms |dy|.
    """
    g = groups.T  # (n, rows): channel_stats' "channels" are the groups
    n, _, _, _, cond, xhat = channel_stats(g, eps)
    P = max(x.size // max(param_size, 1), 1)
    dx = grad_input_tol(dtype, g, dy, eps, weight)  # uses dy only through max|dy|
    dw = tolerance(dtype, ops=8, reduction=n + P, cond=cond, scale=P * _max(dy, 1.0) * (1.0 + xhat))
    db = tolerance(dtype, ops=2, reduction=P, scale=P * _max(dy, 1.0))
    return dx, dw, db


def instance_running_tols(dtype, x: np.ndarray, eps: float, running_mean, running_var) -> tuple[Tol, Tol]:
    """InstanceNorm running stats: per-instance mean / unbiased variance over n spatial values (the
    running_mean_tol / running_var_tol bounds with the instances in the role of channels), then averaged over
    the N samples (N more terms in the sum) and one momentum update."""
    N, C = x.shape[:2]
    inst = x.reshape(N * C, -1).T  # (n, N * C): one column per instance
    n, _, v, _, cond, _ = channel_stats(inst, eps)
    mean_tol = tolerance(dtype, ops=4, reduction=n + N, scale=max(_max(x), _max(running_mean)))
    if n < 2:
        return mean_tol, tolerance(dtype, ops=4, scale=_max(running_var))
    var_scale = max(_max(running_var), float(np.max(v)) * n / (n - 1), 1e-300)
    return mean_tol, tolerance(dtype, ops=6, reduction=n + N, cond=cond, scale=var_scale)


# ---- per Case: the bounds each topic's expectations carry ------------------------------------------------

def bn_case_output_tol(case, inputs: dict) -> Tol:
    """A BNCase's output: batch statistics, or the preset running stats in eval with tracked stats."""
    w = inputs["weight"] if case.affine else None
    b = inputs["bias"] if case.affine and case.bias else None
    use_batch = case.training or not case.track
    running = None if use_batch else (inputs["running_mean"], inputs["running_var"])
    return bn_output_tol(case.dtype, inputs["x"], case.eps, w, b, running)


def other_output_tol(case, inputs: dict) -> Tol:
    """An OtherNormCase's output: InstanceNorm in eval with running stats normalizes per channel as
    BatchNorm's eval does; otherwise the statistics are over each normalized group."""
    x = inputs["x"]
    w = inputs["weight"] if case.affine else None
    b = inputs["bias"] if case.affine else None
    if "InstanceNorm" in case.kind:
        if not case.training and case.track:
            return bn_output_tol(case.dtype, x, case.eps, w, b, (inputs["running_mean"], inputs["running_var"]))
        return normalize_tol(case.dtype, x, tuple(range(2, x.ndim)), case.eps, w, b)
    if case.kind == "GroupNorm":
        return normalize_tol(case.dtype, x.reshape(x.shape[0], case.groups, -1), (2,), case.eps, w, b)
    return normalize_tol(case.dtype, x, tuple(range(x.ndim - case.norm_dims, x.ndim)), case.eps, w, b)


def sync_field_tols(case, inputs: dict, sides: int = 1) -> dict:
    """A SyncCase's per-field bounds, from the concatenated batch (the statistics are global)."""
    x = np.concatenate(inputs["xs"])
    dy = np.concatenate(inputs["dys"])
    w = inputs["weight"] if case.affine else None
    b = inputs["bias"] if case.affine and case.bias else None
    return {"y": bn_output_tol(case.dtype, x, case.eps, w, b, sides=sides),
            "grad_input": grad_input_tol(case.dtype, x, dy, case.eps, w, sides=sides),
            "grad_weight": grad_weight_tol(case.dtype, x, dy, case.eps, sides=sides),
            "grad_bias": grad_bias_tol(case.dtype, x, dy, sides=sides),
            "running_mean": running_mean_tol(case.dtype, x, case.eps, inputs["running_mean"], sides=sides),
            "running_var": running_var_tol(case.dtype, x, case.eps, inputs["running_var"], sides=sides)}


def seq_step_tol(seq, k: int, field: str, inputs: list[dict], training: bool, records: list[dict]) -> Tol:
    """Field ``field`` after the k-th forward of a BNSeqCase.  Errors of every earlier update add up (each
    update contracts the old error by 1 - f <= 1): ``steps`` updates of ``n_total`` summed values,
    conditioning the worst batch's.  ``training``: the module's mode at that forward."""
    if field == "num_batches_tracked":
        return EXACT
    xs = [inputs[j + 1]["x"] for j in range(k + 1) if inputs[j + 1]["x"].shape[0]]
    steps = max(len(xs), 1)
    n_total = sum(x.size // x.shape[1] for x in xs) or 1
    batch = [channel_stats(x, seq.eps) for x in xs if x.size // x.shape[1] > 1]
    cond = max([b[4] for b in batch] + [1.0])
    M = max([float(np.max(np.abs(x))) for x in xs] + [1.0])
    rec = records[k]
    if field == "y":
        x = inputs[k + 1]["x"]
        w = inputs[0]["weight"] if seq.affine else None
        b = inputs[0]["bias"] if seq.affine else None
        use_batch = training or not seq.track
        if use_batch or x.size == 0:
            return bn_output_tol(seq.dtype, x, seq.eps, w, b)
        # eval: the running stats carry the error of every earlier update
        rm, rv = rec["running_mean"], rec["running_var"]
        sd = np.sqrt(rv + seq.eps)
        as_channels = (1, -1) + (1,) * (x.ndim - 2)
        xhat = float(np.max(np.abs(x - rm.reshape(as_channels)) / sd.reshape(as_channels)))
        cond_eval = max(cond, float(np.max((np.max(np.abs(x)) + np.abs(rm)) / sd)))
        scale = (1 + xhat) * (float(np.max(np.abs(w))) if w is not None else 1.0) + (
            float(np.max(np.abs(b))) if b is not None else 0.0)
        return tolerance(seq.dtype, ops=8 * steps, reduction=n_total, cond=cond_eval, scale=scale)
    if field == "running_mean":
        return tolerance(seq.dtype, ops=4 * steps, reduction=n_total, scale=max(M, 1.0))
    var_scale = max([float(np.max(b[2])) * b[0] / (b[0] - 1) for b in batch]
                    + [float(np.max(rec["running_var"])), 1.0])
    return tolerance(seq.dtype, ops=6 * steps, reduction=n_total, cond=cond, scale=var_scale)


def lazy_tols(case, x: np.ndarray) -> dict:
    """A Lazy module's first call: default parameters (weight ones, no shift) and fresh running stats
    (zeros, ones) of size C = x.shape[1]."""
    C = x.shape[1]
    use_batch = case.training or not case.track
    w = np.ones(C) if case.affine else None
    running = None if use_batch else (np.zeros(C), np.ones(C))
    return {"y": bn_output_tol(case.dtype, x, case.eps, w, None, running),
            "running_mean": running_mean_tol(case.dtype, x, case.eps, np.zeros(C)),
            "running_var": running_var_tol(case.dtype, x, case.eps, np.ones(C)),
            "num_batches_tracked": EXACT}


# ---- LocalResponseNorm / CrossMapLRN2d, RMSNorm ---------------------------------------------------------------

def lrn_output_tol(dtype, x: np.ndarray, size: int, beta: float, k: float) -> Tol:
    """b = a D^-beta, D = k + alpha/n * (sum of <= n + 1 squares): no cancellation (every term >= 0, D >= k), so
    D carries a relative error of the sum (reduction n + 1) plus a few roundings; the power multiplies it by
    beta (cond) and adds its own few ulps; |b| <= max|a| k^-beta."""
    return tolerance(dtype, ops=8, reduction=size + 1, cond=max(1.0, beta), scale=_max(x) * k ** (-beta))


def lrn_grad_tol(dtype, x: np.ndarray, dy: np.ndarray, size: int, alpha: float, beta: float, k: float) -> Tol:
    """dx_j = dy_j D_j^-beta - 2 alpha beta / n a_j sum_c dy_c a_c D_c^(-beta-1): the second term cancels the
    first; each is bounded by the magnitudes below and carries D's relative error times (beta + 1)."""
    M, G = _max(x), _max(dy, 1.0)
    scale = G * k ** (-beta) + 2.0 * alpha * beta / size * (size + 1) * M * M * G * k ** (-beta - 1.0)
    return tolerance(dtype, ops=12, reduction=size + 1, cond=beta + 1.0, scale=scale)


def rms_output_tol(dtype, x: np.ndarray, norm_dims: int, eps: float, weight) -> Tol:
    """y = x / sqrt(eps + mean(x^2)) * w: a mean of n squares (no cancellation), a square root, a few products;
    |x| / RMS(x) <= sqrt(n)."""
    n = int(np.prod(x.shape[x.ndim - norm_dims:])) if x.size else 1
    return tolerance(dtype, ops=6, reduction=n, scale=float(np.sqrt(n)) * _max(weight, 1.0))


def rms_grad_tols(dtype, x: np.ndarray, dy: np.ndarray, norm_dims: int, eps: float, weight) -> tuple[Tol, Tol]:
    """dx = r (g - x r^2 mean(g x)) with r = 1/RMS, g = dy w: terms up to r |g| (1 + n) (|x| r <= sqrt(n)),
    a mean of n terms; dweight = sum over P leading positions of dy x r (|x r| <= sqrt(n)), each r off by the
    mean of n squares."""
    n = int(np.prod(x.shape[x.ndim - norm_dims:]))
    P = max(x.size // max(n, 1), 1)
    axes = tuple(range(x.ndim - norm_dims, x.ndim))
    r = float(np.max(1.0 / np.sqrt(eps + (x ** 2).mean(axis=axes))))
    G = _max(dy, 1.0) * _max(weight, 1.0)
    gi = tolerance(dtype, ops=10, reduction=n, scale=r * G * (1.0 + n))
    gw = tolerance(dtype, ops=8, reduction=n + P, scale=P * _max(dy, 1.0) * float(np.sqrt(n)))
    return gi, gw

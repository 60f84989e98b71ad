"""The numerics every attention model shares, in numpy float64: softmax, attention, one attention block.

Fully masked rows (a query row with no visible key): the documented formulas (the SDPA
docstring's "equivalent to" code, MHA's ``softmax(QK^T/sqrt(d) + mask)``) are a softmax
over no finite score, i.e. NaN, and that is what torch 2.4 returns on every path.  From
2.5 the maintainers chose 0 on purpose (pytorch#131060 adds ``_safe_softmax``,
pytorch#133882 makes SDPA and its fused kernels use it): the reference follows that
change from 2.5 on (``fully_masked_rows_are_zero``).  The SDPA docstring still implies
NaN (a documentation divergence), and the MHA paths that still return NaN are registered
divergences (suite/attention/divergences.py), which describe them through the neutral
``softmax=`` parameter of ``attend`` / ``attention_block`` with ``literal_softmax``.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from reference.versions import since


def fully_masked_rows_are_zero() -> bool:
    """The convention for a softmax row with no finite score in attention.

    Before 2.5: NaN, the documented formula (0/0).  Since 2.5: 0 -- a deliberate change
    (pytorch#131060 "Add a private _safe_softmax", pytorch#133882 "Update fused kernels and
    call _safe_softmax from SDPA": "Changes the stance of SDPA on what to do for fully
    masked out rows").  Measured on CPU: 2.4.1 NaN on every SDPA backend and MHA path,
    2.5.1 0 on math, flash and default dispatch.
    """
    return since("2.5")


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row softmax in float64; a row with no finite score follows the release's convention
    (``fully_masked_rows_are_zero``: NaN before 2.5, 0 since)."""
    p = literal_softmax(scores)
    return np.nan_to_num(p, nan=0.0) if fully_masked_rows_are_zero() else p


def literal_softmax(scores: np.ndarray) -> np.ndarray:
    """The docstrings' softmax taken literally (``torch.softmax`` in SDPA's "equivalent" code): a row with no
    finite score is 0/0 = NaN on every release."""
    mx = np.max(scores, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        e = np.exp(scores - np.where(np.isfinite(mx), mx, 0.0))
        return np.where(np.isfinite(mx), e / e.sum(axis=-1, keepdims=True), np.nan)


def attend(q: np.ndarray, k: np.ndarray, v: np.ndarray, bias: np.ndarray | float, scale: float,
           softmax: Callable[[np.ndarray], np.ndarray] = softmax):
    """(out, probs) for q (..., L, E), k (..., S, E), v (..., S, Ev), additive bias (..., L, S);
    ``softmax`` normalizes the rows of scores (the documented one by default)."""
    p = softmax(q @ np.swapaxes(k, -1, -2) * scale + bias)
    with np.errstate(invalid="ignore"):
        return p @ v, p


def score_bound(q: np.ndarray, k: np.ndarray, scale: float, bias: np.ndarray | float = 0.0) -> float:
    """Sum-of-magnitudes bound on |scores|: the softmax conditioning used by the tolerances."""
    s = np.abs(q) @ np.swapaxes(np.abs(k), -1, -2) * abs(scale)
    b = np.abs(np.where(np.isfinite(bias), bias, 0.0)) if np.ndim(bias) else 0.0
    return float(np.max(s + b)) if s.size else 0.0


def excluded_rows(bias: np.ndarray) -> np.ndarray:
    """The (..., query row) whose every key is excluded (-inf) by an additive bias (..., L, S)."""
    return np.isneginf(bias).all(axis=-1)


def attention_block(P: dict, x_q: np.ndarray, x_k: np.ndarray, x_v: np.ndarray, H: int, bias: np.ndarray,
                    bias_kv: bool = False, zero_attn: bool = False, softmax: Callable = softmax):
    """multi_head_attention_forward on batch-first (N, T, feature) inputs with additive bias (N, 1|H, L, S)
    (its documented formula, ``Concat(head_i) W_O + b_O``).  ``P`` holds MultiheadAttention's parameters by
    their names (in_proj_weight or q/k/v_proj_weight; in_proj_bias and out_proj.bias when bias=True; bias_k,
    bias_v).  add_bias_kv / add_zero_attn append one key/value each, with an unmasked mask column.

    Returns (out (N, L, E), probs (N, H, L, S'), M: the score bound, out_mag: a magnitude bound of the
    summed terms of one output)."""
    E = P["out_proj.weight"].shape[0]
    hd = E // H
    N, L = x_q.shape[0], x_q.shape[1]
    if "in_proj_weight" in P:
        Wq, Wk, Wv = np.split(P["in_proj_weight"], 3)
    else:
        Wq, Wk, Wv = P["q_proj_weight"], P["k_proj_weight"], P["v_proj_weight"]
    bq, bk, bv = np.split(P["in_proj_bias"], 3) if "in_proj_bias" in P else (0.0, 0.0, 0.0)
    q, k, v = x_q @ Wq.T + bq, x_k @ Wk.T + bk, x_v @ Wv.T + bv
    aq = np.abs(x_q) @ np.abs(Wq).T + np.abs(bq)
    ak = np.abs(x_k) @ np.abs(Wk).T + np.abs(bk)
    av = np.abs(x_v) @ np.abs(Wv).T + np.abs(bv)

    def heads(t):  # (N, T, E) -> (N, H, T, hd)
        return t.reshape(N, t.shape[1], H, hd).transpose(0, 2, 1, 3)

    def extra_column(t, col):  # one more key/value (N, H, 1, hd)
        return np.concatenate([t, col], axis=2)

    q, k, v, aq, ak, av = (heads(t) for t in (q, k, v, aq, ak, av))
    pads = 0
    if bias_kv:
        bk_ = heads(np.broadcast_to(P["bias_k"].reshape(1, 1, E), (N, 1, E)))
        bv_ = heads(np.broadcast_to(P["bias_v"].reshape(1, 1, E), (N, 1, E)))
        k, v = extra_column(k, bk_), extra_column(v, bv_)
        ak, av = extra_column(ak, np.abs(bk_)), extra_column(av, np.abs(bv_))
        pads += 1
    if zero_attn:
        z = np.zeros((N, H, 1, hd))
        k, v, ak, av = (extra_column(t, z) for t in (k, v, ak, av))
        pads += 1
    if pads:
        bias = np.pad(np.broadcast_to(bias, (N, bias.shape[1], L, bias.shape[-1])),
                      ((0, 0), (0, 0), (0, 0), (0, pads)))
    scale = 1.0 / math.sqrt(hd)
    o, p = attend(q, k, v, bias, scale, softmax)
    M = score_bound(aq, ak, scale, bias)
    o = o.transpose(0, 2, 1, 3).reshape(N, L, E)
    bo = P.get("out_proj.bias", 0.0)
    out = o @ P["out_proj.weight"].T + bo
    o_mag = np.max(av) if av.size else 1.0
    out_mag = float(np.max(o_mag * np.abs(P["out_proj.weight"]).sum(axis=1) + np.abs(bo)))
    return out, p, M, out_mag

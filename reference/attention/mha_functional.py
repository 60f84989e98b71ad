"""torch.nn.functional.multi_head_attention_forward called directly: static_k / static_v, and the errors for
arguments that break its documented shapes and pairings (the module never passes such arguments)."""
from __future__ import annotations

import math

import numpy as np

from conform.expect import Expect
from conform.outcome import Raised
from conform.rules import rule
from reference.attention.masks import T_MHAF
from reference.attention.numerics import attend, score_bound
from reference.attention.tolerances import mha_functional_tol

MHAF_STATIC = rule("attention.mha_functional.static_kv",
                   "static_k / static_v, (N*num_heads, S, E/num_heads), are used as the keys / values of head h of "
                   "batch element b (slice b*num_heads + h) in place of the projected key / value; add_zero_attn "
                   "still appends its zero key/value.", T_MHAF + " (static_k, static_v: Shape)")
MHAF_ARG_ERR = rule("attention.mha_functional.argument_errors",
                    "Arguments that break the documented shapes or pairings raise AssertionError: embed_dim not "
                    "divisible by num_heads, a missing projection weight for the chosen form, projection weights or "
                    "biases of the wrong shape, bias_k without bias_v (or the reverse), bias_k/bias_v together with "
                    "static_k/static_v, static_k/static_v whose size(0) is not N*num_heads or size(2) not the head dim.",
                    T_MHAF)

# the message each broken argument raises (the stable part; None: the type alone)
ERRORS = {
    "heads_indivisible": r"embed_dim 4 not divisible by num_heads 3",
    "packed_none": r"use_separate_proj_weight is False but in_proj_weight is None",
    "separate_no_q": r"use_separate_proj_weight is True but q_proj_weight is None",
    "separate_no_k": r"use_separate_proj_weight is True but k_proj_weight is None",
    "separate_no_v": r"use_separate_proj_weight is True but v_proj_weight is None",
    "q_weight_shape": r"expecting query weights shape of \(4, 4\)",
    "in_bias_long": r"expecting query bias shape of \(4,\)",
    "in_bias_short": r"expecting value bias shape of \(4,\)",
    "bias_k_static": r"bias cannot be added to static key",
    "bias_v_static": r"bias cannot be added to static value",
    # a bare `assert bias_k is None` (no message) before the asserts became raises: the type alone
    "bias_k_only": None,
    "bias_v_only": None,
    "static_k_batch": r"expecting static_k.size\(0\) of 4",
    "static_k_dim": r"expecting static_k.size\(2\) of 2",
    "static_v_batch": r"expecting static_v.size\(0\) of 4",
    "static_v_dim": r"expecting static_v.size\(2\) of 2",
}


def model(case, inp) -> tuple[dict, float, float]:
    """({"out", "weights"}, score bound, output magnitude) of the call with static_k and/or static_v."""
    P, E, H = inp["params"], case.E, case.H
    hd = E // H
    unbatched = case.batch == 0

    def batch_first(x):  # (T, N, E) -> (N, T, E); unbatched (T, E) -> (1, T, E)
        return x[None] if unbatched else np.swapaxes(x, 0, 1)

    x_q, x_k, x_v = batch_first(inp["query"]), batch_first(inp["key"]), batch_first(inp["value"])
    N, L = x_q.shape[0], x_q.shape[1]
    Wq, Wk, Wv = np.split(P["in_proj_weight"], 3)
    bq, bk, bv = np.split(P["in_proj_bias"], 3)

    def heads(t):  # (N, T, E) -> (N, H, T, hd)
        return t.reshape(N, t.shape[1], H, hd).transpose(0, 2, 1, 3)

    q = heads(x_q @ Wq.T + bq)
    k = inp["static_k"].reshape(N, H, -1, hd) if case.static_k else heads(x_k @ Wk.T + bk)
    v = inp["static_v"].reshape(N, H, -1, hd) if case.static_v else heads(x_v @ Wv.T + bv)
    if case.add_zero_attn:
        k, v = (np.concatenate([t, np.zeros((N, H, 1, hd))], axis=2) for t in (k, v))
    scale = 1.0 / math.sqrt(hd)
    o, p = attend(q, k, v, 0.0, scale)
    out = o.transpose(0, 2, 1, 3).reshape(N, L, E) @ P["out_proj.weight"].T + P["out_proj.bias"]
    weights = p.mean(axis=1)
    out = out[0] if unbatched else np.swapaxes(out, 0, 1)
    weights = weights[0] if unbatched else weights
    mag = float(np.max(np.abs(v)) * np.abs(P["out_proj.weight"]).sum(axis=1).max() + np.abs(P["out_proj.bias"]).max())
    M = score_bound(np.abs(q), np.abs(k), scale)
    return {"out": out, "weights": weights if case.need_weights else None}, M, mag


def expectations(case, inp) -> list[Expect]:
    if case.which != "none":
        return [Expect(MHAF_ARG_ERR, Raised("AssertionError", ERRORS[case.which]))]
    outputs, M, mag = model(case, inp)
    return [Expect(MHAF_STATIC, outputs, mha_functional_tol(case, M, mag))]

"""The attention area's tolerances, all derived through ``conform.tolerance.tolerance``.

Each takes the bounds the models compute on the way (the score bound M, which sets the
softmax conditioning 1 + 2M; magnitudes of the summed terms; LayerNorm gains); errors
and integer-valued outcomes are compared exactly.
"""
from __future__ import annotations

from conform.tolerance import EXACT, Tol, tolerance
from reference.versions import since


def attention_tol(dtype: str, chain: int, M: float, mag: float, half_math_path: bool = True) -> Tol:
    """Tolerance for an attention output.

    float32/float64: every op is rounded in ``dtype``; the longest chain of sums
    (projections, q.k, the softmax denominator, p.v, output projection) is
    ``chain``; softmax turns an absolute score error d into a relative
    probability error <= 2d, and scores are bounded by ``M``, so cond = 1 + 2M;
    ``mag`` bounds the magnitude of the summed terms of one output.
    float16/bfloat16: SDPA's math backend keeps intermediates in float32 and the
    fused kernels accumulate in float32, so only a handful of roundings happen in
    the half type (inputs, probabilities, output; ops=5) and the float32 chain
    adds < 1 half-ulp (chain * 2**-23 < 2**-10 for chain < 8192).  Before 2.5 the
    math backend computed in the half type itself (the scores rounded to it), so
    every op of the chain is a half rounding carrying the softmax conditioning, as
    for float32.  Measured: a bfloat16 SDPA case with scores up to 180 (E != Ev, so
    the math path on CPU) is off by ~0.2 on 2.4.1 and within the float32-premise
    bound on 2.5.1 and later (reports/matrix/); the math backend's upcast is what
    pytorch/pytorch#163508 later documented in the SDPA docstring.  Only the math
    path did so: ``half_math_path=False`` (a forced fused kernel, which accumulates
    in float32 on every release) keeps the float32-premise bound before 2.5 too.
    """
    if dtype in ("float16", "bfloat16") and (since("2.5") or not half_math_path):
        # the float32 score error (E * 2**-23 * M) in half-ulps is below M * 2**-13 for E <= 16
        return tolerance(dtype, ops=5, reduction=1, cond=1.0 + 2.0 * M * 2.0**-13, scale=mag)
    return tolerance(dtype, ops=8, reduction=chain, cond=1.0 + 2.0 * M, scale=mag)


def sdpa_tol(case, M: float, mag: float) -> Tol:
    """SDPA: q.k over E, the softmax and p.v over S."""
    if case.hq % case.hkv:
        return EXACT  # an error case: no values to compare
    # default dispatch may choose the math path; a forced fused backend never does
    return attention_tol(case.dtype, chain=case.E + 2 * case.S, M=M, mag=mag,
                         half_math_path=case.backend in ("math", "default"))


def mha_tol(case, M: float, mag: float) -> Tol:
    """MultiheadAttention: the input projections (over kdim/vdim/E), q.k (head dim), softmax and p.v (S plus
    the extra bias/zero keys), the output projection (E)."""
    kv = max(case.kdim or case.E, case.vdim or case.E, case.E)
    S = (case.L if case.self_attention else case.S) + 2
    if case.dtype in ("float16", "bfloat16"):
        # MHA in half: projections are rounded to the half type (fp32 accumulation), so the
        # projection roundings (q, k, v, scores, probs, context, output: ~10 ops) carry the softmax
        # conditioning 1 + 2M; the float32 accumulations add < 1 half-ulp each.
        return tolerance(case.dtype, ops=10, reduction=1, cond=1.0 + 2.0 * M, scale=mag)
    return tolerance(case.dtype, ops=10, reduction=kv + case.E // case.H + 2 * S + case.E, cond=1.0 + 2.0 * M, scale=mag)


def mha_functional_tol(case, M: float, mag: float) -> Tol:
    """F.multi_head_attention_forward in float32 (static_k/static_v cases): the in-projection (E), q.k (head
    dim), the softmax and p.v (S plus a zero key) and the output projection (E)."""
    return tolerance("float32", ops=10, reduction=2 * case.E + case.E // case.H + 2 * (case.S + 1),
                     cond=1.0 + 2.0 * M, scale=mag)


MHA_ERROR_TOL = tolerance("float64")  # an error case: only a registered divergence returning values uses it


def layer_tol(case, M: float, norm_gain: float, mag: float) -> Tol:
    """Encoder/decoder stacks: attention conditioning (1 + 2M) times the gain of every LayerNorm
    (1 + |gamma|/std), over a chain of sums: per layer two projections of d_model, q.k (head dim),
    the softmax and p.v (sequence), linear1 (d_model) and linear2 (ff)."""
    n_blocks = case.num_layers * (2 if case.kind in ("encoder_layer", "encoder") else 3) * (2 if case.kind == "transformer" else 1)
    seq = max(case.L, case.S)
    chain = n_blocks * (3 * case.d_model + case.d_model // case.nhead + 2 * seq + case.ff)
    cond = (1.0 + 2.0 * M) * norm_gain
    if case.dtype in ("float16", "bfloat16"):
        return tolerance(case.dtype, ops=12 * n_blocks, reduction=1, cond=cond, scale=mag)
    return tolerance(case.dtype, ops=12 * n_blocks, reduction=chain, cond=cond, scale=mag)

"""Executable spec of attention: masks, F.scaled_dot_product_attention,
nn.MultiheadAttention and the Transformer layers, in numpy float64.

Independent of the functions under test: no F.softmax, no SDPA, no MHA, no
LayerNorm from torch.  Inputs (and module parameters, which are inputs of the
computation) come from ``suite.attention.torch_side.make_*`` -- input
generation with torch's RNG is not under test.

Fully masked rows (a query row with no visible key): the documented formulas
(the SDPA docstring's "equivalent to" code, MHA's ``softmax(QK^T/sqrt(d) + mask)``)
are a softmax over no finite score, i.e. NaN, and that is what torch 2.4 returns on
every path.  From 2.5 the maintainers chose 0 on purpose (pytorch#131060 adds
``_safe_softmax``, pytorch#133882 makes SDPA and its fused kernels use it): the
reference follows that change from 2.5 on (``fully_masked_rows_are_zero``); the
SDPA docstring still implies NaN, which is registered as a documentation divergence
(``bug_in="docs"``).  MultiheadAttention takes the same convention: its SDPA path
(need_weights=False, slow path) returns 0 since 2.5, and upstream treats the paths
that still return NaN (need_weights=True, the fast path) as the bug
(pytorch#160064); those are the registered divergence (suite/attention/divergences.py).
"""
from __future__ import annotations

import math

import numpy as np

from conform.rules import rule
from reference.versions import since
from conform.outcome import Raised
from conform.tolerance import EXACT, Tol, tolerance

T_ACT = "torch/nn/modules/activation.py: MultiheadAttention"
T_MHAF = "torch/nn/functional.py: multi_head_attention_forward"
T_SDPA = "torch/nn/functional.py: scaled_dot_product_attention (docstring)"
T_TR = "torch/nn/modules/transformer.py"

# ---------------------------------------------------------------------------- rules: masks
MASK_BOOL_MHA = rule("attention.mask.bool_true_masks_out_mha",
                     "In MultiheadAttention a boolean attn_mask/key_padding_mask True excludes the position.", T_ACT + ".forward")
MASK_BOOL_SDPA = rule("attention.mask.bool_true_attends_sdpa",
                      "In scaled_dot_product_attention a boolean attn_mask True means the position takes part "
                      "(the inverse of MultiheadAttention's polarity).", T_SDPA)
MASK_FLOAT_ADD = rule("attention.mask.float_is_added",
                      "A floating attn_mask is added to the scaled scores before softmax (-inf excludes).", T_ACT + ".forward")
MASK_NEG_INF = rule("attention.mask.neg_inf_equals_bool",
                    "A float mask holding -inf where a bool mask holds True gives the same MHA result.", T_MHAF)
MASK_DTYPE = rule("attention.mask.dtype_error",
                  "Integer masks are rejected: MHA raises AssertionError, SDPA RuntimeError.", "torch/nn/functional.py: _canonical_mask")
MASK_SDPA_FLOAT_DTYPE = rule("attention.mask.sdpa_float_dtype",
                             "An SDPA float mask must have the query's dtype (a wider float mask is an error).", T_SDPA)
MASK_2D_SHAPE = rule("attention.mask.attn_2d_shape_error",
                     "A 2-D attn_mask must be (L, S); otherwise RuntimeError.", T_MHAF)
MASK_3D = rule("attention.mask.attn_3d_per_head",
               "A 3-D attn_mask (N*num_heads, L, S) applies slice b*num_heads+h to batch b, head h.", T_MHAF)
MASK_3D_SHAPE = rule("attention.mask.attn_3d_shape_error",
                     "A 3-D attn_mask of another shape is a RuntimeError (batched) or AssertionError (unbatched).", T_MHAF)
MASK_NDIM = rule("attention.mask.attn_ndim_error",
                 "An attn_mask that is not 2-D or 3-D is an AssertionError.", "torch/nn/functional.py: _mha_shape_check")
MASK_KPM_BOOL = rule("attention.mask.kpm_bool",
                     "key_padding_mask True excludes that key for every query and head of its batch element.", T_ACT + ".forward")
MASK_KPM_FLOAT = rule("attention.mask.kpm_float",
                      "A float key_padding_mask is added to the scores of its key column.", T_ACT + ".forward")
MASK_MERGE = rule("attention.mask.kpm_merges_with_attn_mask",
                  "attn_mask and key_padding_mask are both applied (added as float masks).", T_MHAF)
MASK_KPM_SHAPE = rule("attention.mask.kpm_shape_error",
                      "key_padding_mask must be (N, S) (batched) or (S) (unbatched); otherwise AssertionError.", T_MHAF)
MASK_MISMATCH_WARN = rule("attention.mask.mismatched_dtype_warning",
                          "key_padding_mask and attn_mask of different dtypes warn 'Support for mismatched ... is "
                          "deprecated' once and still apply both masks.", "torch/nn/functional.py: _canonical_mask")
MASK_FULL_SDPA = rule("attention.sdpa.fully_masked_row",
                      "A query row with every key excluded gives NaN before torch 2.5 (softmax over no finite score, "
                      "the documented formula) and 0 from 2.5 (_safe_softmax, pytorch#131060/#133882).",
                      T_SDPA + "; aten/src/ATen/native/transformers/attention.cpp: _safe_softmax")
MASK_FULL_MHA = rule("attention.mha.fully_masked_row",
                     "A (query row, head) with every key excluded: before torch 2.5 NaN output and weights; from 2.5 "
                     "a zero context and zero weights on every path (the SDPA convention of pytorch#133882, which "
                     "upstream extends to every MHA path: pytorch#160064).", T_ACT + ".forward")

# ---------------------------------------------------------------------------- rules: causal
CAUSAL_GEN = rule("attention.causal.generate_square_subsequent_mask",
                  "generate_square_subsequent_mask(sz) is (sz, sz) of the requested dtype: 0 on and below the "
                  "diagonal, -inf above.", T_TR + ": Transformer.generate_square_subsequent_mask")
CAUSAL_DETECT = rule("attention.causal.detect",
                     "_detect_is_causal_mask returns a given hint as is; with hint None it is True iff the mask equals "
                     "the square subsequent mask of the given size (or the mask's size).", T_TR + ": _detect_is_causal_mask")
CAUSAL_HINT_NEEDS_MASK = rule("attention.causal.mha_hint_requires_mask",
                              "MultiheadAttention is_causal=True without attn_mask raises RuntimeError.", T_MHAF)
CAUSAL_HINT = rule("attention.causal.mha_hint_with_causal_mask",
                   "is_causal=True together with the causal attn_mask gives the result of the mask alone.", T_ACT + ".forward")
SDPA_CAUSAL = rule("attention.sdpa.is_causal",
                   "is_causal=True applies the upper-left aligned lower-triangular mask tril(ones(L, S)).", T_SDPA)
SDPA_CAUSAL_AND_MASK = rule("attention.sdpa.causal_with_mask_error",
                            "Setting both attn_mask and is_causal is an error.", T_SDPA + " (is_causal)")

# ---------------------------------------------------------------------------- rules: sdpa
SDPA_FORMULA = rule("attention.sdpa.formula",
                    "softmax(q k^T * 1/sqrt(E) + bias) v with the documented equivalent code.", T_SDPA)
SDPA_SCALE = rule("attention.sdpa.scale", "scale= replaces 1/sqrt(E).", T_SDPA)
SDPA_GQA = rule("attention.sdpa.enable_gqa",
                "enable_gqa repeats each key/value head Hq/H times (repeat_interleave) along the head dim.", T_SDPA)
SDPA_GQA_ERR = rule("attention.sdpa.gqa_shape_error",
                    "Hq != H without enable_gqa, or Hq % H != 0 with it, is a RuntimeError.", T_SDPA)
SDPA_EV = rule("attention.sdpa.value_dim", "The output's last dim is Ev, which may differ from E.", T_SDPA)
SDPA_DTYPE_ERR = rule("attention.sdpa.dtype_mismatch_error",
                      "query, key and value of different dtypes are a RuntimeError.", T_SDPA)
SDPA_BACKEND_MATH = rule("attention.sdpa.backend.math_accepts",
                         "The math (C++) backend accepts every valid input, float64 included.", T_SDPA + " (Note)")
SDPA_BACKEND_REFUSE = rule("attention.sdpa.backend.documented_refusals",
                           "Only math supports float64; FlashAttention-2 and cuDNN need fp16/bf16; GQA works only with "
                           "flash and math on CUDA: a forced backend refuses these with RuntimeError.", T_SDPA + " (Note)")
SDPA_BACKEND_CLEAN = rule("attention.sdpa.backend.refusal_is_error",
                          "A forced backend that cannot run an input raises RuntimeError (no silent fallback).",
                          "torch/nn/attention/__init__.py: sdpa_kernel")
SDPA_BACKEND_AGREE = rule("attention.sdpa.backend.agrees",
                          "Every backend that accepts an input computes the documented formula within tolerance.", T_SDPA)

# ---------------------------------------------------------------------------- rules: mha
MHA_CTOR = rule("attention.mha.ctor_errors",
                "embed_dim or num_heads <= 0 is a ValueError; embed_dim not divisible by num_heads an AssertionError.",
                T_ACT + ".__init__")
MHA_PARAMS = rule("attention.mha.parameters",
                  "Parameters: in_proj_weight (3E, E) when kdim == vdim == E else q/k/v_proj_weight; in_proj_bias and "
                  "out_proj.bias only with bias=True; bias_k/bias_v (1, 1, E) with add_bias_kv.", T_ACT + ".__init__")
MHA_FORWARD = rule("attention.mha.forward",
                   "out = Concat(head_i) W_O + b_O with head_i = softmax((x W_Q^i + b)(x W_K^i + b)^T / sqrt(d) + mask)(x W_V^i + b).",
                   T_ACT)
MHA_BATCH_FIRST = rule("attention.mha.batch_first",
                       "batch_first=True takes and returns (N, L, E); otherwise (L, N, E).", T_ACT)
MHA_UNBATCHED = rule("attention.mha.unbatched",
                     "2-D inputs (L, E) are one sequence; outputs drop the batch dim; batch_first is ignored.", T_ACT + ".forward")
MHA_NEED_WEIGHTS = rule("attention.mha.need_weights",
                        "need_weights=False returns None as the weights, with the same output.", T_ACT + ".forward")
MHA_AVERAGE = rule("attention.mha.average_attn_weights",
                   "Weights are averaged over heads (N, L, S) or returned per head (N, H, L, S).", T_ACT + ".forward")
MHA_BIAS_KV = rule("attention.mha.add_bias_kv",
                   "add_bias_kv appends bias_k/bias_v as one more key/value; masks get an unmasked column.", T_MHAF)
MHA_ZERO_ATTN = rule("attention.mha.add_zero_attn",
                     "add_zero_attn appends a zero key/value per head after any bias; masks get an unmasked column.", T_MHAF)
MHA_KVDIM = rule("attention.mha.kdim_vdim",
                 "kdim/vdim set the key/value feature sizes, projected by k_proj_weight (E, kdim), v_proj_weight (E, vdim).", T_ACT)
MHA_NO_BIAS = rule("attention.mha.bias_false", "bias=False removes every projection bias.", T_ACT)
MHA_DROPOUT_EVAL = rule("attention.mha.dropout_eval",
                        "Dropout acts only in training: in eval mode MultiheadAttention(dropout=p) computes the formula "
                        "without dropout, on the slow and the fast path.", T_MHAF + " (training: apply dropout if True)")
MHA_FAST_TAKEN = rule("attention.mha.fast_path_conditions",
                      "The fast path runs iff: eval, no grad, batched, batch_first, self-attention with one tensor, "
                      "even num_heads, bias, no bias_kv, no zero_attn, kdim == vdim == E, no float mask.", T_ACT + ".forward")
MHA_FAST_AGREE = rule("attention.mha.fast_path_agrees",
                      "The fast path output and weights agree with the slow path's documented formula.", T_ACT + ".forward")

# ---------------------------------------------------------------------------- rules: transformer
ENC_LAYER = rule("attention.encoder_layer.forward",
                 "Post-norm: x = norm1(x + SA(x)); x = norm2(x + FF(x)); pre-norm (norm_first): x = x + SA(norm1(x)); "
                 "x = x + FF(norm2(x)); FF = linear2(activation(linear1)).", T_TR + ": TransformerEncoderLayer.forward")
ENC_ACT = rule("attention.encoder_layer.activation",
               "activation may be 'relu', 'gelu' (exact erf form) or a callable.", T_TR + ": TransformerEncoderLayer")
ENC_ACT_ERR = rule("attention.encoder_layer.activation_error",
                   "An activation string other than relu/gelu raises RuntimeError.", T_TR + ": _get_activation_fn")
ENC_FAST = rule("attention.encoder_layer.fast_path_agrees",
                "In eval/no-grad the fused encoder layer agrees with the documented layer formula.", T_TR + ": TransformerEncoderLayer.forward")
ENC_MASKS = rule("attention.encoder_layer.masks",
                 "src_mask and src_key_padding_mask reach the self-attention as attn_mask and key_padding_mask.", T_TR)
LAYER_DROPOUT_EVAL = rule("attention.layers.dropout_eval",
                          "In eval mode the Transformer layers apply none of their dropouts (attention, feed-forward, "
                          "residual): the output equals the dropout-free formula.", T_TR + ": TransformerEncoderLayer "
                          "(dropout); torch/nn/modules/dropout.py: Dropout")
ENC_STACK = rule("attention.encoder.stack",
                 "TransformerEncoder applies num_layers independent deep copies of the layer, then the optional final norm.",
                 T_TR + ": TransformerEncoder.forward")
ENC_NESTED = rule("attention.encoder.nested_conversion_transparent",
                  "enable_nested_tensor only speeds up the encoder ('convert back on output'): the output equals the padded computation.",
                  T_TR + ": TransformerEncoder (enable_nested_tensor)")
ENC_NESTED_FLAG = rule("attention.encoder.use_nested_tensor_flag",
                       "enable_nested_tensor=True with a layer that cannot use the sparsity fast path sets "
                       "use_nested_tensor False and warns.", T_TR + ": TransformerEncoder.__init__")
DEC_LAYER = rule("attention.decoder_layer.forward",
                 "Decoder layer: self-attention (tgt masks), cross-attention on memory (memory masks), feed-forward, "
                 "post- or pre-norm.", T_TR + ": TransformerDecoderLayer.forward")
DEC_CAUSAL = rule("attention.decoder.tgt_is_causal",
                  "tgt_is_causal (given or detected) with the causal tgt_mask gives the result of the mask.", T_TR + ": TransformerDecoder.forward")
DEC_MEM_CAUSAL = rule("attention.decoder.memory_is_causal",
                      "memory_is_causal=True with the (L, S) upper-left causal memory_mask gives the result of the mask.",
                      T_TR + ": TransformerDecoderLayer.forward")
DEC_STACK = rule("attention.decoder.stack", "TransformerDecoder stacks layers and applies the optional final norm.",
                 T_TR + ": TransformerDecoder.forward")
TRANSFORMER = rule("attention.transformer.forward",
                   "Transformer = decoder(tgt, encoder(src)) each with a final LayerNorm.", T_TR + ": Transformer.forward")
TRANSFORMER_ERR = rule("attention.transformer.batch_mismatch_error",
                       "src and tgt with different batch sizes raise RuntimeError.", T_TR + ": Transformer.forward")

TRANSFORMER_FEATURE_ERR = rule("attention.transformer.feature_mismatch_error",
                               "src or tgt whose feature size is not d_model raises RuntimeError.",
                               T_TR + ": Transformer.forward")

LN_EPS = 1e-5


# ---------------------------------------------------------------------------- numerics
def fully_masked_rows_are_zero() -> bool:
    """The convention for a softmax row with no finite score in attention.

    Before 2.5: NaN, the documented formula (0/0).  Since 2.5: 0 -- a deliberate change
    (pytorch#131060 "Add a private _safe_softmax", pytorch#133882 "Update fused kernels and
    call _safe_softmax from SDPA": "Changes the stance of SDPA on what to do for fully
    masked out rows").  Measured on CPU: 2.4.1 NaN on every SDPA backend and MHA path,
    2.5.1 0 on math, flash and default dispatch.
    """
    return since("2.5")


def softmax(scores: np.ndarray, empty_as_zero: bool | None = None) -> np.ndarray:
    """Row softmax in float64; a row with no finite score is 0 or NaN (0/0): by default
    the convention of the release under test (``fully_masked_rows_are_zero``); an explicit
    ``empty_as_zero`` describes the docstring's literal formula or a registered divergence."""
    if empty_as_zero is None:
        empty_as_zero = fully_masked_rows_are_zero()
    mx = np.max(scores, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        e = np.exp(scores - np.where(np.isfinite(mx), mx, 0.0))
        return np.where(np.isfinite(mx), e / e.sum(axis=-1, keepdims=True), 0.0 if empty_as_zero else np.nan)


def attend(q: np.ndarray, k: np.ndarray, v: np.ndarray, bias: np.ndarray | float, scale: float,
           empty_as_zero: bool | None = None):
    """(out, probs) for q (..., L, E), k (..., S, E), v (..., S, Ev), additive bias (..., L, S)."""
    p = softmax(q @ np.swapaxes(k, -1, -2) * scale + bias, empty_as_zero)
    with np.errstate(invalid="ignore"):
        return p @ v, p


def score_bound(q: np.ndarray, k: np.ndarray, scale: float, bias: np.ndarray | float = 0.0) -> float:
    """Sum-of-magnitudes bound on |scores|: the softmax conditioning used by the tolerances."""
    s = np.abs(q) @ np.swapaxes(np.abs(k), -1, -2) * abs(scale)
    b = np.abs(np.where(np.isfinite(bias), bias, 0.0)) if np.ndim(bias) else 0.0
    return float(np.max(s + b)) if s.size else 0.0


def attention_tol(dtype: str, chain: int, M: float, mag: float) -> Tol:
    """Tolerance for an attention output.

    float32/float64: every op is rounded in ``dtype``; the longest chain of sums
    (projections, q.k, the softmax denominator, p.v, output projection) is
    ``chain``; softmax turns an absolute score error d into a relative
    probability error <= 2d, and scores are bounded by ``M``, so cond = 1 + 2M;
    ``mag`` bounds the magnitude of the summed terms of one output.
    float16/bfloat16: SDPA's math backend keeps intermediates in float32 and the
    fused kernels accumulate in float32, so only a handful of roundings happen in
    the half type (inputs, probabilities, output; ops=5) and the float32 chain
    adds < 1 half-ulp (chain * 2**-23 < 2**-10 for chain < 8192).
    """
    if dtype in ("float16", "bfloat16"):
        # the float32 score error (E * 2**-23 * M) in half-ulps is below M * 2**-13 for E <= 16
        return tolerance(dtype, ops=5, reduction=1, cond=1.0 + 2.0 * M * 2.0**-13, scale=mag)
    return tolerance(dtype, ops=8, reduction=chain, cond=1.0 + 2.0 * M, scale=mag)


# ---------------------------------------------------------------------------- sdpa
FUSED = ("flash", "efficient", "cudnn")
REFUSAL = r"No available kernel|No viable backend"


def sdpa_excluded(case, inp) -> np.ndarray | None:
    """(L, S) bool, True = excluded, as SDPA reads the mask the Case passes."""
    masked = inp["masked"]
    if masked is None or case.mask.kind != "bool":
        return None
    attend_true = ~masked if case.polarity == "sdpa" else masked  # what the torch side passes
    return ~attend_true


def documented_refusal(case, device: str) -> bool:
    if device.split(":")[0] != "cuda" or case.backend not in FUSED:
        return False
    if case.dtype == "float64":
        return True  # "The c++ implementation supports torch.float64"
    if case.backend in ("flash", "cudnn") and case.dtype == "float32":
        return True  # FlashAttention-2 / cuDNN SDPA: fp16 and bf16 only
    if case.backend == "efficient" and case.hq != case.hkv:
        return True  # "GQA ... currently works only for Flash_attention and math kernel on CUDA"
    return False


def sdpa_reference(case, inp, device: str = "cpu", empty_as_zero: bool | None = None):
    """Expected outcome of F.scaled_dot_product_attention for an SdpaCase (fully masked rows:
    the release's convention, ``fully_masked_rows_are_zero``, unless ``empty_as_zero`` says)."""
    if case.mask.kind == "int":
        return Raised("RuntimeError", r"attn_mask dtype")
    if case.mask.kind in ("float", "neginf") and case.mask_dtype not in (None, case.dtype):
        return Raised("RuntimeError", r"attn_mask dtype")
    if case.is_causal and case.mask.kind != "none":
        return Raised("RuntimeError", r"attn_mask should not be set when is_causal|" + REFUSAL)
    if case.hq != case.hkv and (not case.enable_gqa or case.hq % case.hkv):
        return Raised("RuntimeError", None)
    if documented_refusal(case, device):
        return Raised("RuntimeError", REFUSAL)
    q, k, v = inp["q"], inp["k"], inp["v"]
    if case.enable_gqa and case.hq != case.hkv:
        k = np.repeat(k, case.hq // case.hkv, axis=1)  # repeat_interleave on the head dim
        v = np.repeat(v, case.hq // case.hkv, axis=1)
    bias = np.zeros((case.L, case.S))
    if case.is_causal:
        bias = np.where(np.tril(np.ones((case.L, case.S), dtype=bool)), 0.0, -np.inf)
    excluded = sdpa_excluded(case, inp)
    if excluded is not None:
        bias = np.where(excluded, -np.inf, 0.0)
    elif case.mask.kind in ("float", "neginf"):
        bias = inp["mask_add"]
    scale = case.scale if case.scale is not None else 1.0 / math.sqrt(case.E)
    out, _ = attend(q, k, v, bias, scale, empty_as_zero)
    return out


def sdpa_docstring_reference(case, inp, device: str = "cpu"):
    """The SDPA docstring's "equivalent" code taken literally: ``torch.softmax`` over a row of
    -inf is NaN, on every release (the documentation has not followed pytorch#131060/#133882)."""
    return sdpa_reference(case, inp, device, empty_as_zero=False)


def sdpa_score_bound(case, inp) -> float:
    scale = case.scale if case.scale is not None else 1.0 / math.sqrt(case.E)
    k = inp["k"] if case.hq == case.hkv else np.repeat(inp["k"], case.hq // case.hkv, axis=1)
    return score_bound(inp["q"], k, scale, inp.get("mask_add", 0.0))


def sdpa_tol(case, inp) -> Tol:
    if case.hq % case.hkv:
        return EXACT  # an error case: no values to compare
    M = sdpa_score_bound(case, inp)
    return attention_tol(case.dtype, chain=case.E + 2 * case.S, M=M, mag=float(np.max(np.abs(inp["v"])) or 1.0))


# ---------------------------------------------------------------------------- mha
def _bias_from(kind: str, masked: np.ndarray | None, add: np.ndarray | None):
    if masked is None:
        return None
    return np.where(masked, -np.inf, 0.0) if kind in ("bool", "causal") else add


def mha_expected_error(case, inp):
    """The first error MultiheadAttention raises for this case, in its order of checks, or None."""
    if case.attn_mask.kind == "int":
        return Raised("AssertionError", r"only bool and floating types of attn_mask")
    if case.kpm.kind == "int":
        return Raised("AssertionError", r"only bool and floating types of key_padding_mask")
    am, kpm = inp["attn_masked"], inp["kpm_masked"]
    batched = case.batch > 0
    S = case.L if case.self_attention else case.S
    if kpm is not None and kpm.ndim != (2 if batched else 1):
        return Raised("AssertionError", r"expected `key_padding_mask` to be `None` or")
    if am is not None:
        if am.ndim not in (2, 3):
            return Raised("AssertionError", r"expected `attn_mask` to be `None`, 2-D or 3-D")
        if not batched and am.ndim == 3 and am.shape != (case.H, case.L, S):
            return Raised("AssertionError", r"Expected `attn_mask` shape to be")
    if case.is_causal and am is None:
        return Raised("RuntimeError", r"Need attn_mask if specifying the is_causal hint")
    if am is not None:
        n = max(case.batch, 1)
        if am.ndim == 2 and am.shape != (case.L, S):
            return Raised("RuntimeError", r"The shape of the 2D attn_mask is")
        if am.ndim == 3 and am.shape != (n * case.H, case.L, S):
            return Raised("RuntimeError", r"The shape of the 3D attn_mask is")
    if kpm is not None and kpm.shape[-1] != S:
        # The stable part of the message names the mask's shape: 2.4/2.5 say "expecting
        # key_padding_mask shape of (N, S)", 2.6+ "Expected key_padded_mask.shape[1] to be S".
        return Raised("AssertionError", r"key_padd(?:ing|ed)_mask[ .]shape")
    return None


def _mha_core(case, inp, empty_as_zero: bool | None = None):
    """(out, weights, M, out_mag) in the case's layout."""
    P = inp["params"]
    E, H = case.E, case.H
    hd = E // H
    x_q, x_k, x_v = inp["query"], inp["key"], inp["value"]
    if case.batch == 0:
        x_q, x_k, x_v = x_q[None], x_k[None], x_v[None]
    elif not case.batch_first:
        x_q, x_k, x_v = (np.swapaxes(t, 0, 1) for t in (x_q, x_k, x_v))
    N, L, S = x_q.shape[0], x_q.shape[1], x_k.shape[1]
    if "in_proj_weight" in P:
        Wq, Wk, Wv = np.split(P["in_proj_weight"], 3)
    else:
        Wq, Wk, Wv = P["q_proj_weight"], P["k_proj_weight"], P["v_proj_weight"]
    bq, bk, bv = np.split(P["in_proj_bias"], 3) if case.bias else (0.0, 0.0, 0.0)
    q, k, v = x_q @ Wq.T + bq, x_k @ Wk.T + bk, x_v @ Wv.T + bv
    aq = np.abs(x_q) @ np.abs(Wq).T + np.abs(bq)
    ak = np.abs(x_k) @ np.abs(Wk).T + np.abs(bk)
    av = np.abs(x_v) @ np.abs(Wv).T + np.abs(bv)
    attn = _bias_from(case.attn_mask.kind, inp["attn_masked"], inp.get("attn_mask_add"))
    kpm = _bias_from(case.kpm.kind, inp["kpm_masked"], inp.get("kpm_add"))
    if attn is not None:
        attn = attn.reshape(N, H, L, S) if attn.ndim == 3 else np.broadcast_to(attn, (N, H, L, S))
    if kpm is not None:
        kpm = np.broadcast_to(kpm.reshape(N, 1, 1, S), (N, H, L, S))

    def heads(t):  # (N, T, E) -> (N, H, T, hd)
        return t.reshape(N, t.shape[1], H, hd).transpose(0, 2, 1, 3)

    def extra_column(t, col):  # one more key/value (N, H, 1, hd) and an unmasked mask column
        return np.concatenate([t, col], axis=2)

    q, k, v, aq, ak, av = (heads(t) for t in (q, k, v, aq, ak, av))
    pads = 0
    if case.add_bias_kv:
        bk_, bv_ = heads(np.broadcast_to(P["bias_k"].reshape(1, 1, E), (N, 1, E))), heads(np.broadcast_to(P["bias_v"].reshape(1, 1, E), (N, 1, E)))
        k, v = extra_column(k, bk_), extra_column(v, bv_)
        ak, av = extra_column(ak, np.abs(bk_)), extra_column(av, np.abs(bv_))
        pads += 1
    if case.add_zero_attn:
        z = np.zeros((N, H, 1, hd))
        k, v, ak, av = (extra_column(t, z) for t in (k, v, ak, av))
        pads += 1
    bias = np.zeros((N, H, L, S + pads))
    for m in (attn, kpm):
        if m is not None:
            bias = bias + np.pad(m, ((0, 0), (0, 0), (0, 0), (0, pads)))
    scale = 1.0 / math.sqrt(hd)
    o, p = attend(q, k, v, bias, scale, empty_as_zero)
    M = score_bound(aq, ak, scale, bias)
    o = o.transpose(0, 2, 1, 3).reshape(N, L, E)
    bo = P["out_proj.bias"] if case.bias else 0.0
    out = o @ P["out_proj.weight"].T + bo
    o_mag = np.max(av) if av.size else 1.0
    out_mag = float(np.max(o_mag * np.abs(P["out_proj.weight"]).sum(axis=1) + np.abs(bo)))
    weights = p.mean(axis=1) if case.average_attn_weights else p
    if case.batch == 0:
        out, weights = out[0], weights[0]
    elif not case.batch_first:
        out = np.swapaxes(out, 0, 1)
    return out, (weights if case.need_weights else None), M, out_mag


def mha_reference(case, inp, empty_as_zero: bool | None = None):
    """Expected outcome of MultiheadAttention.forward (fully masked rows: the release's
    convention, ``fully_masked_rows_are_zero``, unless ``empty_as_zero`` says)."""
    err = mha_expected_error(case, inp)
    if err is not None:
        return err
    out, weights, _, _ = _mha_core(case, inp, empty_as_zero)
    return {"out": out, "weights": weights}


def mha_fully_masked(case, inp) -> bool:
    """Some (query row, head) of this valid case has every key excluded (whatever the convention)."""
    if mha_expected_error(case, inp) is not None:
        return False
    out, _, _, _ = _mha_core(case, inp, empty_as_zero=False)
    return bool(np.isnan(out).any())


def mha_tol(case, inp) -> Tol:
    if mha_expected_error(case, inp) is not None:
        return tolerance("float64")
    _, _, M, mag = _mha_core(case, inp)
    kv = max(case.kdim or case.E, case.vdim or case.E, case.E)
    S = (case.L if case.self_attention else case.S) + 2
    dtype = case.dtype
    if dtype in ("float16", "bfloat16"):
        # MHA in half: projections are rounded to the half type (fp32 accumulation), so the
        # projection roundings (q, k, v, scores, probs, context, output: ~10 ops) carry the softmax
        # conditioning 1 + 2M; the float32 accumulations add < 1 half-ulp each.
        return tolerance(dtype, ops=10, reduction=1, cond=1.0 + 2.0 * M, scale=mag)
    return tolerance(dtype, ops=10, reduction=kv + case.E // case.H + 2 * S + case.E, cond=1.0 + 2.0 * M, scale=mag)


def mha_fast_path_expected(case, device: str = "cpu") -> bool:
    """The conditions of MultiheadAttention.forward's fast path (docstring list + source checks)."""
    return (case.path == "eval_nograd" and case.batch > 0 and case.self_attention and case.batch_first
            and case.H % 2 == 0 and case.bias and not case.add_bias_kv and not case.add_zero_attn
            and (case.kdim or case.E) == case.E and (case.vdim or case.E) == case.E
            and case.attn_mask.kind not in ("float", "neginf") and case.kpm.kind not in ("float", "neginf")
            and device.split(":")[0] in ("cpu", "cuda"))


def mha_param_layout(case) -> list:
    E = case.E
    kdim, vdim = case.kdim or E, case.vdim or E
    out = [("in_proj_weight", (3 * E, E))] if kdim == E and vdim == E else [
        ("q_proj_weight", (E, E)), ("k_proj_weight", (E, kdim)), ("v_proj_weight", (E, vdim))]
    out += [("in_proj_bias", (3 * E,))] if case.bias else []
    out += [("bias_k", (1, 1, E)), ("bias_v", (1, 1, E))] if case.add_bias_kv else []
    out += [("out_proj.weight", (E, E))] + ([("out_proj.bias", (E,))] if case.bias else [])
    return out


def mha_ctor_reference(case):
    if case.embed_dim <= 0 or case.num_heads <= 0:
        return Raised("ValueError", r"embed_dim and num_heads must be greater than 0")
    if case.embed_dim % case.num_heads:
        return Raised("AssertionError", r"embed_dim must be divisible by num_heads")
    return {"head_dim": case.embed_dim // case.num_heads}


def mismatched_warnings(case) -> list[str]:
    def is_bool(kind):
        return kind in ("bool", "causal")

    if case.attn_mask.kind != "none" and case.kpm.kind != "none" and is_bool(case.attn_mask.kind) != is_bool(case.kpm.kind):
        return ["Support for mismatched key_padding_mask and attn_mask is deprecated. Use same type for both instead."]
    return []


# ---------------------------------------------------------------------------- causal masks
def square_subsequent_mask(case):
    n = case.size
    vals = np.where(np.triu(np.ones((n, n), dtype=bool), k=1), -np.inf, 0.0)
    return {"dtype": case.dtype, "values": vals}


def detect_causal_reference(case) -> bool:
    """A hint is returned as is; otherwise the mask must equal, elementwise and with the same
    size, the square subsequent mask generated in the mask's own dtype (for bool: True above
    the diagonal, which is the MultiheadAttention causal mask)."""
    if case.hint is not None:
        return case.hint
    if case.mask in ("none", "other", "batched_causal"):
        return False  # no mask; a different mask; (2, n, n) never has the comparison's (n, n) size
    size = case.check_size if case.check_size is not None else case.size
    return size == case.size


# ---------------------------------------------------------------------------- transformer layers
def layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + LN_EPS) * w + b, float(np.min(np.sqrt(var + LN_EPS)))


_erf = np.vectorize(math.erf)


def activation(name: str, x: np.ndarray) -> np.ndarray:
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "gelu":
        return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))
    return np.tanh(x)


class _Cond:
    """Running bound of the conditioning met on the way (softmax scores, 1/std of norms)."""

    def __init__(self, empty_as_zero: bool | None = None):
        self.M = 0.0
        self.norm_gain = 1.0
        self.mag = 1.0
        self.empty_as_zero = empty_as_zero  # fully masked rows (None: the release's convention)


def _attn_block(P, prefix, x_q, x_kv, nhead, bias, cond: _Cond):
    """Self/cross attention (N, L, E) with additive bias (N, 1|H, L, S)."""
    E = x_q.shape[-1]
    hd = E // nhead
    W = P[prefix + ".in_proj_weight"]
    b = P[prefix + ".in_proj_bias"]
    Wq, Wk, Wv = np.split(W, 3)
    bq, bk, bv = np.split(b, 3)
    N, L, S = x_q.shape[0], x_q.shape[1], x_kv.shape[1]

    def heads(t):
        return t.reshape(N, t.shape[1], nhead, hd).transpose(0, 2, 1, 3)

    q, k, v = heads(x_q @ Wq.T + bq), heads(x_kv @ Wk.T + bk), heads(x_kv @ Wv.T + bv)
    aq, ak = heads(np.abs(x_q) @ np.abs(Wq).T + np.abs(bq)), heads(np.abs(x_kv) @ np.abs(Wk).T + np.abs(bk))
    scale = 1.0 / math.sqrt(hd)
    o, _ = attend(q, k, v, bias, scale, cond.empty_as_zero)
    cond.M = max(cond.M, score_bound(aq, ak, scale, bias))
    o = o.transpose(0, 2, 1, 3).reshape(N, L, E)
    return o @ P[prefix + ".out_proj.weight"].T + P[prefix + ".out_proj.bias"]


def _ff(P, prefix, x, act):
    h = activation(act, x @ P[prefix + "linear1.weight"].T + P[prefix + "linear1.bias"])
    return h @ P[prefix + "linear2.weight"].T + P[prefix + "linear2.bias"]


def _norm(P, name, x, cond: _Cond):
    y, min_std = layer_norm(x, P[name + ".weight"], P[name + ".bias"])
    cond.norm_gain *= 1.0 + float(np.max(np.abs(P[name + ".weight"]))) / min_std
    cond.mag = max(cond.mag, float(np.max(np.abs(y))))
    return y


def _bias(masked: np.ndarray | None, add: np.ndarray | None, kpm: np.ndarray | None, N: int, L: int, S: int):
    bias = np.zeros((N, 1, L, S))
    if add is not None:
        bias = bias + add
    elif masked is not None:
        bias = bias + np.where(masked, -np.inf, 0.0)
    if kpm is not None:
        bias = bias + np.where(kpm, -np.inf, 0.0).reshape(N, 1, 1, S)
    return bias


def encoder_layer_ref(P, prefix, x, case, bias, cond):
    sa = lambda y: _attn_block(P, prefix + "self_attn", y, y, case.nhead, bias, cond)  # noqa: E731
    if case.norm_first:
        x = x + sa(_norm(P, prefix + "norm1", x, cond))
        return x + _ff(P, prefix, _norm(P, prefix + "norm2", x, cond), case.activation)
    x = _norm(P, prefix + "norm1", x + sa(x), cond)
    return _norm(P, prefix + "norm2", x + _ff(P, prefix, x, case.activation), cond)


def decoder_layer_ref(P, prefix, x, mem, case, self_bias, cross_bias, cond):
    sa = lambda y: _attn_block(P, prefix + "self_attn", y, y, case.nhead, self_bias, cond)  # noqa: E731
    ca = lambda y: _attn_block(P, prefix + "multihead_attn", y, mem, case.nhead, cross_bias, cond)  # noqa: E731
    if case.norm_first:
        x = x + sa(_norm(P, prefix + "norm1", x, cond))
        x = x + ca(_norm(P, prefix + "norm2", x, cond))
        return x + _ff(P, prefix, _norm(P, prefix + "norm3", x, cond), case.activation)
    x = _norm(P, prefix + "norm1", x + sa(x), cond)
    x = _norm(P, prefix + "norm2", x + ca(x), cond)
    return _norm(P, prefix + "norm3", x + _ff(P, prefix, x, case.activation), cond)


def layer_reference(case, inp, P, with_cond: bool = False, empty_as_zero: bool | None = None):
    """Expected output of the LayerCase's module (the documented padded computation; the cases
    never mask a row fully -- ``empty_as_zero`` serves registered divergences that do)."""
    src, mem = inp["src"], inp["memory"]
    if not case.batch_first:
        src, mem = np.swapaxes(src, 0, 1), np.swapaxes(mem, 0, 1)
    N, L, S = src.shape[0], src.shape[1], mem.shape[1]
    self_bias = _bias(inp["src_masked"], inp["src_mask_add"], inp["kpm"], N, L, L)
    cond = _Cond(empty_as_zero)
    if case.kind == "encoder_layer":
        out = encoder_layer_ref(P, "", src, case, self_bias, cond)
    elif case.kind == "encoder":
        out = src
        for i in range(case.num_layers):
            out = encoder_layer_ref(P, f"layers.{i}.", out, case, self_bias, cond)
        if case.final_norm:
            out = _norm(P, "norm", out, cond)
    elif case.kind in ("decoder_layer", "decoder"):
        cross_bias = _bias(inp.get("memory_masked"), None, inp["memory_kpm"], N, L, S)
        if case.kind == "decoder_layer":
            out = decoder_layer_ref(P, "", src, mem, case, self_bias, cross_bias, cond)
        else:
            out = src
            for i in range(case.num_layers):
                out = decoder_layer_ref(P, f"layers.{i}.", out, mem, case, self_bias, cross_bias, cond)
            if case.final_norm:
                out = _norm(P, "norm", out, cond)
    else:  # transformer: memory is the encoder of `memory` (the src), tgt is `src`
        enc_bias = _bias(None, None, inp["memory_kpm"], N, S, S)
        m = mem
        for i in range(case.num_layers):
            m = encoder_layer_ref(P, f"encoder.layers.{i}.", m, case, enc_bias, cond)
        m = _norm(P, "encoder.norm", m, cond)
        cross_bias = _bias(None, None, inp["memory_kpm"], N, L, S)
        out = src
        for i in range(case.num_layers):
            out = decoder_layer_ref(P, f"decoder.layers.{i}.", out, m, case, self_bias, cross_bias, cond)
        out = _norm(P, "decoder.norm", out, cond)
    if not case.batch_first:
        out = np.swapaxes(out, 0, 1)
    return (out, cond) if with_cond else out


def layer_tol(case, inp, P) -> Tol:
    """Encoder/decoder stacks: attention conditioning (1 + 2M) times the gain of every LayerNorm
    (1 + |gamma|/std), over a chain of sums: per layer two projections of d_model, q.k (head dim),
    the softmax and p.v (sequence), linear1 (d_model) and linear2 (ff)."""
    _, cond = layer_reference(case, inp, P, with_cond=True)
    n_blocks = case.num_layers * (2 if case.kind in ("encoder_layer", "encoder") else 3) * (2 if case.kind == "transformer" else 1)
    seq = max(case.L, case.S)
    chain = n_blocks * (3 * case.d_model + case.d_model // case.nhead + 2 * seq + case.ff)
    if case.dtype in ("float16", "bfloat16"):
        return tolerance(case.dtype, ops=12 * n_blocks, reduction=1, cond=(1.0 + 2.0 * cond.M) * cond.norm_gain, scale=cond.mag)
    return tolerance(case.dtype, ops=12 * n_blocks, reduction=chain, cond=(1.0 + 2.0 * cond.M) * cond.norm_gain, scale=cond.mag)


def nested_flag_reference(case) -> dict:
    ok = (case.batch_first and not case.norm_first and case.activation in ("relu", "gelu") and case.nhead % 2 == 0)
    use = case.enable_nested_tensor and ok
    return {"use_nested_tensor": use, "warned": case.enable_nested_tensor and not ok}


def transformer_shape_reference(case):
    if case.bad_feature != "none":
        return Raised("RuntimeError", r"the feature number of src and tgt must be equal to d_model")
    return Raised("RuntimeError", r"the batch number of src and tgt must be equal")


def activation_error_reference(case):
    if case.activation in ("relu", "gelu"):
        return "no error"
    return Raised("RuntimeError", r"activation should be relu/gelu, not " + case.activation)

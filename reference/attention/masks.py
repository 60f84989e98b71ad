"""Rules of attention masks: polarity, float masks, shapes and dtypes, fully masked rows.

The models that apply them live with the function they belong to (``sdpa``, ``mha``); the
numerics of fully masked rows in ``numerics``.
"""
from __future__ import annotations

from conform.rules import rule

T_ACT = "torch/nn/modules/activation.py: MultiheadAttention"
T_MHAF = "torch/nn/functional.py: multi_head_attention_forward"
T_SDPA = "torch/nn/functional.py: scaled_dot_product_attention (docstring)"

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


def is_bool_kind(kind: str) -> bool:
    """Mask kinds passed to torch as bool tensors."""
    return kind in ("bool", "causal")


def mismatched_warnings(attn_kind: str, kpm_kind: str) -> list[str]:
    """_canonical_mask's deprecation warning for a bool mask next to a float one (each warned once)."""
    if attn_kind != "none" and kpm_kind != "none" and is_bool_kind(attn_kind) != is_bool_kind(kpm_kind):
        return ["Support for mismatched key_padding_mask and attn_mask is deprecated. Use same type for both instead."]
    return []

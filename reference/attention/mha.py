"""nn.MultiheadAttention: constructor, parameters, input errors, the forward formula, the fast path."""
from __future__ import annotations

import numpy as np

from conform.expect import Expect
from conform.outcome import Raised
from conform.rules import rule
from reference.attention.causal import CAUSAL_HINT, CAUSAL_HINT_NEEDS_MASK
from reference.attention.masks import (
    MASK_2D_SHAPE, MASK_3D, MASK_3D_SHAPE, MASK_BOOL_MHA, MASK_DTYPE, MASK_FLOAT_ADD, MASK_FULL_MHA, MASK_KPM_BOOL,
    MASK_KPM_FLOAT, MASK_KPM_SHAPE, MASK_MERGE, MASK_MISMATCH_WARN, MASK_NDIM, MASK_NEG_INF, T_ACT, T_MHAF,
    is_bool_kind, mismatched_warnings)
from reference.attention.numerics import attention_block, excluded_rows, softmax
from reference.attention.tolerances import MHA_ERROR_TOL, mha_tol

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
                      "The fast path runs iff: eval, no grad (or no argument requiring grad), batched, batch_first, self-attention with one tensor, "
                      "even num_heads, bias, no bias_kv, no zero_attn, kdim == vdim == E, no float mask, "
                      "torch.backends.mha.get_fastpath_enabled(), no Tensor subclass (__torch_function__) argument.",
                      T_ACT + ".forward; torch/backends/mha: get_fastpath_enabled")
MHA_DROPOUT_TRAIN = rule("attention.mha.dropout_train",
                         "In training, dropout zeroes attention weights with probability p: with dropout=1.0 every "
                         "weight is dropped, so the output is the output projection's bias b_O (0 without bias), on "
                         "the need_weights and the scaled_dot_product_attention branch.",
                         T_MHAF + " (dropout_p: probability of an element to be zeroed; training: apply dropout if True)")
MHA_LEGACY = rule("attention.mha.legacy_checkpoint",
                  "A MultiheadAttention unpickled from a v1.1.0 checkpoint (no _qkv_same_embed_dim) uses the packed "
                  "in_proj_weight and computes the documented formula.", T_ACT + ".__setstate__ (old checkpoints)")
MHA_INPUT_SHAPE_ERR = rule("attention.mha.input_shape_errors",
                           "query/key/value must be all batched (3-D) or all unbatched (2-D), query's features "
                           "embed_dim, key's kdim, value's vdim, and key and value must agree in sequence (and batch) "
                           "length; otherwise AssertionError.", T_ACT + ".forward (Args: query, key, value shapes); "
                           "torch/nn/functional.py: _mha_shape_check, _in_projection")
MHA_DTYPE_ERR = rule("attention.mha.input_dtype_error",
                     "A query whose dtype is not the module's parameter dtype is refused by the fast path and "
                     "rejected (RuntimeError), with or without bias.", T_ACT + ".forward ('this case will fail anyway')")
MHA_NESTED = rule("attention.mha.nested_tensor",
                  "A NestedTensor passed as query = key = value on the fast path gives a NestedTensor whose sequences "
                  "are the formula on each sequence alone; where the fast path cannot run (a mask, training, ...) "
                  "it is an AssertionError.", T_ACT + " (fastpath inference with support for Nested Tensors)")
MHA_META = rule("attention.meta_device.shapes",
                "On the meta device (no data) MultiheadAttention and the Transformer layers run their slow paths "
                "(the fast paths take only cpu/cuda/privateuse1 tensors) and give outputs of the documented shapes.",
                T_ACT + ".forward (Outputs); torch/nn/modules/transformer.py: Transformer.forward (Shape)")
MHA_FAST_AGREE = rule("attention.mha.fast_path_agrees",
                      "The fast path output and weights agree with the slow path's documented formula.", T_ACT + ".forward")


def constructor(case):
    if case.embed_dim <= 0 or case.num_heads <= 0:
        return Raised("ValueError", r"embed_dim and num_heads must be greater than 0")
    if case.embed_dim % case.num_heads:
        return Raised("AssertionError", r"embed_dim must be divisible by num_heads")
    return {"head_dim": case.embed_dim // case.num_heads}


def param_layout(case) -> list:
    E = case.E
    kdim, vdim = case.kdim or E, case.vdim or E
    out = [("in_proj_weight", (3 * E, E))] if kdim == E and vdim == E else [
        ("q_proj_weight", (E, E)), ("k_proj_weight", (E, kdim)), ("v_proj_weight", (E, vdim))]
    out += [("in_proj_bias", (3 * E,))] if case.bias else []
    out += [("bias_k", (1, 1, E)), ("bias_v", (1, 1, E))] if case.add_bias_kv else []
    out += [("out_proj.weight", (E, E))] + ([("out_proj.bias", (E,))] if case.bias else [])
    return out


def expected_error(case, inp) -> tuple[str, Raised] | None:
    """The first error MultiheadAttention raises for this case, in its order of checks, with its rule."""
    if case.nested_lengths and (not fast_path_expected(case) or case.attn_mask.kind != "none"
                                or case.kpm.kind != "none"):
        return MHA_NESTED, Raised("AssertionError", r"does not support NestedTensor outside of its fast path")
    if case.attn_mask.kind == "int":
        return MASK_DTYPE, Raised("AssertionError", r"only bool and floating types of attn_mask")
    if case.kpm.kind == "int":
        return MASK_DTYPE, Raised("AssertionError", r"only bool and floating types of key_padding_mask")
    am, kpm = inp["attn_masked"], inp["kpm_masked"]
    batched = case.batch > 0
    S = case.L if case.self_attention else case.S
    if kpm is not None and kpm.ndim != (2 if batched else 1):
        return MASK_KPM_SHAPE, Raised("AssertionError", r"expected `key_padding_mask` to be `None` or")
    if am is not None:
        if am.ndim not in (2, 3):
            return MASK_NDIM, Raised("AssertionError", r"expected `attn_mask` to be `None`, 2-D or 3-D")
        if not batched and am.ndim == 3 and am.shape != (case.H, case.L, S):
            return MASK_3D_SHAPE, Raised("AssertionError", r"Expected `attn_mask` shape to be")
    if case.is_causal and am is None:
        return CAUSAL_HINT_NEEDS_MASK, Raised("RuntimeError", r"Need attn_mask if specifying the is_causal hint")
    if am is not None:
        n = max(case.batch, 1)
        if am.ndim == 2 and am.shape != (case.L, S):
            return MASK_2D_SHAPE, Raised("RuntimeError", r"The shape of the 2D attn_mask is")
        if am.ndim == 3 and am.shape != (n * case.H, case.L, S):
            return MASK_3D_SHAPE, Raised("RuntimeError", r"The shape of the 3D attn_mask is")
    if kpm is not None and kpm.shape[-1] != S:
        # The stable part of the message names the mask's shape: 2.4/2.5 say "expecting
        # key_padding_mask shape of (N, S)", 2.6+ "Expected key_padded_mask.shape[1] to be S".
        return MASK_KPM_SHAPE, Raised("AssertionError", r"key_padd(?:ing|ed)_mask[ .]shape")
    return None


def _mask_bias(kind: str, masked: np.ndarray | None, add: np.ndarray | None):
    if masked is None:
        return None
    return np.where(masked, -np.inf, 0.0) if is_bool_kind(kind) else add


def _bias(case, inp, N: int, L: int, S: int) -> np.ndarray:
    """The additive (N, H, L, S) bias: attn_mask (2-D, or 3-D per batch and head) plus key_padding_mask."""
    bias = np.zeros((N, case.H, L, S))
    attn = _mask_bias(case.attn_mask.kind, inp["attn_masked"], inp.get("attn_mask_add"))
    kpm = _mask_bias(case.kpm.kind, inp["kpm_masked"], inp.get("kpm_add"))
    if attn is not None:
        bias = bias + (attn.reshape(N, case.H, L, S) if attn.ndim == 3 else attn)
    if kpm is not None:
        bias = bias + kpm.reshape(N, 1, 1, S)
    return bias


def _batch_first(case, *xs):
    if case.batch == 0:
        return tuple(x[None] for x in xs)
    return xs if case.batch_first else tuple(np.swapaxes(x, 0, 1) for x in xs)


def model(case, inp, softmax=softmax) -> dict:
    """MultiheadAttention.forward on a valid case: "outputs" {"out", "weights"} in the case's layout, the score
    bound "M", the magnitude "mag" and "full": the (N, H, L) fully masked (query row, head)s.
    ``softmax`` normalizes the scores (the documented one by default)."""
    x_q, x_k, x_v = _batch_first(case, inp["query"], inp["key"], inp["value"])
    N, L, S = x_q.shape[0], x_q.shape[1], x_k.shape[1]
    bias = _bias(case, inp, N, L, S)
    out, p, M, mag = attention_block(inp["params"], x_q, x_k, x_v, case.H, bias, case.add_bias_kv,
                                     case.add_zero_attn, softmax)
    padded = case.add_bias_kv or case.add_zero_attn  # an unmasked extra key for every row
    full = np.zeros((N, case.H, L), dtype=bool) if padded else excluded_rows(bias)
    weights = p.mean(axis=1) if case.average_attn_weights else p
    if case.batch == 0:
        out, weights = out[0], weights[0]
    elif not case.batch_first:
        out = np.swapaxes(out, 0, 1)
    return {"outputs": {"out": out, "weights": weights if case.need_weights else None}, "M": M, "mag": mag,
            "full": full}


def nested_model(case, inp) -> dict:
    """A NestedTensor query on the fast path: each sequence query[b, :n_b] attends to itself alone."""
    outs, M, mag = [], 0.0, 1.0
    for b, n in enumerate(case.nested_lengths):
        x = inp["query"][b:b + 1, :n]
        out, _, Mb, magb = attention_block(inp["params"], x, x, x, case.H, np.zeros((1, 1, n, n)))
        outs.append(out[0])
        M, mag = max(M, Mb), max(mag, magb)
    return {"outputs": {"out": outs, "weights": None}, "M": M, "mag": mag}


def outputs(case, inp, softmax=softmax):
    """Expected outcome of MultiheadAttention.forward: {"out", "weights"}, or the error."""
    error = expected_error(case, inp)
    return error[1] if error is not None else model(case, inp, softmax)["outputs"]


def fully_masked_outputs(case, inp) -> int:
    """Output elements a fully masked (query row, head) reaches (the whole row, through the output projection)."""
    if expected_error(case, inp) is not None:
        return 0
    return int(model(case, inp)["full"].any(axis=1).sum()) * case.E


def score_magnitude(case, inp) -> float:
    return 0.0 if expected_error(case, inp) is not None else model(case, inp)["M"]


def fast_path_expected(case, device: str = "cpu") -> bool:
    """The conditions of MultiheadAttention.forward's fast path (docstring list + source checks)."""
    return (case.path in ("eval_nograd", "eval_frozen") and case.batch > 0 and case.self_attention and case.batch_first
            and case.H % 2 == 0 and case.bias and not case.add_bias_kv and not case.add_zero_attn
            and (case.kdim or case.E) == case.E and (case.vdim or case.E) == case.E
            and case.attn_mask.kind not in ("float", "neginf") and case.kpm.kind not in ("float", "neginf")
            and device.split(":")[0] in ("cpu", "cuda") and case.fastpath and not case.subclass and not case.meta)


def feature_rules(case) -> list[str]:
    """The rules a valid forward case exercises, each credited with the one comparison."""
    rules = [MHA_FORWARD]
    rules += [MHA_UNBATCHED] if case.batch == 0 else ([MHA_BATCH_FIRST] if case.batch_first else [])
    rules += [MHA_NEED_WEIGHTS] if not case.need_weights else ([MHA_AVERAGE] if case.batch else [])
    rules += [MHA_BIAS_KV] if case.add_bias_kv else []
    rules += [MHA_ZERO_ATTN] if case.add_zero_attn else []
    rules += [MHA_KVDIM] if (case.kdim or case.E) != case.E or (case.vdim or case.E) != case.E else []
    rules += [MHA_NO_BIAS] if not case.bias else []
    kinds = {case.attn_mask.kind, case.kpm.kind}
    rules += [MASK_BOOL_MHA] if "bool" in kinds else []
    rules += [MASK_FLOAT_ADD] if case.attn_mask.kind == "float" else []
    rules += [MASK_NEG_INF] if "neginf" in kinds else []
    rules += [MASK_3D] if case.attn_mask.kind != "none" and case.attn_mask_3d else []
    rules += [MASK_KPM_BOOL] if case.kpm.kind == "bool" else []
    rules += [MASK_KPM_FLOAT] if case.kpm.kind in ("float", "neginf") else []
    rules += [MASK_MERGE] if case.kpm.kind != "none" and case.attn_mask.kind != "none" else []
    rules += [MHA_DROPOUT_EVAL] if case.dropout else []
    rules += [MHA_LEGACY] if case.legacy else []
    return rules


def dropped_output(case, inp) -> np.ndarray:
    """Training with dropout=1.0: every attention weight is zeroed, so each output row is b_O."""
    assert case.dropout == 1.0, "only dropout=1.0 has a deterministic training outcome"
    shape = (case.L, case.E) if case.batch == 0 else \
        ((case.batch, case.L, case.E) if case.batch_first else (case.L, case.batch, case.E))
    return np.broadcast_to(inp["params"].get("out_proj.bias", 0.0), shape).copy()


def expectations(case, inp, device: str = "cpu") -> list[Expect]:
    """MultiheadAttention.forward (torch's outcome: {"outputs": {"out", "weights"}, "fast_path"}).

    In eval + no_grad, whether the fast path runs (key "fast_path") and, where it does, that it agrees.  An
    invalid case: its error rule.  A fully masked (query row, head): that rule alone.  Otherwise the formula,
    credited to every feature the case exercises."""
    expects = []
    fast = fast_path_expected(case, device)
    if case.path in ("eval_nograd", "eval_frozen"):
        expects.append(Expect(MHA_FAST_TAKEN, fast, key="fast_path"))
    error = expected_error(case, inp)
    if error is not None:
        # a NestedTensor refused by the fast path fails before any kernel: the error is the whole outcome
        return ([] if error[0] == MHA_NESTED else expects) + [Expect(error[0], error[1], MHA_ERROR_TOL)]
    if case.meta:
        out = model(case, inp)["outputs"]
        shapes = {k: None if v is None else np.shape(v) for k, v in out.items()}
        return expects + [Expect(MHA_META, shapes, key="outputs")]
    if case.nested_lengths:
        m = nested_model(case, inp)
        return expects + [Expect(MHA_NESTED, m["outputs"], mha_tol(case, m["M"], m["mag"]), key="outputs")]
    m = model(case, inp)
    t = mha_tol(case, m["M"], m["mag"])
    if case.path == "slow" and case.dropout:
        # a fully masked row is NaN before dropout: no deterministic outcome
        return [] if m["full"].any() else [Expect(MHA_DROPOUT_TRAIN, dropped_output(case, inp), t, key=("outputs", "out"))]
    rules = [MASK_FULL_MHA] if m["full"].any() else feature_rules(case) + ([MHA_FAST_AGREE] if fast else [])
    return expects + [Expect(r, m["outputs"], t, key="outputs") for r in rules]


def causal_hint_expectations(case, inp) -> list[Expect]:
    """is_causal=True with the causal mask: the mask's result (fully masked rows: the forward family's rule)."""
    m = model(case, inp)
    if m["full"].any():
        return []
    return [Expect(CAUSAL_HINT, m["outputs"], mha_tol(case, m["M"], m["mag"]), key="outputs")]


def mask_warning_expectations(case, inp) -> list[Expect]:
    """A bool mask next to a float one: the deprecation warning, and both masks applied (torch's outcome:
    {"out", "warnings"}; fully masked rows: the forward family's rule)."""
    m = model(case, inp)
    if m["full"].any():
        return []
    expected = {"out": m["outputs"]["out"], "warnings": mismatched_warnings(case.attn_mask.kind, case.kpm.kind)}
    return [Expect(MASK_MISMATCH_WARN, expected, mha_tol(case, m["M"], m["mag"]))]


def parameter_expectations(case) -> list[Expect]:
    return [Expect(MHA_PARAMS, param_layout(case))]


def constructor_expectations(case) -> list[Expect]:
    return [Expect(MHA_CTOR, constructor(case))]


def input_error_expectations(case) -> list[Expect]:
    """MultiheadAttention(4, 2) (kdim 3 / vdim 5 where ``which`` says) given a broken input: the error."""
    if case.which.startswith("dtype"):
        # the kernel's wording varies ("same dtype", "expected scalar type"): its stable part
        return [Expect(MHA_DTYPE_ERR, Raised("RuntimeError", r"type"))]
    message = {
        "batched_query_2d_kv": r"For batched \(3-D\) `query`, expected `key` and `value` to be 3-D",
        "unbatched_query_3d_kv": r"For unbatched \(2-D\) `query`, expected `key` and `value` to be 2-D",
        "query_1d": r"query should be unbatched 2D or batched 3D tensor",
        "query_4d": r"query should be unbatched 2D or batched 3D tensor",
        "query_features": r"was expecting embedding dimension of 4",
        "kv_shapes": r"key shape .* does not match value shape",
        "kv_lengths_separate": r"key's sequence and batch dims .* do not match value's",
        "key_features_separate": r"expecting key weights shape of \(4, 4\)",
        "value_features_self": r"expecting value weights shape of \(4, 4\)",
    }[case.which]
    return [Expect(MHA_INPUT_SHAPE_ERR, Raised("AssertionError", message))]

"""The Transformer layers: TransformerEncoderLayer / Encoder / DecoderLayer / Decoder / Transformer.

Each attention block is MultiheadAttention's formula (``numerics.attention_block``); LayerNorm is the
norm area's reference (``reference.norm.layer_norm``).  The cases never mask a row fully; the
``softmax=`` parameter lets a registered divergence describe a kernel that normalizes otherwise.
"""
from __future__ import annotations

import math

import numpy as np

from conform.expect import Expect
from conform.outcome import Raised
from conform.rules import rule
from reference.attention.causal import T_TR
from reference.attention.mha import MHA_META
from reference.attention.numerics import attention_block, softmax
from reference.attention.tolerances import layer_tol
from reference.norm import layer_norm

ENC_LAYER = rule("attention.encoder_layer.forward",
                 "Post-norm: x = norm1(x + SA(x)); x = norm2(x + FF(x)); pre-norm (norm_first): x = x + SA(norm1(x)); "
                 "x = x + FF(norm2(x)); FF = linear2(activation(linear1)).", T_TR + ": TransformerEncoderLayer.forward")
ENC_ACT = rule("attention.encoder_layer.activation",
               "activation may be 'relu', 'gelu' (exact erf form) or a callable.", T_TR + ": TransformerEncoderLayer")
ENC_ACT_ERR = rule("attention.encoder_layer.activation_error",
                   "An activation string other than relu/gelu raises RuntimeError.", T_TR + ": _get_activation_fn")
LAYER_DEFAULTS = rule("attention.layers.defaults",
    "TransformerEncoderLayer and TransformerDecoderLayer built with only d_model and nhead have the documented "
    "defaults: dim_feedforward=2048, dropout=0.1, activation relu, layer_norm_eps=1e-5, batch_first=False, "
    "norm_first=False, bias=True.", T_TR + ": TransformerEncoderLayer, TransformerDecoderLayer (signatures and "
    "Args)")
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

LAYER_UNBATCHED = rule("attention.layers.unbatched",
                       "Unbatched src/tgt/memory (S, E) are one sequence (key padding masks (S)); the output is (T, E).",
                       T_TR + ": Transformer.forward (Shape)")
LAYER_NO_BIAS = rule("attention.layers.bias_false",
                     "bias=False: the Linear and LayerNorm layers (and the attention projections) have no additive "
                     "bias.", T_TR + ": TransformerEncoderLayer / TransformerDecoderLayer (bias)")
LAYER_NORM_EPS = rule("attention.encoder_layer.norm_eps_by_hand",
                      "A norm2.eps modified by hand (so norm1.eps != norm2.eps) is used by norm2: the fast path is "
                      "refused and the result is the formula with each LayerNorm's own eps.",
                      T_TR + ": TransformerEncoderLayer (Fast path: 'unless the caller has manually modified one')")
LAYER_LEGACY = rule("attention.layers.legacy_checkpoint",
                    "Layers unpickled from an older checkpoint without 'activation' use relu; a TransformerEncoder "
                    "without 'use_nested_tensor' runs the padded computation.",
                    T_TR + ": TransformerEncoderLayer/TransformerDecoderLayer.__setstate__, TransformerEncoder.forward")
TRANSFORMER_CUSTOM = rule("attention.transformer.custom_encoder_decoder",
                          "custom_encoder / custom_decoder replace the built encoder and decoder: the output is "
                          "custom_decoder(tgt, custom_encoder(src)).", T_TR + ": Transformer (custom_encoder, custom_decoder)")
LAYER_NOT_TENSOR_MASK = rule("attention.layers.mask_type_error",
                             "A src_mask that is neither None nor a Tensor is rejected with RuntimeError.",
                             "torch/nn/functional.py: _none_or_dtype; " + T_TR + ": TransformerEncoderLayer.forward")

LAYER_NESTED = rule("attention.encoder_layer.nested_tensor",
                    "On the fast path TransformerEncoderLayer and TransformerEncoder take a NestedTensor src and return "
                    "a NestedTensor whose sequences are the formula on each sequence alone; with a "
                    "src_key_padding_mask or src_mask as well (not supported with NestedTensor input) it is an "
                    "AssertionError.", T_TR + ": TransformerEncoderLayer (Fast path; Nested Tensor inputs)")

TRANSFORMER_FEATURE_ERR = rule("attention.transformer.feature_mismatch_error",
                               "src or tgt whose feature size is not d_model raises RuntimeError.",
                               T_TR + ": Transformer.forward")

LN_EPS = 1e-5
_erf = np.vectorize(math.erf)


def activation(name: str, x: np.ndarray) -> np.ndarray:
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "gelu":
        return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))
    return np.tanh(x)


class _Cond:
    """Running bound of the conditioning met on the way (softmax scores, 1/std of norms)."""

    def __init__(self, softmax):
        self.M = 0.0
        self.norm_gain = 1.0
        self.mag = 1.0
        self.softmax = softmax
        self.norm2_eps = None


def _attn(P, prefix, x_q, x_kv, nhead, bias, cond: _Cond):
    """Self/cross attention (N, L, E) with additive bias (N, 1, L, S): the module's MultiheadAttention."""
    params = {name[len(prefix) + 1:]: value for name, value in P.items() if name.startswith(prefix + ".")}
    out, _, M, _ = attention_block(params, x_q, x_kv, x_kv, nhead, bias, softmax=cond.softmax)
    cond.M = max(cond.M, M)
    return out


def _ff(P, prefix, x, act):
    h = activation(act, x @ P[prefix + "linear1.weight"].T + P.get(prefix + "linear1.bias", 0.0))
    return h @ P[prefix + "linear2.weight"].T + P.get(prefix + "linear2.bias", 0.0)


def _norm(P, name, x, cond: _Cond):
    """LayerNorm ``name`` (its bias absent with bias=False); norm2 of a layer may carry an eps set by hand."""
    eps = cond.norm2_eps if name.endswith("norm2") and cond.norm2_eps is not None else LN_EPS
    y = layer_norm(x, 1, eps, P[name + ".weight"], P.get(name + ".bias"))
    min_std = float(np.min(np.sqrt(((x - x.mean(axis=-1, keepdims=True)) ** 2).mean(axis=-1) + eps)))
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


def _encoder_layer(P, prefix, x, case, bias, cond):
    sa = lambda y: _attn(P, prefix + "self_attn", y, y, case.nhead, bias, cond)  # noqa: E731
    if case.norm_first:
        x = x + sa(_norm(P, prefix + "norm1", x, cond))
        return x + _ff(P, prefix, _norm(P, prefix + "norm2", x, cond), case.activation)
    x = _norm(P, prefix + "norm1", x + sa(x), cond)
    return _norm(P, prefix + "norm2", x + _ff(P, prefix, x, case.activation), cond)


def _decoder_layer(P, prefix, x, mem, case, self_bias, cross_bias, cond):
    sa = lambda y: _attn(P, prefix + "self_attn", y, y, case.nhead, self_bias, cond)  # noqa: E731
    ca = lambda y: _attn(P, prefix + "multihead_attn", y, mem, case.nhead, cross_bias, cond)  # noqa: E731
    if case.norm_first:
        x = x + sa(_norm(P, prefix + "norm1", x, cond))
        x = x + ca(_norm(P, prefix + "norm2", x, cond))
        return x + _ff(P, prefix, _norm(P, prefix + "norm3", x, cond), case.activation)
    x = _norm(P, prefix + "norm1", x + sa(x), cond)
    x = _norm(P, prefix + "norm2", x + ca(x), cond)
    return _norm(P, prefix + "norm3", x + _ff(P, prefix, x, case.activation), cond)


def model(case, inp, P, softmax=softmax) -> tuple[np.ndarray, _Cond]:
    """(output, conditioning met) of the LayerCase's module: the documented padded computation, on the
    inputs ``inp`` and parameters ``P`` (torch's names); ``softmax`` normalizes the attention scores."""
    src, mem = inp["src"], inp["memory"]
    if case.batch == 0:  # unbatched: one sequence
        src, mem = src[None], mem[None]
    elif not case.batch_first:
        src, mem = np.swapaxes(src, 0, 1), np.swapaxes(mem, 0, 1)
    N, L, S = src.shape[0], src.shape[1], mem.shape[1]
    self_bias = _bias(inp["src_masked"], inp["src_mask_add"], inp["kpm"], N, L, L)
    cond = _Cond(softmax)
    cond.norm2_eps = case.norm2_eps
    if case.kind == "encoder_layer":
        out = _encoder_layer(P, "", src, case, self_bias, cond)
    elif case.kind == "encoder":
        out = src
        for i in range(case.num_layers):
            out = _encoder_layer(P, f"layers.{i}.", out, case, self_bias, cond)
        if case.final_norm:
            out = _norm(P, "norm", out, cond)
    elif case.kind in ("decoder_layer", "decoder"):
        cross_bias = _bias(inp.get("memory_masked"), None, inp["memory_kpm"], N, L, S)
        if case.kind == "decoder_layer":
            out = _decoder_layer(P, "", src, mem, case, self_bias, cross_bias, cond)
        else:
            out = src
            for i in range(case.num_layers):
                out = _decoder_layer(P, f"layers.{i}.", out, mem, case, self_bias, cross_bias, cond)
            if case.final_norm:
                out = _norm(P, "norm", out, cond)
    else:  # transformer: memory is the encoder of `memory` (the src), tgt is `src`
        enc_bias = _bias(None, None, inp["memory_kpm"], N, S, S)
        m = mem
        for i in range(case.num_layers):
            m = _encoder_layer(P, f"encoder.layers.{i}.", m, case, enc_bias, cond)
        # custom_encoder/custom_decoder: stacks with a final norm only where the case gives them one
        final_norms = not case.custom or case.final_norm
        m = _norm(P, "encoder.norm", m, cond) if final_norms else m
        cross_bias = _bias(None, None, inp["memory_kpm"], N, L, S)
        out = src
        for i in range(case.num_layers):
            out = _decoder_layer(P, f"decoder.layers.{i}.", out, m, case, self_bias, cross_bias, cond)
        out = _norm(P, "decoder.norm", out, cond) if final_norms else out
    if case.batch == 0:
        out = out[0]
    elif not case.batch_first:
        out = np.swapaxes(out, 0, 1)
    return out, cond


def nested_flag(case) -> dict:
    """TransformerEncoder.__init__: a layer the sparsity fast path cannot use (not a TransformerEncoderLayer,
    norm_first, not batch_first, bias=False, another activation, norm eps differing, odd nhead) turns
    enable_nested_tensor off, with a warning."""
    ok = (not case.custom and case.batch_first and not case.norm_first and case.bias
          and case.activation in ("relu", "gelu") and case.norm2_eps is None and case.nhead % 2 == 0)
    use = case.enable_nested_tensor and ok
    return {"use_nested_tensor": use, "warned": case.enable_nested_tensor and not ok}


def nested_conversion(case) -> bool:
    """TransformerEncoder.forward converts to a nested tensor (sparsity fast path) for this case: eval, no
    grad, fast paths enabled, a batched input with a left-aligned src_key_padding_mask and no mask, no Tensor
    subclass, the use_nested_tensor attribute present and True."""
    return (case.kind == "encoder" and case.path == "eval_nograd" and case.fastpath and not case.legacy
            and nested_flag(case)["use_nested_tensor"] and case.batch > 0 and case.kpm_lengths is not None
            and not case.kpm_right_aligned and case.src_mask == "none" and not case.subclass and case.nested == "none")


def layer_fast_path(case) -> bool:
    """TransformerEncoderLayer.forward runs its fused kernel (docstring 'Fast path' list + source checks: even
    nhead, bias, fast paths enabled, no hooks, no Tensor subclass)."""
    return (case.kind in ("encoder_layer", "encoder") and case.path == "eval_nograd" and case.fastpath
            and case.batch > 0 and case.batch_first and case.bias and case.activation in ("relu", "gelu")
            and case.norm2_eps is None and case.nhead % 2 == 0 and not case.hooked and not case.subclass)


def rules(case) -> list[str]:
    """The rules a forward case exercises: the fused paths (eval + no_grad) have their own."""
    if case.kind == "encoder_layer":
        if case.path == "eval_nograd":
            out = [ENC_FAST]
        else:
            out = [ENC_LAYER] + ([ENC_ACT] if case.activation != "relu" else [])
            out += [ENC_MASKS] if case.src_mask != "none" or case.kpm_lengths else []
    elif case.kind == "encoder":
        out = [ENC_NESTED] if nested_conversion(case) else [ENC_FAST] if case.path == "eval_nograd" else [ENC_STACK]
    elif case.kind in ("decoder_layer", "decoder"):
        out = [DEC_LAYER] if case.kind == "decoder_layer" else [DEC_STACK]
        out += [DEC_CAUSAL] if case.src_mask == "causal" and case.tgt_is_causal is not False else []
        out += [DEC_MEM_CAUSAL] if case.memory_causal else []
    else:
        out = [TRANSFORMER]
    out += [LAYER_UNBATCHED] if case.batch == 0 else []
    out += [LAYER_NO_BIAS] if not case.bias else []
    out += [LAYER_NORM_EPS] if case.norm2_eps is not None else []
    out += [LAYER_LEGACY] if case.legacy else []
    out += [TRANSFORMER_CUSTOM] if case.kind == "transformer" and case.custom else []
    return out + ([LAYER_DROPOUT_EVAL] if case.dropout else [])


def expectations(case, inp, P) -> list[Expect]:
    if case.meta:
        return [Expect(MHA_META, np.shape(model(case, inp, P)[0]))]
    if case.nested != "none":  # only with the fast path's conditions met otherwise
        if case.nested == "with_kpm" or case.src_mask != "none":
            return [Expect(LAYER_NESTED, Raised("AssertionError", r"does not support NestedTensor outside of its fast"))]
        # each sequence alone: the padded computation with the padding masked, at the unpadded rows
        out, cond = model(case, inp, P)
        sequences = [out[b, :n] for b, n in enumerate(case.kpm_lengths)]
        return [Expect(LAYER_NESTED, sequences, layer_tol(case, cond.M, cond.norm_gain, cond.mag))]
    out, cond = model(case, inp, P)
    t = layer_tol(case, cond.M, cond.norm_gain, cond.mag)
    return [Expect(r, out, t) for r in rules(case)]


def score_magnitude(case, inp, P) -> float:
    return model(case, inp, P)[1].M


def shape_error_expectations(case) -> list[Expect]:
    """Transformer.forward with a feature size other than d_model, or else src/tgt batch sizes that disagree."""
    if case.bad_feature != "none":
        return [Expect(TRANSFORMER_FEATURE_ERR,
                       Raised("RuntimeError", r"the feature number of src and tgt must be equal to d_model"))]
    return [Expect(TRANSFORMER_ERR, Raised("RuntimeError", r"the batch number of src and tgt must be equal"))]


def nested_flag_expectations(case) -> list[Expect]:
    return [Expect(ENC_NESTED_FLAG, nested_flag(case))]


def layer_defaults() -> dict:
    """What a layer built with only d_model and nhead holds (the documented defaults)."""
    return {"dim_feedforward": 2048, "dropout": 0.1, "activation": "relu", "layer_norm_eps": 1e-5,
            "batch_first": False, "norm_first": False, "bias": True}


def activation_expectations(case) -> list[Expect]:
    if case.activation in ("relu", "gelu"):
        return [Expect(ENC_ACT_ERR, "no error")]
    return [Expect(ENC_ACT_ERR, Raised("RuntimeError", r"activation should be relu/gelu, not " + case.activation))]


def mask_type_expectations(case) -> list[Expect]:
    return [Expect(LAYER_NOT_TENSOR_MASK, Raised("RuntimeError", r"must be None or torch.Tensor"))]

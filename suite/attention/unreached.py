"""Ranges of the attention area's torch files a CPU run cannot reach (see suite/unreached.py for the form)."""
from __future__ import annotations

from suite.unreached import CUDA_ONLY, DEPRECATED, UNREACHABLE, Unreached

TR = "nn/modules/transformer.py"
ACT = "nn/modules/activation.py"
FN = "nn/functional.py"
# torch.is_autocast_enabled() without a device type reports CUDA autocast only (measured on 2.13.0+cpu: False
# inside torch.autocast("cpu")), so on CPU the fast paths never see autocast
AUTOCAST = ("torch.is_autocast_enabled() with no device type asks about CUDA autocast only (inside "
            "torch.autocast('cpu') it is False), so only a CUDA run refuses the fast path for autocast")
SAME_EMBED = ("TransformerEncoderLayer always builds self_attn with kdim = vdim = d_model, so _qkv_same_embed_dim is "
              "True; only a self_attn replaced by hand with another kdim/vdim reaches this, and such a layer cannot "
              "take its own (..., d_model) input")

UNREACHED = [
    Unreached(TR, "TransformerEncoder.__init__", UNREACHABLE, SAME_EMBED, contains="why_not_sparsity_fast_path = ("),
    Unreached(TR, "TransformerEncoderLayer.forward", UNREACHABLE, SAME_EMBED,
              contains='"self_attn._qkv_same_embed_dim was not True"'),
    Unreached(TR, "TransformerEncoder.forward", CUDA_ONLY, AUTOCAST, contains='"autocast is enabled"'),
    Unreached(TR, "TransformerEncoderLayer.forward", CUDA_ONLY, AUTOCAST, contains='"autocast is enabled"'),
    Unreached(ACT, "MultiheadAttention.forward", CUDA_ONLY, AUTOCAST, contains='"autocast is enabled"'),
    Unreached(ACT, "MultiheadAttention.forward", UNREACHABLE,
              "the constructor creates bias_k and bias_v together (add_bias_kv), so bias_v is set only if bias_k is, "
              "and bias_k's refusal comes first (activation.py: MultiheadAttention.__init__)",
              contains='"self.bias_v was not None"'),
    Unreached(ACT, "MultiheadAttention.forward", UNREACHABLE,
              "in_proj_weight is None exactly when _qkv_same_embed_dim is False (MultiheadAttention.__init__), and "
              "the in_proj_weight refusal is checked just before", contains='"_qkv_same_embed_dim was not True"'),
    Unreached(ACT, "_is_make_fx_tracing", DEPRECATED,
              "the torch.jit.is_scripting() branch runs only inside TorchScript-compiled code (torch.jit.script, "
              "deprecated), which is not executed as Python", contains="return False"),
    *(Unreached(ACT, "MultiheadAttention.forward", UNREACHABLE,
                "runs only while make_fx traces the call (_is_make_fx_tracing: torch.fx.experimental.proxy_tensor, "
                "an experimental module, not public API); eager calls take the fast path under the same conditions",
                contains=text)
      for text in ('why_not_fast_path = "we are running make_fx tracing"', "attn_output = attn_output.contiguous()")),
    Unreached(FN, "_in_projection", UNREACHABLE,
              "multi_head_attention_forward splits in_proj_bias with chunk(3), whose first two chunks have the same "
              "size, so a key bias of the wrong shape always fails the query bias check first",
              contains="raise AssertionError("),
    Unreached(FN, "multi_head_attention_forward", DEPRECATED,
              "embed_dim is a Tensor only while torch.jit.trace (TorchScript, deprecated) traces the call",
              contains='head_dim = embed_dim.div(num_heads, rounding_mode="trunc")'),
    Unreached(FN, "multi_head_attention_forward", UNREACHABLE,
              "dead code: _mha_shape_check has already rejected every attn_mask that is not 2-D or 3-D",
              contains="raise RuntimeError("),
    Unreached(FN, "multi_head_attention_forward", UNREACHABLE,
              "dead code: with need_weights the attn_mask is kept (is_causal without attn_mask was rejected above), "
              "so is_causal never meets a None attn_mask here",
              contains='raise AssertionError("FIXME: is_causal not implemented for need_weights")'),
]

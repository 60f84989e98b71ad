"""TransformerEncoderLayer / Encoder / DecoderLayer / Decoder / Transformer."""
from __future__ import annotations

import contextlib
import pickle
import warnings

import numpy as np
import torch

from suite.attention.cases import DTYPES, LayerCase, _gen, layer_inputs
from suite.attention.torch_side.common import Passthrough, fastpath_enabled, outcome


def _activation(name: str):
    # a name is passed as a string built at run time, as one read from a config would be: "relu"/"gelu" are
    # compared by value, not as the caller's interned literal
    return torch.tanh if name == "callable_tanh" else "".join(list(name))


def build_layer(case: LayerCase, device: str) -> torch.nn.Module:
    """The module with its parameters drawn from the case's seed (torch's RNG as a primitive): norm weights
    ~ 1 + 0.3 N(0, 1), other vectors 0.3 N(0, 1), matrices N(0, 1) / sqrt(fan_in)."""
    dt = DTYPES[case.dtype]
    common = dict(dim_feedforward=case.ff, dropout=case.dropout, activation=_activation(case.activation),
                  batch_first=case.batch_first, norm_first=case.norm_first, bias=case.bias, dtype=dt)

    def encoder_layer():
        layer = torch.nn.TransformerEncoderLayer(case.d_model, case.nhead, **common)
        if case.norm2_eps is not None:  # modified by hand, before any encoder is built from it
            layer.norm2.eps = case.norm2_eps
        return layer

    def norm():
        return torch.nn.LayerNorm(case.d_model, bias=case.bias, dtype=dt) if case.final_norm else None

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # enable_nested_tensor warnings are checked separately
        if case.kind == "encoder_layer":
            m = encoder_layer()
        elif case.kind == "decoder_layer":
            m = torch.nn.TransformerDecoderLayer(case.d_model, case.nhead, **common)
        elif case.kind == "encoder":
            m = torch.nn.TransformerEncoder(encoder_layer(), case.num_layers, norm=norm(),
                                            enable_nested_tensor=case.enable_nested_tensor, mask_check=case.mask_check)
        elif case.kind == "decoder":
            layer = torch.nn.TransformerDecoderLayer(case.d_model, case.nhead, **common)
            m = torch.nn.TransformerDecoder(layer, case.num_layers, norm=norm())
        elif case.custom:
            enc = torch.nn.TransformerEncoder(encoder_layer(), case.num_layers, norm=norm())
            dec = torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(case.d_model, case.nhead, **common),
                                              case.num_layers, norm=norm())
            m = torch.nn.Transformer(case.d_model, case.nhead, custom_encoder=enc, custom_decoder=dec, **common)
        else:
            m = torch.nn.Transformer(case.d_model, case.nhead, case.num_layers, case.num_layers, **common)
    g = _gen(case.seed + 7)
    with torch.no_grad():
        for name, p in m.named_parameters():
            fan_in = p.shape[-1]
            if p.dim() == 1:
                val = torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.3 + (1.0 if "norm" in name and name.endswith("weight") else 0.0)
            else:
                val = torch.randn(p.shape, generator=g, dtype=torch.float64) / np.sqrt(fan_in)
            p.copy_(val.to(dt))
    if case.legacy:  # a checkpoint of a release before these attributes existed
        for mod in m.modules():
            if isinstance(mod, (torch.nn.TransformerEncoderLayer, torch.nn.TransformerDecoderLayer)):
                del mod.activation
            if isinstance(mod, torch.nn.TransformerEncoder):
                del mod.use_nested_tensor
        m = pickle.loads(pickle.dumps(m))
    if case.hooked:  # a forward hook that changes nothing, on every layer
        for mod in m.modules():
            if isinstance(mod, (torch.nn.TransformerEncoderLayer, torch.nn.TransformerDecoderLayer)):
                mod.register_forward_hook(_no_op_hook)
    return m.to(device)


def _no_op_hook(module, args, output):
    return None


def layer_params(case: LayerCase) -> dict[str, np.ndarray]:
    """The parameters torch's module holds for ``case`` (inputs of the computation, handed to the reference)."""
    m = build_layer(case, "cpu")
    return {n: p.detach().to(torch.float64).numpy() for n, p in m.named_parameters()}


def _kpm_tensor(kpm: np.ndarray | None, kind: str, dt: torch.dtype, device: str,
                unbatched: bool = False) -> torch.Tensor | None:
    if kpm is None:
        return None
    t = torch.from_numpy(kpm[0] if unbatched else kpm)
    if kind == "float":
        t = torch.zeros(t.shape, dtype=dt).masked_fill(t, float("-inf"))
    return t.to(device)


@outcome
def run_layer(case: LayerCase, device: str):
    inp = layer_inputs(case)
    dt = DTYPES[case.dtype]
    device = "meta" if case.meta else device
    m = build_layer(case, device)
    wrap = (lambda t: t.as_subclass(Passthrough)) if case.subclass else (lambda t: t)  # noqa: E731
    src = wrap(torch.from_numpy(inp["src"]).to(dt).to(device))
    mem = wrap(torch.from_numpy(inp["memory"]).to(dt).to(device))
    mask = None
    if inp["src_masked"] is not None:
        if case.src_mask == "float":
            mask = torch.from_numpy(inp["src_mask_add"]).to(dt).to(device)
        elif case.src_mask == "causal":
            mask = torch.nn.Transformer.generate_square_subsequent_mask(case.L, device=device, dtype=dt)
        else:
            mask = torch.from_numpy(inp["src_masked"]).to(device)
    kpm = _kpm_tensor(inp["kpm"], case.kpm_kind, dt, device, case.batch == 0)
    if case.nested != "none":
        src = torch.nested.nested_tensor([src[b, :n] for b, n in enumerate(case.kpm_lengths)])
        kpm = kpm if case.nested == "with_kpm" else None
    mkpm = _kpm_tensor(inp["memory_kpm"], case.kpm_kind, dt, device, case.batch == 0)
    mmask = None
    if case.memory_causal:
        mmask = torch.triu(torch.full((case.L, case.S), float("-inf"), dtype=dt), diagonal=1).to(device)
    ctx = torch.no_grad() if case.path == "eval_nograd" else contextlib.nullcontext()
    m.train() if case.path == "slow" else m.eval()
    with warnings.catch_warnings(), ctx, fastpath_enabled(case.fastpath):
        warnings.simplefilter("ignore")  # nested-tensor prototype warnings
        if case.kind == "encoder_layer":
            out = m(src, src_mask=mask, src_key_padding_mask=kpm, is_causal=bool(case.tgt_is_causal))
        elif case.kind == "encoder":
            out = m(src, mask=mask, src_key_padding_mask=kpm, is_causal=case.tgt_is_causal)
        elif case.kind == "decoder_layer":
            out = m(src, mem, tgt_mask=mask, memory_mask=mmask, tgt_key_padding_mask=kpm,
                    memory_key_padding_mask=mkpm, tgt_is_causal=bool(case.tgt_is_causal),
                    memory_is_causal=case.memory_causal)
        elif case.kind == "decoder":
            out = m(src, mem, tgt_mask=mask, memory_mask=mmask, tgt_key_padding_mask=kpm,
                    memory_key_padding_mask=mkpm, tgt_is_causal=case.tgt_is_causal,
                    memory_is_causal=case.memory_causal)
        else:
            out = m(mem, src, tgt_mask=mask, tgt_key_padding_mask=kpm, memory_key_padding_mask=mkpm,
                    src_key_padding_mask=mkpm, tgt_is_causal=case.tgt_is_causal)
    if case.meta:  # no data: the shape
        return tuple(out.shape)
    if out.is_nested:
        return [t.to(torch.float64).cpu().numpy() for t in out.unbind()]
    return out.detach().as_subclass(torch.Tensor).to(torch.float64).cpu().numpy()


@outcome
def run_encoder_use_nested(case: LayerCase, device: str):
    """(use_nested_tensor attribute, names of the warnings emitted at construction)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dt = DTYPES[case.dtype]
        layer = torch.nn.TransformerEncoderLayer(case.d_model, case.nhead, case.ff, 0.0, _activation(case.activation),
                                                 batch_first=case.batch_first, norm_first=case.norm_first,
                                                 bias=case.bias, dtype=dt)
        if case.norm2_eps is not None:
            layer.norm2.eps = case.norm2_eps
        if case.custom:  # a user's layer module that is not a TransformerEncoderLayer
            layer = torch.nn.Sequential(layer)
        m = torch.nn.TransformerEncoder(layer, case.num_layers, enable_nested_tensor=case.enable_nested_tensor)
    warned = any("enable_nested_tensor is True" in str(w.message) for w in caught)
    return {"use_nested_tensor": bool(m.use_nested_tensor), "warned": warned}


@outcome
def run_transformer_shapes(case: LayerCase, device: str):
    """Transformer.forward with src/tgt batch sizes that disagree, or a src or tgt feature size != d_model
    (a missed check fails later, as another error)."""
    m = build_layer(case, device)
    dt = DTYPES[case.dtype]

    def shape(n_batch: int, length: int) -> tuple[int, int, int]:
        return (n_batch, length, case.d_model) if case.batch_first else (length, n_batch, case.d_model)

    src_f = case.d_model + (case.bad_feature == "src")
    tgt_f = case.d_model + (case.bad_feature == "tgt")
    src_n = case.batch + (case.bad_feature == "none")  # "none": the batch sizes disagree instead
    src = torch.zeros(shape(src_n, case.S)[:-1] + (src_f,), dtype=dt, device=device)
    tgt = torch.zeros(shape(case.batch, case.L)[:-1] + (tgt_f,), dtype=dt, device=device)
    m(src, tgt)
    return "no error"


@outcome
def run_layer_defaults(kind: str, device: str) -> dict:
    """A TransformerEncoderLayer / TransformerDecoderLayer built with only d_model=4 and nhead=2: its settings as
    the module holds them (activation: relu named by its function)."""
    cls = {"encoder_layer": torch.nn.TransformerEncoderLayer, "decoder_layer": torch.nn.TransformerDecoderLayer}[kind]
    m = cls(4, 2, device=device)
    act = m.activation
    name = {torch.nn.functional.relu: "relu", torch.nn.functional.gelu: "gelu"}.get(act, type(act).__name__.lower())
    return {"dim_feedforward": m.linear1.out_features, "dropout": m.dropout.p, "activation": name,
            "layer_norm_eps": m.norm1.eps, "batch_first": m.self_attn.batch_first, "norm_first": m.norm_first,
            "bias": m.linear1.bias is not None}


@outcome
def run_activation(case: LayerCase, device: str):
    torch.nn.TransformerEncoderLayer(case.d_model, case.nhead, case.ff, activation=_activation(case.activation),
                                     device=device)
    return "no error"


@outcome
def run_layer_list_mask(case: LayerCase, device: str):
    """TransformerEncoderLayer given a src_mask that is a nested list, not a Tensor."""
    m = build_layer(case, device)
    src = torch.from_numpy(layer_inputs(case)["src"]).to(DTYPES[case.dtype]).to(device)
    m(src, src_mask=[[0.0] * case.L] * case.L)
    return "no error"

"""Torch side of the attention area: Case dataclasses, input builders and runners.

Imports only torch, numpy, the standard library and ``suite.compare`` (the repro
writer embeds this module).  Inputs are drawn on CPU from ``case.seed`` with a
private ``torch.Generator`` and rounded to ``case.dtype`` once; ``make_*`` return
them as float64 numpy arrays so the reference sees exactly the values torch sees
(input generation is not under test).
"""
from __future__ import annotations

import contextlib
import functools
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from conform.outcome import Raised

DTYPES = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def outcome(fn):
    """Any exception escaping torch becomes an outcome (``Raised``): it is compared with the reference and
    attributed to the rule being checked, instead of failing every rule of the test (an API a release
    lacks, a TypeError, ...)."""

    @functools.wraps(fn)
    def run(case, device: str, *args, **kwargs):
        try:
            return fn(case, device, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 -- every exception is an outcome
            return Raised(type(exc).__name__, str(exc))

    return run


# ---------------------------------------------------------------------------- cases
@dataclass(frozen=True)
class MaskSpec:
    """A mask drawn from a seed.  ``kind``: none | bool | float | int.
    ``masked_rows``: query rows forced to be fully masked; ``density``: share of
    other entries masked out.  Float masks carry finite additive noise plus -inf
    where masked."""

    kind: str = "none"
    density: float = 0.0
    masked_rows: tuple[int, ...] = ()
    seed: int = 0


@dataclass(frozen=True)
class SdpaCase:
    seed: int
    batch: int
    hq: int
    hkv: int
    L: int
    S: int
    E: int
    Ev: int
    dtype: str = "float32"
    mask: MaskSpec = MaskSpec()
    is_causal: bool = False
    scale: float | None = None
    enable_gqa: bool = False
    backend: str = "default"  # default | math | flash | efficient | cudnn
    magnitude: float = 1.0
    polarity: str = "sdpa"  # bool masks: "sdpa" passes True=attend; "inverted" passes the MHA polarity
    mask_dtype: str | None = None  # float masks: override dtype (None = query dtype)


@dataclass(frozen=True)
class MhaCase:
    seed: int
    E: int
    H: int
    L: int
    S: int
    batch: int  # 0 = unbatched
    batch_first: bool = False
    kdim: int | None = None
    vdim: int | None = None
    bias: bool = True
    add_bias_kv: bool = False
    add_zero_attn: bool = False
    need_weights: bool = True
    average_attn_weights: bool = True
    attn_mask: MaskSpec = MaskSpec()
    attn_mask_3d: bool = False
    kpm: MaskSpec = MaskSpec()
    is_causal: bool = False
    self_attention: bool = False  # pass the same tensor as query, key and value
    path: str = "slow"  # slow (training mode) | eval_grad (eval, grad on: slow path) | eval_nograd (fast path if its conditions hold)
    dtype: str = "float32"
    magnitude: float = 1.0
    bad_attn_mask_shape: tuple[int, ...] | None = None  # explicit (wrong) shape for an error rule
    bad_kpm_shape: tuple[int, ...] | None = None
    dropout: float = 0.0  # only with path eval_grad / eval_nograd: dropout must then be inactive


@dataclass(frozen=True)
class MhaCtorCase:
    embed_dim: int
    num_heads: int


@dataclass(frozen=True)
class LayerCase:
    """TransformerEncoderLayer / Encoder / DecoderLayer / Decoder / Transformer."""

    seed: int
    kind: str  # encoder_layer | encoder | decoder_layer | decoder | transformer
    d_model: int
    nhead: int
    ff: int
    L: int  # src length (encoder) / tgt length (decoder)
    S: int  # memory length
    batch: int
    batch_first: bool = True
    norm_first: bool = False
    activation: str = "relu"  # relu | gelu | callable_tanh
    num_layers: int = 1
    final_norm: bool = False
    src_mask: str = "none"  # none | causal | bool | float
    kpm_lengths: tuple[int, ...] | None = None  # per batch element: number of unpadded (left-aligned) keys
    kpm_kind: str = "bool"
    memory_kpm_lengths: tuple[int, ...] | None = None
    tgt_is_causal: bool | None = None
    memory_causal: bool = False  # memory_mask = upper-left causal (L, S) float mask, with memory_is_causal=True
    enable_nested_tensor: bool = True
    mask_check: bool = True
    path: str = "slow"  # slow (train) | eval_grad (eval, grad on) | eval_nograd (fast paths)
    dtype: str = "float32"
    magnitude: float = 1.0
    dropout: float = 0.0  # only with path eval_grad / eval_nograd: dropout must then be inactive
    bad_feature: str = "none"  # transformer_shape_check: none (batch mismatch) | src | tgt (d_model + 1 features)


@dataclass(frozen=True)
class CausalCase:
    size: int
    dtype: str = "float32"
    hint: bool | None = None
    mask: str = "causal"  # causal | causal_bool | other | none | batched_causal
    check_size: int | None = None


# ---------------------------------------------------------------------------- inputs
def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) % (2**63))


def _rounded(t: torch.Tensor, dtype: str) -> np.ndarray:
    return t.to(DTYPES[dtype]).to(torch.float64).numpy()


def make_masked(spec: MaskSpec, shape: tuple[int, ...]) -> np.ndarray | None:
    """Boolean 'masked out' pattern of ``shape`` (True = excluded), rows along dim -2."""
    if spec.kind == "none":
        return None
    if spec.kind == "causal":  # True above the diagonal: the bool form of generate_square_subsequent_mask
        return np.broadcast_to(np.triu(np.ones(shape[-2:], dtype=bool), k=1), shape).copy()
    g = _gen(spec.seed)
    masked = (torch.rand(shape, generator=g) < spec.density).numpy()
    if len(shape) >= 2:
        for r in spec.masked_rows:
            if r < shape[-2]:
                masked[..., r, :] = True
    return masked


def mask_values(spec: MaskSpec, masked: np.ndarray) -> np.ndarray:
    """Additive float values (finite noise, -inf where masked) for a float mask."""
    g = _gen(spec.seed + 1)
    noise = (torch.rand(masked.shape, generator=g, dtype=torch.float64) * 2.0 - 1.0).numpy()
    if spec.kind == "neginf":
        noise = np.zeros(masked.shape)
    return np.where(masked, -np.inf, noise)


def make_sdpa_inputs(case: SdpaCase) -> dict:
    g = _gen(case.seed)
    m = case.magnitude
    q = torch.randn(case.batch, case.hq, case.L, case.E, generator=g, dtype=torch.float64) * m
    k = torch.randn(case.batch, case.hkv, case.S, case.E, generator=g, dtype=torch.float64) * m
    v = torch.randn(case.batch, case.hkv, case.S, case.Ev, generator=g, dtype=torch.float64)
    out = {"q": _rounded(q, case.dtype), "k": _rounded(k, case.dtype), "v": _rounded(v, case.dtype)}
    masked = make_masked(case.mask, (case.L, case.S))
    out["masked"] = masked
    if masked is not None and case.mask.kind in ("float", "neginf"):
        vals = torch.from_numpy(mask_values(case.mask, masked))
        out["mask_add"] = _rounded(vals, case.mask_dtype or case.dtype)
    return out


def mha_param_shapes(case: MhaCase) -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes in registration order, as MultiheadAttention documents them."""
    E = case.E
    kdim, vdim = case.kdim or E, case.vdim or E
    shapes: dict[str, tuple[int, ...]] = {}
    if kdim == E and vdim == E:
        shapes["in_proj_weight"] = (3 * E, E)
    else:
        shapes.update(q_proj_weight=(E, E), k_proj_weight=(E, kdim), v_proj_weight=(E, vdim))
    if case.bias:
        shapes["in_proj_bias"] = (3 * E,)
    if case.add_bias_kv:
        shapes.update(bias_k=(1, 1, E), bias_v=(1, 1, E))
    shapes["out_proj.weight"] = (E, E)
    if case.bias:
        shapes["out_proj.bias"] = (E,)
    return shapes


def _param_values(shapes: dict[str, tuple[int, ...]], g: torch.Generator, dtype: str) -> dict[str, np.ndarray]:
    out = {}
    for name, shape in shapes.items():
        fan_in = shape[-1]
        t = torch.randn(shape, generator=g, dtype=torch.float64) / np.sqrt(fan_in)
        if "bias" in name:
            t = torch.randn(shape, generator=g, dtype=torch.float64) * 0.5
        out[name] = _rounded(t, dtype)
    return out


def _seq_shape(case: MhaCase, length: int, dim: int) -> tuple[int, ...]:
    if case.batch == 0:
        return (length, dim)
    return (case.batch, length, dim) if case.batch_first else (length, case.batch, dim)


def make_mha_inputs(case: MhaCase) -> dict:
    g = _gen(case.seed)
    m = case.magnitude
    kdim, vdim = case.kdim or case.E, case.vdim or case.E
    out: dict = {"params": _param_values(mha_param_shapes(case), g, case.dtype)}
    q = torch.randn(_seq_shape(case, case.L, case.E), generator=g, dtype=torch.float64) * m
    out["query"] = _rounded(q, case.dtype)
    if case.self_attention:
        out["key"] = out["value"] = out["query"]
    else:
        out["key"] = _rounded(torch.randn(_seq_shape(case, case.S, kdim), generator=g, dtype=torch.float64) * m, case.dtype)
        out["value"] = _rounded(torch.randn(_seq_shape(case, case.S, vdim), generator=g, dtype=torch.float64), case.dtype)
    S = case.L if case.self_attention else case.S
    n = max(case.batch, 1)
    am_shape = case.bad_attn_mask_shape or ((n * case.H, case.L, S) if case.attn_mask_3d else (case.L, S))
    out["attn_masked"] = make_masked(case.attn_mask, am_shape)
    if out["attn_masked"] is not None and case.attn_mask.kind in ("float", "neginf"):
        out["attn_mask_add"] = _rounded(torch.from_numpy(mask_values(case.attn_mask, out["attn_masked"])), case.dtype)
    kpm_shape = case.bad_kpm_shape or ((S,) if case.batch == 0 else (case.batch, S))
    kpm = make_masked(case.kpm, (1,) + kpm_shape)
    out["kpm_masked"] = None if kpm is None else kpm[0]
    if kpm is not None and case.kpm.kind in ("float", "neginf"):
        out["kpm_add"] = _rounded(torch.from_numpy(mask_values(case.kpm, kpm[0])), case.dtype)
    return out


def _mask_tensor(kind: str, masked: np.ndarray | None, add: np.ndarray | None, dtype: torch.dtype,
                 device: str, attend_true: bool = False) -> torch.Tensor | None:
    if masked is None:
        return None
    if kind in ("bool", "causal"):
        t = torch.from_numpy(~masked if attend_true else masked.copy())
    elif kind == "int":
        t = torch.from_numpy(masked.astype(np.int64))
    else:
        t = torch.from_numpy(add).to(dtype)
    return t.to(device)


# ---------------------------------------------------------------------------- sdpa
def _backend_ctx(backend: str):
    if backend == "default":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    names = {"math": "MATH", "flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION", "cudnn": "CUDNN_ATTENTION"}
    return sdpa_kernel(getattr(SDPBackend, names[backend]))


def available_backends(device: str) -> tuple[str, ...]:
    """SDPA backends this build offers on ``device`` (CPU: math and the CPU flash kernel)."""
    if device.split(":")[0] == "cuda":
        return ("default", "math", "flash", "efficient", "cudnn")
    return ("default", "math", "flash")


@outcome
def run_sdpa(case: SdpaCase, device: str):
    inp = make_sdpa_inputs(case)
    dt = DTYPES[case.dtype]
    q, k, v = (torch.from_numpy(inp[n]).to(dt).to(device) for n in ("q", "k", "v"))
    mdt = DTYPES[case.mask_dtype] if case.mask_dtype else dt
    mask = _mask_tensor(case.mask.kind, inp["masked"], inp.get("mask_add"), mdt, device,
                        attend_true=case.polarity == "sdpa")
    kwargs = {}
    if case.scale is not None:
        kwargs["scale"] = case.scale
    if case.enable_gqa:
        kwargs["enable_gqa"] = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # backend refusals warn with their reasons
            with _backend_ctx(case.backend):
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0,
                                                     is_causal=case.is_causal, **kwargs)
    except (RuntimeError, ValueError, AssertionError) as exc:
        return Raised(type(exc).__name__, str(exc))
    return out.to(torch.float64).cpu().numpy()


# ---------------------------------------------------------------------------- mha
def build_mha(case: MhaCase, device: str) -> torch.nn.MultiheadAttention:
    dt = DTYPES[case.dtype]
    m = torch.nn.MultiheadAttention(case.E, case.H, dropout=case.dropout, bias=case.bias, add_bias_kv=case.add_bias_kv,
                                    add_zero_attn=case.add_zero_attn, kdim=case.kdim, vdim=case.vdim,
                                    batch_first=case.batch_first, dtype=dt)
    params = make_mha_inputs(case)["params"]
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.copy_(torch.from_numpy(params[name]).to(dt))
    return m.to(device)


def _fast_path_calls():
    """Count calls of torch._native_multi_head_attention (the MHA fast path kernel) without changing it."""
    original = torch._native_multi_head_attention
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    return original, wrapper, calls


@outcome
def mha_forward(case: MhaCase, device: str, with_warnings: bool = False):
    """Outcome: {"out", "weights", "fast_path"} (+ "warnings"), or Raised."""
    inp = make_mha_inputs(case)
    dt = DTYPES[case.dtype]
    m = build_mha(case, device)
    q = torch.from_numpy(inp["query"]).to(dt).to(device)
    if case.self_attention:
        k = v = q
    else:
        k = torch.from_numpy(inp["key"]).to(dt).to(device)
        v = torch.from_numpy(inp["value"]).to(dt).to(device)
    am = _mask_tensor(case.attn_mask.kind, inp["attn_masked"], inp.get("attn_mask_add"), dt, device)
    kpm = _mask_tensor(case.kpm.kind, inp["kpm_masked"], inp.get("kpm_add"), dt, device)
    original, wrapper, calls = _fast_path_calls()
    if case.path == "slow":
        m.train()  # dropout is 0.0 on this path, so training mode only disables the fast path
        ctx = contextlib.nullcontext()
    else:
        m.eval()
        ctx = torch.no_grad() if case.path == "eval_nograd" else contextlib.nullcontext()
    torch._native_multi_head_attention = wrapper
    try:
        with warnings.catch_warnings(record=True) as caught, ctx:
            warnings.simplefilter("always")
            out, w = m(q, k, v, key_padding_mask=kpm, need_weights=case.need_weights, attn_mask=am,
                       average_attn_weights=case.average_attn_weights, is_causal=case.is_causal)
    except (RuntimeError, AssertionError, ValueError) as exc:
        return Raised(type(exc).__name__, str(exc))
    finally:
        torch._native_multi_head_attention = original
    result = {"out": out.detach().to(torch.float64).cpu().numpy(),
              "weights": None if w is None else w.detach().to(torch.float64).cpu().numpy(),
              "fast_path": bool(calls)}
    if with_warnings:
        result["warnings"] = [str(x.message) for x in caught if "deprecated" in str(x.message)]
    return result


def mha_outputs(case: MhaCase, device: str):
    r = mha_forward(case, device)
    return r if isinstance(r, Raised) else {"out": r["out"], "weights": r["weights"]}


def mha_fast_path_taken(case: MhaCase, device: str):
    r = mha_forward(case, device)
    return r if isinstance(r, Raised) else r["fast_path"]


def mha_mask_warnings(case: MhaCase, device: str):
    r = mha_forward(case, device, with_warnings=True)
    return r if isinstance(r, Raised) else {"out": r["out"], "warnings": r["warnings"]}


@outcome
def mha_param_layout(case: MhaCase, device: str):
    m = build_mha(case, device)
    return [(n, tuple(p.shape)) for n, p in m.named_parameters()]


@outcome
def mha_construct(case: MhaCtorCase, device: str):
    try:
        m = torch.nn.MultiheadAttention(case.embed_dim, case.num_heads, device=device)
    except (AssertionError, ValueError, RuntimeError) as exc:
        return Raised(type(exc).__name__, str(exc))
    return {"head_dim": m.head_dim}


# ---------------------------------------------------------------------------- causal masks
@outcome
def causal_mask(case: CausalCase, device: str):
    m = torch.nn.Transformer.generate_square_subsequent_mask(case.size, device=device, dtype=DTYPES[case.dtype])
    return {"dtype": str(m.dtype).replace("torch.", ""), "values": m.to(torch.float64).cpu().numpy()}


def _causal_input(case: CausalCase, device: str) -> torch.Tensor | None:
    n = case.size
    if case.mask == "none":
        return None
    full = torch.triu(torch.full((n, n), float("-inf"), dtype=DTYPES[case.dtype]), diagonal=1)
    if case.mask == "causal_bool":
        full = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
    elif case.mask == "other":
        full = full.clone()
        if n > 1:
            full[-1, 0] = float("-inf")
        else:
            full[0, 0] = float("-inf")
    elif case.mask == "batched_causal":
        full = full.expand(2, n, n)
    return full.to(device)


@outcome
def detect_causal(case: CausalCase, device: str):
    from torch.nn.modules.transformer import _detect_is_causal_mask

    return _detect_is_causal_mask(_causal_input(case, device), case.hint, case.check_size)


# ---------------------------------------------------------------------------- transformer layers
def _activation(name: str):
    return torch.tanh if name == "callable_tanh" else name


def build_layer(case: LayerCase, device: str) -> torch.nn.Module:
    dt = DTYPES[case.dtype]
    common = dict(dim_feedforward=case.ff, dropout=case.dropout, activation=_activation(case.activation),
                  batch_first=case.batch_first, norm_first=case.norm_first, dtype=dt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # enable_nested_tensor warnings are checked separately
        if case.kind == "encoder_layer":
            m = torch.nn.TransformerEncoderLayer(case.d_model, case.nhead, **common)
        elif case.kind == "decoder_layer":
            m = torch.nn.TransformerDecoderLayer(case.d_model, case.nhead, **common)
        elif case.kind == "encoder":
            layer = torch.nn.TransformerEncoderLayer(case.d_model, case.nhead, **common)
            norm = torch.nn.LayerNorm(case.d_model, dtype=dt) if case.final_norm else None
            m = torch.nn.TransformerEncoder(layer, case.num_layers, norm=norm,
                                            enable_nested_tensor=case.enable_nested_tensor, mask_check=case.mask_check)
        elif case.kind == "decoder":
            layer = torch.nn.TransformerDecoderLayer(case.d_model, case.nhead, **common)
            norm = torch.nn.LayerNorm(case.d_model, dtype=dt) if case.final_norm else None
            m = torch.nn.TransformerDecoder(layer, case.num_layers, norm=norm)
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
    return m.to(device)


def layer_params(case: LayerCase) -> dict[str, np.ndarray]:
    m = build_layer(case, "cpu")
    return {n: p.detach().to(torch.float64).numpy() for n, p in m.named_parameters()}


def _kpm_from_lengths(lengths: tuple[int, ...] | None, total: int) -> np.ndarray | None:
    if lengths is None:
        return None
    return np.array([[j >= n for j in range(total)] for n in lengths], dtype=bool)


def make_layer_inputs(case: LayerCase) -> dict:
    g = _gen(case.seed)
    shape = (lambda n: (case.batch, n, case.d_model)) if case.batch_first else (lambda n: (n, case.batch, case.d_model))
    src = torch.randn(shape(case.L), generator=g, dtype=torch.float64) * case.magnitude
    mem = torch.randn(shape(case.S), generator=g, dtype=torch.float64) * case.magnitude
    src_masked = None
    add = None
    if case.src_mask == "causal":
        src_masked = np.triu(np.ones((case.L, case.L), dtype=bool), k=1)
    elif case.src_mask in ("bool", "float"):
        spec = MaskSpec(case.src_mask, 0.3, (), case.seed + 3)
        src_masked = make_masked(spec, (case.L, case.L))
        # every query keeps itself and key 0 (never padded: lengths >= 1): no fully masked rows
        src_masked[np.arange(case.L), np.arange(case.L)] = False
        src_masked[:, 0] = False
        if case.src_mask == "float":
            add = _rounded(torch.from_numpy(mask_values(spec, src_masked)), case.dtype)
    return {"src": _rounded(src, case.dtype), "memory": _rounded(mem, case.dtype), "src_masked": src_masked,
            "src_mask_add": add, "kpm": _kpm_from_lengths(case.kpm_lengths, case.L),
            "memory_kpm": _kpm_from_lengths(case.memory_kpm_lengths, case.S),
            "memory_masked": np.triu(np.ones((case.L, case.S), dtype=bool), k=1) if case.memory_causal else None}


def _kpm_tensor(kpm: np.ndarray | None, kind: str, dt: torch.dtype, device: str) -> torch.Tensor | None:
    if kpm is None:
        return None
    t = torch.from_numpy(kpm)
    if kind == "float":
        t = torch.zeros(kpm.shape, dtype=dt).masked_fill(t, float("-inf"))
    return t.to(device)


@outcome
def layer_forward(case: LayerCase, device: str):
    inp = make_layer_inputs(case)
    dt = DTYPES[case.dtype]
    m = build_layer(case, device)
    src = torch.from_numpy(inp["src"]).to(dt).to(device)
    mem = torch.from_numpy(inp["memory"]).to(dt).to(device)
    mask = None
    if inp["src_masked"] is not None:
        if case.src_mask == "float":
            mask = torch.from_numpy(inp["src_mask_add"]).to(dt).to(device)
        elif case.src_mask == "causal":
            mask = torch.nn.Transformer.generate_square_subsequent_mask(case.L, device=device, dtype=dt)
        else:
            mask = torch.from_numpy(inp["src_masked"]).to(device)
    kpm = _kpm_tensor(inp["kpm"], case.kpm_kind, dt, device)
    mkpm = _kpm_tensor(inp["memory_kpm"], case.kpm_kind, dt, device)
    mmask = None
    if case.memory_causal:
        mmask = torch.triu(torch.full((case.L, case.S), float("-inf"), dtype=dt), diagonal=1).to(device)
    ctx = torch.no_grad() if case.path == "eval_nograd" else contextlib.nullcontext()
    m.train() if case.path == "slow" else m.eval()
    try:
        with warnings.catch_warnings(), ctx:
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
    except (RuntimeError, AssertionError, ValueError) as exc:
        return Raised(type(exc).__name__, str(exc))
    return out.detach().to(torch.float64).cpu().numpy()


@outcome
def encoder_use_nested(case: LayerCase, device: str):
    """(use_nested_tensor attribute, names of the warnings emitted at construction)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dt = DTYPES[case.dtype]
        layer = torch.nn.TransformerEncoderLayer(case.d_model, case.nhead, case.ff, 0.0, _activation(case.activation),
                                                 batch_first=case.batch_first, norm_first=case.norm_first, dtype=dt)
        m = torch.nn.TransformerEncoder(layer, case.num_layers, enable_nested_tensor=case.enable_nested_tensor)
    warned = any("enable_nested_tensor is True" in str(w.message) for w in caught)
    return {"use_nested_tensor": bool(m.use_nested_tensor), "warned": warned}


@outcome
def transformer_shape_check(case: LayerCase, device: str):
    """Transformer.forward with src/tgt batch sizes that disagree, or a src or tgt feature size != d_model."""
    m = build_layer(case, device)
    dt = DTYPES[case.dtype]
    def shape(n_batch: int, length: int) -> tuple[int, int, int]:
        return (n_batch, length, case.d_model) if case.batch_first else (length, n_batch, case.d_model)

    src_f = case.d_model + (case.bad_feature == "src")
    tgt_f = case.d_model + (case.bad_feature == "tgt")
    src_n = case.batch + (case.bad_feature == "none")  # "none": the batch sizes disagree instead
    src = torch.zeros(shape(src_n, case.S)[:-1] + (src_f,), dtype=dt, device=device)
    tgt = torch.zeros(shape(case.batch, case.L)[:-1] + (tgt_f,), dtype=dt, device=device)
    try:
        m(src, tgt)
    except (RuntimeError, AssertionError, ValueError) as exc:  # a missed check fails later, as another error
        return Raised(type(exc).__name__, str(exc))
    return "no error"


@outcome
def activation_error(case: LayerCase, device: str):
    try:
        torch.nn.TransformerEncoderLayer(case.d_model, case.nhead, case.ff, activation=case.activation, device=device)
    except RuntimeError as exc:
        return Raised(type(exc).__name__, str(exc))
    return "no error"


@outcome
def run_sdpa_mixed_dtypes(case: SdpaCase, device: str):
    """SDPA with a float64 key next to float32 query/value."""
    inp = make_sdpa_inputs(case)
    q, k, v = (torch.from_numpy(inp[n]).to(device) for n in ("q", "k", "v"))
    try:
        F.scaled_dot_product_attention(q.float(), k.double(), v.float())
    except RuntimeError as exc:
        return Raised("RuntimeError", str(exc))
    return "no error"

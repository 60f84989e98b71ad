"""Cases of the attention area and the deterministic inputs both sides need.

Inputs are drawn on CPU from ``case.seed`` with a private ``torch.Generator`` (torch's
RNG serves as a primitive here; it is not under test) and rounded to ``case.dtype``
once; the ``*_inputs`` functions return them as float64 numpy arrays, so the reference
(handed them by the test) sees exactly the values torch sees.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

DTYPES = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


# ---------------------------------------------------------------------------- cases
@dataclass(frozen=True)
class MaskSpec:
    """A mask drawn from a seed.  ``kind``: none | bool | float | neginf | int | causal.
    ``masked_rows``: query rows forced to be fully masked; ``density``: share of
    other entries masked out.  Float masks carry finite additive noise plus -inf
    where masked (neginf: 0 and -inf)."""

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
    # slow (training mode) | eval_grad (eval, grad on: slow path) | eval_nograd (fast path if its conditions hold) |
    # eval_frozen (eval, grad on, every parameter requires_grad=False: fast path if its conditions hold)
    path: str = "slow"
    dtype: str = "float32"
    magnitude: float = 1.0
    bad_attn_mask_shape: tuple[int, ...] | None = None  # explicit (wrong) shape for an error rule
    bad_kpm_shape: tuple[int, ...] | None = None
    dropout: float = 0.0  # eval_grad / eval_nograd: must be inactive; slow (training): only 1.0, every weight dropped
    fastpath: bool = True  # torch.backends.mha.set_fastpath_enabled(fastpath) around the call
    subclass: bool = False  # query/key/value passed as a plain torch.Tensor subclass (has __torch_function__)
    legacy: bool = False  # the module round-trips pickle without _qkv_same_embed_dim (a v1.1.0 checkpoint)
    # batch_first self-attention passed as one NestedTensor of query[b, :n_b] (need_weights=False)
    nested_lengths: tuple[int, ...] = ()
    meta: bool = False  # module and inputs on the meta device (no data: only shapes come out)


@dataclass(frozen=True)
class MhaInputErrorCase:
    """MultiheadAttention called with inputs that break its documented shapes or dtype (``which``)."""

    which: str
    batch_first: bool = False


@dataclass(frozen=True)
class MhaFunctionalCase:
    """F.multi_head_attention_forward called directly: static_k/static_v, or arguments that break its documented
    shapes (``which``: none | a broken argument)."""

    seed: int
    which: str = "none"
    E: int = 4
    H: int = 2
    L: int = 3
    S: int = 4
    batch: int = 2  # 0 = unbatched
    static_k: bool = False
    static_v: bool = False
    add_zero_attn: bool = False
    need_weights: bool = True


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
    bias: bool = True
    norm2_eps: float | None = None  # every layer's norm2.eps set by hand (before the encoder is built): None = 1e-5
    custom: bool = False  # transformer: custom_encoder / custom_decoder (final norms only with final_norm)
    hooked: bool = False  # a forward hook (returning None) on every layer
    fastpath: bool = True  # torch.backends.mha.set_fastpath_enabled(fastpath) around the call
    subclass: bool = False  # src / memory passed as a plain torch.Tensor subclass
    legacy: bool = False  # round-trips pickle without the attributes older releases lacked (activation, use_nested_tensor)
    kpm_right_aligned: bool = False  # the padding is at the start of each sequence (not left-aligned)
    # src as a NestedTensor of src[b, :kpm_lengths[b]]: "alone", or "with_kpm" (the padding mask passed too)
    nested: str = "none"
    meta: bool = False  # module and inputs on the meta device (no data: only shapes come out)


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


def sdpa_inputs(case: SdpaCase) -> dict:
    """q, k, v; "masked" (True = masked out, whatever the polarity passed) and a float mask's "mask_add"."""
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
    """Parameter names and shapes in registration order (to draw values for them)."""
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


def mha_inputs(case: MhaCase) -> dict:
    """"params", query/key/value, the masks' "attn_masked"/"kpm_masked" (True = excluded) and float values."""
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


def _kpm_from_lengths(lengths: tuple[int, ...] | None, total: int, right_aligned: bool = False) -> np.ndarray | None:
    """(N, total) True = padding: each sequence's first n keys are real (right_aligned: its last n)."""
    if lengths is None:
        return None
    if right_aligned:
        return np.array([[j < total - n for j in range(total)] for n in lengths], dtype=bool)
    return np.array([[j >= n for j in range(total)] for n in lengths], dtype=bool)


def layer_inputs(case: LayerCase) -> dict:
    """src, memory and the masks (True = excluded) of a LayerCase."""
    g = _gen(case.seed)
    shape = (lambda n: (case.batch, n, case.d_model)) if case.batch_first else (lambda n: (n, case.batch, case.d_model))
    if case.batch == 0:  # unbatched: (L, d_model)
        shape = lambda n: (n, case.d_model)  # noqa: E731
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
            "src_mask_add": add, "kpm": _kpm_from_lengths(case.kpm_lengths, case.L, case.kpm_right_aligned),
            "memory_kpm": _kpm_from_lengths(case.memory_kpm_lengths, case.S),
            "memory_masked": np.triu(np.ones((case.L, case.S), dtype=bool), k=1) if case.memory_causal else None}



def mha_functional_inputs(case: MhaFunctionalCase) -> dict:
    """"params" (packed in_proj_weight/bias, out_proj), query (L, N, E), key/value (S, N, E) (unbatched: no N) and
    static_k/static_v (N*H, S, E/H) as float32-rounded float64 arrays."""
    g = _gen(case.seed)
    E, hd, n = case.E, case.E // case.H, max(case.batch, 1)
    shapes = {"in_proj_weight": (3 * E, E), "in_proj_bias": (3 * E,), "out_proj.weight": (E, E), "out_proj.bias": (E,)}
    out: dict = {"params": _param_values(shapes, g, "float32")}

    def seq(length: int) -> np.ndarray:
        shape = (length, E) if case.batch == 0 else (length, case.batch, E)
        return _rounded(torch.randn(shape, generator=g, dtype=torch.float64), "float32")

    out["query"], out["key"], out["value"] = seq(case.L), seq(case.S), seq(case.S)
    for name in ("static_k", "static_v"):
        out[name] = _rounded(torch.randn((n * case.H, case.S, hd), generator=g, dtype=torch.float64), "float32")
    return out

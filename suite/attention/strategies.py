"""Hypothesis strategies for the attention area (small shapes: seq <= 8, embed <= 16, heads <= 4)."""
from __future__ import annotations

from hypothesis import strategies as st

from reference.versions import since
from suite.attention.torch_side import LayerCase, MaskSpec, MhaCase, SdpaCase, available_backends

seeds = st.integers(0, 2**31 - 1)


def dtypes(device: str, half: bool = True) -> st.SearchStrategy[str]:
    # CPU: bfloat16 is supported by SDPA's math and flash kernels; float16 only on accelerators.
    if device.split(":")[0] == "cpu":
        return st.sampled_from(["float32", "float64"] + (["bfloat16"] if half else []))
    return st.sampled_from(["float32", "float64"] + (["float16", "bfloat16"] if half else []))


def sdpa_has_enable_gqa() -> bool:
    return since("2.5")


@st.composite
def masks(draw, rows: int, kinds=("none", "bool", "float", "neginf")) -> MaskSpec:
    kind = draw(st.sampled_from(kinds))
    if kind == "none":
        return MaskSpec()
    full = draw(st.lists(st.integers(0, rows - 1), max_size=2, unique=True)) if draw(st.booleans()) else []
    return MaskSpec(kind, draw(st.sampled_from([0.0, 0.2, 0.5, 0.9])), tuple(sorted(full)), draw(seeds))


@st.composite
def sdpa_cases(draw, device: str) -> SdpaCase:
    backend = draw(st.sampled_from(available_backends(device)))
    hkv = draw(st.sampled_from([1, 2]))
    # enable_gqa is new in 2.5 (pytorch#132689; 2.4.1 raises TypeError "unexpected keyword argument"):
    # not drawn before, so attention.sdpa.enable_gqa is skipped there (test_sdpa_enable_gqa says why).
    gqa = sdpa_has_enable_gqa() and draw(st.booleans())
    hq = hkv * (draw(st.sampled_from([1, 2])) if gqa else 1)
    L, S = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    causal = draw(st.booleans()) and True
    mask = MaskSpec() if causal else draw(masks(L, ("none", "bool", "float")))
    return SdpaCase(seed=draw(seeds), batch=draw(st.integers(1, 2)), hq=hq, hkv=hkv, L=L, S=S,
                    E=draw(st.sampled_from([8, 16])), Ev=draw(st.sampled_from([8, 16])), dtype=draw(dtypes(device)),
                    mask=mask, is_causal=causal, scale=draw(st.none() | st.sampled_from([0.05, 0.5, 2.0])),
                    enable_gqa=gqa, backend=backend, magnitude=draw(st.sampled_from([0.5, 1.0, 3.0])),
                    polarity="sdpa")


@st.composite
def mha_cases(draw, device: str, fast: bool = False) -> MhaCase:
    plain = fast and draw(st.booleans())  # half of the fast examples keep every fast-path condition
    H = draw(st.sampled_from([2, 4] if plain else [1, 2, 4]))
    E = H * draw(st.sampled_from([2, 4]))
    batch = draw(st.integers(1, 2)) if fast else draw(st.integers(0, 2))
    self_attention = True if plain else (draw(st.booleans()) if not fast else draw(st.sampled_from([True, True, False])))
    L = draw(st.integers(1, 8))
    S = L if self_attention else draw(st.integers(1, 8))
    kdim = None if plain or self_attention else draw(st.none() | st.sampled_from([E, 3, 6]))
    vdim = None if plain or self_attention else draw(st.none() | st.sampled_from([E, 5]))
    attn_kinds = ("none", "bool") if plain else ("none", "bool", "float", "neginf")
    attn = draw(masks(L, attn_kinds))
    kpm = draw(masks(1, attn_kinds))
    dt = draw(dtypes(device, half=False)) if device.split(":")[0] == "cpu" else draw(st.sampled_from(["float32", "float64", "float16"]))
    # eval_grad: eval mode with autograd on, i.e. the slow path where dropout must be inactive
    path = "eval_nograd" if fast else draw(st.sampled_from(["slow", "slow", "eval_grad"]))
    return MhaCase(seed=draw(seeds), E=E, H=H, L=L, S=S, batch=batch,
                   batch_first=True if plain else draw(st.booleans()),
                   kdim=kdim, vdim=vdim, bias=True if plain else draw(st.booleans()),
                   add_bias_kv=False if plain else draw(st.booleans()),
                   add_zero_attn=False if plain else draw(st.booleans()),
                   need_weights=draw(st.booleans()), average_attn_weights=draw(st.booleans()),
                   attn_mask=attn, attn_mask_3d=attn.kind != "none" and draw(st.booleans()), kpm=kpm,
                   self_attention=self_attention, path=path, dtype=dt,
                   magnitude=draw(st.sampled_from([0.5, 1.0, 3.0])),
                   dropout=0.0 if path == "slow" else draw(st.sampled_from([0.0, 0.5])))


@st.composite
def layer_cases(draw, device: str, kinds=("encoder_layer",), fast: bool | None = None) -> LayerCase:
    kind = draw(st.sampled_from(kinds))
    nhead = draw(st.sampled_from([1, 2, 4]))
    d_model = nhead * draw(st.sampled_from([2, 4]))
    L, S, batch = draw(st.integers(1, 6)), draw(st.integers(1, 6)), draw(st.integers(1, 3))
    path = draw(st.sampled_from(["slow", "eval_grad", "eval_nograd"])) if fast is None else ("eval_nograd" if fast else "slow")
    src_mask = draw(st.sampled_from(["none", "none", "causal", "bool", "float"]))
    kpm = tuple(draw(st.integers(1, L)) for _ in range(batch)) if draw(st.booleans()) else None
    mkpm = tuple(draw(st.integers(1, S)) for _ in range(batch)) if draw(st.booleans()) else None
    # a causal memory mask (key 0 always visible) only without memory padding: no fully masked rows
    memory_causal = kind in ("decoder_layer", "decoder") and mkpm is None and draw(st.booleans())
    hint = draw(st.sampled_from([None, True, False])) if src_mask == "causal" else draw(st.sampled_from([None, False]))
    dt = "float64" if device.split(":")[0] == "cpu" and draw(st.booleans()) else "float32"
    return LayerCase(seed=draw(seeds), kind=kind, d_model=d_model, nhead=nhead, ff=draw(st.sampled_from([4, 16])),
                     L=L, S=S, batch=batch, batch_first=draw(st.sampled_from([True, True, False])),
                     norm_first=draw(st.booleans()), activation=draw(st.sampled_from(["relu", "gelu", "callable_tanh"])),
                     num_layers=draw(st.integers(1, 2)), final_norm=draw(st.booleans()), src_mask=src_mask,
                     kpm_lengths=kpm, kpm_kind=draw(st.sampled_from(["bool", "bool", "float"])),
                     memory_kpm_lengths=mkpm, tgt_is_causal=hint, memory_causal=memory_causal, enable_nested_tensor=draw(st.booleans()),
                     mask_check=draw(st.booleans()), path=path, dtype=dt, magnitude=draw(st.sampled_from([0.5, 1.0, 3.0])),
                   dropout=0.0 if path == "slow" else draw(st.sampled_from([0.0, 0.5])))

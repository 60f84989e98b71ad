"""Hypothesis strategies for the attention area (small shapes: seq <= 8, embed <= 16, heads <= 4), and the
steering of the search (``target``/``event``) toward the hard regions the reference names: large scores
(softmax conditioning) and fully masked rows.

Shrinking: every draw is a small integer or a sampled choice, so examples shrink toward batch 1, short
sequences, no mask and the first backend."""
from __future__ import annotations

from hypothesis import event, target
from hypothesis import strategies as st

from reference.attention import layers as layers_ref
from reference.attention import mha as mha_ref
from reference.attention import sdpa as sdpa_ref
from reference.versions import since
from suite.attention.cases import LayerCase, MaskSpec, MhaCase, SdpaCase
from suite.attention.torch_side.sdpa import available_backends

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
    kind = draw(st.sampled_from(kinds), label="mask kind")
    if kind == "none":
        return MaskSpec()
    full = draw(st.lists(st.integers(0, rows - 1), max_size=2, unique=True), label="fully masked rows") \
        if draw(st.booleans(), label="force masked rows") else []
    return MaskSpec(kind, draw(st.sampled_from([0.0, 0.2, 0.5, 0.9]), label="density"), tuple(sorted(full)),
                    draw(seeds, label="mask seed"))


@st.composite
def sdpa_cases(draw, device: str) -> SdpaCase:
    backend = draw(st.sampled_from(available_backends(device)), label="backend")
    hkv = draw(st.sampled_from([1, 2]), label="hkv")
    # enable_gqa is new in 2.5 (pytorch#132689; 2.4.1 raises TypeError "unexpected keyword argument"):
    # not drawn before, so attention.sdpa.enable_gqa is skipped there (test_sdpa_enable_gqa says why).
    gqa = sdpa_has_enable_gqa() and draw(st.booleans(), label="enable_gqa")
    hq = hkv * (draw(st.sampled_from([1, 2]), label="hq / hkv") if gqa else 1)
    L, S = draw(st.integers(1, 8), label="L"), draw(st.integers(1, 8), label="S")
    causal = draw(st.booleans(), label="is_causal") and True
    mask = MaskSpec() if causal else draw(masks(L, ("none", "bool", "float")), label="mask")
    return SdpaCase(seed=draw(seeds, label="seed"), batch=draw(st.integers(1, 2), label="batch"), hq=hq, hkv=hkv,
                    L=L, S=S, E=draw(st.sampled_from([8, 16]), label="E"), Ev=draw(st.sampled_from([8, 16]), label="Ev"),
                    dtype=draw(dtypes(device), label="dtype"), mask=mask, is_causal=causal,
                    scale=draw(st.none() | st.sampled_from([0.05, 0.5, 2.0]), label="scale"),
                    enable_gqa=gqa, backend=backend, magnitude=draw(st.sampled_from([0.5, 1.0, 3.0]), label="magnitude"),
                    polarity="sdpa")


@st.composite
def mha_cases(draw, device: str, fast: bool = False) -> MhaCase:
    plain = fast and draw(st.booleans(), label="keep fast-path conditions")  # half of the fast examples
    H = draw(st.sampled_from([2, 4] if plain else [1, 2, 4]), label="H")
    E = H * draw(st.sampled_from([2, 4]), label="head dim")
    batch = draw(st.integers(1, 2), label="batch") if fast else draw(st.integers(0, 2), label="batch")
    self_attention = True if plain else (draw(st.booleans(), label="self attention") if not fast
                                         else draw(st.sampled_from([True, True, False]), label="self attention"))
    L = draw(st.integers(1, 8), label="L")
    S = L if self_attention else draw(st.integers(1, 8), label="S")
    kdim = None if plain or self_attention else draw(st.none() | st.sampled_from([E, 3, 6]), label="kdim")
    vdim = None if plain or self_attention else draw(st.none() | st.sampled_from([E, 5]), label="vdim")
    # training with dropout=1.0 (every weight dropped: a deterministic outcome), only without masks
    train_dropout = not fast and draw(st.sampled_from([False] * 4 + [True]), label="train dropout")
    attn_kinds = ("none",) if train_dropout else (("none", "bool") if plain else ("none", "bool", "float", "neginf"))
    attn = draw(masks(L, attn_kinds), label="attn_mask")
    kpm = draw(masks(1, attn_kinds), label="key_padding_mask")
    dt = draw(dtypes(device, half=False), label="dtype") if device.split(":")[0] == "cpu" \
        else draw(st.sampled_from(["float32", "float64", "float16"]), label="dtype")
    # eval_grad: eval mode with autograd on, i.e. the slow path where dropout must be inactive
    path = "slow" if train_dropout else ("eval_nograd" if fast else draw(st.sampled_from(["slow", "slow", "eval_grad"]),
                                                                           label="path"))
    dropout = 1.0 if train_dropout else (0.0 if path == "slow" else draw(st.sampled_from([0.0, 0.5]), label="dropout"))
    # rarer options, each one of the fast path's refusals or a legacy format (swarm: most examples draw none)
    rare = draw(st.sampled_from(["none", "none", "subclass", "fastpath off", "legacy"]), label="rare option")
    packed = (kdim or E) == E and (vdim or E) == E
    return MhaCase(seed=draw(seeds, label="seed"), E=E, H=H, L=L, S=S, batch=batch,
                   batch_first=True if plain else draw(st.booleans(), label="batch_first"),
                   kdim=kdim, vdim=vdim, bias=True if plain else draw(st.booleans(), label="bias"),
                   add_bias_kv=False if plain else draw(st.booleans(), label="add_bias_kv"),
                   add_zero_attn=False if plain else draw(st.booleans(), label="add_zero_attn"),
                   need_weights=draw(st.booleans(), label="need_weights"),
                   average_attn_weights=draw(st.booleans(), label="average_attn_weights"),
                   attn_mask=attn, attn_mask_3d=attn.kind != "none" and draw(st.booleans(), label="3-D attn_mask"),
                   kpm=kpm, self_attention=self_attention, path=path, dtype=dt,
                   magnitude=draw(st.sampled_from([0.5, 1.0, 3.0]), label="magnitude"), dropout=dropout,
                   fastpath=rare != "fastpath off", subclass=rare == "subclass", legacy=rare == "legacy" and packed)


@st.composite
def layer_cases(draw, device: str, kinds=("encoder_layer",), fast: bool | None = None) -> LayerCase:
    kind = draw(st.sampled_from(kinds), label="kind")
    nhead = draw(st.sampled_from([1, 2, 4]), label="nhead")
    d_model = nhead * draw(st.sampled_from([2, 4]), label="head dim")
    # batch 0: unbatched (S, E) inputs
    L, S, batch = draw(st.integers(1, 6), label="L"), draw(st.integers(1, 6), label="S"), draw(st.integers(0, 3), label="batch")
    path = draw(st.sampled_from(["slow", "eval_grad", "eval_nograd"]), label="path") if fast is None \
        else ("eval_nograd" if fast else "slow")
    src_mask = draw(st.sampled_from(["none", "none", "causal", "bool", "float"]), label="src_mask")
    kpm = tuple(draw(st.integers(1, L), label="kpm length") for _ in range(max(batch, 1))) \
        if draw(st.booleans(), label="src_key_padding_mask") else None
    mkpm = tuple(draw(st.integers(1, S), label="memory kpm length") for _ in range(max(batch, 1))) \
        if draw(st.booleans(), label="memory_key_padding_mask") else None
    # a causal memory mask (key 0 always visible) only without memory padding: no fully masked rows
    memory_causal = kind in ("decoder_layer", "decoder") and mkpm is None and draw(st.booleans(), label="memory_causal")
    hint = draw(st.sampled_from([None, True, False]), label="is_causal hint") if src_mask == "causal" \
        else draw(st.sampled_from([None, False]), label="is_causal hint")
    dt = "float64" if device.split(":")[0] == "cpu" and draw(st.booleans(), label="float64") else "float32"
    activation = draw(st.sampled_from(["relu", "gelu", "callable_tanh"]), label="activation")
    # rarer options, each one of the fast paths' refusals or a legacy format (swarm: most examples draw none)
    rare = draw(st.sampled_from(["none", "none", "hooked", "fastpath off", "subclass", "legacy"]), label="rare option")
    return LayerCase(seed=draw(seeds, label="seed"), kind=kind, d_model=d_model, nhead=nhead,
                     ff=draw(st.sampled_from([4, 16]), label="ff"), L=L, S=S, batch=batch,
                     batch_first=draw(st.sampled_from([True, True, False]), label="batch_first"),
                     norm_first=draw(st.booleans(), label="norm_first"),
                     activation=activation,
                     num_layers=draw(st.integers(1, 2), label="num_layers"), final_norm=draw(st.booleans(), label="final_norm"),
                     src_mask=src_mask, kpm_lengths=kpm, kpm_kind=draw(st.sampled_from(["bool", "bool", "float"]), label="kpm kind"),
                     memory_kpm_lengths=mkpm, tgt_is_causal=hint, memory_causal=memory_causal,
                     enable_nested_tensor=draw(st.booleans(), label="enable_nested_tensor"),
                     mask_check=draw(st.booleans(), label="mask_check"), path=path, dtype=dt,
                     magnitude=draw(st.sampled_from([0.5, 1.0, 3.0]), label="magnitude"),
                     dropout=0.0 if path == "slow" else draw(st.sampled_from([0.0, 0.5]), label="dropout"),
                     bias=draw(st.sampled_from([True, True, True, False]), label="bias"),
                     norm2_eps=draw(st.sampled_from([None, None, None, 0.1]), label="norm2.eps by hand")
                     if kind in ("encoder_layer", "encoder") else None,
                     custom=kind == "transformer" and draw(st.booleans(), label="custom encoder/decoder"),
                     hooked=rare == "hooked", fastpath=rare != "fastpath off", subclass=rare == "subclass",
                     legacy=rare == "legacy" and activation == "relu")


# ---------------------------------------------------------------------------- steering
def steer_sdpa(case: SdpaCase, inp: dict, device: str, refused: bool) -> None:
    """Toward large scores and long masked runs, on inputs the backend computed (values expected and given)."""
    event(f"backend={case.backend} outcome={'refused' if refused else 'computed'}")
    if refused or sdpa_ref.input_error(case) is not None or sdpa_ref.documented_refusal(case, device):
        return
    target(sdpa_ref.score_magnitude(case, inp), label="score magnitude")
    target(float(sdpa_ref.fully_masked_rows(case, inp)), label="fully masked rows")


def steer_masked_run(full: list[int], density: float, S: int) -> None:
    target(float(len(full)) + density * S, label="masked run length")


def steer_mha(case: MhaCase, inp: dict, device: str) -> None:
    """Toward large scores and fully masked (row, head)s."""
    if case.path == "eval_nograd":
        event(f"fast path expected: {mha_ref.fast_path_expected(case, device)}")
    if mha_ref.expected_error(case, inp) is None:
        target(mha_ref.score_magnitude(case, inp), label="score magnitude")
        target(float(mha_ref.fully_masked_outputs(case, inp)), label="fully masked outputs")


def steer_layer(case: LayerCase, inp: dict, P: dict) -> None:
    target(layers_ref.score_magnitude(case, inp, P), label="score magnitude")
    if case.kind == "encoder":
        event(f"nested conversion: {layers_ref.nested_conversion(case)}")


def steer_padding(L: int, lengths: tuple[int, ...]) -> None:
    target(float(L * len(lengths) - sum(lengths)), label="padded positions")

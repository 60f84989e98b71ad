"""Where torch's attention differs from its documentation (evidence in each entry)."""
from __future__ import annotations

import numpy as np

import reference.attention as ref
from suite.attention import torch_side as ts
from suite.divergences import Divergence

# CUDA-only entries cannot be measured on the CPU matrix: their range says only what was observed
# (torch 2.11.0+cu130 on one H200).
CUDA_OBSERVED = ">=2.11,<2.12"


# ---------------------------------------------------------------------------- SDPA: fully masked rows
def _sdpa_fully_masked(case) -> bool:
    inp = ts.make_sdpa_inputs(case)
    excluded = ref.sdpa_excluded(case, inp)
    if excluded is None and case.mask.kind in ("float", "neginf"):
        excluded = np.isneginf(inp["mask_add"])
    return excluded is not None and bool(excluded.all(axis=-1).any()) and not case.is_causal


def _nan_rows_to_zero(case, expected):
    return np.where(np.isnan(expected), 0.0, expected)


def _sdpa_ref(case, device="cpu"):
    return ref.sdpa_reference(case, ts.make_sdpa_inputs(case), device)


def _sdpa_docs(case, device="cpu"):
    return ref.sdpa_docstring_reference(case, ts.make_sdpa_inputs(case), device)


_ZERO_ROWS_REASON = ("SDPA returns 0 for a query row whose keys are all masked, deliberately since 2.5 (_safe_softmax); "
                     "the docstring's 'equivalent' code (torch.softmax over a row of -inf), which it says the C++ "
                     "implementation matches ('matching the above formulation'), still implies NaN: the documentation lags (the reference follows the "
                     "change: reference.attention.fully_masked_rows_are_zero)")
_ZERO_ROWS_EVIDENCE = ("pytorch/pytorch#131060 (Add a private _safe_softmax) and #133882 (Update fused kernels and call "
                       "_safe_softmax from SDPA: 'Changes the stance of SDPA on what to do for fully masked out rows'), "
                       "both in 2.5; no documentation issue found")

SDPA_ZERO_ROWS = Divergence(
    id="attention-sdpa-fully-masked-row-zero",
    rule=ref.MASK_FULL_SDPA,
    # CPU matrix: 2.4.1 returns NaN like the docstring (conforms); 2.5.1 .. 2.15.0 return 0 on math, flash, default.
    torch=">=2.5",
    reason=_ZERO_ROWS_REASON,
    evidence=_ZERO_ROWS_EVIDENCE + "; measured on CPU 2.4.1 (NaN) and 2.5.1-2.15.0 (0)",
    when=lambda case: isinstance(case, ts.SdpaCase) and _sdpa_fully_masked(case),
    torch_does=_nan_rows_to_zero,
    repro=ts.SdpaCase(seed=1, batch=1, hq=1, hkv=1, L=2, S=3, E=8, Ev=8, backend="math",
                      mask=ts.MaskSpec("bool", 0.0, (0,), 1)),
    reference_fn=_sdpa_docs,
    torch_fn=ts.run_sdpa,
    tol=lambda case: ref.sdpa_tol(case, ts.make_sdpa_inputs(case)),
    devices=("cpu",),
    bug_in="docs",
)

SDPA_ZERO_ROWS_CUDA = Divergence(
    id="attention-sdpa-fully-masked-row-zero-cuda",
    rule=ref.MASK_FULL_SDPA,
    torch=CUDA_OBSERVED,
    reason=_ZERO_ROWS_REASON + " (CUDA math and memory-efficient kernels)",
    evidence=_ZERO_ROWS_EVIDENCE + "; observed on H200, torch 2.11.0+cu130 only",
    when=lambda case: isinstance(case, ts.SdpaCase) and _sdpa_fully_masked(case)
    and not (case.backend in ("cudnn", "default") and case.mask.kind == "bool"),
    torch_does=_nan_rows_to_zero,
    repro=ts.SdpaCase(seed=1, batch=1, hq=1, hkv=1, L=2, S=3, E=8, Ev=8, backend="math",
                      mask=ts.MaskSpec("bool", 0.0, (0,), 1)),
    reference_fn=lambda case: _sdpa_docs(case, "cuda"),
    torch_fn=ts.run_sdpa,
    tol=lambda case: ref.sdpa_tol(case, ts.make_sdpa_inputs(case)),
    devices=("cuda",),
    bug_in="docs",
)

SDPA_CUDNN_BOOL_ROWS = Divergence(
    id="attention-sdpa-cudnn-fully-masked-bool-row",
    rule=ref.MASK_FULL_SDPA,
    torch=CUDA_OBSERVED,
    reason="cuDNN attention returns finite non-zero values for a query row fully masked by a boolean mask "
           "(neither the documented NaN nor the zeros of the other kernels); the value is unspecified",
    evidence="H200, torch 2.11.0+cu130: sdpa_kernel(CUDNN_ATTENTION), fp16/bf16, attn_mask row all False -> "
             "finite values, while the same row as a -inf float mask gives 0; convert_boolean_attn_mask_cudnn fills "
             "False with a finite -65504 (PR pytorch#140837 discussed the fill value); not measured on other releases",
    when=lambda case: isinstance(case, ts.SdpaCase) and case.backend in ("cudnn", "default")
    and case.mask.kind == "bool" and _sdpa_fully_masked(case),
    torch_does=None,
    repro=ts.SdpaCase(seed=1, batch=1, hq=1, hkv=1, L=2, S=3, E=8, Ev=8, backend="cudnn", dtype="float16",
                      mask=ts.MaskSpec("bool", 0.0, (0,), 1)),
    reference_fn=lambda case: _sdpa_ref(case, "cuda"),
    torch_fn=ts.run_sdpa,
    tol=lambda case: ref.sdpa_tol(case, ts.make_sdpa_inputs(case)),
    devices=("cuda",),
)


# ---------------------------------------------------------------------------- SDPA: is_causal with a mask
def _causal_and_mask(case, expected):
    """What the kernels that skip the check do: the mask and the causal mask both apply (a row left with no
    key follows the release's fully-masked-row convention: NaN before 2.5, 0 since)."""
    inp = ts.make_sdpa_inputs(case)
    excl = ref.sdpa_excluded(case, inp)
    bias = np.where(excl, -np.inf, 0.0) if excl is not None else inp["mask_add"]
    bias = np.where(np.tril(np.ones((case.L, case.S), dtype=bool)), bias, -np.inf)
    scale = case.scale if case.scale is not None else 1.0 / np.sqrt(case.E)
    out, _ = ref.attend(inp["q"], inp["k"], inp["v"], bias, scale)
    return out


_CAUSAL_MASK_EVIDENCE = ("pytorch/pytorch#187801 (closed), fixed by PR #187966, which moves the check to "
                         "validate_sdpa_input so that every backend raises")

SDPA_CAUSAL_MASK_CPU = Divergence(
    id="attention-sdpa-causal-and-mask-cpu-flash",
    rule=ref.SDPA_CAUSAL_AND_MASK,
    # CPU matrix: default and flash dispatch return a result on 2.4.1 .. 2.13.0 and raise on 2.14.1 and 2.15.0.
    torch=">=2.4,<2.14",
    reason="with both attn_mask and is_causal the CPU flash kernel (also picked by default dispatch) raises nothing "
           "and applies mask AND causal mask; docs: 'An error is thrown if both attn_mask and is_causal are set' "
           "(the math backend does raise)",
    evidence=_CAUSAL_MASK_EVIDENCE + "; measured on CPU: 2.4.1 .. 2.13.0 return a tensor for default and flash "
             "dispatch (sdpa_kernel(MATH) raises 'Explicit attn_mask should not be set when is_causal=True'); "
             "2.14.1 and 2.15.0 raise that error for default and flash too",
    when=lambda case: isinstance(case, ts.SdpaCase) and case.is_causal and case.mask.kind != "none"
    and case.backend in ("default", "flash"),
    torch_does=_causal_and_mask,
    repro=ts.SdpaCase(seed=2, batch=1, hq=2, hkv=2, L=4, S=4, E=8, Ev=8, backend="default", is_causal=True,
                      mask=ts.MaskSpec("bool", 0.3, (), 2)),
    reference_fn=_sdpa_ref,
    torch_fn=ts.run_sdpa,
    tol=lambda case: ref.sdpa_tol(case, ts.make_sdpa_inputs(case)),
    devices=("cpu",),
)

SDPA_CAUSAL_MASK_CUDA = Divergence(
    id="attention-sdpa-causal-and-mask-cuda-efficient",
    rule=ref.SDPA_CAUSAL_AND_MASK,
    torch=CUDA_OBSERVED,
    reason="with both attn_mask and is_causal the CUDA memory-efficient kernel raises nothing and applies mask AND "
           "the causal mask (fully masked rows give 0); docs: an error is thrown (MATH raises)",
    evidence="H200, torch 2.11.0+cu130: sdpa_kernel(EFFICIENT_ATTENTION), float32/float16, is_causal=True with a "
             "bool or float mask returns a tensor; rows excluded by the mask are 0, the rest follow causal+mask. "
             "Observed on 2.11 only; " + _CAUSAL_MASK_EVIDENCE + " (backend-agnostic: the CPU kernels raise from 2.14)",
    when=lambda case: isinstance(case, ts.SdpaCase) and case.is_causal and case.mask.kind != "none"
    and case.backend == "efficient" and case.dtype != "float64",
    torch_does=_causal_and_mask,
    repro=ts.SdpaCase(seed=2, batch=1, hq=2, hkv=2, L=4, S=4, E=8, Ev=8, backend="efficient", is_causal=True,
                      mask=ts.MaskSpec("bool", 0.3, (), 2)),
    reference_fn=lambda case: _sdpa_ref(case, "cuda"),
    torch_fn=ts.run_sdpa,
    tol=lambda case: ref.sdpa_tol(case, ts.make_sdpa_inputs(case)),
    devices=("cuda",),
)

SDPA_CAUSAL_MASK_CUDNN = Divergence(
    id="attention-sdpa-causal-and-mask-cudnn",
    rule=ref.SDPA_CAUSAL_AND_MASK,
    torch=CUDA_OBSERVED,
    reason="with both attn_mask and is_causal the cuDNN kernel (fp16/bf16) raises nothing and returns a result "
           "(docs: an error is thrown); how it combines the two masks is not pinned down here (unspecified)",
    evidence="H200, torch 2.11.0+cu130: sdpa_kernel(CUDNN_ATTENTION), float16, all-True bool mask with is_causal=True "
             "returns the is_causal-only output instead of raising. Observed on 2.11 only; " + _CAUSAL_MASK_EVIDENCE,
    when=lambda case: isinstance(case, ts.SdpaCase) and case.is_causal and case.mask.kind != "none"
    and case.backend == "cudnn" and case.dtype in ("float16", "bfloat16"),
    torch_does=None,
    repro=ts.SdpaCase(seed=2, batch=1, hq=2, hkv=2, L=4, S=4, E=8, Ev=8, backend="cudnn", dtype="float16",
                      is_causal=True, mask=ts.MaskSpec("bool", 0.3, (), 2)),
    reference_fn=lambda case: _sdpa_ref(case, "cuda"),
    torch_fn=ts.run_sdpa,
    tol=lambda case: ref.sdpa_tol(case, ts.make_sdpa_inputs(case)),
    devices=("cuda",),
)


# ---------------------------------------------------------------------------- MHA: fully masked rows on the NaN paths
def _mha_nan_path(case) -> bool:
    """The paths that still compute a plain softmax: need_weights=True (multi_head_attention_forward's
    bmm/softmax branch) and the fast path (torch._native_multi_head_attention)."""
    return case.need_weights or ref.mha_fast_path_expected(case)


def _mha_full_rows(case) -> bool:
    return isinstance(case, ts.MhaCase) and ref.mha_fully_masked(case, ts.make_mha_inputs(case))


def _mha_nan_rows(case, expected):
    """The plain softmax's NaN for a fully masked (row, head), spread by the output projection over the row."""
    if not ref.fully_masked_rows_are_zero():
        # Before 2.5 the reference itself models NaN on every path: torch conforms, there is nothing to describe
        # (suite/test_divergences.py then measures the repro as conforming instead of as reproducing).
        raise LookupError("no divergence before torch 2.5: the reference models NaN on every path there")
    return ref.mha_reference(case, ts.make_mha_inputs(case), empty_as_zero=False)


MHA_NAN_ROWS = Divergence(
    id="attention-mha-fully-masked-row-nan-paths",
    rule=ref.MASK_FULL_MHA,
    # CPU matrix: 2.4.1 gives NaN on every path, as the reference does there (conforms); from 2.5.1 the
    # need_weights=False slow path (SDPA) gives 0 while these paths still give NaN (reproduces through 2.15.0).
    torch=">=2.5",
    reason="MultiheadAttention with a fully masked (query row, head) returns NaN output (and NaN weights) with "
           "need_weights=True and on the fast path, while its need_weights=False slow path (SDPA, _safe_softmax) "
           "returns a zero context and zero weights: the result depends on need_weights. Upstream treats the NaN "
           "paths as the bug",
    evidence="pytorch/pytorch#160064 (open: 'MultiheadAttention returns all NaN when using attn_mask to fully mask "
             "some heads, and using need_weights=True'); PR #185338 (closed, 'Use safe softmax for masked MHA "
             "weights': mirror SDPA's zeros on the need_weights=True path), PR #190486 (open). Measured on CPU "
             "2.4.1 (NaN everywhere) and 2.5.1-2.15.0; on H200 2.11.0+cu130 the same paths gave NaN",
    when=lambda case: isinstance(case, ts.MhaCase) and _mha_nan_path(case) and _mha_full_rows(case),
    torch_does=_mha_nan_rows,
    repro=ts.MhaCase(seed=3, E=4, H=2, L=3, S=3, batch=1, need_weights=True,
                     attn_mask=ts.MaskSpec("bool", 0.0, (1,), 3)),
    reference_fn=lambda case: ref.mha_reference(case, ts.make_mha_inputs(case)),
    torch_fn=ts.mha_outputs,
    tol=lambda case: ref.mha_tol(case, ts.make_mha_inputs(case)),
)


# ---------------------------------------------------------------------------- Encoder: nested tensor padding
def nested_conversion_expected(case) -> bool:
    """TransformerEncoder.forward converts to a nested tensor (sparsity fast path) for this case."""
    return (case.kind == "encoder" and case.path == "eval_nograd" and case.enable_nested_tensor
            and ref.nested_flag_reference(case)["use_nested_tensor"] and case.kpm_lengths is not None
            and case.src_mask == "none" and case.batch_first)


def _nested_padded_rows(case, expected):
    P = ts.layer_params(case)
    fill = P["norm.bias"] if case.final_norm else np.zeros(case.d_model)
    pad = np.array([[j >= n for j in range(case.L)] for n in case.kpm_lengths])[..., None]
    return np.where(pad, np.broadcast_to(fill, expected.shape), expected)


ENCODER_NESTED_PADDING = Divergence(
    id="attention-encoder-nested-padding-zeroed",
    rule=ref.ENC_NESTED,
    # CPU matrix: reproduces on every release 2.4.1 .. 2.15.0.
    torch=">=2.4",
    reason="with the nested-tensor fast path, TransformerEncoder returns 0 (or final-norm bias) at padded query "
           "positions, while the documented padded computation (and the slow path) gives the attention output "
           "there; enable_nested_tensor is documented only as a speed-up",
    evidence="torch/nn/modules/transformer.py: TransformerEncoder.forward: output.to_padded_tensor(0.0, src.size()) "
             "before self.norm; docstring: 'input will automatically convert to nested tensor (and convert back on "
             "output)'; pytorch/pytorch#97111 (open), PR #100113 (closed, discussion). Arguable: outputs at padded "
             "positions are conventionally meaningless; at most a documentation note",
    when=lambda case: isinstance(case, ts.LayerCase) and nested_conversion_expected(case)
    and min(case.kpm_lengths) < case.L,
    torch_does=_nested_padded_rows,
    repro=ts.LayerCase(seed=4, kind="encoder", d_model=4, nhead=2, ff=8, L=3, S=3, batch=2,
                       kpm_lengths=(3, 1), path="eval_nograd"),
    reference_fn=lambda case: ref.layer_reference(case, ts.make_layer_inputs(case), ts.layer_params(case)),
    torch_fn=ts.layer_forward,
    tol=lambda case: ref.layer_tol(case, ts.make_layer_inputs(case), ts.layer_params(case)),
    arguable=True,
)


# ---------------------------------------------------------------------------- Encoder: fast path with a float mask
def _encoder_fast_float_mask(case) -> bool:
    return (isinstance(case, ts.LayerCase) and case.kind in ("encoder_layer", "encoder") and case.path == "eval_nograd"
            and case.src_mask == "float" and case.batch_first and case.nhead % 2 == 0
            and case.activation in ("relu", "gelu"))


def _float_mask_as_bool(case, expected):
    """The fused kernel's masked softmax reads mask != 0 as 'masked out'; a row left with no key is NaN there
    (it does not use _safe_softmax)."""
    inp = dict(ts.make_layer_inputs(case))
    inp["src_masked"], inp["src_mask_add"] = inp["src_mask_add"] != 0, None
    return ref.layer_reference(case, inp, ts.layer_params(case), empty_as_zero=False)


ENCODER_FAST_FLOAT_MASK = Divergence(
    id="attention-encoder-fast-path-float-mask-nan",
    rule=ref.ENC_FAST,
    # the same fused layer computes the outputs checked by these rules too (eval + no_grad with dropout > 0)
    also_rules=(ref.LAYER_DROPOUT_EVAL,),
    # CPU matrix: reproduces on every release 2.4.1 .. 2.15.0.
    torch=">=2.4",
    reason="on CPU the fused TransformerEncoderLayer fast path (eval + no_grad) reads a float src_mask as boolean: "
           "every non-zero value masks its position out (a constant -0.5 mask gives all NaN), instead of being "
           "added to the scores as documented and as the slow path does",
    evidence="pytorch/pytorch#118628 (open; the MultiheadAttention sibling #107084 was fixed). torch 2.13.0+cpu: "
             "layer.eval(); with torch.no_grad(): layer(x, src_mask=fm) equals layer(x, src_mask=fm != 0) (slow path) "
             "to 1e-7 and differs from layer(x, src_mask=fm) by 0.25; torch._transformer_encoder_layer_fwd -> masked "
             "softmax on CPU. Measured on CPU 2.4.1-2.15.0. Not observed on H200 (2.11): no float-mask fast-path "
             "example differed there",
    when=_encoder_fast_float_mask,
    torch_does=_float_mask_as_bool,
    repro=ts.LayerCase(seed=0, kind="encoder_layer", d_model=4, nhead=2, ff=4, L=3, S=3, batch=1,
                       src_mask="float", path="eval_nograd"),
    reference_fn=lambda case: ref.layer_reference(case, ts.make_layer_inputs(case), ts.layer_params(case)),
    torch_fn=ts.layer_forward,
    tol=lambda case: ref.layer_tol(case, ts.make_layer_inputs(case), ts.layer_params(case)),
    devices=("cpu",),
)

DIVERGENCES = [ENCODER_FAST_FLOAT_MASK, SDPA_ZERO_ROWS, SDPA_ZERO_ROWS_CUDA, SDPA_CUDNN_BOOL_ROWS, SDPA_CAUSAL_MASK_CPU,
               SDPA_CAUSAL_MASK_CUDA, SDPA_CAUSAL_MASK_CUDNN, MHA_NAN_ROWS, ENCODER_NESTED_PADDING]

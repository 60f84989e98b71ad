"""Where torch's attention differs from its documentation (evidence in each entry).

What torch does instead is a transformation of the reference's expected outcome, or -- where the
deviation sits inside the computation -- the reference's model run through its neutral ``softmax=``
parameter with the softmax those paths compute (``literal_softmax``: NaN for a row with no finite score).
"""
from __future__ import annotations

import functools

import numpy as np

from conform.outcome import Finite, OneOf, Raised
from reference.attention import layers as layers_ref
from reference.attention import mha as mha_ref
from reference.attention import sdpa as sdpa_ref
from reference.attention.masks import MASK_FULL_MHA, MASK_FULL_SDPA
from reference.attention.numerics import attend, fully_masked_rows_are_zero, literal_softmax
from suite.attention.cases import LayerCase, MaskSpec, MhaCase, SdpaCase, layer_inputs, mha_inputs, sdpa_inputs
from suite.attention.torch_side.layers import layer_params, run_layer
from suite.attention.torch_side.mha import run_mha
from suite.attention.torch_side.sdpa import run_sdpa
from suite.divergences import Divergence

# CUDA-only entries cannot be measured on the CPU matrix: their range says only what was observed
# (torch 2.11.0+cu130 on one H200).
CUDA_OBSERVED = ">=2.11,<2.12"


def on_values(fn):
    """``torch_does`` from a transformation of the expected values: each option of a ``OneOf`` is transformed,
    an expected refusal stays as it is."""
    def does(case, expected):
        if isinstance(expected, OneOf):
            return OneOf(*(does(case, option) for option in expected.options))
        if isinstance(expected, Raised):
            return expected
        return fn(case, expected)
    return does


# ---------------------------------------------------------------------------- SDPA
_sdpa_entry = functools.partial(
    Divergence, case_type=SdpaCase, run=run_sdpa,
    expect=lambda case, device: sdpa_ref.expectations(case, sdpa_inputs(case), device))


def _fully_masked(case) -> bool:
    return sdpa_ref.fully_masked_rows(case, sdpa_inputs(case)) > 0


def _cudnn_bool_rows(case) -> bool:
    """cuDNN can run the input (fp16/bf16: the docstring's FlashAttention-2/cuDNN dtypes), forced or picked by
    default dispatch, and a bool mask leaves a query row with no key."""
    return (case.backend in ("cudnn", "default") and case.dtype in ("float16", "bfloat16")
            and case.mask.kind == "bool" and _fully_masked(case))


_ZERO_ROWS_REASON = ("SDPA returns 0 for a query row whose keys are all masked, deliberately since 2.5 (_safe_softmax); "
                     "the docstring's 'equivalent' code (torch.softmax over a row of -inf), which it says the C++ "
                     "implementation matches ('matching the above formulation'), still implies NaN: the documentation lags (the reference follows the "
                     "change: reference.attention.numerics.fully_masked_rows_are_zero)")
_ZERO_ROWS_EVIDENCE = ("pytorch/pytorch#131060 (Add a private _safe_softmax) and #133882 (Update fused kernels and call "
                       "_safe_softmax from SDPA: 'Changes the stance of SDPA on what to do for fully masked out rows'), "
                       "both in 2.5; no documentation issue found")
# 0 where the docstring's formula gives NaN (the test's expectation already follows the release: 0 since 2.5)
_nan_rows_to_zero = on_values(lambda case, expected: np.where(np.isnan(expected), 0.0, expected))
_ZERO_ROWS_REPRO = SdpaCase(seed=1, batch=1, hq=1, hkv=1, L=2, S=3, E=8, Ev=8, backend="math",
                            mask=MaskSpec("bool", 0.0, (0,), 1))

SDPA_ZERO_ROWS = _sdpa_entry(
    id="attention-sdpa-fully-masked-row-zero",
    rule=MASK_FULL_SDPA,
    # CPU matrix: 2.4.1 returns NaN like the docstring (conforms); 2.5.1 .. 2.15.0 return 0 on math, flash, default.
    torch=">=2.5",
    reason=_ZERO_ROWS_REASON,
    evidence=_ZERO_ROWS_EVIDENCE + "; measured on CPU 2.4.1 (NaN) and 2.5.1-2.15.0 (0)",
    when=_fully_masked,
    torch_does=_nan_rows_to_zero,
    repro=_ZERO_ROWS_REPRO,
    expect=lambda case, device: sdpa_ref.docstring_expectations(case, sdpa_inputs(case), device),
    devices=("cpu",),
    bug_in="docs",
)

SDPA_ZERO_ROWS_CUDA = _sdpa_entry(
    id="attention-sdpa-fully-masked-row-zero-cuda",
    rule=MASK_FULL_SDPA,
    torch=CUDA_OBSERVED,
    reason=_ZERO_ROWS_REASON + " (CUDA math and memory-efficient kernels)",
    evidence=_ZERO_ROWS_EVIDENCE + "; observed on H200, torch 2.11.0+cu130 only",
    when=lambda case: _fully_masked(case) and not _cudnn_bool_rows(case),
    torch_does=_nan_rows_to_zero,
    repro=_ZERO_ROWS_REPRO,
    expect=lambda case, device: sdpa_ref.docstring_expectations(case, sdpa_inputs(case), device),
    devices=("cuda",),
    bug_in="docs",
)

SDPA_CUDNN_BOOL_ROWS = _sdpa_entry(
    id="attention-sdpa-cudnn-fully-masked-bool-row",
    rule=MASK_FULL_SDPA,
    torch=CUDA_OBSERVED,
    reason="cuDNN attention returns finite non-zero values for a query row fully masked by a boolean mask "
           "(neither the documented NaN nor the zeros of the other kernels); the value is unspecified",
    evidence="H200, torch 2.11.0+cu130: sdpa_kernel(CUDNN_ATTENTION), fp16/bf16, attn_mask row all False -> "
             "finite values, while the same row as a -inf float mask gives 0; convert_boolean_attn_mask_cudnn fills "
             "False with a finite -65504 (PR pytorch#140837 discussed the fill value); not measured on other releases",
    when=_cudnn_bool_rows,
    # the values are unspecified but finite (a finite fill instead of -inf); a refusal stays allowed where it was
    torch_does=on_values(lambda case, expected: Finite(np.shape(expected))),
    repro=SdpaCase(seed=1, batch=1, hq=1, hkv=1, L=2, S=3, E=8, Ev=8, backend="cudnn", dtype="float16",
                   mask=MaskSpec("bool", 0.0, (0,), 1)),
    devices=("cuda",),
)


def _causal_and_mask(case, expected):
    """What the kernels that skip the check do: the mask and the causal mask both apply (a row left with no
    key follows the release's fully-masked-row convention: NaN before 2.5, 0 since)."""
    inp = sdpa_inputs(case)
    excl = sdpa_ref.excluded(case, inp)
    bias = np.where(excl, -np.inf, 0.0) if excl is not None else inp["mask_add"]
    bias = np.where(np.tril(np.ones((case.L, case.S), dtype=bool)), bias, -np.inf)
    scale = case.scale if case.scale is not None else 1.0 / np.sqrt(case.E)
    out, _ = attend(inp["q"], inp["k"], inp["v"], bias, scale)
    return out


def _causal_with_mask(case) -> bool:
    return case.is_causal and case.mask.kind != "none"


_CAUSAL_MASK_EVIDENCE = ("pytorch/pytorch#187801 (closed), fixed by PR #187966, which moves the check to "
                         "validate_sdpa_input so that every backend raises")

SDPA_CAUSAL_MASK_CPU = _sdpa_entry(
    id="attention-sdpa-causal-and-mask-cpu-flash",
    rule=sdpa_ref.SDPA_CAUSAL_AND_MASK,
    # CPU matrix: default and flash dispatch return a result on 2.4.1 .. 2.13.0 and raise on 2.14.1 and 2.15.0.
    torch=">=2.4,<2.14",
    reason="with both attn_mask and is_causal the CPU flash kernel (also picked by default dispatch) raises nothing "
           "and applies mask AND causal mask; docs: 'An error is thrown if both attn_mask and is_causal are set' "
           "(the math backend does raise)",
    evidence=_CAUSAL_MASK_EVIDENCE + "; measured on CPU: 2.4.1 .. 2.13.0 return a tensor for default and flash "
             "dispatch (sdpa_kernel(MATH) raises 'Explicit attn_mask should not be set when is_causal=True'); "
             "2.14.1 and 2.15.0 raise that error for default and flash too",
    when=lambda case: _causal_with_mask(case) and case.backend in ("default", "flash"),
    torch_does=_causal_and_mask,
    repro=SdpaCase(seed=2, batch=1, hq=2, hkv=2, L=4, S=4, E=8, Ev=8, backend="default", is_causal=True,
                   mask=MaskSpec("bool", 0.3, (), 2)),
    devices=("cpu",),
)

SDPA_CAUSAL_MASK_CUDA = _sdpa_entry(
    id="attention-sdpa-causal-and-mask-cuda-efficient",
    rule=sdpa_ref.SDPA_CAUSAL_AND_MASK,
    torch=CUDA_OBSERVED,
    reason="with both attn_mask and is_causal the CUDA memory-efficient kernel raises nothing and applies mask AND "
           "the causal mask (fully masked rows give 0); docs: an error is thrown (MATH raises)",
    evidence="H200, torch 2.11.0+cu130: sdpa_kernel(EFFICIENT_ATTENTION), float32/float16, is_causal=True with a "
             "bool or float mask returns a tensor; rows excluded by the mask are 0, the rest follow causal+mask. "
             "Observed on 2.11 only; " + _CAUSAL_MASK_EVIDENCE + " (backend-agnostic: the CPU kernels raise from 2.14)",
    when=lambda case: _causal_with_mask(case) and case.backend == "efficient" and case.dtype != "float64",
    torch_does=_causal_and_mask,
    repro=SdpaCase(seed=2, batch=1, hq=2, hkv=2, L=4, S=4, E=8, Ev=8, backend="efficient", is_causal=True,
                   mask=MaskSpec("bool", 0.3, (), 2)),
    devices=("cuda",),
)

SDPA_CAUSAL_MASK_CUDNN = _sdpa_entry(
    id="attention-sdpa-causal-and-mask-cudnn",
    rule=sdpa_ref.SDPA_CAUSAL_AND_MASK,
    torch=CUDA_OBSERVED,
    reason="with both attn_mask and is_causal the cuDNN kernel (fp16/bf16) raises nothing and returns a result "
           "(docs: an error is thrown); how it combines the two masks is not pinned down here (unspecified)",
    evidence="H200, torch 2.11.0+cu130: sdpa_kernel(CUDNN_ATTENTION), float16, all-True bool mask with is_causal=True "
             "returns the is_causal-only output instead of raising. Observed on 2.11 only; " + _CAUSAL_MASK_EVIDENCE,
    when=lambda case: _causal_with_mask(case) and case.backend == "cudnn" and case.dtype in ("float16", "bfloat16"),
    # a result instead of the error: finite values of the output's shape (how the masks combine is unspecified)
    torch_does=lambda case, expected: Finite((case.batch, case.hq, case.L, case.Ev)),
    repro=SdpaCase(seed=2, batch=1, hq=2, hkv=2, L=4, S=4, E=8, Ev=8, backend="cudnn", dtype="float16",
                   is_causal=True, mask=MaskSpec("bool", 0.3, (), 2)),
    devices=("cuda",),
)


# ---------------------------------------------------------------------------- MHA: fully masked rows on the NaN paths
def _mha_nan_rows(case, expected):
    """The plain softmax's NaN for a fully masked (row, head), spread by the output projection over the row."""
    if not fully_masked_rows_are_zero():
        # Before 2.5 the reference itself models NaN on every path: torch conforms, there is nothing to describe
        # (suite/test_divergences.py then measures the repro as conforming instead of as reproducing).
        raise LookupError("no divergence before torch 2.5: the reference models NaN on every path there")
    return mha_ref.outputs(case, mha_inputs(case), softmax=literal_softmax)


def _mha_nan_path_fully_masked(case) -> bool:
    """The paths that still compute a plain softmax -- need_weights=True (multi_head_attention_forward's
    bmm/softmax branch) and the fast path (torch._native_multi_head_attention) -- with a fully masked
    (query row, head)."""
    if not (case.need_weights or mha_ref.fast_path_expected(case)):
        return False
    inp = mha_inputs(case)
    return mha_ref.expected_error(case, inp) is None and bool(mha_ref.model(case, inp)["full"].any())


MHA_NAN_ROWS = Divergence(
    id="attention-mha-fully-masked-row-nan-paths",
    rule=MASK_FULL_MHA,
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
    case_type=MhaCase,
    when=_mha_nan_path_fully_masked,
    torch_does=_mha_nan_rows,
    repro=MhaCase(seed=3, E=4, H=2, L=3, S=3, batch=1, need_weights=True, attn_mask=MaskSpec("bool", 0.0, (1,), 3)),
    expect=lambda case, device: mha_ref.expectations(case, mha_inputs(case), device),
    run=run_mha,
)


# ---------------------------------------------------------------------------- Transformer layers
_layer_entry = functools.partial(
    Divergence, case_type=LayerCase, run=run_layer,
    expect=lambda case, device: layers_ref.expectations(case, layer_inputs(case), layer_params(case)))


def _nested_padded_rows(case, expected):
    P = layer_params(case)
    fill = P["norm.bias"] if case.final_norm else np.zeros(case.d_model)
    pad = np.array([[j >= n for j in range(case.L)] for n in case.kpm_lengths])[..., None]
    return np.where(pad, np.broadcast_to(fill, expected.shape), expected)


ENCODER_NESTED_PADDING = _layer_entry(
    id="attention-encoder-nested-padding-zeroed",
    rule=layers_ref.ENC_NESTED,
    # CPU matrix: reproduces on every release 2.4.1 .. 2.15.0.
    torch=">=2.4",
    reason="with the nested-tensor fast path, TransformerEncoder returns 0 (or final-norm bias) at padded query "
           "positions, while the documented padded computation (and the slow path) gives the attention output "
           "there; enable_nested_tensor is documented only as a speed-up",
    evidence="torch/nn/modules/transformer.py: TransformerEncoder.forward: output.to_padded_tensor(0.0, src.size()) "
             "before self.norm; docstring: 'input will automatically convert to nested tensor (and convert back on "
             "output)'; pytorch/pytorch#97111 (open), PR #100113 (closed, discussion). Arguable: outputs at padded "
             "positions are conventionally meaningless; at most a documentation note",
    when=lambda case: layers_ref.nested_conversion(case) and min(case.kpm_lengths) < case.L,
    torch_does=_nested_padded_rows,
    repro=LayerCase(seed=4, kind="encoder", d_model=4, nhead=2, ff=8, L=3, S=3, batch=2,
                    kpm_lengths=(3, 1), path="eval_nograd"),
    arguable=True,
)


def _float_mask_as_bool(case, expected):
    """The fused kernel's masked softmax reads mask != 0 as 'masked out'; a row left with no key is NaN there
    (it does not use _safe_softmax)."""
    inp = dict(layer_inputs(case))
    inp["src_masked"], inp["src_mask_add"] = inp["src_mask_add"] != 0, None
    return layers_ref.model(case, inp, layer_params(case), softmax=literal_softmax)[0]


ENCODER_FAST_FLOAT_MASK = _layer_entry(
    id="attention-encoder-fast-path-float-mask-nan",
    rule=layers_ref.ENC_FAST,
    # the same fused layer computes the outputs checked by these rules too (eval + no_grad with dropout > 0)
    also_rules=(layers_ref.LAYER_DROPOUT_EVAL,),
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
    when=lambda case: layers_ref.layer_fast_path(case) and case.src_mask == "float",
    torch_does=_float_mask_as_bool,
    repro=LayerCase(seed=0, kind="encoder_layer", d_model=4, nhead=2, ff=4, L=3, S=3, batch=1,
                    src_mask="float", path="eval_nograd"),
    devices=("cpu",),
)

DIVERGENCES = [ENCODER_FAST_FLOAT_MASK, SDPA_ZERO_ROWS, SDPA_ZERO_ROWS_CUDA, SDPA_CUDNN_BOOL_ROWS, SDPA_CAUSAL_MASK_CPU,
               SDPA_CAUSAL_MASK_CUDA, SDPA_CAUSAL_MASK_CUDNN, MHA_NAN_ROWS, ENCODER_NESTED_PADDING]

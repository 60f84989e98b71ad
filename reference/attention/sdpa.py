"""F.scaled_dot_product_attention: its documented formula, input errors and backends.

The expected outcome per backend follows what the documentation says of it:

- default dispatch and the math (C++) backend accept every valid input ("The c++
  implementation supports torch.float64"; default dispatch keeps math enabled);
- a fused backend may refuse an input it cannot run: "Each of the fused kernels has specific
  input limitations ... a warning will be raised with the reasons why the fused
  implementation cannot run" (SDPA docstring).  The reasons are the checks of
  aten/src/ATen/native/transformers/sdp_utils_cpp.{h,cpp} (CPU) and cuda/sdp_utils.cpp: where
  an input meets every stated limit of the CPU flash kernel (``cpu_flash_supports``), it must
  run it; elsewhere refusing is allowed (``OneOf(formula, refusal)``).  On CUDA only the
  docstring's own statements are modelled (``documented_refusal``); the CUDA kernels' other
  limits (architecture, head dim, alignment) are not documented, so there a fused backend may
  refuse any other input;
- a refusal under ``sdpa_kernel`` (only that backend enabled) is an error, never a warning
  followed by a result from another kernel (no silent fallback).
"""
from __future__ import annotations

import math

import numpy as np

from conform.expect import Expect
from conform.outcome import OneOf, Raised
from conform.rules import rule
from reference.attention.masks import MASK_BOOL_SDPA, MASK_DTYPE, MASK_FULL_SDPA, MASK_SDPA_FLOAT_DTYPE, T_SDPA
from reference.attention.numerics import attend, excluded_rows, literal_softmax, score_bound, softmax
from reference.attention.tolerances import sdpa_tol

SDPA_CAUSAL = rule("attention.sdpa.is_causal",
                   "is_causal=True applies the upper-left aligned lower-triangular mask tril(ones(L, S)).", T_SDPA)
SDPA_CAUSAL_AND_MASK = rule("attention.sdpa.causal_with_mask_error",
                            "Setting both attn_mask and is_causal is an error.", T_SDPA + " (is_causal)")
SDPA_FORMULA = rule("attention.sdpa.formula",
                    "softmax(q k^T * 1/sqrt(E) + bias) v with the documented equivalent code.", T_SDPA)
SDPA_SCALE = rule("attention.sdpa.scale", "scale= replaces 1/sqrt(E).", T_SDPA)
SDPA_GQA = rule("attention.sdpa.enable_gqa",
                "enable_gqa repeats each key/value head Hq/H times (repeat_interleave) along the head dim.", T_SDPA)
SDPA_GQA_ERR = rule("attention.sdpa.gqa_shape_error",
                    "Hq != H without enable_gqa, or Hq % H != 0 with it, is a RuntimeError.", T_SDPA)
SDPA_EV = rule("attention.sdpa.value_dim", "The output's last dim is Ev, which may differ from E.", T_SDPA)
SDPA_DTYPE_ERR = rule("attention.sdpa.dtype_mismatch_error",
                      "query, key and value of different dtypes are a RuntimeError.", T_SDPA)
SDPA_BACKEND_MATH = rule("attention.sdpa.backend.math_accepts",
                         "The math (C++) backend accepts every valid input, float64 included.", T_SDPA + " (Note)")
SDPA_BACKEND_REFUSE = rule("attention.sdpa.backend.documented_refusals",
                           "Only math supports float64; FlashAttention-2 and cuDNN need fp16/bf16; GQA works only with "
                           "flash and math on CUDA: a forced backend refuses these with RuntimeError.", T_SDPA + " (Note)")
SDPA_BACKEND_CLEAN = rule("attention.sdpa.backend.refusal_is_error",
                          "A forced backend that cannot run an input raises RuntimeError (no silent fallback).",
                          "torch/nn/attention/__init__.py: sdpa_kernel")
SDPA_BACKEND_AGREE = rule("attention.sdpa.backend.agrees",
                          "Every backend that accepts an input computes the documented formula within tolerance.", T_SDPA)

FUSED = ("flash", "efficient", "cudnn")
REFUSAL = r"No available kernel|No viable backend"
# sdp_utils_cpp.cpp use_flash_attention_cpp: cpp_supported_flash_dtypes
CPU_FLASH_DTYPES = ("float32", "float64", "bfloat16", "float16")


def excluded(case, inp) -> np.ndarray | None:
    """(L, S) bool, True = excluded, as SDPA reads the bool mask the Case passes (None: no bool mask)."""
    masked = inp["masked"]
    if masked is None or case.mask.kind != "bool":
        return None
    attend_true = ~masked if case.polarity == "sdpa" else masked  # what the torch side passes
    return ~attend_true


def _scale(case) -> float:
    return case.scale if case.scale is not None else 1.0 / math.sqrt(case.E)


def _bias(case, inp) -> np.ndarray:
    """The additive (L, S) bias: the causal mask, the bool mask as -inf, or the float mask."""
    bias = np.zeros((case.L, case.S))
    if case.is_causal:
        bias = np.where(np.tril(np.ones((case.L, case.S), dtype=bool)), 0.0, -np.inf)
    excl = excluded(case, inp)
    if excl is not None:
        bias = np.where(excl, -np.inf, 0.0)
    elif case.mask.kind in ("float", "neginf"):
        bias = inp["mask_add"]
    return bias


def _kv(case, inp) -> tuple[np.ndarray, np.ndarray]:
    k, v = inp["k"], inp["v"]
    if case.enable_gqa and case.hq != case.hkv:
        k = np.repeat(k, case.hq // case.hkv, axis=1)  # repeat_interleave on the head dim
        v = np.repeat(v, case.hq // case.hkv, axis=1)
    return k, v


def input_error(case) -> tuple[str, Raised] | None:
    """The first documented input error, in SDPA's own order of checks: mask dtype, causal with a mask, heads."""
    if case.mask.kind == "int":
        return MASK_DTYPE, Raised("RuntimeError", r"attn_mask dtype")
    if case.mask.kind in ("float", "neginf") and case.mask_dtype not in (None, case.dtype):
        return MASK_SDPA_FLOAT_DTYPE, Raised("RuntimeError", r"attn_mask dtype")
    if case.is_causal and case.mask.kind != "none":
        return SDPA_CAUSAL_AND_MASK, Raised("RuntimeError", r"attn_mask should not be set when is_causal|" + REFUSAL)
    if case.hq != case.hkv and (not case.enable_gqa or case.hq % case.hkv):
        return SDPA_GQA_ERR, Raised("RuntimeError", None)
    return None


def documented_refusal(case, device: str) -> bool:
    """The docstring's statements of what a fused CUDA backend does not support."""
    if device.split(":")[0] != "cuda" or case.backend not in FUSED:
        return False
    if case.dtype == "float64":
        return True  # "The c++ implementation supports torch.float64"
    if case.backend in ("flash", "cudnn") and case.dtype == "float32":
        return True  # FlashAttention-2 / cuDNN SDPA: fp16 and bf16 only
    if case.backend == "efficient" and case.hq != case.hkv:
        return True  # "GQA ... currently works only for Flash_attention and math kernel on CUDA"
    return False


def cpu_flash_supports(case) -> bool:
    """Every stated limit of the CPU flash kernel holds (sdp_utils_cpp.cpp use_flash_attention_cpp): a supported
    dtype, q, k, v of one last dim (check_head_dim_size_cpp); dense 4-D contiguous inputs, no dropout, non-empty
    sequences and a broadcastable (L, S) mask hold for every case drawn.  GQA is left out: the docstring says it
    "currently works only for Flash_attention and math kernel on CUDA"."""
    return case.dtype in CPU_FLASH_DTYPES and case.E == case.Ev and case.hq == case.hkv


def must_run(case, device: str) -> bool:
    """The documentation says this backend runs this (valid) input: default dispatch and math always; the CPU
    flash kernel within its stated limits.  Elsewhere a fused backend may refuse (undocumented limits)."""
    if case.backend in ("default", "math"):
        return True
    return device.split(":")[0] == "cpu" and case.backend == "flash" and cpu_flash_supports(case)


def formula(case, inp, softmax=softmax) -> np.ndarray:
    """The documented formula (fully masked rows: the release's convention, unless ``softmax`` says)."""
    k, v = _kv(case, inp)
    out, _ = attend(inp["q"], k, v, _bias(case, inp), _scale(case), softmax)
    return out


def score_magnitude(case, inp) -> float:
    """The bound on |scores| that sets the softmax conditioning (steers toward hard inputs)."""
    k = inp["k"] if case.hq == case.hkv else np.repeat(inp["k"], case.hq // case.hkv, axis=1)
    return score_bound(inp["q"], k, _scale(case), inp.get("mask_add", 0.0))


def fully_masked_rows(case, inp) -> int:
    """Query rows that see no key."""
    return 0 if case.is_causal else int(excluded_rows(_bias(case, inp)).sum())


def tol(case, inp):
    if case.hq % case.hkv:
        return sdpa_tol(case, 0.0, 1.0)
    return sdpa_tol(case, score_magnitude(case, inp), float(np.max(np.abs(inp["v"])) or 1.0))


def expectations(case, inp, device: str = "cpu") -> list[Expect]:
    """What F.scaled_dot_product_attention does with ``case`` (the inputs ``inp``) on ``device``.

    An invalid input: its error rule, in the spec's order.  A documented refusal: that rule.  Otherwise the
    formula (key "out"), credited to each feature the case exercises -- or, where fully masked rows occur, to
    their one rule; where the backend may refuse, a refusal conforms too.  A forced backend: no refusal warning
    next to a result (key "refusal_warned").  The tolerance also serves registered divergences that return
    values where an error is expected."""
    t = tol(case, inp)
    error = input_error(case)
    if error is not None:
        return [Expect(error[0], error[1], t, key="out")]
    refusal = Raised("RuntimeError", REFUSAL)
    if documented_refusal(case, device):
        return [Expect(SDPA_BACKEND_REFUSE, refusal, t, key="out")]
    out = formula(case, inp)
    expected = out if must_run(case, device) else OneOf(out, refusal)
    if fully_masked_rows(case, inp):
        rules = [MASK_FULL_SDPA]
    else:
        rules = [SDPA_FORMULA]
        rules += [SDPA_SCALE] if case.scale is not None else []
        rules += [SDPA_GQA] if case.hq != case.hkv else []
        rules += [SDPA_EV] if case.Ev != case.E else []
        rules += [SDPA_CAUSAL] if case.is_causal else []
        rules += [MASK_BOOL_SDPA] if case.mask.kind == "bool" else []
        rules += [SDPA_BACKEND_MATH] if case.backend == "math" else []
        rules += [SDPA_BACKEND_AGREE] if case.backend != "default" else []
    expects = [Expect(r, expected, t, key="out") for r in rules]
    if case.backend != "default":
        expects.append(Expect(SDPA_BACKEND_CLEAN, OneOf(False, refusal), key="refusal_warned"))
    return expects


def dtype_mismatch_expectations(case) -> list[Expect]:
    """query, key and value of different dtypes (float32, float64, float32)."""
    return [Expect(SDPA_DTYPE_ERR, Raised("RuntimeError", r"same dtype"))]


def docstring_expectations(case, inp, device: str = "cpu") -> list[Expect]:
    """A fully masked row as the docstring's "equivalent" code computes it, taken literally (``torch.softmax``
    over a row of -inf: NaN, on every release); the documentation has not followed pytorch#131060/#133882."""
    return [Expect(MASK_FULL_SDPA, formula(case, inp, literal_softmax), tol(case, inp), key="out")]

"""F.scaled_dot_product_attention against the documented formula, on every device and backend."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import event, given, target
from hypothesis import strategies as st

import reference.attention as ref
from suite.attention import torch_side as ts
from suite.attention.strategies import sdpa_cases, sdpa_has_enable_gqa, seeds
from conform.outcome import Raised
from suite.versions import requires_torch

# enable_gqa (new in 2.5) is drawn only where it exists; before, its rule is declared only by
# test_sdpa_enable_gqa, which skips with the reason.
SDPA_RULES = (ref.SDPA_FORMULA, ref.SDPA_SCALE, ref.SDPA_EV, ref.SDPA_CAUSAL, ref.MASK_BOOL_SDPA,
              ref.SDPA_BACKEND_MATH, ref.SDPA_BACKEND_AGREE, ref.SDPA_BACKEND_REFUSE, ref.SDPA_BACKEND_CLEAN,
              ref.MASK_FULL_SDPA, ref.SDPA_GQA_ERR) + ((ref.SDPA_GQA,) if sdpa_has_enable_gqa() else ())


def _is_refusal(actual) -> bool:
    return isinstance(actual, Raised) and Raised("RuntimeError", ref.REFUSAL).matches(actual)


def _fully_masked_rows(case, inp) -> int:
    excluded = ref.sdpa_excluded(case, inp)
    if excluded is None and case.mask.kind in ("float", "neginf"):
        excluded = np.isneginf(inp["mask_add"])
    return 0 if excluded is None else int(excluded.all(axis=-1).sum())


def check_sdpa(conform, case, device, steer=True):
    inp = ts.make_sdpa_inputs(case)
    expected = ref.sdpa_reference(case, inp, device)
    actual = ts.run_sdpa(case, device)
    event(f"backend={case.backend} outcome={'refused' if _is_refusal(actual) else type(actual).__name__}")
    if _is_refusal(actual) and not isinstance(expected, Raised):
        # A fused kernel's undocumented input limits: refusing is an outcome, but it must be an error.
        conform.check(ref.SDPA_BACKEND_CLEAN, case, Raised("RuntimeError", ref.REFUSAL), actual, torch_fn=ts.run_sdpa)
        return
    if isinstance(expected, Raised):
        if case.is_causal and case.mask.kind != "none":
            rules = [ref.SDPA_CAUSAL_AND_MASK]
        elif case.hq != case.hkv:
            rules = [ref.SDPA_GQA_ERR]
        elif case.mask.kind == "int":
            rules = [ref.MASK_DTYPE]
        elif case.mask_dtype is not None:
            rules = [ref.MASK_SDPA_FLOAT_DTYPE]
        else:
            rules = [ref.SDPA_BACKEND_REFUSE]
        for r in rules:  # tol matters only where a registered divergence returns values instead
            conform.check(r, case, expected, actual, ref.sdpa_tol(case, inp), torch_fn=ts.run_sdpa)
        return
    tol = ref.sdpa_tol(case, inp)
    full = _fully_masked_rows(case, inp)
    if steer:  # toward large scores (softmax conditioning) and long masked runs
        target(ref.sdpa_score_bound(case, inp), label="score magnitude")
        target(float(full), label="fully masked rows")
    if full:  # one home for fully masked rows (a registered divergence on every backend)
        conform.check(ref.MASK_FULL_SDPA, case, expected, actual, tol, torch_fn=ts.run_sdpa)
        return
    rules = [ref.SDPA_FORMULA]
    rules += [ref.SDPA_SCALE] if case.scale is not None else []
    rules += [ref.SDPA_GQA] if case.hq != case.hkv else []
    rules += [ref.SDPA_EV] if case.Ev != case.E else []
    rules += [ref.SDPA_CAUSAL] if case.is_causal else []
    rules += [ref.MASK_BOOL_SDPA] if case.mask.kind == "bool" else []
    rules += [ref.SDPA_BACKEND_MATH] if case.backend == "math" else []
    rules += [ref.SDPA_BACKEND_AGREE] if case.backend != "default" else []
    for r in rules:
        conform.check(r, case, expected, actual, tol, torch_fn=ts.run_sdpa)


@pytest.mark.rules(*SDPA_RULES)
@given(data=st.data())
def test_sdpa_matches_formula(conform, device, data):
    check_sdpa(conform, data.draw(sdpa_cases(device)), device)


@pytest.mark.rules(*SDPA_RULES)
@given(data=st.data())
def test_sdpa_every_backend(conform, device, data):
    """One drawn input through every backend of the device: each accepts and agrees, or refuses cleanly."""
    import dataclasses

    case = data.draw(sdpa_cases(device))
    for i, backend in enumerate(ts.available_backends(device)):
        check_sdpa(conform, dataclasses.replace(case, backend=backend), device, steer=i == 0)


@pytest.mark.rules(ref.SDPA_GQA)  # the examples also reach the rules of check_sdpa (recorded as they are checked)
@given(data=st.data())
def test_sdpa_enable_gqa(conform, device, data):
    """enable_gqa=True with Hq = 2 H: key/value heads repeated (repeat_interleave), on every backend."""
    import dataclasses

    requires_torch("2.5", "scaled_dot_product_attention(enable_gqa=...)")
    case = data.draw(sdpa_cases(device))
    check_sdpa(conform, dataclasses.replace(case, hq=2 * case.hkv, enable_gqa=True), device)


@pytest.mark.rules(ref.MASK_BOOL_SDPA, ref.MASK_FULL_SDPA)
@given(seed=seeds, L=st.integers(1, 8), S=st.integers(1, 8), full=st.lists(st.integers(0, 7), max_size=3, unique=True),
       density=st.sampled_from([0.0, 0.5, 0.9]), polarity=st.sampled_from(["sdpa", "inverted"]))
def test_sdpa_bool_polarity(conform, device, seed, L, S, full, density, polarity):
    """Passing MultiheadAttention's polarity (True = masked out) to SDPA excludes the complement."""
    case = ts.SdpaCase(seed=seed, batch=1, hq=2, hkv=2, L=L, S=S, E=8, Ev=8, backend="math",
                       mask=ts.MaskSpec("bool", density, tuple(r for r in full if r < L), seed + 5), polarity=polarity)
    target(float(len(full)) + density * S, label="masked run length")
    check_sdpa(conform, case, device)


@pytest.mark.rules(ref.SDPA_CAUSAL_AND_MASK)
@given(data=st.data())
def test_sdpa_causal_with_mask(conform, device, data):
    backends = ts.available_backends(device)
    if device.split(":")[0] == "cuda":
        backends = tuple(b for b in backends if b != "default")  # default dispatch picks a kernel by input
    L = data.draw(st.integers(2, 8))
    case = ts.SdpaCase(seed=data.draw(seeds), batch=1, hq=2, hkv=2, L=L, S=data.draw(st.integers(2, 8)), E=8, Ev=8,
                       dtype=data.draw(st.sampled_from(["float32", "float64"] if device == "cpu" else ["float32", "float16"])),
                       mask=ts.MaskSpec(data.draw(st.sampled_from(["bool", "float"])), 0.3, (), data.draw(seeds)),
                       is_causal=True, backend=data.draw(st.sampled_from(backends)))
    check_sdpa(conform, case, device)


@pytest.mark.rules(ref.MASK_DTYPE, ref.MASK_SDPA_FLOAT_DTYPE, ref.SDPA_GQA_ERR, ref.SDPA_DTYPE_ERR)
@given(seed=seeds, which=st.sampled_from(["int", "wide_float", "gqa_off", "dtype"]
                                         + (["gqa_indivisible"] if sdpa_has_enable_gqa() else [])))
def test_sdpa_input_errors(conform, device, seed, which):
    base = dict(seed=seed, batch=1, hq=2, hkv=2, L=3, S=4, E=8, Ev=8, backend="math")
    if which == "int":
        case = ts.SdpaCase(**base, mask=ts.MaskSpec("int", 0.5, (), seed))
    elif which == "wide_float":
        case = ts.SdpaCase(**base, mask=ts.MaskSpec("float", 0.2, (), seed), mask_dtype="float64")
    elif which == "gqa_off":
        case = ts.SdpaCase(**{**base, "hq": 4})
    elif which == "gqa_indivisible":
        case = ts.SdpaCase(**{**base, "hq": 3}, enable_gqa=True)
    else:
        case = ts.SdpaCase(**base)
        conform.check(ref.SDPA_DTYPE_ERR, case, Raised("RuntimeError", r"same dtype"),
                      ts.run_sdpa_mixed_dtypes(case, device), torch_fn=ts.run_sdpa_mixed_dtypes)
        return
    check_sdpa(conform, case, device)

"""F.scaled_dot_product_attention against the documented formula, on every device and backend."""
from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conform.outcome import Raised
from reference.attention import masks
from reference.attention import sdpa as ref
from suite.attention.cases import MaskSpec, SdpaCase, sdpa_inputs
from suite.attention.strategies import sdpa_cases, sdpa_has_enable_gqa, seeds, steer_masked_run, steer_sdpa
from suite.attention.torch_side.sdpa import available_backends, run_sdpa, run_sdpa_mixed_dtypes
from suite.versions import requires_torch

# enable_gqa (new in 2.5) is drawn only where it exists; before, its rule is declared only by
# test_sdpa_enable_gqa, which skips with the reason.
SDPA_RULES = (ref.SDPA_FORMULA, ref.SDPA_SCALE, ref.SDPA_EV, ref.SDPA_CAUSAL, masks.MASK_BOOL_SDPA,
              ref.SDPA_BACKEND_MATH, ref.SDPA_BACKEND_AGREE, ref.SDPA_BACKEND_REFUSE, ref.SDPA_BACKEND_CLEAN,
              masks.MASK_FULL_SDPA, ref.SDPA_GQA_ERR) + ((ref.SDPA_GQA,) if sdpa_has_enable_gqa() else ())


def check_sdpa(conform, case, device, steer=True):
    inp = sdpa_inputs(case)
    actual = conform.check(case, ref.expectations(case, inp, device), run=run_sdpa)
    if steer:
        refused = isinstance(actual, Raised) and Raised("RuntimeError", ref.REFUSAL).matches(actual)
        steer_sdpa(case, inp, device, refused)


@pytest.mark.rules(*SDPA_RULES)
@given(data=st.data())
def test_sdpa_matches_formula(conform, device, data):
    check_sdpa(conform, data.draw(sdpa_cases(device), label="case"), device)


@pytest.mark.rules(*SDPA_RULES)
@given(data=st.data())
def test_sdpa_every_backend(conform, device, data):
    """One drawn input through every backend of the device: each accepts and agrees, or refuses cleanly."""
    case = data.draw(sdpa_cases(device), label="case")
    for i, backend in enumerate(available_backends(device)):
        check_sdpa(conform, dataclasses.replace(case, backend=backend), device, steer=i == 0)


@pytest.mark.rules(ref.SDPA_GQA)  # the examples also reach the rules of check_sdpa (recorded as they are checked)
@given(data=st.data())
def test_sdpa_enable_gqa(conform, device, data):
    """enable_gqa=True with Hq = 2 H: key/value heads repeated (repeat_interleave), on every backend."""
    requires_torch("2.5", "scaled_dot_product_attention(enable_gqa=...)")
    case = data.draw(sdpa_cases(device), label="case")
    check_sdpa(conform, dataclasses.replace(case, hq=2 * case.hkv, enable_gqa=True), device)


@pytest.mark.rules(masks.MASK_BOOL_SDPA, masks.MASK_FULL_SDPA)
@given(seed=seeds, L=st.integers(1, 8), S=st.integers(1, 8), full=st.lists(st.integers(0, 7), max_size=3, unique=True),
       density=st.sampled_from([0.0, 0.5, 0.9]), polarity=st.sampled_from(["sdpa", "inverted"]))
def test_sdpa_bool_polarity(conform, device, seed, L, S, full, density, polarity):
    """Passing MultiheadAttention's polarity (True = masked out) to SDPA excludes the complement."""
    case = SdpaCase(seed=seed, batch=1, hq=2, hkv=2, L=L, S=S, E=8, Ev=8, backend="math",
                    mask=MaskSpec("bool", density, tuple(r for r in full if r < L), seed + 5), polarity=polarity)
    steer_masked_run(full, density, S)
    check_sdpa(conform, case, device)


@pytest.mark.rules(ref.SDPA_CAUSAL_AND_MASK)
@given(data=st.data())
def test_sdpa_causal_with_mask(conform, device, data):
    backends = available_backends(device)
    if device.split(":")[0] == "cuda":
        backends = tuple(b for b in backends if b != "default")  # default dispatch picks a kernel by input
    L = data.draw(st.integers(2, 8), label="L")
    dtypes = ["float32", "float64"] if device == "cpu" else ["float32", "float16"]
    case = SdpaCase(seed=data.draw(seeds, label="seed"), batch=1, hq=2, hkv=2, L=L,
                    S=data.draw(st.integers(2, 8), label="S"), E=8, Ev=8,
                    dtype=data.draw(st.sampled_from(dtypes), label="dtype"),
                    mask=MaskSpec(data.draw(st.sampled_from(["bool", "float"]), label="mask kind"), 0.3, (),
                                  data.draw(seeds, label="mask seed")),
                    is_causal=True, backend=data.draw(st.sampled_from(backends), label="backend"))
    check_sdpa(conform, case, device)


@pytest.mark.rules(masks.MASK_DTYPE, masks.MASK_SDPA_FLOAT_DTYPE, ref.SDPA_GQA_ERR, ref.SDPA_DTYPE_ERR)
@given(seed=seeds, which=st.sampled_from(["int", "wide_float", "gqa_off", "dtype"]
                                         + (["gqa_indivisible"] if sdpa_has_enable_gqa() else [])))
def test_sdpa_input_errors(conform, device, seed, which):
    base = dict(seed=seed, batch=1, hq=2, hkv=2, L=3, S=4, E=8, Ev=8, backend="math")
    case = {"int": lambda: SdpaCase(**base, mask=MaskSpec("int", 0.5, (), seed)),
            "wide_float": lambda: SdpaCase(**base, mask=MaskSpec("float", 0.2, (), seed), mask_dtype="float64"),
            "gqa_off": lambda: SdpaCase(**{**base, "hq": 4}),
            "gqa_indivisible": lambda: SdpaCase(**{**base, "hq": 3}, enable_gqa=True),
            "dtype": lambda: SdpaCase(**base)}[which]()
    if which == "dtype":  # query, key and value of different dtypes: a runner of its own
        conform.check(case, ref.dtype_mismatch_expectations(case), run=run_sdpa_mixed_dtypes)
        return
    check_sdpa(conform, case, device)

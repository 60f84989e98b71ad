"""Causal masks: generate_square_subsequent_mask and _detect_is_causal_mask."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference.attention import causal as ref
from suite.attention.cases import CausalCase
from suite.attention.torch_side.causal import run_causal_mask, run_detect_causal


@pytest.mark.rules(ref.CAUSAL_GEN)
@given(size=st.integers(0, 8), dtype=st.sampled_from(["float32", "float64"]))
def test_generate_square_subsequent_mask(conform, device, size, dtype):
    case = CausalCase(size=size, dtype=dtype)
    conform.check(case, ref.mask_expectations(case), run=run_causal_mask)


@pytest.mark.rules(ref.CAUSAL_DETECT)
@given(size=st.integers(1, 6), hint=st.sampled_from([None, None, True, False]),
       mask=st.sampled_from(["causal", "causal_bool", "other", "none", "batched_causal"]),
       check_size=st.none() | st.integers(1, 6), dtype=st.sampled_from(["float32", "float64"]))
def test_detect_is_causal_mask(conform, device, size, hint, mask, check_size, dtype):
    case = CausalCase(size=size, dtype=dtype, hint=hint, mask=mask, check_size=check_size)
    conform.check(case, ref.detect_expectations(case), run=run_detect_causal)

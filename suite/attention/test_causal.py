"""Causal masks: generate_square_subsequent_mask and _detect_is_causal_mask."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference.attention as ref
from suite.attention import torch_side as ts


@pytest.mark.rules(ref.CAUSAL_GEN)
@given(size=st.integers(0, 8), dtype=st.sampled_from(["float32", "float64"]))
def test_generate_square_subsequent_mask(conform, device, size, dtype):
    case = ts.CausalCase(size=size, dtype=dtype)
    conform.check(ref.CAUSAL_GEN, case, ref.square_subsequent_mask(case), ts.causal_mask(case, device),
                  torch_fn=ts.causal_mask)


@pytest.mark.rules(ref.CAUSAL_DETECT)
@given(size=st.integers(1, 6), hint=st.sampled_from([None, None, True, False]),
       mask=st.sampled_from(["causal", "causal_bool", "other", "none", "batched_causal"]),
       check_size=st.none() | st.integers(1, 6), dtype=st.sampled_from(["float32", "float64"]))
def test_detect_is_causal_mask(conform, device, size, hint, mask, check_size, dtype):
    case = ts.CausalCase(size=size, dtype=dtype, hint=hint, mask=mask, check_size=check_size)
    conform.check(ref.CAUSAL_DETECT, case, ref.detect_causal_reference(case), ts.detect_causal(case, device),
                  torch_fn=ts.detect_causal)

"""torch.nn.functional.multi_head_attention_forward called directly: static_k/static_v and argument errors."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference.attention import mha_functional as ref
from suite.attention.cases import MhaFunctionalCase, mha_functional_inputs
from suite.attention.strategies import seeds
from suite.attention.torch_side.mha_functional import run_mha_functional


@pytest.mark.rules(ref.MHAF_STATIC)
@given(seed=seeds, batch=st.integers(0, 2), static=st.sampled_from(["k", "v", "kv"]), add_zero_attn=st.booleans(),
       need_weights=st.booleans(), L=st.integers(1, 5), S=st.integers(1, 5))
def test_static_key_value(conform, device, seed, batch, static, add_zero_attn, need_weights, L, S):
    case = MhaFunctionalCase(seed, L=L, S=S, batch=batch, static_k="k" in static, static_v="v" in static,
                             add_zero_attn=add_zero_attn, need_weights=need_weights)
    conform.check(case, ref.expectations(case, mha_functional_inputs(case)), run=run_mha_functional)


@pytest.mark.rules(ref.MHAF_ARG_ERR)
@given(which=st.sampled_from(sorted(ref.ERRORS)))
def test_argument_errors(conform, device, which):
    case = MhaFunctionalCase(0, which=which)
    conform.check(case, ref.expectations(case, mha_functional_inputs(case)), run=run_mha_functional)

"""nn.MultiheadAttention: slow path, fast path and errors against the numpy reference."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference.attention import causal
from reference.attention import masks
from reference.attention import mha as ref
from suite.attention.cases import MaskSpec, MhaCase, MhaCtorCase, MhaInputErrorCase, mha_inputs
from suite.attention.strategies import mha_cases, seeds, steer_mha
from suite.attention.torch_side.mha import (
    run_mha, run_mha_constructor, run_mha_input_error, run_mha_mask_warnings, run_mha_parameters)

FORWARD_RULES = (ref.MHA_FORWARD, ref.MHA_BATCH_FIRST, ref.MHA_UNBATCHED, ref.MHA_NEED_WEIGHTS, ref.MHA_AVERAGE,
                 ref.MHA_BIAS_KV, ref.MHA_ZERO_ATTN, ref.MHA_KVDIM, ref.MHA_NO_BIAS, masks.MASK_BOOL_MHA,
                 masks.MASK_FLOAT_ADD, masks.MASK_NEG_INF, masks.MASK_3D, masks.MASK_KPM_BOOL, masks.MASK_KPM_FLOAT,
                 masks.MASK_MERGE, masks.MASK_FULL_MHA, ref.MHA_DROPOUT_EVAL, ref.MHA_DROPOUT_TRAIN, ref.MHA_LEGACY)


def check_mha(conform, case, device):
    inp = mha_inputs(case)
    steer_mha(case, inp, device)
    conform.check(case, ref.expectations(case, inp, device), run=run_mha)


@pytest.mark.rules(*FORWARD_RULES)
@given(data=st.data())
def test_mha_slow_path(conform, device, data):
    check_mha(conform, data.draw(mha_cases(device), label="case"), device)


@pytest.mark.rules(ref.MHA_FAST_TAKEN, ref.MHA_FAST_AGREE, masks.MASK_FULL_MHA, *FORWARD_RULES)
@given(data=st.data())
def test_mha_eval_nograd(conform, device, data):
    """Eval + no_grad: the fast path runs exactly under its conditions, and agrees with the formula."""
    check_mha(conform, data.draw(mha_cases(device, fast=True), label="case"), device)


# A case meeting every fast-path condition, and one condition off at a time (the documented list, then the
# source's own: even num_heads, bias, get_fastpath_enabled, no Tensor subclass argument).
_PLAIN = dict(seed=3, E=8, H=2, L=5, S=5, batch=2, batch_first=True, self_attention=True, path="eval_nograd",
              kpm=MaskSpec("bool", 0.3, (), 4))
_ONE_OFF = {
    "none": {}, "frozen": dict(path="eval_frozen"), "frozen_nobias": dict(path="eval_frozen", bias=False),
    "grad": dict(path="eval_grad"), "training": dict(path="slow"), "unbatched": dict(batch=0),
    "training_dropout": dict(path="slow", dropout=1.0, kpm=MaskSpec()),
    "cross": dict(self_attention=False, S=4), "odd_heads": dict(H=1), "not_batch_first": dict(batch_first=False),
    "bias_kv": dict(add_bias_kv=True), "zero_attn": dict(add_zero_attn=True), "no_bias": dict(bias=False),
    "float_mask": dict(kpm=MaskSpec("float", 0.3, (), 5)), "fastpath_off": dict(fastpath=False),
    "subclass": dict(subclass=True), "legacy": dict(legacy=True),
    "nested": dict(nested_lengths=(5, 3), kpm=MaskSpec(), need_weights=False),
    "nested_with_mask": dict(nested_lengths=(5, 3), need_weights=False), "meta": dict(meta=True),
    # not an "off": an attn_mask beside the key padding mask (the fast path merges the two), 2-D and 3-D
    "with_attn_mask": dict(attn_mask=MaskSpec("float", 0.3, (), 6)),
    "with_attn_mask_3d": dict(attn_mask=MaskSpec("bool", 0.3, (), 7), attn_mask_3d=True),
}


@pytest.mark.rules(ref.MHA_FAST_TAKEN, ref.MHA_FAST_AGREE, ref.MHA_FORWARD, ref.MHA_BATCH_FIRST, ref.MHA_UNBATCHED,
                   ref.MHA_NEED_WEIGHTS, ref.MHA_AVERAGE, ref.MHA_BIAS_KV, ref.MHA_ZERO_ATTN, ref.MHA_NO_BIAS,
                   ref.MHA_LEGACY, ref.MHA_DROPOUT_TRAIN, ref.MHA_NESTED, ref.MHA_META, masks.MASK_BOOL_MHA,
                   masks.MASK_KPM_BOOL, masks.MASK_KPM_FLOAT, masks.MASK_FULL_MHA)
@given(off=st.sampled_from(sorted(_ONE_OFF)), need_weights=st.booleans())
def test_mha_fast_path_refusals(conform, device, off, need_weights):
    """The fast path runs exactly when its conditions hold; refused or taken, the result is the formula."""
    check_mha(conform, MhaCase(**{**_PLAIN, "need_weights": need_weights, **_ONE_OFF[off]}), device)


@pytest.mark.rules(ref.MHA_INPUT_SHAPE_ERR, ref.MHA_DTYPE_ERR)
@given(which=st.sampled_from(["batched_query_2d_kv", "unbatched_query_3d_kv", "query_1d", "query_4d", "query_features",
                              "kv_shapes",
                              "kv_lengths_separate", "key_features_separate", "value_features_self", "dtype_bias",
                              "dtype_nobias"]), batch_first=st.booleans())
def test_mha_input_errors(conform, device, which, batch_first):
    case = MhaInputErrorCase(which, batch_first)
    conform.check(case, ref.input_error_expectations(case), run=run_mha_input_error)


@pytest.mark.rules(masks.MASK_2D_SHAPE, masks.MASK_3D_SHAPE, masks.MASK_NDIM, masks.MASK_KPM_SHAPE, masks.MASK_DTYPE,
                   causal.CAUSAL_HINT_NEEDS_MASK)
@given(seed=seeds, which=st.sampled_from(["2d", "3d", "3d_unbatched", "4d", "4d_unbatched", "kpm_len", "kpm_dim",
                                          "kpm_dim_unbatched", "int", "causal"]),
       batch_first=st.booleans())
def test_mha_mask_errors(conform, device, seed, which, batch_first):
    spec = MaskSpec("bool", 0.3, (), seed)
    base = dict(seed=seed, E=4, H=2, L=3, S=5, batch=2, batch_first=batch_first)
    case = {
        "2d": lambda: MhaCase(**base, attn_mask=spec, bad_attn_mask_shape=(3, 4)),
        "3d": lambda: MhaCase(**base, attn_mask=spec, bad_attn_mask_shape=(2, 3, 5)),
        "3d_unbatched": lambda: MhaCase(**{**base, "batch": 0}, attn_mask=spec, bad_attn_mask_shape=(3, 3, 5)),
        "4d": lambda: MhaCase(**base, attn_mask=spec, bad_attn_mask_shape=(2, 2, 3, 5)),
        "4d_unbatched": lambda: MhaCase(**{**base, "batch": 0}, attn_mask=spec, bad_attn_mask_shape=(1, 2, 3, 5)),
        "kpm_len": lambda: MhaCase(**base, kpm=spec, bad_kpm_shape=(2, 4)),
        "kpm_dim": lambda: MhaCase(**base, kpm=spec, bad_kpm_shape=(5,)),  # a (5,) kpm for batched input
        "kpm_dim_unbatched": lambda: MhaCase(**{**base, "batch": 0}, kpm=spec, bad_kpm_shape=(1, 5)),
        "int": lambda: MhaCase(**base, attn_mask=MaskSpec("int", 0.3, (), seed)),
        "causal": lambda: MhaCase(**base, is_causal=True),
    }[which]()
    conform.check(case, ref.expectations(case, mha_inputs(case), device), run=run_mha)


@pytest.mark.rules(masks.MASK_MISMATCH_WARN)
@given(seed=seeds, kinds=st.sampled_from([("bool", "float"), ("float", "bool"), ("bool", "bool"), ("float", "float")]),
       fast=st.booleans())
def test_mha_mismatched_mask_dtypes(conform, device, seed, kinds, fast):
    case = MhaCase(seed=seed, E=4, H=2, L=4, S=4, batch=2, batch_first=True, self_attention=True,
                   attn_mask=MaskSpec(kinds[0], 0.3, (), seed), kpm=MaskSpec(kinds[1], 0.2, (), seed + 1),
                   path="eval_nograd" if fast else "slow")
    conform.check(case, ref.mask_warning_expectations(case, mha_inputs(case)), run=run_mha_mask_warnings)


@pytest.mark.rules(causal.CAUSAL_HINT)
@given(seed=seeds, L=st.integers(1, 8), need_weights=st.booleans(), kpm=st.booleans(), fast=st.booleans())
def test_mha_causal_hint(conform, device, seed, L, need_weights, kpm, fast):
    """is_causal=True with the causal mask: the same result as the mask alone (need_weights=False
    without key_padding_mask routes the hint to SDPA's is_causal instead of the mask)."""
    case = MhaCase(seed=seed, E=8, H=2, L=L, S=L, batch=2, batch_first=True, self_attention=True,
                   attn_mask=MaskSpec("causal"), is_causal=True, need_weights=need_weights,
                   kpm=MaskSpec("bool", 0.3, (), seed) if kpm else MaskSpec(),
                   path="eval_nograd" if fast else "slow")
    conform.check(case, ref.causal_hint_expectations(case, mha_inputs(case)), run=run_mha)


@pytest.mark.rules(ref.MHA_PARAMS)
@given(data=st.data())
def test_mha_parameters(conform, device, data):
    case = data.draw(mha_cases(device), label="case")
    conform.check(case, ref.parameter_expectations(case), run=run_mha_parameters)


@pytest.mark.rules(ref.MHA_PARAMS)
@pytest.mark.parametrize("kdim, vdim", [(264, 264), (264, None), (None, 264), (264, 100)])
def test_mha_parameters_wide(conform, device, kdim, vdim):
    """kdim / vdim given equal to an embed_dim past CPython's cached small ints (264): still one packed
    in_proj_weight -- "kdim == embed_dim" is equality, not the identity of the caller's int."""
    case = MhaCase(seed=0, E=264, H=2, L=1, S=1, batch=1, kdim=kdim, vdim=vdim)
    conform.check(case, ref.parameter_expectations(case), run=run_mha_parameters)


@pytest.mark.rules(ref.MHA_CTOR)
@given(embed_dim=st.integers(-1, 12), num_heads=st.integers(-1, 5))
def test_mha_constructor(conform, device, embed_dim, num_heads):
    case = MhaCtorCase(embed_dim, num_heads)
    conform.check(case, ref.constructor_expectations(case), run=run_mha_constructor)

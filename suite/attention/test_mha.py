"""nn.MultiheadAttention: slow path, fast path and errors against the numpy reference."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import event, given, target
from hypothesis import strategies as st

import reference.attention as ref
from suite.attention import torch_side as ts
from suite.attention.strategies import mha_cases, seeds
from conform.tolerance import EXACT

FORWARD_RULES = (ref.MHA_FORWARD, ref.MHA_BATCH_FIRST, ref.MHA_UNBATCHED, ref.MHA_NEED_WEIGHTS, ref.MHA_AVERAGE,
                 ref.MHA_BIAS_KV, ref.MHA_ZERO_ATTN, ref.MHA_KVDIM, ref.MHA_NO_BIAS, ref.MASK_BOOL_MHA,
                 ref.MASK_FLOAT_ADD, ref.MASK_NEG_INF, ref.MASK_3D, ref.MASK_KPM_BOOL, ref.MASK_KPM_FLOAT,
                 ref.MASK_MERGE, ref.MASK_FULL_MHA, ref.MHA_DROPOUT_EVAL)


def feature_rules(case) -> list[str]:
    rules = [ref.MHA_FORWARD]
    rules += [ref.MHA_UNBATCHED] if case.batch == 0 else ([ref.MHA_BATCH_FIRST] if case.batch_first else [])
    rules += [ref.MHA_NEED_WEIGHTS] if not case.need_weights else ([ref.MHA_AVERAGE] if case.batch else [])
    rules += [ref.MHA_BIAS_KV] if case.add_bias_kv else []
    rules += [ref.MHA_ZERO_ATTN] if case.add_zero_attn else []
    rules += [ref.MHA_KVDIM] if (case.kdim or case.E) != case.E or (case.vdim or case.E) != case.E else []
    rules += [ref.MHA_NO_BIAS] if not case.bias else []
    kinds = {case.attn_mask.kind, case.kpm.kind}
    rules += [ref.MASK_BOOL_MHA] if "bool" in kinds else []
    rules += [ref.MASK_FLOAT_ADD] if case.attn_mask.kind == "float" else []
    rules += [ref.MASK_NEG_INF] if "neginf" in kinds else []
    rules += [ref.MASK_3D] if case.attn_mask.kind != "none" and case.attn_mask_3d else []
    rules += [ref.MASK_KPM_BOOL] if case.kpm.kind == "bool" else []
    rules += [ref.MASK_KPM_FLOAT] if case.kpm.kind in ("float", "neginf") else []
    rules += [ref.MASK_MERGE] if case.kpm.kind != "none" and case.attn_mask.kind != "none" else []
    rules += [ref.MHA_DROPOUT_EVAL] if case.dropout else []
    return rules


def check_mha(conform, case, device, extra=()):
    inp = ts.make_mha_inputs(case)
    expected = ref.mha_reference(case, inp)
    actual = ts.mha_outputs(case, device)
    tol = ref.mha_tol(case, inp)
    if isinstance(expected, dict):
        full = ref.mha_fully_masked(case, inp)
        _, _, M, _ = ref._mha_core(case, inp)
        target(M, label="score magnitude")
        target(float(np.isnan(ref._mha_core(case, inp, empty_as_zero=False)[0]).sum()), label="fully masked outputs")
        if full:  # one home for fully masked rows: the release's convention, or a registered divergence
            conform.check(ref.MASK_FULL_MHA, case, expected, actual, tol, torch_fn=ts.mha_outputs)
            return
    for r in feature_rules(case) + list(extra):
        conform.check(r, case, expected, actual, tol, torch_fn=ts.mha_outputs)


@pytest.mark.rules(*FORWARD_RULES)
@given(data=st.data())
def test_mha_slow_path(conform, device, data):
    check_mha(conform, data.draw(mha_cases(device)), device)


@pytest.mark.rules(ref.MHA_FAST_TAKEN, ref.MHA_FAST_AGREE, ref.MASK_FULL_MHA, *FORWARD_RULES)
@given(data=st.data())
def test_mha_eval_nograd(conform, device, data):
    """Eval + no_grad: the fast path runs exactly under its conditions, and agrees with the formula."""
    case = data.draw(mha_cases(device, fast=True))
    fast = ref.mha_fast_path_expected(case, device)
    event(f"fast path expected: {fast}")
    conform.check(ref.MHA_FAST_TAKEN, case, fast, ts.mha_fast_path_taken(case, device), torch_fn=ts.mha_fast_path_taken)
    check_mha(conform, case, device, extra=[ref.MHA_FAST_AGREE] if fast else [])


@pytest.mark.rules(ref.MASK_2D_SHAPE, ref.MASK_3D_SHAPE, ref.MASK_NDIM, ref.MASK_KPM_SHAPE, ref.MASK_DTYPE,
                   ref.CAUSAL_HINT_NEEDS_MASK)
@given(seed=seeds, which=st.sampled_from(["2d", "3d", "3d_unbatched", "4d", "kpm_len", "kpm_dim", "int", "causal"]),
       batch_first=st.booleans())
def test_mha_mask_errors(conform, device, seed, which, batch_first):
    spec = ts.MaskSpec("bool", 0.3, (), seed)
    base = dict(seed=seed, E=4, H=2, L=3, S=5, batch=2, batch_first=batch_first)
    case, rule = {
        "2d": (ts.MhaCase(**base, attn_mask=spec, bad_attn_mask_shape=(3, 4)), ref.MASK_2D_SHAPE),
        "3d": (ts.MhaCase(**base, attn_mask=spec, bad_attn_mask_shape=(2, 3, 5)), ref.MASK_3D_SHAPE),
        "3d_unbatched": (ts.MhaCase(**{**base, "batch": 0}, attn_mask=spec, bad_attn_mask_shape=(3, 3, 5)), ref.MASK_3D_SHAPE),
        "4d": (ts.MhaCase(**base, attn_mask=spec, bad_attn_mask_shape=(2, 2, 3, 5)), ref.MASK_NDIM),
        "kpm_len": (ts.MhaCase(**base, kpm=spec, bad_kpm_shape=(2, 4)), ref.MASK_KPM_SHAPE),
        "kpm_dim": (ts.MhaCase(**base, kpm=spec, bad_kpm_shape=(5,)), ref.MASK_KPM_SHAPE),
        "int": (ts.MhaCase(**base, attn_mask=ts.MaskSpec("int", 0.3, (), seed)), ref.MASK_DTYPE),
        "causal": (ts.MhaCase(**base, is_causal=True), ref.CAUSAL_HINT_NEEDS_MASK),
    }[which]
    if which == "kpm_dim":  # make_masked prepends a dim; a (5,) kpm for batched input
        case = ts.MhaCase(**base, kpm=spec, bad_kpm_shape=(5,))
    inp = ts.make_mha_inputs(case)
    conform.check(rule, case, ref.mha_reference(case, inp), ts.mha_outputs(case, device), torch_fn=ts.mha_outputs)


@pytest.mark.rules(ref.MASK_MISMATCH_WARN)
@given(seed=seeds, kinds=st.sampled_from([("bool", "float"), ("float", "bool"), ("bool", "bool"), ("float", "float")]),
       fast=st.booleans())
def test_mha_mismatched_mask_dtypes(conform, device, seed, kinds, fast):
    case = ts.MhaCase(seed=seed, E=4, H=2, L=4, S=4, batch=2, batch_first=True, self_attention=True,
                      attn_mask=ts.MaskSpec(kinds[0], 0.3, (), seed), kpm=ts.MaskSpec(kinds[1], 0.2, (), seed + 1),
                      path="eval_nograd" if fast else "slow")
    inp = ts.make_mha_inputs(case)
    expected = {"out": ref.mha_reference(case, inp)["out"], "warnings": ref.mismatched_warnings(case)}
    if ref.mha_fully_masked(case, inp):
        return  # fully masked rows have their own rule
    conform.check(ref.MASK_MISMATCH_WARN, case, expected, ts.mha_mask_warnings(case, device),
                  ref.mha_tol(case, inp), torch_fn=ts.mha_mask_warnings)


@pytest.mark.rules(ref.CAUSAL_HINT)
@given(seed=seeds, L=st.integers(1, 8), need_weights=st.booleans(), kpm=st.booleans(), fast=st.booleans())
def test_mha_causal_hint(conform, device, seed, L, need_weights, kpm, fast):
    """is_causal=True with the causal mask: the same result as the mask alone (need_weights=False
    without key_padding_mask routes the hint to SDPA's is_causal instead of the mask)."""
    causal = ts.MaskSpec("causal")
    case = ts.MhaCase(seed=seed, E=8, H=2, L=L, S=L, batch=2, batch_first=True, self_attention=True,
                      attn_mask=causal, is_causal=True, need_weights=need_weights,
                      kpm=ts.MaskSpec("bool", 0.3, (), seed) if kpm else ts.MaskSpec(),
                      path="eval_nograd" if fast else "slow")
    inp = ts.make_mha_inputs(case)
    expected = ref.mha_reference(case, inp)
    if ref.mha_fully_masked(case, inp):
        return  # fully masked rows have their own rule
    conform.check(ref.CAUSAL_HINT, case, expected, ts.mha_outputs(case, device), ref.mha_tol(case, inp),
                  torch_fn=ts.mha_outputs)


@pytest.mark.rules(ref.MHA_PARAMS)
@given(data=st.data())
def test_mha_parameters(conform, device, data):
    case = data.draw(mha_cases(device))
    conform.check(ref.MHA_PARAMS, case, ref.mha_param_layout(case), ts.mha_param_layout(case, device),
                  torch_fn=ts.mha_param_layout)


@pytest.mark.rules(ref.MHA_CTOR)
@given(embed_dim=st.integers(-1, 12), num_heads=st.integers(-1, 5))
def test_mha_constructor(conform, device, embed_dim, num_heads):
    case = ts.MhaCtorCase(embed_dim, num_heads)
    conform.check(ref.MHA_CTOR, case, ref.mha_ctor_reference(case), ts.mha_construct(case, device), EXACT,
                  torch_fn=ts.mha_construct)

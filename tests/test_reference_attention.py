"""Golden cases of the attention reference, computed by hand (no torch)."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from packaging.version import Version

from conform.outcome import OneOf, Raised
from reference.attention import causal, layers, mha, mha_functional, numerics, sdpa


def _release(monkeypatch, release: str) -> None:
    monkeypatch.setattr(numerics, "since", lambda r: Version(release) >= Version(r))


@pytest.mark.parametrize("release, zero", [("2.4.1", False), ("2.5.1", True), ("2.15.0", True)])
def test_softmax_of_a_fully_masked_row_follows_the_release(monkeypatch, release, zero):
    """NaN before 2.5 (the documented formula: softmax over no finite score), 0 from 2.5 (pytorch#131060/#133882)."""
    _release(monkeypatch, release)
    p = numerics.softmax(np.array([[0.0, 0.0], [-np.inf, -np.inf], [0.0, -np.inf]]))
    assert np.allclose(p[0], [0.5, 0.5]) and np.array_equal(p[2], [1.0, 0.0])
    assert (p[1] == 0).all() if zero else np.isnan(p[1]).all()


def _sdpa_case(**kw):
    fields = dict(mask=SimpleNamespace(kind="bool"), mask_dtype=None, is_causal=False, hq=1, hkv=1, enable_gqa=False,
                  backend="math", dtype="float64", L=2, S=2, E=1, Ev=1, scale=1.0, polarity="sdpa")
    fields.update(kw)
    return SimpleNamespace(**fields)


def _sdpa_inputs():
    masked = np.array([[False, True], [True, True]])  # True = excluded; row 1 sees no key
    return {"q": np.ones((1, 1, 2, 1)), "k": np.array([[[[0.0], [1.0]]]]), "v": np.array([[[[2.0], [4.0]]]]),
            "masked": masked}


def test_sdpa_fully_masked_row_is_zero_since_2_5_and_has_its_own_rule(monkeypatch):
    _release(monkeypatch, "2.5.1")
    case, inp = _sdpa_case(), _sdpa_inputs()
    out = sdpa.formula(case, inp)
    assert np.allclose(out[0, 0, 0], [2.0]) and np.array_equal(out[0, 0, 1], [0.0])
    expects = sdpa.expectations(case, inp)
    assert [e.rule for e in expects] == [sdpa.MASK_FULL_SDPA, sdpa.SDPA_BACKEND_CLEAN]


def test_sdpa_error_rules_follow_the_spec_order():
    """An int mask with is_causal: the mask dtype check comes first (int, float dtype, causal, heads)."""
    case = _sdpa_case(mask=SimpleNamespace(kind="int"), is_causal=True, hq=2, hkv=1)
    assert sdpa.input_error(case)[0] == sdpa.MASK_DTYPE
    assert sdpa.input_error(_sdpa_case(mask=SimpleNamespace(kind="bool"), is_causal=True, hq=2))[0] == \
        sdpa.SDPA_CAUSAL_AND_MASK


@pytest.mark.parametrize("backend, E, Ev, may_refuse", [("math", 1, 1, False), ("default", 1, 2, False),
                                                         ("flash", 1, 1, False), ("flash", 1, 2, True)])
def test_a_fused_backend_may_refuse_only_outside_its_stated_limits(backend, E, Ev, may_refuse):
    case = _sdpa_case(mask=SimpleNamespace(kind="none"), backend=backend, E=E, Ev=Ev)
    inp = {"q": np.ones((1, 1, 2, E)), "k": np.ones((1, 1, 2, E)), "v": np.ones((1, 1, 2, Ev)), "masked": None}
    formula = [e for e in sdpa.expectations(case, inp, "cpu") if e.rule == sdpa.SDPA_FORMULA][0]
    assert isinstance(formula.expected, OneOf) == may_refuse and formula.key == "out"


def test_kpm_shape_message_matches_both_wordings():
    expected = Raised("AssertionError", r"key_padd(?:ing|ed)_mask[ .]shape")
    for message in ("expecting key_padding_mask shape of (2, 5), but got torch.Size([2, 4])",  # 2.4, 2.5
                    "Expected key_padded_mask.shape[1] to be 5, but got 4"):  # 2.6+
        assert expected.matches(Raised("AssertionError", message))
    assert not expected.matches(Raised("AssertionError", "expected `key_padding_mask` to be `None` or 2-D"))


def test_attend_two_keys_by_hand():
    q = np.array([[1.0, 0.0]])
    k = np.array([[1.0, 0.0], [0.0, 1.0]])
    v = np.array([[2.0], [4.0]])
    out, p = numerics.attend(q, k, v, 0.0, 1.0)
    e = math.e
    assert np.allclose(p, [[e / (e + 1), 1 / (e + 1)]])
    assert np.allclose(out, [[(2 * e + 4) / (e + 1)]])


def test_square_subsequent_mask_by_hand():
    vals = causal.square_subsequent_mask(SimpleNamespace(size=3, dtype="float32"))["values"]
    assert np.array_equal(vals, [[0, -np.inf, -np.inf], [0, 0, -np.inf], [0, 0, 0]])


def test_gelu_and_relu():
    assert layers.activation("relu", np.array([-1.0, 2.0])).tolist() == [0.0, 2.0]
    assert np.isclose(layers.activation("gelu", np.array([1.0]))[0], 0.5 * (1 + math.erf(1 / math.sqrt(2))))


def test_mha_ctor_reference():
    assert mha.constructor(SimpleNamespace(embed_dim=6, num_heads=4)).type == "AssertionError"


def _mha_fully_masked_case():
    mask = SimpleNamespace(kind="bool")
    case = SimpleNamespace(E=2, H=1, L=1, S=1, batch=1, batch_first=True, kdim=None, vdim=None, bias=True,
                           add_bias_kv=False, add_zero_attn=False, need_weights=True, average_attn_weights=True,
                           attn_mask=mask, attn_mask_3d=False, kpm=SimpleNamespace(kind="none"), is_causal=False,
                           self_attention=False, dtype="float64", path="slow", dropout=0.0, fastpath=True,
                           subclass=False, legacy=False, nested_lengths=(), meta=False)
    x = np.array([[[1.0, -1.0]]])
    inp = {"params": {"in_proj_weight": np.eye(6, 2), "in_proj_bias": np.arange(6.0),
                      "out_proj.weight": np.eye(2), "out_proj.bias": np.array([0.25, -0.5])},
           "query": x, "key": x, "value": x, "attn_masked": np.array([[True]]), "kpm_masked": None}
    return case, inp


@pytest.mark.parametrize("release", ["2.4.1", "2.5.1"])
def test_mha_fully_masked_row_by_hand(monkeypatch, release):
    """Before 2.5: NaN output and weights; from 2.5: zero context (out = out_proj.bias) and zero weights."""
    _release(monkeypatch, release)
    case, inp = _mha_fully_masked_case()
    got = mha.outputs(case, inp)
    assert [e.rule for e in mha.expectations(case, inp)] == [mha.MASK_FULL_MHA]
    assert mha.fully_masked_outputs(case, inp) == 2
    if release == "2.4.1":
        assert np.isnan(got["out"]).all() and np.isnan(got["weights"]).all()
    else:
        assert np.array_equal(got["out"][0, 0], [0.25, -0.5]) and np.array_equal(got["weights"], [[[0.0]]])


def test_static_key_value_by_hand():
    """Identity projections, one query [1, 0] against static keys [0, 0], [1, 0] and values [2, 0], [4, 0]."""
    case = SimpleNamespace(E=2, H=1, L=1, S=2, batch=1, static_k=True, static_v=True, add_zero_attn=False,
                           need_weights=True, which="none")
    inp = {"params": {"in_proj_weight": np.vstack([np.eye(2)] * 3), "in_proj_bias": np.zeros(6),
                      "out_proj.weight": np.eye(2), "out_proj.bias": np.zeros(2)},
           "query": np.array([[[1.0, 0.0]]]), "key": np.zeros((2, 1, 2)), "value": np.zeros((2, 1, 2)),
           "static_k": np.array([[[0.0, 0.0], [1.0, 0.0]]]), "static_v": np.array([[[2.0, 0.0], [4.0, 0.0]]])}
    outputs, _, _ = mha_functional.model(case, inp)
    p1 = math.exp(1 / math.sqrt(2)) / (1 + math.exp(1 / math.sqrt(2)))
    assert np.allclose(outputs["out"], [[[2 + 2 * p1, 0.0]]]) and np.allclose(outputs["weights"], [[[1 - p1, p1]]])
    # a zero key/value appended after the static ones: one more score 0, value 0
    outputs, _, _ = mha_functional.model(SimpleNamespace(**{**vars(case), "add_zero_attn": True}), inp)
    e = math.exp(1 / math.sqrt(2))
    assert np.allclose(outputs["out"], [[[(2 + 4 * e) / (2 + e), 0.0]]])


@pytest.mark.parametrize("batch, batch_first, shape", [(0, False, (3, 2)), (2, True, (2, 3, 2)), (2, False, (3, 2, 2))])
def test_training_dropout_one_leaves_the_output_bias(batch, batch_first, shape):
    case = SimpleNamespace(dropout=1.0, batch=batch, batch_first=batch_first, L=3, E=2)
    out = mha.dropped_output(case, {"params": {"out_proj.bias": np.array([0.5, -1.0])}})
    assert out.shape == shape and np.array_equal(out[..., 1], np.full(shape[:-1], -1.0))


def _layer_case(**kw):
    fields = dict(kind="encoder", batch_first=True, norm_first=False, bias=True, activation="relu", norm2_eps=None,
                  nhead=2, custom=False, enable_nested_tensor=True, path="eval_nograd", fastpath=True, legacy=False,
                  batch=2, kpm_lengths=(2, 1), kpm_right_aligned=False, src_mask="none", subclass=False, nested="none",
                  hooked=False)
    fields.update(kw)
    return SimpleNamespace(**fields)


@pytest.mark.parametrize("change", [dict(custom=True), dict(bias=False), dict(norm2_eps=0.1), dict(nhead=1),
                                    dict(norm_first=True), dict(activation="callable_tanh")])
def test_a_layer_the_sparsity_path_cannot_use_turns_nested_tensors_off(change):
    assert layers.nested_flag(_layer_case()) == {"use_nested_tensor": True, "warned": False}
    assert layers.nested_flag(_layer_case(**change)) == {"use_nested_tensor": False, "warned": True}


@pytest.mark.parametrize("change", [dict(legacy=True), dict(fastpath=False), dict(kpm_right_aligned=True),
                                    dict(batch=0), dict(subclass=True), dict(src_mask="bool"), dict(nested="alone")])
def test_nested_conversion_needs_every_condition(change):
    assert layers.nested_conversion(_layer_case())
    assert not layers.nested_conversion(_layer_case(**change))


def test_a_nested_query_with_a_mask_is_an_error():
    case, inp = _mha_fully_masked_case()
    case = SimpleNamespace(**{**vars(case), "nested_lengths": (1,), "path": "eval_nograd", "self_attention": True})
    assert mha.expected_error(case, inp)[0] == mha.MHA_NESTED

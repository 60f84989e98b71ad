"""Golden cases of the attention reference, computed by hand (no torch)."""
from __future__ import annotations

import math

from types import SimpleNamespace

import numpy as np
import pytest
from packaging.version import Version

import reference.attention as ref
from conform.outcome import Raised


def test_softmax_uniform_and_fully_masked_row():
    scores = np.array([[0.0, 0.0], [-np.inf, -np.inf], [0.0, -np.inf]])
    p = ref.softmax(scores, empty_as_zero=False)
    assert np.allclose(p[0], [0.5, 0.5])
    assert np.isnan(p[1]).all()  # the documented formula: softmax over no finite score
    assert np.array_equal(p[2], [1.0, 0.0])
    assert np.array_equal(ref.softmax(scores, empty_as_zero=True)[1], [0.0, 0.0])  # _safe_softmax


@pytest.mark.parametrize("release, zero", [("2.4.1", False), ("2.5.1", True), ("2.15.0", True)])
def test_fully_masked_rows_follow_the_release(monkeypatch, release, zero):
    """NaN before 2.5, 0 from 2.5 (pytorch#131060/#133882), by default."""
    monkeypatch.setattr(ref, "since", lambda r: Version(release) >= Version(r))
    row = ref.softmax(np.array([[-np.inf, -np.inf, -np.inf]]))[0]
    assert (row == 0).all() if zero else np.isnan(row).all()


def _sdpa_case(**kw):
    fields = dict(mask=SimpleNamespace(kind="bool"), mask_dtype=None, is_causal=False, hq=1, hkv=1, enable_gqa=False,
                  backend="math", dtype="float64", L=2, S=2, E=1, scale=1.0, polarity="sdpa")
    fields.update(kw)
    return SimpleNamespace(**fields)


def test_sdpa_docstring_reference_keeps_nan_while_the_reference_follows_the_release(monkeypatch):
    monkeypatch.setattr(ref, "since", lambda r: True)  # a release >= 2.5
    case = _sdpa_case()
    masked = np.array([[False, True], [True, True]])  # True = excluded; row 1 sees no key
    inp = {"q": np.ones((1, 1, 2, 1)), "k": np.array([[[[0.0], [1.0]]]]), "v": np.array([[[[2.0], [4.0]]]]),
           "masked": masked}
    out = ref.sdpa_reference(case, inp)
    assert np.allclose(out[0, 0, 0], [2.0]) and np.array_equal(out[0, 0, 1], [0.0])
    assert np.isnan(ref.sdpa_docstring_reference(case, inp)[0, 0, 1]).all()


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
    out, p = ref.attend(q, k, v, 0.0, 1.0)
    e = math.e
    assert np.allclose(p, [[e / (e + 1), 1 / (e + 1)]])
    assert np.allclose(out, [[(2 * e + 4) / (e + 1)]])


def test_square_subsequent_mask_by_hand():
    class C:
        size, dtype = 3, "float32"
    vals = ref.square_subsequent_mask(C)["values"]
    assert np.array_equal(vals, [[0, -np.inf, -np.inf], [0, 0, -np.inf], [0, 0, 0]])


def test_layer_norm_by_hand():
    y, _ = ref.layer_norm(np.array([1.0, 3.0]), np.ones(2), np.zeros(2))
    assert np.allclose(y, [-1.0, 1.0], atol=1e-5)


def test_gelu_and_relu():
    assert ref.activation("relu", np.array([-1.0, 2.0])).tolist() == [0.0, 2.0]
    assert np.isclose(ref.activation("gelu", np.array([1.0]))[0], 0.5 * (1 + math.erf(1 / math.sqrt(2))))


def test_mha_ctor_reference():
    class C:
        embed_dim, num_heads = 6, 4
    assert ref.mha_ctor_reference(C).type == "AssertionError"


def _mha_fully_masked_case():
    mask = SimpleNamespace(kind="bool")
    case = SimpleNamespace(E=2, H=1, L=1, S=1, batch=1, batch_first=True, kdim=None, vdim=None, bias=True,
                           add_bias_kv=False, add_zero_attn=False, need_weights=True, average_attn_weights=True,
                           attn_mask=mask, attn_mask_3d=False, kpm=SimpleNamespace(kind="none"), is_causal=False,
                           self_attention=False, dtype="float64")
    x = np.array([[[1.0, -1.0]]])
    inp = {"params": {"in_proj_weight": np.eye(6, 2), "in_proj_bias": np.arange(6.0),
                      "out_proj.weight": np.eye(2), "out_proj.bias": np.array([0.25, -0.5])},
           "query": x, "key": x, "value": x, "attn_masked": np.array([[True]]), "kpm_masked": None}
    return case, inp


@pytest.mark.parametrize("release", ["2.4.1", "2.5.1"])
def test_mha_fully_masked_row_by_hand(monkeypatch, release):
    """Before 2.5: NaN output and weights; from 2.5: zero context (out = out_proj.bias) and zero weights."""
    monkeypatch.setattr(ref, "since", lambda r: Version(release) >= Version(r))
    case, inp = _mha_fully_masked_case()
    got = ref.mha_reference(case, inp)
    assert ref.mha_fully_masked(case, inp)
    if release == "2.4.1":
        assert np.isnan(got["out"]).all() and np.isnan(got["weights"]).all()
    else:
        assert np.array_equal(got["out"][0, 0], [0.25, -0.5]) and np.array_equal(got["weights"], [[[0.0]]])

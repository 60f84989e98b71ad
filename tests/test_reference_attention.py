"""Golden cases of the attention reference, computed by hand (no torch)."""
from __future__ import annotations

import math

import numpy as np

import reference.attention as ref


def test_softmax_uniform_and_fully_masked_row():
    p = ref.softmax(np.array([[0.0, 0.0], [-np.inf, -np.inf], [0.0, -np.inf]]))
    assert np.allclose(p[0], [0.5, 0.5])
    assert np.isnan(p[1]).all()  # the documented formula: softmax over no finite score
    assert np.array_equal(p[2], [1.0, 0.0])


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

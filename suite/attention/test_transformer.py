"""TransformerEncoderLayer/Encoder/DecoderLayer/Decoder/Transformer against the layer formulas."""
from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conform.expect import Expect
from reference.attention import layers as ref
from suite.attention.cases import LayerCase, layer_inputs
from suite.attention.strategies import layer_cases, seeds, steer_layer, steer_padding
from suite.attention.torch_side.layers import (
    layer_params, run_activation, run_encoder_use_nested, run_layer, run_layer_defaults, run_layer_list_mask,
    run_transformer_shapes)

# the rules any forward case may add to its kind's own
OPTION_RULES = (ref.LAYER_UNBATCHED, ref.LAYER_NO_BIAS, ref.LAYER_LEGACY, ref.LAYER_DROPOUT_EVAL)


def check_layer(conform, case, device):
    inp, P = layer_inputs(case), layer_params(case)
    steer_layer(case, inp, P)
    conform.check(case, ref.expectations(case, inp, P), run=run_layer)


@pytest.mark.rules(ref.ENC_LAYER, ref.ENC_ACT, ref.ENC_MASKS, ref.ENC_FAST, ref.LAYER_NORM_EPS, *OPTION_RULES)
@given(data=st.data())
def test_encoder_layer(conform, device, data):
    check_layer(conform, data.draw(layer_cases(device, ("encoder_layer",)), label="case"), device)


@pytest.mark.rules(ref.ENC_STACK, ref.ENC_NESTED, ref.ENC_FAST, ref.LAYER_NORM_EPS, *OPTION_RULES)
@given(data=st.data())
def test_encoder_stack(conform, device, data):
    check_layer(conform, data.draw(layer_cases(device, ("encoder",)), label="case"), device)


@pytest.mark.rules(ref.ENC_NESTED, ref.ENC_STACK)
@given(seed=seeds, L=st.integers(1, 6), lengths=st.lists(st.integers(1, 6), min_size=1, max_size=3),
       final_norm=st.booleans(), num_layers=st.integers(1, 2), activation=st.sampled_from(["relu", "gelu"]),
       mask_check=st.booleans(), kpm_kind=st.sampled_from(["bool", "float"]), right_aligned=st.booleans())
def test_encoder_nested_conversion(conform, device, seed, L, lengths, final_norm, num_layers, activation, mask_check,
                                   kpm_kind, right_aligned):
    """Eval + no_grad + left-aligned src_key_padding_mask: the encoder converts to a nested tensor and back; with
    mask_check a mask that is not left-aligned is detected and the padded computation runs instead."""
    lengths = tuple(min(n, L) for n in lengths)
    case = LayerCase(seed=seed, kind="encoder", d_model=4, nhead=2, ff=8, L=L, S=L, batch=len(lengths),
                     activation=activation, num_layers=num_layers, final_norm=final_norm, kpm_lengths=lengths,
                     kpm_kind=kpm_kind, mask_check=mask_check, path="eval_nograd",
                     kpm_right_aligned=mask_check and right_aligned)
    steer_padding(L, lengths)
    check_layer(conform, case, device)


# An encoder case that converts to a nested tensor, and one of the conditions of the encoder's sparsity fast
# path and of the layer's fused path off at a time (TransformerEncoder.forward, TransformerEncoderLayer "Fast path").
_PLAIN = dict(seed=5, kind="encoder", d_model=4, nhead=2, ff=8, L=4, S=4, batch=2, kpm_lengths=(4, 2),
              path="eval_nograd")
_ONE_OFF = {
    "none": {}, "fastpath_off": dict(fastpath=False), "legacy": dict(legacy=True), "training": dict(path="slow"),
    "grad": dict(path="eval_grad"), "unbatched": dict(batch=0, kpm_lengths=(2,)), "no_kpm": dict(kpm_lengths=None),
    "not_left_aligned": dict(kpm_right_aligned=True), "mask_and_kpm": dict(src_mask="bool"),
    "subclass": dict(subclass=True), "hooked": dict(hooked=True), "no_bias": dict(bias=False),
    "norm2_eps": dict(norm2_eps=0.1), "odd_heads": dict(nhead=1), "not_batch_first": dict(batch_first=False),
    "norm_first": dict(norm_first=True), "tanh": dict(activation="callable_tanh"),
    "nested_off": dict(enable_nested_tensor=False),
    "nested_input": dict(nested="alone"), "nested_input_with_kpm": dict(nested="with_kpm", mask_check=False),
    "meta": dict(meta=True, mask_check=False),
}


@pytest.mark.rules(ref.ENC_LAYER, ref.ENC_FAST, ref.ENC_STACK, ref.ENC_NESTED, ref.ENC_ACT, ref.ENC_MASKS,
                   ref.LAYER_NORM_EPS, ref.LAYER_UNBATCHED, ref.LAYER_NO_BIAS, ref.LAYER_LEGACY, ref.LAYER_NESTED,
                   ref.MHA_META)
@given(off=st.sampled_from(sorted(_ONE_OFF)), kind=st.sampled_from(["encoder", "encoder_layer"]))
def test_encoder_fast_path_refusals(conform, device, off, kind):
    """Refused or taken, the encoder's and the layer's fast paths give the documented padded computation."""
    check_layer(conform, LayerCase(**{**_PLAIN, "kind": kind, **_ONE_OFF[off]}), device)


@pytest.mark.rules(ref.DEC_LAYER, ref.DEC_STACK, ref.DEC_CAUSAL, ref.DEC_MEM_CAUSAL, *OPTION_RULES)
@given(data=st.data())
def test_decoder(conform, device, data):
    check_layer(conform, data.draw(layer_cases(device, ("decoder_layer", "decoder")), label="case"), device)


@pytest.mark.rules(ref.TRANSFORMER, ref.TRANSFORMER_CUSTOM, *OPTION_RULES)
@given(data=st.data())
def test_transformer(conform, device, data):
    check_layer(conform, data.draw(layer_cases(device, ("transformer",)), label="case"), device)


@pytest.mark.rules(ref.LAYER_DEFAULTS)
@pytest.mark.parametrize("kind", ["encoder_layer", "decoder_layer"])
def test_layer_defaults(conform, device, kind):
    conform.check(kind, Expect(ref.LAYER_DEFAULTS, ref.layer_defaults()), run=run_layer_defaults)


@pytest.mark.rules(ref.TRANSFORMER)
@given(case=st.sampled_from([LayerCase(seed=0, kind="transformer", d_model=4, nhead=2, ff=8, L=1, S=2, batch=300,
                                       batch_first=first) for first in (False, True)]))
def test_transformer_wide_batch(conform, device, case):
    """A batch of 300, past CPython's cached small ints: src and tgt batch sizes that are equal are accepted as
    equal, whatever the int objects (a mutant compared them with `is not`)."""
    check_layer(conform, case, device)


@pytest.mark.rules(ref.TRANSFORMER_ERR, ref.TRANSFORMER_FEATURE_ERR)
@given(seed=seeds, batch_first=st.booleans(), batch=st.integers(1, 3), bad=st.sampled_from(["none", "src", "tgt"]))
def test_transformer_shape_errors(conform, device, seed, batch_first, batch, bad):
    case = LayerCase(seed=seed, kind="transformer", d_model=4, nhead=2, ff=8, L=3, S=4, batch=batch,
                     batch_first=batch_first, bad_feature=bad)
    conform.check(case, ref.shape_error_expectations(case), run=run_transformer_shapes)


@pytest.mark.rules(ref.ENC_NESTED_FLAG)
@given(data=st.data())
def test_use_nested_tensor_flag(conform, device, data):
    case = data.draw(layer_cases(device, ("encoder",)), label="case")
    # custom: the encoder_layer given is a user module, not a TransformerEncoderLayer
    case = dataclasses.replace(case, custom=data.draw(st.sampled_from([False, False, True]), label="custom layer"))
    conform.check(case, ref.nested_flag_expectations(case), run=run_encoder_use_nested)


@pytest.mark.rules(ref.ENC_ACT_ERR)
@given(activation=st.sampled_from(["relu", "gelu", "tanh", "silu", "GELU"]))
def test_activation_string(conform, device, activation):
    case = LayerCase(seed=0, kind="encoder_layer", d_model=4, nhead=2, ff=8, L=2, S=2, batch=1, activation=activation)
    conform.check(case, ref.activation_expectations(case), run=run_activation)


@pytest.mark.rules(ref.LAYER_NOT_TENSOR_MASK)
def test_mask_type_error(conform, device):
    case = LayerCase(seed=0, kind="encoder_layer", d_model=4, nhead=2, ff=8, L=3, S=3, batch=2)
    conform.check(case, ref.mask_type_expectations(case), run=run_layer_list_mask)

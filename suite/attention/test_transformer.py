"""TransformerEncoderLayer/Encoder/DecoderLayer/Decoder/Transformer against the layer formulas."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference.attention import layers as ref
from suite.attention.cases import LayerCase, layer_inputs
from suite.attention.strategies import layer_cases, seeds, steer_layer, steer_padding
from suite.attention.torch_side.layers import (
    layer_params, run_activation, run_encoder_use_nested, run_layer, run_transformer_shapes)


def check_layer(conform, case, device):
    inp, P = layer_inputs(case), layer_params(case)
    steer_layer(case, inp, P)
    conform.check(case, ref.expectations(case, inp, P), run=run_layer)


@pytest.mark.rules(ref.ENC_LAYER, ref.ENC_ACT, ref.ENC_MASKS, ref.ENC_FAST, ref.LAYER_DROPOUT_EVAL)
@given(data=st.data())
def test_encoder_layer(conform, device, data):
    check_layer(conform, data.draw(layer_cases(device, ("encoder_layer",)), label="case"), device)


@pytest.mark.rules(ref.ENC_STACK, ref.ENC_NESTED, ref.ENC_FAST, ref.LAYER_DROPOUT_EVAL)
@given(data=st.data())
def test_encoder_stack(conform, device, data):
    check_layer(conform, data.draw(layer_cases(device, ("encoder",)), label="case"), device)


@pytest.mark.rules(ref.ENC_NESTED, ref.ENC_STACK)
@given(seed=seeds, L=st.integers(1, 6), lengths=st.lists(st.integers(1, 6), min_size=1, max_size=3),
       final_norm=st.booleans(), num_layers=st.integers(1, 2), activation=st.sampled_from(["relu", "gelu"]),
       mask_check=st.booleans(), kpm_kind=st.sampled_from(["bool", "float"]))
def test_encoder_nested_conversion(conform, device, seed, L, lengths, final_norm, num_layers, activation, mask_check,
                                   kpm_kind):
    """Eval + no_grad + left-aligned src_key_padding_mask: the encoder converts to a nested tensor and back."""
    lengths = tuple(min(n, L) for n in lengths)
    case = LayerCase(seed=seed, kind="encoder", d_model=4, nhead=2, ff=8, L=L, S=L, batch=len(lengths),
                     activation=activation, num_layers=num_layers, final_norm=final_norm, kpm_lengths=lengths,
                     kpm_kind=kpm_kind, mask_check=mask_check, path="eval_nograd")
    steer_padding(L, lengths)
    check_layer(conform, case, device)


@pytest.mark.rules(ref.DEC_LAYER, ref.DEC_STACK, ref.DEC_CAUSAL, ref.DEC_MEM_CAUSAL, ref.LAYER_DROPOUT_EVAL)
@given(data=st.data())
def test_decoder(conform, device, data):
    check_layer(conform, data.draw(layer_cases(device, ("decoder_layer", "decoder")), label="case"), device)


@pytest.mark.rules(ref.TRANSFORMER, ref.LAYER_DROPOUT_EVAL)
@given(data=st.data())
def test_transformer(conform, device, data):
    check_layer(conform, data.draw(layer_cases(device, ("transformer",)), label="case"), device)


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
    conform.check(case, ref.nested_flag_expectations(case), run=run_encoder_use_nested)


@pytest.mark.rules(ref.ENC_ACT_ERR)
@given(activation=st.sampled_from(["relu", "gelu", "tanh", "silu", "GELU"]))
def test_activation_string(conform, device, activation):
    case = LayerCase(seed=0, kind="encoder_layer", d_model=4, nhead=2, ff=8, L=2, S=2, batch=1, activation=activation)
    conform.check(case, ref.activation_expectations(case), run=run_activation)

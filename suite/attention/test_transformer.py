"""TransformerEncoderLayer/Encoder/DecoderLayer/Decoder/Transformer against the layer formulas."""
from __future__ import annotations

import pytest
from hypothesis import event, given, target
from hypothesis import strategies as st

import reference.attention as ref
from suite.attention import torch_side as ts
from suite.attention.divergences import nested_conversion_expected
from suite.attention.strategies import layer_cases, seeds
from conform.tolerance import EXACT


def check_layer(conform, case, device, rules):
    inp = ts.make_layer_inputs(case)
    P = ts.layer_params(case)
    expected = ref.layer_reference(case, inp, P)
    tol = ref.layer_tol(case, inp, P)
    _, cond = ref.layer_reference(case, inp, P, with_cond=True)
    target(cond.M, label="score magnitude")
    actual = ts.layer_forward(case, device)
    if case.dropout:
        rules = list(rules) + [ref.LAYER_DROPOUT_EVAL]
    for r in rules:
        conform.check(r, case, expected, actual, tol, torch_fn=ts.layer_forward)


def _common(case) -> list[str]:
    rules = [ref.ENC_ACT] if case.activation != "relu" else []
    rules += [ref.ENC_MASKS] if case.src_mask != "none" or case.kpm_lengths else []
    return rules


@pytest.mark.rules(ref.ENC_LAYER, ref.ENC_ACT, ref.ENC_MASKS, ref.ENC_FAST, ref.LAYER_DROPOUT_EVAL)
@given(data=st.data())
def test_encoder_layer(conform, device, data):
    case = data.draw(layer_cases(device, ("encoder_layer",)))
    # the fused path has its own rule (and a registered divergence for float masks)
    rules = [ref.ENC_FAST] if case.path == "eval_nograd" else [ref.ENC_LAYER] + _common(case)
    check_layer(conform, case, device, rules)


@pytest.mark.rules(ref.ENC_STACK, ref.ENC_NESTED, ref.ENC_FAST, ref.LAYER_DROPOUT_EVAL)
@given(data=st.data())
def test_encoder_stack(conform, device, data):
    case = data.draw(layer_cases(device, ("encoder",)))
    nested = nested_conversion_expected(case)
    event(f"nested conversion: {nested}")
    fast_layers = case.path == "eval_nograd" and not nested
    check_layer(conform, case, device, [ref.ENC_NESTED] if nested else ([ref.ENC_FAST] if fast_layers else [ref.ENC_STACK]))


@pytest.mark.rules(ref.ENC_NESTED, ref.ENC_STACK)
@given(seed=seeds, L=st.integers(1, 6), lengths=st.lists(st.integers(1, 6), min_size=1, max_size=3),
       final_norm=st.booleans(), num_layers=st.integers(1, 2), activation=st.sampled_from(["relu", "gelu"]),
       mask_check=st.booleans(), kpm_kind=st.sampled_from(["bool", "float"]))
def test_encoder_nested_conversion(conform, device, seed, L, lengths, final_norm, num_layers, activation, mask_check,
                                   kpm_kind):
    """Eval + no_grad + left-aligned src_key_padding_mask: the encoder converts to a nested tensor and back."""
    lengths = tuple(min(n, L) for n in lengths)
    case = ts.LayerCase(seed=seed, kind="encoder", d_model=4, nhead=2, ff=8, L=L, S=L, batch=len(lengths),
                        activation=activation, num_layers=num_layers, final_norm=final_norm, kpm_lengths=lengths,
                        kpm_kind=kpm_kind, mask_check=mask_check, path="eval_nograd")
    target(float(L * len(lengths) - sum(lengths)), label="padded positions")
    check_layer(conform, case, device, [ref.ENC_NESTED] if nested_conversion_expected(case) else [ref.ENC_STACK])


@pytest.mark.rules(ref.DEC_LAYER, ref.DEC_STACK, ref.DEC_CAUSAL, ref.DEC_MEM_CAUSAL, ref.LAYER_DROPOUT_EVAL)
@given(data=st.data())
def test_decoder(conform, device, data):
    case = data.draw(layer_cases(device, ("decoder_layer", "decoder")))
    rules = [ref.DEC_LAYER] if case.kind == "decoder_layer" else [ref.DEC_STACK]
    rules += [ref.DEC_CAUSAL] if case.src_mask == "causal" and case.tgt_is_causal is not False else []
    rules += [ref.DEC_MEM_CAUSAL] if case.memory_causal else []
    check_layer(conform, case, device, rules)


@pytest.mark.rules(ref.TRANSFORMER, ref.LAYER_DROPOUT_EVAL)
@given(data=st.data())
def test_transformer(conform, device, data):
    case = data.draw(layer_cases(device, ("transformer",)))
    check_layer(conform, case, device, [ref.TRANSFORMER])


@pytest.mark.rules(ref.TRANSFORMER_ERR, ref.TRANSFORMER_FEATURE_ERR)
@given(seed=seeds, batch_first=st.booleans(), batch=st.integers(1, 3), bad=st.sampled_from(["none", "src", "tgt"]))
def test_transformer_shape_errors(conform, device, seed, batch_first, batch, bad):
    case = ts.LayerCase(seed=seed, kind="transformer", d_model=4, nhead=2, ff=8, L=3, S=4, batch=batch,
                        batch_first=batch_first, bad_feature=bad)
    rule = ref.TRANSFORMER_ERR if bad == "none" else ref.TRANSFORMER_FEATURE_ERR
    conform.check(rule, case, ref.transformer_shape_reference(case),
                  ts.transformer_shape_check(case, device), torch_fn=ts.transformer_shape_check)


@pytest.mark.rules(ref.ENC_NESTED_FLAG)
@given(data=st.data())
def test_use_nested_tensor_flag(conform, device, data):
    case = data.draw(layer_cases(device, ("encoder",)))
    conform.check(ref.ENC_NESTED_FLAG, case, ref.nested_flag_reference(case), ts.encoder_use_nested(case, device),
                  EXACT, torch_fn=ts.encoder_use_nested)


@pytest.mark.rules(ref.ENC_ACT_ERR)
@given(activation=st.sampled_from(["relu", "gelu", "tanh", "silu", "GELU"]))
def test_activation_string(conform, device, activation):
    case = ts.LayerCase(seed=0, kind="encoder_layer", d_model=4, nhead=2, ff=8, L=2, S=2, batch=1, activation=activation)
    conform.check(ref.ENC_ACT_ERR, case, ref.activation_error_reference(case), ts.activation_error(case, device),
                  torch_fn=ts.activation_error)

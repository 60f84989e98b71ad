"""BatchNorm backward against the analytic formulas (numpy float64), in train and eval.
Rules: reference/norm.py (norm.backward.*)."""
from __future__ import annotations

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from reference import norm as ref
from suite.norm import torch_side as ts
from suite.norm.strategies import bn_cases
from suite.norm.tolerances import eval_grad_tols, grad_bias_tol, grad_input_tol, grad_weight_tol


@pytest.mark.rules(ref.BACKWARD_INPUT, ref.BACKWARD_PARAMS)
@given(data=st.data())
def test_backward_train(conform, device, data):
    check_backward(conform, device, data.draw(bn_cases(device, backward=True, training=True)))


@pytest.mark.rules(ref.BACKWARD_EVAL, ref.BACKWARD_INPUT, ref.BACKWARD_PARAMS)
@given(data=st.data())
def test_backward_eval(conform, device, data):
    """Eval mode: running stats are constants when tracked; without them, batch statistics as in training."""
    check_backward(conform, device, data.draw(bn_cases(device, backward=True, training=False)))


def check_backward(conform, device, case):
    inputs = ts.make_bn_inputs(case)
    x, dy = inputs["x"], inputs["dy"]
    w = inputs["weight"] if case.affine else None
    expected, actual = ref.bn_forward(case, inputs), ts.run_bn(case, device)
    use_batch = case.training or not case.track
    event(f"{'batch' if use_batch else 'running'} stats, {case.dtype}")
    if use_batch:
        tols = (grad_input_tol(case.dtype, x, dy, case.eps, w), grad_weight_tol(case.dtype, x, dy, case.eps),
                grad_bias_tol(case.dtype, x, dy))
        rules = (ref.BACKWARD_INPUT, ref.BACKWARD_PARAMS, ref.BACKWARD_PARAMS)
    else:
        tols = eval_grad_tols(case.dtype, x, dy, case.eps, w, inputs["running_mean"], inputs["running_var"])
        rules = (ref.BACKWARD_EVAL,) * 3
    for field, tol, rule, fn in zip(("grad_input", "grad_weight", "grad_bias"), tols, rules,
                                    (ts.bn_grad_input, ts.bn_grad_weight, ts.bn_grad_bias)):
        if field in expected or field in actual:
            conform.check(rule, case, ts.select(expected, (field,)), ts.select(actual, (field,)), tol, fn)

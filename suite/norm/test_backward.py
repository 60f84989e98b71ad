"""BatchNorm backward against the analytic formulas (numpy float64), in train and eval.
Rules: reference/norm/backward.py."""
from __future__ import annotations

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from reference.norm import backward as ref
from suite.norm.cases import make_bn_inputs
from suite.norm.strategies import bn_cases
from suite.norm.torch_side.batchnorm import run_bn


@pytest.mark.rules(ref.BACKWARD_INPUT, ref.BACKWARD_PARAMS)
@given(data=st.data())
def test_backward_train(conform, device, data):
    check_backward(conform, data.draw(bn_cases(device, backward=True, training=True)))


@pytest.mark.rules(ref.BACKWARD_EVAL, ref.BACKWARD_INPUT, ref.BACKWARD_PARAMS)
@given(data=st.data())
def test_backward_eval(conform, device, data):
    """Eval mode: running stats are constants when tracked; without them, batch statistics as in training."""
    check_backward(conform, data.draw(bn_cases(device, backward=True, training=False)))


def check_backward(conform, case):
    event(f"{'batch' if case.training or not case.track else 'running'} stats, {case.dtype}")
    conform.check(case, ref.expectations(case, make_bn_inputs(case)), run=run_bn)

"""InstanceNorm, GroupNorm, LayerNorm forward formulas.  Rules: reference/norm.py."""
from __future__ import annotations

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from reference import norm as ref
from suite.norm import torch_side as ts
from suite.norm.strategies import other_norm_cases
from suite.norm.tolerances import normalize_tol


def rule_and_tol(case, inputs):
    x = inputs["x"]
    w = inputs["weight"] if case.affine else None
    b = inputs["bias"] if case.affine else None
    if case.kind.startswith("InstanceNorm"):
        return ref.INSTANCE_FORWARD, normalize_tol(case.dtype, x, tuple(range(2, x.ndim)), case.eps, w, b)
    if case.kind == "GroupNorm":
        if x.shape[1] % case.groups:
            return ref.GROUP_DIVISIBLE, None
        g = x.reshape(x.shape[0], case.groups, -1)
        return ref.GROUP_FORWARD, normalize_tol(case.dtype, g, (2,), case.eps, w, b)
    axes = tuple(range(x.ndim - case.norm_dims, x.ndim))
    return ref.LAYER_FORWARD, normalize_tol(case.dtype, x, axes, case.eps, w, b)


@pytest.mark.parametrize("kind", [
    pytest.param("InstanceNorm1d", marks=pytest.mark.rules(ref.INSTANCE_FORWARD)),
    pytest.param("InstanceNorm2d", marks=pytest.mark.rules(ref.INSTANCE_FORWARD)),
    pytest.param("InstanceNorm3d", marks=pytest.mark.rules(ref.INSTANCE_FORWARD)),
    pytest.param("GroupNorm", marks=pytest.mark.rules(ref.GROUP_FORWARD, ref.GROUP_DIVISIBLE)),
    pytest.param("LayerNorm", marks=pytest.mark.rules(ref.LAYER_FORWARD))])
@settings(max_examples=max(1, settings.default.max_examples // 2))  # five kinds, ~20 ms an example
@given(data=st.data())
def test_other_norms(conform, device, kind, data):
    case = data.draw(other_norm_cases(device, kinds=(kind,)))
    inputs = ts.make_other_inputs(case)
    rule, tol = rule_and_tol(case, inputs)
    event(rule)
    expected = ref.other_norm(case, inputs)
    actual = ts.run_other_norm(case, device)
    if tol is None:
        conform.check(rule, case, expected, actual, torch_fn=ts.run_other_norm)
    else:
        conform.check(rule, case, expected, actual, tol, ts.run_other_norm)

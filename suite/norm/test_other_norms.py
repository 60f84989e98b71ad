"""InstanceNorm, GroupNorm, LayerNorm forward formulas.  Rules: reference/norm.py."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from reference import norm as ref
from conform.outcome import Raised
from suite.norm import torch_side as ts
from suite.norm.strategies import other_norm_cases
from suite.norm.tolerances import bn_output_tol, instance_running_tols, normalize_tol, other_grad_tols


def rule_and_tol(case, inputs):
    x = inputs["x"]
    w = inputs["weight"] if case.affine else None
    b = inputs["bias"] if case.affine else None
    if case.kind.startswith("InstanceNorm"):
        if not case.training and case.track:  # running stats, per channel as in BatchNorm eval
            return ref.INSTANCE_RUNNING, bn_output_tol(case.dtype, x, case.eps, w, b,
                                                       (inputs["running_mean"], inputs["running_var"]))
        if int(np.prod(x.shape[2:])) == 1:
            return ref.INSTANCE_SPATIAL, None
        return ref.INSTANCE_FORWARD, normalize_tol(case.dtype, x, tuple(range(2, x.ndim)), case.eps, w, b)
    if case.kind == "GroupNorm":
        if x.shape[1] % case.groups:
            return ref.GROUP_DIVISIBLE, None
        g = x.reshape(x.shape[0], case.groups, -1)
        return ref.GROUP_FORWARD, normalize_tol(case.dtype, g, (2,), case.eps, w, b)
    axes = tuple(range(x.ndim - case.norm_dims, x.ndim))
    return ref.LAYER_FORWARD, normalize_tol(case.dtype, x, axes, case.eps, w, b)


@pytest.mark.parametrize("kind", [
    pytest.param("InstanceNorm1d", marks=pytest.mark.rules(ref.INSTANCE_FORWARD, ref.INSTANCE_RUNNING, ref.INSTANCE_SPATIAL)),
    pytest.param("InstanceNorm2d", marks=pytest.mark.rules(ref.INSTANCE_FORWARD, ref.INSTANCE_RUNNING)),
    pytest.param("InstanceNorm3d", marks=pytest.mark.rules(ref.INSTANCE_FORWARD, ref.INSTANCE_RUNNING)),
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
        return
    conform.check(rule, case, ts.select(expected, ("y",)), ts.select(actual, ("y",)), tol, ts.other_output)
    if case.kind.startswith("InstanceNorm") and case.track:
        mean_tol, var_tol = instance_running_tols(case.dtype, inputs["x"], case.eps, inputs["running_mean"],
                                                  inputs["running_var"])
        for field, t, fn in (("running_mean", mean_tol, ts.other_running_mean),
                             ("running_var", var_tol, ts.other_running_var)):
            conform.check(ref.INSTANCE_RUNNING, case, ts.select(expected, (field,)), ts.select(actual, (field,)),
                          t, fn)


@pytest.mark.parametrize("kinds", [("InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d"), ("GroupNorm",), ("LayerNorm",)],
                         ids=["InstanceNorm", "GroupNorm", "LayerNorm"])
@pytest.mark.rules(ref.OTHER_BACKWARD)
@settings(max_examples=max(1, settings.default.max_examples // 2))  # three kinds, ~25 ms an example
@given(data=st.data())
def test_other_norms_backward(conform, device, kinds, data):
    # training: the gradient of the instance-statistics formula (eval with running stats is BatchNorm's eval case)
    case = replace(data.draw(other_norm_cases(device, kinds=kinds)), backward=True, training=True)
    inputs = ts.make_other_inputs(case)
    expected = ref.other_norm_backward(case, inputs)
    event("error" if isinstance(expected, Raised) else case.dtype)
    actual = ts.run_other_norm(case, device)
    x = inputs["x"]
    if isinstance(expected, Raised):
        conform.check(ref.OTHER_BACKWARD, case, expected, ts.select(actual, ("grad_input",)),
                      torch_fn=ts.other_grad_input)
        return
    xr, axes, _ = ref.norm_groups(case, x)
    n = int(np.prod([xr.shape[a] for a in axes]))
    groups = xr.reshape(-1, n)
    w = inputs["weight"] if case.affine else None
    tols = other_grad_tols(case.dtype, groups, x, inputs["dy"], case.eps, w, inputs["weight"].size)
    for field, tol, fn in zip(("grad_input", "grad_weight", "grad_bias"), tols,
                              (ts.other_grad_input, ts.other_grad_weight, ts.other_grad_bias)):
        if field in expected or field in actual:
            conform.check(ref.OTHER_BACKWARD, case, ts.select(expected, (field,)), ts.select(actual, (field,)),
                          tol, fn)

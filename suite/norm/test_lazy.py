"""LazyBatchNorm{1,2,3}d: shapes inferred at the first call.  Rules: reference/norm.py (norm.lazy.*)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference import norm as ref
from conform.tolerance import EXACT
from suite.norm import torch_side as ts
from suite.norm.strategies import bn_cases
from suite.norm.tolerances import bn_output_tol, running_mean_tol, running_var_tol

LAZY = ("LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d")


@pytest.mark.rules(ref.LAZY_INFER, ref.LAZY_CLASS, ref.LAZY_FORWARD)
@given(data=st.data())
def test_lazy_first_call(conform, device, data):
    case = data.draw(bn_cases(device, kinds=LAZY))
    inputs = ts.make_bn_inputs(case)
    expected, actual = ref.lazy_forward(case, inputs), ts.run_lazy(case, device)
    conform.check(ref.LAZY_CLASS, case, ts.select(expected, ("class",)), ts.select(actual, ("class",)), EXACT,
                  ts.lazy_class)
    conform.check(ref.LAZY_INFER, case, ts.select(expected, ts.LAZY_STRUCTURE), ts.select(actual, ts.LAZY_STRUCTURE),
                  EXACT, ts.lazy_structure)
    x, C = inputs["x"], inputs["x"].shape[1]
    use_batch = case.training or not case.track
    w = np.ones(C) if case.affine else None
    running = None if use_batch else (np.zeros(C), np.ones(C))
    conform.check(ref.LAZY_FORWARD, case, ts.select(expected, ("y",)), ts.select(actual, ("y",)),
                  bn_output_tol(case.dtype, x, case.eps, w, None, running), ts.lazy_output)
    if case.track:
        for field, tol in (("running_mean", running_mean_tol(case.dtype, x, case.eps, np.zeros(C))),
                           ("running_var", running_var_tol(case.dtype, x, case.eps, np.ones(C))),
                           ("num_batches_tracked", EXACT)):
            conform.check(ref.LAZY_FORWARD, case, ts.select(expected, (field,)), ts.select(actual, (field,)), tol,
                          ts.lazy_values)

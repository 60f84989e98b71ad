"""LazyBatchNorm{1,2,3}d: shapes inferred at the first call.  Rules: reference/norm/lazy.py."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference.norm import lazy as ref
from suite.norm.cases import make_bn_inputs
from suite.norm.strategies import bn_cases
from suite.norm.torch_side.lazy import run_lazy

LAZY = ("LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d")


@pytest.mark.rules(ref.LAZY_INFER, ref.LAZY_CLASS, ref.LAZY_FORWARD)
@given(data=st.data())
def test_lazy_first_call(conform, device, data):
    case = data.draw(bn_cases(device, kinds=LAZY))
    conform.check(case, ref.expectations(case, make_bn_inputs(case)), run=run_lazy)

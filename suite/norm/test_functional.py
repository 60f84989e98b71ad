"""The norm functionals and __torch_function__.  Rule: reference/norm/functional.py."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference.norm import functional as ref
from suite.norm.strategies import dispatch_cases
from suite.norm.torch_side.functional import run_dispatch


@pytest.mark.parametrize("func", sorted(ref.SIGNATURES))
@pytest.mark.rules(ref.TORCH_FUNCTION)
@settings(max_examples=max(1, settings.default.max_examples // 10))  # six functionals; no computation happens
@given(data=st.data())
def test_torch_function(conform, device, func, data):
    case = data.draw(dispatch_cases(func))
    conform.check(case, ref.expectations(case), run=run_dispatch)

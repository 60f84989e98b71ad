"""replicate: module trees, parameters, buffers and the replica marker (reference/parallel/replicate.py)."""
from __future__ import annotations

import pytest
from hypothesis import given

from reference.parallel import replicate as ref
from suite.parallel import strategies as S
from suite.parallel.cases import replicate_values, replicate_view
from suite.parallel.torch_side.replicate import run_replicate, run_zero_grad


@pytest.mark.rules(*ref.VIEWS)
@given(case=S.replicate_cases())
def test_replicate(conform, device, case):
    conform.check(case, ref.expectations(case, replicate_values, replicate_view), run=run_replicate)


@pytest.mark.rules(ref.REPLICATE_ZERO_GRAD)
@given(case=S.replicate_cases())
def test_replicate_zero_grad_warning(conform, device, case):
    conform.check(case, ref.zero_grad_expectations(case), run=run_zero_grad)

"""replicate: module trees, parameters, buffers and the replica marker (reference/parallel.py, replicate rules)."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference import parallel as ref
from suite.parallel import strategies as S
from suite.parallel import torch_side as ts
from suite.parallel.cases import replicate_view

VIEWS = [(ref.REPLICATE_STRUCTURE, "structure", ts.run_replicate_structure),
         (ref.REPLICATE_PARAMS, "params", ts.run_replicate_params),
         (ref.REPLICATE_BUFFERS, "buffers", ts.run_replicate_buffers),
         (ref.REPLICATE_IS_REPLICA, "is_replica", ts.run_replicate_is_replica)]


@pytest.mark.parametrize("rule_id,view,torch_fn", [pytest.param(*v, marks=pytest.mark.rules(v[0]), id=v[1])
                                                   for v in VIEWS])
@given(data=st.data())
def test_replicate(conform, device, rule_id, view, torch_fn, data):
    case = data.draw(S.replicate_cases())
    expected = replicate_view(ref.replicate_outcome(case), view)
    conform.check(rule_id, case, expected, torch_fn(case, device), torch_fn=torch_fn)


@pytest.mark.rules(ref.REPLICATE_ZERO_GRAD)
@given(case=S.replicate_cases())
def test_replicate_zero_grad_warning(conform, device, case):
    conform.check(ref.REPLICATE_ZERO_GRAD, case, ref.zero_grad_outcome(case), ts.run_zero_grad(case, device),
                  torch_fn=ts.run_zero_grad)

"""scatter_kwargs: padding of positional inputs and kwargs (reference/parallel.py, scatter_kwargs rules)."""
from __future__ import annotations

import pytest
from hypothesis import event, given

from reference import parallel as ref
from suite.parallel import strategies as S
from suite.parallel import torch_side as ts


@pytest.mark.rules(ref.KWARGS_PAD)
@given(case=S.scatter_kwargs_cases())
def test_scatter_kwargs_pad(conform, device, case):
    expected = ref.scatter_kwargs_outcome(case)
    event(f"{len(expected['inputs'][1])} replicas")
    conform.check(ref.KWARGS_PAD, case, expected, ts.run_scatter_kwargs(case, device), torch_fn=ts.run_scatter_kwargs)


@pytest.mark.rules(ref.KWARGS_NON_TENSOR)
@given(case=S.scatter_kwargs_cases(non_tensor=True))
def test_scatter_kwargs_non_tensor(conform, device, case):
    conform.check(ref.KWARGS_NON_TENSOR, case, ref.scatter_kwargs_outcome(case), ts.run_scatter_kwargs(case, device),
                  torch_fn=ts.run_scatter_kwargs)

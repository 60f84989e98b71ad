"""scatter_kwargs: padding of positional inputs and kwargs (reference/parallel/scatter_kwargs.py)."""
from __future__ import annotations

import pytest
from hypothesis import event, given

from reference.parallel import scatter_kwargs as ref
from suite.parallel import strategies as S
from suite.parallel.cases import leaf_values
from suite.parallel.torch_side.scatter_gather import run_scatter_kwargs


@pytest.mark.rules(ref.KWARGS_PAD)
@given(case=S.scatter_kwargs_cases())
def test_scatter_kwargs_pad(conform, device, case):
    expects = ref.expectations(case, leaf_values)
    event(f"{len(expects[0].expected['inputs'][1])} replicas")
    conform.check(case, expects, run=run_scatter_kwargs)


@pytest.mark.rules(ref.KWARGS_NON_TENSOR)
@given(case=S.scatter_kwargs_cases(non_tensor=True))
def test_scatter_kwargs_non_tensor(conform, device, case):
    conform.check(case, ref.expectations(case, leaf_values), run=run_scatter_kwargs)

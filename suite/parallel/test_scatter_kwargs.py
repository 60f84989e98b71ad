"""scatter_kwargs: padding of positional inputs and kwargs (reference/parallel/scatter_kwargs.py)."""
from __future__ import annotations

import pytest
from hypothesis import event, example, given

from reference.parallel import scatter_kwargs as ref
from suite.parallel import strategies as S
from suite.parallel.cases import ScatterKwargsCase, leaf_values
from suite.parallel.torch_side.scatter_gather import run_scatter_kwargs


@pytest.mark.rules(ref.KWARGS_PAD)
# two positional tensors in two chunks, kwargs in one: exactly one {} pads the kwargs (2 - 1, where 2 ^ 1 = 3)
@example(case=ScatterKwargsCase(inputs=("seq", "tuple", (("T", 1, (2,)), ("T", 2, (2,)))),
                                kwargs=("map", "dict", (("a", ("T", 3, (1,))),)), n_devices=2))
@given(case=S.scatter_kwargs_cases())
def test_scatter_kwargs_pad(conform, device, case):
    expects = ref.expectations(case, leaf_values)
    event(f"{len(expects[0].expected['inputs'][1])} replicas")
    conform.check(case, expects, run=run_scatter_kwargs)


@pytest.mark.rules(ref.KWARGS_NON_TENSOR)
@given(case=S.scatter_kwargs_cases(non_tensor=True))
def test_scatter_kwargs_non_tensor(conform, device, case):
    conform.check(case, ref.expectations(case, leaf_values), run=run_scatter_kwargs)

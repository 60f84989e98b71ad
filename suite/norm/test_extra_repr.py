"""How the norm layers print.  Rule: reference/norm/extra_repr.py."""
from __future__ import annotations

import pytest
from hypothesis import event, example, given, settings

from reference.norm import extra_repr as ref
from suite.norm.cases import ReprCase
from suite.norm.strategies import repr_cases
from suite.norm.torch_side.extra_repr import run_repr


@pytest.mark.rules(ref.REPR_ARGUMENTS)
@settings(max_examples=max(1, settings.default.max_examples // 4))  # twelve kinds, ~30 ms an example
@example(case=ReprCase(kind="BatchNorm2d", sizes=(4,), options=(("eps", 1e-3), ("momentum", None))))
@example(case=ReprCase(kind="LayerNorm", sizes=((2, 3),), options=(("eps", 1e-8), ("elementwise_affine", False))))
@example(case=ReprCase(kind="GroupNorm", sizes=(2, 6), options=(("affine", False),)))
@example(case=ReprCase(kind="RMSNorm", sizes=(5,)))
@example(case=ReprCase(kind="LocalResponseNorm", sizes=(2,), options=(("beta", 1.0),)))
@example(case=ReprCase(kind="InstanceNorm1d", sizes=(3,), options=(("affine", True), ("momentum", 0.5))))
@example(case=ReprCase(kind="CrossMapLRN2d", sizes=(3,), options=(("alpha", 0.5), ("k", 2))))
@given(case=repr_cases())
def test_repr(conform, device, case):
    event(case.kind)
    conform.check(case, ref.expectations(case), run=run_repr)

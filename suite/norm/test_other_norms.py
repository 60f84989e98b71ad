"""InstanceNorm, GroupNorm, LayerNorm forward formulas and backward.  Rules: reference/norm/other_norms.py."""
from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from conform.outcome import Raised
from reference.norm import other_norms as ref
from suite.norm.cases import OtherNormCase, make_other_inputs
from suite.norm.strategies import other_norm_cases
from suite.norm.torch_side.other_norms import run_other_norm


INSTANCE_VARIANTS = (ref.INSTANCE_RANK, ref.INSTANCE_UNBATCHED, ref.INSTANCE_CHANNELS, ref.LAZY_INSTANCE)


@pytest.mark.parametrize("kind", [
    pytest.param("InstanceNorm1d", marks=pytest.mark.rules(ref.INSTANCE_FORWARD, ref.INSTANCE_RUNNING, ref.INSTANCE_SPATIAL,
                                                           *INSTANCE_VARIANTS)),
    pytest.param("InstanceNorm2d", marks=pytest.mark.rules(ref.INSTANCE_FORWARD, ref.INSTANCE_RUNNING, *INSTANCE_VARIANTS)),
    pytest.param("InstanceNorm3d", marks=pytest.mark.rules(ref.INSTANCE_FORWARD, ref.INSTANCE_RUNNING, *INSTANCE_VARIANTS)),
    pytest.param("GroupNorm", marks=pytest.mark.rules(ref.GROUP_FORWARD, ref.GROUP_DIVISIBLE)),
    pytest.param("LayerNorm", marks=pytest.mark.rules(ref.LAYER_FORWARD))])
@settings(max_examples=max(1, settings.default.max_examples // 2))  # five kinds, ~20 ms an example
@given(data=st.data())
def test_other_norms(conform, device, kind, data):
    case = data.draw(other_norm_cases(device, kinds=(kind,)))
    expects = ref.expectations(case, make_other_inputs(case))
    event(expects[0].rule)
    conform.check(case, expects, run=run_other_norm)


@pytest.mark.parametrize("kinds", [("InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d"), ("GroupNorm",), ("LayerNorm",)],
                         ids=["InstanceNorm", "GroupNorm", "LayerNorm"])
@pytest.mark.rules(ref.OTHER_BACKWARD)
@settings(max_examples=max(1, settings.default.max_examples // 2))  # three kinds, ~25 ms an example
@given(data=st.data())
def test_other_norms_backward(conform, device, kinds, data):
    # training: the gradient of the instance-statistics formula (eval with running stats is BatchNorm's eval case)
    case = replace(data.draw(other_norm_cases(device, kinds=kinds, variants=False)), backward=True, training=True)
    expects = ref.backward_expectations(case, make_other_inputs(case))
    event("error" if isinstance(expects[0].expected, Raised) else case.dtype)
    conform.check(case, expects, run=run_other_norm)


@pytest.mark.rules(ref.INSTANCE_RANK)
@pytest.mark.parametrize("case", [
    OtherNormCase(kind="LazyInstanceNorm1d", shape=(2, 3), batched=False),  # a 1D (C,) input
    OtherNormCase(kind="LazyInstanceNorm3d", shape=(2, 3), batched=False, affine=False, track=True),
    OtherNormCase(kind="LazyInstanceNorm2d", shape=(2, 3), batched=False, affine=False)],  # no parameters: ValueError
    ids=["1d-affine", "3d-tracked", "2d-plain"])
def test_lazy_instance_low_rank(conform, device, case):
    """The Lazy forms' first call on a 1D input (other_norm_cases reaches a wrong rank only above): the documented
    ValueError of the rank check (norm-lazy-low-rank-index-error where the module has parameters or stats)."""
    conform.check(case, ref.expectations(case, make_other_inputs(case)), run=run_other_norm)


@pytest.mark.rules(ref.GROUP_RANK)
def test_group_low_rank(conform, device):
    """GroupNorm on a 1D (C,) input (other_norm_cases draws (N, C, *) only): the sample x[0] of a (2, 4) draw."""
    case = OtherNormCase(kind="GroupNorm", shape=(2, 4), groups=2, batched=False)
    conform.check(case, ref.expectations(case, make_other_inputs(case)), run=run_other_norm)

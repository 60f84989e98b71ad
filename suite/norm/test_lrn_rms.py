"""LocalResponseNorm, CrossMapLRN2d and RMSNorm: forward and backward.  Rules: reference/norm/lrn.py, rms.py."""
from __future__ import annotations

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from reference.norm import lrn, rms
from suite.norm.cases import make_lrn_inputs, make_rms_inputs
from suite.norm.strategies import lrn_cases, rms_cases
from suite.norm.torch_side.lrn import run_lrn
from suite.norm.torch_side.rms import run_rms


@pytest.mark.parametrize("backward", [False, True], ids=["forward", "backward"])
@pytest.mark.rules(lrn.LRN_FORWARD, lrn.LRN_BACKWARD, lrn.LRN_RANK, lrn.CROSSMAP_FORWARD, lrn.CROSSMAP_BACKWARD)
@settings(max_examples=max(1, settings.default.max_examples // 4))  # two parametrizations, ~25 ms an example
@given(data=st.data())
def test_lrn(conform, device, backward, data):
    case = data.draw(lrn_cases(backward=backward))
    expects = lrn.expectations(case, make_lrn_inputs(case))
    event(expects[0].rule)
    conform.check(case, expects, run=run_lrn)


@pytest.mark.parametrize("backward", [False, True], ids=["forward", "backward"])
@pytest.mark.rules(rms.RMS_CONSTRUCT, rms.RMS_FORWARD, rms.RMS_EPS_DEFAULT, rms.RMS_BACKWARD)
@settings(max_examples=max(1, settings.default.max_examples // 4))  # two parametrizations, ~25 ms an example
@given(data=st.data())
def test_rms(conform, device, backward, data):
    case = data.draw(rms_cases(device, backward=backward))
    expects = rms.expectations(case, make_rms_inputs(case))
    event(f"{expects[-1].rule} {case.dtype}")
    conform.check(case, expects, run=run_rms)

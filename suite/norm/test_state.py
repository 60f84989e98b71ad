"""Loading older state dicts into norm layers.  Rules: reference/norm/state.py."""
from __future__ import annotations

import pytest
from hypothesis import event, example, given, settings

from reference.norm import state as ref
from suite.norm.cases import LoadCase, make_load_inputs
from suite.norm.strategies import load_cases
from suite.norm.torch_side.state import run_load


@pytest.mark.rules(ref.STATE_LEGACY_COUNTER, ref.STATE_INSTANCE_RUNNING)
@settings(max_examples=max(1, settings.default.max_examples // 4))  # ~5 ms an example; few distinct states
@given(case=load_cases())
# a layer built on the meta device (no values of its own) takes an old checkpoint by assignment: its counter is the
# default 0
@example(case=LoadCase(kind="BatchNorm2d", num_features=2, track=True, version=1, with_counter=False, meta=True))
def test_load_state_dict(conform, device, case):
    expects = ref.expectations(case, make_load_inputs(case))
    event(f"{case.kind[:-2]} version={case.version}")
    conform.check(case, expects, run=run_load)

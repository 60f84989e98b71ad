"""replicate: module trees, parameters, buffers and the replica marker (reference/parallel/replicate.py)."""
from __future__ import annotations

import pytest
from hypothesis import example, given

from reference.parallel import replicate as ref
from suite.parallel import strategies as S
from suite.parallel.cases import (ModSpec, ReplicateCase, ScriptReplicateCase, dp_inputs, replicate_values,
                                  replicate_view)
from suite.parallel.torch_side.replicate import run_replicate, run_replicate_script, run_zero_grad


@pytest.mark.rules(*ref.VIEWS)
@given(case=S.replicate_cases())
# a diamond: the root's second child was met below its first, so the ScriptModule check skips it (memo)
@example(case=ReplicateCase(modules=(ModSpec(children=(("c0", 1), ("c1", 2))), ModSpec(children=(("c0", 2),)),
                                     ModSpec(params=(("p0", 2),))), n_devices=2))
# complex parameters (one tied into a real module), copied and detached: replicate sends them through the
# transport as real views and turns them back into complex tensors
@example(case=ReplicateCase(modules=(ModSpec(params=(("p0", 3),), children=(("c0", 1),), complex_params=True),
                                     ModSpec(params=(("p0", 2),), ties=(("t0", 0, "p0"),))), n_devices=3))
@example(case=ReplicateCase(modules=(ModSpec(params=(("p0", 3),), buffers=(("b0", 2),), complex_params=True),),
                            n_devices=2, detach=True))
def test_replicate(conform, device, case):
    conform.check(case, ref.expectations(case, replicate_values, replicate_view), run=run_replicate)


@pytest.mark.rules(ref.REPLICATE_ZERO_GRAD)
@given(case=S.replicate_cases())
def test_replicate_zero_grad_warning(conform, device, case):
    conform.check(case, ref.zero_grad_expectations(case), run=run_zero_grad)


@pytest.mark.rules(ref.REPLICATE_SCRIPT)
@pytest.mark.parametrize("scripted_root", [True, False], ids=["script-root", "script-child"])
def test_replicate_script_module(conform, device, scripted_root):
    case = ScriptReplicateCase(n_devices=2, scripted_root=scripted_root)
    conform.check(case, ref.script_expectations(case, dp_inputs(case)), run=run_replicate_script)

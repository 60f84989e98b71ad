"""parallel_apply: result order, exceptions, lengths, grad mode (reference/parallel.py, parallel_apply rules)."""
from __future__ import annotations

import pytest
import torch
from hypothesis import event, given, settings

from reference import parallel as ref
from suite.parallel import strategies as S
from suite.parallel import torch_side as ts
from suite.parallel.cases import apply_view

FEW = settings(max_examples=min(15, settings.default.max_examples))  # each example starts threads and sleeps


@pytest.mark.rules(ref.APPLY_ORDER)
@FEW
@given(case=S.apply_cases())
def test_parallel_apply_order(conform, device, case):
    event(f"input style {case.input_style}")
    conform.check(ref.APPLY_ORDER, case, apply_view(ref.parallel_apply_outcome(case), "values"),
                  ts.run_parallel_apply_values(case, device), torch_fn=ts.run_parallel_apply_values)


@pytest.mark.rules(ref.APPLY_GRAD_MODE)
@FEW
@given(case=S.apply_cases())
def test_parallel_apply_grad_mode(conform, device, case):
    conform.check(ref.APPLY_GRAD_MODE, case, apply_view(ref.parallel_apply_outcome(case), "grad"),
                  ts.run_parallel_apply_grad(case, device), torch_fn=ts.run_parallel_apply_grad)


@pytest.mark.rules(ref.APPLY_EXCEPTION)
@FEW
@given(case=S.apply_cases(failures=True))
def test_parallel_apply_exception(conform, device, case):
    event("fails" if any(case.failures) else "all succeed")
    conform.check(ref.APPLY_EXCEPTION, case, apply_view(ref.parallel_apply_outcome(case), "values"),
                  ts.run_parallel_apply_values(case, device), torch_fn=ts.run_parallel_apply_values)


@pytest.mark.rules(ref.APPLY_LENGTHS)
@FEW
@given(case=S.apply_cases(lengths=True))
def test_parallel_apply_lengths(conform, device, case):
    conform.check(ref.APPLY_LENGTHS, case, ref.parallel_apply_outcome(case), ts.run_parallel_apply(case, device),
                  torch_fn=ts.run_parallel_apply)


@pytest.mark.rules(ref.APPLY_NO_DEVICE)
@FEW
@given(case=S.apply_cases(no_device=True))
def test_parallel_apply_no_device(conform, device, case):
    if torch.device(device).type != "cpu":
        pytest.skip(f"devices=None resolves to the current {torch.device(device).type} device "
                    "(_get_device_index(None, optional=True)), so the no-device branch is unreachable there")
    conform.check(ref.APPLY_NO_DEVICE, case, ref.parallel_apply_outcome(case), ts.run_parallel_apply(case, device),
                  torch_fn=ts.run_parallel_apply)


@pytest.mark.rules(ref.APPLY_CPU_BUILD)
@FEW
@given(case=S.apply_cases())
def test_parallel_apply_cpu_build(conform, device, case):
    if ts.accelerator_available():
        pytest.skip("this build has an accelerator: the CPU-only behaviour does not apply")
    conform.check(ref.APPLY_CPU_BUILD, case, ref.parallel_apply_cpu_build(case),
                  ts.run_parallel_apply_unpatched(case, device), torch_fn=ts.run_parallel_apply_unpatched)

"""parallel_apply: result order, exceptions, lengths, grad mode (reference/parallel/parallel_apply.py)."""
from __future__ import annotations

import pytest
import torch
from hypothesis import event, example, given, settings

from reference.parallel import parallel_apply as ref
from suite.parallel import strategies as S
from suite.parallel.cases import ApplyCase, apply_input
from suite.parallel.torch_side.common import accelerator_available
from suite.parallel.torch_side.parallel_apply import run_parallel_apply, run_parallel_apply_unpatched

FEW = settings(max_examples=min(15, settings.default.max_examples))  # each example starts threads and sleeps


@pytest.mark.rules(ref.APPLY_ORDER, ref.APPLY_GRAD_MODE)
@FEW
@given(case=S.apply_cases())
# devices=None: each replica's device is looked up in its input, here through a dict (get_a_var)
@example(case=ApplyCase(scales=(1, -2), failures=(None, None), input_style="dict", n_devices=-1))
def test_parallel_apply_order(conform, device, case):
    event(f"input style {case.input_style}")
    conform.check(case, ref.expectations(case, apply_input), run=run_parallel_apply)


@pytest.mark.rules(ref.APPLY_EXCEPTION)
@FEW
@given(case=S.apply_cases(failures=True))
def test_parallel_apply_exception(conform, device, case):
    event("fails" if any(case.failures) else "all succeed")
    conform.check(case, ref.expectations(case, apply_input), run=run_parallel_apply)


@pytest.mark.rules(ref.APPLY_LENGTHS)
@FEW
@given(case=S.apply_cases(lengths=True))
# one module, two kwargs: the kwargs_tup length check alone catches it (zip(strict=True) never sees the extra one)
@example(case=ApplyCase(scales=(1,), failures=(None,), n_kwargs=2))
def test_parallel_apply_lengths(conform, device, case):
    conform.check(case, ref.expectations(case, apply_input), run=run_parallel_apply)


@pytest.mark.rules(ref.APPLY_NO_DEVICE)
@FEW
@given(case=S.apply_cases(no_device=True))
def test_parallel_apply_no_device(conform, device, case):
    if torch.device(device).type != "cpu":
        pytest.skip(f"devices=None resolves to the current {torch.device(device).type} device "
                    "(_get_device_index(None, optional=True)), so the no-device branch is unreachable there")
    conform.check(case, ref.expectations(case, apply_input), run=run_parallel_apply)


@pytest.mark.rules(ref.APPLY_CPU_BUILD)
@FEW
@given(case=S.apply_cases())
@example(case=ApplyCase(scales=(), failures=()))  # no module: no stream is asked for, the availability check refuses
def test_parallel_apply_cpu_build(conform, device, case):
    if accelerator_available():
        pytest.skip("this build has an accelerator: the CPU-only behaviour does not apply")
    conform.check(case, ref.cpu_build_expectations(case), run=run_parallel_apply_unpatched)

"""DataParallel: CPU-only fallback, defaults, single-device path, forward/backward on accelerators
(reference/parallel/data_parallel.py).

On an accelerator the device ids are the visible devices round-robin; with one device the same index is
repeated (DataParallel accepts device_ids=[0, 0]: scatter keeps chunks on the device and replicate copies
within it), so every path but "distinct devices" runs on a single GPU.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reference.parallel import data_parallel as ref
from suite.devices import device_count
from suite.parallel import strategies as S
from suite.parallel.cases import DPCase, dp_inputs
from suite.parallel.torch_side import data_parallel as torch_side
from suite.parallel.torch_side.common import accelerator_available

FEW = settings(max_examples=min(10, settings.default.max_examples))
NEEDS_ACCELERATOR = ("DataParallel scatters onto accelerator devices only; run with --device cuda "
                     "(the CPU-only behaviour is parallel.data_parallel.cpu_fallback)")


def accelerator_only(device: str) -> None:
    if torch.device(device).type == "cpu":
        pytest.skip(NEEDS_ACCELERATOR)


@pytest.mark.rules(ref.DP_FALLBACK)
@FEW
@given(case=S.fallback_cases)
def test_cpu_fallback(conform, device, case):
    if accelerator_available():
        pytest.skip("this build has an accelerator: DataParallel does not fall back")
    conform.check(case, ref.fallback_expectations(case, dp_inputs(case)), run=torch_side.run_fallback)


@pytest.mark.rules(ref.DP_DEFAULTS)
def test_defaults(conform, device):
    accelerator_only(device)
    kind = torch.device(device).type
    case = DPCase(batch=2, features=2, n_replicas=device_count(kind))
    conform.check(case, ref.defaults_expectations(case), run=torch_side.run_dp_defaults)


@pytest.mark.rules(ref.DP_SINGLE)
@FEW
@given(case=S.dp_cases(replicas=st.just(1)))
def test_single_device(conform, device, case):
    accelerator_only(device)
    conform.check(case, ref.single_expectations(case, dp_inputs(case)), run=torch_side.run_dp_single)


@pytest.mark.rules(ref.DP_PARAM_DEVICE)
@FEW
@given(case=S.dp_cases(replicas=st.integers(2, 4)))
def test_param_device(conform, device, case):
    accelerator_only(device)
    conform.check(case, ref.param_device_expectations(case), run=torch_side.run_dp_param_device)


@pytest.mark.rules(ref.DP_FORWARD_BACKWARD)
@FEW
@given(case=S.dp_cases())
def test_forward_backward(conform, device, case):
    accelerator_only(device)
    conform.check(case, ref.forward_backward_expectations(case, dp_inputs(case)),
                  run=torch_side.run_dp_forward_backward)


@pytest.mark.rules(ref.DP_FORWARD_BACKWARD)
@FEW
@given(data=st.data())
def test_forward_backward_distinct_devices(conform, device, data):
    accelerator_only(device)
    kind = torch.device(device).type
    count = device_count(kind)
    if count < 2 or torch.device(device).index is not None:
        pytest.skip(f"needs 2 {kind} devices addressed as '{kind}': this machine has {count} "
                    "(the repeated-index path runs in test_forward_backward)")
    case = data.draw(S.dp_cases(replicas=st.just(count)))
    conform.check(case, ref.forward_backward_expectations(case, dp_inputs(case)),
                  run=torch_side.run_dp_forward_backward)


@pytest.mark.rules(ref.DP_SCALAR)
@FEW
@given(case=S.dp_cases())
def test_scalar_output(conform, device, case):
    accelerator_only(device)
    conform.check(case, ref.scalar_expectations(case, dp_inputs(case)), run=torch_side.run_dp_scalar)


@pytest.mark.rules(ref.DP_BUFFER_INPLACE)
@FEW
@given(case=S.dp_cases(min_rows_per_chunk=2))
def test_buffer_inplace(conform, device, case):
    accelerator_only(device)
    conform.check(case, ref.buffer_expectations(case, dp_inputs(case)), run=torch_side.run_dp_buffer)


@pytest.mark.rules(ref.DP_NO_INPUTS)
@FEW
@given(case=S.dp_cases(replicas=st.integers(2, 4)))
def test_no_inputs(conform, device, case):
    accelerator_only(device)
    conform.check(case, ref.no_inputs_expectations(case), run=torch_side.run_dp_no_inputs)

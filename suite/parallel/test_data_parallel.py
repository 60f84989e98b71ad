"""DataParallel: CPU-only fallback, defaults, single-device path, forward/backward on accelerators
(reference/parallel.py, data_parallel rules).

On an accelerator the device ids are the visible devices round-robin; with one device the same index is
repeated (DataParallel accepts device_ids=[0, 0]: scatter keeps chunks on the device and replicate copies
within it), so every path but "distinct devices" runs on a single GPU.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reference import parallel as ref
from conform.tolerance import tolerance
from suite.devices import device_count
from suite.parallel import strategies as S
from suite.parallel import torch_side as ts
from suite.parallel.cases import DPCase

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
    if ts.accelerator_available():
        pytest.skip("this build has an accelerator: DataParallel does not fall back")
    conform.check(ref.DP_FALLBACK, case, ref.fallback_outcome(case), ts.run_fallback(case, device),
                  torch_fn=ts.run_fallback)


@pytest.mark.rules(ref.DP_DEFAULTS)
def test_defaults(conform, device):
    accelerator_only(device)
    kind = torch.device(device).type
    case = DPCase(batch=2, features=2, n_replicas=device_count(kind))
    conform.check(ref.DP_DEFAULTS, case, ref.dp_defaults(case), ts.run_dp_defaults(case, device),
                  torch_fn=ts.run_dp_defaults)


@pytest.mark.rules(ref.DP_SINGLE)
@FEW
@given(case=S.dp_cases(replicas=st.just(1)))
def test_single_device(conform, device, case):
    accelerator_only(device)
    conform.check(ref.DP_SINGLE, case, ref.dp_single(case), ts.run_dp_single(case, device), torch_fn=ts.run_dp_single)


@pytest.mark.rules(ref.DP_PARAM_DEVICE)
@FEW
@given(case=S.dp_cases(replicas=st.integers(2, 4)))
def test_param_device(conform, device, case):
    accelerator_only(device)
    conform.check(ref.DP_PARAM_DEVICE, case, ref.dp_param_device(case), ts.run_dp_param_device(case, device),
                  torch_fn=ts.run_dp_param_device)


@pytest.mark.rules(ref.DP_FORWARD_BACKWARD)
@FEW
@given(case=S.dp_cases())
def test_forward_backward(conform, device, case):
    accelerator_only(device)
    # Inputs, weights and loss weights are small integers: every product and partial sum is an integer far
    # below 2**11, exact in float32 and in TF32 -- so the result is exact whatever the kernels and the
    # reduction order across replicas.
    conform.check(ref.DP_FORWARD_BACKWARD, case, ref.dp_forward_backward(case),
                  ts.run_dp_forward_backward(case, device), torch_fn=ts.run_dp_forward_backward)


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
    conform.check(ref.DP_FORWARD_BACKWARD, case, ref.dp_forward_backward(case),
                  ts.run_dp_forward_backward(case, device), torch_fn=ts.run_dp_forward_backward)


@pytest.mark.rules(ref.DP_SCALAR)
@FEW
@given(case=S.dp_cases())
def test_scalar_output(conform, device, case):
    accelerator_only(device)
    # exact: sums of small integers (see test_forward_backward)
    conform.check(ref.DP_SCALAR, case, ref.dp_scalar(case), ts.run_dp_scalar(case, device), torch_fn=ts.run_dp_scalar)


@pytest.mark.rules(ref.DP_BUFFER_INPLACE)
@FEW
@given(case=S.dp_cases(min_rows_per_chunk=2))
def test_buffer_inplace(conform, device, case):
    accelerator_only(device)
    first = ref.chunk_sizes(case.batch, case.n_replicas)[0]
    # running_mean = momentum * mean(chunk) + (1 - momentum) * 0: a mean of `first` exact integers (one
    # reduction of length `first`), a division and a multiply by momentum (ops=3); the BN kernel may use
    # Welford, whose error is bounded the same way relative to the magnitudes (scale: |y| <= 2*4*3+1 = 25).
    tol = tolerance("float32", ops=3, reduction=first, scale=25.0)
    conform.check(ref.DP_BUFFER_INPLACE, case, ref.dp_running_mean(case), ts.run_dp_buffer(case, device), tol=tol,
                  torch_fn=ts.run_dp_buffer)


@pytest.mark.rules(ref.DP_NO_INPUTS)
@FEW
@given(case=S.dp_cases(replicas=st.integers(2, 4)))
def test_no_inputs(conform, device, case):
    accelerator_only(device)
    conform.check(ref.DP_NO_INPUTS, case, ref.dp_no_inputs(case), ts.run_dp_no_inputs(case, device),
                  torch_fn=ts.run_dp_no_inputs)

"""DataParallel: CPU-only fallback, defaults, single-device path, forward/backward, the functional
data_parallel (reference/parallel/data_parallel.py).

On an accelerator the device ids are the visible devices round-robin; with one device the same index is
repeated (DataParallel accepts device_ids=[0, 0]: scatter keeps chunks on the device and replicate copies
within it), so every path but "distinct devices" runs on a single GPU.  On CPU the same tests run
data_parallel.py's multi-device logic against a stand-in (torch_side/data_parallel.py: dp_stand_in, said in
each rule); only test_cpu_fallback and test_functional_cpu_build see the CPU build as it is.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reference.parallel import data_parallel as ref
from suite.devices import device_count
from suite.parallel import strategies as S
from suite.parallel.cases import DPCase, ImbalanceCase, dp_inputs
from suite.parallel.torch_side import data_parallel as torch_side
from suite.parallel.torch_side.common import accelerator_available

FEW = settings(max_examples=min(10, settings.default.max_examples))
CPU_VISIBLE = 3  # the number of devices the CPU stand-in shows DataParallel for the defaults


@pytest.mark.rules(ref.DP_FALLBACK)
@FEW
@given(case=S.fallback_cases)
def test_cpu_fallback(conform, device, case):
    if accelerator_available():
        pytest.skip("this build has an accelerator: DataParallel does not fall back")
    conform.check(case, ref.fallback_expectations(case, dp_inputs(case)), run=torch_side.run_fallback)


@pytest.mark.rules(ref.DP_DEFAULTS)
def test_defaults(conform, device):
    kind = torch.device(device).type
    case = DPCase(batch=2, features=2, n_replicas=CPU_VISIBLE if kind == "cpu" else device_count(kind))
    conform.check(case, ref.defaults_expectations(case), run=torch_side.run_dp_defaults)


@pytest.mark.rules(ref.DP_SINGLE)
@FEW
@given(case=S.dp_cases(replicas=st.just(1)))
def test_single_device(conform, device, case):
    conform.check(case, ref.single_expectations(case, dp_inputs(case)), run=torch_side.run_dp_single)


@pytest.mark.rules(ref.DP_PARAM_DEVICE)
@FEW
@given(case=S.dp_cases(replicas=st.integers(2, 4)))
def test_param_device(conform, device, case):
    first, elsewhere = torch_side.param_device_names(device, case)
    conform.check(case, ref.param_device_expectations(case, first, elsewhere), run=torch_side.run_dp_param_device)


@pytest.mark.rules(ref.DP_FORWARD_BACKWARD)
@FEW
@given(case=S.dp_cases())
def test_forward_backward(conform, device, case):
    conform.check(case, ref.forward_backward_expectations(case, dp_inputs(case)),
                  run=torch_side.run_dp_forward_backward)


@pytest.mark.rules(ref.DP_FORWARD_BACKWARD)
@FEW
@given(data=st.data())
def test_forward_backward_distinct_devices(conform, device, data):
    kind = torch.device(device).type
    if kind == "cpu":
        pytest.skip("distinct devices need an accelerator (on CPU the stand-in's devices are all the CPU: "
                    "test_forward_backward)")
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
    conform.check(case, ref.scalar_expectations(case, dp_inputs(case)), run=torch_side.run_dp_scalar)


@pytest.mark.rules(ref.DP_BUFFER_INPLACE)
@FEW
@given(case=S.dp_cases(min_rows_per_chunk=2))
def test_buffer_inplace(conform, device, case):
    conform.check(case, ref.buffer_expectations(case, dp_inputs(case)), run=torch_side.run_dp_buffer)


@pytest.mark.rules(ref.DP_NO_INPUTS)
@FEW
@given(case=S.dp_cases(replicas=st.integers(2, 4)))
def test_no_inputs(conform, device, case):
    conform.check(case, ref.no_inputs_expectations(case), run=torch_side.run_dp_no_inputs)


@pytest.mark.rules(ref.DP_FUNCTIONAL)
@FEW
@given(case=S.dp_cases())
@example(case=DPCase(batch=2, features=2, n_replicas=1))  # one device: the module is called directly
def test_functional(conform, device, case):
    conform.check(case, ref.functional_expectations(case, dp_inputs(case)), run=torch_side.run_dp_functional)


@pytest.mark.rules(ref.DP_FUNCTIONAL_CPU_BUILD)
def test_functional_cpu_build(conform, device):
    if accelerator_available():
        pytest.skip("this build has an accelerator: the CPU-only behaviour does not apply")
    case = DPCase(batch=3, features=2, n_replicas=1)
    conform.check(case, ref.functional_cpu_build_expectations(case), run=torch_side.run_dp_functional_cpu_build)


@pytest.mark.rules(ref.DP_IMBALANCE)
@FEW
@given(case=S.imbalance_cases())
@example(case=ImbalanceCase(device_ids=(0, 1), memory=(8, 6), cores=(2, 1)))  # memory at 3/4: the cores warn
@example(case=ImbalanceCase(device_ids=(3, 1, 0), memory=(4, 8, 7), cores=(1, 2, 3)))  # memory warns, cores unread
@example(case=ImbalanceCase(device_ids=(0, 1), memory=(6, 8), cores=(4, 5)))  # memory at 3/4, cores above: silent
# memory at 3/4 names other devices than the cores below it: only the cores' warning
@example(case=ImbalanceCase(device_ids=(0, 1, 2), memory=(6, 8, 7), cores=(1, 2, 3)))
def test_imbalance_warning(conform, device, case):
    if torch.device(device).type != "cpu":
        pytest.skip("the device properties are stood in: pure Python, checked once on CPU")
    conform.check(case, ref.imbalance_expectations(case), run=torch_side.run_dp_imbalance)

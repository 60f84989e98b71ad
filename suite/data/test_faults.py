"""Faults as conformance: a worker exception, a killed worker and a timeout each surface in the
main process as documented, and leave no worker process behind."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference.data import workers as ref
from suite.data.cases import HANG_TIMEOUT
from suite.data.strategies import exception_cases, loader_cases
from suite.data.torch_side.workers import run_loader

FEW = settings(max_examples=min(6, settings.default.max_examples))
VERY_FEW = settings(max_examples=min(2, settings.default.max_examples))


@pytest.mark.timeout(240)
@pytest.mark.rules(ref.F_EXC, ref.F_STRAY)
@FEW
@given(case=exception_cases())
def test_worker_exception(conform, case):
    conform.check(case, ref.fault_expectations(case), run=run_loader)


@pytest.mark.timeout(240)
@pytest.mark.rules(ref.F_INIT, ref.F_STRAY)
@FEW
@given(case=loader_cases(init_fail=st.integers(0, 2)))
def test_worker_init_exception(conform, case):
    conform.check(case, ref.fault_expectations(case), run=run_loader)


# The fault is in batch 0: nothing is delivered before the error, whatever the timing.
@pytest.mark.timeout(120)
@pytest.mark.rules(ref.F_KILL, ref.F_STRAY)
@VERY_FEW
@given(case=loader_cases(shuffle=False, n=st.integers(2, 8), fault=(0, "kill")))
def test_killed_worker(conform, case):
    conform.check(case, ref.fault_expectations(case), run=run_loader)


@pytest.mark.timeout(120)
@pytest.mark.rules(ref.F_TIMEOUT, ref.F_STRAY)
@VERY_FEW
@given(case=loader_cases(shuffle=False, n=st.integers(2, 8), fault=(0, "hang"), timeout=HANG_TIMEOUT))
def test_timeout(conform, case):
    conform.check(case, ref.fault_expectations(case), run=run_loader)

"""Faults as conformance: a worker exception, a killed worker and a timeout each surface in the
main process as documented, and leave no worker process behind."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference import data as R
from suite.data.strategies import loader_cases
from suite.data.torch_side import loader_epochs, loader_leftover, torch_loader

FEW = settings(max_examples=min(6, settings.default.max_examples))
VERY_FEW = settings(max_examples=min(2, settings.default.max_examples))


@st.composite
def exception_cases(draw):
    case = draw(loader_cases(shuffle=False, n=st.integers(2, 12)))
    kind = draw(st.sampled_from(["ValueError", "KeyError", "ZeroDivisionError"]))
    return type(case)(**{**case.__dict__, "fault": (draw(st.integers(0, case.n - 1)), kind)})


@pytest.mark.timeout(240)
@pytest.mark.rules(R.F_EXC, R.F_STRAY)
@FEW
@given(case=exception_cases())
def test_worker_exception(conform, case):
    expected = R.loader_outcome(case)
    actual = torch_loader(case, "cpu")
    # (a failing index dropped by drop_last is never fetched: the epoch completes normally)
    conform.check(R.F_EXC, case, expected["epochs"], actual["epochs"], torch_fn=loader_epochs)
    conform.check(R.F_STRAY, case, 0, actual["leftover"], torch_fn=loader_leftover)


@pytest.mark.timeout(240)
@pytest.mark.rules(R.F_INIT, R.F_STRAY)
@FEW
@given(case=loader_cases(init_fail=st.integers(0, 2)))
def test_worker_init_exception(conform, case):
    expected = R.loader_outcome(case)
    actual = torch_loader(case, "cpu")
    conform.check(R.F_INIT, case, expected["epochs"], actual["epochs"], torch_fn=loader_epochs)
    conform.check(R.F_STRAY, case, 0, actual["leftover"], torch_fn=loader_leftover)


def _check_batch0_fault(conform, case, rule):
    # the fault is in batch 0: nothing is delivered before the error, whatever the timing
    expected = R.loader_outcome(case)
    actual = torch_loader(case, "cpu")
    conform.check(rule, case, expected["epochs"], actual["epochs"], torch_fn=loader_epochs)
    conform.check(R.F_STRAY, case, 0, actual["leftover"], torch_fn=loader_leftover)


@pytest.mark.timeout(120)
@pytest.mark.rules(R.F_KILL, R.F_STRAY)
@VERY_FEW
@given(case=loader_cases(shuffle=False, n=st.integers(2, 8), fault=(0, "kill")))
def test_killed_worker(conform, case):
    _check_batch0_fault(conform, case, R.F_KILL)


@pytest.mark.timeout(120)
@pytest.mark.rules(R.F_TIMEOUT, R.F_STRAY)
@VERY_FEW
@given(case=loader_cases(shuffle=False, n=st.integers(2, 8), fault=(0, "hang")))
def test_timeout(conform, case):
    _check_batch0_fault(conform, case, R.F_TIMEOUT)

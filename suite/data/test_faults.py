"""Faults as conformance: a worker exception, a killed worker and a timeout each surface in the
main process as documented, and leave no worker process and no shared memory behind -- under every
start method (drawn per example; forkserver and spawn pinned in every test)."""
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reference.data import workers as ref
from suite.data.cases import HANG_TIMEOUT, NO_TIMEOUT, LoaderCase
from suite.data.strategies import exception_cases, loader_cases
from suite.data.torch_side.workers import run_loader

FEW = settings(max_examples=min(6, settings.default.max_examples))
VERY_FEW = settings(max_examples=min(2, settings.default.max_examples))


@pytest.mark.timeout(360)
@pytest.mark.rules(ref.F_EXC, ref.F_STRAY, ref.F_SHM)
@FEW
@example(case=LoaderCase(n=5, batch_size=2, num_workers=1, fault=(3, "KeyError"), start_method="spawn"))
@example(case=LoaderCase(n=4, batch_size=1, num_workers=2, fault=(2, "ValueError"), start_method="forkserver",
                         timeout=0.0))
@given(case=exception_cases())
def test_worker_exception(conform, case):
    conform.check(case, ref.fault_expectations(case), run=run_loader)


@pytest.mark.timeout(360)
@pytest.mark.rules(ref.F_INIT, ref.F_STRAY, ref.F_SHM)
@FEW
@example(case=LoaderCase(n=4, batch_size=1, num_workers=2, init_fail=1, start_method="forkserver"))
@example(case=LoaderCase(n=3, batch_size=1, num_workers=1, init_fail=0, start_method="spawn"))
@given(case=loader_cases(init_fail=st.integers(0, 2)))
def test_worker_init_exception(conform, case):
    conform.check(case, ref.fault_expectations(case), run=run_loader)


# The fault is in batch 0: nothing is delivered before the error, whatever the timing.  Without a timeout
# (the default): forkserver workers are not the main process's children (no SIGCHLD reaches it), so their
# death shows when a get times out -- after the whole `timeout`, or within 5 s (MP_STATUS_CHECK_INTERVAL)
# without one.
@pytest.mark.timeout(180)
@pytest.mark.rules(ref.F_KILL, ref.F_STRAY, ref.F_SHM)
@VERY_FEW
@example(case=LoaderCase(n=3, num_workers=2, fault=(0, "kill"), start_method="forkserver", timeout=0.0))
@example(case=LoaderCase(n=2, num_workers=1, fault=(0, "kill"), start_method="spawn", timeout=0.0))
@given(case=loader_cases(shuffle=False, n=st.integers(2, 8), fault=(0, "kill"), timeout=NO_TIMEOUT))
def test_killed_worker(conform, case):
    conform.check(case, ref.fault_expectations(case), run=run_loader)


@pytest.mark.timeout(180)
@pytest.mark.rules(ref.F_TIMEOUT, ref.F_STRAY, ref.F_SHM)
@VERY_FEW
@example(case=LoaderCase(n=3, num_workers=1, fault=(0, "hang"), timeout=HANG_TIMEOUT, start_method="forkserver"))
@example(case=LoaderCase(n=2, num_workers=1, fault=(0, "hang"), timeout=HANG_TIMEOUT, start_method="spawn"))
# a worker still stuck in its sample when the loader shuts down (it sleeps 30 s): it is not left running
@example(case=LoaderCase(n=2, num_workers=1, fault=(0, "stuck"), timeout=HANG_TIMEOUT))
@given(case=loader_cases(shuffle=False, n=st.integers(2, 8), fault=(0, "hang"), timeout=HANG_TIMEOUT))
def test_timeout(conform, case):
    conform.check(case, ref.fault_expectations(case), run=run_loader)


# A batch the main process cannot unpickle, in batch 0 (so nothing is delivered before the error).
@pytest.mark.timeout(180)
@pytest.mark.rules(ref.F_RECV, ref.F_STRAY, ref.F_SHM)
@VERY_FEW
@example(case=LoaderCase(n=4, batch_size=2, num_workers=1, collate="list", fault=(0, "unloadable"),
                         start_method="forkserver", timeout=0.0))
@example(case=LoaderCase(n=2, batch_size=1, num_workers=1, collate="list", fault=(0, "unloadable"),
                         start_method="spawn"))
@given(case=loader_cases(shuffle=False, n=st.integers(2, 8), fault=(0, "unloadable"), collate="list",
                         batch_size=st.sampled_from([1, 2, 3])))
def test_receive_error(conform, case):
    conform.check(case, ref.fault_expectations(case), run=run_loader)

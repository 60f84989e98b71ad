"""The multi-worker protocol for map-style datasets, seeding, persistent workers, in_order.

Each example starts real worker processes: few examples, hard timeouts, tiny datasets.  The start method
is drawn per example (mostly fork); every test pins forkserver and spawn with explicit examples, under the
same rules (see suite/data/strategies.py: START_METHODS).  The loader runs once per example (run_loader observes it whole); each rule is compared
with its part."""
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reference.data import workers as ref
from reference.data.collate import C_CUSTOM_FN
from suite.data.cases import LoaderCase
from suite.data.strategies import loader_cases
from suite.data.torch_side.workers import replay_loader, run_loader, run_prefetch_window
from suite.versions import requires_torch

FEW = settings(max_examples=min(10, settings.default.max_examples))
VERY_FEW = settings(max_examples=min(4, settings.default.max_examples))


@pytest.mark.timeout(360)
@pytest.mark.rules(ref.W_DISPATCH, ref.W_IN_ORDER, ref.S_BASE, ref.S_WORKER, ref.S_TORCH, ref.S_PY, ref.S_NP,
                   ref.S_INIT, C_CUSTOM_FN, ref.F_STRAY, ref.F_SHM)
@FEW
@example(case=LoaderCase(n=7, batch_size=2, num_workers=2, shuffle=True, seed=11, init_fn=True, collate="list",
                         start_method="spawn", fault=(2, "slow")))
@example(case=LoaderCase(n=6, batch_size=2, num_workers=3, seed=12, init_fn=True, use_generator=False,
                         start_method="forkserver", timeout=0.0))
# a MapDataPipe, its sharding worker_init_fn calling the user's after sharding
@example(case=LoaderCase(n=5, batch_size=2, num_workers=2, shuffle=True, seed=20, datapipe=True, init_fn=True))
@given(case=loader_cases(init_fn=st.booleans(), collate=st.sampled_from(["default", "list"]),
                         # a slow sample makes later batches arrive first: in_order must hold them back
                         fault=st.one_of(st.just(()), st.tuples(st.integers(0, 3), st.just("slow")))))
def test_map_style_in_order(conform, case):
    conform.check(case, ref.in_order_expectations(case), run=run_loader)


@pytest.mark.rules(ref.S_MAIN)
@given(case=loader_cases(workers=st.just(0), collate=st.sampled_from(["default", "list"])))
def test_single_process(conform, case):
    conform.check(case, ref.single_process_expectations(case), run=run_loader)


@pytest.mark.timeout(360)
@pytest.mark.rules(ref.S_PERSIST, ref.F_STRAY, ref.F_SHM)
@FEW
@example(case=LoaderCase(n=5, batch_size=2, num_workers=2, persistent=True, epochs=3, shuffle=True, seed=14,
                         start_method="forkserver"))
@example(case=LoaderCase(n=4, batch_size=2, num_workers=1, persistent=True, epochs=2, shuffle=True, seed=15,
                         init_fn=True, start_method="spawn"))
@given(case=loader_cases(persistent=True, epochs=st.integers(2, 3), init_fn=st.booleans(), shuffle=True))
def test_persistent_workers(conform, case):
    conform.check(case, ref.persistent_expectations(case), run=run_loader)


@pytest.fixture
def out_of_order_loading():
    # DataLoader(in_order=False) is new in torch 2.6 (pytorch/pytorch#141833); measured: 2.5.1 rejects the
    # keyword with TypeError, 2.6.0 accepts it.  (A fixture: the skip comes before hypothesis runs an example.)
    requires_torch("2.6", "DataLoader(in_order=False)")


@pytest.mark.timeout(360)
@pytest.mark.rules(ref.W_UNORDERED_ONCE, ref.W_UNORDERED_BOUND, ref.W_UNORDERED_DISPATCH)
@FEW
@example(case=LoaderCase(n=8, batch_size=1, num_workers=2, prefetch_factor=2, in_order=False, fault=(0, "slow")))
@example(case=LoaderCase(n=8, batch_size=2, num_workers=2, in_order=False, seed=16, start_method="forkserver"))
@example(case=LoaderCase(n=6, batch_size=1, num_workers=2, in_order=False, seed=17, fault=(1, "slow"),
                         start_method="spawn"))
@given(case=loader_cases(in_order=False, n=st.integers(6, 16),
                         fault=st.one_of(st.just(()), st.tuples(st.integers(0, 5), st.just("slow")))))
def test_unordered(conform, out_of_order_loading, case):
    actual = conform.check(case, ref.unordered_expectations(case), run=run_loader)
    # The observed dispatch (which batch, which worker) is an input of the next rules: contents, random
    # draws, the reordering bound and which worker got each batch are checked against it, on that same run.
    conform.check(case, ref.scheduled_expectations(case, actual["schedule"]), run=replay_loader)


@pytest.mark.timeout(180)
@pytest.mark.rules(ref.W_PREFETCH)
@VERY_FEW
@example(case=LoaderCase(n=8, batch_size=2, num_workers=2, prefetch_factor=1, start_method="forkserver"))
@example(case=LoaderCase(n=8, batch_size=1, num_workers=1, prefetch_factor=2, start_method="spawn"))
@given(case=loader_cases(shuffle=False, n=st.integers(8, 16), batch_size=st.sampled_from([1, 2]),
                         prefetch_factor=st.sampled_from([1, 2]), workers=st.integers(1, 2), drop_last=False))
def test_prefetch_window(conform, case):
    conform.check(case, ref.prefetch_expectations(case), run=run_prefetch_window)


@pytest.mark.timeout(180)
@pytest.mark.rules(ref.W_PICKLE, ref.F_STRAY, ref.F_SHM)
@VERY_FEW
@example(case=LoaderCase(n=4, batch_size=2, num_workers=2, collate="unpicklable", start_method="spawn"))
@example(case=LoaderCase(n=4, batch_size=2, num_workers=1, collate="unpicklable", start_method="forkserver",
                         persistent=True, epochs=2))
@example(case=LoaderCase(n=4, batch_size=2, num_workers=1, collate="unpicklable", start_method="fork"))
@given(case=loader_cases(collate="unpicklable", batch_size=st.sampled_from([1, 2, 3]),
                         start_method=st.sampled_from(["fork", "spawn", "forkserver"])))
def test_unpicklable_collate(conform, case):
    conform.check(case, ref.pickling_expectations(case), run=run_loader)


@pytest.mark.timeout(120)
@pytest.mark.rules(ref.L_PIN)
@VERY_FEW
@example(case=LoaderCase(n=5, batch_size=2, pin_memory=True, shuffle=True, seed=17))
@example(case=LoaderCase(n=3, batch_size=2, pin_memory=True, pin_memory_device="cuda", seed=19))
@example(case=LoaderCase(n=4, batch_size=None, num_workers=1, pin_memory=True, seed=18))
@given(case=loader_cases(workers=st.integers(0, 1), pin_memory=True))
def test_pin_memory(conform, case):
    conform.check(case, ref.pin_memory_expectations(case), run=run_loader)

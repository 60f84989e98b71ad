"""IterableDataset across workers: replicas, round-robin interleaving, per-worker drop_last,
get_worker_info, sharding.  Real workers (start method drawn, spawn and forkserver pinned): few
examples, hard timeouts."""
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reference.data import iterable as ref
from reference.data.workers import F_SHM, F_STRAY, S_BASE
from suite.data.cases import LoaderCase
from suite.data.strategies import datapipe_shuffle_cases, iterable_cases
from suite.data.torch_side.workers import run_datapipe_shuffle, run_loader

FEW = settings(max_examples=min(12, settings.default.max_examples))
VERY_FEW = settings(max_examples=min(4, settings.default.max_examples))


@pytest.mark.timeout(360)
@pytest.mark.rules(ref.I_SHARD, ref.I_DROP_LAST, ref.I_ROUND_ROBIN, ref.I_REPLICA, ref.I_INFO, S_BASE, F_STRAY,
                   F_SHM)
@FEW
@example(case=LoaderCase(n=0, iterable=True, lengths=(5, 1, 3), num_workers=3, batch_size=2, seed=1))
@example(case=LoaderCase(n=0, iterable=True, lengths=(5, 3), num_workers=2, batch_size=2, drop_last=True,
                         persistent=True, epochs=2, seed=2))
@example(case=LoaderCase(n=0, iterable=True, lengths=(11,), shard=True, num_workers=3, batch_size=2, seed=3))
@example(case=LoaderCase(n=0, iterable=True, lengths=(4, 4), num_workers=2, batch_size=None, seed=4,
                         use_generator=False))
@example(case=LoaderCase(n=0, iterable=True, lengths=(7,), shard=True, num_workers=2, batch_size=2, seed=5,
                         persistent=True, epochs=2, start_method="spawn"))
@example(case=LoaderCase(n=0, iterable=True, lengths=(3, 5), num_workers=2, batch_size=2, drop_last=True, seed=6,
                         start_method="forkserver", timeout=0.0))
# main process, a complete last batch of 257 items (past CPython's small-int cache): drop_last keeps it
@example(case=LoaderCase(n=0, iterable=True, lengths=(257,), num_workers=0, batch_size=257, drop_last=True, seed=10))
@given(case=iterable_cases(persistent=st.booleans(), epochs=st.integers(1, 2)))
def test_iterable_workers(conform, case):
    conform.check(case, ref.expectations(case), run=run_loader)


@pytest.mark.timeout(240)
@pytest.mark.rules(ref.I_DATAPIPE, F_STRAY, F_SHM)
@VERY_FEW
@example(case=LoaderCase(n=0, iterable=True, datapipe=True, lengths=(7,), num_workers=2, batch_size=2, seed=7,
                         persistent=True, epochs=2, shuffle=False, start_method="forkserver"))
@example(case=LoaderCase(n=0, iterable=True, datapipe=True, lengths=(5,), num_workers=2, batch_size=2, seed=11,
                         shuffle=False, start_method="spawn"))
@example(case=LoaderCase(n=0, iterable=True, datapipe=True, lengths=(5,), num_workers=0, batch_size=None, seed=8))
@example(case=LoaderCase(n=0, iterable=True, datapipe=True, lengths=(6,), num_workers=2, batch_size=2, seed=9,
                         persistent=True, epochs=2, process_group=True))  # one rank: sharded by worker alone
@given(case=iterable_cases(datapipe=True, shard=True, persistent=st.booleans(), epochs=st.integers(1, 2),
                           shuffle=st.sampled_from([None, False])))
def test_datapipe_sharding(conform, case):
    conform.check(case, ref.datapipe_expectations(case), run=run_loader)


@pytest.mark.timeout(120)
@pytest.mark.rules(ref.I_DP_SHUFFLE)
@FEW  # main-process loading of a few items: milliseconds an example
@example(case=LoaderCase(n=0, iterable=True, datapipe=True, shuffle=True, lengths=(12,), num_workers=0,
                         batch_size=None, epochs=2, seed=0))  # no Shuffler of its own: a registered divergence
@example(case=LoaderCase(n=0, iterable=True, datapipe=True, shuffle=True, shuffler=True, lengths=(12,),
                         num_workers=0, batch_size=3, epochs=2, seed=1))
@given(case=datapipe_shuffle_cases())
def test_datapipe_shuffle(conform, case):
    conform.check(case, ref.datapipe_shuffle_expectations(case), run=run_datapipe_shuffle)

"""IterableDataset across workers: replicas, round-robin interleaving, per-worker drop_last,
get_worker_info, sharding.  Real fork workers: few examples, hard timeouts."""
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reference.data import iterable as ref
from reference.data.workers import F_STRAY, S_BASE
from suite.data.cases import LoaderCase
from suite.data.strategies import iterable_cases
from suite.data.torch_side.workers import run_loader

FEW = settings(max_examples=min(12, settings.default.max_examples))


@pytest.mark.timeout(240)
@pytest.mark.rules(ref.I_SHARD, ref.I_DROP_LAST, ref.I_ROUND_ROBIN, ref.I_REPLICA, ref.I_INFO, S_BASE, F_STRAY)
@FEW
@example(case=LoaderCase(n=0, iterable=True, lengths=(5, 1, 3), num_workers=3, batch_size=2, seed=1))
@example(case=LoaderCase(n=0, iterable=True, lengths=(5, 3), num_workers=2, batch_size=2, drop_last=True,
                         persistent=True, epochs=2, seed=2))
@example(case=LoaderCase(n=0, iterable=True, lengths=(11,), shard=True, num_workers=3, batch_size=2, seed=3))
@example(case=LoaderCase(n=0, iterable=True, lengths=(4, 4), num_workers=2, batch_size=None, seed=4,
                         use_generator=False))
@given(case=iterable_cases(persistent=st.booleans(), epochs=st.integers(1, 2)))
def test_iterable_workers(conform, case):
    conform.check(case, ref.expectations(case), run=run_loader)

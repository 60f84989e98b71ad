"""IterableDataset across workers: replicas, round-robin interleaving, per-worker drop_last,
get_worker_info, sharding.  Real fork workers: few examples, hard timeouts."""
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reference import data as R
from suite.data.strategies import iterable_cases
from suite.data.torch_side import LoaderCase, loader_epochs, loader_leftover, loader_next, torch_loader

FEW = settings(max_examples=min(12, settings.default.max_examples))


def _rule(case) -> str:
    if case.shard:
        return R.I_SHARD
    if case.drop_last and case.batch_size not in (None, 1):
        return R.I_DROP_LAST
    if case.num_workers > 1 and len(set(case.lengths)) > 1:
        return R.I_ROUND_ROBIN
    return R.I_REPLICA


def _info(epochs):
    """The get_worker_info() fields each item saw (None in the main process)."""
    out = []
    for batches in epochs:
        for b in batches:
            rows = b["samples"] if isinstance(b, dict) else b
            out.extend((r[1], r[2]) for r in rows)
    return out


@pytest.mark.timeout(240)
@pytest.mark.rules(R.I_SHARD, R.I_DROP_LAST, R.I_ROUND_ROBIN, R.I_REPLICA, R.I_INFO, R.S_BASE, R.F_STRAY)
@FEW
@example(case=LoaderCase(n=0, iterable=True, lengths=(5, 1, 3), num_workers=3, batch_size=2, seed=1))
@example(case=LoaderCase(n=0, iterable=True, lengths=(5, 3), num_workers=2, batch_size=2, drop_last=True,
                         persistent=True, epochs=2, seed=2))
@example(case=LoaderCase(n=0, iterable=True, lengths=(11,), shard=True, num_workers=3, batch_size=2, seed=3))
@example(case=LoaderCase(n=0, iterable=True, lengths=(4, 4), num_workers=2, batch_size=None, seed=4,
                         use_generator=False))
@given(case=iterable_cases(persistent=st.booleans(), epochs=st.integers(1, 2)))
def test_iterable_workers(conform, case):
    if case.num_workers == 0 and case.persistent:
        case = type(case)(**{**case.__dict__, "persistent": False})
    expected = R.iterable_outcome(case)
    actual = torch_loader(case, "cpu")
    conform.check(_rule(case), case, expected["epochs"], actual["epochs"], torch_fn=loader_epochs)
    conform.check(R.I_INFO, case, _info(expected["epochs"]), _info(actual["epochs"]), torch_fn=loader_epochs)
    conform.check(R.S_BASE, case, expected["next"], actual["next"], torch_fn=loader_next)
    conform.check(R.F_STRAY, case, 0, actual["leftover"], torch_fn=loader_leftover)

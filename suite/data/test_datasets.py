"""ConcatDataset, Subset, ChainDataset, StackDataset, TensorDataset and random_split."""
import pytest
from hypothesis import example, given

from reference.data import datasets as ref
from suite.data.cases import DatasetCase, subset_batch_positions
from suite.data.strategies import dataset_cases
from suite.data.torch_side.datasets import run_dataset


def _check(conform, device, case):
    conform.check(case, ref.expectations(case, device), run=run_dataset)


@pytest.mark.rules(ref.DS_CONCAT, ref.DS_CONCAT_NEG, ref.DS_CONCAT_OOB)
@given(case=dataset_cases("concat"))
def test_concat(conform, case):
    _check(conform, "cpu", case)


@pytest.mark.rules(ref.DS_SUBSET)
@given(case=dataset_cases("subset"))
def test_subset(conform, case):
    # the positions asked in one __getitems__ batch are input data, made once for both sides
    positions = subset_batch_positions(len(case.indices))
    conform.check(case, ref.expectations(case, "cpu", positions), run=run_dataset)


@pytest.mark.rules(ref.DS_CHAIN)
@given(case=dataset_cases("chain"))
def test_chain(conform, case):
    _check(conform, "cpu", case)


@pytest.mark.rules(ref.DS_STACK)
@given(case=dataset_cases("stack"))
def test_stack(conform, case):
    _check(conform, "cpu", case)


@pytest.mark.rules(ref.DS_TENSOR)
@given(case=dataset_cases("tensor"))
def test_tensor_dataset(conform, device, case):
    _check(conform, device, case)


@pytest.mark.rules(ref.SPLIT, ref.SPLIT_FRAC, ref.SPLIT_ERR)
@given(case=dataset_cases("random_split"))
# fractions whose float sum is just below 1 (0.7 + 0.2 + 0.1 == 0.9999999999999999): still fractions
@example(case=DatasetCase("random_split", sizes=(10,), lengths=(0.7, 0.2, 0.1), seed=3))
def test_random_split(conform, case):
    _check(conform, "cpu", case)


@pytest.mark.rules(ref.DS_KIND)
@pytest.mark.parametrize("variant", range(len(ref.KIND_CHECK_IDS)), ids=ref.KIND_CHECK_IDS)
def test_kind_checks(conform, variant):
    _check(conform, "cpu", DatasetCase("kind_checks", index=variant))


@pytest.mark.rules(ref.DS_USER_ERRORS)
@pytest.mark.parametrize("variant", range(len(ref.USER_ERROR_IDS)), ids=ref.USER_ERROR_IDS)
def test_user_errors(conform, variant):
    _check(conform, "cpu", DatasetCase("kind_checks", index=len(ref.KIND_CHECK_IDS) + variant))


@pytest.mark.rules(ref.DS_FETCH_BATCHED, ref.DS_FETCH_UNBATCHED)
@pytest.mark.parametrize("getitems", [True, False], ids=["getitems", "getitem"])
@pytest.mark.parametrize("batch_size", [2, None], ids=["batched", "unbatched"])
def test_fetch(conform, getitems, batch_size):
    # how the main-process loader asks a map-style dataset for its samples (5 items: a short last batch)
    _check(conform, "cpu", DatasetCase("fetch", sizes=(5,), batch_size=batch_size, getitems=getitems))

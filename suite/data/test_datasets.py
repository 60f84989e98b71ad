"""ConcatDataset, Subset, ChainDataset, StackDataset, TensorDataset and random_split."""
import pytest
from hypothesis import given

from reference import data as R
from suite.data.strategies import dataset_cases
from suite.data.torch_side import DatasetCase, torch_dataset


def _check(conform, device, case):
    conform.check(R.dataset_rule(case), case, R.dataset_outcome(case, device), torch_dataset(case, device),
                  torch_fn=torch_dataset)


@pytest.mark.rules(R.DS_CONCAT, R.DS_CONCAT_NEG, R.DS_CONCAT_OOB)
@given(case=dataset_cases("concat"))
def test_concat(conform, case):
    _check(conform, "cpu", case)


@pytest.mark.rules(R.DS_SUBSET)
@given(case=dataset_cases("subset"))
def test_subset(conform, case):
    _check(conform, "cpu", case)


@pytest.mark.rules(R.DS_CHAIN)
@given(case=dataset_cases("chain"))
def test_chain(conform, case):
    _check(conform, "cpu", case)


@pytest.mark.rules(R.DS_STACK)
@given(case=dataset_cases("stack"))
def test_stack(conform, case):
    _check(conform, "cpu", case)


@pytest.mark.rules(R.DS_TENSOR)
@given(case=dataset_cases("tensor"))
def test_tensor_dataset(conform, device, case):
    _check(conform, device, case)


@pytest.mark.rules(R.SPLIT, R.SPLIT_FRAC, R.SPLIT_ERR)
@given(case=dataset_cases("random_split"))
def test_random_split(conform, case):
    _check(conform, "cpu", case)


@pytest.mark.rules(R.DS_KIND)
@pytest.mark.parametrize("variant", [0, 1, 2], ids=["concat-empty", "concat-iterable", "chain-map"])
def test_kind_checks(conform, variant):
    _check(conform, "cpu", DatasetCase("kind_checks", index=variant))

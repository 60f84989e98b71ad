"""default_collate per element type, collate_fn_map dispatch, default_convert (batch_size=None)."""
import pytest
from hypothesis import example, given, settings

from reference.data import collate as ref
from suite.data.cases import CollateCase, make_batch
from suite.data.strategies import collate_cases
from suite.data.torch_side.collate import run_collate

# One explicit example per element type, so every rule is reached in every profile.
EXAMPLE_SPECS = [("tensor", "float32", (2,)), ("ndarray", "int16", (2, 1)), ("ndarray", "<U3", (2,)),
                 ("npscalar", "float32"), ("npscalar", "bool_"), ("int",), ("float",), ("bool",), ("intfloat",),
                 ("str",), ("bytes",), ("map", "FrozenMap", (("b", ("int",)), ("a", ("float",)))),
                 ("namedtuple", ("int",), ("str",)), ("tuple", (("int",), ("bool",))), ("ragged", ("int",)),
                 ("none",), ("opaque",), ("map", "FixedMap", (("a", ("ndarray", "int16", (2,))),)),
                 ("row", (("int",), ("ndarray", "float32", (1,)))), ("range",)]


def with_examples(mode):
    def deco(fn):
        for spec in reversed(EXAMPLE_SPECS):
            fn = example(case=CollateCase(spec=spec, batch=3, seed=1, mode=mode))(fn)
        return fn
    return deco


COLLATE_RULES = (ref.C_SPARSE, ref.C_TENSOR, ref.C_NDARRAY, ref.C_NPSCALAR, ref.C_NUMBER, ref.C_FIRST, ref.C_STR,
                 ref.C_MAP, ref.C_NT, ref.C_SEQ, ref.C_RAGGED, ref.C_UNSUPPORTED, ref.C_NESTED)


def _check(conform, case, device):
    # make_batch is input generation (not under test); the reference only reads the inputs
    conform.check(case, ref.expectations(case, make_batch(case, device)), run=run_collate)


@pytest.mark.rules(*COLLATE_RULES)
@example(case=CollateCase(spec=("nested",), batch=2, seed=1))
@example(case=CollateCase(spec=("sparse",), batch=2, seed=1))
@example(case=CollateCase(spec=("map", "dict", (("s", ("sparse",)),)), batch=2, seed=2))
@with_examples("collate")
@given(case=collate_cases())
def test_default_collate(conform, device, case):
    _check(conform, case, device)


@pytest.mark.rules(ref.C_CUSTOM_MAP)
@with_examples("custom_map")
@given(case=collate_cases("custom_map"))
def test_collate_fn_map(conform, device, case):
    _check(conform, case, device)


@pytest.mark.rules(ref.C_CONVERT)
@with_examples("convert")
@given(case=collate_cases("convert"))
def test_default_convert(conform, device, case):
    _check(conform, case, device)


@pytest.mark.timeout(180)
@pytest.mark.rules(ref.C_WORKER)
@settings(max_examples=min(8, settings.default.max_examples))
@example(case=CollateCase(spec=("tensor", "float32", (2,)), batch=3, seed=1, mode="worker"))
@example(case=CollateCase(spec=("map", "dict", (("t", ("tensor", "int64", (1, 2))), ("n", ("int",)))), batch=2, seed=2,
                          mode="worker"))
@example(case=CollateCase(spec=("ndarray", "<U3", (2,)), batch=2, seed=3, mode="worker"))
@example(case=CollateCase(spec=("map", "FrozenMap", (("p", ("namedtuple", ("tensor", "float64", (2,)), ("int",))),)),
                          batch=3, seed=4, mode="worker", start_method="spawn"))
@example(case=CollateCase(spec=("tuple", (("ndarray", "int16", (2, 1)), ("ragged", ("int",)))), batch=2, seed=5,
                          mode="worker", start_method="forkserver"))
@given(case=collate_cases("worker"))
def test_default_collate_in_worker(conform, case):
    # CPU samples only (a CUDA tensor cannot cross a fork); spawn and forkserver workers get them pickled
    _check(conform, case, "cpu")

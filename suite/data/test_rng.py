"""RNG primitives the samplers and the DataLoader consume, against the pure-Python MT19937 model."""
import pytest
from hypothesis import example, given

from reference import data as R
from suite.data.strategies import rng_cases
from suite.data.torch_side import RngCase, torch_rng

RULE_OF = {"randperm": R.RNG_RANDPERM, "randint": R.RNG_RANDINT, "random64": R.RNG_RANDOM64,
           "multinomial": R.RNG_MULTINOMIAL}


@pytest.mark.rules(*RULE_OF.values(), R.RNG_SEED)
@example(case=RngCase("randperm", 2**40 + 3, n=9))
@example(case=RngCase("randint", 77, n=7, size=33))
@example(case=RngCase("random64", 5, size=3))
@example(case=RngCase("multinomial", 9, size=12, weights=(1.0, 0.5, 3.0)))
@given(case=rng_cases())
def test_rng_primitives(conform, case):
    expected = R.rng_outcome(case)
    actual = torch_rng(case, "cpu")
    conform.check(RULE_OF[case.op], case, expected, actual, torch_fn=torch_rng)
    # Seeds equal mod 2**32 give the same stream (the engine keeps only the low 32 bits).
    alias = type(case)(case.op, case.seed ^ (1 << 40), case.n, case.size, case.weights, case.replacement)
    conform.check(R.RNG_SEED, alias, expected, torch_rng(alias, "cpu"), torch_fn=torch_rng)

"""RNG primitives the samplers and the DataLoader consume, against the pure-Python MT19937 model."""
import dataclasses

import pytest
from hypothesis import example, given

from reference.data import rng as ref
from suite.data.cases import RngCase
from suite.data.strategies import rng_cases
from suite.data.torch_side.rng import run_rng


@pytest.mark.rules(*ref.RULE_OF_OP.values(), ref.RNG_SEED)
@example(case=RngCase("randperm", 2**40 + 3, n=9))
@example(case=RngCase("randint", 77, n=7, size=33))
@example(case=RngCase("random64", 5, size=3))
@example(case=RngCase("multinomial", 9, size=12, weights=(1.0, 0.5, 3.0)))
@given(case=rng_cases())
def test_rng_primitives(conform, case):
    conform.check(case, ref.expectations(case), run=run_rng)
    # the same case with bit 40 of the seed flipped: a seed above 32 bits
    alias = dataclasses.replace(case, seed=case.seed ^ (1 << 40))
    conform.check(alias, ref.seed_expectations(alias), run=run_rng)

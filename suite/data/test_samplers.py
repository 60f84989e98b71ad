"""Samplers: order, length, validation and how much of their generator each pass consumes."""
import pytest
from hypothesis import example, given

from reference.data import samplers as ref
from suite.data.cases import SamplerCase
from suite.data.strategies import sampler_cases
from suite.data.torch_side.samplers import run_distributed_all_ranks, run_sampler


@pytest.mark.rules(ref.S_BASE)
def test_base_class(conform):
    case = SamplerCase("base", 3, 1)
    conform.check(case, ref.expectations(case), run=run_sampler)


@pytest.mark.rules(ref.SEQ_ORDER)
@given(case=sampler_cases("sequential"))
def test_sequential(conform, case):
    conform.check(case, ref.expectations(case), run=run_sampler)


@pytest.mark.rules(ref.RS_PERM, ref.RS_TRUNC, ref.RS_REPEAT, ref.RS_REPL, ref.RS_CONSUME, ref.RS_GLOBAL, ref.RS_VALID,
                   ref.RS_LEN)
@example(case=SamplerCase("random", 5, 1, num_samples=None, passes=2))
@example(case=SamplerCase("random", 5, 2, num_samples=3, use_generator=False))
@example(case=SamplerCase("random", 5, 3, num_samples=12))
@example(case=SamplerCase("random", 5, 4, replacement=True, num_samples=70))
@example(case=SamplerCase("random", 5, 5, replacement=1))
@example(case=SamplerCase("random", 4, 1, num_samples=True))  # registered divergence
@given(case=sampler_cases("random"))
def test_random(conform, case):
    conform.check(case, ref.expectations(case), run=run_sampler)


@pytest.mark.rules(ref.SUBSET_ORDER)
@given(case=sampler_cases("subset_random"))
def test_subset_random(conform, case):
    conform.check(case, ref.expectations(case), run=run_sampler)


@pytest.mark.rules(ref.W_REPL, ref.W_NOREPL, ref.W_ZERO, ref.W_VALID, ref.W_LEN)
@example(case=SamplerCase("weighted", 3, 1, weights=(1.0, 2.0, 0.5), num_samples=9, replacement=True, passes=2))
@example(case=SamplerCase("weighted", 3, 2, weights=(1.0, 2.0, 0.5), num_samples=3, replacement=False))
@example(case=SamplerCase("weighted", 3, 3, weights=(1.0, 0.0, 0.5), num_samples=5, replacement=True))
@example(case=SamplerCase("weighted", 3, 4, weights=(1.0, 2.0, 0.5), num_samples=True))
@example(case=SamplerCase("weighted", 3, 0, weights=(1.0, 0.0, 2.0), num_samples=3, replacement=False))  # divergence
@example(case=SamplerCase("weighted", 2, 6, weights=((1.0, 2.0), (0.5, 1.0)), num_samples=2, replacement=True))
@example(case=SamplerCase("weighted", 3, 5, weights=(2.0 ** -1000, 2.0 ** -999, 2.0 ** -1001), num_samples=4,
                          replacement=True))
@given(case=sampler_cases("weighted"))
def test_weighted(conform, case):
    conform.check(case, ref.expectations(case), run=run_sampler)


@pytest.mark.rules(ref.B_CHUNK, ref.B_DROP, ref.B_LEN, ref.B_VALID)
@example(case=SamplerCase("batch", 10, 1, batch_size=3, drop_last=False, inner="random"))
@example(case=SamplerCase("batch", 10, 1, batch_size=3, drop_last=True))
@example(case=SamplerCase("batch", 10, 1, batch_size=0))
@given(case=sampler_cases("batch"))
def test_batch(conform, case):
    conform.check(case, ref.expectations(case), run=run_sampler)


@pytest.mark.timeout(120)  # the process_group examples initialize a one-rank gloo group (in-process store)
@pytest.mark.rules(ref.D_PAD, ref.D_DROP, ref.D_SHUFFLE, ref.D_LEN, ref.D_VALID, ref.D_STRIDE, ref.D_DEFAULTS,
                   ref.D_GROUP)
@example(case=SamplerCase("distributed", 5, 0, num_replicas=3, rank=1))
@example(case=SamplerCase("distributed", 5, 0, num_replicas=3, rank=2, drop_last=True))
@example(case=SamplerCase("distributed", 7, 0, num_replicas=2, rank=0, shuffle=True, dist_seed=3, epochs=(0, 1, 1)))
@example(case=SamplerCase("distributed", 7, 0, num_replicas=2, rank=2))
@example(case=SamplerCase("distributed", 7, 0, num_replicas=2, rank=5))  # far outside, not only the first rank past
@example(case=SamplerCase("distributed", 7, 0, num_replicas=2, rank=-1))
@example(case=SamplerCase("distributed", 2, 0, num_replicas=5, rank=4))  # padding wraps more than once
# more than 256 samples per replica, shuffled and padded: lengths past CPython's cached small ints (a mutant's
# `len(indices) is not self.num_samples` raises AssertionError on every ordinary dataset of this size)
@example(case=SamplerCase("distributed", 601, 0, num_replicas=2, rank=1, shuffle=True))
@example(case=SamplerCase("distributed", 4, 0, num_replicas=None, rank=0))  # no process group to ask
@example(case=SamplerCase("distributed", 4, 0, num_replicas=2, rank=None))
# shuffle, seed, drop_last left out: 5 items over 2 replicas tell drop_last, two epochs the seed
@example(case=SamplerCase("distributed", 5, 0, num_replicas=2, rank=1, shuffle=None, dist_seed=None, drop_last=None,
                          epochs=(0, 1)))
# num_replicas / rank from an initialized one-rank group; a rank outside it is rejected
@example(case=SamplerCase("distributed", 5, 0, num_replicas=None, rank=None, process_group=True))
@example(case=SamplerCase("distributed", 5, 0, num_replicas=3, rank=None, process_group=True))
@example(case=SamplerCase("distributed", 5, 0, num_replicas=None, rank=1, process_group=True))
@given(case=sampler_cases("distributed"))
def test_distributed(conform, case):
    conform.check(case, ref.expectations(case), run=run_sampler)
    conform.check(case, ref.stride_expectations(case), run=run_distributed_all_ranks)

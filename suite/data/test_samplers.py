"""Samplers: order, length, validation and how much of their generator each pass consumes."""
import pytest
from hypothesis import example, given

from reference import data as R
from suite.data.strategies import sampler_cases
from suite.data.torch_side import (Raised, SamplerCase, sampler_len, sampler_next, sampler_passes, torch_distributed_all_ranks,
                                   torch_sampler)


def _check_sampler(conform, case):
    expected = R.sampler_outcome(case)
    actual = torch_sampler(case, "cpu")
    rule = R.sampler_rule(case)
    if isinstance(expected, Raised) or isinstance(actual, Raised):
        conform.check(rule, case, expected, actual, torch_fn=torch_sampler)
        return
    conform.check(rule, case, expected["passes"], actual["passes"], torch_fn=sampler_passes)
    len_rule = {"random": R.RS_LEN, "batch": R.B_LEN, "distributed": R.D_LEN, "weighted": R.W_LEN}.get(case.kind, rule)
    conform.check(len_rule, case, expected["len"], actual["len"], torch_fn=sampler_len)
    consume_rule = rule
    if case.kind == "random":
        consume_rule = R.RS_CONSUME if case.use_generator else R.RS_GLOBAL
        if rule == R.RS_VALID:
            consume_rule = rule
    conform.check(consume_rule, case, expected["next"], actual["next"], torch_fn=sampler_next)


@pytest.mark.rules(R.SEQ_ORDER)
@given(case=sampler_cases("sequential"))
def test_sequential(conform, case):
    _check_sampler(conform, case)


@pytest.mark.rules(R.RS_PERM, R.RS_TRUNC, R.RS_REPEAT, R.RS_REPL, R.RS_CONSUME, R.RS_GLOBAL, R.RS_VALID, R.RS_LEN)
@example(case=SamplerCase("random", 5, 1, num_samples=None, passes=2))
@example(case=SamplerCase("random", 5, 2, num_samples=3, use_generator=False))
@example(case=SamplerCase("random", 5, 3, num_samples=12))
@example(case=SamplerCase("random", 5, 4, replacement=True, num_samples=70))
@example(case=SamplerCase("random", 5, 5, replacement=1))
@example(case=SamplerCase("random", 4, 1, num_samples=True))  # registered divergence
@given(case=sampler_cases("random"))
def test_random(conform, case):
    _check_sampler(conform, case)


@pytest.mark.rules(R.SUBSET_ORDER)
@given(case=sampler_cases("subset_random"))
def test_subset_random(conform, case):
    _check_sampler(conform, case)


@pytest.mark.rules(R.W_REPL, R.W_NOREPL, R.W_ZERO, R.W_VALID, R.W_LEN)
@example(case=SamplerCase("weighted", 3, 1, weights=(1.0, 2.0, 0.5), num_samples=9, replacement=True, passes=2))
@example(case=SamplerCase("weighted", 3, 2, weights=(1.0, 2.0, 0.5), num_samples=3, replacement=False))
@example(case=SamplerCase("weighted", 3, 3, weights=(1.0, 0.0, 0.5), num_samples=5, replacement=True))
@example(case=SamplerCase("weighted", 3, 4, weights=(1.0, 2.0, 0.5), num_samples=True))
@example(case=SamplerCase("weighted", 3, 0, weights=(1.0, 0.0, 2.0), num_samples=3, replacement=False))  # divergence
@example(case=SamplerCase("weighted", 3, 5, weights=(2.0 ** -1000, 2.0 ** -999, 2.0 ** -1001), num_samples=4,
                          replacement=True))
@given(case=sampler_cases("weighted"))
def test_weighted(conform, case):
    _check_sampler(conform, case)


@pytest.mark.rules(R.B_CHUNK, R.B_DROP, R.B_LEN, R.B_VALID)
@example(case=SamplerCase("batch", 10, 1, batch_size=3, drop_last=False, inner="random"))
@example(case=SamplerCase("batch", 10, 1, batch_size=3, drop_last=True))
@example(case=SamplerCase("batch", 10, 1, batch_size=0))
@given(case=sampler_cases("batch"))
def test_batch(conform, case):
    _check_sampler(conform, case)


@pytest.mark.rules(R.D_PAD, R.D_DROP, R.D_SHUFFLE, R.D_LEN, R.D_VALID, R.D_STRIDE)
@example(case=SamplerCase("distributed", 5, 0, num_replicas=3, rank=1))
@example(case=SamplerCase("distributed", 5, 0, num_replicas=3, rank=2, drop_last=True))
@example(case=SamplerCase("distributed", 7, 0, num_replicas=2, rank=0, shuffle=True, dist_seed=3, epochs=(0, 1, 1)))
@example(case=SamplerCase("distributed", 7, 0, num_replicas=2, rank=2))
@example(case=SamplerCase("distributed", 2, 0, num_replicas=5, rank=4))  # padding wraps more than once
@given(case=sampler_cases("distributed"))
def test_distributed(conform, case):
    _check_sampler(conform, case)
    if 0 <= case.rank < case.num_replicas:
        conform.check(R.D_STRIDE, case, R.distributed_all_ranks(case), torch_distributed_all_ranks(case, "cpu"),
                      torch_fn=torch_distributed_all_ranks)

"""DataLoader construction: validation order and errors, default samplers/collate, len()."""
import pytest
from hypothesis import example, given, settings

from reference.data import loader as ref
from suite.data.cases import LoaderArgsCase, LoaderAttrCase
from suite.data.strategies import len_warning_cases, loader_args_cases, loader_attr_cases, timeout_cases
from suite.data.torch_side.loader import run_iterable_len_warning, run_loader_args, run_loader_attr, run_loader_batches

ERROR_RULES = (ref.L_WORKERS, ref.L_TIMEOUT, ref.L_PREFETCH, ref.L_PREFETCH_POS, ref.L_PERSIST, ref.L_ITER_SHUFFLE,
               ref.L_ITER_SAMPLER, ref.L_SAMPLER_SHUFFLE, ref.L_BATCH_SAMPLER, ref.L_NONE_DROP)


@pytest.mark.rules(*ERROR_RULES, ref.L_DEFAULTS, ref.L_LEN_MAP, ref.L_LEN_ITER, ref.L_ITER_PICKLE)
@pytest.mark.timeout(240)  # cases with iterate=True start fork workers; each is shut down in the torch side
@example(case=LoaderArgsCase(iterable=False, n=4, num_workers=-1))
@example(case=LoaderArgsCase(iterable=False, n=4, timeout=-1.0))
@example(case=LoaderArgsCase(iterable=False, n=4, prefetch_factor=2))
@example(case=LoaderArgsCase(iterable=False, n=4, num_workers=1, prefetch_factor=-1))
@example(case=LoaderArgsCase(iterable=False, n=4, persistent_workers=True))
@example(case=LoaderArgsCase(iterable=True, n=4, shuffle=True))
@example(case=LoaderArgsCase(iterable=True, n=4, sampler=True))
@example(case=LoaderArgsCase(iterable=True, n=4, batch_sampler=True))
@example(case=LoaderArgsCase(iterable=False, n=4, sampler=True, shuffle=True))
@example(case=LoaderArgsCase(iterable=False, n=4, batch_sampler=True, drop_last=True))
@example(case=LoaderArgsCase(iterable=False, n=4, batch_sampler=True, batch_size=None))
@example(case=LoaderArgsCase(iterable=False, n=4, batch_sampler=True))
@example(case=LoaderArgsCase(iterable=False, n=4, batch_size=None, drop_last=True))
@example(case=LoaderArgsCase(iterable=False, n=5, batch_size=2, shuffle=True, drop_last=True))
@example(case=LoaderArgsCase(iterable=True, n=5, batch_size=2, declared_len=5))
@example(case=LoaderArgsCase(iterable=True, n=5, batch_size=2))
@example(case=LoaderArgsCase(iterable=False, n=0, shuffle=True))  # registered divergence
@example(case=LoaderArgsCase(iterable=False, n=5, batch_size=2, iterate=True))  # an iterator: len, pickling
@example(case=LoaderArgsCase(iterable=True, n=5, batch_size=2, declared_len=5, iterate=True))
@example(case=LoaderArgsCase(iterable=False, n=4, batch_size=3, drop_last=True, num_workers=1, iterate=True))
@given(case=loader_args_cases())
def test_construction(conform, case):
    conform.check(case, ref.expectations(case), run=run_loader_args)


@pytest.mark.rules(ref.L_LEN_WARN)
@pytest.mark.timeout(120)
@example(case=LoaderArgsCase(iterable=True, n=4, batch_size=None, declared_len=2, num_workers=1))  # a fork worker
@given(case=len_warning_cases())
def test_iterable_len_warning(conform, case):
    conform.check(case, ref.len_warning_expectations(case), run=run_iterable_len_warning)


@pytest.mark.rules(ref.L_MP_CONTEXT, ref.L_FROZEN)
@example(case=LoaderAttrCase(0, "fork", "batch_size"))
@example(case=LoaderAttrCase(1, "bogus", "batch_size"))
@example(case=LoaderAttrCase(1, "object", "batch_size"))
@example(case=LoaderAttrCase(1, "spawn_context", "sampler"))
@example(case=LoaderAttrCase(0, "none", "num_workers"))
@given(case=loader_attr_cases())
def test_context_and_frozen_attributes(conform, case):
    conform.check(case, ref.attr_expectations(case), run=run_loader_attr)


@pytest.mark.rules(ref.L_TIMEOUT_MOOT)
@settings(max_examples=min(6, settings.default.max_examples))
@example(case=LoaderArgsCase(iterable=False, n=4, timeout=5.0))  # a registered divergence
@example(case=LoaderArgsCase(iterable=True, n=5, batch_size=2, timeout=0.0))
@given(case=timeout_cases())
def test_timeout_without_workers(conform, case):
    conform.check(case, ref.timeout_expectations(case), run=run_loader_batches)

"""DataLoader construction: validation order and errors, default samplers/collate, len()."""
import pytest
from hypothesis import example, given

from reference import data as R
from suite.data.strategies import loader_args_cases
from suite.data.torch_side import (LoaderArgsCase, LoaderAttrCase, Raised, loader_args_config, loader_args_len,
                                   torch_iterable_len_warning, torch_loader_args,
                                   torch_loader_attr, torch_loader_attr_context, torch_loader_attr_set)
from hypothesis import strategies as st

ERROR_RULES = (R.L_WORKERS, R.L_TIMEOUT, R.L_PREFETCH, R.L_PREFETCH_POS, R.L_PERSIST, R.L_ITER_SHUFFLE,
               R.L_ITER_SAMPLER, R.L_SAMPLER_SHUFFLE, R.L_BATCH_SAMPLER, R.L_NONE_DROP)


@pytest.mark.rules(*ERROR_RULES, R.L_DEFAULTS, R.L_LEN_MAP, R.L_LEN_ITER)
@pytest.mark.timeout(240)  # cases with iterate=True start fork workers; each is shut down in torch_side
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
@given(case=loader_args_cases())
def test_construction(conform, case):
    rule, expected = R.loader_args_outcome(case)
    if isinstance(expected, Raised):
        conform.check(rule, case, expected, torch_loader_args(case, "cpu"), torch_fn=torch_loader_args)
        return
    actual = torch_loader_args(case, "cpu")
    if isinstance(actual, Raised):  # torch refused a configuration the reference accepts
        conform.check(R.L_DEFAULTS, case, expected, actual, torch_fn=torch_loader_args)
        return
    config = {k: v for k, v in expected.items() if k != "len"}
    conform.check(R.L_DEFAULTS, case, config, loader_args_config(case, "cpu"), torch_fn=loader_args_config)
    len_rule = R.L_LEN_ITER if case.iterable else R.L_LEN_MAP
    conform.check(len_rule, case, expected["len"], actual if isinstance(actual, Raised) else actual["len"],
                  torch_fn=loader_args_len)


@st.composite
def len_warning_cases(draw):
    declared = draw(st.integers(0, 8))
    return LoaderArgsCase(iterable=True, n=draw(st.integers(0, 14)), batch_size=draw(st.sampled_from([None, 1, 2, 3])),
                          drop_last=draw(st.booleans()), declared_len=declared)


@pytest.mark.rules(R.L_LEN_WARN)
@given(case=len_warning_cases())
def test_iterable_len_warning(conform, case):
    if case.batch_size is None and case.drop_last:
        case = LoaderArgsCase(**{**case.__dict__, "drop_last": False})
    conform.check(R.L_LEN_WARN, case, R.iterable_len_warning_outcome(case), torch_iterable_len_warning(case, "cpu"),
                  torch_fn=torch_iterable_len_warning)


ATTRS = R.FROZEN_ATTRS + ("num_workers", "timeout", "collate_fn", "worker_init_fn", "generator")
CONTEXTS = ("none", "fork", "spawn", "forkserver", "bogus", "spawn_context", "object")


@pytest.mark.rules(R.L_MP_CONTEXT, R.L_FROZEN)
@example(case=LoaderAttrCase(0, "fork", "batch_size"))
@example(case=LoaderAttrCase(1, "bogus", "batch_size"))
@example(case=LoaderAttrCase(1, "object", "batch_size"))
@example(case=LoaderAttrCase(1, "spawn_context", "sampler"))
@example(case=LoaderAttrCase(0, "none", "num_workers"))
@given(case=st.builds(LoaderAttrCase, st.sampled_from([0, 1]), st.sampled_from(CONTEXTS), st.sampled_from(ATTRS)))
def test_context_and_frozen_attributes(conform, case):
    expected = R.loader_attr_outcome(case)
    actual = torch_loader_attr(case, "cpu")
    conform.check(R.L_MP_CONTEXT, case, expected["context"], actual["context"], torch_fn=torch_loader_attr_context)
    if "set" in expected or "set" in actual:
        conform.check(R.L_FROZEN, case, expected.get("set"), actual.get("set"), torch_fn=torch_loader_attr_set)

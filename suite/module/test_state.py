"""load_state_dict against the model (reference/module/state.py): keys, strictness,
errors (the whole message), copy vs assign, post hooks, on random trees with
None entries, None and shared children, and perturbed state dicts."""
from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference.module import state as ref
from suite.module.cases import make_inputs
from suite.module.strategies import load_cases
from suite.module.torch_side.state import run_load


def _check(conform, case):
    conform.check(case, ref.expectations(case, make_inputs(case)), run=run_load)


@pytest.mark.rules(ref.LOAD_KEYS, ref.LOAD_STRICT, ref.LOAD_SIZE, ref.LOAD_NONE, ref.LOAD_VALUES, ref.LOAD_ASSIGN,
                   ref.LOAD_POST_HOOKS, ref.LOAD_EXTRA_STATE)
@settings(max_examples=max(settings.default.max_examples, 100))  # ~10 ms an example
@given(case=load_cases())
def test_load_state_dict(conform, device, case):
    _check(conform, case)
    # the same load seen through every observable
    for what in ("result", "values", "identity", "post_hooks", "extra"):
        if what != case.observe:
            _check(conform, replace(case, observe=what))


@pytest.mark.rules(ref.LOAD_ASSIGN)
@settings(max_examples=max(settings.default.max_examples, 50))
@given(case=load_cases(observe=st.just("identity")))
def test_load_state_dict_twice_from_one_dict(conform, device, case):
    """Loading a state dict (with _metadata, as state_dict() returns) with assign=True must not change
    how a later load of the same dict behaves."""
    case = replace(case, with_metadata=True, preload_assign=True)
    _check(conform, case)

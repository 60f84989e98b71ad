"""load_state_dict against the model (reference/module/state.py): keys, strictness,
errors (the whole message), copy vs assign, post hooks, on random trees with
None entries, None and shared children, and perturbed state dicts."""
from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reference.module import state as ref
from suite.module.cases import LoadCase, Spec, make_inputs
from suite.module.strategies import LOAD_OBSERVABLES, load_cases
from suite.module.torch_side.state import run_load


def _check(conform, case):
    conform.check(case, ref.expectations(case, make_inputs(case)), run=run_load)


@pytest.mark.rules(ref.LOAD_KEYS, ref.LOAD_STRICT, ref.LOAD_SIZE, ref.LOAD_NONE, ref.LOAD_VALUES, ref.LOAD_ASSIGN,
                   ref.LOAD_POST_HOOKS, ref.LOAD_EXTRA_STATE, ref.LOAD_PRE_HOOKS)
@settings(max_examples=max(settings.default.max_examples, 100))  # ~10 ms an example
@given(case=load_cases())
# a 1-element 1-d value for a 0-d parameter (the documented backward compatibility); load pre-hooks on a shared
# child, through a pickled copy
@example(case=LoadCase(Spec(params=(("w", ()),), buffers=(("r", (2,), True),)), (("w", (1,)), ("r", (2,)))))
@example(case=LoadCase(Spec(params=(("w", (2,)),), children=(("c", Spec(params=(("w", (1,)),))),), share="e"),
                       (("w", (2,)), ("c.w", (1,)), ("e.w", (1,))),
                       observe="pre_hooks" if "pre_hooks" in LOAD_OBSERVABLES else "post_hooks", copy="pickle"))
# the swap flag, copying and assigning, a parameter and a buffer
@example(case=LoadCase(Spec(params=(("w", (2,)),), buffers=(("r", (2,), True),)), (("w", (2,)), ("r", (2,))),
                       swap=True, observe="identity"))
@example(case=LoadCase(Spec(params=(("w", (2,)),), buffers=(("r", (2,), True),)), (("w", (2,)), ("r", (2,))),
                       assign=True, swap=True, observe="identity"))
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


@pytest.mark.rules(ref.LOAD_RESULT_REPR)
@pytest.mark.parametrize("case", [
    LoadCase(Spec(params=(("w", (2,)),)), (("w", (2,)),), strict=False, observe="repr"),
    LoadCase(Spec(params=(("w", (2,)), ("b", (1,)))), (("w", (2,)), ("zz", (1,))), strict=False, observe="repr"),
    # only missing keys, only unexpected keys: either list alone makes it the named tuple
    LoadCase(Spec(params=(("w", (2,)), ("b", (1,)))), (("w", (2,)),), strict=False, observe="repr"),
    LoadCase(Spec(params=(("w", (2,)),)), (("w", (2,)), ("zz", (1,))), strict=False, observe="repr")])
def test_load_result_repr(conform, device, case):
    _check(conform, case)

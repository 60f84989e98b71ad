"""Forward (pre-)hooks, global hooks, always_call, handles and full backward
hooks against the model (reference/module/hooks.py)."""
from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reference.module import hooks as ref
from suite.module.cases import BackwardCase, GlobalHookRemoval, Hook, HookCase, LegacyBackwardCase, \
    backward_inputs
from suite.module.strategies import GLOBAL_KWARGS, hooks
from suite.module.torch_side.hooks import run_backward, run_global_hook_removal, run_hooks, run_legacy_backward


@pytest.mark.rules(ref.HOOK_ORDER, ref.HOOK_PREPEND, ref.HOOK_RETURN, ref.HOOK_KWARGS, ref.HOOK_ALWAYS, ref.HOOK_REMOVE)
@settings(max_examples=max(settings.default.max_examples, 200))  # ~1 ms an example; one rule per case
@given(case=st.builds(HookCase, st.lists(hooks(), max_size=5).map(tuple), st.integers(-3, 3),
                      st.one_of(st.none(), st.integers(0, 3)), st.booleans()))
# Drawn cases credit one rule each (reference/module/hooks.py forward_rule: the most specific feature wins), so a
# case with prepend alone is rare; these explicit examples reach module.hooks.prepend in every profile.
@example(case=HookCase((Hook("pre"), Hook("pre", prepend=True), Hook("post"), Hook("post", prepend=True)), x=2))
@example(case=HookCase((Hook("gpost"), Hook("post"), Hook("post", prepend=True)), x=-1))
def test_forward_hooks(conform, device, case):
    conform.check(case, ref.expectations(case), run=run_hooks)


@pytest.mark.rules(ref.BACKWARD_HOOKS)
@given(case=st.builds(
    BackwardCase, st.integers(0, 2**16), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
    st.lists(st.tuples(st.sampled_from(["bpre", "bpost", "gbpre", "gbpost"]), st.sampled_from([0, 0, 2, 3]),
                       st.booleans()), max_size=4).map(tuple),
    st.booleans()))
def test_full_backward_hooks(conform, device, case):
    conform.check(case, ref.backward_expectations(case, backward_inputs(case)), run=run_backward)


@pytest.mark.rules(ref.HOOK_REMOVE)
@given(case=st.builds(GlobalHookRemoval, st.booleans() if GLOBAL_KWARGS else st.just(False), st.booleans()))
def test_global_forward_hook_removal(conform, device, case):
    conform.check(case, ref.removal_expectations(case), run=run_global_hook_removal)


@pytest.mark.rules(ref.LEGACY_BACKWARD)
@pytest.mark.parametrize("order", ["legacy_then_full", "full_then_legacy", "global_full_then_legacy", "call"])
def test_legacy_backward_hooks(conform, device, order):
    case = LegacyBackwardCase(order)
    conform.check(case, ref.legacy_backward_expectations(case, backward_inputs(BackwardCase(0, 2, 2, 2, ()))),
                  run=run_legacy_backward)

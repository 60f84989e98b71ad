"""Forward (pre-)hooks, global hooks, always_call, handles and full backward
hooks against the model (reference/module/hooks.py)."""
from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reference.module import hooks as ref
from reference.versions import since
from suite.module.cases import BackwardCase, GlobalHookRemoval, Hook, HookCase, backward_inputs
from suite.module.torch_side.hooks import run_backward, run_global_hook_removal, run_hooks


GLOBAL_KWARGS = since("2.6")


@st.composite
def hooks(draw):
    kind = draw(st.sampled_from(["pre", "post", "pre", "post", "gpre", "gpost"]))
    local = kind in ("pre", "post")
    # register_module_forward_hook(with_kwargs=) is new in torch 2.6 (absent from 2.4.1 and 2.5.1): before it,
    # global forward hooks are drawn without kwargs (the module's own with_kwargs hooks still are)
    with_kwargs = draw(st.booleans()) if kind == "pre" or kind == "post" or (kind == "gpost" and GLOBAL_KWARGS) \
        else False
    rets = ["none", "replace"] + (["replace_tuple"] if kind in ("pre", "gpre") and not with_kwargs else []) \
        + (["bad"] if kind == "pre" and with_kwargs else [])
    # a raising hook (1 in 8): exercises always_call hooks after some post hooks already ran
    ret = "raise" if draw(st.integers(0, 7)) == 0 else draw(st.sampled_from(rets))
    return Hook(kind, ret, prepend=local and draw(st.booleans()), with_kwargs=with_kwargs,
                always_call=kind in ("post", "gpost") and draw(st.booleans()), remove=draw(st.booleans()) and
                draw(st.booleans()))


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

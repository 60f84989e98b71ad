"""Registered divergences of forward hooks (HookCase, GlobalHookRemoval cases)."""
from __future__ import annotations

from reference.module import hooks as hooks_ref
from suite.divergences import Divergence
from suite.module.cases import GlobalHookRemoval, Hook, HookCase
from suite.module.torch_side.hooks import run_global_hook_removal, run_hooks

MODULE_PY = "torch/nn/modules/module.py"


def _torch_runs_on_error(hook) -> bool:
    """torch: on the error path global forward hooks are called as hook(module, args, output); a with_kwargs one
    fails with TypeError, which is silenced, so it never runs."""
    return hook.always_call and not (hook.kind == "gpost" and hook.with_kwargs)


DIVERGENCES = [
    Divergence(
        id="module-global-forward-hook-kwargs-always-call-skipped",
        case_type=HookCase,
        rule=hooks_ref.HOOK_ALWAYS,
        torch=">=2.6",
        reason="A global forward hook registered with with_kwargs=True and always_call=True is not run when "
               "the call raises (in forward or in a hook): the error path calls it as hook(module, args, output) without kwargs, the "
               "resulting TypeError is silenced into a warning, so the hook never runs.",
        evidence=f"{MODULE_PY}: Module._call_impl, except branch: 'hook_result = hook(self, args, result)' for "
                 "_global_forward_hooks (the module-level branch checks _forward_hooks_with_kwargs, the global "
                 "one ignores _global_forward_hooks_with_kwargs); register_module_forward_hook documents "
                 "always_call: 'the hook will be run regardless of whether an exception is raised'.",
        when=lambda case: hooks_ref.raises(case) and any(
            h.kind == "gpost" and h.with_kwargs and h.always_call and not h.remove for h in case.hooks),
        torch_does=lambda case, expected: hooks_ref.run_forward(case, _torch_runs_on_error),
        repro=HookCase((Hook("gpost", with_kwargs=True, always_call=True),), fail=True),
        expect=lambda case, device: hooks_ref.expectations(case),
        run=run_hooks,
    ),
    Divergence(
        id="module-global-forward-hook-remove-leaves-kwargs-entry",
        case_type=GlobalHookRemoval,
        rule=hooks_ref.HOOK_REMOVE,
        torch=">=2.6",
        reason="Removing a global forward hook registered with with_kwargs=True leaves its id in "
               "_global_forward_hooks_with_kwargs, so _has_any_global_hook() stays true for the rest of the process "
               "and torch.compile(module) keeps warning about global hooks that no longer exist.",
        evidence=f"{MODULE_PY}: register_module_forward_hook creates RemovableHandle(_global_forward_hooks, "
                 "extra_dict=_global_forward_hooks_always_called) -- the with_kwargs registry is not in extra_dict "
                 "(the module-level register_forward_hook lists both); torch/_dynamo/eval_frame.py: "
                 "OptimizedModule.__call__ warns when _has_any_global_hook().",
        when=lambda case: case.with_kwargs,
        torch_does=lambda case, expected: ["_global_forward_hooks_with_kwargs"],
        repro=GlobalHookRemoval(with_kwargs=True, always_call=False),
        expect=lambda case, device: hooks_ref.removal_expectations(case),
        run=run_global_hook_removal,
    ),
]

"""Model of Module.__call__ with forward (pre-)hooks, global hooks and full
backward (pre-)hooks, from the docstrings of register_forward_pre_hook,
register_forward_hook, register_module_forward_(pre_)hook,
register_full_backward_(pre_)hook.  Gradients in numpy float64."""
from __future__ import annotations

import numpy as np

from conform.expect import Expect
from conform.outcome import OneOf, Raised
from conform.rules import rule
from reference.module.tolerances import BACKWARD_TOL

SRC = "torch/nn/modules/module.py"

HOOK_ORDER = rule("module.hooks.forward_order",
    "Forward pre-hooks run before forward, forward hooks after it, each in registration order; global hooks "
    "(register_module_forward_(pre_)hook) run before the module's own.", f"{SRC}: Module.register_forward_pre_hook, "
    "register_module_forward_hook")
HOOK_PREPEND = rule("module.hooks.prepend",
    "prepend=True fires the hook before all the module's existing hooks of that kind (still after global hooks).",
    f"{SRC}: Module.register_forward_hook (prepend)")
HOOK_RETURN = rule("module.hooks.return_replaces",
    "A pre-hook's non-None return replaces the positional input (a non-tuple is wrapped in a 1-tuple); a forward "
    "hook's non-None return replaces the output seen by later hooks and the caller.",
    f"{SRC}: Module.register_forward_pre_hook, register_forward_hook")
HOOK_KWARGS = rule("module.hooks.with_kwargs",
    "with_kwargs=True hooks receive the forward kwargs (others only positional args); such a pre-hook must "
    "return None or (args, kwargs), anything else raises RuntimeError.", f"{SRC}: Module.register_forward_pre_hook")
HOOK_ALWAYS = rule("module.hooks.always_call",
    "When the call raises (in forward or a hook), forward hooks registered with always_call=True (global and module) "
    "that have not run yet still run (once), with the output so far (None if forward did not return), the others "
    "do not; an exception they raise is silenced and the original one propagates.",
    f"{SRC}: Module.register_forward_hook, "
    "register_module_forward_hook (always_call)")
HOOK_REMOVE = rule("module.hooks.handle_remove",
    "handle.remove() unregisters exactly that hook.", "torch/utils/hooks.py: RemovableHandle.remove")
LEGACY_BACKWARD = rule("module.hooks.legacy_backward",
    "register_backward_hook (deprecated) and register_full_backward_hook cannot be mixed on one module, nor "
    "register_module_backward_hook and register_module_full_backward_hook globally: the later registration raises "
    "RuntimeError 'Cannot use both regular backward hooks and full backward hooks'; a legacy hook alone is called "
    "once per backward with grad_output, the gradient with respect to the module's output.",
    f"{SRC}: Module.register_backward_hook, Module.register_full_backward_hook, register_module_backward_hook, "
    "register_module_full_backward_hook")
BACKWARD_HOOKS = rule("module.hooks.full_backward",
    "Full backward pre-hooks see grad_output (global first, then the module's, prepend first) and may replace it; "
    "full backward hooks then see (grad_input for positional inputs, grad_output) and may replace grad_input, "
    "which is what reaches the input; with no input requiring grad, grad_input is (None,).",
    f"{SRC}: Module.register_full_backward_hook, register_full_backward_pre_hook")


def _ordered(hooks, kinds):
    """Indices of live hooks of the given kinds in firing order: global ones in registration order first,
    then the module's (prepend puts a hook in front of those registered before it)."""
    glob = [i for i, h in enumerate(hooks) if h.kind == kinds[1] and not h.remove]
    local: list = []
    for i, h in enumerate(hooks):
        if h.kind == kinds[0] and not h.remove:
            if h.prepend:
                local.insert(0, i)
            else:
                local.append(i)
    return glob + local


def raises(case) -> bool:
    """The call raises: forward fails, a with_kwargs pre-hook returns a bad value, or a live hook raises."""
    return case.fail or any((h.kind == "pre" and h.with_kwargs and h.ret == "bad" or h.ret == "raise")
                            and not h.remove for h in case.hooks)


def _hook_error(i: int) -> _Error:
    """What a hook with ret "raise" raises (suite/module/torch_side/hooks.py: _make_hook)."""
    return _Error(Raised("ArithmeticError", f"hook h{i} failed"))


def forward_rule(case) -> str:
    hooks = [h for h in case.hooks if not h.remove]
    if raises(case) and any(h.always_call for h in hooks):
        return HOOK_ALWAYS
    if any(h.remove for h in case.hooks):
        return HOOK_REMOVE
    if any(h.with_kwargs for h in hooks):
        return HOOK_KWARGS
    if any(h.ret != "none" for h in hooks):
        return HOOK_RETURN
    if any(h.prepend for h in hooks):
        return HOOK_PREPEND
    return HOOK_ORDER


def _runs_on_error(hook) -> bool:
    """Documented: a forward hook registered with always_call=True runs when the call raises."""
    return hook.always_call


def run_forward(case, runs_on_error=_runs_on_error):
    """(calls, result) of calling the hooked doubler.  ``runs_on_error(hook)`` says which forward hooks
    that have not run yet are run when the call raises (documented: the always_call ones)."""
    calls: list = []
    args = [case.x]
    kwargs = {} if case.b is None else {"b": case.b}
    result = None
    pres = _ordered(case.hooks, ("pre", "gpre"))
    posts = _ordered(case.hooks, ("post", "gpost"))
    called = set()
    try:
        for i in pres:
            h = case.hooks[i]
            add = 100 * (i + 1)
            if h.with_kwargs and h.kind == "pre":
                calls.append((f"h{i}", list(args), dict(kwargs)))
                if h.ret == "replace":
                    args, kwargs = [args[0] + add], {**kwargs, "b": kwargs.get("b", 0) + 1}
                elif h.ret == "bad":
                    raise _Error(Raised("RuntimeError", "forward pre-hook must return None or a tuple of "
                                                        r"\(new_args, new_kwargs\)"))
            else:
                calls.append((f"h{i}", list(args)))
                if h.ret in ("replace", "replace_tuple"):
                    args = [args[0] + add]
            if h.ret == "raise":
                raise _hook_error(i)
        if case.fail:
            raise _Error(Raised("ValueError", "forward failed"))
        result = args[0] * 2 + kwargs.get("b", 0)
        for i in posts:
            h = case.hooks[i]
            called.add(i)  # marked before the call: a raising always_call hook is not run again
            result = _post(h, i, args, kwargs, result, calls)
        return calls, result
    except _Error as err:
        for i in posts:
            h = case.hooks[i]
            if runs_on_error(h) and i not in called:
                try:
                    result = _post(h, i, args, kwargs, result, calls)
                except (TypeError, _Error):
                    pass  # an always_call hook failing (on output None, or raising) is silenced (a warning)
        return calls, err.outcome


def _post(h, i, args, kwargs, output, calls):
    add = 100 * (i + 1)
    if h.with_kwargs:
        calls.append((f"h{i}", list(args), dict(kwargs), output))
        if h.ret == "raise":
            raise _hook_error(i)
        if h.ret != "none":
            if output is None:
                raise TypeError("None + int")
            return output + add
        return output
    calls.append((f"h{i}", list(args), output))
    if h.ret == "raise":
        raise _hook_error(i)
    return output if h.ret == "none" else (output or 0) + add


class _Error(Exception):
    def __init__(self, outcome):
        super().__init__()
        self.outcome = outcome


def run_backward(case, inputs):
    """(calls, x.grad, w.grad) for y = x @ W.T with the case's full backward hooks; ``inputs``: W, x and
    the upstream gradient (suite/module/cases.py: backward_inputs)."""
    w, x, up = inputs["w"], inputs["x"], inputs["up"]

    def order(kind, gkind):
        glob = [i for i, h in enumerate(case.hooks) if h[0] == gkind]
        local: list = []
        for i, h in enumerate(case.hooks):
            if h[0] == kind:
                local.insert(0, i) if h[2] else local.append(i)
        return glob + local

    calls = []
    g_out = up
    for i in order("bpre", "gbpre"):
        calls.append((f"h{i}", [g_out]))
        if case.hooks[i][1]:
            g_out = g_out * case.hooks[i][1]
    grad_w = g_out.T @ x  # dL/dW for y = x W^T
    g_in = g_out @ w if case.x_requires_grad else None
    for i in order("bpost", "gbpost"):
        calls.append((f"h{i}", [g_in], [g_out]))
        if case.hooks[i][1] and g_in is not None:
            g_in = g_in * case.hooks[i][1]
    return calls, g_in, grad_w


def global_hook_removal(case) -> list:
    """handle.remove() leaves no trace of the hook in any global registry."""
    return []


# ---- expectations --------------------------------------------------------------------
def expectations(case, runs_on_error=_runs_on_error) -> list[Expect]:
    """A HookCase: the one rule its most specific feature is about (forward_rule), calls and result."""
    return [Expect(forward_rule(case), run_forward(case, runs_on_error))]


def program_expectations(program) -> list[Expect]:
    """A HookProgram: each call behaves as a fresh module with the hooks live at that moment would (the history of
    registrations, removals and earlier calls changes nothing else), under the rule of its most specific feature."""
    from dataclasses import replace
    from types import SimpleNamespace

    hooks: list = []
    expects = []
    for step in program.steps:
        if step[0] == "add":
            hooks.append(replace(step[1], remove=False))
        elif step[0] == "remove":
            hooks[step[1]] = replace(hooks[step[1]], remove=True)
        else:
            case = SimpleNamespace(hooks=tuple(hooks), x=step[1], b=step[2], fail=step[3])  # a HookCase's fields
            expects.append(Expect(forward_rule(case), run_forward(case), key=len(expects)))
    return expects


def backward_expectations(case, inputs) -> list[Expect]:
    return [Expect(BACKWARD_HOOKS, run_backward(case, inputs), BACKWARD_TOL)]


def removal_expectations(case) -> list[Expect]:
    """A GlobalHookRemoval case: which global forward-hook registries still mention the removed hook."""
    return [Expect(HOOK_REMOVE, global_hook_removal(case))]


def legacy_backward_expectations(case, inputs) -> list[Expect]:
    """A LegacyBackwardCase: the outcome of the later registration, or the legacy hook's calls (grad_output)."""
    if case.order == "call":
        return [Expect(LEGACY_BACKWARD, [[inputs["up"]]], BACKWARD_TOL)]
    where = "as a global Module hook" if case.order.startswith("global") else "on a single Module"
    return [Expect(LEGACY_BACKWARD, Raised("RuntimeError", "Cannot use both regular backward hooks and full backward "
                                                           f"hooks {where}"))]


# ---- a forward whose output is not a Tensor or a tuple --------------------------------
BACKWARD_HOOK_FIRES = rule("module.hooks.full_backward_fires",
    "A full backward hook fires once per backward when the gradients with respect to the module's inputs are "
    "computed (firing rule 1), whatever structure the forward returns its tensors in (the docstring sets no "
    "condition on the output's type); the hook does not change the input's gradient when it returns None. torch "
    "may warn.", f"{SRC}: Module.register_full_backward_hook ('1. Ordinarily, the hook fires when the gradients "
    "are computed with respect to the module inputs.')")


def backward_hook_output_expectations(case) -> list[Expect]:
    """y = {"y": 2 x} (or [2 x]) from a module with one full backward hook returning None; y.sum().backward():
    the hook's calls, x.grad (2 everywhere), the first warning (undocumented: any or none)."""
    return [Expect(BACKWARD_HOOK_FIRES, 1, key="calls"), Expect(BACKWARD_HOOK_FIRES, np.full(2, 2.0), key="grad"),
            Expect(BACKWARD_HOOK_FIRES, OneOf(None, Raised("UserWarning")), key="warning")]

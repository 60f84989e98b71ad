"""Torch side of the forward/backward hook checks.

Forward: a module computing ``x * 2 + b`` on Python ints (so every value is
exact) or raising; hooks record what they see and may replace values by adding
a constant that identifies them.  Backward: ``y = x @ W.T`` with full backward
(pre-)hooks that record and optionally scale the gradients.
"""
from __future__ import annotations

import warnings

import torch
from torch.nn.modules import module as nn_module

from conform.outcome import Raised
from suite.module.cases import BackwardCase, GlobalHookRemoval, Hook, HookCase, HookProgram, LegacyBackwardCase, \
    backward_inputs


class _Doubler(torch.nn.Module):
    def __init__(self, fail: bool):
        super().__init__()
        self.fail = fail

    def forward(self, x, b=0):
        if self.fail:
            raise ValueError("forward failed")
        return x * 2 + b


def _make_hook(i: int, h: Hook, calls: list):
    hook = _recording_hook(i, h, calls)
    if h.ret != "raise":
        return hook

    def raising(*args):
        hook(*args)  # records the call; ret "raise" replaces nothing
        raise ArithmeticError(f"hook h{i} failed")
    return raising


def _recording_hook(i: int, h: Hook, calls: list):
    tag, add = f"h{i}", 100 * (i + 1)
    if h.kind in ("pre", "gpre"):
        if h.with_kwargs:
            def hook(module, args, kwargs):
                calls.append((tag, list(args), dict(kwargs)))
                if h.ret == "replace":
                    return (args[0] + add,), {**kwargs, "b": kwargs.get("b", 0) + 1}
                if h.ret == "bad":
                    return args[0]
                return None
        else:
            def hook(module, args):
                calls.append((tag, list(args)))
                if h.ret == "replace":
                    return args[0] + add
                if h.ret == "replace_tuple":
                    return (args[0] + add,)
                return None
    elif h.with_kwargs:
        def hook(module, args, kwargs, output):
            calls.append((tag, list(args), dict(kwargs), output))
            return None if h.ret in ("none", "raise") else output + add
    else:
        def hook(module, args, output):
            calls.append((tag, list(args), output))
            return None if h.ret in ("none", "raise") else (output or 0) + add
    return hook


def _global_kwargs(with_kwargs: bool, always_call: bool) -> dict:
    """register_module_forward_hook's keyword arguments, each passed only when not its default (False): releases
    before with_kwargs existed (torch < 2.6) take the others."""
    return {k: v for k, v in (("with_kwargs", with_kwargs), ("always_call", always_call)) if v}


def _register(m, i: int, h: Hook, calls: list):
    fn = _make_hook(i, h, calls)
    # each flag passed only when set: its documented default (False) is then what torch uses
    flags = {k: v for k, v in (("prepend", h.prepend), ("with_kwargs", h.with_kwargs)) if v}
    if h.kind == "pre":
        return m.register_forward_pre_hook(fn, **flags)
    if h.kind == "post":
        return m.register_forward_hook(fn, **flags, **({"always_call": True} if h.always_call else {}))
    if h.kind == "gpre":
        return nn_module.register_module_forward_pre_hook(fn)
    return nn_module.register_module_forward_hook(fn, **_global_kwargs(h.with_kwargs, h.always_call))


def _call(m, x, b):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # silenced always_call errors warn; not under test here
        try:
            return m(x) if b is None else m(x, b=b)
        except Exception as exc:
            return Raised.from_exception(exc)


def run_hooks(case: HookCase, device: str):
    """(calls in order, result or Raised).  Global hooks are removed before returning."""
    m = _Doubler(case.fail)
    calls: list = []
    handles = []
    try:
        for i, h in enumerate(case.hooks):
            handles.append(_register(m, i, h, calls))
        for handle, h in zip(handles, case.hooks):
            if h.remove:
                handle.remove()
        result = _call(m, case.x, case.b)
    finally:
        for handle in handles:
            handle.remove()
    return calls, result


def run_hook_program(program: HookProgram, device: str):
    """Every call's (calls, result), the program's steps replayed on one module.  Global hooks are removed
    before returning."""
    m = _Doubler(False)
    calls: list = []
    handles: list = []
    outcomes = []
    try:
        for step in program.steps:
            if step[0] == "add":
                handles.append(_register(m, len(handles), step[1], calls))
            elif step[0] == "remove":
                handles[step[1]].remove()
            else:
                x, b, m.fail = step[1:]
                start = len(calls)
                result = _call(m, x, b)
                outcomes.append((calls[start:], result))
    finally:
        for handle in handles:
            handle.remove()
    return outcomes


class _Linear(torch.nn.Module):
    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(w)

    def forward(self, x):
        return x @ self.w.t()


def _np(t):
    return None if t is None else t.detach().cpu().numpy()


def run_backward(case: BackwardCase, device: str):
    """(calls: per hook (tag, grad tensors seen), x.grad, w.grad) in float64."""
    inp = backward_inputs(case)
    m = _Linear(torch.tensor(inp["w"]).to(device))
    x = torch.tensor(inp["x"]).to(device).requires_grad_(case.x_requires_grad)
    calls: list = []
    handles = []
    try:
        for i, (kind, scale, prepend) in enumerate(case.hooks):
            tag = f"h{i}"
            if kind in ("bpre", "gbpre"):
                def hook(module, grad_output, tag=tag, scale=scale):
                    calls.append((tag, [_np(g) for g in grad_output]))
                    return tuple(g * scale for g in grad_output) if scale else None
                handle = (m.register_full_backward_pre_hook(hook, prepend=prepend) if kind == "bpre"
                          else nn_module.register_module_full_backward_pre_hook(hook))
            else:
                def hook(module, grad_input, grad_output, tag=tag, scale=scale):
                    calls.append((tag, [_np(g) for g in grad_input], [_np(g) for g in grad_output]))
                    if scale and grad_input[0] is not None:
                        return tuple(None if g is None else g * scale for g in grad_input)
                    return None
                handle = (m.register_full_backward_hook(hook, prepend=prepend) if kind == "bpost"
                          else nn_module.register_module_full_backward_hook(hook))
            handles.append(handle)
        y = m(x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "hook is firing ... no inputs require gradients": not under test
            y.backward(torch.tensor(inp["up"]).to(device))
    finally:
        for handle in handles:
            handle.remove()
    return calls, _np(x.grad), _np(m.w.grad)


def run_global_hook_removal(case: GlobalHookRemoval, device: str):
    """Which of the global forward-hook registries still mention a hook after handle.remove().

    (A leftover entry keeps torch.nn.modules.module._has_any_global_hook() true, which makes
    torch.compile(module) warn about global hooks that no longer exist.)"""
    handle = nn_module.register_module_forward_hook(lambda *a: None,
                                                    **_global_kwargs(case.with_kwargs, case.always_call))
    handle.remove()
    registries = ("_global_forward_hooks", "_global_forward_hooks_always_called", "_global_forward_hooks_with_kwargs")
    # a registry this release does not have (with_kwargs: torch < 2.6) holds no hook
    return [name for name in registries if handle.id in getattr(nn_module, name, {})]


def run_legacy_backward(case: LegacyBackwardCase, device: str):
    """The later registration's outcome (None or Raised), or for "call" the grad_output each legacy hook call saw.
    A global legacy hook is never registered successfully: torch's global flag would then refuse full backward
    hooks for the rest of the process (it is not reset when the hook is removed)."""
    inp = backward_inputs(BackwardCase(case.seed, 2, 2, 2, ()))
    m = _Linear(torch.tensor(inp["w"]).to(device))
    handles = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # register_backward_hook is deprecated; its warnings are not under test
            if case.order == "call":
                calls: list = []
                handles.append(m.register_backward_hook(
                    lambda module, grad_input, grad_output: calls.append([_np(g) for g in grad_output])))
                x = torch.tensor(inp["x"]).to(device).requires_grad_(True)
                m(x).backward(torch.tensor(inp["up"]).to(device))
                return calls
            first, second = {
                "legacy_then_full": (m.register_backward_hook, m.register_full_backward_hook),
                "full_then_legacy": (m.register_full_backward_hook, m.register_backward_hook),
                "global_full_then_legacy": (nn_module.register_module_full_backward_hook,
                                            nn_module.register_module_backward_hook)}[case.order]
            handles.append(first(lambda *args: None))
            try:
                handles.append(second(lambda *args: None))
            except Exception as exc:
                return Raised.from_exception(exc)
            return None
    finally:
        for handle in handles:
            handle.remove()

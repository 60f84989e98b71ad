"""Torch side of the dtype-conversion and zero_grad checks."""
from __future__ import annotations

import warnings

import torch

from conform.outcome import Raised
from suite.module.cases import ConvertCase, GradCase, ValueCase, value_inputs


def _holder(root: torch.nn.Module, i: int, nested: bool) -> torch.nn.Module:
    if not nested:
        return root
    if not hasattr(root, "a"):
        root.a, root.b = torch.nn.Module(), torch.nn.Module()
    return (root, root.a, root.b)[i % 3]


def _future_flags(overwrite: bool, swap: bool) -> tuple:
    """Set torch.__future__'s two conversion flags; returns the previous values."""
    before = (torch.__future__.get_overwrite_module_params_on_conversion(),
              torch.__future__.get_swap_module_params_on_conversion())
    torch.__future__.set_overwrite_module_params_on_conversion(overwrite)
    torch.__future__.set_swap_module_params_on_conversion(swap)
    return before


def run_convert(case: ConvertCase, device: str):
    """{"dtypes": dtype name after, "same": same object as before, "nones": None entries still None} per entry
    (+ "grads": each .grad's dtype name or None), or Raised."""
    m = torch.nn.Module()
    m.register_parameter("none_p", None)
    m.register_buffer("none_b", None)
    before = []
    for i, (kind, dtype) in enumerate(case.entries):
        t = torch.ones(2, dtype=getattr(torch, dtype)).to(device)
        if kind == "param":
            t = torch.nn.Parameter(t, requires_grad=t.is_floating_point() or t.is_complex())
            if case.grads and t.requires_grad:
                t.grad = torch.ones_like(t)
            _holder(m, i, case.nested).register_parameter(f"e{i}", t)
        else:
            _holder(m, i, case.nested).register_buffer(f"e{i}", t)
        before.append(t)
    flags = _future_flags(case.future == "overwrite", case.future == "swap")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # complex casts warn; not under test
            if case.method.startswith("to:"):
                m.to(getattr(torch, case.method[3:]))
            elif case.method.startswith("type:"):
                m.type(getattr(torch, case.method[5:]))
            elif case.method == "to_empty":
                m.to_empty(device=device)
            elif case.method == "cpu":
                m.cpu()
            else:
                getattr(m, case.method)()
    except Exception as exc:
        return Raised.from_exception(exc)
    finally:
        _future_flags(*flags)
    after = [getattr(_holder(m, i, case.nested), f"e{i}") for i in range(len(case.entries))]
    out = {"dtypes": [str(t.dtype).removeprefix("torch.") for t in after],
           "same": [t is b for t, b in zip(after, before)], "nones": [m.none_p is None, m.none_b is None]}
    if case.grads:
        out["grads"] = [None if t.grad is None or not isinstance(t, torch.nn.Parameter)
                        else str(t.grad.dtype).removeprefix("torch.") for t in after]
    return out


def run_convert_values(case: ValueCase, device: str):
    m = torch.nn.Module()
    m.w = torch.nn.Parameter(torch.tensor(value_inputs(case)).to(getattr(torch, case.source)).to(device))
    getattr(m, case.method)()
    return str(m.w.dtype).removeprefix("torch."), m.w.detach().cpu().double().numpy()


def run_zero_grad(case: GradCase, device: str):
    """Per parameter after backward + zero_grad: None, or (grad values, grad.requires_grad)."""
    root = torch.nn.Module()
    holder = torch.nn.Module() if case.nested else root
    if case.nested:
        root.a = holder
        root.b = holder
    params = []
    for i in range(case.n_params):
        p = torch.nn.Parameter(torch.full((2,), float(i + 1), device=device), requires_grad=i not in case.frozen)
        holder.register_parameter(f"w{i}", p)
        params.append(p)
    loss = sum((p * p * (i + 1)).sum() for i, p in enumerate(params))
    if loss.requires_grad:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # create_graph=True warns about a reference cycle; not under test
            loss.backward(create_graph=case.create_graph)
    if case.set_to_none is None:
        root.zero_grad()
    else:
        root.zero_grad(set_to_none=case.set_to_none)
    return [None if p.grad is None else (p.grad.detach().cpu().double().numpy(), p.grad.requires_grad)
            for p in params]

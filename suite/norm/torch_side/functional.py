"""Runner of reference/norm/functional.py: a norm functional called with a Tensor-like argument."""
from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F

from suite.norm.cases import DispatchCase


class TensorLike:
    """A Tensor-like type (not a Tensor subclass): its __torch_function__ records the call and takes it over."""

    calls: list = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        cls.calls.append((func, types, args, kwargs or {}))
        return "override"


def _value(spec, device: str):
    if spec == "like":
        return TensorLike()
    if isinstance(spec, tuple) and len(spec) == 2 and spec[0] == "tensor":
        return torch.zeros(spec[1], device=device)
    return list(spec) if isinstance(spec, tuple) else spec  # a shape as the list users pass


def _describe(value):
    if isinstance(value, TensorLike):
        return "like"
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape))
    return tuple(value) if isinstance(value, (list, torch.Size)) else value


def run_dispatch(case: DispatchCase, device: str) -> dict:
    """What F.<func> returned and, bound to its signature (defaults filled in), what the override received."""
    func = getattr(F, case.func)
    values = [_value(spec, device) for _, spec in case.arguments]
    names = [name for name, _ in case.arguments]
    TensorLike.calls.clear()
    returned = func(*values[:case.positional], **dict(zip(names[case.positional:], values[case.positional:])))
    out = {"returned": returned, "received": None}
    if len(TensorLike.calls) == 1:
        got, types, args, kwargs = TensorLike.calls[0]
        bound = inspect.signature(func).bind(*args, **kwargs)
        bound.apply_defaults()
        out["received"] = {"func": got.__name__, "is_public_function": got is func,
                           "like_in_types": TensorLike in types,
                           "arguments": {k: _describe(v) for k, v in bound.arguments.items()}}
    return out

"""Torch side of the load_state_dict checks.

A ``LoadCase`` describes a module tree (``Spec``), a state dict (keys with a
shape, or "int" for a non-tensor value), and the load_state_dict arguments.
``make_inputs`` draws every tensor from seeds (pure torch RNG, not under test,
so the reference may call it); ``run_load`` builds, loads and reports one
observable.  Imports only torch, numpy, the standard library and suite.compare.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch

from conform.outcome import Raised


@dataclass(frozen=True)
class Spec:
    """A plain nn.Module: parameters (name, shape or None), buffers (name, shape or
    None, persistent), children (name, Spec or None); ``share`` registers the first
    child a second time under that name (a shared submodule)."""

    params: tuple = ()
    buffers: tuple = ()
    children: tuple = ()
    share: str | None = None
    extra: bool = False  # the module's class implements get_extra_state/set_extra_state
    frozen: bool = False  # the module's parameters have requires_grad=False


@dataclass(frozen=True)
class LoadCase:
    spec: Spec
    entries: tuple  # (key, shape tuple | "int")
    strict: bool = True
    assign: bool = False
    seed: int = 0
    with_metadata: bool = False
    preload_assign: bool = False  # first load the same dict into a twin with assign=True
    observe: str = "result"  # result | values | identity | post_hooks | extra


def walk(spec: Spec, prefix: str = ""):
    """(prefix, spec) pre-order over non-None children, shared child under both names."""
    yield prefix, spec
    children = list(spec.children)
    if spec.share is not None and children and children[0][1] is not None:
        children.append((spec.share, children[0][1]))
    for name, child in children:
        if child is not None:
            yield from walk(child, prefix + name + ".")


def make_inputs(case: LoadCase) -> dict:
    """Initial module values and state-dict values as float64 numpy arrays (float32-exact)."""
    g = torch.Generator().manual_seed(case.seed)
    out = {"module": {}, "sd": {}}
    for prefix, spec in _unique(case.spec):
        for name, shape in spec.params:
            if shape is not None:
                out["module"][prefix + name] = torch.randn(shape, generator=g).double().numpy()
        for name, shape, _ in spec.buffers:
            if shape is not None:
                out["module"][prefix + name] = torch.randn(shape, generator=g).double().numpy()
    for key, shape in case.entries:
        if shape != "int":
            out["sd"][key] = torch.randn(shape, generator=g).double().numpy()
    return out


def _unique(spec: Spec, prefix: str = ""):
    """Pre-order, each Spec object position once (the shared child's second name skipped)."""
    yield prefix, spec
    for name, child in spec.children:
        if child is not None:
            yield from _unique(child, prefix + name + ".")


class _WithExtra(torch.nn.Module):
    """A module with extra state: saves {'n': 1}, records what it is given to load."""

    def __init__(self):
        super().__init__()
        self.loaded_extra = []

    def get_extra_state(self):
        return {"n": 1}

    def set_extra_state(self, state):
        self.loaded_extra.append("int" if isinstance(state, int) else tuple(state.shape))


def build(spec: Spec, values: dict, device: str, prefix: str = "", labels=None):
    labels = {} if labels is None else labels
    m = _WithExtra() if spec.extra else torch.nn.Module()
    labels[id(m)] = prefix
    for name, shape in spec.params:
        p = None if shape is None else torch.nn.Parameter(
            torch.tensor(values[prefix + name], dtype=torch.float32).to(device), requires_grad=not spec.frozen)
        m.register_parameter(name, p)
    for name, shape, persistent in spec.buffers:
        b = None if shape is None else torch.tensor(values[prefix + name], dtype=torch.float32).to(device)
        m.register_buffer(name, b, persistent=persistent)
    for name, child in spec.children:
        m.add_module(name, None if child is None else build(child, values, device, prefix + name + ".", labels))
    if spec.share is not None and spec.children:
        m.add_module(spec.share, m._modules[spec.children[0][0]])
    return m


def make_state_dict(case: LoadCase, inputs: dict, device: str):
    sd = OrderedDict()
    for key, shape in case.entries:
        sd[key] = 7 if shape == "int" else torch.tensor(inputs["sd"][key], dtype=torch.float32).to(device)
    if case.with_metadata:
        sd._metadata = OrderedDict((prefix[:-1], {"version": 1}) for prefix, _ in walk(case.spec))
    return sd


def run_load(case: LoadCase, device: str):
    inputs = make_inputs(case)
    sd = make_state_dict(case, inputs, device)
    if case.preload_assign:
        twin = build(case.spec, inputs["module"], device)
        try:
            twin.load_state_dict(sd, strict=False, assign=True)
        except RuntimeError:
            pass
    labels: dict = {}
    root = build(case.spec, inputs["module"], device, labels=labels)
    calls = []
    for _, mod in root.named_modules():
        mod.register_load_state_dict_post_hook(
            lambda module, keys: calls.append((labels[id(module)], list(keys.missing_keys), list(keys.unexpected_keys))))
    try:
        out = root.load_state_dict(sd, strict=case.strict, assign=case.assign)
        result = (type(out).__name__, list(out.missing_keys), list(out.unexpected_keys))
    except Exception as exc:
        result = Raised(type(exc).__name__, str(exc))
    if case.observe == "result":
        return result
    if case.observe == "post_hooks":
        return calls
    if case.observe == "extra":
        return [(labels[id(mod)], mod.loaded_extra) for _, mod in root.named_modules() if isinstance(mod, _WithExtra)]
    state = {k: v for k, v in root.state_dict(keep_vars=True).items() if isinstance(v, torch.Tensor)}
    if case.observe == "values":
        return {k: v.detach().cpu().double().numpy() for k, v in state.items()}
    # identity: how each module tensor relates to the state-dict entry of that key
    out = {}
    for k, v in state.items():
        src = sd.get(k)
        is_tensor = isinstance(src, torch.Tensor)
        out[k] = (is_tensor and v is src, is_tensor and v.data_ptr() == src.data_ptr(),
                  isinstance(v, torch.nn.Parameter), v.requires_grad)
    return out

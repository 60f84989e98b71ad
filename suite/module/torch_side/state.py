"""Torch side of the load_state_dict checks: ``run_load`` builds the case's module tree, loads its state
dict and reports the observable the case names (result, values, identity, post_hooks, extra).
"""
from __future__ import annotations

from collections import OrderedDict

import torch

from conform.outcome import Raised
from suite.module.cases import LoadCase, Spec, make_inputs, walk


class _WithExtra(torch.nn.Module):
    """A module with extra state: saves {'n': 1}, records what it is given to load."""

    def __init__(self):
        super().__init__()
        self.loaded_extra = []

    def get_extra_state(self):
        return {"n": 1}

    def set_extra_state(self, state):
        self.loaded_extra.append("int" if isinstance(state, int) else tuple(state.shape))


# Calls of the load pre-hooks: (building path of the module, prefix, whether it is an original module, not a
# copy).  A module-level function, so that pickle can take the hooks along with the tree.
_PRE_CALLS: list = []
_ORIGINALS: set = set()


def _record_pre(module, state_dict, prefix, *rest):
    _PRE_CALLS.append((module.conform_path, prefix, id(module) in _ORIGINALS))


def build(spec: Spec, values: dict, device: str, prefix: str = "", labels=None):
    labels = {} if labels is None else labels
    m = _WithExtra() if spec.extra else torch.nn.Module()
    labels[id(m)] = prefix
    m.conform_path = prefix  # a plain attribute: copies keep it
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
    if case.observe == "pre_hooks":
        _PRE_CALLS.clear()
        _ORIGINALS.clear()
        for _, mod in root.named_modules():
            _ORIGINALS.add(id(mod))
            mod.register_load_state_dict_pre_hook(_record_pre)
    if case.copy:
        import copy
        import pickle

        root = copy.deepcopy(root) if case.copy == "deepcopy" else pickle.loads(pickle.dumps(root))
        labels = {id(mod): mod.conform_path for _, mod in root.named_modules()}
    calls = []
    for _, mod in root.named_modules():
        mod.register_load_state_dict_post_hook(
            lambda module, keys: calls.append((labels[id(module)], list(keys.missing_keys), list(keys.unexpected_keys))))
    swap_before = torch.__future__.get_swap_module_params_on_conversion()
    torch.__future__.set_swap_module_params_on_conversion(case.swap)
    try:
        out = root.load_state_dict(sd, strict=case.strict, assign=case.assign)
        result = (type(out).__name__, list(out.missing_keys), list(out.unexpected_keys))
        shown = repr(out)
    except Exception as exc:
        result = shown = Raised.from_exception(exc)
    finally:
        torch.__future__.set_swap_module_params_on_conversion(swap_before)
    if case.observe == "result":
        return result
    if case.observe == "repr":
        return shown
    if case.observe == "pre_hooks":
        calls = list(_PRE_CALLS)
        _PRE_CALLS.clear()
        _ORIGINALS.clear()
        return calls
    if case.observe == "post_hooks":
        return calls
    if case.observe == "extra":
        return [(labels[id(mod)], mod.loaded_extra) for _, mod in root.named_modules() if isinstance(mod, _WithExtra)]
    state = {k: v for k, v in root.state_dict(keep_vars=True).items() if isinstance(v, torch.Tensor)}
    if case.observe == "values":
        return {k: v.detach().cpu().double().numpy() for k, v in state.items()}
    return _identity(state, sd)


def _identity(state: dict, sd) -> dict:
    """How each module tensor relates to the state-dict entry of that key."""
    out = {}
    for k, v in state.items():
        src = sd.get(k)
        is_tensor = isinstance(src, torch.Tensor)
        out[k] = (is_tensor and v is src, is_tensor and v.data_ptr() == src.data_ptr(),
                  isinstance(v, torch.nn.Parameter), v.requires_grad)
    return out

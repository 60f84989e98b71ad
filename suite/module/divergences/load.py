"""Registered divergences of Module.load_state_dict (LoadCase cases)."""
from __future__ import annotations

import functools

import torch

from reference.module import state as state_ref
from suite.divergences import Divergence, applies_to_build
from suite.module.cases import LoadCase, Spec, make_inputs
from suite.module.torch_side.state import run_load

MODULE_PY = "torch/nn/modules/module.py"
_load_entry = functools.partial(Divergence, case_type=LoadCase, run=run_load,
                                expect=lambda case, device: state_ref.expectations(case, make_inputs(case)))


# torch as built: a key under any registered child name is expected (a None child is then skipped, so its keys
# are silently ignored), and a key of an entry registered as None is only listed in unexpected_keys.
def _any_registered_child(spec) -> set:
    return {n for n, _ in state_ref.child_entries(spec)}


def _torch_load_model(case, **variant):
    return state_ref.observe(case, make_inputs(case), key_children=_any_registered_child, none_entry_raises=False,
                             **variant)


def _torch_load(case, expected):
    return _torch_load_model(case)


# torch < 2.10 loads element 0 of a 1-d value of any length into a 0-d tensor
def _element_0_of_any_1d(shape, given) -> bool:
    return len(shape) == 0 and len(given) == 1


def _leaks_assign(case) -> bool:
    """A load with assign=False of a dict (with _metadata) that an assign=True load used before."""
    return case.with_metadata and case.preload_assign and not case.assign


def _torch_load_first_of_1d(case, expected):
    # element 0 of the 1-d value is loaded; the registered None-entry / None-child behaviour and the
    # assign flag leaked into _metadata (entries below, on every release of this range too) still hold
    return _torch_load_model(case, assign=True if _leaks_assign(case) else None, takes_element_0=_element_0_of_any_1d)


FIRST_OF_1D_RANGE = ">=2.4,<2.10"


def _first_of_1d_here(case) -> bool:
    """The 0-d entry claims the case on this build: its torch_does describes the entries below there too, so
    they leave such cases to it (entries must not overlap)."""
    return applies_to_build(FIRST_OF_1D_RANGE, torch.__version__) and bool(state_ref.first_of_1d_keys(case))


_NONE_CHILD_REASON = ("load_state_dict ignores keys under a submodule registered as None, even with strict=True: "
                      "they are neither loaded nor reported in unexpected_keys, although state_dict() never "
                      "produces them and strict loading requires the keys to match state_dict() exactly.")
_NONE_CHILD_EVIDENCE = (f"{MODULE_PY}: Module._load_from_state_dict treats a dotted key as expected when its first "
                        "component is in self._modules, without checking that the child is not None; load() then "
                        "skips None children. Repro: m = nn.Module(); m.add_module('c', None); "
                        "m.load_state_dict({'c.w': torch.zeros(1)}) -> <All keys matched successfully>.")
_NONE_CHILD_REPRO = LoadCase(Spec(children=(("c", None),)), (("c.x", (1,)),), strict=True)

DIVERGENCES = [
    _load_entry(
        id="module-load-0d-takes-first-of-1d",
        rule=state_ref.LOAD_SIZE,
        also_rules=(state_ref.LOAD_VALUES, state_ref.LOAD_ASSIGN, state_ref.LOAD_NONE),
        torch=FIRST_OF_1D_RANGE,
        reason="load_state_dict loads a 1-d value of any length into a 0-d parameter/buffer by silently taking its "
               "first element, instead of reporting a size mismatch; only a 1-element 1-d value is the documented "
               "backward-compatible exception (fixed in 2.10, which raises the size mismatch).",
        evidence=f"{MODULE_PY}: Module._load_from_state_dict, 'Backward compatibility: loading 1-dim tensor from "
                 "0.3.* to version 0.4+': input_param = input_param[0] whenever len(param.shape) == 0 and "
                 "len(input_param.shape) == 1; pytorch/pytorch#165873 (bug report), fixed by pytorch/pytorch#166335 "
                 "(adds input_param.shape[0] == 1; first in 2.10.0). Repro: m.w = Parameter(torch.tensor(0.)); "
                 "m.load_state_dict({'w': torch.ones(2)}) -> <All keys matched successfully>.",
        when=lambda case: bool(state_ref.first_of_1d_keys(case)),
        torch_does=_torch_load_first_of_1d,
        repro=LoadCase(Spec(params=(("w", ()),)), (("w", (2,)),)),
    ),
    _load_entry(
        id="module-load-none-child-keys-ignored",
        rule=state_ref.LOAD_NONE,
        torch=">=2.4",
        reason=_NONE_CHILD_REASON,
        evidence=_NONE_CHILD_EVIDENCE,
        when=lambda case: state_ref.keys_under_none_child(case) and not _first_of_1d_here(case),
        torch_does=_torch_load,
        repro=_NONE_CHILD_REPRO,
    ),
    _load_entry(
        id="module-load-none-child-keys-ignored-post-hooks",
        rule=state_ref.LOAD_POST_HOOKS,
        torch=">=2.4",
        reason=_NONE_CHILD_REASON + " (seen by load post-hooks)",
        evidence=_NONE_CHILD_EVIDENCE,
        when=state_ref.keys_under_none_child,
        torch_does=_torch_load,
        repro=LoadCase(Spec(children=(("c", None),)), (("c.x", (1,)),), strict=True, observe="post_hooks"),
    ),
    _load_entry(
        id="module-load-none-entry-non-strict-no-error",
        bug_in="docs",  # shared/research/registry-audit.md: listing the key in unexpected_keys is the sensible strict=False behaviour; the Note needs 'with strict=True' (the reference keeps the documented text)
        rule=state_ref.LOAD_NONE,
        torch=">=2.4",
        reason="With strict=False a state-dict key for a parameter/buffer registered as None does not raise "
               "RuntimeError as the docstring note says; it is only listed in unexpected_keys.",
        evidence=f"{MODULE_PY}: Module.load_state_dict docstring, Note: 'If a parameter or buffer is registered as "
                 "None and its corresponding key exists in state_dict, load_state_dict() will raise a "
                 "RuntimeError.' Repro: m.register_parameter('p', None); m.load_state_dict({'p': torch.zeros(1)}, "
                 "strict=False) returns _IncompatibleKeys(missing_keys=[], unexpected_keys=['p']).",
        # keys under a None child as well: the none-child entry describes both
        when=lambda case: (not case.strict and bool(state_ref.none_keys(case, children=False))
                           and not state_ref.keys_under_none_child(case) and not _first_of_1d_here(case)),
        torch_does=_torch_load,
        repro=LoadCase(Spec(params=(("w", None),)), (("w", (1,)),), strict=False),
    ),
    _load_entry(
        id="module-load-assign-leaks-into-metadata",
        rule=state_ref.LOAD_ASSIGN,
        torch=">=2.4",
        reason="load_state_dict(sd, assign=True) writes 'assign_to_params_buffers': True into sd._metadata (the "
               "caller's dict); every later load_state_dict(sd) with assign=False then assigns instead of copying "
               "(module tensors are replaced by the dict's tensors).",
        evidence=f"{MODULE_PY}: Module.load_state_dict, load(): local_metadata = metadata.get(prefix[:-1], {{}}); "
                 "if assign: local_metadata['assign_to_params_buffers'] = assign -- the caller's metadata dict is "
                 "mutated. Repro: sd = lin.state_dict(); a.load_state_dict(sd, assign=True); "
                 "b.load_state_dict(sd) replaces b.weight.",
        when=lambda case: _leaks_assign(case) and not _first_of_1d_here(case),
        torch_does=lambda case, expected: (_torch_load_model(case, assign=True) if state_ref.keys_under_none_child(case)
                                           else state_ref.observe(case, make_inputs(case), assign=True)),
        repro=LoadCase(Spec(params=(("w", (2,)),), buffers=(("r", (2,), True),)), (("w", (2,)), ("r", (2,))),
                       with_metadata=True, preload_assign=True, observe="identity"),
    ),
]

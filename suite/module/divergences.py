"""Where torch differs from the documented / clearly intended nn.Module
behaviour.  Each entry's repro is a minimal Case, run deterministically on every
run by suite/test_divergences.py.  What torch does instead is described here,
out of the specification: as a transformation of the expected outcome, or as the
reference's model run through one of its extension points (a torch-as-built
variant)."""
from __future__ import annotations

import functools
import re

import torch

from conform.outcome import Raised
from reference.module import containers as ct_ref
from reference.module import hooks as hooks_ref
from reference.module import registration as reg
from reference.module import state as state_ref
from reference.module import traversal as trav
from reference.module import tree as tree_ref
from suite.divergences import Divergence, applies_to_build
from suite.module.cases import (ContainerProgram, CtOp, GlobalHookRemoval, Hook, HookCase, LoadCase, Op, Spec,
                                TreeProgram, make_inputs)
from suite.module.torch_side.containers import run_container_program
from suite.module.torch_side.hooks import run_global_hook_removal, run_hooks
from suite.module.torch_side.state import run_load
from suite.module.torch_side.tree import run_tree_program

# Every range is measured: the entry's repro, run on each release of the matrix (2.4.1 .. 2.15.0, CPU), reproduces
# from the first release of its range on and still on 2.15.0 (so no upper bound).  Below a range the repro needs
# an API the release lacks: nn.Buffer (new in 2.5), register_module_forward_hook(with_kwargs=) (new in 2.6).
MODULE_PY = "torch/nn/modules/module.py"
BAD_NAMES = ("", "x.y", "forward")

# One family per Case type: the reference's expectations and the torch-side runner the area's tests use.
_tree_entry = functools.partial(Divergence, case_type=TreeProgram, run=run_tree_program,
                                expect=lambda case, device: tree_ref.expectations(case))
_load_entry = functools.partial(Divergence, case_type=LoadCase, run=run_load,
                                expect=lambda case, device: state_ref.expectations(case, make_inputs(case)))
_container_entry = functools.partial(Divergence, case_type=ContainerProgram, run=run_container_program,
                                     expect=lambda case, device: ct_ref.expectations(case))


def _last(case):
    return case.ops[-1]


def _setattr_module_bad_name(case) -> bool:
    op = _last(case)
    return ("result" in case.observe and op.kind == "setattr" and op.value[:1] == ("module",)
            and op.name in BAD_NAMES)


def _getattr_after_failed_parameter(case) -> bool:
    """A getattr of a name that add_module's rules reject, right after a Parameter assignment to that name
    failed, where the name held an instance attribute."""
    if "result" not in case.observe or len(case.ops) < 2:
        return False
    param, get = case.ops[-2:]
    return (get.kind == "getattr" and param.kind == "setattr" and param.value[:1] == ("param",)
            and param.name == get.name and param.target == get.target and get.name in BAD_NAMES
            and get.name in tree_ref.world_after(case.ops[:-2]).mods[get.target].attrs)


def _buffer_over_plain(case) -> bool:
    op = _last(case)
    if "result" not in case.observe or op.kind != "setattr" or op.value[:1] != ("buffer",):
        return False
    m = tree_ref.world_after(case.ops[:-1]).mods[op.target]
    return op.name in m.attrs and op.name not in m.params and op.name not in m.modules


def _dir_with_empty_name(case) -> bool:
    # an attribute or (setattr-registered) child named '' on the root, not deleted afterwards
    present = False
    for o in case.ops:
        if o.target == "m0" and o.name == "":
            if o.kind == "setattr" and o.value[0] != "param":
                present = True
            elif o.kind == "delattr":
                present = False
    return "dir" in case.observe and present


def replaces_non_module(w, op) -> bool:
    """A non-strict set_submodule whose last atom names an existing attribute that is not a Module (a parameter,
    buffer, plain attribute, None child, or a method such as 'forward'), under a parent that resolves."""
    if op.kind != "set_submodule" or op.flag:
        return False
    parent_path, _, last = op.name.rpartition(".")
    parent = trav.get_submodule(w, op.target, parent_path)
    if not isinstance(parent, str):
        return False
    pm = w.mods[parent]
    return reg.has_attr(pm, last) and not reg.is_module(reg.getattr_(pm, last))


def _torch_set_submodule_unchecked(case, expected):
    """What setattr(parent, last, module) does there (the model's Module.__setattr__); for a class attribute such as
    'forward', the module is registered (module-setattr-module-skips-name-checks)."""
    op = _last(case)
    w = tree_ref.world_after(case.ops[:-1])
    parent_path, _, last = op.name.rpartition(".")
    if last in reg.CLASS_ATTRS:
        return None
    pm = w.mods[trav.get_submodule(w, op.target, parent_path)]
    return reg.setattr_(w, pm, last, op.value, reg.value_label(len(case.ops) - 1, op.value))[1]


DIVERGENCES = [
    _tree_entry(
        id="module-set-submodule-replaces-non-module",
        rule=trav.SET_SUBMODULE,
        torch=">=2.5,<2.7",
        reason="set_submodule hands whatever the last atom of the target names (a parameter, buffer, plain "
               "attribute, None child, even the forward method) to setattr(parent, atom, module) -- which replaces "
               "it, or raises TypeError for a parameter name -- although it is documented to "
               "raise AttributeError when the target 'resolves to something that is not an nn.Module'; only the "
               "atoms before the last were checked (fixed in 2.7, which raises '`<name>` is not an nn.Module').",
        evidence=f"{MODULE_PY}: Module.set_submodule (2.5, 2.6): atoms.pop(-1) is never checked before "
                 "setattr(mod, name, module); docstring 'Raises: AttributeError: If the target string references "
                 "an invalid path or resolves to something that is not an nn.Module'; pytorch/pytorch#143441 "
                 "(bug report), fixed by pytorch/pytorch#143455 (first in 2.7.0). Repro: m = nn.Module(); m.a = 1; "
                 "m.set_submodule('a', nn.Module()) succeeds.",
        when=lambda case: "result" in case.observe and replaces_non_module(tree_ref.world_after(case.ops[:-1]),
                                                                             _last(case)),
        torch_does=_torch_set_submodule_unchecked,
        repro=TreeProgram((Op("setattr", "m0", "a", ("int", 1)), Op("set_submodule", "m0", "a", ("module", "m1"),
                                                                      False))),
    ),
    _tree_entry(
        id="module-setattr-module-skips-name-checks",
        arguable=True,  # shared/research/registry-audit.md: reachable only via setattr() with non-identifiers or class-attribute names
        rule=reg.SETATTR_MODULE,
        torch=">=2.4",
        reason="Assigning a Module attribute registers it without add_module's name checks: names with '.', the "
               "empty name and names of class attributes (e.g. 'forward') are accepted; the child then cannot be "
               "reached (get_submodule('x.y') fails, m.forward is still the method) and state_dict keys become "
               "ambiguous ('x.y.w').",
        evidence=f"{MODULE_PY}: Module.__setattr__ writes modules[name] = value directly, while add_module/"
                 "register_module raise KeyError for the same names; Module docstring: 'Submodules assigned in "
                 "this way will be registered'. Repro: setattr(nn.Module(), 'x.y', nn.Module()) succeeds.",
        when=_setattr_module_bad_name,
        torch_does=lambda case, expected: None,
        repro=TreeProgram((Op("setattr", "m0", "x.y", ("module", "m1")),)),
    ),
    _tree_entry(
        id="module-setattr-parameter-failed-drops-attribute",
        arguable=True,  # shared/research/registry-audit.md: a non-atomic failure in a corner case
        rule=reg.GETATTR,
        torch=">=2.4",
        reason="A Parameter assignment that fails name validation (KeyError) has already deleted the instance "
               "attribute of that name: the object is changed by a failed operation.",
        evidence=f"{MODULE_PY}: Module.__setattr__ calls remove_from(self.__dict__, ...) before "
                 "register_parameter validates the name. Repro: m.forward = 1; m.forward = Parameter(...) raises "
                 "KeyError and m.__dict__ no longer has 'forward'.",
        when=_getattr_after_failed_parameter,
        torch_does=lambda case, expected: (Raised("AttributeError", None) if _last(case).name != "forward"
                                           else ("method",)),
        repro=TreeProgram((Op("setattr", "m0", "forward", ("int", 1)), Op("setattr", "m0", "forward", ("param", "p0")),
                           Op("getattr", "m0", "forward"))),
    ),
    _tree_entry(
        id="module-setattr-buffer-over-attribute",
        arguable=True,  # shared/research/registry-audit.md: mirrors register_buffer's deliberate guard (#2670/#3232)
        rule=reg.SETATTR_BUFFER,
        torch=">=2.5",
        reason="Assigning an nn.Buffer to a name that holds an ordinary instance attribute raises KeyError "
               "('attribute already exists'), although a Parameter or a Module assigned the same way replaces the "
               "attribute and nn.Buffer is documented to be added to the buffers when assigned.",
        evidence="torch/nn/parameter.py: Buffer docstring ('When assigned as Module attributes they are "
                 f"automatically added to the list of its buffers'); {MODULE_PY}: Module.__setattr__ removes the "
                 "name from __dict__ for Parameters and Modules but not before register_buffer.",
        when=_buffer_over_plain,
        torch_does=lambda case, expected: Raised("KeyError", "already exists"),
        repro=TreeProgram((Op("setattr", "m0", "a", ("int", 1)), Op("setattr", "m0", "a", ("buffer", "t0", True)))),
    ),
    _tree_entry(
        id="module-dir-empty-attribute-crash",
        rule=trav.DIR,
        torch=">=2.4",
        reason="dir(module) raises IndexError when an attribute (or child set via setattr) is named '': the "
               "filter for illegal names indexes key[0].",
        evidence=f"{MODULE_PY}: Module.__dir__: [key for key in keys if not key[0].isdigit()]. Repro: "
                 "m = nn.Module(); setattr(m, '', 1); dir(m) -> IndexError.",
        when=_dir_with_empty_name,
        torch_does=lambda case, expected: Raised("IndexError", "string index out of range"),
        repro=TreeProgram((Op("setattr", "m0", "", ("int", 1)),), ("dir",)),
    ),
]


def _none_parameter_registration(case) -> bool:
    if "registration" not in case.observe:
        return False
    calls = tree_ref.expected_observation(tree_ref.world_after(case.ops), "registration")
    return any(c[0] == "parameter" and c[3] == ("none",) for c in calls)


DIVERGENCES += [
    _tree_entry(
        id="module-parameter-registration-hook-skips-none",
        bug_in="docs",  # shared/research/registry-audit.md: skipping None is defensible for parameter-transform hooks; the docstring's 'every time' is what is wrong (no deliberate change on record, so the reference keeps the documented text)
        rule=reg.REGISTRATION_HOOKS,
        torch=">=2.4",
        reason="Global parameter registration hooks are not called when a parameter is registered as None "
               "(register_parameter(name, None), or assigning None to a parameter name), although they are "
               "'called every time register_parameter is invoked'; buffer and module registration hooks are "
               "called for None values.",
        evidence=f"{MODULE_PY}: register_module_parameter_registration_hook docstring; Module.register_parameter "
                 "returns early for param None before running _global_parameter_registration_hooks, whereas "
                 "register_buffer and add_module run their hooks for None too.",
        when=_none_parameter_registration,
        torch_does=lambda case, expected: [c for c in expected if not (c[0] == "parameter" and c[3] == ("none",))],
        repro=TreeProgram((Op("register_parameter", "m0", "a", ("none",)),), ("registration",)),
    ),
]


# ---- load_state_dict -----------------------------------------------------------------
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

DIVERGENCES += [
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


# ---- hooks ---------------------------------------------------------------------------
def _torch_runs_on_error(hook) -> bool:
    """torch: on the error path global forward hooks are called as hook(module, args, output); a with_kwargs one
    fails with TypeError, which is silenced, so it never runs."""
    return hook.always_call and not (hook.kind == "gpost" and hook.with_kwargs)


DIVERGENCES += [
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


# ---- containers ----------------------------------------------------------------------
def _modulelist_insert_out_of_list_range(case) -> bool:
    if case.container != "ModuleList" or not case.ops or case.ops[-1].kind != "insert":
        return False
    before = ct_ref.run(ContainerProgram(case.container, case.init, case.ops[:-1], case.named))
    return not 0 <= case.ops[-1].args[0] <= len(before[1])


def _torch_modulelist_insert(case, expected):
    """What ModuleList.insert does: shift keys str(i) <- str(i-1) for i in range(n, index, -1), then set
    key str(index); a missing key raises KeyError after the earlier shifts were made."""
    _, keys, labels = ct_ref.run(ContainerProgram(case.container, case.init, case.ops[:-1], case.named))
    d = dict(zip(keys, labels))
    index, new = case.ops[-1].args
    try:
        for i in range(len(d), index, -1):
            d[str(i)] = d[str(i - 1)]
        d[str(index)] = new
        result = None
    except KeyError as exc:
        result = Raised("KeyError", re.escape(str(exc)))
    return result, list(d), list(d.values())


def _parameterdict_missing_key(case) -> bool:
    if case.container != "ParameterDict" or not case.ops or case.ops[-1].kind not in ("getitem", "pop"):
        return False
    before = ct_ref.run(ContainerProgram(case.container, case.init, case.ops[:-1], case.named))
    return case.ops[-1].args[0] not in before[1]


def _parameterdict_bad_setitem(case) -> bool:
    # a missing key looked up last is the missing-key entry's (entries must not overlap)
    return (case.container == "ParameterDict" and any(o.kind == "setitem" and (o.args[0] == "" or "." in o.args[0])
                                                      for o in case.ops) and not _parameterdict_missing_key(case))


def _torch_parameterdict_bad_setitem(case, expected):
    # the key stays in ParameterDict._keys although registration failed: len() counts it
    result, keys, labels = expected
    bad = [o.args[0] for o in case.ops if o.kind == "setitem" and (o.args[0] == "" or "." in o.args[0])]
    new_bad = [k for k in dict.fromkeys(bad) if k not in keys]
    if case.ops[-1].kind == "len":
        result = result + len(new_bad)
    return result, keys + new_bad, labels + [("unreachable",)] * len(new_bad)


DIVERGENCES += [
    _container_entry(
        id="module-modulelist-insert-index",
        rule=ct_ref.CT_INSERT,
        torch=">=2.4",
        reason="ModuleList.insert does not follow list semantics outside 0..len: a negative index raises KeyError "
               "after having shifted (and so duplicated) entries; an index past the end creates a key with a gap "
               "(e.g. '5' in a list of 3), so len() and indexing disagree.",
        evidence="torch/nn/modules/container.py: ModuleList.insert has no index normalisation or range check "
                 "(Sequential.insert has both); docstring: 'Insert a given module before a given index in the list.' "
                 "Repro: ml = nn.ModuleList([a, b, c]); ml.insert(-1, d) -> KeyError '-1', ml now has 4 entries.",
        when=_modulelist_insert_out_of_list_range,
        torch_does=_torch_modulelist_insert,
        repro=ContainerProgram("ModuleList", ("m1", "m2"), (CtOp("insert", (-1, "m3")),)),
    ),
    _container_entry(
        id="module-sequential-imul-named",
        rule=ct_ref.CT_MUL,
        torch=">=2.4",
        reason="Sequential *= n on a Sequential built from an OrderedDict (non-numeric keys) raises KeyError '0' "
               "for n >= 2 (and keeps the names for n == 1), while Sequential * n works and renumbers.",
        evidence="torch/nn/modules/container.py: Sequential.__imul__ reads self._modules[str(i)], assuming keys "
                 "'0'..'n-1'; __mul__ iterates the modules instead.",
        when=lambda case: case.named and case.ops and case.ops[-1].kind == "imul" and case.ops[-1].args[0] >= 1,
        torch_does=lambda case, expected: (
            (None if case.ops[-1].args[0] == 1 else Raised("KeyError", "'0'")),
            [k for k, _ in case.init], [v for _, v in case.init]),
        repro=ContainerProgram("Sequential", (("a", "m1"), ("b", "m2")), (CtOp("imul", (2,)),), named=True),
    ),
    _container_entry(
        id="module-parameterdict-missing-key-attributeerror",
        rule=ct_ref.CT_PARAMDICT,
        torch=">=2.4",
        reason="ParameterDict[key] and ParameterDict.pop(key) raise AttributeError for a missing key instead of "
               "KeyError, although ParameterDict 'can be indexed like a regular Python dictionary'.",
        evidence="torch/nn/modules/container.py: ParameterDict.__getitem__ returns getattr(self, key) "
                 "(Module.__getattr__ raises AttributeError); ModuleDict raises KeyError.",
        when=_parameterdict_missing_key,
        torch_does=lambda case, expected: (Raised("AttributeError", "has no attribute"), expected[1], expected[2]),
        repro=ContainerProgram("ParameterDict", (), (CtOp("getitem", ("zz",)),)),
    ),
    _container_entry(
        id="module-parameterdict-failed-setitem-keeps-key",
        rule=ct_ref.CT_PARAMDICT,
        torch=">=2.4",
        reason="A ParameterDict assignment that fails (key '' or containing '.') still adds the key to the dict's "
               "key list: len() counts it and iteration yields a key whose lookup fails.",
        evidence="torch/nn/modules/container.py: ParameterDict.__setitem__ does self._keys[key] = None before "
                 "setattr/register_parameter validate the name.",
        when=_parameterdict_bad_setitem,
        torch_does=_torch_parameterdict_bad_setitem,
        repro=ContainerProgram("ParameterDict", (), (CtOp("setitem", ("x.y", "p0")), CtOp("len"))),
    ),
]


def _sliced_append_collides(case) -> bool:
    if case.container != "Sequential" or not case.ops or case.ops[-1].kind != "slice_append":
        return False
    _, keys, labels = ct_ref.run(ContainerProgram(case.container, case.init, case.ops[:-1], case.named))
    chosen = keys[slice(*case.ops[-1].args[:3])]
    return str(len(chosen)) in chosen


def _torch_sliced_append(case, expected):
    _, keys, labels = ct_ref.run(ContainerProgram(case.container, case.init, case.ops[:-1], case.named))
    s = slice(*case.ops[-1].args[:3])
    part = dict(zip(keys[s], labels[s]))
    part[str(len(part))] = case.ops[-1].args[3]  # add_module(str(len(self)), module) overwrites
    return (len(part), list(part.values())), expected[1], expected[2]


DIVERGENCES += [
    _container_entry(
        id="module-sequential-slice-append-overwrites",
        rule=ct_ref.CT_APPEND,
        torch=">=2.4",
        reason="A slice of a Sequential keeps the original keys (s[1:] has keys '1', '2'); append (and +=) then "
               "register the new module under str(len(self)), which can be an existing key: the last module is "
               "silently replaced instead of a module being appended (len stays the same). insert raises KeyError.",
        evidence="torch/nn/modules/container.py: Sequential.__getitem__(slice) builds OrderedDict(list(items)[idx]) "
                 "without renumbering; Sequential.append does add_module(str(len(self)), module) ('Append a given "
                 "module to the end'). Repro: s = nn.Sequential(a, b, c)[1:]; s.append(d); len(s) == 2, c is gone.",
        when=_sliced_append_collides,
        torch_does=_torch_sliced_append,
        repro=ContainerProgram("Sequential", ("m1", "m2", "m3"), (CtOp("slice_append", (1, None, None, "m4")),)),
    ),
]

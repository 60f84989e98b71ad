"""Registered divergences of Module registration, attribute dispatch and traversal (TreeProgram cases)."""
from __future__ import annotations

import functools

from conform.outcome import Raised
from reference.module import registration as reg
from reference.module import traversal as trav
from reference.module import tree as tree_ref
from suite.divergences import Divergence
from suite.module.cases import Op, TreeProgram
from suite.module.torch_side.tree import run_tree_program

MODULE_PY = "torch/nn/modules/module.py"
BAD_NAMES = ("", "x.y", "forward")

_tree_entry = functools.partial(Divergence, case_type=TreeProgram, run=run_tree_program,
                                expect=lambda case, device: tree_ref.expectations(case))


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

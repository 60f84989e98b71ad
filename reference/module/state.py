"""Model of Module.load_state_dict (and of the module tree it walks), from the
docstrings of torch/nn/modules/module.py: keys, strictness, errors and their
message, copy vs assign, post hooks.  Values in numpy float64.

A LoadCase (suite/module/cases.py) is read by its attributes: ``spec`` (a module
tree: params, buffers, children, share, extra, frozen), ``entries``, ``strict``,
``assign``, ``observe``; the initial values come in as ``inputs``
(suite/module/cases.py: make_inputs)."""
from __future__ import annotations

import re

import numpy as np

from conform.expect import Expect
from conform.outcome import Raised
from conform.rules import rule

SRC = "torch/nn/modules/module.py"

LOAD_KEYS = rule("module.load_state_dict.keys",
    "load_state_dict returns _IncompatibleKeys(missing, unexpected): missing = expected keys absent from the "
    "dict (per module in pre-order, parameters then persistent buffers); unexpected = keys state_dict() would "
    "not produce, reported per module in pre-order.", f"{SRC}: Module.load_state_dict")
LOAD_STRICT = rule("module.load_state_dict.strict_errors",
    "strict=True raises RuntimeError 'Error(s) in loading state_dict for <Name>:' listing missing keys, then "
    "unexpected keys, then every per-key error; strict=False raises only for per-key errors.",
    f"{SRC}: Module.load_state_dict")
LOAD_SIZE = rule("module.load_state_dict.size_mismatch",
    "A value whose shape differs from the module's (except a 1-element 1-d value for a 0-d tensor) or a "
    "non-tensor value is an error listed in the message; all other entries are still copied.",
    f"{SRC}: Module._load_from_state_dict")
LOAD_NONE = rule("module.load_state_dict.none_entries",
    "A key for a parameter/buffer registered as None, or for anything under a None submodule, is not a key "
    "of state_dict(): strict loading rejects it, and (per the docstring note) loading raises RuntimeError.",
    f"{SRC}: Module.load_state_dict (Note)")
LOAD_VALUES = rule("module.load_state_dict.values",
    "After loading, every loaded tensor holds the dict's value (shared modules: the last path loaded wins); "
    "others keep their values.", f"{SRC}: Module.load_state_dict")
LOAD_ASSIGN = rule("module.load_state_dict.assign",
    "assign=False copies in place (module tensors keep identity); assign=True makes buffers the dict's tensors "
    "and parameters Parameters sharing the dict's storage, keeping the module's requires_grad; under "
    "torch.__future__.set_swap_module_params_on_conversion(True) each parameter/buffer is swapped with "
    "module_load's result instead (the module's tensor objects stay, sharing the dict's storage with assign=True).",
    f"{SRC}: Module.load_state_dict (assign); torch/__future__.py: set_swap_module_params_on_conversion ('The "
    "parameter/buffer in the module will be swapped via swap_tensors() with res')")
LOAD_EXTRA_STATE = rule("module.load_state_dict.extra_state",
    "A module implementing set_extra_state receives the '<prefix>_extra_state' entry (missing if absent); for a "
    "module without it that key is unexpected.", f"{SRC}: Module.get_extra_state, Module.set_extra_state")
LOAD_PRE_HOOKS = rule("module.load_state_dict.pre_hooks",
    "Load pre-hooks (register_load_state_dict_pre_hook) run once per module visit before its own entries are "
    "loaded, in pre-order (a shared module under each of its paths), with the module and its prefix; a module's "
    "hooks travel with copy.deepcopy and pickle, and the copy's hooks receive the copy.",
    f"{SRC}: Module.register_load_state_dict_pre_hook, Module._load_from_state_dict, _WrappedHook.__getstate__/"
    "__setstate__ (the hook keeps the module it was registered with, across copies)")
LOAD_RESULT_REPR = rule("module.load_state_dict.result_repr",
    "The returned _IncompatibleKeys prints as '<All keys matched successfully>' when both lists are empty, "
    "otherwise as the named tuple.", f"{SRC}: _IncompatibleKeys.__repr__")
LOAD_NON_MAPPING = rule("module.load_state_dict.requires_mapping",
    "load_state_dict of anything but a Mapping raises TypeError 'Expected state_dict to be dict-like'.",
    f"{SRC}: Module.load_state_dict (state_dict (dict))")
EXTRA_STATE_BASE = rule("module.extra_state.base_raises",
    "The base get_extra_state/set_extra_state are only placeholders: called on a module that does not implement "
    "them they raise RuntimeError.", f"{SRC}: Module.get_extra_state, Module.set_extra_state ('Implement this and a "
    "corresponding set_extra_state() for your module if you need to store extra state')")
LOAD_POST_HOOKS = rule("module.load_state_dict.post_hooks",
    "Load post-hooks run per module after its children (post-order, shared modules each time) and see the "
    "missing/unexpected keys collected so far.", f"{SRC}: Module.register_load_state_dict_post_hook")


def _local(spec):
    """(name, shape, is_param) of the entries state_dict() would hold for this module."""
    out = [(n, s, True) for n, s in spec.params if s is not None]
    out += [(n, s, False) for n, s, persistent in spec.buffers if s is not None and persistent]
    return out


def child_entries(spec):
    """(name, child Spec or None) of every registered child; the shared child under its second name too."""
    kids = list(spec.children)
    if spec.share is not None and kids and kids[0][1] is not None:
        kids.append((spec.share, kids[0][1]))
    return kids


def walk(spec, prefix: str = ""):
    """(prefix, spec) pre-order over non-None children, a shared child under both names."""
    yield prefix, spec
    for name, child in child_entries(spec):
        if child is not None:
            yield from walk(child, prefix + name + ".")


def _size(shape) -> str:
    return f"torch.Size([{', '.join(str(d) for d in shape)}])"


def takes_element_0(shape, given) -> bool:
    """Documented backward compatibility: a 1-element 1-d value loads into a 0-d tensor (its element 0)."""
    return len(shape) == 0 and tuple(given) == (1,)


def key_children(spec) -> set:
    """Names of the children whose keys state_dict() produces (and loading expects): the non-None ones."""
    return {n for n, c in child_entries(spec) if c is not None}


def load(case, inputs, *, assign=None, takes_element_0=takes_element_0, key_children=key_children,
         none_entry_raises=True):
    """(result, values, identity, post_hook calls, extra) of load_state_dict(case) per the docs.

    The keyword arguments are the model's extension points, their defaults the documented behaviour:
    ``assign`` (the mode the load runs in; default: the case's), ``takes_element_0(shape, given)`` (a value
    of shape ``given`` loads element 0 into a tensor of ``shape``), ``key_children(spec)`` (children whose
    keys are expected), ``none_entry_raises`` (the docstring note: a key of an entry registered as None
    raises RuntimeError)."""
    assign = case.assign if assign is None else assign
    sd = dict(case.entries)
    values = dict(inputs["module"])
    ident: dict = {}
    missing, unexpected, errors, calls, pre_calls = [], [], [], [], []
    extra: dict = {}  # building path -> values given to set_extra_state

    def visit(spec, prefix, entries, home):
        pre_calls.append((home, prefix, not case.copy))  # a copy's hooks receive the copy
        names = {n for n, _, _ in _local(spec)}
        child_names = key_children(spec)
        for name, shape, is_param in _local(spec):
            key = prefix + name
            if key not in entries:
                missing.append(key)
                continue
            given = entries[key]
            if given == "int":
                errors.append(f'While copying the parameter named "{key}", expected torch.Tensor or Tensor-like '
                              "object from checkpoint but received <class 'int'>")
                continue
            squeeze = takes_element_0(shape, given)
            if not squeeze and tuple(given) != tuple(shape):
                errors.append(f"size mismatch for {key}: copying a param with shape {_size(given)} from checkpoint, "
                              f"the shape in current model is {_size(shape)}.")
                continue
            values[home + name] = inputs["sd"][key].reshape(-1)[:1].reshape(shape) if squeeze \
                else inputs["sd"][key].reshape(shape)
            if assign:
                # the buffer becomes the dict's tensor, unless the swap flag keeps the module's tensor object (with
                # the dict's storage swapped in)
                ident[home + name] = (key, not is_param and not squeeze and not getattr(case, "swap", False), True)
            else:
                ident[home + name] = (key, False, False)
        extra_key = prefix + "_extra_state"
        if spec.extra:
            if extra_key in entries:
                given = entries[extra_key]
                extra.setdefault(home, []).append("int" if given == "int" else tuple(given))
            else:
                missing.append(extra_key)
        elif extra_key in entries:
            unexpected.append(extra_key)
        for key in entries:
            if key.startswith(prefix) and key != extra_key:
                head, dot, _ = key[len(prefix):].partition(".")
                if (dot and head not in child_names) or (not dot and head not in names):
                    unexpected.append(key)
        for name, child in child_entries(spec):
            if child is not None:
                cprefix = prefix + name + "."
                visit(child, cprefix, {k: v for k, v in entries.items() if k.startswith(cprefix)},
                      _home(spec, name, home))
        calls.append((home, list(missing), list(unexpected)))

    visit(case.spec, "", sd, "")
    result = ("_IncompatibleKeys", missing, unexpected)
    msgs = list(errors)
    if case.strict:
        if unexpected:
            msgs.insert(0, "Unexpected key(s) in state_dict: {}. ".format(", ".join(f'"{k}"' for k in unexpected)))
        if missing:
            msgs.insert(0, "Missing key(s) in state_dict: {}. ".format(", ".join(f'"{k}"' for k in missing)))
    if msgs:
        name = "_WithExtra" if case.spec.extra else "Module"  # the root's class (suite/module/torch_side/state.py)
        text = f"Error(s) in loading state_dict for {name}:\n\t" + "\n\t".join(msgs)
        result = Raised("RuntimeError", "^" + re.escape(text) + "$")
    elif not case.strict and none_entry_raises and none_keys(case, children=False):
        # docstring note: a key for an entry registered as None raises RuntimeError
        result = Raised("RuntimeError", None)
    return result, values, ident, calls, extra, pre_calls


def incompatible_keys_repr(missing, unexpected) -> str:
    if not missing and not unexpected:
        return "<All keys matched successfully>"
    return f"_IncompatibleKeys(missing_keys={missing!r}, unexpected_keys={unexpected!r})"


def _home(spec, name, home):
    """The building path of a child: the shared alias resolves to the first child's path."""
    if spec.share is not None and name == spec.share and spec.children:
        return home + spec.children[0][0] + "."
    return home + name + "."


def none_keys(case, children=True) -> list:
    """Keys of the dict that name an entry registered as None or (children=True) lie under a None child."""
    out = []
    for prefix, spec in walk(case.spec):
        nones = {n for n, s in spec.params if s is None} | {n for n, s, _ in spec.buffers if s is None}
        none_kids = {n for n, c in spec.children if c is None} if children else set()
        for key, _ in case.entries:
            if key.startswith(prefix):
                head, dot, _ = key[len(prefix):].partition(".")
                if (not dot and head in nones) or (dot and head in none_kids):
                    out.append(key)
    return out


def keys_under_none_child(case) -> bool:
    for prefix, spec in walk(case.spec):
        none_kids = {n for n, c in spec.children if c is None}
        if any(k.startswith(prefix) and k[len(prefix):].partition(".")[0] in none_kids
               and "." in k[len(prefix):] for k, _ in case.entries):
            return True
    return False


def first_of_1d_keys(case) -> list:
    """Keys of the dict giving a 1-d value of more than one element for a 0-d parameter/persistent buffer (a size
    mismatch: only a 1-element 1-d value is accepted for a 0-d tensor)."""
    zero_d = {prefix + n for prefix, spec in walk(case.spec) for n, shape, _ in _local(spec) if tuple(shape) == ()}
    return [k for k, given in case.entries if k in zero_d and given != "int" and len(given) == 1 and given[0] > 1]


def observe(case, inputs, **variant):
    """The observable ``case.observe`` of the load (``variant``: see ``load``)."""
    result, values, ident, calls, extra, pre_calls = load(case, inputs, **variant)
    if case.observe == "result":
        return result
    if case.observe == "pre_hooks":
        return pre_calls
    if case.observe == "repr":
        return result if isinstance(result, Raised) else incompatible_keys_repr(result[1], result[2])
    if case.observe == "post_hooks":
        return calls
    if case.observe == "extra":
        homes = [prefix for prefix, spec in _unique_walk(case.spec) if spec.extra]
        return [(home, extra.get(home, [])) for home in homes]
    # the state_dict (keep_vars) of the loaded module: every path, shared modules under each
    keys = [prefix + n for prefix, spec in walk(case.spec) for n, _, _ in _local(spec)]
    homes = _paths_to_homes(case.spec)
    if case.observe == "values":
        return {k: values[homes[k]] for k in keys}
    out = {}
    for k in keys:
        is_param = _is_param_key(case.spec, homes[k])
        source, same, shares = ident.get(homes[k], (None, False, False))
        # identity is judged against the dict entry of *this* key; requires_grad: a Parameter keeps
        # the module's (False for a frozen module's), a buffer is a plain tensor (False) either way
        out[k] = (same and source == k, shares and source == k, is_param, is_param and not _home_spec(case.spec,
                                                                                                    homes[k]).frozen)
    return out


def _paths_to_homes(spec, prefix="", home=""):
    out = {}
    for n, _, _ in _local(spec):
        out[prefix + n] = home + n
    for name, child in child_entries(spec):
        if child is not None:
            out.update(_paths_to_homes(child, prefix + name + ".", _home(spec, name, home)))
    return out


def _home_spec(spec, home_key):
    """The Spec of the module that holds home_key."""
    for prefix, s in walk(spec):
        if home_key.startswith(prefix) and "." not in home_key[len(prefix):]:
            return s
    raise KeyError(home_key)


def _is_param_key(spec, home_key) -> bool:
    for prefix, s in walk(spec):
        for n, shape in s.params:
            if prefix + n == home_key and shape is not None:
                return True
    return False


def _unique_walk(spec, prefix=""):
    """Building paths in named_modules order: pre-order, a shared child only under its first name."""
    yield prefix, spec
    for name, child in spec.children:
        if child is not None:
            yield from _unique_walk(child, prefix + name + ".")


# ---- which rule an observation is about ------------------------------------------------
_OBSERVABLE_RULES = {"values": LOAD_VALUES, "identity": LOAD_ASSIGN, "post_hooks": LOAD_POST_HOOKS,
                     "extra": LOAD_EXTRA_STATE, "pre_hooks": LOAD_PRE_HOOKS,
                     "repr": LOAD_RESULT_REPR}


def result_rule(case) -> str:
    """The rule the load's result is about, in the order the documentation's checks apply: a key of a None
    entry, then per-key errors (size mismatch, non-tensor value), then extra state, then the key lists."""
    if none_keys(case):
        return LOAD_NONE
    shapes = {prefix + n: shape for prefix, spec in walk(case.spec) for n, shape, _ in _local(spec)}
    tensors = [(k, v) for k, v in case.entries if not k.endswith("_extra_state")]
    if any(v == "int" or (k in shapes and tuple(v) != tuple(shapes[k]) and not (shapes[k] == () and tuple(v) == (1,)))
           for k, v in tensors):
        return LOAD_SIZE
    if len(tensors) < len(case.entries) or any(s.extra for _, s in walk(case.spec)):
        return LOAD_EXTRA_STATE
    return LOAD_STRICT if case.strict else LOAD_KEYS


def expectations(case, inputs) -> list[Expect]:
    """A LoadCase: the expected observable ``case.observe`` under the rule it is about."""
    return [Expect(_OBSERVABLE_RULES.get(case.observe) or result_rule(case), observe(case, inputs))]


# ---- parameters on the meta device; Parameters in the dict ------------------------------
LOAD_META = rule("module.load_state_dict.meta",
    "Loading a real (non-meta) value into a parameter on the meta device with assign=False copies nothing: the "
    "parameter stays on meta (assign=False preserves the module tensors' properties) and torch warns that the copy "
    "is a no-op, pointing to assign=True; with assign=True the parameter takes the value's device and values, "
    "without a warning.  A meta value copied into a real parameter is a per-key error of the load ('While copying "
    "the parameter named ..., an exception occurred').", f"{SRC}: Module.load_state_dict (assign: 'When set to "
    "False, the properties of the tensors in the current module are preserved whereas setting it to True "
    "preserves properties of the Tensors in the state dict'), Module._load_from_state_dict ('copying from a "
    "non-meta parameter in the checkpoint to a meta parameter in the current model, which is a no-op')")


def load_single(kind: str, device: str):
    """The single loads of suite/module/cases.py MiscCase (a module with one parameter w of shape (2,), requires_grad
    True; the dict {"w": ones(2)}): (rule, expected {"device", "values", "requires_grad", "warning"}) or the error.
    load_into_meta / load_into_meta_assign: w on meta, assign False / True; load_from_meta: the dict's value on
    meta; load_assign_parameter: the dict's value a Parameter with requires_grad=False, assign=True."""
    device_type = device.split(":")[0]
    if kind == "load_into_meta":
        return LOAD_META, {"device": "meta", "values": None, "requires_grad": True,
                           "warning": Raised("UserWarning", r"^for w: copying from a non-meta parameter in the "
                                             r"checkpoint to a meta parameter in the current model, which is a no-op\. "
                                             r"\(Did you mean to pass `assign=True`")}
    if kind == "load_from_meta":
        return LOAD_META, Raised("RuntimeError", r"^Error\(s\) in loading state_dict for Plain:\n\tWhile copying the "
                                                 r'parameter named "w", whose dimensions in the model are '
                                                 r"torch\.Size\(\[2\]\) and whose dimensions in the checkpoint are "
                                                 r"torch\.Size\(\[2\]\), an exception occurred")
    # assign=True: the dict's device and values, the module's requires_grad (the documented exception)
    rule_id = LOAD_META if kind == "load_into_meta_assign" else LOAD_ASSIGN
    return rule_id, {"device": device_type, "values": np.ones(2), "requires_grad": True, "warning": None}

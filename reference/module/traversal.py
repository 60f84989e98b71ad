"""Model of nn.Module's traversal and the views built on it: named_parameters /
named_buffers / named_modules / named_children, state_dict keys and metadata,
train/eval, requires_grad_, get_/set_submodule, repr, dir, apply and the copy
protocol, over the registration model of reference/module/registration.py.
Written from the docstrings of torch/nn/modules/module.py; it never touches torch.nn.
"""
from __future__ import annotations

from conform.outcome import Raised
from conform.rules import rule
from reference.module.registration import (CLASS_ATTRS, MModule, World, getattr_, has_attr, is_module, is_param,
                                           setattr_)

SRC = "torch/nn/modules/module.py"

# ---- rules ---------------------------------------------------------------------------
NAMED_PARAMETERS = rule("module.named_parameters.order",
    "named_parameters yields each module's parameters in registration order, modules in named_modules "
    "pre-order, names dot-joined, None skipped, each Parameter once.", f"{SRC}: Module.named_parameters")
NAMED_PARAMETERS_ALL = rule("module.named_parameters.remove_duplicate_false",
    "With remove_duplicate=False every occurrence of a shared/tied Parameter is yielded under each path; "
    "prefix is prepended.", f"{SRC}: Module.named_parameters")
NAMED_PARAMETERS_LOCAL = rule("module.named_parameters.recurse_false",
    "recurse=False yields only the module's own parameters.", f"{SRC}: Module.named_parameters")
NAMED_BUFFERS = rule("module.named_buffers.order",
    "named_buffers yields buffers (persistent or not) like named_parameters, each tensor once; buffers() yields "
    "the same tensors in the same order.", f"{SRC}: Module.named_buffers, Module.buffers")
NAMED_BUFFERS_ALL = rule("module.named_buffers.remove_duplicate_false",
    "With remove_duplicate=False shared buffers are yielded under every path; prefix is prepended.",
    f"{SRC}: Module.named_buffers")
NAMED_BUFFERS_LOCAL = rule("module.named_buffers.recurse_false",
    "recurse=False yields only the module's own buffers.", f"{SRC}: Module.named_buffers")
NAMED_MODULES = rule("module.named_modules.preorder",
    "named_modules yields ('', self) then children depth-first in registration order, each module once; "
    "modules() yields the same modules in the same order.", f"{SRC}: Module.named_modules, Module.modules")
NAMED_MODULES_ALL = rule("module.named_modules.remove_duplicate_false",
    "With remove_duplicate=False shared modules are yielded under every path; prefix is prepended.",
    f"{SRC}: Module.named_modules")
NAMED_CHILDREN = rule("module.named_children.direct",
    "named_children yields direct non-None children in order, each module object once.",
    f"{SRC}: Module.named_children")
STATE_DICT_KEYS = rule("module.state_dict.keys_order",
    "state_dict holds, per module in pre-order (shared modules under every path), its non-None parameters "
    "then its non-None persistent buffers; keep_vars=True returns the objects themselves.",
    f"{SRC}: Module.state_dict")
STATE_DICT_DETACHED = rule("module.state_dict.detached",
    "Without keep_vars the values are detached aliases (same storage, requires_grad False).",
    f"{SRC}: Module.state_dict")
STATE_DICT_PREFIX = rule("module.state_dict.prefix", "prefix= is prepended to every key.",
    f"{SRC}: Module.state_dict")
STATE_DICT_POSITIONAL = rule("module.state_dict.positional_args",
    "state_dict(destination, prefix, keep_vars) given positionally warns that positional arguments are deprecated "
    "and does what the keywords do: the entries go into destination, which is returned, under prefix, kept as "
    "the objects themselves with keep_vars=True.", f"{SRC}: Module.state_dict ('Positional args are being "
    "deprecated, use kwargs instead'; the warning's category is not documented)")
STATE_DICT_METADATA = rule("module.state_dict.metadata",
    "state_dict()._metadata maps every visited module prefix (without the trailing dot, '' for the root) "
    "to {'version': 1}, in visit order.", f"{SRC}: Module.state_dict, Module._version")
TRAIN = rule("module.train.propagation",
    "train(mode)/eval() set training on the module and every descendant (reachable through non-None "
    "children) and return the module; mode defaults to True; a non-bool mode raises ValueError.",
    f"{SRC}: Module.train, Module.eval")
REQUIRES_GRAD = rule("module.requires_grad_.all_parameters",
    "requires_grad_(flag) (default True) sets requires_grad on every parameter returned by parameters() and "
    "returns self.",
    f"{SRC}: Module.requires_grad_")
GET_SUBMODULE = rule("module.get_submodule.errors",
    "get_submodule('') is self; each atom must exist (AttributeError '<Name> has no attribute `x`') and be a "
    "Module (AttributeError '`x` is not an nn.Module').", f"{SRC}: Module.get_submodule")
GET_PARAMETER = rule("module.get_parameter.errors",
    "get_parameter resolves the module path, then requires an existing attribute that is a Parameter.",
    f"{SRC}: Module.get_parameter")
GET_BUFFER = rule("module.get_buffer.errors",
    "get_buffer resolves the module path, then requires an existing attribute registered in _buffers.",
    f"{SRC}: Module.get_buffer")
SET_SUBMODULE = rule("module.set_submodule.semantics",
    "set_submodule: '' raises ValueError; the parent path must resolve; strict requires the last atom to "
    "exist; an existing non-Module attribute raises AttributeError; otherwise setattr.",
    f"{SRC}: Module.set_submodule")
REPR = rule("module.repr.structure",
    "repr is '<Name>(' + one '(key): <child repr>' line per _modules entry (None as 'None'), indented by 2, "
    "+ ')'; 'Module()' without children.", f"{SRC}: Module.__repr__")
STATE_DICT_HOOKS = rule("module.state_dict.hooks",
    "state_dict pre-hooks run for each module (pre-order, with its prefix) before it saves its tensors; post-hooks "
    "run after its children are saved (post-order), seeing the entries collected so far.",
    f"{SRC}: Module.register_state_dict_pre_hook, Module.register_state_dict_post_hook, Module.state_dict")
STATE_DICT_POST_HOOK_RETURN = rule("module.state_dict.post_hook_returns_none",
    "A hook registered with register_state_dict_post_hook must return None: state_dict raises RuntimeError "
    "'state_dict post-hook must return None' otherwise.",
    f"{SRC}: Module.register_state_dict_post_hook ('hook(module, state_dict, prefix, local_metadata) -> None')")
APPLY = rule("module.apply.order",
    "apply(fn) calls fn on the children's subtrees first (each parent's distinct non-None children, in order), "
    "then on self.", f"{SRC}: Module.apply")
DEEPCOPY = rule("module.copy.deepcopy",
    "copy.deepcopy of a module yields fresh objects with the same names, order and sharing/tying of "
    "parameters, buffers and submodules, the same requires_grad and training flags.",
    f"{SRC}: Module (Python copy protocol)")
PICKLE = rule("module.copy.pickle",
    "pickle.dumps/pickle.loads round-trips the module tree: same names, order, sharing/tying, requires_grad "
    "and training flags.",
    f"{SRC}: Module.__getstate__, Module.__setstate__")
COPY_HOOKS = rule("module.copy.hooks",
    "A deepcopied or unpickled module keeps its hooks with their flags: forward pre-hooks (with_kwargs), forward "
    "hooks (always_call), state_dict pre- and post-hooks, each firing on the copy as on the original.",
    f"{SRC}: Module.__getstate__ / Module.__setstate__ (the hook dicts are instance state; __setstate__ only "
    "adds the ones a checkpoint from an older release lacks)")
EXTRA_REPR = rule("module.repr.extra_repr",
    "repr puts extra_repr() inline as 'Name(extra)' when it is one line and there are no children; otherwise one "
    "line per extra_repr line, then per child, each indented by 2.", f"{SRC}: Module.__repr__, Module.extra_repr")
DIR = rule("module.dir.contents",
    "dir() lists class attributes, instance attributes, parameters, submodules and buffers, sorted, dropping "
    "names that start with a digit (the source's 'not legal Python variable names').", f"{SRC}: Module.__dir__")


# ---- traversal -----------------------------------------------------------------------
def named_modules(w: World, label: str, prefix: str = "", remove_duplicate: bool = True, memo=None):
    memo = set() if memo is None else memo
    if label in memo:
        return []
    if remove_duplicate:
        memo.add(label)
    out = [(prefix, label)]
    for name, child in w.mods[label].modules.items():
        if child is not None:
            out += named_modules(w, child, prefix + ("." if prefix else "") + name, remove_duplicate, memo)
    return out


def named_members(w: World, label: str, store: str, prefix="", recurse=True, remove_duplicate=True):
    mods = named_modules(w, label, prefix, remove_duplicate) if recurse else [(prefix, label)]
    seen, out = set(), []
    for mprefix, mlabel in mods:
        for name, obj in getattr(w.mods[mlabel], store).items():
            if obj is None or obj in seen:
                continue
            if remove_duplicate:
                seen.add(obj)
            out.append((mprefix + ("." if mprefix else "") + name, obj))
    return out


def named_children(w: World, label: str):
    seen, out = set(), []
    for name, child in w.mods[label].modules.items():
        if child is not None and child not in seen:
            seen.add(child)
            out.append((name, child))
    return out


def state_dict_items(w: World, label: str, prefix: str = ""):
    """[(key, label)] and [(metadata key, version)] of state_dict(prefix=prefix)."""
    m = w.mods[label]
    items = [(prefix + n, v) for n, v in m.params.items() if v is not None]
    items += [(prefix + n, v) for n, v in m.buffers.items() if v is not None and n not in m.non_persistent]
    meta = [(prefix[:-1], {"version": 1})]
    for name, child in m.modules.items():
        if child is not None:
            child_items, child_meta = state_dict_items(w, child, prefix + name + ".")
            items += child_items
            meta += child_meta
    return items, meta


def ordered_meta(meta):
    """Metadata is a dict: a repeated prefix keeps its first position."""
    return list(dict(meta).items())


def reachable(w: World, label: str) -> set:
    return {lab for _, lab in named_modules(w, label)}


# ---- mode, grads, paths --------------------------------------------------------------
def train(w: World, label: str, mode: bool) -> None:
    w.mods[label].training = mode
    for _, child in named_children(w, label):
        train(w, child, mode)


def requires_grad_(w: World, label: str, flag: bool) -> None:
    for _, p in named_members(w, label, "params"):
        if is_param(p):
            w.requires_grad[p] = flag


def get_submodule(w: World, label: str, target: str):
    if target == "":
        return label
    mod = label
    for item in target.split("."):
        m = w.mods[mod]
        if not has_attr(m, item):
            return Raised("AttributeError", f"Module has no attribute `{item}`")
        found = getattr_(m, item)
        if not is_module(found):
            return Raised("AttributeError", f"`{item}` is not an nn.Module")
        mod = found
    return mod


def get_parameter(w: World, label: str, target: str, want_buffer: bool = False):
    path, _, name = target.rpartition(".")
    mod = get_submodule(w, label, path)
    if isinstance(mod, Raised):
        return mod
    m = w.mods[mod]
    if not has_attr(m, name):
        return Raised("AttributeError", f"Module has no attribute `{name}`")
    found = getattr_(m, name)
    if want_buffer:
        return found if name in m.buffers else Raised("AttributeError", f"`{name}` is not a buffer")
    return found if is_param(found) else Raised("AttributeError", f"`{name}` is not an nn.Parameter")


def set_submodule(w: World, label: str, target: str, value: tuple, module_label, strict: bool):
    if target == "":
        return Raised("ValueError", "Cannot set the submodule without a target name!")
    if not is_module(module_label):
        return Raised("ValueError", r"`module` is not an nn.Module")
    parent_path, _, last = target.rpartition(".")
    parent = get_submodule(w, label, parent_path)
    if isinstance(parent, Raised):
        return parent
    pm = w.mods[parent]
    if strict and not has_attr(pm, last):
        return Raised("AttributeError", f"Module has no attribute `{last}`")
    if has_attr(pm, last) and not is_module(getattr_(pm, last)):
        return Raised("AttributeError", f"`{last}` is not an nn.Module")
    return setattr_(w, pm, last, value, module_label)[1]


# ---- repr, dir -----------------------------------------------------------------------
def _indent(text: str, n: int) -> str:
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    return lines[0] + "\n" + "\n".join(" " * n + line for line in lines[1:])


def repr_(w: World, label) -> str:
    if label is None:
        return "None"
    lines = [f"({k}): " + _indent(repr_(w, child), 2) for k, child in w.mods[label].modules.items()]
    return "Module(" + ("\n  " + "\n  ".join(lines) + "\n" if lines else "") + ")"


def dir_names(m: MModule, pool_names) -> list:
    """The pool names dir() lists (class attrs among them, instance attrs, params, modules, buffers)."""
    # a list, not a set: a name both on the class and in the instance dict is listed twice
    keys = sorted(CLASS_ATTRS) + list(m.attrs) + list(m.params) + list(m.modules) + list(m.buffers)
    return sorted(k for k in keys if k in pool_names and k != "" and not k[0].isdigit())


def state_dict_hook_calls(w: World, label: str, prefix: str, count: list) -> list:
    m = w.mods[label]
    calls = [("pre", label, prefix)]
    count[0] += sum(v is not None for v in m.params.values())
    count[0] += sum(v is not None and n not in m.non_persistent for n, v in m.buffers.items())
    for name, child in m.modules.items():
        if child is not None:
            calls += state_dict_hook_calls(w, child, prefix + name + ".", count)
    return calls + [("post", label, prefix, count[0])]


def copied_hook_calls() -> list:
    """hooks_deepcopy / hooks_pickle: the copy of a root with buffer b and child c (buffer b), each with a state_dict
    pre- and post-hook, the root with a forward pre-hook (with_kwargs=True) and a forward hook (always_call=True);
    the copy is saved (pre-order pre-hooks, post-order post-hooks with the entries so far), then called with x=1."""
    return [("sd_pre", ""), ("sd_pre", "c."), ("sd_post", "c.", 2), ("sd_post", "", 2),
            ("forward_pre", ["x"]), ("forward", 1.0)]


def apply_order(w: World, label: str) -> list:
    out = []
    for _, child in named_children(w, label):
        out += apply_order(w, child)
    return out + [label]


def structure(w: World, label: str) -> dict:
    out = {}
    for what, pairs in (("params", named_members(w, label, "params", remove_duplicate=False)),
                        ("buffers", named_members(w, label, "buffers", remove_duplicate=False)),
                        ("modules", named_modules(w, label, remove_duplicate=False))):
        firsts: list = []
        names = []
        for name, obj in pairs:
            if obj not in firsts:
                firsts.append(obj)
            names.append((name, firsts.index(obj)))
        out[what] = names
        out[what + "_fresh"] = True
    # the copies keep each parameter's requires_grad and each module's training flag
    out["params_requires_grad"] = [w.requires_grad[p] for _, p in named_members(w, label, "params",
                                                                                 remove_duplicate=False)]
    out["modules_training"] = [w.mods[m].training for _, m in named_modules(w, label, remove_duplicate=False)]
    out["state_dict"] = [k for k, _ in state_dict_items(w, label)[0]]
    return out


def box_repr(case) -> str:
    """repr of a ReprCase tree (class name 'Box'), from Module.__repr__'s documented layout."""
    extra = list(case.lines) if "\n".join(case.lines) else []
    children = [f"({name}): " + _indent("None" if child is None else box_repr(child), 2)
                for name, child in case.children]
    lines = extra + children
    if not lines:
        return "Box()"
    if len(extra) == 1 and not children:
        return f"Box({extra[0]})"
    return "Box(\n  " + "\n  ".join(lines) + "\n)"

"""Model of nn.Module's registration, attribute dispatch and traversal.

A module is a ``MModule``: plain dicts for ``_parameters``, ``_buffers``,
``_modules`` (name -> label or None, in insertion order, like the real
OrderedDicts), the set of non-persistent buffer names, the plain instance
attributes and the training flag.  Objects are labels (see
suite/module/tree_torch.py).  Written from the docstrings of
torch/nn/modules/module.py and, where they are silent, from what the source
clearly intends; it never touches torch.nn.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from conform.rules import rule
from reference.versions import since
from conform.outcome import Raised

SRC = "torch/nn/modules/module.py"

# ---- rules ---------------------------------------------------------------------------
SETATTR_PARAMETER = rule("module.setattr.parameter",
    "Assigning a Parameter registers it (register_parameter) after removing the name from the instance "
    "attributes, buffers and submodules.", f"{SRC}: Module.__setattr__")
SETATTR_PARAM_NAME = rule("module.setattr.param_name_requires_parameter",
    "Assigning anything but a Parameter or None to a parameter name raises TypeError; None keeps the "
    "name registered with value None.", f"{SRC}: Module.__setattr__")
SETATTR_MODULE = rule("module.setattr.module",
    "Assigning a Module registers it as a child (replacing an attribute, parameter or buffer of that name) "
    "under add_module's name rules.", f"{SRC}: Module.__setattr__; Module docstring")
SETATTR_MODULE_NAME = rule("module.setattr.module_name_requires_module",
    "Assigning anything but a Module or None to a child-module name raises TypeError.", f"{SRC}: Module.__setattr__")
SETATTR_BUFFER = rule("module.setattr.buffer",
    "Assigning a tensor (or None) to an existing buffer name replaces the buffer and keeps its persistence; "
    "a non-tensor raises TypeError; an nn.Buffer is registered with its own persistence.",
    f"{SRC}: Module.__setattr__; torch/nn/parameter.py: Buffer")
SETATTR_PLAIN = rule("module.setattr.plain",
    "Any other value (plain objects, None, unregistered tensors) becomes an ordinary instance attribute.",
    f"{SRC}: Module.__setattr__")
GETATTR = rule("module.getattr.lookup",
    "Attribute lookup finds instance attributes and methods first, then _parameters, _buffers, _modules; "
    "otherwise AttributeError.", f"{SRC}: Module.__getattr__")
DELATTR = rule("module.delattr.unregisters",
    "del removes a parameter, buffer (and its non-persistent mark) or submodule; otherwise it is an "
    "ordinary attribute deletion (AttributeError if absent).", f"{SRC}: Module.__delattr__")
REGISTER_PARAMETER = rule("module.register_parameter.validation",
    "register_parameter rejects '.' in the name (KeyError), then the empty name (KeyError), then an existing "
    "non-parameter attribute (KeyError), then values other than Parameter/None (TypeError).",
    f"{SRC}: Module.register_parameter")
REGISTER_BUFFER = rule("module.register_buffer.validation",
    "register_buffer rejects '.' (KeyError), '' (KeyError), an existing non-buffer attribute (KeyError), then "
    "non-tensor values (TypeError); persistent=False marks it non-persistent.", f"{SRC}: Module.register_buffer")
ADD_MODULE = rule("module.add_module.validation",
    "add_module/register_module reject non-Module values (TypeError), then an existing non-module attribute "
    "(KeyError), then '.' (KeyError), then '' (KeyError).", f"{SRC}: Module.add_module, Module.register_module")
NAMED_PARAMETERS = rule("module.named_parameters.order",
    "named_parameters yields each module's parameters in registration order, modules in named_modules "
    "pre-order, names dot-joined, None skipped, each Parameter once.", f"{SRC}: Module.named_parameters")
NAMED_PARAMETERS_ALL = rule("module.named_parameters.remove_duplicate_false",
    "With remove_duplicate=False every occurrence of a shared/tied Parameter is yielded under each path; "
    "prefix is prepended.", f"{SRC}: Module.named_parameters")
NAMED_PARAMETERS_LOCAL = rule("module.named_parameters.recurse_false",
    "recurse=False yields only the module's own parameters.", f"{SRC}: Module.named_parameters")
NAMED_BUFFERS = rule("module.named_buffers.order",
    "named_buffers yields buffers (persistent or not) like named_parameters, each tensor once.",
    f"{SRC}: Module.named_buffers")
NAMED_BUFFERS_ALL = rule("module.named_buffers.remove_duplicate_false",
    "With remove_duplicate=False shared buffers are yielded under every path; prefix is prepended.",
    f"{SRC}: Module.named_buffers")
NAMED_BUFFERS_LOCAL = rule("module.named_buffers.recurse_false",
    "recurse=False yields only the module's own buffers.", f"{SRC}: Module.named_buffers")
NAMED_MODULES = rule("module.named_modules.preorder",
    "named_modules yields ('', self) then children depth-first in registration order, each module once.",
    f"{SRC}: Module.named_modules")
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
REGISTRATION_HOOKS = rule("module.registration_hooks.global",
    "Global parameter/buffer/module registration hooks are called with (module, name, value) every time "
    "register_parameter/register_buffer/register_module (add_module, attribute assignment) registers a value.",
    f"{SRC}: register_module_parameter_registration_hook, register_module_buffer_registration_hook, "
    "register_module_module_registration_hook")
REGISTRATION_REPLACE = rule("module.registration_hooks.replace",
    "A global parameter/buffer/module registration hook that returns a value replaces the object being registered "
    "(by register_*, add_module or attribute assignment): later hooks receive the replacement and the last one "
    "is registered; returning None keeps the value.",
    f"{SRC}: register_module_buffer_registration_hook ('hook(module, name, buffer) -> None or new buffer'; 'The "
    "hook can modify the input or return a single modified value'), and its parameter/module twins")
STATE_DICT_HOOKS = rule("module.state_dict.hooks",
    "state_dict pre-hooks run for each module (pre-order, with its prefix) before it saves its tensors; post-hooks "
    "run after its children are saved (post-order), seeing the entries collected so far.",
    f"{SRC}: Module.register_state_dict_pre_hook, Module.register_state_dict_post_hook, Module.state_dict")
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
EXTRA_REPR = rule("module.repr.extra_repr",
    "repr puts extra_repr() inline as 'Name(extra)' when it is one line and there are no children; otherwise one "
    "line per extra_repr line, then per child, each indented by 2.", f"{SRC}: Module.__repr__, Module.extra_repr")
DIR = rule("module.dir.contents",
    "dir() lists class attributes, instance attributes, parameters, submodules and buffers, sorted, dropping "
    "names that start with a digit (the source's 'not legal Python variable names').", f"{SRC}: Module.__dir__")

# The object pool of a tree program (suite/module/tree_torch.py makes the same labels).
MODULES = ("m0", "m1", "m2", "m3", "m4")
PARAMS = ("p0", "p1", "p2", "p3")
FROZEN = ("p1", "p3")  # parameters created with requires_grad=False
TENSORS = ("t0", "t1", "t2", "t3")
POOL_NAMES = ("a", "b", "c", "0", "x.y", "", "forward")

# Names of class attributes of nn.Module among the pool names (torch/nn/modules/module.py: Module.forward).
CLASS_ATTRS = frozenset({"forward"})


@dataclass
class MModule:
    params: dict = field(default_factory=dict)
    buffers: dict = field(default_factory=dict)
    modules: dict = field(default_factory=dict)
    non_persistent: set = field(default_factory=set)
    attrs: dict = field(default_factory=dict)
    training: bool = True
    label: str = ""
    log: list = field(default_factory=list)  # global registration hook calls (shared by a World's modules)


@dataclass
class World:
    mods: dict
    requires_grad: dict
    storage: dict  # buffer wrapper label -> label of the pool tensor it aliases


def new_world(modules, params, tensors, frozen=FROZEN) -> World:
    storage = {label: label for label in (*params, *tensors)}
    log: list = []
    return World({label: MModule(label=label, log=log) for label in modules}, {p: p not in frozen for p in params},
                 storage)


# ---- value classification ------------------------------------------------------------
def value_label(index: int, value: tuple):
    """The label a value will have once made (None for None, ('int', n) for ints)."""
    kind = value[0]
    if kind == "none":
        return None
    if kind == "int":
        return ("int", value[1])
    if kind == "buffer":
        return f"buf@{index}"
    return value[1]


def is_param(label) -> bool:
    return isinstance(label, str) and label.startswith("p")


def is_tensor(label) -> bool:
    return isinstance(label, str) and (label[0] in "pt" or label.startswith("buf@"))


def is_module(label) -> bool:
    return isinstance(label, str) and label.startswith("m")


def typename_re(label) -> str:
    if is_module(label):
        return r"torch\.nn\.modules\.module\.Module"
    if isinstance(label, tuple) and label[0] == "int":
        return "int"
    return r"torch\.(\w+\.)?\w+Tensor"


def has_attr(m: MModule, name: str) -> bool:
    return (name in m.attrs or name in CLASS_ATTRS or name in m.params or name in m.buffers
            or name in m.modules)


def _discard(m: MModule, name: str, *, attrs=False, params=False, buffers=False, modules=False) -> None:
    if attrs:
        m.attrs.pop(name, None)
    if params:
        m.params.pop(name, None)
    if buffers:
        m.buffers.pop(name, None)
        m.non_persistent.discard(name)
    if modules:
        m.modules.pop(name, None)


# ---- registration --------------------------------------------------------------------
def register_parameter(m: MModule, name: str, label):
    if "." in name:
        return Raised("KeyError", r'parameter name can.{1,2}t contain "\."' )
    if name == "":
        return Raised("KeyError", r'parameter name can.{1,2}t be empty string ""')
    if has_attr(m, name) and name not in m.params:
        return Raised("KeyError", f"attribute '{name}' already exists")
    if label is not None and not is_param(label):
        return Raised("TypeError", f"cannot assign '{typename_re(label)}' object to parameter '{name}' "
                                   r"\(torch\.nn\.Parameter or None required\)")
    m.params[name] = label
    m.log.append(("parameter", m.label, name, _as_outcome(label)))
    return None


def register_buffer(m: MModule, name: str, label, persistent: bool):
    if "." in name:
        return Raised("KeyError", r'buffer name can.{1,2}t contain "\."' )
    if name == "":
        return Raised("KeyError", r'buffer name can.{1,2}t be empty string ""')
    if has_attr(m, name) and name not in m.buffers:
        return Raised("KeyError", f"attribute '{name}' already exists")
    if label is not None and not is_tensor(label):
        return Raised("TypeError", f"cannot assign '{typename_re(label)}' object to buffer '{name}' "
                                   r"\(torch Tensor or None required\)")
    m.buffers[name] = label
    m.log.append(("buffer", m.label, name, _as_outcome(label)))
    if persistent:
        m.non_persistent.discard(name)
    else:
        m.non_persistent.add(name)
    return None


def add_module(m: MModule, name: str, label):
    if label is not None and not is_module(label):
        return Raised("TypeError", f"{typename_re(label)} is not a Module subclass")
    if has_attr(m, name) and name not in m.modules:
        return Raised("KeyError", f"attribute '{name}' already exists")
    if "." in name:
        return Raised("KeyError", r'module name can.{1,2}t contain "\.", got: ' + name.replace(".", r"\."))
    if name == "":
        return Raised("KeyError", r'module name can.{1,2}t be empty string ""')
    m.modules[name] = label
    m.log.append(("module", m.label, name, _as_outcome(label)))
    return None


def setattr_(w: World, m: MModule, name: str, value: tuple, label):
    """Module.__setattr__, returning (rule, outcome)."""
    kind = value[0]
    if kind == "param":
        if "." in name or name == "" or name in CLASS_ATTRS:
            # invalid name: register_parameter's error, and the module is left as it was
            return SETATTR_PARAMETER, register_parameter(MModule(), name, label)
        _discard(m, name, attrs=True, buffers=True, modules=True)
        return SETATTR_PARAMETER, register_parameter(m, name, label)
    if name in m.params:
        if label is not None:
            return SETATTR_PARAM_NAME, Raised("TypeError", f"cannot assign '{typename_re(label)}' as parameter "
                                                           f"'{name}' " r"\(torch\.nn\.Parameter or None expected\)")
        return SETATTR_PARAM_NAME, register_parameter(m, name, None)
    if kind == "module":
        # Documented intent: the child is registered as by add_module, so add_module's name rules hold;
        # an instance attribute / parameter / buffer of that name is replaced.
        if "." in name or name == "" or name in CLASS_ATTRS:
            return SETATTR_MODULE, add_module(MModule(), name, label)
        _discard(m, name, attrs=True, params=True, buffers=True)
        m.modules[name] = label
        m.log.append(("module", m.label, name, label))
        return SETATTR_MODULE, None
    if name in m.modules:
        if label is not None:
            return SETATTR_MODULE_NAME, Raised("TypeError", f"cannot assign '{typename_re(label)}' as child "
                                                            f"module '{name}' " r"\(torch\.nn\.Module or None expected\)")
        m.modules[name] = None
        m.log.append(("module", m.label, name, ("none",)))
        return SETATTR_MODULE_NAME, None
    if kind == "buffer" or name in m.buffers:
        if label is not None and not is_tensor(label):
            # the message names nn.Buffer since it exists (torch 2.5: torch/nn/parameter.py: Buffer; 2.4.1's
            # Module.__setattr__ says '(torch.Tensor or None expected)')
            accepted = r"torch\.nn\.Buffer, torch\.Tensor" if since("2.5") else r"torch\.Tensor"
            return SETATTR_BUFFER, Raised("TypeError", f"cannot assign '{typename_re(label)}' as buffer '{name}' "
                                                       rf"\({accepted} or None expected\)")
        persistent = value[2] if kind == "buffer" else name not in m.non_persistent
        if kind == "buffer":
            w.storage[label] = value[1]
            # documented: an nn.Buffer assigned as an attribute is added to the buffers (like a Parameter
            # or a Module replaces an ordinary attribute of that name).
            if name in m.attrs and "." not in name and name != "":
                del m.attrs[name]
        return SETATTR_BUFFER, register_buffer(m, name, label, persistent)
    m.attrs[name] = label
    return SETATTR_PLAIN, None


def delattr_(m: MModule, name: str):
    for store in (m.params, m.buffers, m.modules, m.attrs):
        if name in store:
            del store[name]
            m.non_persistent.discard(name)
            return None
    return Raised("AttributeError", None)


def getattr_(m: MModule, name: str):
    if name in m.attrs:
        return _as_outcome(m.attrs[name])
    if name in CLASS_ATTRS:
        return ("method",)
    for store in (m.params, m.buffers, m.modules):
        if name in store:
            return _as_outcome(store[name])
    return Raised("AttributeError", f"'Module' object has no attribute '{name}'")


def _as_outcome(label):
    return ("none",) if label is None else label


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


# ---- programs ------------------------------------------------------------------------
OBSERVABLE_RULES = {
    "state_dict_hooks": STATE_DICT_HOOKS, "registration": REGISTRATION_HOOKS,
    "named_parameters": NAMED_PARAMETERS, "named_parameters_all": NAMED_PARAMETERS_ALL,
    "named_parameters_local": NAMED_PARAMETERS_LOCAL, "named_buffers": NAMED_BUFFERS,
    "named_buffers_all": NAMED_BUFFERS_ALL, "named_buffers_local": NAMED_BUFFERS_LOCAL,
    "named_modules": NAMED_MODULES, "named_modules_all": NAMED_MODULES_ALL,
    "named_children": NAMED_CHILDREN, "state_dict": STATE_DICT_KEYS,
    "state_dict_detached": STATE_DICT_DETACHED, "state_dict_prefixed": STATE_DICT_PREFIX,
    "metadata": STATE_DICT_METADATA, "training": TRAIN, "requires_grad": REQUIRES_GRAD,
    "repr": REPR, "dir": DIR,
}


def expected_observation(w: World, what: str):
    if what == "named_parameters":
        return named_members(w, "m0", "params")
    if what == "named_parameters_all":
        return named_members(w, "m0", "params", prefix="r", remove_duplicate=False)
    if what == "named_parameters_local":
        return named_members(w, "m0", "params", recurse=False)
    if what == "named_buffers":
        return named_members(w, "m0", "buffers")
    if what == "named_buffers_all":
        return named_members(w, "m0", "buffers", prefix="r", remove_duplicate=False)
    if what == "named_buffers_local":
        return named_members(w, "m0", "buffers", recurse=False)
    if what == "named_modules":
        return named_modules(w, "m0")
    if what == "named_modules_all":
        return named_modules(w, "m0", prefix="r", remove_duplicate=False)
    if what == "named_children":
        return named_children(w, "m0")
    if what == "state_dict":
        return state_dict_items(w, "m0")[0]
    if what == "state_dict_detached":
        return [(k, w.storage[v], False) for k, v in state_dict_items(w, "m0")[0]]
    if what == "state_dict_prefixed":
        return [k for k, _ in state_dict_items(w, "m0", "pre.")[0]]
    if what == "metadata":
        return ordered_meta(state_dict_items(w, "m0")[1])
    if what == "training":
        return [(label, w.mods[label].training) for label in MODULES]
    if what == "requires_grad":
        return [(p, w.requires_grad[p]) for p in PARAMS]
    if what == "repr":
        return repr_(w, "m0")
    if what == "dir":
        return dir_names(w.mods["m0"], POOL_NAMES)
    if what == "apply":
        return apply_order(w, "m0")
    if what == "registration":
        return list(w.mods["m0"].log)
    if what == "state_dict_hooks":
        return state_dict_hook_calls(w, "m0", "", [0])
    if what in ("deepcopy", "pickle"):
        return structure(w, "m0")
    raise ValueError(what)


def state_dict_hook_calls(w: World, label: str, prefix: str, count: list) -> list:
    m = w.mods[label]
    calls = [("pre", label, prefix)]
    count[0] += sum(v is not None for v in m.params.values())
    count[0] += sum(v is not None and n not in m.non_persistent for n, v in m.buffers.items())
    for name, child in m.modules.items():
        if child is not None:
            calls += state_dict_hook_calls(w, child, prefix + name + ".", count)
    return calls + [("post", label, prefix, count[0])]


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


def run_op(w: World, index: int, op: Op):
    """(rule, expected outcome) of one op on the model."""
    m = w.mods[op.target]
    m.log.clear()  # registration hook calls are observed per op
    label = value_label(index, op.value) if op.value else None
    k = op.kind
    if k == "setattr":
        return setattr_(w, m, op.name, op.value, label)
    if k == "delattr":
        return DELATTR, delattr_(m, op.name)
    if k == "getattr":
        return GETATTR, getattr_(m, op.name)
    if k == "register_parameter":
        return REGISTER_PARAMETER, register_parameter(m, op.name, label)
    if k == "register_buffer":
        if op.value[0] == "buffer":
            w.storage[label] = op.value[1]
        return REGISTER_BUFFER, register_buffer(m, op.name, label, op.flag)
    if k in ("add_module", "register_module"):
        return ADD_MODULE, add_module(m, op.name, label)
    if k == "train_value":
        return TRAIN, Raised("ValueError", "training mode is expected to be boolean")
    if k in ("train", "eval"):
        # train() and requires_grad_() without an argument: the defaults mode=True, requires_grad=True
        train(w, op.target, (op.flag is not False) if k == "train" else False)
        return TRAIN, op.target
    if k == "requires_grad_":
        requires_grad_(w, op.target, op.flag is not False)
        return REQUIRES_GRAD, op.target
    if k == "get_submodule":
        return GET_SUBMODULE, get_submodule(w, op.target, op.name)
    if k == "get_parameter":
        return GET_PARAMETER, get_parameter(w, op.target, op.name)
    if k == "get_buffer":
        return GET_BUFFER, get_parameter(w, op.target, op.name, want_buffer=True)
    if k == "set_submodule":
        return SET_SUBMODULE, set_submodule(w, op.target, op.name, op.value, label, op.flag)
    raise ValueError(k)




def run_program(program):
    """Expected outcome of a TreeProgram: the model run over all its ops."""
    w = new_world(MODULES, PARAMS, TENSORS)
    result = None
    for i, op in enumerate(program.ops):
        result = run_op(w, i, op)[1]
    return result if program.observe == "result" else expected_observation(w, program.observe)


def world_after(ops) -> World:
    w = new_world(MODULES, PARAMS, TENSORS)
    for i, op in enumerate(ops):
        run_op(w, i, op)
    return w


# ---- before Module.__init__ ----------------------------------------------------------
BEFORE_INIT = rule("module.init.assign_before_init",
    "Before Module.__init__ ran, assigning a Parameter/Module/Buffer attribute or calling register_parameter/"
    "register_buffer/add_module raises AttributeError ('cannot assign ... before Module.__init__() call' where "
    "the source says so); a plain attribute is set and survives __init__.", f"{SRC}: Module.__setattr__, "
    "Module.register_parameter, Module.register_buffer")

_BEFORE_INIT_MESSAGES = {
    "param_attr": r"cannot assign parameters before Module\.__init__\(\) call",
    "module_attr": r"cannot assign module before Module\.__init__\(\) call",
    "buffer_attr": r"cannot assign buffer before Module\.__init__\(\) call",
    "register_parameter": r"cannot assign parameter before Module\.__init__\(\) call",
    "register_buffer": r"cannot assign buffer before Module\.__init__\(\) call",
    "add_module": None,
}


def before_init(case):
    if case.kind == "plain_attr":
        return None, True
    return Raised("AttributeError", _BEFORE_INIT_MESSAGES[case.kind]), False


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


def registration_replace(case) -> tuple:
    """(what each hook receives, what is registered) for suite/module/tree_torch.py: RegistrationReplace."""
    value = "none" if case.via == "setattr_none" else "orig"
    seen = []
    for i, returns in enumerate(case.returns):
        seen.append(value)
        if returns:
            value = f"r{i}"
    return seen, value

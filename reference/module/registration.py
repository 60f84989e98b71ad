"""Model of nn.Module's registration and attribute dispatch: register_parameter,
register_buffer, add_module, __setattr__ / __getattr__ / __delattr__, the global
registration hooks, and assignments before Module.__init__.

A module is an ``MModule``: plain dicts for ``_parameters``, ``_buffers``,
``_modules`` (name -> label or None, in insertion order, like the real
OrderedDicts), the set of non-persistent buffer names, the plain instance
attributes and the training flag.  Objects are labels (suite/module/cases.py makes
the same pool).  Written from the docstrings of torch/nn/modules/module.py and,
where they are silent, from what the source clearly intends; it never touches
torch.nn.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from conform.outcome import Raised
from conform.rules import rule
from reference.versions import since

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
    "register_parameter rejects a non-str name (TypeError), '.' in the name (KeyError), then the empty name (KeyError), then an existing "
    "non-parameter attribute (KeyError), then values other than Parameter/None (TypeError).",
    f"{SRC}: Module.register_parameter")
REGISTER_BUFFER = rule("module.register_buffer.validation",
    "register_buffer rejects a non-str name (TypeError), '.' (KeyError), '' (KeyError), an existing non-buffer attribute (KeyError), then "
    "non-tensor values (TypeError); persistent=False marks it non-persistent.", f"{SRC}: Module.register_buffer")
ADD_MODULE = rule("module.add_module.validation",
    "add_module/register_module reject non-Module values (TypeError), then a non-str name (TypeError), then an existing non-module attribute "
    "(KeyError), then '.' (KeyError), then '' (KeyError).", f"{SRC}: Module.add_module, Module.register_module")
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
BEFORE_INIT = rule("module.init.assign_before_init",
    "Before Module.__init__ ran, assigning a Parameter/Module/Buffer attribute or calling register_parameter/"
    "register_buffer/add_module raises AttributeError ('cannot assign ... before Module.__init__() call' where "
    "the source says so); a plain attribute is set and survives __init__.", f"{SRC}: Module.__setattr__, "
    "Module.register_parameter, Module.register_buffer")

INIT_ARGS = rule("module.init.arguments",
    "Module.__init__ takes no arguments (TypeError naming the class) unless the class sets call_super_init=True, "
    "which passes them on to the next class in the MRO.", f"{SRC}: Module.__init__, Module.call_super_init")
CALL_NO_FORWARD = rule("module.call.missing_forward",
    "Calling a module whose class defines no forward raises NotImplementedError 'Module [<Name>] is missing the "
    "required \"forward\" function'.", f"{SRC}: _forward_unimplemented ('Should be overridden by all subclasses')")

# The object pool of a tree program (suite/module/cases.py names the same labels).
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
_STORE = {"parameter": "params", "buffer": "buffers"}
# what each accepts besides None, and the words of its TypeError
_ACCEPTS = {"parameter": (is_param, r"torch\.nn\.Parameter or None required"),
            "buffer": (is_tensor, r"torch Tensor or None required")}


def _validate(kind: str, m: MModule, name: str, label):
    """register_parameter's / register_buffer's checks, in the source's order: the error, or None."""
    if not isinstance(name, str):
        return Raised("TypeError", f"{kind} name should be a string. Got {type(name).__name__}")
    if "." in name:
        return Raised("KeyError", kind + r' name can.{1,2}t contain "\."')
    if name == "":
        return Raised("KeyError", kind + r' name can.{1,2}t be empty string ""')
    if has_attr(m, name) and name not in getattr(m, _STORE[kind]):
        return Raised("KeyError", f"attribute '{name}' already exists")
    accepts, required = _ACCEPTS[kind]
    if label is not None and not accepts(label):
        return Raised("TypeError", f"cannot assign '{typename_re(label)}' object to {kind} '{name}' " rf"\({required}\)")
    return None


def register_parameter(m: MModule, name: str, label):
    error = _validate("parameter", m, name, label)
    if error is not None:
        return error
    m.params[name] = label
    m.log.append(("parameter", m.label, name, _as_outcome(label)))
    return None


def register_buffer(m: MModule, name: str, label, persistent: bool):
    error = _validate("buffer", m, name, label)
    if error is not None:
        return error
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
    if not isinstance(name, str):
        return Raised("TypeError", f"module name should be a string. Got {type(name).__name__}")
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


# ---- before Module.__init__ ----------------------------------------------------------
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


def registration_replace(case) -> tuple:
    """(what each hook receives, what is registered) of a RegistrationReplace case (suite/module/cases.py)."""
    value = "none" if case.via == "setattr_none" else "orig"
    seen = []
    for i, returns in enumerate(case.returns):
        seen.append(value)
        if returns:
            value = f"r{i}"
    return seen, value


# ---- parameters that are not graph leaves; subclasses overriding register_buffer --------
REGISTER_NON_LEAF = rule("module.register_parameter.non_leaf",
    "A Parameter that is not a leaf of the autograd graph (it has a grad_fn, e.g. after an in-place copy_ from a "
    "tensor requiring grad) is refused, by register_parameter and by attribute assignment alike, with ValueError "
    "'Cannot assign non-leaf Tensor to parameter'.", f"{SRC}: Module.register_parameter ('Model parameters must be "
    "created explicitly. To express ... as a function of another Tensor, compute the value in the forward() method')")
BUFFER_OVERRIDE = rule("module.setattr.buffer_override",
    "Assigning an nn.Buffer registers it through the module's own register_buffer: a subclass's override that "
    "takes a persistent parameter receives (name, tensor, persistent); one without it receives (name, tensor) and "
    "the buffer is persistent (that override's pre-persistent behaviour), so a non-persistent nn.Buffer is refused "
    "with RuntimeError.", f"{SRC}: Module.__setattr__ ('to support subclasses of nn.Module that (wrongfully) "
    "implement a register_buffer() method that doesn't have the \"persistent\" argument ... assume it is always "
    "true'); torch/nn/parameter.py: Buffer")

NON_LEAF_ERROR = Raised("ValueError", r"^Cannot assign non-leaf Tensor to parameter 'w'")


def buffer_override(takes_persistent: bool, persistent: bool):
    """(arguments the override received after the name, state_dict keys), or the documented refusal."""
    if takes_persistent:
        return (persistent,), ["b"] if persistent else []
    if not persistent:
        return Raised("RuntimeError", "^Registering a non-persistent buffer on a Module subclass that implements "
                                      r"register_buffer\(\) without the persistent argument is not allowed")
    return (), ["b"]

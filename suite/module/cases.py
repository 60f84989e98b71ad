"""The Cases of the module area (frozen dataclasses of plain values) and the
deterministic inputs both sides derive from them.

The reference reads Cases by their attributes only; the tests hand it the inputs
made here.  Input generation uses torch's RNG (``torch.Generator``) as a seeded
number source: it is a primitive, not under test in this area.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

# ---- Module-tree programs (reference/module/tree.py, suite/module/torch_side/tree.py) ---------------
# Objects are referred to by labels: modules m0 (the root) .. m4, Parameters p0 .. p3, plain tensors
# t0 .. t3 (all created fresh by every replay), and buf@<i> for the nn.Buffer wrapper made by op i.
MODULES = ("m0", "m1", "m2", "m3", "m4")
PARAMS = ("p0", "p1", "p2", "p3")
FROZEN = ("p1", "p3")  # created with requires_grad=False: frozen parameters flow through every op
TENSORS = ("t0", "t1", "t2", "t3")
POOL_NAMES = ("a", "b", "c", "0", "x.y", "", "forward")
OBSERVABLES = ("state_dict_hooks", "named_parameters", "named_parameters_all", "named_parameters_local",
               "named_buffers", "named_buffers_all", "named_buffers_local", "named_modules", "named_modules_all",
               "named_children", "state_dict", "state_dict_detached", "state_dict_prefixed", "metadata",
               "training", "requires_grad", "repr", "dir")


@dataclass(frozen=True)
class Op:
    """One operation on module ``target``.

    kind: setattr | delattr | getattr | register_parameter | register_buffer |
    add_module | register_module | train | train_value | eval | requires_grad_ |
    get_submodule | get_parameter | get_buffer | set_submodule.
    value: ("param", label) | ("tensor", label) | ("buffer", label, persistent)
    | ("module", label) | ("none",) | ("int", n) | () when unused.
    flag: persistent / mode / requires_grad / strict, where the kind takes one.
    """

    kind: str
    target: str = "m0"
    name: str = ""
    value: tuple = ()
    flag: bool = True


@dataclass(frozen=True)
class TreeProgram:
    """The ops so far and what is observed afterwards: "result" (outcome of the last op), "registration"
    (global registration hook calls during the last op), an OBSERVABLES name, or apply/deepcopy/pickle."""

    ops: tuple[Op, ...]
    observe: tuple[str, ...] = ("result",)


@dataclass(frozen=True)
class BeforeInit:
    """An assignment/registration made in a subclass's __init__ before Module.__init__ ran."""

    kind: str  # param_attr | module_attr | buffer_attr | plain_attr | register_parameter | register_buffer | add_module


@dataclass(frozen=True)
class ReprCase:
    """A module of class ``Box`` whose extra_repr returns '\\n'.join(lines), with children (name, ReprCase | None)."""

    lines: tuple = ()
    children: tuple = ()


@dataclass(frozen=True)
class RegistrationReplace:
    """Global registration hooks of one kind returning replacements: ``returns[i]`` says whether hook i returns
    a fresh object ("r<i>") instead of None.  ``via``: register (register_parameter/register_buffer/add_module),
    setattr (attribute assignment of a Parameter/nn.Buffer/Module), setattr_none (module only: assigning None
    over an existing child)."""
    kind: str  # parameter | buffer | module
    via: str
    returns: tuple


# ---- load_state_dict (reference/module/state.py) ----------------------------------------------------------
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
    """A module tree, a state dict (keys with a shape, or "int" for a non-tensor value), the
    load_state_dict arguments and the observable of the load to report."""

    spec: Spec
    entries: tuple  # (key, shape tuple | "int")
    strict: bool = True
    assign: bool = False
    seed: int = 0
    with_metadata: bool = False
    preload_assign: bool = False  # first load the same dict into a twin with assign=True
    observe: str = "result"  # result | values | identity | post_hooks | extra | pre_hooks
    copy: str = ""  # "" | deepcopy | pickle: the tree (with its load pre-hooks) is copied and the copy loads
    swap: bool = False  # load under torch.__future__.set_swap_module_params_on_conversion(True)


def walk(spec: Spec, prefix: str = ""):
    """(prefix, spec) pre-order over non-None children, shared child under both names."""
    yield prefix, spec
    children = list(spec.children)
    if spec.share is not None and children and children[0][1] is not None:
        children.append((spec.share, children[0][1]))
    for name, child in children:
        if child is not None:
            yield from walk(child, prefix + name + ".")


def _unique(spec: Spec, prefix: str = ""):
    """Pre-order, each Spec object position once (the shared child's second name skipped)."""
    yield prefix, spec
    for name, child in spec.children:
        if child is not None:
            yield from _unique(child, prefix + name + ".")


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


# ---- hooks (reference/module/hooks.py) ---------------------------------------------------------------------
@dataclass(frozen=True)
class Hook:
    kind: str  # pre | post | gpre | gpost
    ret: str = "none"  # none | replace | replace_tuple | bad | raise
    prepend: bool = False
    with_kwargs: bool = False
    always_call: bool = False
    remove: bool = False


@dataclass(frozen=True)
class HookCase:
    hooks: tuple
    x: int = 1
    b: int | None = None  # passed as keyword when not None
    fail: bool = False


@dataclass(frozen=True)
class HookProgram:
    """One module's forward-hook history (test_hooks.py: HookMachine): steps ("add", Hook) registers a hook (hook i
    is the i-th "add"; its ``remove`` field is unused), ("remove", i) calls hook i's handle.remove() (again: a
    no-op), ("call", x, b, fail) calls the module; torch's outcome is every call's (calls, result)."""
    steps: tuple


@dataclass(frozen=True)
class BackwardCase:
    seed: int
    n_in: int
    n_out: int
    batch: int
    hooks: tuple  # (kind "bpre" | "bpost" | "gbpre" | "gbpost", scale or 0 for no replacement, prepend)
    x_requires_grad: bool = True


def backward_inputs(case: BackwardCase) -> dict:
    """W, x and the upstream gradient as float64 numpy arrays."""
    g = torch.Generator().manual_seed(case.seed)
    w = torch.randn(case.n_out, case.n_in, generator=g, dtype=torch.float64)
    x = torch.randn(case.batch, case.n_in, generator=g, dtype=torch.float64)
    up = torch.randn(case.batch, case.n_out, generator=g, dtype=torch.float64)
    return {"w": w.numpy(), "x": x.numpy(), "up": up.numpy()}


@dataclass(frozen=True)
class LegacyBackwardCase:
    """The deprecated (non-full) backward hooks next to full ones.  order: legacy_then_full | full_then_legacy
    (registration on one module: the second one's outcome), global_full_then_legacy (register_module_full_backward_
    hook, then register_module_backward_hook), call (a legacy hook on the y = x @ W.T module, one backward)."""
    order: str
    seed: int = 0


@dataclass(frozen=True)
class GlobalHookRemoval:
    with_kwargs: bool
    always_call: bool


# ---- containers (reference/module/containers.py) -----------------------------------------------------------
MODS = ("m1", "m2", "m3", "m4", "m5")  # m4 and m5 have one child 'x' (a different repr)
# the names a container's ``dir`` op compares (CtOp("dir", DIR_PROBE)): the containers' documented methods, a few of
# Module's, its instance attribute ``training``, and the keys items get (positions, dict keys, named Sequential keys)
DIR_PROBE = ("append", "clear", "copy", "eval", "extend", "extra_repr", "forward", "fromkeys", "get", "insert", "items",
             "keys", "parameters", "pop", "popitem", "setdefault", "state_dict", "train", "training", "update",
             "values", "0", "1", "2", "3", "a", "b", "c", "d", "x", "y", "z")
PARS = ("p0", "p1", "p2", "p3")
TENS = ("t0", "t1")


@dataclass(frozen=True)
class CtOp:
    kind: str
    args: tuple = ()


@dataclass(frozen=True)
class ContainerProgram:
    container: str  # Sequential | ModuleList | ModuleDict | ParameterList | ParameterDict
    init: tuple  # labels, or (key, label) pairs for the dicts
    ops: tuple = ()
    named: bool = False  # Sequential built from an OrderedDict with these keys (init pairs)


# ---- dtype conversion, zero_grad (reference/module/convert.py) ---------------------------------------------
@dataclass(frozen=True)
class ConvertCase:
    entries: tuple  # (kind "param" | "buffer", dtype name)
    method: str  # float | double | half | bfloat16 | to:<dtype name> | type:<dtype name> | to_empty | share_memory
    nested: bool = False  # entry i lives in (root, root.a, root.b)[i % 3]: conversion must recurse
    future: str = ""  # "" | overwrite | swap: the torch.__future__ flag set during the conversion
    grads: bool = False  # floating/complex parameters hold a .grad (ones) before the conversion


@dataclass(frozen=True)
class ValueCase:
    seed: int
    source: str  # float32 | float64
    method: str  # float | double | half | bfloat16
    n: int = 4


def value_inputs(case: ValueCase):
    """The parameter's initial values (already rounded to the source dtype) as float64 numpy."""
    g = torch.Generator().manual_seed(case.seed)
    return (torch.randn(case.n, generator=g, dtype=torch.float64) * 3).to(getattr(torch, case.source)).double().numpy()


@dataclass(frozen=True)
class GradCase:
    n_params: int
    frozen: tuple  # indices of parameters with requires_grad=False
    set_to_none: bool | None  # None: the default
    create_graph: bool
    nested: bool  # parameters live in a child module (and the child is registered twice)


# ---- single calls with a documented error (reference/module/tree.py: misc_expectations) -------------------
@dataclass(frozen=True)
class MiscCase:
    """kind: init_args | init_kwargs (Module.__init__ given arguments), super_init (call_super_init=True passes
    them on), get_extra_state | set_extra_state (the base methods called directly), post_hook_return (a public
    state_dict post-hook returning a value), load_post_hook_return (a load post-hook returning a value),
    load_non_mapping (load_state_dict of a list), call_no_forward (a module without forward called), meta_to
    (Module.to of a module on the meta device); to_memory_format (Module.to(memory_format=torch.channels_last) of a
    module holding ``entries``: (kind "param" | "buffer", name, shape, dtype name)); register_non_leaf |
    setattr_non_leaf (a Parameter with a grad_fn); buffer_override[_persistent]_{true,false} (an nn.Buffer assigned
    to a subclass whose register_buffer takes no persistent argument, or takes one); backward_hook_dict (a full
    backward hook on a module whose forward returns a dict); load_into_meta[_assign], load_from_meta,
    load_assign_parameter (reference/module/state.py: load_single); hooks_deepcopy | hooks_pickle (a module and
    its child with forward and state_dict hooks, copied, then called and saved: the copy's hook calls); swap_slots
    (double() under the swap flag of a module holding a Parameter subclass with __slots__); state_dict_positional
    (state_dict(destination, prefix, keep_vars) given positionally)."""
    kind: str
    entries: tuple = ()


@dataclass(frozen=True)
class CompileCase:
    """Module.compile with a recording backend, then ``calls`` calls (reference/module/compiled.py)."""
    calls: int
    hook: bool  # a forward hook that adds 10 to the output

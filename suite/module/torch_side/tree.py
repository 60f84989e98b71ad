"""Torch side of the Module-tree programs: ``run_tree_program`` rebuilds the pool on a device, runs every
op of a ``TreeProgram`` and reports each observable it names; also the single-shot runners (assignment
before Module.__init__, extra_repr layout, registration hooks that return replacements).
"""
from __future__ import annotations

import math
import warnings

import torch

from conform.outcome import Raised
from suite.module.cases import (FROZEN, MODULES, PARAMS, POOL_NAMES, TENSORS, BeforeInit, MiscCase, Op,
                                RegistrationReplace, ReprCase, TreeProgram)


def make_pool(device: str) -> dict:
    g = torch.Generator().manual_seed(0)
    pool: dict = {label: torch.nn.Module() for label in MODULES}
    for i, label in enumerate(PARAMS):
        pool[label] = torch.nn.Parameter(torch.randn(i + 1, generator=g).to(device), requires_grad=label not in FROZEN)
    for i, label in enumerate(TENSORS):
        pool[label] = torch.randn(i + 1, generator=g).to(device)
    return pool


def _value(pool: dict, index: int, value: tuple):
    kind = value[0]
    if kind == "none":
        return None
    if kind == "int":
        return value[1]
    if kind == "buffer":
        buf = torch.nn.Buffer(pool[value[1]], persistent=value[2])
        pool[f"buf@{index}"] = buf
        return buf
    return pool[value[1]]


def label_of(pool: dict, obj) -> object:
    if obj is None:
        return ("none",)
    if isinstance(obj, int) and not isinstance(obj, bool):
        return ("int", obj)
    for label, candidate in pool.items():
        if candidate is obj:
            return label
    if callable(obj):
        return ("method",)
    return ("unknown", type(obj).__name__)


def _outcome(fn):
    try:
        return fn()
    except Exception as exc:  # exceptions are outcomes
        return Raised.from_exception(exc)


def apply_op(pool: dict, index: int, op: Op):
    """The outcome of one op; every exception (also one making the value, e.g. an nn.Buffer on a release
    without it) is an outcome, compared under the op's rule."""
    m = pool[op.target]
    k = op.kind
    value = (lambda: _value(pool, index, op.value))
    if k == "setattr":
        return _outcome(lambda: setattr(m, op.name, value()))
    if k == "delattr":
        return _outcome(lambda: delattr(m, op.name))
    if k == "getattr":
        return _outcome(lambda: label_of(pool, getattr(m, op.name)))
    if k == "register_parameter":
        return _outcome(lambda: m.register_parameter(op.name, value()))
    if k == "register_buffer":
        return _outcome(lambda: m.register_buffer(op.name, value(), persistent=op.flag))
    if k in ("add_module", "register_module"):
        return _outcome(lambda: getattr(m, k)(op.name, value()))
    if k == "train":
        return _outcome(lambda: label_of(pool, m.train() if op.flag is None else m.train(op.flag)))
    if k == "train_value":
        return _outcome(lambda: label_of(pool, m.train(op.value[1])))
    if k == "eval":
        return _outcome(lambda: label_of(pool, m.eval()))
    if k == "requires_grad_":
        return _outcome(lambda: label_of(pool, m.requires_grad_() if op.flag is None else m.requires_grad_(op.flag)))
    if k in ("get_submodule", "get_parameter", "get_buffer"):
        return _outcome(lambda: label_of(pool, getattr(m, k)(op.name)))
    if k == "set_submodule":
        # strict is passed only when True: False is its documented default, and releases before the
        # argument existed (set_submodule(target, module)) run the non-strict ops too
        return _outcome(lambda: m.set_submodule(op.name, value(), strict=True) if op.flag
                        else m.set_submodule(op.name, value()))
    raise ValueError(f"unknown op kind {k!r}")


def apply_op_recorded(pool: dict, index: int, op: Op):
    """(outcome, calls of the global registration hooks during the op)."""
    from torch.nn.modules import module as nn_module

    calls: list = []

    def recorder(kind):
        return lambda module, name, value: calls.append((kind, label_of(pool, module), name, label_of(pool, value)))

    handles = []
    try:
        handles += [nn_module.register_module_parameter_registration_hook(recorder("parameter")),
                    nn_module.register_module_buffer_registration_hook(recorder("buffer")),
                    nn_module.register_module_module_registration_hook(recorder("module"))]
    except Exception as exc:  # the calls cannot be observed: an outcome of the registration rule
        calls = Raised.from_exception(exc)
    try:
        return apply_op(pool, index, op), calls
    finally:
        for handle in handles:
            handle.remove()


def _labels(pool: dict, pairs) -> list:
    return [(name, label_of(pool, obj)) for name, obj in pairs]


def _by_storage(pool: dict, t) -> str:
    for label, candidate in pool.items():
        if isinstance(candidate, torch.Tensor) and candidate.data_ptr() == t.data_ptr():
            return label
    return "?"


def observe(pool: dict, what: str):
    """The observable ``what`` of the tree rooted at m0; an exception is the outcome."""
    return _outcome(lambda: _observe(pool, what))


def _observe(pool: dict, what: str):
    root = pool["m0"]
    if what == "state_dict_hooks":
        calls: list = []
        handles = []
        for label in MODULES:
            mod = pool[label]
            handles.append(mod.register_state_dict_pre_hook(
                lambda module, prefix, keep_vars: calls.append(("pre", label_of(pool, module), prefix))))
            handles.append(mod.register_state_dict_post_hook(
                lambda module, sd, prefix, meta: calls.append(("post", label_of(pool, module), prefix, len(sd)))))
        try:
            root.state_dict()
        finally:
            for handle in handles:
                handle.remove()
        return calls
    if what == "named_parameters":
        return _labels(pool, root.named_parameters())
    if what == "named_parameters_all":
        return _labels(pool, root.named_parameters(prefix="r", remove_duplicate=False))
    if what == "named_parameters_local":
        return _labels(pool, root.named_parameters(recurse=False))
    if what == "named_buffers":
        return _labels(pool, root.named_buffers())
    if what == "named_buffers_all":
        return _labels(pool, root.named_buffers(prefix="r", remove_duplicate=False))
    if what == "named_buffers_local":
        return _labels(pool, root.named_buffers(recurse=False))
    if what == "named_modules":
        return _labels(pool, root.named_modules())
    if what == "modules":
        return [label_of(pool, m) for m in root.modules()]
    if what == "buffers":
        return [label_of(pool, b) for b in root.buffers()]
    if what == "named_modules_all":
        return _labels(pool, root.named_modules(prefix="r", remove_duplicate=False))
    if what == "named_children":
        return _labels(pool, root.named_children())
    if what == "state_dict":
        return _labels(pool, root.state_dict(keep_vars=True).items())
    if what == "state_dict_detached":
        # keep_vars=False: detached aliases (same storage, no grad).
        # Buffer labels may be nn.Buffer wrappers that share storage with a pool tensor:
        # report the first pool object with that storage.
        return [(k, _by_storage(pool, v), v.requires_grad) for k, v in root.state_dict().items()]
    if what == "state_dict_prefixed":
        return list(root.state_dict(prefix="pre.").keys())
    if what == "metadata":
        return [(k, dict(v)) for k, v in root.state_dict()._metadata.items()]
    if what == "training":
        return [(label, pool[label].training) for label in MODULES]
    if what == "requires_grad":
        return [(label, pool[label].requires_grad) for label in PARAMS]
    if what == "repr":
        return repr(root)
    if what == "dir":
        return _outcome(lambda: [k for k in dir(root) if k in POOL_NAMES])
    if what == "apply":
        seen = []
        root.apply(lambda mod: seen.append(label_of(pool, mod)))
        return seen
    if what in ("deepcopy", "pickle"):
        import copy
        import pickle

        clone = copy.deepcopy(root) if what == "deepcopy" else pickle.loads(pickle.dumps(root))
        return _structure(pool, clone)
    raise ValueError(f"unknown observable {what!r}")


def _structure(pool: dict, root) -> dict:
    """Names of a module tree with objects replaced by the index of their first occurrence (so sharing and
    tying show), plus whether any object is one of the originals."""
    out = {}
    for what, pairs in (("params", root.named_parameters(remove_duplicate=False)),
                        ("buffers", root.named_buffers(remove_duplicate=False)),
                        ("modules", root.named_modules(remove_duplicate=False))):
        firsts: list = []
        names = []
        for name, obj in pairs:
            if not any(obj is f for f in firsts):
                firsts.append(obj)
            names.append((name, next(i for i, f in enumerate(firsts) if f is obj)))
        out[what] = names
        out[what + "_fresh"] = not any(obj is orig for obj in firsts for orig in pool.values())
    out["params_requires_grad"] = [p.requires_grad for _, p in root.named_parameters(remove_duplicate=False)]
    out["modules_training"] = [m.training for _, m in root.named_modules(remove_duplicate=False)]
    out["state_dict"] = list(root.state_dict().keys())
    return out


# The pool after the last program run, by (device, ops): a program that extends it by one op (the stateful
# machine's next step) runs only that op.  Observing leaves the tree as it was, so the pool is the state after
# the ops either way.
_last_run: dict = {}


def run_tree_program(program: TreeProgram, device: str) -> dict:
    """Run every op of the program on a fresh pool, return {observable: outcome} for each one it names."""
    ops = program.ops
    last = _last_run.pop("state", None)
    if last is not None and last[0] == device and last[1] == ops[:-1]:
        pool, start = last[2], len(ops) - 1
    else:
        pool, start = make_pool(device), 0
    out: dict = {}
    for i in range(start, len(ops)):
        if i == len(ops) - 1 and "registration" in program.observe:
            out["result"], out["registration"] = apply_op_recorded(pool, i, ops[i])
        else:
            out["result"] = apply_op(pool, i, ops[i])
    for what in program.observe:
        if what not in out:
            out[what] = observe(pool, what)
    _last_run["state"] = (device, ops, pool)
    return {what: out.get(what) for what in program.observe}


def run_before_init(case: BeforeInit, device: str):
    """(outcome of the early call, whether the name is reachable once Module.__init__ has run)."""
    param = torch.nn.Parameter(torch.zeros(1, device=device))
    values = {"param_attr": lambda: param, "module_attr": torch.nn.Module,
              "buffer_attr": lambda: torch.nn.Buffer(torch.zeros(1, device=device)), "plain_attr": lambda: 3}
    outcome = []

    class Early(torch.nn.Module):
        def __init__(self):
            if case.kind in values:
                outcome.append(_outcome(lambda: setattr(self, "a", values[case.kind]())))
            elif case.kind == "register_parameter":
                outcome.append(_outcome(lambda: self.register_parameter("a", param)))
            elif case.kind == "register_buffer":
                outcome.append(_outcome(lambda: self.register_buffer("a", torch.zeros(1, device=device))))
            else:
                outcome.append(_outcome(lambda: self.add_module("a", torch.nn.Module())))
            super().__init__()

    m = Early()
    return outcome[0], hasattr(m, "a")


def _box(case: ReprCase) -> torch.nn.Module:
    lines = "\n".join(case.lines)

    class Box(torch.nn.Module):
        def extra_repr(self):
            return lines

    m = Box()
    for name, child in case.children:
        m.add_module(name, None if child is None else _box(child))
    return m


def run_repr(case: ReprCase, device: str) -> str:
    return repr(_box(case))


def run_registration_replace(case: RegistrationReplace, device: str):
    """(label each hook received, label of the object registered under the name)."""
    from torch.nn.modules import module as nn_module

    def make(label):
        if case.kind == "module":
            obj = torch.nn.Module()
        elif case.kind == "parameter":
            obj = torch.nn.Parameter(torch.zeros(1, device=device))
        elif case.via == "register":
            obj = torch.zeros(1, device=device)  # register_buffer takes any tensor
        else:
            obj = torch.nn.Buffer(torch.zeros(1, device=device))  # what attribute assignment registers
        labels[id(obj)] = label
        return obj

    labels: dict = {}
    m = torch.nn.Module()
    value = make("orig")
    if case.via == "setattr_none":
        m.add_module("a", torch.nn.Module())
        value = None
    seen: list = []

    def hook_for(i, ret):
        replacement = make(f"r{i}") if ret else None
        return lambda module, name, v: seen.append(labels.get(id(v), "none")) or replacement

    register = {"parameter": nn_module.register_module_parameter_registration_hook,
                "buffer": nn_module.register_module_buffer_registration_hook,
                "module": nn_module.register_module_module_registration_hook}[case.kind]
    handles = [register(hook_for(i, ret)) for i, ret in enumerate(case.returns)]
    try:
        if case.via == "register":
            {"parameter": m.register_parameter, "buffer": m.register_buffer, "module": m.add_module}[case.kind](
                "a", value)
        else:
            m.a = value
    finally:
        for handle in handles:
            handle.remove()
    store = {"parameter": m._parameters, "buffer": m._buffers, "module": m._modules}[case.kind]
    return seen, labels.get(id(store["a"]), "none")


class _Plain(torch.nn.Module):
    pass


_Plain.__name__ = _Plain.__qualname__ = "Plain"


class _Mixin:
    def __init__(self, *args, **kwargs):
        self.received = (args, kwargs)


# hooks_deepcopy / hooks_pickle: module-level functions, so that pickle takes them by name; they record into
# _HOOK_CALLS, which _copied_hook_calls empties first
_HOOK_CALLS: list = []


def _sd_pre(module, prefix, keep_vars):
    _HOOK_CALLS.append(("sd_pre", prefix))


def _sd_post(module, state_dict, prefix, local_metadata):
    _HOOK_CALLS.append(("sd_post", prefix, len(state_dict)))


def _forward_pre(module, args, kwargs):
    _HOOK_CALLS.append(("forward_pre", sorted(kwargs)))


def _forward(module, args, output):
    _HOOK_CALLS.append(("forward", output))


class _Identity(torch.nn.Module):
    def forward(self, x):
        return x


def _copied_hook_calls(kind: str, device: str) -> list:
    import copy
    import pickle

    root, child = _Identity(), _Identity()
    for m in (root, child):
        m.register_buffer("b", torch.zeros(1, device=device))
        m.register_state_dict_pre_hook(_sd_pre)
        m.register_state_dict_post_hook(_sd_post)
    root.c = child
    root.register_forward_pre_hook(_forward_pre, with_kwargs=True)
    root.register_forward_hook(_forward, always_call=True)
    clone = copy.deepcopy(root) if kind == "hooks_deepcopy" else pickle.loads(pickle.dumps(root))
    _HOOK_CALLS.clear()
    list(clone.state_dict())
    clone(x=1.0)
    return list(_HOOK_CALLS)


class _SlottedParameter(torch.nn.Parameter):
    __slots__ = ("note",)


def _swap_slots(device: str):
    """double() under the swap flag of a module holding a slotted Parameter subclass (with a grad)."""
    m = _Plain()
    m.w = _SlottedParameter(torch.ones(2, device=device))
    m.w.grad = torch.ones(2, device=device)
    before = torch.__future__.get_swap_module_params_on_conversion()
    torch.__future__.set_swap_module_params_on_conversion(True)
    try:
        return m.double()
    finally:
        torch.__future__.set_swap_module_params_on_conversion(before)


def _state_dict_positional(device: str) -> dict:
    """state_dict(destination, prefix, keep_vars) positionally."""
    from collections import OrderedDict

    m = _Plain()
    m.w = torch.nn.Parameter(torch.zeros(1, device=device))
    m.register_buffer("b", torch.ones(1, device=device))
    destination = OrderedDict()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        out = m.state_dict(destination, "pre.", True)
    return {"same": out is destination, "keys": list(out),
            "kept": out.get("pre.w") is m.w and out.get("pre.b") is m.b, "warning": _first_warning(record)}


def _first_warning(record) -> Raised | None:
    """The first warning caught, as an outcome (its category name and message), or None."""
    return Raised.from_exception(record[0].message) if record else None


def _memory_format(case: MiscCase, device: str) -> dict:
    """Module.to(memory_format=torch.channels_last): strides after, values kept, parameters the same objects."""
    m = _Plain()
    before = {}
    for i, (kind, name, shape, dtype) in enumerate(case.entries):
        t = (torch.arange(i, i + math.prod(shape)).reshape(shape) % 7).to(getattr(torch, dtype)).to(device)
        if kind == "param":
            setattr(m, name, torch.nn.Parameter(t, requires_grad=t.is_floating_point()))
        else:
            m.register_buffer(name, t)
        before[name] = (getattr(m, name), t.detach().clone())
    m.to(memory_format=torch.channels_last)
    after = [(getattr(m, name), before[name]) for _, name, _, _ in case.entries]
    return {"strides": [t.stride() for t, _ in after], "kept": [bool(torch.equal(t, old)) for t, (_, old) in after],
            "same": [t is obj or kind == "buffer" for (t, (obj, _)), (kind, *_) in zip(after, case.entries)]}


def _non_leaf_parameter(device: str) -> torch.nn.Parameter:
    p = torch.nn.Parameter(torch.zeros(2, device=device), requires_grad=False)
    p.copy_(torch.ones(2, device=device, requires_grad=True))  # in place from a tensor requiring grad: a grad_fn
    return p


def _buffer_override(case: MiscCase, device: str):
    received = []

    class Custom(torch.nn.Module):
        if "_persistent_" in case.kind:
            def register_buffer(self, name, tensor, persistent=True):
                received.append((persistent,))
                return super().register_buffer(name, tensor, persistent)
        else:
            def register_buffer(self, name, tensor):  # the pre-persistent signature
                received.append(())
                return super().register_buffer(name, tensor)

    m = Custom()
    m.b = torch.nn.Buffer(torch.zeros(1, device=device), persistent=case.kind.endswith("_true"))
    return received[0], list(m.state_dict())


def _backward_hook_dict(device: str) -> dict:
    class Dict(torch.nn.Module):
        def forward(self, x):
            return {"y": x * 2}

    m, calls = Dict(), []
    m.register_full_backward_hook(lambda module, grad_input, grad_output: calls.append(1))
    x = torch.ones(2, device=device, requires_grad=True)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        out = m(x)
    out["y"].sum().backward()
    return {"calls": len(calls), "grad": x.grad.detach().cpu().double().numpy(), "warning": _first_warning(record)}


def _load_single(case: MiscCase, device: str) -> dict:
    m = _Plain()
    m.w = torch.nn.Parameter(torch.zeros(2, device="meta" if "into_meta" in case.kind else device))
    value = torch.ones(2, device="meta" if case.kind == "load_from_meta" else device)
    if case.kind == "load_assign_parameter":
        value = torch.nn.Parameter(value, requires_grad=False)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        m.load_state_dict({"w": value}, assign=case.kind in ("load_into_meta_assign", "load_assign_parameter"))
    return {"device": m.w.device.type, "values": None if m.w.is_meta else m.w.detach().cpu().double().numpy(),
            "requires_grad": m.w.requires_grad, "warning": _first_warning(record)}


def run_misc(case: MiscCase, device: str):
    """The outcome of the case's one call (an exception is the outcome)."""
    def call():
        if case.kind == "to_memory_format":
            return _memory_format(case, device)
        if case.kind == "register_non_leaf":
            return _Plain().register_parameter("w", _non_leaf_parameter(device))
        if case.kind == "setattr_non_leaf":
            return setattr(_Plain(), "w", _non_leaf_parameter(device))
        if case.kind.startswith("buffer_override"):
            return _buffer_override(case, device)
        if case.kind == "backward_hook_dict":
            return _backward_hook_dict(device)
        if case.kind.startswith("load_") and case.kind not in ("load_non_mapping", "load_post_hook_return"):
            return _load_single(case, device)
        if case.kind in ("hooks_deepcopy", "hooks_pickle"):
            return _copied_hook_calls(case.kind, device)
        if case.kind == "swap_slots":
            return _swap_slots(device)
        if case.kind == "state_dict_positional":
            return _state_dict_positional(device)
        if case.kind == "init_args":
            return _Plain(1)
        if case.kind == "init_kwargs":
            return _Plain(k=2)
        if case.kind == "super_init":
            class Cooperative(torch.nn.Module, _Mixin):
                call_super_init = True
            return Cooperative(1, k=2).received
        m = _Plain()
        m.register_buffer("b", torch.zeros(1, device=device))
        if case.kind == "get_extra_state":
            return m.get_extra_state()
        if case.kind == "set_extra_state":
            return m.set_extra_state({})
        if case.kind == "post_hook_return":
            m.register_state_dict_post_hook(lambda module, sd, prefix, meta: {})
            return list(m.state_dict())
        if case.kind == "load_post_hook_return":
            m.register_load_state_dict_post_hook(lambda module, keys: keys)
            return m.load_state_dict({"b": torch.ones(1, device=device)})
        if case.kind == "load_non_mapping":
            return m.load_state_dict([("b", torch.zeros(1, device=device))])
        if case.kind == "meta_to":
            meta = _Plain()
            meta.w = torch.nn.Parameter(torch.zeros(2, device="meta"))
            return meta.to(device)
        if case.kind == "call_no_forward":
            return m(torch.zeros(1, device=device))
        raise ValueError(case.kind)
    return _outcome(call)

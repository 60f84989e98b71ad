"""Torch side of the ``parallel`` area: build the Case's objects, run torch.nn.parallel, encode the outcome.

On CPU (no ``torch._C._scatter``/``_gather``/``_broadcast_coalesced``, no accelerator runtime) the Python
logic of scatter_gather.py, replicate.py and parallel_apply.py still runs for real, with the transport
stood in, *inside torch's modules* and restored in ``finally``:

- ``Scatter``/``Gather`` (scatter_gather.py's names) by ``CpuScatter``/``CpuGather``, which follow the
  documented transport: ``tensor.chunk(len(devices), dim)`` copied per device (torch/csrc/cuda/comm.cpp:
  scatter), and concatenation along dim with 0-dim inputs unsqueezed under a warning (Gather.forward);
- replicate.py's ``_broadcast_coalesced_reshape`` by per-device copies (differentiable unless detach);
- parallel_apply.py's ``torch.accelerator`` by no-op stream and device guards (threads run for real).

On an accelerator nothing is stood in: the targets are the visible devices round-robin (with one device,
the same index repeated -- torch accepts that: chunks stay on the device, broadcast copies within it).

Imports only torch, numpy, the standard library and suite modules: the repro writer embeds this file.
"""
from __future__ import annotations

import contextlib
import importlib
import re
import time
import warnings
from collections import OrderedDict, defaultdict, namedtuple

import numpy as np
import torch

from conform.outcome import Raised
from suite.parallel.cases import (ApplyCase, DPCase, FallbackCase, GatherCase, ReplicateCase, ScatterCase,
                                  ScatterKwargsCase, affine_input, affine_params, apply_input, apply_view,
                                  buffer_leaf, leaf_values, loss_weights, param_leaf, replicate_view)

# torch.nn.parallel re-exports functions under its submodules' names; fetch the modules themselves.
SCATTER_GATHER = importlib.import_module("torch.nn.parallel.scatter_gather")
REPLICATE = importlib.import_module("torch.nn.parallel.replicate")
PARALLEL_APPLY = importlib.import_module("torch.nn.parallel.parallel_apply")

RECORDS = {n: namedtuple(f"Rec{n}", [f"f{i}" for i in range(n)]) for n in range(5)}
GATHER_WARNING_PREFIX = "Was asked to gather"


class MyDict(dict):
    """A plain dict subclass."""


class Token:
    """An opaque object: scatter must hand the same one to every replica."""

    def __init__(self, label: str):
        self.label = label


def raised(exc: BaseException) -> Raised:
    return Raised(type(exc).__name__, str(exc))


# ---- devices ------------------------------------------------------------------------------------
def on_cpu(device: str) -> bool:
    return torch.device(device).type == "cpu"


def target_indices(device: str, n: int) -> list[int]:
    """Device indices for n replicas: the given index repeated, or every visible device round-robin."""
    dev = torch.device(device)
    if dev.type == "cpu":
        return list(range(n))  # only named; the CPU stand-ins ignore them
    if dev.index is not None:
        return [dev.index] * n
    count = getattr(torch, dev.type).device_count()
    return [i % count for i in range(n)]


def replica_device(device: str, index: int) -> torch.device:
    dev = torch.device(device)
    return dev if dev.type == "cpu" else torch.device(dev.type, index)


# ---- CPU stand-ins ------------------------------------------------------------------------------
class CpuScatter:
    """Stand-in for _functions.Scatter: the documented chunking, one copy per target."""

    @staticmethod
    def apply(target_gpus, chunk_sizes, dim, tensor):
        return tuple(piece.clone() for piece in tensor.chunk(len(target_gpus), dim))


class CpuGather:
    """Stand-in for _functions.Gather: 0-dim inputs along dim 0 become vectors (with Gather.forward's
    warning), then concatenation along dim."""

    @staticmethod
    def apply(target_device, dim, *tensors):
        if dim == 0 and all(isinstance(t, torch.Tensor) and t.dim() == 0 for t in tensors):
            tensors = tuple(t.view(1) for t in tensors)
            warnings.warn("Was asked to gather along dimension 0, but all input tensors were scalars; "
                          "will instead unsqueeze and return a vector.", stacklevel=2)
        return torch.cat(tensors, dim)


def cpu_broadcast(tensors, devices, detach=False):
    """Stand-in for replicate._broadcast_coalesced_reshape, as the transport documents it: devices[0] gets the
    input tensors as-is under detach (comm.broadcast_coalesced; torch/csrc/cuda/comm.cpp, NOTE [ Version Counter
    in comm.*_coalesced ]) and views of them through the Broadcast autograd function otherwise; every other
    device gets copies (detached under detach)."""
    first = list(tensors) if detach else [t.view_as(t) for t in tensors]
    return [first] + [[t.detach().clone() if detach else t.clone() for t in tensors] for _ in devices[1:]]


class CpuAccelerator:
    """What parallel_apply asks of torch.accelerator, on CPU: streams and device guards that do nothing."""

    @staticmethod
    def is_available():
        return True

    @staticmethod
    def current_accelerator():
        return torch.device("cpu")

    @staticmethod
    def current_stream(device=None):
        return contextlib.nullcontext()

    @staticmethod
    def device_index(device):
        return contextlib.nullcontext()


class CpuCuda:
    """What parallel_apply asked of torch.cuda before it moved to torch.accelerator (2.4 .. 2.7): streams and
    device guards that do nothing; everything else (e.g. the torch.cuda.Stream annotation) is torch.cuda's."""

    @staticmethod
    def current_stream(device=None):
        return contextlib.nullcontext()

    @staticmethod
    def device(device):
        return contextlib.nullcontext()

    @staticmethod
    def stream(stream):
        return contextlib.nullcontext()

    def __getattr__(self, name):
        return getattr(torch.cuda, name)


class TorchWithCpuAccelerator:
    accelerator = CpuAccelerator
    cuda = CpuCuda()

    def __getattr__(self, name):
        return getattr(torch, name)


def accelerator_available() -> bool:
    """Whether DataParallel / parallel_apply see an accelerator: torch.accelerator where the release has it,
    else what DataParallel itself asks before it (torch._utils._get_available_device_type, 2.4 and 2.5).  A
    CUDA wheel on a machine without a GPU has none."""
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None:
        return bool(accelerator.is_available())
    return torch._utils._get_available_device_type() is not None


@contextlib.contextmanager
def patched(module, **names):
    saved = {name: getattr(module, name) for name in names}
    for name, value in names.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(module, name, value)


def transport(device: str):
    if on_cpu(device):
        return patched(SCATTER_GATHER, Scatter=CpuScatter, Gather=CpuGather)
    return contextlib.nullcontext()


# ---- building and encoding ----------------------------------------------------------------------
def build(node: tuple, device, dtype: str, seen: set, tokens: dict):
    """The object a tree describes; ``seen`` collects the ids of its containers and tokens."""
    kind = node[0]
    if kind == "T":
        return torch.from_numpy(leaf_values(node[1], tuple(node[2]))).to(getattr(torch, dtype)).to(device)
    if kind == "None":
        return None
    if kind in ("int", "str"):
        return node[1]
    if kind == "obj":
        obj = tokens.setdefault(node[1], Token(node[1]))
    elif kind == "seq":
        items = [build(child, device, dtype, seen, tokens) for child in node[2]]
        obj = {"list": list, "tuple": tuple}.get(node[1], lambda xs: RECORDS[len(xs)](*xs))(items)
    else:
        pairs = [(key, build(child, device, dtype, seen, tokens)) for key, child in node[2]]
        obj = defaultdict(list, pairs) if node[1] == "defaultdict" else {
            "dict": dict, "OrderedDict": OrderedDict, "MyDict": MyDict}[node[1]](pairs)
    seen.add(id(obj))
    return obj


def encode(obj, seen: set):
    if isinstance(obj, torch.Tensor):
        return ("T", str(obj.dtype).removeprefix("torch."), obj.detach().cpu().numpy())
    if obj is None:
        return ("None",)
    if isinstance(obj, int):
        return ("int", obj)
    if isinstance(obj, str):  # gather turns strings into "<map object at 0x...>": drop the address
        return ("str", re.sub(r" at 0x[0-9a-fA-F]+", "", obj))
    if isinstance(obj, Token):
        return ("obj", obj.label, id(obj) in seen)
    if isinstance(obj, (list, tuple)):
        name = type(obj).__name__
        same = None if type(obj) is tuple and not obj else id(obj) in seen
        return ("seq", name, same, [encode(item, seen) for item in obj])
    if isinstance(obj, dict):
        return ("map", type(obj).__name__, id(obj) in seen, [[k, encode(v, seen)] for k, v in obj.items()])
    return ("other", type(obj).__name__)


# ---- scatter / scatter_kwargs / gather ----------------------------------------------------------
def run_scatter(case: ScatterCase, device: str) -> dict:
    seen: set = set()
    tree = build(case.tree, device, case.dtype, seen, {})
    try:
        with transport(device):
            result = SCATTER_GATHER.scatter(tree, target_indices(device, case.n_devices), case.dim)
    except Exception as exc:
        return {"type": "raised", "replicas": raised(exc)}
    return {"type": type(result).__name__, "replicas": [encode(r, seen) for r in result]}


def run_scatter_unpatched(case: ScatterCase, device: str) -> dict:
    """Scatter of CPU objects with torch's own transport (what a CPU-only build offers)."""
    seen: set = set()
    tree = build(case.tree, "cpu", case.dtype, seen, {})
    try:
        result = SCATTER_GATHER.scatter(tree, list(range(case.n_devices)), case.dim)
    except Exception as exc:
        return {"type": "raised", "replicas": raised(exc)}
    return {"type": type(result).__name__, "replicas": [encode(r, seen) for r in result]}


def run_scatter_kwargs(case: ScatterKwargsCase, device: str) -> dict:
    seen: set = set()
    tokens: dict = {}
    inputs = build(case.inputs, device, case.dtype, seen, tokens)
    kwargs = None if case.kwargs is None else build(case.kwargs, device, case.dtype, seen, tokens)
    try:
        with transport(device):
            ins, kws = SCATTER_GATHER.scatter_kwargs(inputs, kwargs, target_indices(device, case.n_devices),
                                                     case.dim)
    except Exception as exc:
        return {"inputs": raised(exc), "kwargs": None}
    return {"inputs": (type(ins).__name__, [encode(x, seen) for x in ins]),
            "kwargs": (type(kws).__name__, [encode(x, seen) for x in kws])}


def run_gather(case: GatherCase, device: str) -> dict:
    seen: set = set()
    targets = target_indices(device, len(case.outputs))
    outputs = [build(tree, replica_device(device, targets[j]), case.dtype, seen, {})
               for j, tree in enumerate(case.outputs)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with transport(device):
                result = SCATTER_GATHER.gather(outputs, targets[0], case.dim)
        except Exception as exc:
            return {"result": raised(exc), "warnings": None}
    return {"result": encode(result, seen),
            "warnings": [(w.category.__name__, str(w.message)) for w in caught
                         if str(w.message).startswith(GATHER_WARNING_PREFIX)]}


def run_gather_cpu_tensors(case: GatherCase, device: str):
    """torch's own Gather on CPU tensors (no stand-in)."""
    outputs = [build(tree, "cpu", case.dtype, set(), {}) for tree in case.outputs]
    try:
        return encode(SCATTER_GATHER.gather(outputs, 0, case.dim), set())
    except Exception as exc:
        return raised(exc)


# ---- replicate ----------------------------------------------------------------------------------
class Node(torch.nn.Module):
    def __init__(self, spec_index: int):
        super().__init__()
        self.spec_index = spec_index


def build_network(case: ReplicateCase, device) -> Node:
    nodes = [Node(i) for i in range(len(case.modules))]
    params = {}
    for i, spec in enumerate(case.modules):
        for j, (name, size) in enumerate(spec.params):
            value = None if size is None else torch.nn.Parameter(
                torch.from_numpy(leaf_values(param_leaf(i, j), (size,))).float().to(device),
                requires_grad=not spec.frozen)
            nodes[i].register_parameter(name, value)
            params[(i, name)] = value
        for j, (name, size) in enumerate(spec.buffers):
            nodes[i].register_buffer(name, None if size is None else
                                     torch.from_numpy(leaf_values(buffer_leaf(i, j), (size,))).float().to(device)
                                     .requires_grad_(spec.grad_buffers))
    for i, spec in enumerate(case.modules):
        for name, src, src_name in spec.ties:
            nodes[i].register_parameter(name, params[(src, src_name)])
        for name, child in spec.children:
            nodes[i].add_module(name, None if child is None else nodes[child])
    return nodes[0]


def encode_network(root: torch.nn.Module, case: ReplicateCase) -> tuple[list, list]:
    """Pre-order traversal (shared modules once), each module with its tensors numbered by identity."""
    order: list = []
    position: dict[int, int] = {}

    def visit(m) -> None:
        if id(m) in position:
            return
        position[id(m)] = len(order)
        order.append(m)
        for child in m._modules.values():
            if child is not None:
                visit(child)

    visit(root)
    refs: dict[int, int] = {}

    def tensor(t):
        if t is None:
            return None
        return ("t", refs.setdefault(id(t), len(refs)), t.detach().cpu().numpy(), bool(t.requires_grad))

    entries = []
    for m in order:
        spec = case.modules[m.spec_index]
        names = [name for name, _ in spec.params] + [name for name, _, _ in spec.ties]
        entries.append({"spec": m.spec_index, "type": type(m).__name__,
                        "is_replica": bool(getattr(m, "_is_replica", False)),
                        "children": [[name, None if c is None else position[id(c)]] for name, c in m._modules.items()],
                        "registered": list(m._parameters),
                        "params": [[name, tensor(getattr(m, name))] for name in names],
                        "buffers": [[name, tensor(b)] for name, b in m._buffers.items()]})
    return entries, order


def replicate_network(case: ReplicateCase, device: str):
    first = target_indices(device, 1)[0]
    network = build_network(case, replica_device(device, first))
    targets = target_indices(device, case.n_devices)
    if on_cpu(device):
        with patched(REPLICATE, _broadcast_coalesced_reshape=cpu_broadcast):
            return network, REPLICATE.replicate(network, targets, case.detach)
    return network, REPLICATE.replicate(network, targets, case.detach)


def run_replicate(case: ReplicateCase, device: str) -> dict:
    try:
        network, replicas = replicate_network(case, device)
    except Exception as exc:
        return {"replicas": raised(exc), "original": None, "distinct": None}
    encoded = [encode_network(r, case) for r in replicas]
    original, original_modules = encode_network(network, case)
    all_modules = [m for _, mods in encoded for m in mods] + original_modules
    return {"replicas": [entries for entries, _ in encoded], "original": original,
            "distinct": len({id(m) for m in all_modules}) == len(all_modules)}


def run_replicate_structure(case: ReplicateCase, device: str) -> dict:
    return replicate_view(run_replicate(case, device), "structure")


def run_replicate_params(case: ReplicateCase, device: str) -> dict:
    return replicate_view(run_replicate(case, device), "params")


def run_replicate_buffers(case: ReplicateCase, device: str) -> dict:
    return replicate_view(run_replicate(case, device), "buffers")


def run_replicate_is_replica(case: ReplicateCase, device: str) -> dict:
    return replicate_view(run_replicate(case, device), "is_replica")


def _zero_grad_warnings(module) -> list:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module.zero_grad()
    return [(w.category.__name__, str(w.message).split(". ")[0] + ".") for w in caught
            if "zero_grad" in str(w.message)]


def run_zero_grad(case: ReplicateCase, device: str) -> dict:
    try:
        network, replicas = replicate_network(case, device)
    except Exception as exc:
        return {"replicas": raised(exc), "original": None}
    return {"replicas": [_zero_grad_warnings(r) for r in replicas], "original": _zero_grad_warnings(network)}


# ---- parallel_apply -----------------------------------------------------------------------------
class TwoArgError(Exception):
    """An exception that cannot be rebuilt from one message."""

    def __init__(self, a, b):
        super().__init__(a, b)


def make_exception(name: str, index: int) -> Exception:
    if name == "TwoArgError":
        return TwoArgError(f"boom {index}", index)
    return {"ValueError": ValueError, "KeyError": KeyError, "ZeroDivisionError": ZeroDivisionError}[name](
        f"boom {index}")


class Worker(torch.nn.Module):
    """x * scale + add; later replicas finish first (shorter sleeps), so order comes from the index alone."""

    def __init__(self, index: int, scale: int, failure: str | None, n: int):
        super().__init__()
        self.index, self.k, self.failure, self.delay = index, scale, failure, 0.002 * (n - index)
        self.weight = torch.nn.Parameter(torch.tensor(float(scale)))

    def forward(self, x, add=0):
        time.sleep(self.delay)
        if self.failure is not None:
            raise make_exception(self.failure, self.index)
        if isinstance(x, int):
            return x * self.k + add
        return x * self.weight + add


def _apply_arguments(case: ApplyCase, device: str):
    n = len(case.scales)
    n_inputs = n if case.n_inputs is None else case.n_inputs
    targets = target_indices(device, max(n, n_inputs, case.n_devices or 0))
    modules = [Worker(i, s, f, n).to(replica_device(device, targets[i]))
               for i, (s, f) in enumerate(zip(case.scales, case.failures))]

    def one_input(i):
        if case.input_style == "nontensor":
            return i
        x = torch.from_numpy(apply_input(i, case.rows)).float().to(replica_device(device, targets[i]))
        return {"tuple": (x,), "list": [x], "bare": x}[case.input_style]

    inputs = [one_input(i) for i in range(n_inputs)]
    kwargs = None if case.n_kwargs == -1 else [{"add": i + 1} for i in range(n if case.n_kwargs is None else case.n_kwargs)]
    devices = None if case.n_devices == -1 else targets[: n if case.n_devices is None else case.n_devices]
    return modules, inputs, kwargs, devices


def encode_apply_output(out):
    if isinstance(out, torch.Tensor):
        return ("T", str(out.dtype).removeprefix("torch."), out.detach().cpu().numpy(), bool(out.requires_grad))
    return ("int", out) if isinstance(out, int) else ("other", type(out).__name__)


def run_parallel_apply(case: ApplyCase, device: str):
    modules, inputs, kwargs, devices = _apply_arguments(case, device)
    stand_in = patched(PARALLEL_APPLY, torch=TorchWithCpuAccelerator()) if on_cpu(device) else contextlib.nullcontext()
    try:
        with stand_in, torch.set_grad_enabled(case.grad_enabled):
            outputs = PARALLEL_APPLY.parallel_apply(modules, inputs, kwargs, devices)
    except Exception as exc:
        return raised(exc)
    return [encode_apply_output(o) for o in outputs]


def run_parallel_apply_values(case: ApplyCase, device: str):
    return apply_view(run_parallel_apply(case, device), "values")


def run_parallel_apply_grad(case: ApplyCase, device: str):
    return apply_view(run_parallel_apply(case, device), "grad")


def run_parallel_apply_unpatched(case: ApplyCase, device: str):
    """parallel_apply with torch's own accelerator runtime (what a CPU-only build offers)."""
    modules, inputs, kwargs, devices = _apply_arguments(case, "cpu")
    try:
        return [encode_apply_output(o) for o in PARALLEL_APPLY.parallel_apply(modules, inputs, kwargs, devices)]
    except Exception as exc:
        return raised(exc)


# ---- DataParallel -------------------------------------------------------------------------------
class Affine(torch.nn.Module):
    """Linear(features, 3) with fixed small-integer weights; optional shift kwarg, tag kwarg (dict output),
    and a BatchNorm1d(3) after it."""

    def __init__(self, features: int, norm: bool = False, reduce: bool = False):
        super().__init__()
        weight, bias = affine_params(features)
        self.linear = torch.nn.Linear(features, 3)
        with torch.no_grad():
            self.linear.weight.copy_(torch.from_numpy(weight))
            self.linear.bias.copy_(torch.from_numpy(bias))
        self.norm = torch.nn.BatchNorm1d(3) if norm else None
        self.reduce = reduce

    def forward(self, x, shift=0.0, tag=None):
        y = self.linear(x) + shift
        if self.norm is not None:
            self.norm(y)  # only for its in-place running-stat update
        if self.reduce:
            return y.sum()
        return y if tag is None else {"y": y, "tag": tag}


class Const(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c = torch.nn.Parameter(torch.tensor([1.0, 2.0, 3.0]))

    def forward(self):
        return self.c * 2


def affine_tensor(batch: int, features: int, seed: int, device) -> torch.Tensor:
    return torch.from_numpy(affine_input(batch, features, seed)).float().to(device)


def run_fallback(case: FallbackCase, device: str) -> dict:
    module = Affine(case.features)
    kwargs = {}
    if case.device_ids is not None:
        kwargs["device_ids"] = list(case.device_ids)
    if case.output_device is not None:
        kwargs["output_device"] = case.output_device
    try:
        dp = torch.nn.DataParallel(module, dim=case.dim, **kwargs)
        x = affine_tensor(case.batch, case.features, 0, "cpu")
        out = dp(x, shift=2.0) if case.with_kwarg else dp(x)
    except Exception as exc:
        return {"device_ids": raised(exc), "output": None, "module_is_wrapped": None}
    return {"device_ids": list(dp.device_ids), "output": out.detach().numpy(), "module_is_wrapped": dp.module is module}


def run_dp_defaults(case: DPCase, device: str) -> dict:
    dev = torch.device(device)
    plain = torch.nn.DataParallel(Affine(case.features))
    explicit = torch.nn.DataParallel(Affine(case.features), device_ids=[torch.device(dev.type, 0)],
                                     output_device=torch.device(dev.type, 0))
    return {"device_ids": list(plain.device_ids), "output_device": plain.output_device,
            "explicit": [list(explicit.device_ids), explicit.output_device]}


def run_dp_single(case: DPCase, device: str) -> dict:
    index = target_indices(device, 1)[0]
    module = Affine(case.features)
    dp = torch.nn.DataParallel(module, device_ids=[index])
    moved = module.linear.weight.device == replica_device(device, index)
    out = dp(affine_tensor(case.batch, case.features, case.seed, replica_device(device, index)), tag="chunk")
    return {"moved": moved, "output": encode(out, set())}


def run_dp_param_device(case: DPCase, device: str):
    targets = target_indices(device, case.n_replicas)
    dp = torch.nn.DataParallel(Affine(case.features), device_ids=targets)
    try:
        dp(affine_tensor(case.batch, case.features, case.seed, replica_device(device, targets[0])))
    except Exception as exc:
        return raised(exc)
    return "no error"


def _dp(case: DPCase, device: str, module: torch.nn.Module):
    targets = target_indices(device, case.n_replicas)
    module.to(replica_device(device, targets[0]))
    return torch.nn.DataParallel(module, device_ids=targets), replica_device(device, targets[0])


def run_dp_forward_backward(case: DPCase, device: str) -> dict:
    module = Affine(case.features)
    try:
        dp, first = _dp(case, device, module)
        y = dp(affine_tensor(case.batch, case.features, case.seed, first))
        (y * torch.from_numpy(loss_weights(case.batch)).float().to(y.device)).sum().backward()
    except Exception as exc:
        return {"output": raised(exc), "weight_grad": None, "bias_grad": None}
    return {"output": y.detach().cpu().numpy(), "weight_grad": module.linear.weight.grad.cpu().numpy(),
            "bias_grad": module.linear.bias.grad.cpu().numpy()}


def run_dp_scalar(case: DPCase, device: str):
    module = Affine(case.features, reduce=True)
    try:
        dp, first = _dp(case, device, module)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dp(affine_tensor(case.batch, case.features, case.seed, first)).detach().cpu().numpy()
    except Exception as exc:
        return raised(exc)


def run_dp_buffer(case: DPCase, device: str):
    module = Affine(case.features, norm=True)
    try:
        dp, first = _dp(case, device, module)
        dp(affine_tensor(case.batch, case.features, case.seed, first))
    except Exception as exc:
        return raised(exc)
    return module.norm.running_mean.detach().cpu().numpy().astype(np.float64)


def run_dp_no_inputs(case: DPCase, device: str):
    module = Const()
    try:
        dp, _ = _dp(case, device, module)
        return dp().detach().cpu().numpy()
    except Exception as exc:
        return raised(exc)

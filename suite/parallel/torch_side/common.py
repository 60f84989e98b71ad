"""Shared pieces of the parallel area's torch side: devices, the Scatter/Gather stand-ins, building a
Case's trees as torch objects and encoding outcomes.

On CPU (no ``torch._C._scatter``/``_gather``/``_broadcast_coalesced``, no accelerator runtime) the Python
logic of scatter_gather.py, replicate.py and parallel_apply.py still runs for real, with the transport
stood in, *inside torch's modules* and restored in ``finally``:

- ``Scatter``/``Gather`` (scatter_gather.py's names) by ``CpuScatter``/``CpuGather``, which follow the
  documented transport: ``tensor.chunk(len(devices), dim)`` copied per device (torch/csrc/cuda/comm.cpp:
  scatter), and concatenation along dim with 0-dim inputs unsqueezed under a warning (Gather.forward);
- replicate.py's transport (``comm.broadcast_coalesced``, ``_functions.Broadcast``) by per-device copies
  (``torch_side/replicate.py``; ``_broadcast_coalesced_reshape`` itself runs);
- parallel_apply.py's ``torch.accelerator`` by no-op stream and device guards (``torch_side/parallel_apply.py``;
  threads run for real).

On an accelerator nothing is stood in: the targets are the visible devices round-robin (with one device,
the same index repeated -- torch accepts that: chunks stay on the device, broadcast copies within it).

Imports only torch, numpy, the standard library, conform and suite.parallel.cases: the repro writer embeds it.
"""
from __future__ import annotations

import contextlib
import importlib
import re
import warnings
from collections import OrderedDict, defaultdict, namedtuple

import torch

from suite.parallel.cases import leaf_values

# torch.nn.parallel re-exports functions under its submodules' names; fetch the modules themselves.
SCATTER_GATHER = importlib.import_module("torch.nn.parallel.scatter_gather")
REPLICATE = importlib.import_module("torch.nn.parallel.replicate")
PARALLEL_APPLY = importlib.import_module("torch.nn.parallel.parallel_apply")
DATA_PARALLEL = importlib.import_module("torch.nn.parallel.data_parallel")
FUNCTIONS = importlib.import_module("torch.nn.parallel._functions")

RECORDS = {n: namedtuple(f"Rec{n}", [f"f{i}" for i in range(n)]) for n in range(5)}
GATHER_WARNING_PREFIX = "Was asked to gather"


class MyDict(dict):
    """A plain dict subclass."""


class Token:
    """An opaque object: scatter must hand the same one to every replica."""

    def __init__(self, label: str):
        self.label = label


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


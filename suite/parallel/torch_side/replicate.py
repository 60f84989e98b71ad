"""Torch side of replicate: build the Case's module tree, replicate it (on CPU with the broadcast stand-in),
encode every replica and the original."""
from __future__ import annotations

import contextlib
import warnings

import torch

from conform.outcome import Raised
from suite.parallel.cases import (REPLICATE_VIEWS, ReplicateCase, ScriptReplicateCase, affine_input, affine_params,
                                  replicate_values, replicate_view)
from suite.parallel.torch_side.common import FUNCTIONS, REPLICATE, on_cpu, patched, replica_device, target_indices


def _handle_complex(t):
    # comm.broadcast_coalesced hands complex tensors to the transport as real views (comm.py: _handle_complex)
    return t if isinstance(t, torch.nn.UninitializedParameter) or not t.is_complex() else torch.view_as_real(t)


class CpuComm:
    """Stand-in for the ``comm`` module replicate.py calls under detach: ``broadcast_coalesced`` as the transport
    documents it -- devices[0] gets the input tensors as-is (torch/csrc/cuda/comm.cpp: broadcast_coalesced,
    ``outputs[0] = tensors``; NOTE [ Version Counter in comm.*_coalesced ]), every other device detached copies."""

    @staticmethod
    def broadcast_coalesced(tensors, devices, buffer_size=10485760):
        tensors = [_handle_complex(t) for t in tensors]
        return [list(tensors)] + [[t.detach().clone() for t in tensors] for _ in devices[1:]]


class CpuBroadcast:
    """Stand-in for _functions.Broadcast (the differentiable broadcast): one flat tuple, device after device;
    devices[0] gets views of the inputs, the others copies, each differentiable where its input requires grad."""

    @staticmethod
    def apply(devices, *tensors):
        first = [t.view_as(t) for t in tensors]
        return tuple(first + [t.clone() for _ in devices[1:] for t in tensors])


def broadcast_stand_in(device: str):
    """On CPU, replicate.py's own _broadcast_coalesced_reshape runs with only the transport stood in."""
    if not on_cpu(device):
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    stack.enter_context(patched(REPLICATE, comm=CpuComm))
    stack.enter_context(patched(FUNCTIONS, Broadcast=CpuBroadcast))
    return stack


class Node(torch.nn.Module):
    def __init__(self, spec_index: int):
        super().__init__()
        self.spec_index = spec_index


def build_network(case: ReplicateCase, device) -> Node:
    nodes = [Node(i) for i in range(len(case.modules))]
    params = {}
    for i, spec in enumerate(case.modules):
        for j, (name, size) in enumerate(spec.params):
            real = None if size is None else torch.from_numpy(replicate_values(i, "p", j, size)).float()
            value = None if size is None else torch.nn.Parameter(
                (torch.complex(real, -real) if spec.complex_params else real).to(device), requires_grad=not spec.frozen)
            nodes[i].register_parameter(name, value)
            params[(i, name)] = value
        for j, (name, size) in enumerate(spec.buffers):
            nodes[i].register_buffer(name, None if size is None else
                                     torch.from_numpy(replicate_values(i, "b", j, size)).float().to(device)
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


@contextlib.contextmanager
def jit_enabled(enabled: bool):
    """TorchScript on or off for the call, as PYTORCH_JIT=0 at import leaves it (torch.jit._state._enabled)."""
    state = torch.jit._state._enabled
    saved = state.enabled
    state.enabled = enabled
    try:
        yield
    finally:
        state.enabled = saved


def replicate_network(case: ReplicateCase, device: str):
    first = target_indices(device, 1)[0]
    network = build_network(case, replica_device(device, first))
    targets = target_indices(device, case.n_devices)
    with broadcast_stand_in(device), jit_enabled(case.jit):
        return network, REPLICATE.replicate(network, targets, *((case.detach,) if case.detach_given else ()))


class Holder(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)


def run_replicate_script(case: ScriptReplicateCase, device: str) -> dict:
    """Replicate a network holding a scripted Linear; each replica's scripted part, and its output on x."""
    targets = target_indices(device, case.n_devices)
    linear = torch.nn.Linear(case.features, 3)
    weight, bias = affine_params(case.features)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(weight))
        linear.bias.copy_(torch.from_numpy(bias))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script is deprecated from 2.10 on
        scripted = torch.jit.script(linear).to(replica_device(device, targets[0]))
    network = scripted if case.scripted_root else Holder(scripted)
    x = torch.from_numpy(affine_input(case.batch, case.features)).float()
    try:
        with broadcast_stand_in(device):
            replicas = REPLICATE.replicate(network, targets)
        inner = [r if case.scripted_root else r.inner for r in replicas]
        outputs = [r(x.to(replica_device(device, t))).detach().cpu().numpy() for r, t in zip(replicas, targets)]
    except Exception as exc:
        return {"scripted": Raised.from_exception(exc), "distinct": None, "outputs": None}
    return {"scripted": [isinstance(m, torch.jit.ScriptModule) for m in inner],
            "distinct": len({id(m) for m in inner + [scripted]}) == len(inner) + 1, "outputs": outputs}


def run_replicate(case: ReplicateCase, device: str) -> dict:
    """Every replica and the original, encoded, projected onto each rule's part (cases.REPLICATE_VIEWS)."""
    try:
        network, replicas = replicate_network(case, device)
    except Exception as exc:
        return Raised.from_exception(exc)
    encoded = [encode_network(r, case) for r in replicas]
    original, original_modules = encode_network(network, case)
    all_modules = [m for _, mods in encoded for m in mods] + original_modules
    outcome = {"replicas": [entries for entries, _ in encoded], "original": original,
               "distinct": len({id(m) for m in all_modules}) == len(all_modules)}
    return {view: replicate_view(outcome, view) for view in REPLICATE_VIEWS}


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
        return {"replicas": Raised.from_exception(exc), "original": None}
    return {"replicas": [_zero_grad_warnings(r) for r in replicas], "original": _zero_grad_warnings(network)}


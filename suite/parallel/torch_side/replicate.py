"""Torch side of replicate: build the Case's module tree, replicate it (on CPU with the broadcast stand-in),
encode every replica and the original."""
from __future__ import annotations

import warnings

import torch

from conform.outcome import Raised
from suite.parallel.cases import REPLICATE_VIEWS, ReplicateCase, replicate_values, replicate_view
from suite.parallel.torch_side.common import REPLICATE, on_cpu, patched, replica_device, target_indices


def cpu_broadcast(tensors, devices, detach=False):
    """Stand-in for replicate._broadcast_coalesced_reshape, as the transport documents it: devices[0] gets the
    input tensors as-is under detach (comm.broadcast_coalesced; torch/csrc/cuda/comm.cpp, NOTE [ Version Counter
    in comm.*_coalesced ]) and views of them through the Broadcast autograd function otherwise; every other
    device gets copies (detached under detach)."""
    first = list(tensors) if detach else [t.view_as(t) for t in tensors]
    return [first] + [[t.detach().clone() if detach else t.clone() for t in tensors] for _ in devices[1:]]


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
                torch.from_numpy(replicate_values(i, "p", j, size)).float().to(device),
                requires_grad=not spec.frozen)
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


def replicate_network(case: ReplicateCase, device: str):
    first = target_indices(device, 1)[0]
    network = build_network(case, replica_device(device, first))
    targets = target_indices(device, case.n_devices)
    if on_cpu(device):
        with patched(REPLICATE, _broadcast_coalesced_reshape=cpu_broadcast):
            return network, REPLICATE.replicate(network, targets, case.detach)
    return network, REPLICATE.replicate(network, targets, case.detach)


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


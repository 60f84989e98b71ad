"""replicate: module trees copied per device (torch/nn/parallel/replicate.py).

``case.modules`` are module specs (``params``, ``buffers``, ``children``, ``ties``, ``frozen``,
``grad_buffers``; ``suite/parallel/cases.py: ModSpec``), ``case.n_devices``, ``case.detach``.  Tensor
values come from ``values(module_index, kind, index, size)`` (kind ``"p"`` or ``"b"``), handed in by the
caller.
"""
from __future__ import annotations

from typing import Callable

from conform.expect import Expect
from conform.rules import rule
from reference.parallel.data_parallel import affine_forward

REPLICATE_STRUCTURE = rule(
    "parallel.replicate.structure",
    "replicate returns one replica per device; each is a new module tree of the same types and child names, "
    "shared submodules stay shared within a replica, None children stay None, no object is shared between "
    "replicas or with the original; the same with TorchScript disabled (PYTORCH_JIT=0; stood in by the flag it "
    "sets) (on CPU: broadcast transport stood in by copies)",
    "torch/nn/parallel/replicate.py: replicate; Module._replicate_for_data_parallel")
REPLICATE_PARAMS = rule(
    "parallel.replicate.params",
    "replica parameters are plain tensor attributes (not registered; only None parameters stay in "
    "_parameters) equal to the originals, tied parameters share one copy per replica, differentiable unless "
    "detach or frozen (on CPU: broadcast transport stood in by copies)",
    "torch/nn/parallel/replicate.py: replicate")
REPLICATE_BUFFERS = rule(
    "parallel.replicate.buffers",
    "replica buffers stay registered in the original order with equal values (None kept); buffers that require "
    "grad are copied differentiably (the copies require grad) unless detach, where replica 0 holds the originals "
    "(DataParallel docs: the replica on device[0] shares storage with the module) and the others detached copies; "
    "other buffers never require grad (on CPU: broadcast transport stood in by copies)",
    "torch/nn/parallel/replicate.py: replicate (buffers_rg / buffers_not_rg); torch/csrc/cuda/comm.cpp: "
    "broadcast_coalesced (outputs[0] = tensors); DataParallel docs")
REPLICATE_IS_REPLICA = rule(
    "parallel.replicate.is_replica",
    "every module of a replica has _is_replica = True; the original is untouched",
    "torch/nn/modules/module.py: Module._replicate_for_data_parallel")
REPLICATE_SCRIPT = rule(
    "parallel.replicate.script_module",
    "ScriptModules in the network (all of whose descendants are ScriptModules: TorchScript refuses a Python "
    "module under one) are replicated too: every replica holds its own ScriptModule copy computing what the "
    "original computes (on CPU: broadcast transport stood in by copies)",
    "torch/nn/parallel/replicate.py: _replicatable_module (a module 'cannot be replicated properly if the "
    "descendants of any ScriptModule contains python module'); torch/jit/_script.py: "
    "RecursiveScriptModule._replicate_for_data_parallel")
REPLICATE_ZERO_GRAD = rule(
    "parallel.replicate.zero_grad_warning",
    "zero_grad() on a replica warns (UserWarning 'Calling .zero_grad() from a module created with "
    "nn.DataParallel() has no effect...'); on the original it does not",
    "torch/nn/modules/module.py: Module.zero_grad")

# The part of a replicate outcome each rule speaks about (the names of suite/parallel/cases.py: REPLICATE_VIEWS).
VIEWS = {REPLICATE_STRUCTURE: "structure", REPLICATE_PARAMS: "params", REPLICATE_BUFFERS: "buffers",
         REPLICATE_IS_REPLICA: "is_replica"}

TensorValues = Callable[[int, str, int, int], object]


def reachable(modules: tuple) -> list[int]:
    """Indices of the modules reachable from modules[0], in pre-order (shared modules once)."""
    order: list[int] = []

    def visit(i: int) -> None:
        if i in order:
            return
        order.append(i)
        for _, child in modules[i].children:
            if child is not None:
                visit(child)

    visit(0)
    return order


def module_entries(case, values: TensorValues, is_replica: bool, position: int = 0) -> list:
    """One replica (``is_replica``; ``position``: which one) or the original, as encoded entries."""
    specs = case.modules
    order = reachable(specs)
    refs: dict[tuple, int] = {}  # the original tensor (module, kind, index) -> identity number in this replica
    entries = []
    for m in order:
        spec = specs[m]

        def tensor(key: tuple, size: int, grad: bool) -> tuple:
            ref = refs.setdefault(key, len(refs))
            v = values(key[0], key[1], key[2], size)
            if key[1] == "p" and specs[key[0]].complex_params:
                v = v - 1j * v  # a complex parameter travels as its real view and comes back complex
            return ("t", ref, v, grad)

        trainable = not spec.frozen
        params = [[name, None if size is None else tensor((m, "p", i), size, trainable and not (
            is_replica and case.detach))] for i, (name, size) in enumerate(spec.params)]
        for name, src, src_name in spec.ties:
            index = [n for n, _ in specs[src].params].index(src_name)
            size = specs[src].params[index][1]
            params.append([name, tensor((src, "p", index), size, not specs[src].frozen and not (
                is_replica and case.detach))])
        # A buffer requiring grad is copied differentiably unless detach (the copies require grad); otherwise
        # replica 0 receives the original (which still requires grad) and the others detached copies.
        buffer_grad = spec.grad_buffers and (not is_replica or not case.detach or position == 0)
        buffers = [[name, None if size is None else tensor((m, "b", i), size, buffer_grad)]
                   for i, (name, size) in enumerate(spec.buffers)]
        registered = ([name for name, size in spec.params if size is None] if is_replica
                      else [name for name, _ in spec.params] + [name for name, _, _ in spec.ties])
        entries.append({"spec": m, "type": "Node", "is_replica": is_replica,
                        "children": [[name, None if c is None else order.index(c)] for name, c in spec.children],
                        "registered": registered, "params": params, "buffers": buffers})
    return entries


def replicate_outcome(case, values: TensorValues) -> dict:
    return {"replicas": [module_entries(case, values, True, j) for j in range(case.n_devices)],
            "original": module_entries(case, values, False),
            "distinct": True}


def expectations(case, values: TensorValues, view: Callable[[dict, str], dict]) -> list[Expect]:
    """One expectation per rule, each about its part of the outcome: ``view(outcome, name)`` projects an
    outcome onto the part named VIEWS[rule] (the projection both sides apply), torch's outcome holds it
    under that name."""
    outcome = replicate_outcome(case, values)
    return [Expect(r, view(outcome, name), key=name) for r, name in VIEWS.items()]


ZERO_GRAD_WARNING = "Calling .zero_grad() from a module created with nn.DataParallel() has no effect."


def zero_grad_expectations(case) -> list[Expect]:
    return [Expect(REPLICATE_ZERO_GRAD, {"replicas": [[("UserWarning", ZERO_GRAD_WARNING)] for _ in range(case.n_devices)],
                                         "original": []})]


def script_expectations(case, inputs: dict) -> list[Expect]:
    """``case.n_devices`` replicas, each a distinct ScriptModule copy computing x W^T + b (``inputs``: weight,
    bias, x; exact: small integers)."""
    return [Expect(REPLICATE_SCRIPT, {"scripted": [True] * case.n_devices, "distinct": True,
                                      "outputs": [affine_forward(inputs)] * case.n_devices})]

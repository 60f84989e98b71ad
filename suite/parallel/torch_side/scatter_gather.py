"""Torch side of scatter, scatter_kwargs and gather: build the Case's trees, run torch.nn.parallel's
scatter_gather (with the CPU transport stand-in on CPU), encode the outcome."""
from __future__ import annotations

import warnings

from conform.outcome import Raised
from suite.parallel.cases import GatherCase, ScatterCase, ScatterKwargsCase
from suite.parallel.torch_side.common import (GATHER_WARNING_PREFIX, SCATTER_GATHER, build, encode, replica_device,
                                              target_indices, transport)

def _dim(case) -> tuple:
    """The dim argument of the call, or none: the case then has dim 0, the signatures' default."""
    return (case.dim,) if case.dim_given else ()


def run_scatter(case: ScatterCase, device: str) -> dict:
    seen: set = set()
    tree = build(case.tree, device, case.dtype, seen, {})
    try:
        with transport(device):
            result = SCATTER_GATHER.scatter(tree, target_indices(device, case.n_devices), *_dim(case))
    except Exception as exc:
        return {"type": "raised", "replicas": Raised.from_exception(exc)}
    return {"type": type(result).__name__, "replicas": [encode(r, seen) for r in result]}


def run_scatter_unpatched(case: ScatterCase, device: str) -> dict:
    """Scatter of CPU objects with torch's own transport (what a CPU-only build offers)."""
    seen: set = set()
    tree = build(case.tree, "cpu", case.dtype, seen, {})
    try:
        result = SCATTER_GATHER.scatter(tree, list(range(case.n_devices)), *_dim(case))
    except Exception as exc:
        return {"type": "raised", "replicas": Raised.from_exception(exc)}
    return {"type": type(result).__name__, "replicas": [encode(r, seen) for r in result]}


def run_scatter_kwargs(case: ScatterKwargsCase, device: str) -> dict:
    seen: set = set()
    tokens: dict = {}
    inputs = build(case.inputs, device, case.dtype, seen, tokens)
    kwargs = None if case.kwargs is None else build(case.kwargs, device, case.dtype, seen, tokens)
    try:
        with transport(device):
            ins, kws = SCATTER_GATHER.scatter_kwargs(inputs, kwargs, target_indices(device, case.n_devices),
                                                     *_dim(case))
    except Exception as exc:
        return {"inputs": Raised.from_exception(exc), "kwargs": None}
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
                result = SCATTER_GATHER.gather(outputs, targets[0], *_dim(case))
        except Exception as exc:
            return {"result": Raised.from_exception(exc), "warnings": None}
    return {"result": encode(result, seen),
            "warnings": [(w.category.__name__, str(w.message)) for w in caught
                         if str(w.message).startswith(GATHER_WARNING_PREFIX)]}


def run_gather_cpu_tensors(case: GatherCase, device: str):
    """torch's own Gather on CPU tensors (no stand-in)."""
    outputs = [build(tree, "cpu", case.dtype, set(), {}) for tree in case.outputs]
    try:
        return encode(SCATTER_GATHER.gather(outputs, 0, *_dim(case)), set())
    except Exception as exc:
        return Raised.from_exception(exc)


"""Cases of the ``parallel`` area: plain data only (no torch objects).

An input or output *structure* is a nested tuple ("tree"):

- ``("T", leaf_id, shape)``: a tensor whose values are ``leaf_values(leaf_id, shape)``;
- ``("None",)``, ``("int", v)``, ``("str", v)``: plain values;
- ``("obj", label)``: an opaque object (identity matters: scatter must pass it by reference);
- ``("seq", typename, children)``: ``typename`` is ``list``, ``tuple`` or ``RecN`` (a namedtuple with N fields);
- ``("map", typename, ((key, child), ...))``: ``typename`` is ``dict``, ``OrderedDict``, ``MyDict`` (a plain
  dict subclass) or ``defaultdict``.

Both sides encode an *outcome* in the same plain form (see ``suite/parallel/torch_side/common.py: encode``):

- ``("T", dtype, array)``; ``("None",)``; ``("int", v)``; ``("str", v)``; ``("obj", label, same)``;
- ``("seq", typename, same, [children])``; ``("map", typename, same, [[key, child], ...])``;

where ``same`` says whether the object *is* the input object (passed by reference).

The input generation below (pure numpy) is what both sides use: the torch side builds its tensors from it,
and the tests hand it to the reference (``reference/parallel`` never imports this module).

This module imports only numpy and the standard library: the repro writer embeds it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DTYPES = ("float32", "float64", "int64")


def leaf_values(leaf_id: int, shape: tuple) -> np.ndarray:
    """Input values of tensor leaf ``leaf_id``: distinct integers (exact in every dtype used), so a
    chunk in the wrong place or order is visible.  Input generation, not under test."""
    size = int(np.prod(shape)) if shape else 1
    return (np.arange(size, dtype=np.float64) + 1000.0 * leaf_id).reshape(shape)


def param_leaf(module_index: int, param_index: int) -> int:
    return 100 * module_index + param_index


def buffer_leaf(module_index: int, buffer_index: int) -> int:
    return 100 * module_index + 50 + buffer_index


def replicate_values(module_index: int, kind: str, index: int, size: int) -> np.ndarray:
    """Values of parameter (``kind`` "p") or buffer ("b") ``index`` of module ``module_index`` in replicate cases."""
    leaf = param_leaf(module_index, index) if kind == "p" else buffer_leaf(module_index, index)
    return leaf_values(leaf, (size,))


def apply_input(i: int, rows: int) -> np.ndarray:
    """Replica i's input in parallel_apply cases: small integers, so every result is exact in float32."""
    return leaf_values(i, (rows,)) % 7


def affine_params(features: int) -> tuple[np.ndarray, np.ndarray]:
    """Weight and bias of the Affine module of DataParallel cases (small integers: exact in float32 and TF32)."""
    weight = leaf_values(7, (3, features)) % 5 - 2
    bias = leaf_values(8, (3,)) % 3 - 1
    return weight, bias


def affine_input(batch: int, features: int, seed: int = 0) -> np.ndarray:
    return (leaf_values(seed, (batch, features)) % 7) - 3


def loss_weights(batch: int) -> np.ndarray:
    """The backward test's loss is sum(output * loss_weights)."""
    return (leaf_values(9, (batch, 3)) % 3) - 1


def dp_inputs(case) -> dict:
    """A DataParallel case's arrays (FallbackCase or DPCase): the Affine module's weight and bias, the input x
    and the loss weights g."""
    weight, bias = affine_params(case.features)
    return {"weight": weight, "bias": bias, "x": affine_input(case.batch, case.features, getattr(case, "seed", 0)),
            "g": loss_weights(case.batch)}


@dataclass(frozen=True)
class ScatterCase:
    tree: tuple
    n_devices: int
    dim: int = 0
    dtype: str = "float32"
    dim_given: bool = True  # False: dim is left out of the call (its default, 0)


@dataclass(frozen=True)
class ScatterKwargsCase:
    inputs: tuple  # a ("seq", "tuple", ...) tree: the positional arguments
    kwargs: tuple | None  # a ("map", "dict", ...) tree or None
    n_devices: int
    dim: int = 0
    dtype: str = "float32"
    dim_given: bool = True  # False: dim is left out of the call (its default, 0)


@dataclass(frozen=True)
class GatherCase:
    outputs: tuple  # one tree per replica
    dim: int = 0
    dtype: str = "float32"
    dim_given: bool = True  # False: dim is left out of the call (its default, 0)


@dataclass(frozen=True)
class ModSpec:
    """One module of a replicate case.  ``children`` name other modules by index (a later index:
    the tree is a DAG, so a submodule can be shared); ``None`` registers a None child.  ``params``
    and ``buffers`` are ``(name, size or None)``; ``ties`` re-register another module's parameter
    under a new name: ``(name, module_index, param_name)``."""

    params: tuple = ()
    buffers: tuple = ()
    children: tuple = ()
    ties: tuple = ()
    frozen: bool = False  # parameters with requires_grad=False
    grad_buffers: bool = False  # buffers with requires_grad=True
    complex_params: bool = False  # complex64 parameters, v - iv for the real values v


@dataclass(frozen=True)
class ReplicateCase:
    modules: tuple  # of ModSpec; modules[0] is the root
    n_devices: int
    detach: bool = False
    jit: bool = True  # False: TorchScript disabled, as PYTORCH_JIT=0 does (torch.jit._state._enabled)
    detach_given: bool = True  # False: detach is left out of the call (its default, False)


@dataclass(frozen=True)
class ScriptReplicateCase:
    """replicate of a network holding a scripted Linear(features, 3) with the Affine weights: the network itself
    (``scripted_root``) or the child ``inner`` of a Python module; every replica is applied to x."""

    n_devices: int
    scripted_root: bool
    batch: int = 2
    features: int = 2


@dataclass(frozen=True)
class ApplyCase:
    """``parallel_apply`` over ``len(scales)`` Worker modules: replica i computes ``x * scales[i] + add``;
    ``failures[i]`` names an exception type the replica raises instead (or None).  ``input_style``:
    how replica inputs are passed ("tuple", "list", "bare" tensor, "dict" ({"x": tensor}, the only argument) or
    "nontensor" (a plain int)).
    ``n_inputs``/``n_kwargs``/``n_devices`` (None: same as modules; ``n_kwargs`` -1: kwargs_tup=None;
    ``n_devices`` -1: devices=None) make length mismatches."""

    scales: tuple
    failures: tuple
    input_style: str = "tuple"
    n_inputs: int | None = None
    n_kwargs: int | None = None
    n_devices: int | None = None
    rows: int = 2
    grad_enabled: bool = True


@dataclass(frozen=True)
class FallbackCase:
    """DataParallel on a build without accelerators: module = Linear(features, 3) (seeded values)."""

    batch: int
    features: int
    device_ids: tuple | None = None
    output_device: int | None = None
    dim: int = 0
    with_kwarg: bool = False


@dataclass(frozen=True)
class DPCase:
    """DataParallel forward/backward on an accelerator: module = Linear(features, 3) + a BatchNorm1d
    (running stats updated in place), ``n_replicas`` device ids drawn round-robin from the visible
    devices (with one device, the same index repeated)."""

    batch: int
    features: int
    n_replicas: int
    seed: int = 0


@dataclass(frozen=True)
class ImbalanceCase:
    """DataParallel(module, device_ids) over devices whose total memory and multiprocessor counts are given
    (position k: device ``device_ids[k]``)."""

    device_ids: tuple
    memory: tuple
    cores: tuple


# ---- views of one outcome, one per rule (both sides apply the same view) -------------------------
REPLICATE_VIEWS = {
    "structure": ("spec", "type", "children"),
    "params": ("spec", "registered", "params"),
    "buffers": ("spec", "buffers"),
    "is_replica": ("spec", "is_replica"),
}


def replicate_view(outcome: dict, view: str) -> dict:
    """The part of a replicate outcome one rule speaks about (errors pass through whole)."""
    if not isinstance(outcome["replicas"], list):
        return outcome
    keys = REPLICATE_VIEWS[view]
    out = {"replicas": [[{k: entry[k] for k in keys} for entry in replica] for replica in outcome["replicas"]]}
    if view == "structure":
        out["distinct"] = outcome["distinct"]
    if view == "is_replica":
        out["original"] = outcome["original"]  # untouched: the whole encoding, tensors included
    return out

"""DataParallel: the CPU-only fallback, defaults, the single-device path and forward/backward across
replicas (torch/nn/parallel/data_parallel.py).

The module of every case is an affine map ``y = x W^T + b``; the caller hands in its ``weight``, ``bias``,
the input ``x`` and the backward test's loss weights ``g`` (``suite/parallel/cases.py: dp_inputs``).
"""
from __future__ import annotations

import numpy as np

from conform.expect import Expect
from conform.outcome import Raised
from conform.rules import rule
from reference.parallel.scatter import chunk_sizes
from reference.parallel.tolerances import running_mean_tol

DP = "torch/nn/parallel/data_parallel.py: DataParallel"
DP_FALLBACK = rule(
    "parallel.data_parallel.cpu_fallback",
    "without an accelerator DataParallel keeps device_ids == [] (whatever was passed) and forward(*a, **kw) "
    "returns module(*a, **kw) unchanged",
    f"{DP}.__init__, forward")
DP_DEFAULTS = rule(
    "parallel.data_parallel.defaults",
    "device_ids default to all visible devices, output_device to device_ids[0]; torch.device entries become "
    "indices",
    f"{DP}.__init__ docs")
DP_SINGLE = rule(
    "parallel.data_parallel.single_device",
    "with one device id the module is moved there at construction and forward calls it directly: outputs "
    "(even non-tensor ones) are returned as the module returns them",
    f"{DP}.__init__, forward")
DP_PARAM_DEVICE = rule(
    "parallel.data_parallel.param_device",
    "with several device ids, forward raises RuntimeError 'module must have its parameters and buffers on "
    "device ...' when a parameter or buffer is not on device_ids[0]",
    f"{DP}.forward")
DP_FORWARD_BACKWARD = rule(
    "parallel.data_parallel.forward_backward",
    "DataParallel(module)(x) equals module(x) and the gradients summed into the original parameters equal "
    "module's own, also when the batch gives fewer chunks than devices",
    f"{DP} docs")
DP_BUFFER_INPLACE = rule(
    "parallel.data_parallel.buffer_inplace",
    "in-place buffer updates made by the replica on device_ids[0] are recorded in the module (BatchNorm "
    "running stats from the first chunk only)",
    f"{DP} docs (warning on replicas and in-place updates)")
DP_SCALAR = rule(
    "parallel.data_parallel.scalar_output",
    "a module returning a 0-dim tensor yields a vector with one entry per used replica",
    f"{DP} docs (warning on scalar outputs)")
DP_NO_INPUTS = rule(
    "parallel.data_parallel.no_inputs",
    "forward() without inputs runs the module once, on device_ids[0]",
    f"{DP}.forward")


def affine_forward(inputs: dict, shift: float = 0.0) -> np.ndarray:
    return inputs["x"] @ inputs["weight"].T + inputs["bias"] + shift


def fallback_expectations(case, inputs: dict) -> list[Expect]:
    """``case``: ``with_kwarg`` (forward(x, shift=2.0)); whatever the device ids, nothing is scattered."""
    shift = 2.0 if case.with_kwarg else 0.0
    return [Expect(DP_FALLBACK, {"device_ids": [], "output": affine_forward(inputs, shift), "module_is_wrapped": True})]


def defaults_expectations(case) -> list[Expect]:
    """``case.n_replicas`` is the number of visible devices here."""
    return [Expect(DP_DEFAULTS, {"device_ids": list(range(case.n_replicas)), "output_device": 0,
                                 "explicit": [[0], 0]})]


def single_expectations(case, inputs: dict) -> list[Expect]:
    """forward(x, tag="chunk") of a module returning {"y": y, "tag": tag}, unchanged by DataParallel."""
    output = ("map", "dict", False, [["y", ("T", "float32", affine_forward(inputs))], ["tag", ("str", "chunk")]])
    return [Expect(DP_SINGLE, {"moved": True, "output": output})]


def param_device_expectations(case) -> list[Expect]:
    return [Expect(DP_PARAM_DEVICE, Raised("RuntimeError", r"^module must have its parameters and buffers on device "
                                           r"\w+:\d+ \(device_ids\[0\]\) but found one of them on device: cpu$"))]


def forward_backward_expectations(case, inputs: dict) -> list[Expect]:
    """y = x W^T + b; loss = sum(y * g): dW = g^T x, db = sum_rows g (exact: sums of small integers)."""
    x, g = inputs["x"], inputs["g"]
    return [Expect(DP_FORWARD_BACKWARD, {"output": affine_forward(inputs), "weight_grad": g.T @ x,
                                         "bias_grad": g.sum(axis=0)})]


def scalar_expectations(case, inputs: dict) -> list[Expect]:
    """Module returns sum(x W^T + b) of its chunk: one entry per used replica (one device: the 0-dim
    value itself, no gather).  Exact: sums of small integers."""
    y = affine_forward(inputs)
    if case.n_replicas == 1:
        return [Expect(DP_SCALAR, np.array(y.sum()))]
    bounds = np.cumsum(chunk_sizes(case.batch, case.n_replicas))[:-1]
    return [Expect(DP_SCALAR, np.array([chunk.sum() for chunk in np.split(y, bounds, axis=0)]))]


def buffer_expectations(case, inputs: dict) -> list[Expect]:
    """BatchNorm1d(3, momentum=0.1) after the affine map, training: only replica 0's chunk updates
    running_mean."""
    first = chunk_sizes(case.batch, case.n_replicas)[0]
    mean = 0.1 * affine_forward(inputs)[:first].mean(axis=0)
    return [Expect(DP_BUFFER_INPLACE, mean, running_mean_tol(first))]


def no_inputs_expectations(case) -> list[Expect]:
    return [Expect(DP_NO_INPUTS, np.array([2.0, 4.0, 6.0]))]  # Const: c * 2 with c = [1, 2, 3], computed once

"""DataParallel: the CPU-only fallback, defaults, the single-device path and forward/backward across
replicas (torch/nn/parallel/data_parallel.py).

The module of every case is an affine map ``y = x W^T + b``; the caller hands in its ``weight``, ``bias``,
the input ``x`` and the backward test's loss weights ``g`` (``suite/parallel/cases.py: dp_inputs``).
"""
from __future__ import annotations

import re

import numpy as np

from conform.expect import Expect
from conform.outcome import Raised
from conform.rules import rule
from reference.parallel.scatter import chunk_sizes
from reference.parallel.tolerances import running_mean_tol

DP = "torch/nn/parallel/data_parallel.py: DataParallel"
DPF = "torch/nn/parallel/data_parallel.py: data_parallel"
# On CPU the multi-device rules run against a stand-in (suite/parallel/torch_side/data_parallel.py: dp_stand_in)
DP_STANDIN = (" (on CPU: N CUDA devices stood in, each of them the CPU, with the area's scatter/gather, broadcast "
              "and accelerator stand-ins)")
DP_FALLBACK = rule(
    "parallel.data_parallel.cpu_fallback",
    "without an accelerator DataParallel keeps device_ids == [] (whatever was passed) and forward(*a, **kw) "
    "returns module(*a, **kw) unchanged",
    f"{DP}.__init__, forward")
DP_DEFAULTS = rule(
    "parallel.data_parallel.defaults",
    "device_ids default to all visible devices, output_device to device_ids[0]; torch.device entries become "
    "indices" + DP_STANDIN,
    f"{DP}.__init__ docs")
DP_SINGLE = rule(
    "parallel.data_parallel.single_device",
    "with one device id the module is moved there at construction and forward calls it directly: outputs "
    "(even non-tensor ones) are returned as the module returns them" + DP_STANDIN,
    f"{DP}.__init__, forward")
DP_PARAM_DEVICE = rule(
    "parallel.data_parallel.param_device",
    "with several device ids, forward -- and the functional data_parallel -- raise RuntimeError 'module must "
    "have its parameters and buffers on device <device_ids[0]> (device_ids[0]) but found one of them on device: "
    "<its device>' when a parameter or buffer is not on device_ids[0]" + DP_STANDIN,
    f"{DP}.forward; {DPF}")
DP_FORWARD_BACKWARD = rule(
    "parallel.data_parallel.forward_backward",
    "DataParallel(module)(x) equals module(x) and the gradients summed into the original parameters equal "
    "module's own, also when the batch gives fewer chunks than devices" + DP_STANDIN,
    f"{DP} docs")
DP_BUFFER_INPLACE = rule(
    "parallel.data_parallel.buffer_inplace",
    "in-place buffer updates made by the replica on device_ids[0] are recorded in the module (BatchNorm "
    "running stats from the first chunk only)" + DP_STANDIN,
    f"{DP} docs (warning on replicas and in-place updates)")
DP_SCALAR = rule(
    "parallel.data_parallel.scalar_output",
    "a module returning a 0-dim tensor yields a vector with one entry per used replica" + DP_STANDIN,
    f"{DP} docs (warning on scalar outputs)")
DP_NO_INPUTS = rule(
    "parallel.data_parallel.no_inputs",
    "forward() without inputs runs the module once, on device_ids[0]" + DP_STANDIN,
    f"{DP}.forward")
DP_IMBALANCE = rule(
    "parallel.data_parallel.imbalance_warning",
    "on CUDA, construction warns once (UserWarning 'There is an imbalance between your GPUs. You may want to "
    "exclude GPU <a> which has less than 75% of the memory or cores of GPU <b>. ...') where the device ids' least "
    "total memory is below 3/4 of the most (a, b: those devices), else where their fewest multiprocessors are "
    "below 3/4 of the most; otherwise it does not warn (on CPU: device properties stood in)",
    "torch/nn/parallel/data_parallel.py: _check_balance (the warning's text)")
DP_FUNCTIONAL = rule(
    "parallel.data_parallel.functional",
    "data_parallel(module, inputs, device_ids) evaluates module(inputs) like DataParallel: the output and the "
    "gradients summed into the module equal module's own; a non-tuple input is the only argument and "
    "inputs=None runs the module once without arguments; device_ids default to every visible device" + DP_STANDIN,
    f"{DPF} docstring ('the functional version of the DataParallel module')")
DP_FUNCTIONAL_CPU_BUILD = rule(
    "parallel.data_parallel.functional_cpu_build",
    "without an accelerator the functional data_parallel does not fall back like DataParallel: it raises "
    "RuntimeError('device type could not be determined')",
    f"{DPF} (`if device_type is None: raise RuntimeError(...)`)")


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


def param_device_expectations(case, first: str, elsewhere: str) -> list[Expect]:
    """The module left on ``elsewhere`` while device_ids[0] is ``first`` (both as torch prints them)."""
    raised = Raised("RuntimeError", rf"^module must have its parameters and buffers on device {re.escape(first)} "
                                    rf"\(device_ids\[0\]\) but found one of them on device: {re.escape(elsewhere)}$")
    return [Expect(DP_PARAM_DEVICE, {"module": raised, "functional": raised})]


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


CONST_OUTPUT = np.array([2.0, 4.0, 6.0])  # the Const module: c * 2 with c = [1, 2, 3], computed once


def no_inputs_expectations(case) -> list[Expect]:
    return [Expect(DP_NO_INPUTS, CONST_OUTPUT)]


IMBALANCE_WARNING = ("There is an imbalance between your GPUs. You may want to exclude GPU {} which has less than "
                     "75% of the memory or cores of GPU {}. You can do so by setting the device_ids argument to "
                     "DataParallel, or by setting the CUDA_VISIBLE_DEVICES environment variable.")


def imbalance_expectations(case) -> list[Expect]:
    """``case``: ``device_ids`` and, per position, ``memory`` and ``cores`` (distinct values: one least and one
    most device per property).  Memory is looked at first; the warning's whitespace is folded."""
    for values in (case.memory, case.cores):
        least, most = values.index(min(values)), values.index(max(values))
        if 4 * values[least] < 3 * values[most]:
            return [Expect(DP_IMBALANCE, [("UserWarning", IMBALANCE_WARNING.format(case.device_ids[least],
                                                                                  case.device_ids[most]))])]
    return [Expect(DP_IMBALANCE, [])]


def functional_expectations(case, inputs: dict) -> list[Expect]:
    """As forward_backward, and a Const module called with inputs=None."""
    x, g = inputs["x"], inputs["g"]
    return [Expect(DP_FUNCTIONAL, {"output": affine_forward(inputs), "weight_grad": g.T @ x,
                                   "bias_grad": g.sum(axis=0), "no_inputs": CONST_OUTPUT})]


def functional_cpu_build_expectations(case) -> list[Expect]:
    return [Expect(DP_FUNCTIONAL_CPU_BUILD, Raised("RuntimeError", r"^device type could not be determined$"))]

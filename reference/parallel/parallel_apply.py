"""parallel_apply: modules[i](*inputs[i], **kwargs[i]) on worker threads
(torch/nn/parallel/parallel_apply.py).

A case (``suite/parallel/cases.py: ApplyCase``) has ``len(scales)`` Worker modules: replica i computes
``x * scales[i] + add``, or raises ``failures[i]``.  Replica i's tensor input is ``inputs(i, rows)``, the
input generation the caller hands in.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from conform.expect import Expect
from conform.outcome import Raised
from conform.rules import rule
from reference.versions import since

PA = "torch/nn/parallel/parallel_apply.py: parallel_apply"
PA_STANDIN = " (on CPU: real threads, torch.accelerator stood in by no-op stream/device guards)"
APPLY_ORDER = rule(
    "parallel.parallel_apply.order",
    "parallel_apply returns modules[i](*inputs[i], **kwargs[i]) at position i whatever the threads' "
    "completion order; a non-sequence input (a tensor, a dict) is passed as the only argument, also where "
    "devices=None leaves the replica to run where its input's first tensor is" + PA_STANDIN,
    PA)
APPLY_EXCEPTION = rule(
    "parallel.parallel_apply.exception",
    "an exception in a replica is re-raised in the caller with its original type (RuntimeError if that type "
    "cannot be built from one message) and a message 'Caught <Type> in replica <i> on device <d>.' naming "
    "the lowest failing replica" + PA_STANDIN,
    f"{PA}; torch/_utils.py: ExceptionWrapper.reraise")
APPLY_LENGTHS = rule(
    "parallel.parallel_apply.lengths",
    "modules, inputs, kwargs_tup and devices must have equal lengths, checked in that order: AssertionError "
    "'The number of modules M is not equal to the number of inputs K' (from 2.11 the kwargs_tup and devices "
    "checks name theirs the same way; before, they carry no message)" + PA_STANDIN,
    PA)
APPLY_NO_DEVICE = rule(
    "parallel.parallel_apply.no_device",
    "where devices=None leaves a replica without device (no current device can be resolved, as on CPU) and "
    "its input holds no tensor, it fails with an error saying 'in replica <i>, no device was provided and no "
    "tensor input was found'" + PA_STANDIN,
    PA)
APPLY_GRAD_MODE = rule(
    "parallel.parallel_apply.grad_mode",
    "worker threads run with the caller's grad mode (outputs require grad exactly when grad is enabled)"
    + PA_STANDIN,
    PA)
APPLY_CPU_BUILD = rule(
    "parallel.parallel_apply.cpu_build",
    "on a build without an accelerator parallel_apply raises instead of running the modules",
    PA)

Inputs = Callable[[int, int], np.ndarray]


def _reraised_type(name: str) -> str:
    # ExceptionWrapper.reraise builds exc_type(msg); a type whose constructor needs more falls back to RuntimeError
    return "RuntimeError" if name == "TwoArgError" else name


def _error(case) -> tuple[str, Raised] | None:
    """The error parallel_apply raises for ``case`` and its rule, in parallel_apply's own check order."""
    n = len(case.scales)
    for what, count in (("inputs", case.n_inputs), ("kwargs_tup", case.n_kwargs), ("devices", case.n_devices)):
        if count is not None and count >= 0 and count != n:
            if what != "inputs" and not since("2.11"):
                # before 2.11 the kwargs_tup / devices checks were bare asserts (no message); 2.11 names them
                # like the inputs check (parallel_apply.py: `raise AssertionError(f"The number of modules ...")`)
                return APPLY_LENGTHS, Raised("AssertionError", r"^$")
            return APPLY_LENGTHS, Raised("AssertionError",
                                         rf"^The number of modules {n} is not equal to the number of {what} {count}$")
    for i, failure in enumerate(case.failures):
        if case.input_style == "nontensor" and case.n_devices == -1:
            return APPLY_NO_DEVICE, Raised("RuntimeError|ValueError|TypeError|AssertionError",
                                           rf"in replica {i}, no device was provided and no tensor input was found")
        if failure is not None:
            return APPLY_EXCEPTION, Raised(_reraised_type(failure),
                                           rf"^Caught {failure} in replica {i} on device -?\d+\.\nOriginal Traceback")
    return None


def outputs(case, inputs: Inputs) -> list:
    """The replicas' results in module order (no replica fails)."""
    out = []
    for i, scale in enumerate(case.scales):
        add = i + 1 if case.n_kwargs is None else 0
        if case.input_style == "nontensor":
            out.append(("int", i * scale + add))
        else:
            out.append(("T", "float32", inputs(i, case.rows) * scale + add))
    return out


def expectations(case, inputs: Inputs) -> list[Expect]:
    """The error and its rule where the case makes parallel_apply raise; otherwise the results in order
    (``outputs``) and whether each requires grad (``requires_grad``: the caller's grad mode, for tensors)."""
    error = _error(case)
    if error is not None:
        return [Expect(error[0], error[1])]
    results = outputs(case, inputs)
    grads = [case.grad_enabled if r[0] == "T" else None for r in results]
    return [Expect(APPLY_ORDER, results, key="outputs"), Expect(APPLY_GRAD_MODE, grads, key="requires_grad")]


def cpu_build_expectations(case) -> list[Expect]:
    """torch's own accelerator runtime on a build without one.  With no modules at all there is no stream to
    ask for, so the refusal comes from the availability check (2.10 on) -- or, nothing documented for an
    empty list, from the single-replica path's modules[0]: either way it raises instead of returning."""
    if not case.scales:
        return [Expect(APPLY_CPU_BUILD, Raised("RuntimeError|AssertionError|IndexError"))]
    return [Expect(APPLY_CPU_BUILD, Raised("RuntimeError|AssertionError"))]

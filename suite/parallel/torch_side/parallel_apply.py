"""Torch side of parallel_apply: Worker modules on real threads (on CPU with no-op stream/device guards)."""
from __future__ import annotations

import contextlib
import time

import torch

from conform.outcome import Raised
from suite.parallel.cases import ApplyCase, apply_input
from suite.parallel.torch_side.common import PARALLEL_APPLY, on_cpu, patched, replica_device, target_indices


def no_op_guard(*args, **kwargs):
    """A stream or device guard that does nothing (CPU has one stream and one device)."""
    return contextlib.nullcontext()


class CpuAccelerator:
    """What parallel_apply asks of torch.accelerator, on CPU: streams and device guards that do nothing."""

    current_stream = device_index = staticmethod(no_op_guard)

    @staticmethod
    def is_available():
        return True

    @staticmethod
    def current_accelerator():
        return torch.device("cpu")


class CpuCuda:
    """What parallel_apply asked of torch.cuda before it moved to torch.accelerator (2.4 .. 2.7): streams and
    device guards that do nothing; everything else (e.g. the torch.cuda.Stream annotation) is torch.cuda's."""

    current_stream = device = stream = staticmethod(no_op_guard)

    def __getattr__(self, name):
        return getattr(torch.cuda, name)


class TorchWithCpuAccelerator:
    accelerator = CpuAccelerator
    cuda = CpuCuda()

    def __getattr__(self, name):
        return getattr(torch, name)


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
        if isinstance(x, dict):  # the "dict" input style: the tensor is its value
            x = x["x"]
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
        return {"tuple": (x,), "list": [x], "bare": x, "dict": {"x": x}}[case.input_style]

    inputs = [one_input(i) for i in range(n_inputs)]
    kwargs = None if case.n_kwargs == -1 else [{"add": i + 1} for i in range(n if case.n_kwargs is None else case.n_kwargs)]
    devices = None if case.n_devices == -1 else targets[: n if case.n_devices is None else case.n_devices]
    return modules, inputs, kwargs, devices


def encode_apply_outputs(outputs) -> dict:
    """The results in order (tensors as ("T", dtype, values)) and, apart, whether each requires grad (None for
    non-tensors)."""
    encoded = [("T", str(o.dtype).removeprefix("torch."), o.detach().cpu().numpy()) if isinstance(o, torch.Tensor)
               else ("int", o) if isinstance(o, int) else ("other", type(o).__name__) for o in outputs]
    grads = [bool(o.requires_grad) if isinstance(o, torch.Tensor) else None for o in outputs]
    return {"outputs": encoded, "requires_grad": grads}


def accelerator_stand_in(device: str):
    """On CPU, parallel_apply.py sees torch.accelerator (torch.cuda before 2.8) as no-op stream/device guards."""
    return patched(PARALLEL_APPLY, torch=TorchWithCpuAccelerator()) if on_cpu(device) else contextlib.nullcontext()


def run_parallel_apply(case: ApplyCase, device: str):
    modules, inputs, kwargs, devices = _apply_arguments(case, device)
    try:
        with accelerator_stand_in(device), torch.set_grad_enabled(case.grad_enabled):
            outputs = PARALLEL_APPLY.parallel_apply(modules, inputs, kwargs, devices)
    except Exception as exc:
        return Raised.from_exception(exc)
    return encode_apply_outputs(outputs)


def run_parallel_apply_unpatched(case: ApplyCase, device: str):
    """parallel_apply with torch's own accelerator runtime (what a CPU-only build offers)."""
    modules, inputs, kwargs, devices = _apply_arguments(case, "cpu")
    try:
        return encode_apply_outputs(PARALLEL_APPLY.parallel_apply(modules, inputs, kwargs, devices))
    except Exception as exc:
        return Raised.from_exception(exc)

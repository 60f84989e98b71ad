"""Torch side of DataParallel: an Affine module (Linear with fixed small-integer weights) wrapped and run.

On CPU the multi-device logic of data_parallel.py runs for real against a stand-in (``dp_stand_in``): it is
told it sees ``visible`` CUDA devices with the given properties (``_get_available_device_type``,
``_get_all_device_indices``, ``_get_devices_properties``), every device it names is the CPU (its
``torch.device``), and the transports of scatter/gather, replicate and parallel_apply are the area's stand-ins.
"""
from __future__ import annotations

import contextlib
import types
import warnings

import numpy as np
import torch

from conform.outcome import Raised
from suite.parallel.cases import DPCase, FallbackCase, ImbalanceCase, affine_input, affine_params, loss_weights
from suite.parallel.torch_side.common import (DATA_PARALLEL, encode, on_cpu, patched, replica_device, target_indices,
                                              transport)
from suite.parallel.torch_side.parallel_apply import accelerator_stand_in
from suite.parallel.torch_side.replicate import broadcast_stand_in


class TorchNamingTheCpu:
    """data_parallel.py's ``torch`` on the stand-in: ``torch.device(kind, index)`` is the CPU (CPU tensors report
    device "cpu", without index); everything else is torch's."""

    @staticmethod
    def device(kind, index=None):
        return torch.device("cpu")

    def __getattr__(self, name):
        return getattr(torch, name)


def device_properties(ids, memory, cores) -> dict:
    """Stood-in properties by device id (only what _check_balance reads)."""
    return {i: types.SimpleNamespace(total_memory=m, multi_processor_count=c) for i, m, c in zip(ids, memory, cores)}


@contextlib.contextmanager
def dp_stand_in(device: str, visible: int, props: dict | None = None):
    """On CPU: DataParallel and data_parallel see ``visible`` CUDA devices (equal properties unless ``props``)."""
    if not on_cpu(device):
        yield
        return
    props = props or device_properties(range(visible), [16] * visible, [80] * visible)
    with contextlib.ExitStack() as stack:
        stack.enter_context(patched(DATA_PARALLEL, _get_available_device_type=lambda: "cuda",
                                    _get_all_device_indices=lambda: list(range(visible)),
                                    _get_devices_properties=lambda ids: [props[i] for i in ids],
                                    torch=TorchNamingTheCpu()))
        for context in (transport(device), broadcast_stand_in(device), accelerator_stand_in(device)):
            stack.enter_context(context)
        yield


def stood_in_kind(device: str) -> str:
    """The device type DataParallel believes it drives: the stand-in's "cuda" on CPU, else the device's."""
    return "cuda" if on_cpu(device) else torch.device(device).type

class Affine(torch.nn.Module):
    """Linear(features, 3) with fixed small-integer weights; optional shift kwarg, tag kwarg (dict output),
    and a BatchNorm1d(3) after it."""

    def __init__(self, features: int, norm: bool = False, reduce: bool = False):
        super().__init__()
        weight, bias = affine_params(features)
        self.linear = torch.nn.Linear(features, 3)
        with torch.no_grad():
            self.linear.weight.copy_(torch.from_numpy(weight))
            self.linear.bias.copy_(torch.from_numpy(bias))
        self.norm = torch.nn.BatchNorm1d(3) if norm else None
        self.reduce = reduce

    def forward(self, x, shift=0.0, tag=None):
        y = self.linear(x) + shift
        if self.norm is not None:
            self.norm(y)  # only for its in-place running-stat update
        if self.reduce:
            return y.sum()
        return y if tag is None else {"y": y, "tag": tag}


class Const(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c = torch.nn.Parameter(torch.tensor([1.0, 2.0, 3.0]))

    def forward(self):
        return self.c * 2


def affine_tensor(batch: int, features: int, seed: int, device) -> torch.Tensor:
    return torch.from_numpy(affine_input(batch, features, seed)).float().to(device)


def run_fallback(case: FallbackCase, device: str) -> dict:
    module = Affine(case.features)
    kwargs = {}
    if case.device_ids is not None:
        kwargs["device_ids"] = list(case.device_ids)
    if case.output_device is not None:
        kwargs["output_device"] = case.output_device
    try:
        dp = torch.nn.DataParallel(module, dim=case.dim, **kwargs)
        x = affine_tensor(case.batch, case.features, 0, "cpu")
        out = dp(x, shift=2.0) if case.with_kwarg else dp(x)
    except Exception as exc:
        return {"device_ids": Raised.from_exception(exc), "output": None, "module_is_wrapped": None}
    return {"device_ids": list(dp.device_ids), "output": out.detach().numpy(), "module_is_wrapped": dp.module is module}


def run_dp_defaults(case: DPCase, device: str) -> dict:
    kind = stood_in_kind(device)
    with dp_stand_in(device, case.n_replicas):
        plain = torch.nn.DataParallel(Affine(case.features))
        explicit = torch.nn.DataParallel(Affine(case.features), device_ids=[torch.device(kind, 0)],
                                         output_device=torch.device(kind, 0))
    return {"device_ids": list(plain.device_ids), "output_device": plain.output_device,
            "explicit": [list(explicit.device_ids), explicit.output_device]}


def run_dp_single(case: DPCase, device: str) -> dict:
    index = target_indices(device, 1)[0]
    module = Affine(case.features)
    with dp_stand_in(device, 1):
        dp = torch.nn.DataParallel(module, device_ids=[index])
        moved = module.linear.weight.device == replica_device(device, index)
        out = dp(affine_tensor(case.batch, case.features, case.seed, replica_device(device, index)), tag="chunk")
    return {"moved": moved, "output": encode(out, set())}


def param_device_names(device: str, case: DPCase) -> tuple[str, str]:
    """(device_ids[0] as DataParallel names it, the device the module is left on): on an accelerator the module
    stays on the CPU; on the CPU stand-in, where every device is the CPU, it goes to the meta device."""
    if on_cpu(device):
        return "cpu", "meta"
    return str(replica_device(device, target_indices(device, case.n_replicas)[0])), "cpu"


def _raised(call) -> object:
    try:
        call()
    except Exception as exc:
        return Raised.from_exception(exc)
    return "no error"


def run_dp_param_device(case: DPCase, device: str) -> dict:
    """DataParallel.forward and the functional data_parallel, each with the module left off device_ids[0]."""
    targets = target_indices(device, case.n_replicas)
    _, elsewhere = param_device_names(device, case)
    module = Affine(case.features).to(elsewhere)
    x = affine_tensor(case.batch, case.features, case.seed, replica_device(device, targets[0]))
    with dp_stand_in(device, case.n_replicas):
        dp = torch.nn.DataParallel(module, device_ids=targets)
        return {"module": _raised(lambda: dp(x)),
                "functional": _raised(lambda: torch.nn.parallel.data_parallel(module, x, device_ids=targets))}


def _dp(case: DPCase, device: str, module: torch.nn.Module):
    targets = target_indices(device, case.n_replicas)
    module.to(replica_device(device, targets[0]))
    return torch.nn.DataParallel(module, device_ids=targets), replica_device(device, targets[0])


def _forward_backward(module: torch.nn.Module, call, case: DPCase) -> dict:
    try:
        y = call()
        (y * torch.from_numpy(loss_weights(case.batch)).float().to(y.device)).sum().backward()
    except Exception as exc:
        return {"output": Raised.from_exception(exc), "weight_grad": None, "bias_grad": None}
    return {"output": y.detach().cpu().numpy(), "weight_grad": module.linear.weight.grad.cpu().numpy(),
            "bias_grad": module.linear.bias.grad.cpu().numpy()}


def run_dp_forward_backward(case: DPCase, device: str) -> dict:
    module = Affine(case.features)
    with dp_stand_in(device, case.n_replicas):
        dp, first = _dp(case, device, module)
        return _forward_backward(module, lambda: dp(affine_tensor(case.batch, case.features, case.seed, first)), case)


def run_dp_functional(case: DPCase, device: str) -> dict:
    """torch.nn.parallel.data_parallel(module, x, device_ids) forward and backward, and a module without inputs
    (inputs=None, device_ids left to default)."""
    module = Affine(case.features)
    targets = target_indices(device, case.n_replicas)
    first = replica_device(device, targets[0])
    module.to(first)
    with dp_stand_in(device, case.n_replicas):
        outcome = _forward_backward(module, lambda: torch.nn.parallel.data_parallel(
            module, affine_tensor(case.batch, case.features, case.seed, first), device_ids=targets), case)
        try:  # device_ids left to default: every visible device, the first of which holds the module
            const = Const().to(replica_device(device, 0))
            no_inputs = torch.nn.parallel.data_parallel(const, None).detach().cpu().numpy()
        except Exception as exc:
            no_inputs = Raised.from_exception(exc)
    return {**outcome, "no_inputs": no_inputs}


def run_dp_functional_cpu_build(case: DPCase, device: str):
    """The functional data_parallel with torch's own device discovery (what a build without accelerator offers)."""
    return _raised(lambda: torch.nn.parallel.data_parallel(
        Affine(case.features), affine_tensor(case.batch, case.features, case.seed, "cpu")))


def run_dp_imbalance(case: ImbalanceCase, device: str) -> list:
    """DataParallel construction over stood-in device properties: the imbalance warnings, whitespace folded."""
    props = device_properties(case.device_ids, case.memory, case.cores)
    with dp_stand_in("cpu", max(case.device_ids) + 1, props), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.nn.DataParallel(Affine(2), device_ids=list(case.device_ids))
    return [(w.category.__name__, " ".join(str(w.message).split())) for w in caught if "imbalance" in str(w.message)]


def run_dp_scalar(case: DPCase, device: str):
    module = Affine(case.features, reduce=True)
    try:
        with dp_stand_in(device, case.n_replicas):
            dp, first = _dp(case, device, module)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return dp(affine_tensor(case.batch, case.features, case.seed, first)).detach().cpu().numpy()
    except Exception as exc:
        return Raised.from_exception(exc)


def run_dp_buffer(case: DPCase, device: str):
    module = Affine(case.features, norm=True)
    try:
        with dp_stand_in(device, case.n_replicas):
            dp, first = _dp(case, device, module)
            dp(affine_tensor(case.batch, case.features, case.seed, first))
    except Exception as exc:
        return Raised.from_exception(exc)
    return module.norm.running_mean.detach().cpu().numpy().astype(np.float64)


def run_dp_no_inputs(case: DPCase, device: str):
    module = Const()
    try:
        with dp_stand_in(device, case.n_replicas):
            dp, _ = _dp(case, device, module)
            return dp().detach().cpu().numpy()
    except Exception as exc:
        return Raised.from_exception(exc)

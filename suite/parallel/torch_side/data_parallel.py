"""Torch side of DataParallel: an Affine module (Linear with fixed small-integer weights) wrapped and run."""
from __future__ import annotations

import warnings

import numpy as np
import torch

from conform.outcome import Raised
from suite.parallel.cases import DPCase, FallbackCase, affine_input, affine_params, loss_weights
from suite.parallel.torch_side.common import encode, replica_device, target_indices

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
    dev = torch.device(device)
    plain = torch.nn.DataParallel(Affine(case.features))
    explicit = torch.nn.DataParallel(Affine(case.features), device_ids=[torch.device(dev.type, 0)],
                                     output_device=torch.device(dev.type, 0))
    return {"device_ids": list(plain.device_ids), "output_device": plain.output_device,
            "explicit": [list(explicit.device_ids), explicit.output_device]}


def run_dp_single(case: DPCase, device: str) -> dict:
    index = target_indices(device, 1)[0]
    module = Affine(case.features)
    dp = torch.nn.DataParallel(module, device_ids=[index])
    moved = module.linear.weight.device == replica_device(device, index)
    out = dp(affine_tensor(case.batch, case.features, case.seed, replica_device(device, index)), tag="chunk")
    return {"moved": moved, "output": encode(out, set())}


def run_dp_param_device(case: DPCase, device: str):
    targets = target_indices(device, case.n_replicas)
    dp = torch.nn.DataParallel(Affine(case.features), device_ids=targets)
    try:
        dp(affine_tensor(case.batch, case.features, case.seed, replica_device(device, targets[0])))
    except Exception as exc:
        return Raised.from_exception(exc)
    return "no error"


def _dp(case: DPCase, device: str, module: torch.nn.Module):
    targets = target_indices(device, case.n_replicas)
    module.to(replica_device(device, targets[0]))
    return torch.nn.DataParallel(module, device_ids=targets), replica_device(device, targets[0])


def run_dp_forward_backward(case: DPCase, device: str) -> dict:
    module = Affine(case.features)
    try:
        dp, first = _dp(case, device, module)
        y = dp(affine_tensor(case.batch, case.features, case.seed, first))
        (y * torch.from_numpy(loss_weights(case.batch)).float().to(y.device)).sum().backward()
    except Exception as exc:
        return {"output": Raised.from_exception(exc), "weight_grad": None, "bias_grad": None}
    return {"output": y.detach().cpu().numpy(), "weight_grad": module.linear.weight.grad.cpu().numpy(),
            "bias_grad": module.linear.bias.grad.cpu().numpy()}


def run_dp_scalar(case: DPCase, device: str):
    module = Affine(case.features, reduce=True)
    try:
        dp, first = _dp(case, device, module)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dp(affine_tensor(case.batch, case.features, case.seed, first)).detach().cpu().numpy()
    except Exception as exc:
        return Raised.from_exception(exc)


def run_dp_buffer(case: DPCase, device: str):
    module = Affine(case.features, norm=True)
    try:
        dp, first = _dp(case, device, module)
        dp(affine_tensor(case.batch, case.features, case.seed, first))
    except Exception as exc:
        return Raised.from_exception(exc)
    return module.norm.running_mean.detach().cpu().numpy().astype(np.float64)


def run_dp_no_inputs(case: DPCase, device: str):
    module = Const()
    try:
        dp, _ = _dp(case, device, module)
        return dp().detach().cpu().numpy()
    except Exception as exc:
        return Raised.from_exception(exc)

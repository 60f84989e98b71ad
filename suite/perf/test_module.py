"""nn.Module hot paths: ``__call__`` with and without hooks, ``state_dict`` / ``load_state_dict`` of a
model with 1,000 tensors, ``named_parameters`` of a deep tree.

``TORCHCONFORM_BENCH_INJECT_SLEEP_S`` adds a sleep to the hook benchmark's
forward hook: it demonstrates that ``torchconform bench --compare`` flags a
(large, absolute) slowdown; ``TORCHCONFORM_BENCH_INJECT_SLOWDOWN`` (conftest)
is the relative one that the interleaved comparison is measured with.
"""
from __future__ import annotations

import os
import time

import pytest
import torch
from torch import nn

INJECT_SLEEP_S = float(os.environ.get("TORCHCONFORM_BENCH_INJECT_SLEEP_S", "0") or 0)


def _pre_hook(module, args):
    return None


def _hook(module, args, output):
    if INJECT_SLEEP_S:
        time.sleep(INJECT_SLEEP_S)
    return None


@pytest.mark.parametrize("hooks", [False, True], ids=["no_hooks", "hooks"])
@pytest.mark.benchmark(group="module")
def test_module_call(benchmark, hooks):
    """Module.__call__ overhead: a tiny Linear, with and without a forward pre-hook and hook."""
    torch.manual_seed(0)
    m = nn.Linear(8, 8)
    x = torch.randn(2, 8)
    if hooks:
        m.register_forward_pre_hook(_pre_hook)
        m.register_forward_hook(_hook)

    def call():
        with torch.no_grad():
            return m(x)

    benchmark(call)


def thousand_tensors() -> nn.Module:
    """500 small Linears: 1,000 tensors (weight and bias each), one level of nesting."""
    torch.manual_seed(0)
    return nn.ModuleList(nn.Linear(4, 4) for _ in range(500))


@pytest.mark.benchmark(group="module")
def test_state_dict_1000_tensors(benchmark):
    model = thousand_tensors()
    assert len(model.state_dict()) == 1000
    benchmark(model.state_dict)


@pytest.mark.benchmark(group="module")
def test_load_state_dict_1000_tensors(benchmark):
    source, target = thousand_tensors(), thousand_tensors()
    state = source.state_dict()
    benchmark(target.load_state_dict, state)


def deep_tree(depth: int = 64) -> nn.Module:
    """A chain of ``depth`` nested modules, each with a parameter and a sibling Linear: recursion depth
    is what named_modules / named_parameters pay for (torch/nn/modules/module.py: _named_members)."""
    inner: nn.Module = nn.Linear(2, 2)
    for _ in range(depth):
        node = nn.Module()
        node.child = inner
        node.side = nn.Linear(2, 2)
        node.scale = nn.Parameter(torch.ones(1))
        inner = node
    return inner


@pytest.mark.benchmark(group="module")
def test_named_parameters_deep_tree(benchmark):
    model = deep_tree()
    assert len(list(model.named_parameters())) == 64 * 3 + 2

    def walk():
        return list(model.named_parameters())

    benchmark(walk)

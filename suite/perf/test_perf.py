"""Benchmarks of the torch build under test (not of our reference), each small.

Times are per call of the benchmarked function.  CPU only: the performance
records compare builds on one machine.  ``TORCHCONFORM_BENCH_INJECT_SLEEP_S``
adds a sleep to the hook benchmark's forward hook: it exists only to
demonstrate and test that ``torchconform bench --compare`` flags a slowdown.
"""
from __future__ import annotations

import os
import time

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

INJECT_SLEEP_S = float(os.environ.get("TORCHCONFORM_BENCH_INJECT_SLEEP_S", "0") or 0)


@pytest.fixture(autouse=True)
def _single_thread():
    """One intra-op thread: the machine is shared, and builds are compared on equal terms."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


CONTROL = "test_machine_control"


@pytest.mark.benchmark(group="control")
def test_machine_control(benchmark):
    """Pure Python, no torch: the same work on every build.  Its ratio between two runs measures how much
    the machine itself sped up or slowed down between them; the comparison widens the noise by it."""

    def work():
        return sum(i * i for i in range(2000))

    benchmark(work)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.benchmark(group="data")
def test_dataloader_epoch(benchmark, workers):
    """One epoch of 32 batches of 64 rows (persistent workers: throughput, not start-up)."""
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(2048, 16, generator=g), torch.arange(2048))
    loader = DataLoader(data, batch_size=64, shuffle=True, num_workers=workers, persistent_workers=workers > 0,
                        generator=torch.Generator().manual_seed(1))

    def epoch():
        return sum(int(y[0]) for _, y in loader)

    try:
        benchmark(epoch)
    finally:
        iterator = getattr(loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()  # persistent workers: stop them now, not at interpreter exit
        del loader


@pytest.mark.benchmark(group="norm")
def test_batchnorm2d_forward_backward(benchmark):
    bn = nn.BatchNorm2d(16)
    x = torch.randn(8, 16, 16, 16, generator=torch.Generator().manual_seed(0), requires_grad=True)

    def step():
        bn(x).sum().backward()

    benchmark(step)


def _mha():
    torch.manual_seed(0)
    return nn.MultiheadAttention(64, 4, batch_first=True), torch.randn(4, 32, 64)


@pytest.mark.benchmark(group="attention")
def test_mha_fast_path(benchmark):
    """Eval mode, no grad, self-attention, need_weights=False: the native fused path
    (torch/nn/modules/activation.py: MultiheadAttention.forward, why_not_fast_path is empty)."""
    mha, x = _mha()
    mha.eval()

    def call():
        with torch.inference_mode():
            return mha(x, x, x, need_weights=False)

    benchmark(call)


@pytest.mark.benchmark(group="attention")
def test_mha_slow_path(benchmark):
    """Training mode with autograd on and averaged weights requested: the Python path."""
    mha, x = _mha()
    mha.train()
    mha.dropout = 0.0

    def call():
        return mha(x, x, x, need_weights=True)

    benchmark(call)


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


@pytest.mark.benchmark(group="module")
def test_state_dict_round_trip(benchmark):
    torch.manual_seed(0)

    def make():
        return nn.Sequential(*[nn.Sequential(nn.Linear(64, 64), nn.BatchNorm1d(64)) for _ in range(4)])

    source, target = make(), make()

    def round_trip():
        return target.load_state_dict(source.state_dict())

    benchmark(round_trip)

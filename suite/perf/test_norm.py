"""Normalization hot paths: BatchNorm2d, GroupNorm and LayerNorm forward + backward, and a SyncBatchNorm
step over 2 gloo ranks (CUDA only: its kernels have no CPU implementation)."""
from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist
from torch import nn

# Inputs of 8-16k floats: below glibc's 128 KiB mmap threshold, so each call's temporaries come from the
# heap; larger ones made times bimodal between processes (mmap'd or not), which no round count averages out.
NORMS = {
    "batch_norm2d": lambda: (nn.BatchNorm2d(16), (8, 16, 8, 8)),
    "group_norm": lambda: (nn.GroupNorm(4, 16), (8, 16, 8, 8)),
    "layer_norm": lambda: (nn.LayerNorm(64), (16, 16, 64)),
}


@pytest.mark.parametrize("kind", list(NORMS))
@pytest.mark.benchmark(group="norm")
def test_norm_forward_backward(benchmark, kind):
    torch.manual_seed(0)
    norm, shape = NORMS[kind]()
    x = torch.randn(*shape, requires_grad=True)

    def step():
        norm(x).sum().backward()

    benchmark(step)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _syncbn_step(bn: nn.Module, x: torch.Tensor, flag: torch.Tensor) -> bool:
    """One lockstep step: both ranks first agree whether to go on (rank 0 decides), then run
    SyncBatchNorm forward + backward (two all-gathers and an all-reduce between the ranks)."""
    dist.all_reduce(flag)
    if not int(flag):
        return False
    bn(x).sum().backward()
    return True


def _syncbn_model(device: str):
    torch.manual_seed(0)
    bn = nn.SyncBatchNorm(16).to(device)
    x = torch.randn(8, 16, 8, 8, device=device, requires_grad=True)
    return bn, x


def _syncbn_rank1(port: int, device: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=1, world_size=2)
    try:
        bn, x = _syncbn_model(device)
        while _syncbn_step(bn, x, torch.zeros(1)):
            pass
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(180)
@pytest.mark.benchmark(group="norm")
def test_syncbatchnorm_step_2_ranks(benchmark):
    if not torch.cuda.is_available():
        pytest.skip("SyncBatchNorm needs CUDA: its kernels have no CPU implementation "
                    "(torch/nn/modules/batchnorm.py: SyncBatchNorm.forward requires GPU input in training)")
    device = f"cuda:{min(1, torch.cuda.device_count() - 1)}"  # rank 1's GPU; rank 0 uses cuda:0
    port = _free_port()
    helper = torch.multiprocessing.get_context("spawn").Process(target=_syncbn_rank1, args=(port, device))
    helper.start()
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=2)
    try:
        bn, x = _syncbn_model("cuda:0")

        def step():
            _syncbn_step(bn, x, torch.ones(1))
            torch.cuda.synchronize()

        benchmark(step)
        dist.all_reduce(torch.zeros(1))  # tells rank 1 to stop
    finally:
        dist.destroy_process_group()
        helper.join(timeout=60)
        if helper.is_alive():
            helper.kill()

"""torch.nn.parallel hot path: scatter and gather of a nested structure over 2 targets.

The transport (torch.nn.parallel._functions.Scatter / Gather) needs CUDA.  On a
machine without 2 GPUs the benchmark runs torch's own recursion
(scatter_gather.scatter_kwargs / gather: the walk over tuples, lists, dicts)
with a CPU stand-in transport (chunk + clone, cat), and says so in its id
(``cpu_stand_in``); it times the structure handling, not the copies.
"""
from __future__ import annotations

import pytest
import torch
from torch.nn.parallel import scatter_gather


class CpuScatter:
    @staticmethod
    def apply(target_gpus, chunk_sizes, dim, tensor):
        return tuple(piece.clone() for piece in tensor.chunk(len(target_gpus), dim))


class CpuGather:
    @staticmethod
    def apply(target_device, dim, *tensors):
        return torch.cat(tensors, dim)


def nested_inputs(device: str):
    g = torch.Generator().manual_seed(0)

    def t(*shape):
        return torch.randn(*shape, generator=g).to(device)

    return ((t(8, 4), [t(8, 2), (t(8, 3), 5)], {"a": t(8, 1), "b": {"c": t(8, 6)}}),
            {"mask": t(8, 4), "extra": [t(8, 2), "tag"]})


REAL = torch.cuda.is_available() and torch.cuda.device_count() >= 2


@pytest.mark.parametrize("transport", ["cuda" if REAL else "cpu_stand_in"])
@pytest.mark.benchmark(group="parallel")
def test_scatter_gather_nested(benchmark, transport, monkeypatch):
    if transport == "cpu_stand_in":
        monkeypatch.setattr(scatter_gather, "Scatter", CpuScatter)
        monkeypatch.setattr(scatter_gather, "Gather", CpuGather)
        targets, out_device = [0, 1], -1
    else:
        targets, out_device = [0, 1], 0
    args, kwargs = nested_inputs("cuda:0" if transport == "cuda" else "cpu")

    def round_trip():
        inputs, kw = scatter_gather.scatter_kwargs(args, kwargs, targets)
        # gather takes tensors, sequences and dicts only: the tensor parts of each replica's inputs
        out = scatter_gather.gather([(i[0], i[1][0], i[2], k["mask"]) for i, k in zip(inputs, kw)], out_device)
        if transport == "cuda":
            torch.cuda.synchronize()
        return out

    out = round_trip()
    assert len(out) == 4 and out[0].shape == (8, 4) and out[2]["b"]["c"].shape == (8, 6)
    benchmark(round_trip)

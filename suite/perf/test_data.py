"""torch.utils.data hot paths: a DataLoader epoch with 0, 2 and 4 workers (fork and spawn), and
``default_collate`` of a nested batch."""
from __future__ import annotations

import multiprocessing

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset, default_collate

LOADERS = [(0, None), (2, "fork"), (4, "fork"), (2, "spawn"), (4, "spawn")]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("workers,start", LOADERS, ids=[f"{w}-{s}" if s else "0" for w, s in LOADERS])
@pytest.mark.benchmark(group="data")
def test_dataloader_epoch(benchmark, workers, start):
    """One epoch of 32 batches of 64 rows.  Persistent workers, started before timing: throughput, not
    start-up (a spawn worker imports torch, seconds on a small machine)."""
    if start and start not in multiprocessing.get_all_start_methods():
        pytest.skip(f"start method {start!r} is not available on this platform")
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(2048, 16, generator=g), torch.arange(2048))
    loader = DataLoader(data, batch_size=64, shuffle=True, num_workers=workers, persistent_workers=workers > 0,
                        multiprocessing_context=start, generator=torch.Generator().manual_seed(1))

    def epoch():
        return sum(int(y[0]) for _, y in loader)

    try:
        epoch()  # start the workers outside the timing
        benchmark(epoch)
    finally:
        iterator = getattr(loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()  # persistent workers: stop them now, not at interpreter exit
        del loader


def nested_batch(size: int = 64) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    return [{"x": torch.randn(16, generator=g), "label": i % 10,
             "pair": (torch.randn(3, generator=g), float(i)),
             "meta": {"id": i, "mask": torch.ones(4, dtype=torch.bool)}} for i in range(size)]


@pytest.mark.benchmark(group="data")
def test_default_collate_nested(benchmark):
    """``default_collate`` of 64 samples, each a dict of tensors, numbers, a tuple and a nested dict: the
    recursion over the structure (torch/utils/data/_utils/collate.py: collate)."""
    batch = nested_batch()
    out = default_collate(batch)
    assert out["x"].shape == (64, 16) and out["meta"]["mask"].shape == (64, 4)
    benchmark(default_collate, batch)

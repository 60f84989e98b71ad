"""Picklable probe datasets, worker functions and fault injection for the loader runners, and the
helpers that turn what a loader yields into plain data."""
from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from suite.data.torch_side.rng import u64


class PlainMap(Dataset):
    """A map-style dataset of ints 0..n-1."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return i


class PlainIterable(IterableDataset):
    """An iterable dataset of ints 0..count-1 reporting ``declared`` as its __len__."""

    def __init__(self, count: int, declared: int | None = None):
        self.count, self.declared = count, declared

    def __iter__(self):
        return iter(range(self.count))

    def __len__(self):
        if self.declared is None:
            raise TypeError("PlainIterable has no length")
        return self.declared


def worker_draws():
    """What a sample sees of its process: worker id, torch.initial_seed(), one draw each from
    torch's global generator, Python's ``random`` and numpy's legacy global state."""
    info = get_worker_info()
    return (info.id if info is not None else -1, torch.initial_seed(), u64(None),
            random.getrandbits(32), int(np.random.randint(0, 2**31)))


class MapProbe(Dataset):
    """Map-style probe: sample i is (i, worker id, initial seed, torch draw, random draw, numpy draw,
    init token).  ``fault`` = (index, kind) makes fetching that index fail (kind "slow" only delays it)."""

    def __init__(self, n: int, fault: tuple = (), counter=None):
        self.n, self.fault, self.counter = n, fault, counter
        self.token = -1  # set by init_token_fn inside a worker
        self.init_fail = -1  # the worker whose failing_init_fn raises

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if self.counter is not None:
            with self.counter.get_lock():
                self.counter.value += 1
        if self.fault and i == self.fault[0]:
            inject(self.fault[1], i)
        return (i,) + worker_draws() + (self.token,)


def inject(kind: str, i: int):
    """The fault of a Case, raised (or slept) while fetching sample ``i`` in a worker."""
    if kind == "KeyError":
        raise KeyError(f"probe {i}")
    if kind == "ValueError":
        raise ValueError(f"probe failure at {i}")
    if kind == "ZeroDivisionError":
        raise ZeroDivisionError(f"probe failure at {i}")
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(5)
    if kind == "hang":
        time.sleep(1.5)
    if kind == "slow":  # delays this sample's batch (and its worker) without failing
        time.sleep(0.3)


def init_token_fn(worker_id: int):
    """worker_init_fn: consumes one torch draw in the worker and stores it on its dataset copy."""
    get_worker_info().dataset.token = u64(None) ^ worker_id


def failing_init_fn(worker_id: int):
    """worker_init_fn that raises in the worker named by the dataset's ``init_fail``."""
    if worker_id == get_worker_info().dataset.init_fail:
        raise ValueError(f"init failed in worker {worker_id}")


class IterProbe(IterableDataset):
    """Iterable probe.  Without ``shard`` every worker iterates a replica of length
    ``lengths[worker id]`` (``lengths[0]`` in the main process); with ``shard`` the
    replicas split range(lengths[0]) by worker id.  Items are (k, worker id, info)."""

    def __init__(self, lengths: tuple, shard: bool = False):
        self.lengths, self.shard = lengths, shard

    def __iter__(self):
        info = get_worker_info()
        wid = info.id if info is not None else -1
        fields = (info.num_workers, info.seed, type(info.dataset).__name__, info.dataset is self) if info else None
        if self.shard:
            items = range(self.lengths[0])[wid::info.num_workers] if info else range(self.lengths[0])
        else:
            items = range(self.lengths[max(wid, 0)])
        for k in items:
            yield (k, wid, fields)


def list_collate(batch):
    """Custom collate: the batch as a list, plus the worker that collated it."""
    info = get_worker_info()
    return {"samples": list(batch), "collated_by": info.id if info is not None else -1}


def shutdown(it) -> None:
    """Stop a multi-worker iterator's workers (a single-process iterator has none)."""
    stop = getattr(it, "_shutdown_workers", None)
    if stop is not None:
        stop()


def plain(obj):
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, (list, tuple)):
        return [plain(x) for x in obj]
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    return obj


def leftover_workers(wait: float = 5.0) -> int:
    """DataLoader worker processes of this process still alive after shutdown (bounded wait for them
    to be reaped); other children (other areas' process groups) are not counted."""
    deadline = time.monotonic() + wait
    while True:
        alive = [p for p in multiprocessing.active_children()
                 if getattr(p, "_target", None) is torch.utils.data._utils.worker._worker_loop]
        if not alive or time.monotonic() > deadline:
            return len(alive)
        time.sleep(0.05)

"""Picklable probe datasets, worker functions and fault injection for the loader runners, and the
helpers that turn what a loader yields into plain data."""
from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import random
import signal
import time

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from suite.data.torch_side.rng import u64


# A forkserver worker forks from the server process, which imports these once (when it first starts, once
# per main process), so a worker does not import torch afresh.  What the workers run and observe is the
# same: _worker_loop seeds every generator itself, and the dataset, functions and queues still cross by
# pickling.  (Without it every forkserver worker imports torch: seconds each on a loaded 2-core machine.)
FORKSERVER_PRELOAD = ["__main__", "torch", "numpy", "suite.data.torch_side.probes"]


def worker_context(start_method: str):
    """DataLoader's multiprocessing_context for a Case's start method ("default": None, torch's default)."""
    if start_method == "forkserver":
        multiprocessing.get_context("forkserver").set_forkserver_preload(FORKSERVER_PRELOAD)
    return None if start_method == "default" else start_method


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
            if self.fault[1] == "unloadable":
                return LoadFails()
            inject(self.fault[1], i)
        return (i,) + worker_draws() + (self.token,)


def refuse_load(message: str):
    raise ValueError(message)


class LoadFails:
    """A sample that pickles in its worker but cannot be unpickled in the main process."""

    def __reduce__(self):
        return refuse_load, ("probe sample cannot be loaded in the main process",)


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
    if kind == "stuck":  # outlasts the shutdown's graceful join (MP_STATUS_CHECK_INTERVAL, 5 s) and the stray check
        time.sleep(30)
    if kind == "slow":  # delays this sample's batch (and its worker) without failing
        time.sleep(0.3)


def init_token_fn(worker_id: int):
    """worker_init_fn: consumes one torch draw in the worker and stores it on its dataset copy (a MapDataPipe
    reaches the worker in the DataLoader's serialization wrapper, ``_datapipe``, around our SequenceWrapper,
    ``sequence``: the token goes on the probe they wrap)."""
    dataset = get_worker_info().dataset
    dataset = getattr(getattr(dataset, "_datapipe", dataset), "sequence", dataset)
    dataset.token = u64(None) ^ worker_id


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


def tag_item(k: int) -> tuple:
    """The map step of the DataPipe probe: the item and the worker that produced it (no worker info fields:
    a DataPipe's seeds are not the subject of its rule)."""
    info = get_worker_info()
    return (k, info.id if info is not None else -1, None)


def datapipe_probe(length: int, shuffler: bool = False):
    """IterableWrapper(range(length)).sharding_filter().map(tag_item): an IterDataPipe the DataLoader shards;
    with ``shuffler``, .shuffle() at its end (the Shuffler DataLoader(shuffle=True) sets)."""
    from torch.utils.data.datapipes.iter import IterableWrapper

    dp = IterableWrapper(range(length)).sharding_filter().map(tag_item)
    return dp.shuffle() if shuffler else dp


@contextlib.contextmanager
def one_rank_group(active: bool):
    """An initialized gloo process group of world size 1 (in-process store) while the block runs, if
    ``active``; every group is destroyed after it (also those the DataLoader made)."""
    if not active:
        yield
        return
    import torch.distributed as dist

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def map_datapipe_probe(probe):
    """A MapDataPipe over a map-style probe (SequenceWrapper): the DataLoader treats it as a map-style
    dataset, with its DataPipe wrapping and sharding hooks on the way."""
    from torch.utils.data.datapipes.map import SequenceWrapper

    return SequenceWrapper(probe, deepcopy=False)


def list_collate(batch):
    """Custom collate: the batch as a list, plus the worker that collated it."""
    info = get_worker_info()
    return {"samples": list(batch), "collated_by": info.id if info is not None else -1}


# A collate_fn that pickle cannot name (a lambda): a fork worker inherits it, while spawn and forkserver
# workers receive the DataLoader's functions by pickling.
unpicklable_collate = lambda batch: list_collate(batch)  # noqa: E731


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


SHM_DIR = "/dev/shm"


def shm_entries() -> set[str]:
    """The names in /dev/shm now (an empty set where there is no such directory)."""
    try:
        return set(os.listdir(SHM_DIR))
    except OSError:
        return set()


def _held_here() -> set[int]:
    """The inodes of /dev/shm files this process still maps or holds open (a multiprocessing semaphore is
    mapped under a temporary name and then linked as sem.mp-..., and names carry no pid: the inode says
    whose an entry is)."""
    inodes = set()
    try:
        with open("/proc/self/maps") as maps:
            inodes.update(int(line.split()[4]) for line in maps if SHM_DIR + "/" in line)
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith(SHM_DIR + "/"):
                inodes.add(os.fstat(int(fd)).st_ino)
        except OSError:
            continue
    return inodes


def _inode(name: str):
    try:
        return os.stat(os.path.join(SHM_DIR, name)).st_ino
    except OSError:
        return None


def leaked_shm(before: set[str], pids, wait: float = 2.0) -> list[str]:
    """Shared-memory entries that appeared in /dev/shm since ``before`` and are still there: torch's
    ``torch_<pid>_...`` files of this process or of its workers (``pids``), and any entry this process
    still maps or holds open.  Other processes' entries (other tests on the machine) are not counted.
    Bounded wait for a release in progress; an entry still there is given one full garbage collection
    (the loader and its iterator are released when the run drops them, unless something holds them in a
    reference cycle; a collection costs ~0.5 s, so only then)."""
    ours = tuple(f"torch_{pid}_" for pid in (os.getpid(), *pids) if pid is not None)
    deadline = time.monotonic() + wait
    collected = False
    while True:
        held = _held_here()
        leaked = sorted(n for n in shm_entries() - before if n.startswith(ours) or _inode(n) in held)
        if leaked and not collected:
            gc.collect()
            collected = True
            continue
        if not leaked or time.monotonic() > deadline:
            return leaked
        time.sleep(0.05)


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

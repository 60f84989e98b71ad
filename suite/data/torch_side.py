"""Torch side of the ``data`` area: Cases, picklable probe datasets and runners.

Every ``torch_*`` function recomputes an outcome from a Case alone, using only
torch, numpy and the standard library (the repro writer embeds this module).
Outcomes are plain data: ints, strs, lists, dicts, numpy arrays, ``Raised``.

Multi-worker runners always pass ``multiprocessing_context="fork"`` (the Linux
default up to Python 3.13; 3.14 switched to forkserver, so we name it) and a
DataLoader ``timeout`` so a hung worker turns into an error instead of a hang,
and they shut the iterator down before returning.
"""
from __future__ import annotations

import collections
import gc
import multiprocessing
import numbers
import os
import random
import signal
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import (BatchSampler, ChainDataset, ConcatDataset, DataLoader, Dataset, IterableDataset,
                              RandomSampler, SequentialSampler, StackDataset, Subset, SubsetRandomSampler,
                              TensorDataset, WeightedRandomSampler, get_worker_info, random_split)
from torch.utils.data.distributed import DistributedSampler

from conform.outcome import Raised

LOADER_TIMEOUT = 20.0  # seconds a healthy tiny batch may take under a loaded 2-core machine
HANG_TIMEOUT = 0.5  # the DataLoader timeout of a Case whose fault is "hang" (the sample sleeps 1.5 s)


def raised(exc: BaseException) -> Raised:
    return Raised(type(exc).__name__, str(exc))


def _u64(generator: torch.Generator | None) -> int:
    """One int64 draw, the primitive the DataLoader and RandomSampler use for seeds."""
    return int(torch.empty((), dtype=torch.int64).random_(generator=generator).item())


# ---------------------------------------------------------------- RNG primitives
@dataclass(frozen=True)
class RngCase:
    op: str  # "randperm" | "randint" | "random64" | "multinomial"
    seed: int
    n: int = 1
    size: int = 1
    weights: tuple = ()
    replacement: bool = True


def torch_rng(case: RngCase, device: str):
    g = torch.Generator().manual_seed(case.seed)
    if case.op == "randperm":
        out = torch.randperm(case.n, generator=g).tolist()
    elif case.op == "randint":
        out = torch.randint(case.n, (case.size,), generator=g).tolist()
    elif case.op == "random64":
        out = [_u64(g) for _ in range(case.size)]
    else:
        w = torch.tensor(case.weights, dtype=torch.float64)
        out = torch.multinomial(w, case.size, case.replacement, generator=g).tolist()
    return {"out": out, "next": _u64(g)}


# ---------------------------------------------------------------- samplers
@dataclass(frozen=True)
class SamplerCase:
    kind: str  # sequential | random | subset_random | weighted | batch | distributed
    n: int
    seed: int
    use_generator: bool = True
    replacement: object = False  # bool, or a wrong-typed value for validation cases
    num_samples: object = None  # int, None, or a wrong value for validation cases
    passes: int = 1
    indices: tuple = ()
    weights: tuple = ()
    batch_size: object = 1
    drop_last: object = False
    inner: str = "sequential"  # BatchSampler's inner sampler: sequential | random
    num_replicas: int = 1
    rank: int = 0
    shuffle: bool = False
    dist_seed: int = 0
    epochs: tuple = (0,)


def _make_sampler(case: SamplerCase, g: torch.Generator | None, rank: int | None = None):
    data = range(case.n)
    if case.kind == "sequential":
        return SequentialSampler(data)
    if case.kind == "random":
        return RandomSampler(data, replacement=case.replacement, num_samples=case.num_samples, generator=g)
    if case.kind == "subset_random":
        return SubsetRandomSampler(list(case.indices), generator=g)
    if case.kind == "weighted":
        return WeightedRandomSampler(list(case.weights), case.num_samples, replacement=case.replacement, generator=g)
    if case.kind == "batch":
        inner = RandomSampler(data, generator=g) if case.inner == "random" else SequentialSampler(data)
        return BatchSampler(inner, case.batch_size, case.drop_last)
    if case.kind == "distributed":
        return DistributedSampler(data, num_replicas=case.num_replicas, rank=case.rank if rank is None else rank,
                                  shuffle=case.shuffle, seed=case.dist_seed, drop_last=bool(case.drop_last))
    raise ValueError(case.kind)


def torch_sampler(case: SamplerCase, device: str):
    """{"len", "passes": one list per pass (per epoch for DistributedSampler), "next": the
    stream's next int64 draw after all passes (explicit generator, or the global one)}."""
    torch.manual_seed((case.seed ^ 0x5EED) % 2**63)  # the global stream, seeded identically by the reference
    g = torch.Generator().manual_seed(case.seed) if case.use_generator else None
    try:
        sampler = _make_sampler(case, g)
    except Exception as exc:
        return raised(exc)
    passes = []
    try:
        if case.kind == "distributed":
            for epoch in case.epochs:
                sampler.set_epoch(epoch)
                passes.append(list(sampler))
        else:
            for _ in range(case.passes):
                passes.append(list(sampler))
    except Exception as exc:
        passes.append(raised(exc))
    return {"len": len(sampler), "passes": passes, "next": _u64(g)}


def sampler_len(case: SamplerCase, device: str):
    out = torch_sampler(case, device)
    return out if isinstance(out, Raised) else out["len"]


def sampler_passes(case: SamplerCase, device: str):
    out = torch_sampler(case, device)
    return out if isinstance(out, Raised) else out["passes"]


def sampler_next(case: SamplerCase, device: str):
    out = torch_sampler(case, device)
    return out if isinstance(out, Raised) else out["next"]


def torch_distributed_all_ranks(case: SamplerCase, device: str):
    """Every rank's indices for the first epoch (rank striding and padding, seen together)."""
    out = []
    for rank in range(case.num_replicas):
        sampler = _make_sampler(case, None, rank=rank)
        sampler.set_epoch(case.epochs[0])
        out.append(list(sampler))
    return out


# ---------------------------------------------------------------- DataLoader construction
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


@dataclass(frozen=True)
class LoaderArgsCase:
    iterable: bool
    n: int
    batch_size: object = 1  # int or None
    shuffle: object = None  # None / False / True
    sampler: bool = False
    batch_sampler: bool = False
    drop_last: bool = False
    num_workers: int = 0
    prefetch_factor: object = None
    persistent_workers: bool = False
    timeout: float = 0.0
    declared_len: object = None  # the iterable dataset's __len__ (None: it has none)
    iterate: bool = False  # also create an iterator (reveals iterator-time checks)


def torch_loader_args(case: LoaderArgsCase, device: str):
    ds = PlainIterable(case.n, case.declared_len) if case.iterable else PlainMap(case.n)
    kwargs = dict(batch_size=case.batch_size, shuffle=case.shuffle, drop_last=case.drop_last,
                  num_workers=case.num_workers, prefetch_factor=case.prefetch_factor,
                  persistent_workers=case.persistent_workers, timeout=case.timeout)
    if case.sampler:
        kwargs["sampler"] = SequentialSampler(range(case.n))
    if case.batch_sampler:
        kwargs["batch_sampler"] = BatchSampler(SequentialSampler(range(case.n)), 2, False)
    if case.num_workers:
        kwargs["multiprocessing_context"] = "fork"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the worker-count advice depends on the machine
            loader = DataLoader(ds, **kwargs)
    except Exception as exc:
        return raised(exc)
    out = {"sampler": type(loader.sampler).__name__,
           "batch_sampler": type(loader.batch_sampler).__name__ if loader.batch_sampler is not None else None,
           "batch_size": loader.batch_size, "drop_last": loader.drop_last,
           "collate_fn": loader.collate_fn.__name__, "prefetch_factor": loader.prefetch_factor}
    try:
        out["len"] = len(loader)
    except Exception as exc:
        out["len"] = Raised(type(exc).__name__)
    if case.iterate:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                it = iter(loader)
                out["first"] = _plain(next(it, None))
                _shutdown(it)
        except Exception as exc:
            out["first"] = raised(exc)
    return out


@dataclass(frozen=True)
class LoaderAttrCase:
    num_workers: int
    context: str  # none | a start-method name (valid or not) | spawn_context (a context object) | object (42)
    attr: str  # the attribute assigned (its own value) after construction


def torch_loader_attr(case: LoaderAttrCase, device: str):
    context = {"none": None, "spawn_context": multiprocessing.get_context("spawn"), "object": 42}.get(case.context,
                                                                                                  case.context)
    try:
        loader = DataLoader(PlainMap(4), batch_size=2, num_workers=case.num_workers, multiprocessing_context=context)
    except Exception as exc:
        return {"context": raised(exc)}
    ctx = loader.multiprocessing_context
    # (a context stored unconverted would show as its repr)
    out = {"context": None if ctx is None else getattr(ctx, "get_start_method", lambda: repr(ctx))()}
    try:
        setattr(loader, case.attr, getattr(loader, case.attr))
        out["set"] = "ok"
    except Exception as exc:
        out["set"] = raised(exc)
    return out


def torch_loader_attr_context(case: LoaderAttrCase, device: str):
    return torch_loader_attr(case, device)["context"]


def torch_loader_attr_set(case: LoaderAttrCase, device: str):
    return torch_loader_attr(case, device).get("set")


def torch_iterable_len_warning(case: LoaderArgsCase, device: str):
    """len(loader), then the 1-based batch numbers at which the length warning fires."""
    try:
        loader = DataLoader(PlainIterable(case.n, case.declared_len), batch_size=case.batch_size,
                            drop_last=case.drop_last)
        length = len(loader)
        fired = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for k, _ in enumerate(loader, start=1):
                if any("Length of IterableDataset" in str(w.message) for w in caught):
                    fired.append(k)
                caught.clear()
    except Exception as exc:
        return raised(exc)
    return {"len": length, "warned_at": fired}


# ---------------------------------------------------------------- collation
Pair = collections.namedtuple("Pair", ["x", "y"])


class FrozenMap(Mapping):
    """A read-only Mapping: collate rebuilds it by calling the type on a dict."""

    def __init__(self, data):
        self._data = dict(data)

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)


class Opaque:
    """An element type default_collate does not know."""


def _value(seed: int, i: int, path: str) -> int:
    """A small deterministic int in [-40, 40] for sample i at a spec path (pure Python)."""
    h = seed * 1_000_003 + i * 7919 + sum((k + 1) * ord(c) for k, c in enumerate(path)) * 31
    return h % 81 - 40


def make_sample(spec: tuple, seed: int, i: int, device: str = "cpu", path: str = ""):
    """Build sample ``i`` of a collate Case from its spec (input generation, not under test)."""
    kind = spec[0]
    v = _value(seed, i, path)
    if kind == "int":
        return v
    if kind == "float":
        return v / 4
    if kind == "intfloat":
        return v if i == 0 else v / 4 + 0.125
    if kind == "bool":
        return v % 2 == 0
    if kind == "str":
        return f"s{v}"
    if kind == "bytes":
        return f"b{v}".encode()
    if kind == "none":
        return None
    if kind == "opaque":
        return Opaque()
    if kind == "tensor":
        dtype, shape = spec[1], spec[2]
        count = int(np.prod(shape)) if shape else 1
        vals = np.array([_value(seed, i, f"{path}/{k}") for k in range(count)], dtype=np.float64)
        t = torch.tensor(vals / 4 if dtype.startswith("float") else (vals % 2 == 0 if dtype == "bool" else vals))
        return t.to(getattr(torch, dtype)).reshape(shape).to(device)
    if kind == "sparse":
        return torch.tensor([[0.0, v / 4], [1.0, 0.0]]).to(device).to_sparse()
    if kind == "ndarray":
        dtype, shape = spec[1], spec[2]
        count = int(np.prod(shape)) if shape else 1
        vals = np.array([_value(seed, i, f"{path}/{k}") for k in range(count)])
        if dtype.startswith("U"):
            return vals.astype(dtype).reshape(shape)
        if dtype == "bool":
            return (vals % 2 == 0).reshape(shape)
        if dtype.startswith("uint"):
            vals = vals + 40
        return (vals / 4 if dtype.startswith("float") else vals).astype(dtype).reshape(shape)
    if kind == "npscalar":
        dtype = spec[1]
        if dtype == "bool_":
            return np.bool_(v % 2 == 0)
        return getattr(np, dtype)(v / 4 if dtype.startswith("float") else v)
    if kind == "map":
        mapping = {key: make_sample(sub, seed, i, device, f"{path}.{key}") for key, sub in spec[2]}
        if spec[1] == "OrderedDict":
            return collections.OrderedDict(mapping)
        if spec[1] == "FrozenMap":
            return FrozenMap(mapping)
        return mapping
    if kind == "namedtuple":
        return Pair(make_sample(spec[1], seed, i, device, path + ".x"), make_sample(spec[2], seed, i, device, path + ".y"))
    if kind in ("tuple", "list"):
        items = [make_sample(sub, seed, i, device, f"{path}[{k}]") for k, sub in enumerate(spec[1])]
        return tuple(items) if kind == "tuple" else items
    if kind == "ragged":  # a list whose length depends on the sample
        return [make_sample(spec[1], seed, i, device, f"{path}[{k}]") for k in range(1 + (i % 2))]
    raise ValueError(kind)


def describe(obj):
    """A plain, tagged picture of a collate/convert result (type, dtype and device included)."""
    if isinstance(obj, torch.Tensor):
        return ("Tensor", str(obj.dtype).replace("torch.", ""), obj.device.type,
                obj.detach().cpu().to(torch.float64 if obj.dtype.is_floating_point else torch.int64).numpy())
    if isinstance(obj, np.ndarray):
        return ("ndarray", str(obj.dtype), obj.tolist())
    if isinstance(obj, np.generic):
        return ("npscalar", type(obj).__name__, obj.item())
    if isinstance(obj, Mapping):
        return ("map", type(obj).__name__, {k: describe(v) for k, v in obj.items()})
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return ("namedtuple", type(obj).__name__, [describe(v) for v in obj])
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, [describe(v) for v in obj])
    if isinstance(obj, (bool, int, float, str, bytes)) or obj is None:
        return (type(obj).__name__, obj)
    return ("object", type(obj).__name__)


@dataclass(frozen=True)
class CollateCase:
    spec: tuple
    batch: int
    seed: int
    mode: str = "collate"  # collate | custom_map | convert (DataLoader batch_size=None) | worker (in a worker)


def make_batch(case: CollateCase, device: str):
    return [make_sample(case.spec, case.seed, i, device) for i in range(case.batch)]


def count_collate(batch, *, collate_fn_map=None):
    """A custom collate function: reports how many elements it was given."""
    return ("counted", len(batch))


def custom_collate_map():
    from torch.utils.data._utils.collate import default_collate_fn_map

    # numbers.Integral first: exact-type entries (int) still win, subclasses (bool,
    # numpy integers) fall to the first isinstance match in insertion order.
    return {numbers.Integral: count_collate, **default_collate_fn_map}


def torch_collate(case: CollateCase, device: str):
    from torch.utils.data._utils.collate import collate, default_collate

    batch = make_batch(case, device)
    try:
        if case.mode == "custom_map":
            return describe(collate(batch, collate_fn_map=custom_collate_map()))
        if case.mode == "convert":
            loader = DataLoader(batch, batch_size=None)
            return [describe(x) for x in loader]
        if case.mode == "worker":
            return _collate_in_worker(batch)
        return describe(default_collate(batch))
    except Exception as exc:
        return Raised(type(exc).__name__, str(exc))


def _collate_in_worker(batch: list):
    """default_collate of the whole batch, run by one fork worker of a DataLoader (CPU samples)."""
    loader = DataLoader(batch, batch_size=len(batch), num_workers=1, multiprocessing_context="fork",
                        timeout=LOADER_TIMEOUT)
    it = iter(loader)
    try:
        return describe(next(it))
    finally:
        _shutdown(it)


# ---------------------------------------------------------------- datasets
@dataclass(frozen=True)
class DatasetCase:
    kind: str  # concat | subset | chain | stack | tensor | random_split
    sizes: tuple = ()
    index: int = 0
    indices: tuple = ()
    as_dict: bool = False
    lengths: tuple = ()
    seed: int = 0


def _numbered(size: int, tag: int):
    return [tag * 100 + k for k in range(size)]


def torch_dataset(case: DatasetCase, device: str):
    try:
        if case.kind == "concat":
            ds = ConcatDataset([_numbered(s, t) for t, s in enumerate(case.sizes)])
            return {"len": len(ds), "item": _guard(lambda: ds[case.index])}
        if case.kind == "subset":
            ds = Subset(_numbered(case.sizes[0], 0), list(case.indices))
            m = len(ds)
            # one batch of every valid position, last first, then the negative aliases
            # (reference.data.datasets.subset_batch_positions; restated here so repros stay standalone)
            ks = list(range(m - 1, -1, -1)) + list(range(-1, -m - 1, -1))
            # nested: the outer Subset's dataset has __getitems__, so the fetch goes through it
            nested = Subset(ds, ks)
            return {"len": m, "items": [_guard(lambda k=k: ds[k]) for k in range(-m - 1, m + 1)],
                    "batch": _guard(lambda: ds.__getitems__(ks)),
                    "nested": _guard(lambda: nested.__getitems__(list(range(len(ks)))))}
        if case.kind == "chain":
            parts = [PlainIterable(s, s) for s in case.sizes]
            ds = ChainDataset(parts)
            return {"len": len(ds), "items": list(ds)}
        if case.kind == "stack":
            parts = [_numbered(s, t) for t, s in enumerate(case.sizes)]
            ds = StackDataset(**{f"k{t}": p for t, p in enumerate(parts)}) if case.as_dict else StackDataset(*parts)
            return {"len": len(ds), "item": describe(ds[case.index]),
                    "items": describe(ds.__getitems__(list(case.indices)))}
        if case.kind == "tensor":
            tensors = [torch.arange(s * 2, dtype=torch.int64, device=device).reshape(s, 2) + 100 * t
                       for t, s in enumerate(case.sizes)]
            ds = TensorDataset(*tensors)
            return {"len": len(ds), "item": describe(ds[case.index])}
        if case.kind == "kind_checks":
            # index 0: ConcatDataset([]); 1: ConcatDataset with an IterableDataset; 2: iterating a
            # ChainDataset holding a map-style dataset
            if case.index == 0:
                ConcatDataset([])
            elif case.index == 1:
                ConcatDataset([[1, 2], PlainIterable(2, 2)])
            else:
                list(ChainDataset([PlainIterable(2, 2), [5, 6]]))
            return "accepted"
        if case.kind == "random_split":
            g = torch.Generator().manual_seed(case.seed)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                parts = random_split(range(case.sizes[0]), list(case.lengths), generator=g)
            return {"parts": [list(p) for p in parts], "warnings": len(caught), "next": _u64(g)}
    except Exception as exc:
        return raised(exc)
    raise ValueError(case.kind)


def _guard(fn):
    try:
        return fn()
    except Exception as exc:
        return Raised(type(exc).__name__, str(exc))


# ---------------------------------------------------------------- worker probes
def _worker_draws():
    """What a sample sees of its process: worker id, torch.initial_seed(), one draw each from
    torch's global generator, Python's ``random`` and numpy's legacy global state."""
    info = get_worker_info()
    return (info.id if info is not None else -1, torch.initial_seed(), _u64(None),
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
            _inject(self.fault[1], i)
        return (i,) + _worker_draws() + (self.token,)


def _inject(kind: str, i: int):
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
    get_worker_info().dataset.token = _u64(None) ^ worker_id


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


@dataclass(frozen=True)
class LoaderCase:
    """One DataLoader configuration over a probe dataset, iterated for ``epochs`` epochs."""
    n: int
    batch_size: object = 1  # int or None
    num_workers: int = 0
    shuffle: bool = False
    drop_last: bool = False
    seed: int = 0
    use_generator: bool = True
    prefetch_factor: object = None
    in_order: bool = True
    persistent: bool = False
    epochs: int = 1
    init_fn: bool = False
    iterable: bool = False
    lengths: tuple = ()
    shard: bool = False
    collate: str = "default"  # default | list
    fault: tuple = ()
    init_fail: int = -1  # with failing_init_fn: the worker whose worker_init_fn raises


def _shutdown(it) -> None:
    shutdown = getattr(it, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()


def _plain(obj):
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, (list, tuple)):
        return [_plain(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


def _rows(batch, batched: bool):
    """A default-collated probe batch back to one tuple per sample."""
    plain = _plain(batch)
    if not batched:
        return [plain]
    return [list(r) for r in zip(*plain)]


def make_loader(case: LoaderCase, counter=None) -> tuple[DataLoader, torch.Generator | None]:
    torch.manual_seed((case.seed ^ 0x5EED) % 2**63)  # the main process's global stream, seeded like the reference's
    random.seed(case.seed)
    np.random.seed(case.seed % 2**32)
    g = torch.Generator().manual_seed(case.seed) if case.use_generator else None
    ds = IterProbe(case.lengths, case.shard) if case.iterable else MapProbe(case.n, case.fault, counter)
    if case.init_fail >= 0:
        ds.init_fail = case.init_fail
    kwargs = dict(batch_size=case.batch_size, drop_last=case.drop_last, num_workers=case.num_workers,
                  generator=g, worker_init_fn=failing_init_fn if case.init_fail >= 0 else (init_token_fn if case.init_fn else None))
    if not case.iterable:
        kwargs["shuffle"] = case.shuffle
    if case.collate == "list" or (case.iterable and case.batch_size is not None):
        kwargs["collate_fn"] = list_collate
    if case.num_workers:
        timeout = HANG_TIMEOUT if case.fault and case.fault[1] == "hang" else LOADER_TIMEOUT
        kwargs.update(multiprocessing_context="fork", timeout=timeout, prefetch_factor=case.prefetch_factor,
                      persistent_workers=case.persistent)
        if not case.in_order:
            # DataLoader(in_order=...) is new in torch 2.6; in-order loading is the default before and after,
            # so the argument is passed only where a Case asks for out-of-order loading
            kwargs["in_order"] = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DataLoader(ds, **kwargs), g


def torch_loader(case: LoaderCase, device: str):
    """{"epochs": per epoch the list of batches (each a list of sample tuples, or an error
    ending the epoch), "next": the loader generator's (or global) next int64 draw,
    "leftover": worker processes still alive after shutdown}.  A loader torch refuses to build is an
    outcome too: every epoch and the draw are that error, so each rule's check reports it."""
    try:
        loader, g = make_loader(case)
    except Exception as exc:
        error = raised(exc)
        return {"epochs": [[error] for _ in range(case.epochs)], "next": error, "leftover": _leftover_workers()}
    epochs = []
    for _ in range(case.epochs):
        batches = []
        it = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                it = iter(loader)
                for batch in it:
                    if isinstance(batch, dict):
                        batches.append({"samples": [_plain(s) for s in batch["samples"]],
                                        "collated_by": batch["collated_by"]})
                    else:
                        batches.append(_rows(batch, case.batch_size is not None))
        except Exception as exc:
            batches.append(Raised(type(exc).__name__, str(exc)))
        finally:
            if it is not None and not case.persistent:
                _shutdown(it)
        epochs.append(batches)
    if case.persistent and loader._iterator is not None:
        _shutdown(loader._iterator)
    next_draw = _u64(g)
    del loader
    gc.collect()
    return {"epochs": epochs, "next": next_draw, "leftover": _leftover_workers()}


def _leftover_workers(wait: float = 5.0) -> int:
    """DataLoader worker processes of this process still alive after shutdown (bounded wait for them
    to be reaped); other children (other areas' process groups) are not counted."""
    deadline = time.monotonic() + wait
    while True:
        alive = [p for p in multiprocessing.active_children()
                 if getattr(p, "_target", None) is torch.utils.data._utils.worker._worker_loop]
        if not alive or time.monotonic() > deadline:
            return len(alive)
        time.sleep(0.05)


def loader_schedule(epochs: list) -> list:
    """Per epoch, (first sample index, worker id) of each yielded batch: the observed dispatch."""
    return [[(b[0][0], b[0][1]) for b in batches if not isinstance(b, Raised)] for batches in epochs]


def loader_unordered_workers(case: LoaderCase, device: str):
    """Per epoch, the worker id of each yielded batch, in yield order."""
    return [[w for _, w in epoch] for epoch in loader_schedule(torch_loader(case, device)["epochs"])]


def loader_sorted_batches(case: LoaderCase, device: str):
    """Per epoch, the yielded batches' index lists, sorted (order-free view for in_order=False)."""
    return [sorted([row[0] for row in b] for b in batches if not isinstance(b, Raised))
            for batches in torch_loader(case, device)["epochs"]]


def loader_epochs(case: LoaderCase, device: str):
    return torch_loader(case, device)["epochs"]


def loader_next(case: LoaderCase, device: str):
    return torch_loader(case, device)["next"]


def loader_leftover(case: LoaderCase, device: str):
    return torch_loader(case, device)["leftover"]


def torch_prefetch_window(case: LoaderCase, device: str):
    """[batches dispatched to workers, samples the workers fetched] right after iter() and after each
    of the next two next() calls.  Dispatch is read from the iterator's send counter (``_send_idx``,
    present since torch 1.2); fetches are counted by the dataset in shared memory, waiting (bounded)
    until the workers have fetched every dispatched batch, then briefly for any extra fetch."""
    counter = multiprocessing.get_context("fork").Value("i", 0)
    loader, _ = make_loader(case, counter)
    sizes = [len(b) for b in loader.batch_sampler] if loader.batch_sampler is not None else None
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = iter(loader)
        try:
            for step in range(3):
                if step and next(it, None) is None:
                    break
                sent = it._send_idx
                target = sum(sizes[:sent]) if sizes is not None else sent
                seen.append([sent, _settle(counter, target)])
        finally:
            _shutdown(it)
    return seen


def _settle(counter, target: int, limit: float = 15.0, extra: float = 0.2) -> int:
    """The counter once it reaches ``target`` (bounded by ``limit`` seconds), after ``extra`` more
    seconds in which any fetch beyond the target would show."""
    start = time.monotonic()
    while counter.value < target and time.monotonic() - start < limit:
        time.sleep(0.02)
    time.sleep(extra)
    return counter.value


def loader_args_config(case: LoaderArgsCase, device: str):
    out = torch_loader_args(case, device)
    if isinstance(out, Raised):
        return out
    return {k: v for k, v in out.items() if k != "len"}


def loader_args_len(case: LoaderArgsCase, device: str):
    out = torch_loader_args(case, device)
    return out if isinstance(out, Raised) else out["len"]


# ---- projections of one torch_loader run (each recomputes from the Case, for repro scripts)
def project(epochs: list, column: int | None) -> list:
    """Per epoch, per batch: the sample rows' ``column`` (None: the whole row); errors kept as is."""
    out = []
    for batches in epochs:
        rows_out = []
        for b in batches:
            if isinstance(b, Raised):
                rows_out.append(b)
                continue
            rows = b["samples"] if isinstance(b, dict) else b
            rows_out.append([r if column is None else r[column] for r in rows])
        out.append(rows_out)
    return out


def loader_indices(case: LoaderCase, device: str):
    return project(torch_loader(case, device)["epochs"], 0)


def loader_workers(case: LoaderCase, device: str):
    return project(torch_loader(case, device)["epochs"], 1)


def loader_initial_seeds(case: LoaderCase, device: str):
    return project(torch_loader(case, device)["epochs"], 2)


def loader_torch_draws(case: LoaderCase, device: str):
    return project(torch_loader(case, device)["epochs"], 3)


def loader_python_draws(case: LoaderCase, device: str):
    return project(torch_loader(case, device)["epochs"], 4)


def loader_numpy_draws(case: LoaderCase, device: str):
    return project(torch_loader(case, device)["epochs"], 5)


def loader_init_tokens(case: LoaderCase, device: str):
    return project(torch_loader(case, device)["epochs"], 6)

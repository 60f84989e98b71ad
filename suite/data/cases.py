"""The Cases of the data area (frozen dataclasses of plain values) and the deterministic inputs
both sides derive from them.

The reference reads Cases by their attributes only; the tests hand it the inputs made here
(collate samples, the positions of a Subset batch).  Collate samples are built with
``torch.tensor`` from pure-Python values: a constructor, not the collation under test.
"""
from __future__ import annotations

import collections
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

# seconds a healthy tiny batch may take under a loaded 2-core machine: a spawned worker's first batch
# includes importing torch (18 s measured for two spawn workers at load average 8)
LOADER_TIMEOUT = 60.0
NO_TIMEOUT = 0.0  # DataLoader's default timeout: wait for a batch as long as its workers live
HANG_TIMEOUT = 0.5  # the DataLoader timeout of a Case whose fault is "hang" (the sample sleeps 1.5 s)


# ---------------------------------------------------------------- RNG primitives and samplers
@dataclass(frozen=True)
class RngCase:
    op: str  # "randperm" | "randint" | "random64" | "multinomial"
    seed: int
    n: int = 1
    size: int = 1
    weights: tuple = ()
    replacement: bool = True


@dataclass(frozen=True)
class SamplerCase:
    kind: str  # base (the Sampler class itself) | sequential | random | subset_random | weighted | batch | distributed
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
    num_replicas: object = 1  # int, or None: from the current process group
    rank: object = 0
    # distributed: shuffle, dist_seed and drop_last as None are left out of the call (the documented defaults apply)
    shuffle: object = False
    dist_seed: object = 0
    epochs: tuple = (0,)
    process_group: bool = False  # distributed: built under an initialized one-rank gloo group (world size 1, rank 0)


# ---------------------------------------------------------------- DataLoader construction
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


@dataclass(frozen=True)
class LoaderAttrCase:
    num_workers: int
    context: str  # none | a start-method name (valid or not) | spawn_context (a context object) | object (42)
    attr: str  # the attribute assigned (its own value) after construction


# ---------------------------------------------------------------- the multi-worker loader
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
    collate: str = "default"  # default | list | unpicklable (list, by a function pickle cannot name)
    fault: tuple = ()
    init_fail: int = -1  # with failing_init_fn: the worker whose worker_init_fn raises
    timeout: float = LOADER_TIMEOUT  # the DataLoader timeout with workers (HANG_TIMEOUT for a "hang"/"stuck" fault)
    # how the workers start: "fork", "spawn" or "forkserver" (passed as multiprocessing_context), or
    # "default" (no multiprocessing_context: torch.multiprocessing's default start method)
    start_method: str = "fork"
    pin_memory: bool = False
    pin_memory_device: str = ""  # with pin_memory: the (deprecated) device argument
    # iterable: an IterDataPipe of range(lengths[0]) through sharding_filter(); map-style: the probe in a MapDataPipe
    datapipe: bool = False
    shuffler: bool = False  # an iterable DataPipe: with a Shuffler (.shuffle()) at the end of its graph
    process_group: bool = False  # run under an initialized one-rank gloo process group (world size 1, rank 0)


# ---------------------------------------------------------------- datasets
@dataclass(frozen=True)
class DatasetCase:
    kind: str  # concat | subset | chain | stack | tensor | random_split | kind_checks | fetch
    sizes: tuple = ()
    index: int = 0
    indices: tuple = ()
    as_dict: bool = False
    added: bool = False  # concat / chain: built as a + b + ... (Dataset.__add__); stack: members are Subsets
    lengths: tuple = ()
    seed: int = 0
    # fetch: a map-style probe of sizes[0] items loaded in the main process with this batch_size (None: no
    # automatic batching), the probe defining __getitems__ or not
    batch_size: object = None
    getitems: bool = False


def subset_batch_positions(m: int) -> list[int]:
    """The positions asked of a Subset of length m in one __getitems__ call: every valid position, last
    first, then the negative aliases (an unsorted batch, as a shuffled loader gives)."""
    return list(range(m - 1, -1, -1)) + list(range(-1, -m - 1, -1))


# ---------------------------------------------------------------- collation
@dataclass(frozen=True)
class CollateCase:
    spec: tuple
    batch: int
    seed: int
    mode: str = "collate"  # collate | custom_map | convert (DataLoader batch_size=None) | worker (in a worker)
    start_method: str = "fork"  # mode "worker": how the worker starts (see LoaderCase.start_method)


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


class FixedMap(FrozenMap):
    """A read-only Mapping built from keyword arguments only: it cannot be built from a dict, so collate and
    default_convert give a plain dict for it."""

    def __init__(self, **fields):
        super().__init__(fields)


class Row(Sequence):
    """An immutable Sequence (not a tuple) built from a list: collate and default_convert keep its type."""

    def __init__(self, items):
        self._items = tuple(items)

    def __getitem__(self, i):
        return self._items[i]

    def __len__(self):
        return len(self._items)


class Opaque:
    """An element type default_collate does not know."""


def _value(seed: int, i: int, path: str) -> int:
    """A small deterministic int in [-40, 40] for sample i at a spec path (pure Python)."""
    h = seed * 1_000_003 + i * 7919 + sum((k + 1) * ord(c) for k, c in enumerate(path)) * 31
    return h % 81 - 40


def _array_values(spec: tuple, seed: int, i: int, path: str) -> np.ndarray:
    shape = spec[2]
    count = int(np.prod(shape)) if shape else 1
    return np.array([_value(seed, i, f"{path}/{k}") for k in range(count)])


def make_sample(spec: tuple, seed: int, i: int, device: str = "cpu", path: str = ""):
    """Build sample ``i`` of a collate Case from its spec (input generation, not under test)."""
    kind = spec[0]
    v = _value(seed, i, path)
    scalars = {"int": v, "float": v / 4, "intfloat": v if i == 0 else v / 4 + 0.125, "bool": v % 2 == 0,
               "str": f"s{v}", "bytes": f"b{v}".encode(), "none": None}
    if kind in scalars:
        return scalars[kind]
    if kind == "opaque":
        return Opaque()
    if kind == "tensor":
        dtype, shape = spec[1], spec[2]
        vals = _array_values(spec, seed, i, path).astype(np.float64)
        t = torch.tensor(vals / 4 if dtype.startswith("float") else (vals % 2 == 0 if dtype == "bool" else vals))
        return t.to(getattr(torch, dtype)).reshape(shape).to(device)
    if kind == "range":  # a Sequence that cannot be built from a list
        return range(v, v + 2)
    if kind == "nested":
        with warnings.catch_warnings():  # "the PyTorch API of nested tensors is in prototype stage"
            warnings.simplefilter("ignore", UserWarning)
            return torch.nested.nested_tensor([torch.tensor([v / 4]), torch.tensor([v / 4, 0.5])]).to(device)
    if kind == "sparse":
        return torch.tensor([[0.0, v / 4], [1.0, 0.0]]).to(device).to_sparse()
    if kind == "ndarray":
        dtype, shape = spec[1], spec[2]
        vals = _array_values(spec, seed, i, path)
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
        if spec[1] == "FixedMap":
            return FixedMap(**mapping)
        return mapping
    if kind == "namedtuple":
        return Pair(make_sample(spec[1], seed, i, device, path + ".x"), make_sample(spec[2], seed, i, device, path + ".y"))
    if kind in ("tuple", "list", "row"):
        items = [make_sample(sub, seed, i, device, f"{path}[{k}]") for k, sub in enumerate(spec[1])]
        return {"tuple": tuple, "list": list, "row": Row}[kind](items)
    if kind == "ragged":  # a list whose length depends on the sample
        return [make_sample(spec[1], seed, i, device, f"{path}[{k}]") for k in range(1 + (i % 2))]
    raise ValueError(kind)


def make_batch(case: CollateCase, device: str):
    return [make_sample(case.spec, case.seed, i, device) for i in range(case.batch)]

"""Torch side of the datasets (Concat, Subset, Chain, Stack, Tensor) and random_split."""
from __future__ import annotations

import functools
import operator
import warnings

import torch
from torch.utils.data import (ChainDataset, ConcatDataset, DataLoader, Dataset, StackDataset, Subset, TensorDataset,
                              random_split)

from conform.outcome import Raised
from suite.data.cases import DatasetCase, subset_batch_positions
from suite.data.torch_side.collate import describe
from suite.data.torch_side.probes import PlainIterable
from suite.data.torch_side.rng import u64


def _numbered(size: int, tag: int):
    return [tag * 100 + k for k in range(size)]


class _Keys(Dataset):
    """A map-style dataset of exactly the keys 0 .. len-1 (any other key is a KeyError, as for a dict): a
    ConcatDataset member must be asked for its own positions, never a negative one that a list would wrap."""

    def __init__(self, items):
        self._items = dict(enumerate(items))

    def __getitem__(self, key):
        return self._items[key]

    def __len__(self):
        return len(self._items)


def _member(size: int, tag: int):
    """A member dataset of ints tag*100 + k: a Dataset (a Subset of the list) where the case adds members
    with + or wants them to have __getitems__, else the plain list."""
    return Subset(_numbered(size, tag), range(size))


class _FetchProbe(Dataset):
    """n items, item i is 1000 + i; every __getitem__ call is logged."""

    def __init__(self, n: int):
        self.n, self.calls = n, []

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        self.calls.append(["getitem", i])
        return 1000 + i


class _GetitemsProbe(_FetchProbe):
    """The same with its own __getitems__, whose calls are logged too."""

    def __getitems__(self, indices):
        self.calls.append(["getitems", list(indices)])
        return [1000 + i for i in indices]


class _Echo(Dataset):
    """Item k is {"asked": k}: what the dataset was indexed with, a list included."""

    def __getitem__(self, k):
        return {"asked": k}


class _Miscounting(Dataset):
    """Three items whose __getitems__ returns one sample more (``extra`` 1) or fewer (-1) than it was asked for
    (a user's bug)."""

    def __init__(self, extra: int = 1):
        self.extra = extra

    def __len__(self):
        return 3

    def __getitem__(self, i):
        return i

    def __getitems__(self, indices):
        items = [self[i] for i in indices]
        return items + [0] if self.extra > 0 else items[:-1]


class _OwnGetitemSubset(Subset):
    """A Subset subclass overriding __getitem__ only."""

    def __getitem__(self, idx):
        return -super().__getitem__(idx)


def _tag_collate(data):
    return {"collated": data}


def _guard(fn):
    try:
        return fn()
    except Exception as exc:
        return Raised.from_exception(exc)


def run_dataset(case: DatasetCase, device: str):
    """The case's dataset observed: len and items (or the error of building it)."""
    try:
        if case.kind == "concat":
            if case.added and len(case.sizes) > 1:
                ds = functools.reduce(operator.add, [_member(s, t) for t, s in enumerate(case.sizes)])
            else:
                # plain lists and key-only datasets in turn (every member after the first is asked for an
                # index shifted by the sizes before it)
                ds = ConcatDataset([_numbered(s, t) if t % 2 == 0 else _Keys(_numbered(s, t))
                                    for t, s in enumerate(case.sizes)])
            return {"len": len(ds), "item": _guard(lambda: ds[case.index])}
        if case.kind == "subset":
            ds = Subset(_numbered(case.sizes[0], 0), list(case.indices))
            m = len(ds)
            ks = subset_batch_positions(m)
            # nested: the outer Subset's dataset has __getitems__, so the fetch goes through it
            nested = Subset(ds, ks)
            # and through a DataLoader: its fetcher asks the Subset's __getitems__ for each batch
            loaded = _guard(lambda: [x for b in DataLoader(ds, batch_size=3, collate_fn=list) for x in b])
            return {"len": m, "items": [_guard(lambda k=k: ds[k]) for k in range(-m - 1, m + 1)],
                    "batch": _guard(lambda: ds.__getitems__(ks)),
                    "nested": _guard(lambda: nested.__getitems__(list(range(len(ks))))), "loaded": loaded,
                    # a list of positions, over a dataset that reports what it was indexed with
                    "listed": _guard(lambda: Subset(_Echo(), list(case.indices))[ks])}
        if case.kind == "chain":
            parts = [PlainIterable(s, s) for s in case.sizes]
            ds = functools.reduce(operator.add, parts) if case.added and len(parts) > 1 else ChainDataset(parts)
            return {"len": len(ds), "items": list(ds)}
        if case.kind == "stack":
            parts = [(_member if case.added else _numbered)(s, t) for t, s in enumerate(case.sizes)]
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
            # ChainDataset holding a map-style dataset; 3: its len; 4: StackDataset given datasets both
            # positionally and by keyword; 5: StackDataset of nothing; 6: indexing the Dataset base class;
            # 7, 8: StackDataset.__getitems__ through a member whose __getitems__ miscounts (tuple, dict);
            # 9: building a Subset subclass that overrides __getitem__ only
            checks = [lambda: ConcatDataset([]), lambda: ConcatDataset([[1, 2], PlainIterable(2, 2)]),
                      lambda: list(iter(ChainDataset([PlainIterable(2, 2), [5, 6]]))),  # (list() asks len first)
                      lambda: len(ChainDataset([PlainIterable(2, 2), [5, 6]])),
                      lambda: StackDataset([1], k=[2]), lambda: StackDataset(), lambda: Dataset()[0],
                      lambda: StackDataset([5, 6, 7], _Miscounting()).__getitems__([0, 2]),
                      lambda: StackDataset(a=[5, 6, 7], b=_Miscounting()).__getitems__([0, 2]),
                      lambda: _OwnGetitemSubset([5, 6, 7], [0, 1]),
                      lambda: StackDataset([5, 6, 7], _Miscounting(-1)).__getitems__([0, 2])]
            checks[case.index]()
            return "accepted"
        if case.kind == "fetch":
            ds = (_GetitemsProbe if case.getitems else _FetchProbe)(case.sizes[0])
            loaded = list(DataLoader(ds, batch_size=case.batch_size, collate_fn=_tag_collate))
            return {"loaded": loaded, "calls": ds.calls}
        if case.kind == "random_split":
            g = torch.Generator().manual_seed(case.seed)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                parts = random_split(range(case.sizes[0]), list(case.lengths), generator=g)
            return {"parts": [list(p) for p in parts], "warnings": len(caught), "next": u64(g)}
    except Exception as exc:
        return Raised.from_exception(exc)
    raise ValueError(case.kind)

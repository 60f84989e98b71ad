"""Torch side of the datasets (Concat, Subset, Chain, Stack, Tensor) and random_split."""
from __future__ import annotations

import warnings

import torch
from torch.utils.data import ChainDataset, ConcatDataset, StackDataset, Subset, TensorDataset, random_split

from conform.outcome import Raised
from suite.data.cases import DatasetCase, subset_batch_positions
from suite.data.torch_side.collate import describe
from suite.data.torch_side.probes import PlainIterable
from suite.data.torch_side.rng import u64


def _numbered(size: int, tag: int):
    return [tag * 100 + k for k in range(size)]


def _guard(fn):
    try:
        return fn()
    except Exception as exc:
        return Raised.from_exception(exc)


def run_dataset(case: DatasetCase, device: str):
    """The case's dataset observed: len and items (or the error of building it)."""
    try:
        if case.kind == "concat":
            ds = ConcatDataset([_numbered(s, t) for t, s in enumerate(case.sizes)])
            return {"len": len(ds), "item": _guard(lambda: ds[case.index])}
        if case.kind == "subset":
            ds = Subset(_numbered(case.sizes[0], 0), list(case.indices))
            m = len(ds)
            ks = subset_batch_positions(m)
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
            return {"parts": [list(p) for p in parts], "warnings": len(caught), "next": u64(g)}
    except Exception as exc:
        return Raised.from_exception(exc)
    raise ValueError(case.kind)

"""Torch side of collation: default_collate, collate_fn_map, default_convert, collation in a worker."""
from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from conform.outcome import Raised
from suite.data.cases import LOADER_TIMEOUT, CollateCase, make_batch
from suite.data.torch_side.probes import shutdown, worker_context


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
    if isinstance(obj, Sequence) and not isinstance(obj, (str, bytes)):
        return (type(obj).__name__, [describe(v) for v in obj])
    if isinstance(obj, (bool, int, float, str, bytes)) or obj is None:
        return (type(obj).__name__, obj)
    return ("object", type(obj).__name__)


def count_collate(batch, *, collate_fn_map=None):
    """A custom collate function: reports how many elements it was given."""
    return ("counted", len(batch))


def custom_collate_map():
    from torch.utils.data._utils.collate import default_collate_fn_map

    # numbers.Integral first: exact-type entries (int) still win, subclasses (bool,
    # numpy integers) fall to the first isinstance match in insertion order.
    return {numbers.Integral: count_collate, **default_collate_fn_map}


def run_collate(case: CollateCase, device: str):
    """describe() of the collated (or converted) batch of the case, or the error."""
    from torch.utils.data._utils.collate import collate, default_collate

    batch = make_batch(case, device)
    try:
        if case.mode == "custom_map":
            return describe(collate(batch, collate_fn_map=custom_collate_map()))
        if case.mode == "convert":
            loader = DataLoader(batch, batch_size=None)
            return [describe(x) for x in loader]
        if case.mode == "worker":
            return collate_in_worker(batch, case.start_method)
        return describe(default_collate(batch))
    except Exception as exc:
        return Raised.from_exception(exc)


def collate_in_worker(batch: list, start_method: str = "fork"):
    """default_collate of the whole batch, run by one worker of a DataLoader started with ``start_method``
    (CPU samples; under spawn and forkserver they reach the worker by pickling)."""
    loader = DataLoader(batch, batch_size=len(batch), num_workers=1, multiprocessing_context=worker_context(start_method),
                        timeout=LOADER_TIMEOUT)
    it = iter(loader)
    try:
        return describe(next(it))
    finally:
        shutdown(it)

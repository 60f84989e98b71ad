"""Torch side of DataLoader construction: validation, defaults, len(), the length warning, the
multiprocessing context and the attributes frozen after construction."""
from __future__ import annotations

import multiprocessing
import pickle
import warnings

from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

from conform.outcome import Raised
from suite.data.cases import LoaderArgsCase, LoaderAttrCase
from suite.data.torch_side.probes import PlainIterable, PlainMap, plain, shutdown


def run_loader_args(case: LoaderArgsCase, device: str) -> dict:
    """{"config": what DataLoader picked (sampler, batch_sampler, batch_size, drop_last, collate_fn,
    prefetch_factor, and with ``iterate`` the first batch), or the constructor's error; "len":
    len(loader), its error, or None where no loader was built}."""
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
        return {"config": Raised.from_exception(exc), "len": None}
    config = {"sampler": type(loader.sampler).__name__,
              "batch_sampler": type(loader.batch_sampler).__name__ if loader.batch_sampler is not None else None,
              "batch_size": loader.batch_size, "drop_last": loader.drop_last,
              "collate_fn": loader.collate_fn.__name__, "prefetch_factor": loader.prefetch_factor}
    try:
        length = len(loader)
    except Exception as exc:
        length = Raised(type(exc).__name__)
    out = {"config": config, "len": length}
    if case.iterate:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                it = iter(loader)
                config["first"] = plain(next(it, None))
                out["iter_len"] = _attempt(lambda: len(it))
                out["pickle"] = _attempt(lambda: pickle.dumps(it))
                shutdown(it)
        except Exception as exc:
            config["first"] = Raised.from_exception(exc)
    return out


def run_loader_batches(case: LoaderArgsCase, device: str):
    """Every batch of one epoch of the case's loader (its batching and timeout; no sampler, no shuffle) as
    plain values, or the error building or iterating it raised."""
    ds = PlainIterable(case.n, case.declared_len) if case.iterable else PlainMap(case.n)
    try:
        loader = DataLoader(ds, batch_size=case.batch_size, drop_last=case.drop_last, num_workers=case.num_workers,
                            timeout=case.timeout)
        return [plain(b) for b in loader]
    except Exception as exc:
        return Raised.from_exception(exc)


def _attempt(fn):
    try:
        return fn()
    except Exception as exc:
        return Raised.from_exception(exc)


def run_loader_attr(case: LoaderAttrCase, device: str) -> dict:
    """{"context": the start method the loader kept (or the constructor's error), "set": "ok" or the
    error of assigning the case's attribute its own value}."""
    context = {"none": None, "spawn_context": multiprocessing.get_context("spawn"), "object": 42}.get(case.context,
                                                                                                  case.context)
    try:
        loader = DataLoader(PlainMap(4), batch_size=2, num_workers=case.num_workers, multiprocessing_context=context)
    except Exception as exc:
        return {"context": Raised.from_exception(exc)}
    ctx = loader.multiprocessing_context
    # (a context stored unconverted would show as its repr)
    out = {"context": None if ctx is None else getattr(ctx, "get_start_method", lambda: repr(ctx))()}
    try:
        setattr(loader, case.attr, getattr(loader, case.attr))
        out["set"] = "ok"
    except Exception as exc:
        out["set"] = Raised.from_exception(exc)
    return out


def run_iterable_len_warning(case: LoaderArgsCase, device: str):
    """len(loader), then the 1-based batch numbers at which the length warning fires (with workers: one
    fork worker iterating the whole replica)."""
    try:
        loader = DataLoader(PlainIterable(case.n, case.declared_len), batch_size=case.batch_size,
                            drop_last=case.drop_last, num_workers=case.num_workers,
                            multiprocessing_context="fork" if case.num_workers else None)
        length = len(loader)
        fired = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for k, _ in enumerate(loader, start=1):
                if any("Length of IterableDataset" in str(w.message) for w in caught):
                    fired.append(k)
                caught.clear()
    except Exception as exc:
        return Raised.from_exception(exc)
    return {"len": length, "warned_at": fired}

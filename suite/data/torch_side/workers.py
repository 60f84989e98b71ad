"""Torch side of the multi-worker DataLoader: one run of a LoaderCase, observed whole (batches, the
columns of every sample, the dispatch, the next draw, stray processes), and the prefetch window."""
from __future__ import annotations

import multiprocessing
import random
import time
import warnings

import numpy as np
import torch
from torch.utils.data import DataLoader

from conform.outcome import Raised
from suite.data.cases import LOADER_TIMEOUT, LoaderCase
from suite.data.torch_side.probes import (IterProbe, MapProbe, datapipe_probe, failing_init_fn, map_datapipe_probe,
                                          one_rank_group, init_token_fn, leaked_shm,
                                          leftover_workers, list_collate, plain, shm_entries, shutdown,
                                          unpicklable_collate, worker_context)
from suite.data.torch_side.rng import u64

# The columns of a map-style probe sample (suite.data.torch_side.probes.MapProbe), by observation key.
COLUMNS = ("indices", "workers", "initial_seeds", "torch_draws", "python_draws", "numpy_draws", "init_tokens")


def make_loader(case: LoaderCase, counter=None) -> tuple[DataLoader, torch.Generator | None]:
    torch.manual_seed((case.seed ^ 0x5EED) % 2**63)  # the main process's global stream, seeded like the reference's
    random.seed(case.seed)
    np.random.seed(case.seed % 2**32)
    g = torch.Generator().manual_seed(case.seed) if case.use_generator else None
    ds = IterProbe(case.lengths, case.shard) if case.iterable else MapProbe(case.n, case.fault, counter)
    if case.datapipe:
        ds = datapipe_probe(case.lengths[0], case.shuffler) if case.iterable else map_datapipe_probe(ds)
    if case.init_fail >= 0:
        ds.init_fail = case.init_fail
    init = failing_init_fn if case.init_fail >= 0 else (init_token_fn if case.init_fn else None)
    kwargs = dict(batch_size=case.batch_size, drop_last=case.drop_last, num_workers=case.num_workers,
                  generator=g, worker_init_fn=init, pin_memory=case.pin_memory)
    if case.pin_memory_device:
        kwargs["pin_memory_device"] = case.pin_memory_device
    if not case.iterable or case.datapipe:  # (shuffle sets a DataPipe's Shufflers, adding one where it has none)
        kwargs["shuffle"] = case.shuffle
    if case.collate == "list" or (case.iterable and case.batch_size is not None):
        kwargs["collate_fn"] = list_collate
    elif case.collate == "unpicklable":
        kwargs["collate_fn"] = unpicklable_collate
    if case.num_workers:
        kwargs.update(timeout=case.timeout, prefetch_factor=case.prefetch_factor, persistent_workers=case.persistent)
        kwargs["multiprocessing_context"] = worker_context(case.start_method)
        if not case.in_order:
            # DataLoader(in_order=...) is new in torch 2.6; in-order loading is the default before and after,
            # so the argument is passed only where a Case asks for out-of-order loading
            kwargs["in_order"] = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DataLoader(ds, **kwargs), g


def _rows(batch, batched: bool):
    """A default-collated probe batch back to one row per sample."""
    rows = plain(batch)
    if not batched:
        return [rows]
    return [list(r) for r in zip(*rows)]


def _iterate(case: LoaderCase, pids: list) -> tuple[list, object]:
    """Per epoch the yielded batches (each a list of sample rows, or an error ending the epoch), and the
    loader generator's (or the global) next int64 draw; ``pids`` collects the worker processes' ids.  A
    loader torch refuses to build is an outcome too: every epoch and the draw are that error."""
    try:
        loader, g = make_loader(case)
    except Exception as exc:
        error = Raised.from_exception(exc)
        return [[error] for _ in range(case.epochs)], error
    epochs = []
    for _ in range(case.epochs):
        batches = []
        it = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                it = iter(loader)
                pids.extend(w.pid for w in getattr(it, "_workers", ()))
                for batch in it:
                    if isinstance(batch, dict):
                        batches.append({"samples": [plain(s) for s in batch["samples"]],
                                        "collated_by": batch["collated_by"]})
                    else:
                        batches.append(_rows(batch, case.batch_size is not None))
        except Exception as exc:
            batches.append(Raised.from_exception(exc))
        finally:
            if it is not None and not case.persistent:
                shutdown(it)
        epochs.append(batches)
    if case.persistent and loader._iterator is not None:
        shutdown(loader._iterator)
    next_draw = u64(g)
    del loader, it  # released here; see probes.leaked_shm for what must be gone then
    return epochs, next_draw


def _samples(batch) -> list:
    return batch["samples"] if isinstance(batch, dict) else batch


def _column(epochs: list, column: int) -> list:
    """Per epoch, per batch: the sample rows' ``column``; errors kept as they are."""
    return [[b if isinstance(b, Raised) else [row[column] for row in _samples(b)] for b in batches]
            for batches in epochs]


def _schedule(epochs: list) -> list:
    """Per epoch, (first sample index, worker id) of each yielded batch: the observed dispatch."""
    return [[tuple(_samples(b)[0][:2]) for b in batches if not isinstance(b, Raised)] for batches in epochs]


def run_loader(case: LoaderCase, device: str) -> dict:
    """One run of the case's loader, observed whole: {"epochs" (per epoch the yielded batches, each a list
    of sample rows or a {"samples", "collated_by"} dict from list_collate, or an error ending the epoch),
    "next" (the generator's next int64 draw), "leftover" (worker processes alive after shutdown),
    "leaked_shm" (shared-memory entries of the run left in /dev/shm, see probes.leaked_shm)}, plus
    views of the epochs: for a map-style probe every sample column (COLUMNS), "sorted_batches" (per epoch
    the batches' index lists, sorted), "schedule" (per epoch (first index, worker) of each batch) and
    "unordered_workers" (per epoch the worker of each batch); for an iterable probe "info" (the
    get_worker_info() fields every item saw).  The run is also kept in LAST_RUN (see replay_loader)."""
    before, pids = shm_entries(), []
    with one_rank_group(case.process_group):
        epochs, next_draw = _iterate(case, pids)
    out = {"epochs": epochs, "next": next_draw, "leftover": leftover_workers(), "leaked_shm": leaked_shm(before, pids)}
    if case.iterable:
        out["info"] = [(r[1], r[2]) for batches in epochs for b in batches if not isinstance(b, Raised)
                       for r in _samples(b)]
    else:
        out.update({name: _column(epochs, k) for k, name in enumerate(COLUMNS)})
        out["sorted_batches"] = [sorted([row[0] for row in _samples(b)] for b in batches if not isinstance(b, Raised))
                                 for batches in epochs]
        out["schedule"] = _schedule(epochs)
        out["unordered_workers"] = [[w for _, w in epoch] for epoch in out["schedule"]]
    LAST_RUN.clear()
    LAST_RUN[case] = out
    return out


def run_datapipe_shuffle(case: LoaderCase, device: str):
    """What a shuffled DataPipe case's epochs show of their order (the order itself is unspecified, see
    reference.data.iterable.I_DP_SHUFFLE): {"items": per epoch the yielded items, sorted; "reordered":
    whether some epoch is not in input order; "reshuffled": whether the epochs are not all in one order},
    or the first error an epoch ended with."""
    epochs = run_loader(case, device)["epochs"]
    errors = [b for batches in epochs for b in batches if isinstance(b, Raised)]
    if errors:
        return errors[0]
    orders = [[row[0] for b in batches for row in _samples(b)] for batches in epochs]
    return {"items": [sorted(order) for order in orders],
            "reordered": any(order != sorted(order) for order in orders),  # the input order is 0..n-1
            "reshuffled": len({tuple(order) for order in orders}) > 1}


LAST_RUN: dict = {}  # the case of the last run_loader call in this process -> its observation


def replay_loader(case: LoaderCase, device: str) -> dict:
    """The observation of the last run_loader(case) in this process (a fresh run if there is none).  With
    in_order=False the dispatch depends on timing, and the expectations of the dispatch rules are computed
    from an observed schedule: they are compared with the very run that schedule came from.  (A standalone
    repro has no earlier run: it replays a fresh schedule.)"""
    return LAST_RUN.get(case) or run_loader(case, device)


def run_prefetch_window(case: LoaderCase, device: str):
    """[batches dispatched to workers, samples the workers fetched] right after iter() and after each
    of the next two next() calls.  Dispatch is read from the iterator's send counter (``_send_idx``,
    present since torch 1.2); fetches are counted by the dataset in shared memory, waiting (bounded)
    until the workers have fetched every dispatched batch, then briefly for any extra fetch."""
    method = None if case.start_method == "default" else case.start_method
    counter = multiprocessing.get_context(method).Value("i", 0)
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
            shutdown(it)
    return seen


def _settle(counter, target: int, limit: float = LOADER_TIMEOUT, extra: float = 0.2) -> int:
    """The counter once it reaches ``target`` (bounded by ``limit`` seconds), after ``extra`` more
    seconds in which any fetch beyond the target would show."""
    start = time.monotonic()
    while counter.value < target and time.monotonic() - start < limit:
        time.sleep(0.02)
    time.sleep(extra)
    return counter.value

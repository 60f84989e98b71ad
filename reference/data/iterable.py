"""IterableDataset across workers: replicas, round-robin interleaving, per-worker drop_last,
get_worker_info, sharding.

Part of the data reference (see reference/data/__init__.py for its independence notes)."""
from __future__ import annotations

import dataclasses

from conform.expect import Expect
from conform.outcome import OneOf
from conform.rules import rule
from reference.data.rng import DOC, LOADER, WORKER, MT, global_seed
from reference.data.workers import S_BASE, clean_shutdown


I_REPLICA = rule("data.iterable.replicas",
                 "Each worker iterates its own replica of an IterableDataset: without sharding every item appears "
                 "once per worker.", f"{DOC}#torch.utils.data.IterableDataset")
I_ROUND_ROBIN = rule("data.iterable.round_robin",
                     "Batches of an IterableDataset interleave round-robin over workers 0..W-1, skipping workers "
                     "that are exhausted.", f"{LOADER}: _MultiProcessingDataLoaderIter._next_data")
I_DROP_LAST = rule("data.iterable.drop_last_per_worker",
                   "With an IterableDataset, batches are cut per worker; drop_last drops each worker's own short "
                   "final batch (only an incomplete one: a complete last batch is kept).", f"{DOC}#torch.utils.data.IterableDataset; torch/utils/data/_utils/fetch.py")
I_INFO = rule("data.iterable.worker_info",
              "Inside a worker get_worker_info() has id, num_workers, seed = base_seed + id and dataset = this "
              "worker's copy; in the main process it is None.", f"{WORKER}: get_worker_info")
I_SHARD = rule("data.iterable.sharding",
               "Splitting an IterableDataset by worker_info.id/num_workers yields every item exactly once.",
               f"{DOC}#torch.utils.data.IterableDataset (example 1)")


I_DATAPIPE = rule("data.iterable.datapipe_sharding",
                  "An IterDataPipe with sharding_filter() is sharded across the DataLoader's workers (and the ranks "
                  "of an initialized process group): worker w of W yields the items at positions w, w+W, ... "
                  "(every item exactly once), batched per worker and interleaved round-robin like any "
                  "IterableDataset; without workers (and one rank) it yields every item.",
                  f"{LOADER}: _sharding_worker_init_fn, _SingleProcessDataLoaderIter.__init__ (apply_sharding); "
                  "torch/utils/data/datapipes/iter/sharding.py: ShardingFilterIterDataPipe")


# From this many items on an order check cannot raise a false alarm in practice: a uniform shuffle of n items
# repeats a given order with probability 1/n! (1/12! ~ 2e-9 an epoch, against ~2.5e-5 for 8 items, which a
# fuzz run of thousands of examples could hit)
SHUFFLE_CHECKED_ITEMS = 12

I_DP_SHUFFLE = rule("data.iterable.datapipe_shuffle",
                    "DataLoader(shuffle=True) over an IterDataPipe reshuffles the data at every epoch, adding a "
                    "Shuffler at the end of a graph that has none: every epoch yields each item exactly once, and "
                    f"for >= {SHUFFLE_CHECKED_ITEMS} items (a uniform shuffle keeps a given order with probability "
                    f"1/{SHUFFLE_CHECKED_ITEMS}! an epoch) not every epoch comes in input order, nor, over several "
                    "epochs, every epoch in one order.  The order itself is left unspecified (the Shuffler's seed "
                    "is drawn from the loader's generator by undocumented means), so only these properties are "
                    "checked, from a seeded generator (deterministic for a given build).",
                    f"{DOC}#torch.utils.data.DataLoader (shuffle: 'set to True to have the data reshuffled at every "
                    "epoch'); torch/utils/data/graph_settings.py: apply_shuffle_settings (\"`shuffle=True` was set, "
                    "but the datapipe does not contain a `Shuffler`. Adding one at the end.\")")


def iterable_outcome(case) -> dict:
    """IterableDataset over W workers: per-worker replicas (or shards), per-worker batching,
    round-robin interleaving that skips exhausted workers."""
    stream = MT(case.seed) if case.use_generator else MT(global_seed(case.seed))
    W = case.num_workers
    epochs = []
    base = None
    for _ in range(case.epochs):
        if base is None or not case.persistent:
            base = stream.random64()
        if W == 0:
            items = list(range(case.lengths[0]))
            streams = [[[k, -1, None] for k in items]]
        else:
            streams = []
            for w in range(W):
                items = list(range(case.lengths[0]))[w::W] if case.shard else list(range(case.lengths[w]))
                fields = [W, base + w, "IterProbe", True]
                streams.append([[k, w, fields] for k in items])
        per_worker = [_iter_batches(s, case) for s in streams]
        out = []
        cursors = [0] * len(per_worker)
        while any(c < len(b) for c, b in zip(cursors, per_worker)):
            for w, b in enumerate(per_worker):
                if cursors[w] < len(b):
                    out.append(b[cursors[w]])
                    cursors[w] += 1
        epochs.append(out)
    return {"epochs": epochs, "next": stream.random64(), "leftover": 0}


def _iter_batches(items, case):
    """Batches one worker produces: raw sample lists through list_collate, or single converted
    samples when batch_size is None."""
    if case.batch_size is None:
        return [[x] for x in items]
    out = [items[i:i + case.batch_size] for i in range(0, len(items), case.batch_size)]
    if case.drop_last and out and len(out[-1]) < case.batch_size:
        out.pop()
    return [{"samples": b, "collated_by": b[0][1]} for b in out]


def iterable_rule(case) -> str:
    """The rule an iterable LoaderCase's batches are about: sharding, else per-worker drop_last, else the
    round-robin over replicas of different lengths, else plain replicas."""
    if case.shard:
        return I_SHARD
    if case.drop_last and case.batch_size not in (None, 1):
        return I_DROP_LAST
    if case.num_workers > 1 and len(set(case.lengths)) > 1:
        return I_ROUND_ROBIN
    return I_REPLICA


def worker_info(epochs: list) -> list:
    """The get_worker_info() fields each item saw, in yield order (None in the main process)."""
    return [(row[1], row[2]) for batches in epochs for b in batches
            for row in (b["samples"] if isinstance(b, dict) else b)]


def expectations(case) -> list[Expect]:
    """An iterable LoaderCase: its batches, the worker info every item saw, the generator's next draw,
    and no stray worker."""
    expected = iterable_outcome(case)
    return [Expect(iterable_rule(case), expected["epochs"], key="epochs"),
            Expect(I_INFO, worker_info(expected["epochs"]), key="info"),
            Expect(S_BASE, expected["next"], key="next")] + clean_shutdown()


def datapipe_expectations(case) -> list[Expect]:
    """A DataPipe probe (its items tagged with the worker that produced them, no info fields): the epochs of
    the same case sharded by worker, and nothing left behind."""
    epochs = iterable_outcome(dataclasses.replace(case, shard=True))["epochs"]
    untagged = [[_without_fields(b) for b in batches] for batches in epochs]
    return [Expect(I_DATAPIPE, untagged, key="epochs")] + clean_shutdown()


def _without_fields(batch):
    if isinstance(batch, dict):
        return {**batch, "samples": [[k, w, None] for k, w, _ in batch["samples"]]}
    return [[k, w, None] for k, w, _ in batch]


def datapipe_shuffle_expectations(case) -> list[Expect]:
    """A DataPipe probe loaded with shuffle=True and drop_last=False (so every item is yielded): the
    shuffle's checkable properties, see I_DP_SHUFFLE; below SHUFFLE_CHECKED_ITEMS items the order is
    left open."""
    n = case.lengths[0]
    checked = n >= SHUFFLE_CHECKED_ITEMS
    expected = {"items": [list(range(n))] * case.epochs,
                "reordered": True if checked else OneOf(True, False),
                "reshuffled": False if case.epochs == 1 else (True if checked else OneOf(True, False))}
    return [Expect(I_DP_SHUFFLE, expected)]

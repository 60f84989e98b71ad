"""The multi-worker protocol, seeding, persistent workers, iterable datasets, faults.

Part of the data reference (see reference/data/__init__.py for its independence notes)."""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

import numpy as np

from conform.rules import rule
from reference.versions import since
from conform.outcome import Raised
from reference.data.rng import DOC, LOADER, WORKER, M32, global_seed, MT
from suite.data.torch_side import HANG_TIMEOUT


W_DISPATCH = rule("data.workers.dispatch_round_robin",
                  "With in_order=True, batch i of an epoch is fetched by worker i mod num_workers, each worker "
                  "fetching its batches in order.", f"{LOADER}: _MultiProcessingDataLoaderIter._try_put_index")
W_IN_ORDER = rule("data.workers.in_order_equals_single",
                  "With in_order=True the batches (indices and order) equal the num_workers=0 output for the same "
                  "generator.", f"{LOADER}: DataLoader (in_order)")
W_PREFETCH = rule("data.workers.prefetch_window",
                  "iter() dispatches prefetch_factor * num_workers batches, which the workers fetch before any is "
                  "consumed; each consumed batch dispatches one more.",
                  f"{LOADER}: _MultiProcessingDataLoaderIter._reset, _process_data")
W_UNORDERED_ONCE = rule("data.workers.unordered_exactly_once",
                        "With in_order=False every batch of the sampler is yielded exactly once, with the same "
                        "contents.", f"{LOADER}: DataLoader (in_order)")
W_UNORDERED_BOUND = rule("data.workers.unordered_bound",
                         "With in_order=False the batch yielded at position p has sampler position s <= p + "
                         "prefetch_factor*num_workers - 1 (it was dispatched before the p-th yield), and each worker "
                         "fetches its batches in dispatch order.",
                         f"{LOADER}: _MultiProcessingDataLoaderIter._try_put_index")
W_UNORDERED_DISPATCH = rule("data.workers.unordered_capacity_dispatch",
                            "With in_order=False (map-style) each batch goes to the next worker in round-robin "
                            "order that has fewer than prefetch_factor batches outstanding, so which worker fetches "
                            "which batch follows from the order the results were received in (torch >= 2.7; in "
                            "2.6 every batch goes to the next worker of the cycle, as with in_order=True).",
                            f"{LOADER}: _MultiProcessingDataLoaderIter._try_put_index (distribute work to a worker "
                            "if it has capacity), _process_data; pytorch/pytorch#142324 (2.7)")
I_REPLICA = rule("data.iterable.replicas",
                 "Each worker iterates its own replica of an IterableDataset: without sharding every item appears "
                 "once per worker.", f"{DOC}#torch.utils.data.IterableDataset")
I_ROUND_ROBIN = rule("data.iterable.round_robin",
                     "Batches of an IterableDataset interleave round-robin over workers 0..W-1, skipping workers "
                     "that are exhausted.", f"{LOADER}: _MultiProcessingDataLoaderIter._next_data")
I_DROP_LAST = rule("data.iterable.drop_last_per_worker",
                   "With an IterableDataset, batches are cut per worker; drop_last drops each worker's own short "
                   "final batch.", f"{DOC}#torch.utils.data.IterableDataset; torch/utils/data/_utils/fetch.py")
I_INFO = rule("data.iterable.worker_info",
              "Inside a worker get_worker_info() has id, num_workers, seed = base_seed + id and dataset = this "
              "worker's copy; in the main process it is None.", f"{WORKER}: get_worker_info")
I_SHARD = rule("data.iterable.sharding",
               "Splitting an IterableDataset by worker_info.id/num_workers yields every item exactly once.",
               f"{DOC}#torch.utils.data.IterableDataset (example 1)")
S_BASE = rule("data.seed.base_seed_draw",
              "Each iterator (each epoch without persistent workers) draws one int64 base seed from the loader's "
              "generator (the global RNG when None) before the sampler draws anything.",
              f"{LOADER}: _BaseDataLoaderIter.__init__")
S_WORKER = rule("data.seed.worker_seed",
                "Worker w runs with torch.initial_seed() == base_seed + w.", f"{DOC}#randomness-in-multi-process-data-loading")
S_TORCH = rule("data.seed.worker_torch_stream",
               "Worker w's global torch generator starts as manual_seed(base_seed + w) and advances only with its "
               "own draws.", f"{WORKER}: _worker_loop")
S_PY = rule("data.seed.worker_python_random", "Worker w's `random` module is seeded with base_seed + w.",
            f"{WORKER}: _worker_loop")
S_NP = rule("data.seed.worker_numpy",
            "Worker w's legacy numpy global state is seeded with SeedSequence([w, base & 0xffffffff, base >> 32, 0])"
            ".generate_state(4).", f"{WORKER}: _generate_state")
S_INIT = rule("data.seed.worker_init_fn",
              "worker_init_fn(w) runs once per worker after seeding and before any fetch, on the worker's dataset copy.",
              f"{LOADER}: DataLoader (worker_init_fn)")
S_PERSIST = rule("data.seed.persistent_workers",
                 "With persistent_workers the base seed is drawn once; later epochs reuse the workers without "
                 "re-seeding (their RNG streams continue) and restart dispatch at worker 0.",
                 f"{LOADER}: _MultiProcessingDataLoaderIter._reset")
S_MAIN = rule("data.seed.single_process",
              "With num_workers=0 samples are fetched in the main process: get_worker_info() is None and draws come "
              "from the main global stream after the base seed and sampler draws.", f"{LOADER}: _SingleProcessDataLoaderIter")
F_EXC = rule("data.fault.worker_exception",
             "An exception in a worker is re-raised in the main process at that batch's turn, with its original type "
             "and 'Caught <Type> in DataLoader worker process <w>'; earlier batches are delivered.",
             "torch/_utils.py: ExceptionWrapper.reraise")
F_INIT = rule("data.fault.worker_init_exception",
              "An exception in worker_init_fn of worker w is raised in the main process at w's first batch (batch w "
              "with in_order), with its type and 'Caught <Type> in DataLoader worker process <w>'.",
              f"{WORKER}: _worker_loop (init_exception)")
F_KILL = rule("data.fault.killed_worker",
              "A worker killed by a signal makes the iterator raise RuntimeError naming the worker pid.",
              f"{LOADER}: _MultiProcessingDataLoaderIter._try_get_data; torch/csrc/DataLoader.cpp")
F_TIMEOUT = rule("data.fault.timeout",
                 "A batch not received within `timeout` seconds raises RuntimeError('DataLoader timed out after "
                 "<timeout> seconds').", f"{LOADER}: _MultiProcessingDataLoaderIter._get_data")
F_STRAY = rule("data.fault.no_stray_process",
               "After an epoch ends, fails or the loader is shut down, no worker process remains alive.",
               f"{LOADER}: NOTE [ Data Loader Multiprocessing Shutdown Logic ]")


def np_worker_state(base_seed: int, worker_id: int) -> list[int]:
    return [int(x) for x in np.random.SeedSequence([worker_id, base_seed & M32, base_seed >> 32, 0]).generate_state(4)]


@dataclass
class Proc:
    """The random state a sample fetch sees in one process."""
    wid: int
    initial_seed: int
    torch_mt: MT
    py: random.Random
    np_rs: np.random.RandomState
    token: int = -1

    def draw(self) -> tuple:
        # order matches torch_side._worker_draws: torch int64, random 32 bits, numpy int < 2**31
        return (self.wid, self.initial_seed, self.torch_mt.random64(), self.py.getrandbits(32),
                int(self.np_rs.randint(0, 2**31)))


def worker_proc(base_seed: int, wid: int, init_fn: bool) -> Proc:
    seed = base_seed + wid
    p = Proc(wid, seed, MT(seed), random.Random(seed), np.random.RandomState(np_worker_state(base_seed, wid)))
    if init_fn:
        p.token = p.torch_mt.random64() ^ wid  # torch_side.init_token_fn
    return p


def _batches_of(order: list[int], bs, drop_last: bool) -> list[list[int]]:
    if bs is None:
        return [[i] for i in order]
    out = [order[i:i + bs] for i in range(0, len(order), bs)]
    if drop_last and out and len(out[-1]) < bs:
        out.pop()
    return out


def _epoch_order(case, stream: MT) -> list[int]:
    """The sampler's indices for one epoch, drawn after the base seed."""
    if not case.shuffle:
        return list(range(case.n))
    if case.use_generator:
        order = stream.randperm(case.n)
        stream.randperm(case.n)  # RandomSampler's trailing permutation (num_samples % n == 0), see RS_CONSUME
        return order
    return MT(stream.random64()).randperm(case.n)  # RandomSampler(generator=None): seed from the global stream


def loader_outcome(case, observed=None) -> dict:
    """Exactly what torch_side.torch_loader observes for a map-style LoaderCase.

    For in_order=False the dispatch is timing-dependent, so ``observed`` (per epoch, the
    first sample index and worker id of each yielded batch) is taken as an input: the
    reference maps each to its sampler position s, checks the reordering bound
    s <= p + prefetch_factor*num_workers - 1 at output position p, and predicts contents
    and every random draw given that schedule."""
    main_global = MT(global_seed(case.seed))
    stream = MT(case.seed) if case.use_generator else main_global
    W = case.num_workers
    window = (2 if case.prefetch_factor is None else case.prefetch_factor) * W
    epochs = []
    procs = None
    main = Proc(-1, global_seed(case.seed), main_global, random.Random(case.seed),
                np.random.RandomState(case.seed % 2**32))
    for epoch in range(case.epochs):
        if procs is None or not case.persistent:
            base = stream.random64()
            procs = [worker_proc(base, w, case.init_fn) for w in range(W)] if W else None
        order = _epoch_order(case, stream)
        batches = _batches_of(order, case.batch_size, case.drop_last)
        if W:
            if observed is None:
                assign = [(s, s % W) for s in range(len(batches))]
            else:
                first = {b[0]: s for s, b in enumerate(batches)}
                assign = [(first.get(i, -1), w) for i, w in observed[epoch]]
            out = _fetch_in_workers(batches, assign, procs, case, window if observed is not None else None)
        else:
            out = [_wrap(case, [[i] + list(main.draw()) + [-1] for i in b], -1) for b in batches]
        epochs.append(out)
    return {"epochs": epochs, "next": stream.random64(), "leftover": 0}


def _wrap(case, rows, wid):
    if case.collate == "list":
        return {"samples": rows, "collated_by": wid}
    return rows if case.batch_size is not None else rows


def _fetch_in_workers(batches, assign, procs, case, window) -> list:
    out = []
    bad_batch = None
    if case.fault and case.fault[1] != "slow":  # a slow sample only delays its batch
        bad_batch = next((s for s, b in enumerate(batches) if case.fault[0] in b), None)
    started = set()
    for p, (s, w) in enumerate(assign):
        if w == case.init_fail and w not in started:
            out.append(Raised("ValueError", rf"Caught ValueError in DataLoader worker process {w}\."))
            break
        started.add(w)
        if s < 0 or not 0 <= w < len(procs):
            out.append(Raised("NoSuchBatch", "a yielded batch that the sampler never produced"))
            continue
        if window is not None and s > p + window - 1:
            out.append(Raised("ReorderBound", f"batch {s} yielded at position {p} > bound {p + window - 1}"))
            continue
        if s == bad_batch:
            out.append(fault_outcome(case.fault[1], w))
            break
        proc = procs[w]
        out.append(_wrap(case, [[i] + list(proc.draw()) + [proc.token] for i in batches[s]], w))
    return out


def unordered_dispatch(received: list[int], workers: int, prefetch_factor: int, batches: int,
                       capacity: bool | None = None) -> list[int]:
    """For in_order=False: the worker each received batch (given by sampler position, in the order the
    main process received them) was dispatched to.  Dispatch happens only in the main process: the
    priming puts prefetch_factor*workers batches, then each received batch frees a slot of its worker
    and puts one more; a put takes the next worker in the cycle with < prefetch_factor outstanding
    (max_tasks // active workers, all active for a map-style dataset).  -1: never dispatched.

    ``capacity`` (default: the installed release's contract) selects that capacity rule, documented
    from torch 2.7 on (pytorch/pytorch#142324, "Dataloader distribute tasks to workers when in_order is
    False": a task goes to a worker only if it has fewer than prefetch_factor outstanding).  In torch
    2.6, where in_order was introduced (pytorch/pytorch#141833), out-of-order loading changed only the
    order batches are *returned* in: every put takes the next worker of the cycle, as with in_order=True
    (torch 2.6.0 dataloader.py: _try_put_index breaks on the first active worker)."""
    if capacity is None:
        capacity = since("2.7")
    outstanding = [0] * workers
    worker_of: dict[int, int] = {}
    state = {"cycle": 0, "sent": 0}

    def put():
        if state["sent"] >= batches:  # the sampler is exhausted: the cycle does not advance
            return
        for _ in range(workers):
            w = state["cycle"]
            state["cycle"] = (w + 1) % workers
            if not capacity or outstanding[w] < prefetch_factor:
                break
        else:
            return
        worker_of[state["sent"]] = w
        outstanding[w] += 1
        state["sent"] += 1

    for _ in range(prefetch_factor * workers):
        put()
    out = []
    for s in received:
        w = worker_of.get(s, -1)
        out.append(w)
        if w >= 0:
            outstanding[w] -= 1
        put()
    return out


def unordered_workers_outcome(case, observed) -> list[list[int]]:
    """Per epoch, the expected worker of each yielded batch given the observed receive order
    (``observed``: per epoch, (first sample index, worker id) of each yielded batch)."""
    stream = MT(case.seed) if case.use_generator else MT(global_seed(case.seed))
    pf = 2 if case.prefetch_factor is None else case.prefetch_factor
    out = []
    for epoch in range(case.epochs):
        stream.random64()  # the epoch's base seed (non-persistent: one per iterator)
        batches = _batches_of(_epoch_order(case, stream), case.batch_size, case.drop_last)
        first = {b[0]: s for s, b in enumerate(batches)}
        received = [first.get(i, -1) for i, _ in observed[epoch]]
        out.append(unordered_dispatch(received, case.num_workers, pf, len(batches)))
    return out


def fault_outcome(kind: str, wid: int) -> Raised:
    if kind == "kill":
        return Raised("RuntimeError", r"DataLoader worker \(pid(\(s\))? [\d, ]+\) (exited unexpectedly|is killed by "
                                      r"signal)")
    if kind == "hang":
        # the timeout the Case configures (an input): the message names that value
        return Raised("RuntimeError", rf"DataLoader timed out after {re.escape(str(HANG_TIMEOUT))} seconds")
    return Raised(kind, rf"Caught {kind} in DataLoader worker process {wid}\.")


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


def prefetch_outcome(case) -> list[list[int]]:
    """[batches dispatched, samples fetched] after iter() and after each of the next two next() calls:
    the window is prefetch_factor * num_workers batches, topped up by one per consumed batch."""
    batches = _batches_of(list(range(case.n)), case.batch_size, case.drop_last)
    window = (2 if case.prefetch_factor is None else case.prefetch_factor) * case.num_workers
    seen = []
    for consumed in range(3):
        if consumed and consumed > len(batches):
            break
        sent = min(window + consumed, len(batches))
        seen.append([sent, sum(len(b) for b in batches[:sent])])
    return seen

"""The multi-worker protocol for map-style datasets, seeding, persistent workers, faults.

Part of the data reference (see reference/data/__init__.py for its independence notes).  The
torch side observes one run of a LoaderCase whole (suite/data/torch_side/workers.py: run_loader);
each family of checks below says which part of that observation each rule is about."""
from __future__ import annotations

import dataclasses
import random
import re
from dataclasses import dataclass

import numpy as np

from conform.expect import Expect
from conform.outcome import OneOf, Raised
from conform.rules import rule
from reference.versions import since
from reference.data.collate import C_CUSTOM_FN
from reference.data.rng import DOC, LOADER, WORKER, M32, global_seed, MT


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
W_PICKLE = rule("data.workers.start_method_pickling",
                "spawn and forkserver workers receive the dataset, collate_fn and worker_init_fn by pickling: one "
                "that pickle cannot name (a lambda) makes iter() raise the pickling error and start no worker; "
                "fork workers inherit them, and loading proceeds as usual.",
                f"{DOC}#platform-specific-behaviors (functions are pickled as references only, not bytecode); "
                f"{LOADER}: _MultiProcessingDataLoaderIter.__init__ (Got pickle error when attempting to start a "
                "worker Process)")
L_PIN = rule("data.loader.pin_memory_values",
             "pin_memory=True (with or without the deprecated pin_memory_device) changes where a batch's tensors "
             "live, not their values: the batches (and every draw) are those of the same loader without it -- also "
             "without an accelerator, where nothing is pinned.",
             f"{LOADER}: DataLoader (pin_memory: copy Tensors into device pinned memory before returning them)")
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
F_RECV = rule("data.fault.receive_error",
              "An error while the main process receives a batch from a worker (here: a batch that cannot be "
              "unpickled there) is raised from next() with its own type and message; the loader is then shut "
              "down like after any other error.",
              f"{LOADER}: _MultiProcessingDataLoaderIter._try_get_data (at timeout and error, check whether any "
              "worker has failed, else raise)")
F_STRAY = rule("data.fault.no_stray_process",
               "After an epoch ends, fails or the loader is shut down, no worker process remains alive.",
               f"{LOADER}: NOTE [ Data Loader Multiprocessing Shutdown Logic ]")
F_SHM = rule("data.fault.no_leaked_shared_memory",
             "After an epoch ends, fails or the loader is shut down and released, no shared-memory file of the run "
             "remains in /dev/shm: neither a torch_<pid>_* storage of the main process or a worker, nor an entry "
             "(e.g. a multiprocessing semaphore) the main process still maps -- whatever the start method.",
             "https://pytorch.org/docs/stable/multiprocessing.html#sharing-strategies (file_descriptor: the shm "
             f"file is removed once opened); {LOADER}: NOTE [ DataLoader on Linux and open files limit ] (we remove "
             "those files from the filesystem as soon as they are created)")


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
        # order matches suite.data.torch_side.probes.worker_draws: torch int64, random 32 bits, numpy int < 2**31
        return (self.wid, self.initial_seed, self.torch_mt.random64(), self.py.getrandbits(32),
                int(self.np_rs.randint(0, 2**31)))


def worker_proc(base_seed: int, wid: int, init_fn: bool) -> Proc:
    seed = base_seed + wid
    p = Proc(wid, seed, MT(seed), random.Random(seed), np.random.RandomState(np_worker_state(base_seed, wid)))
    if init_fn:
        p.token = p.torch_mt.random64() ^ wid  # suite.data.torch_side.probes.init_token_fn
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
    """{"epochs", "next", "leftover"}: what run_loader observes of a map-style LoaderCase.

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
    if case.collate in ("list", "unpicklable"):
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
            out.append(fault_outcome(case, w))
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


def fault_outcome(case, wid: int) -> Raised:
    kind = case.fault[1]
    if kind == "kill":
        return Raised("RuntimeError", r"DataLoader worker \(pid(\(s\))? [\d, ]+\) (exited unexpectedly|is killed by "
                                      r"signal)")
    if kind == "unloadable":
        return Raised("ValueError", r"^probe sample cannot be loaded in the main process$")
    if kind in ("hang", "stuck"):
        # the timeout the Case configures (an input): the message names that value
        return Raised("RuntimeError", rf"DataLoader timed out after {re.escape(str(case.timeout))} seconds")
    return Raised(kind, rf"Caught {kind} in DataLoader worker process {wid}\.")


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


# ---------------------------------------------------------------- expectations, one function per family of checks
NO_STRAY = 0  # F_STRAY: worker processes alive after the epochs and the shutdown
NO_LEAK: list = []  # F_SHM: the run's shared-memory entries left in /dev/shm


def clean_shutdown() -> list[Expect]:
    """What a multi-worker run leaves behind, whatever its start method: no worker process, no
    shared-memory entry."""
    return [Expect(F_STRAY, NO_STRAY, key="leftover"), Expect(F_SHM, NO_LEAK, key="leaked_shm")]
# Each sample row's columns (suite.data.torch_side.probes.MapProbe) and the rule each one is about, by the key
# of the observation that holds that column; column 0, the index, belongs to the ordering rules.
COLUMN_RULES = (("indices", None), ("workers", W_DISPATCH), ("initial_seeds", S_WORKER), ("torch_draws", S_TORCH),
                ("python_draws", S_PY), ("numpy_draws", S_NP), ("init_tokens", S_INIT))


def _samples(batch) -> list:
    return batch["samples"] if isinstance(batch, dict) else batch


def column(epochs: list, k: int) -> list:
    """Per epoch, per batch: column ``k`` of the sample rows; errors kept as they are."""
    return [[b if isinstance(b, Raised) else [row[k] for row in _samples(b)] for b in batches] for batches in epochs]


def in_order_expectations(case) -> list[Expect]:
    """A map-style loader with workers and in_order=True: the batches equal the single-process ones, every
    column of every sample is predicted, then the generator's next draw and no stray worker."""
    expected = loader_outcome(case)
    single = loader_outcome(dataclasses.replace(case, num_workers=0, prefetch_factor=None))
    out = [Expect(W_IN_ORDER, column(single["epochs"], 0), key="indices")]
    if case.collate == "list":
        out.append(Expect(C_CUSTOM_FN, expected["epochs"], key="epochs"))
    out += [Expect(rule_id, column(expected["epochs"], k), key=key)
            for k, (key, rule_id) in enumerate(COLUMN_RULES) if rule_id is not None]
    return out + [Expect(S_BASE, expected["next"], key="next")] + clean_shutdown()


def single_process_expectations(case) -> list[Expect]:
    """num_workers=0: the batches, the main stream's next draw, and no worker process."""
    expected = loader_outcome(case)
    return [Expect(S_MAIN, expected["epochs"], key="epochs"), Expect(S_MAIN, expected["next"], key="next"),
            Expect(S_MAIN, NO_STRAY, key="leftover")]


def pin_memory_expectations(case) -> list[Expect]:
    """pin_memory=True: the batches and the next draw of the same loader without it."""
    expected = loader_outcome(case)
    epochs = expected["epochs"]
    if case.pin_memory_device and not since("2.9"):
        # Before 2.9 a named pin_memory_device is pinned to as given ("the device to pin_memory to if pin_memory
        # is True"), whether the machine has it or not (dataloader.py 2.4.1-2.8.0: `self._pin_memory =
        # loader.pin_memory` where only the unnamed case asks torch.cuda/accelerator.is_available(); from 2.9.1
        # on every case asks), so on a machine without it the first batch's pinning may fail instead.
        epochs = OneOf(epochs, [[Raised("RuntimeError|AssertionError")] for _ in range(case.epochs)])
    return [Expect(L_PIN, epochs, key="epochs"), Expect(L_PIN, expected["next"], key="next")]


def persistent_expectations(case) -> list[Expect]:
    """persistent_workers over several epochs: the batches and the base seed drawn once."""
    expected = loader_outcome(case)
    return [Expect(S_PERSIST, expected["epochs"], key="epochs"),
            Expect(S_PERSIST, expected["next"], key="next")] + clean_shutdown()


def fault_rule(case) -> str:
    """The rule a faulty LoaderCase is about: a failing worker_init_fn, else the kind of its sample's fault."""
    if case.init_fail >= 0:
        return F_INIT
    return {"kill": F_KILL, "hang": F_TIMEOUT, "stuck": F_TIMEOUT, "unloadable": F_RECV}.get(case.fault[1], F_EXC)


def fault_expectations(case) -> list[Expect]:
    """A fault in a worker: the batches up to the error (a failing index dropped by drop_last is never
    fetched: the epoch completes normally), then no stray worker."""
    return [Expect(fault_rule(case), loader_outcome(case)["epochs"], key="epochs")] + clean_shutdown()


def pickling_expectations(case) -> list[Expect]:
    """A loader whose collate_fn pickle cannot name: the epochs under fork; under spawn and forkserver
    every epoch's iter() raises the pickling error (the type depends on the Python release: pickle's
    PicklingError, or AttributeError for a local object).  Nothing is left behind either way."""
    if case.start_method == "fork":
        epochs = loader_outcome(case)["epochs"]
    else:
        epochs = [[Raised("PicklingError|AttributeError|TypeError", r"(?i)pickle|local object")]] * case.epochs
    return [Expect(W_PICKLE, epochs, key="epochs")] + clean_shutdown()


def unordered_expectations(case) -> list[Expect]:
    """in_order=False: every batch of the sampler exactly once (order-free)."""
    once = [sorted(epoch) for epoch in column(loader_outcome(case)["epochs"], 0)]
    return [Expect(W_UNORDERED_ONCE, once, key="sorted_batches")]


def scheduled_expectations(case, schedule: list) -> list[Expect]:
    """in_order=False, given the observed dispatch (per epoch, (first sample index, worker id) of each
    yielded batch, an input here): the reordering bound with the contents and draws each batch must have,
    and which worker each batch went to, following from the order the results were received in."""
    return [Expect(W_UNORDERED_BOUND, loader_outcome(case, observed=schedule)["epochs"], key="epochs"),
            Expect(W_UNORDERED_DISPATCH, unordered_workers_outcome(case, schedule), key="unordered_workers")]


def prefetch_expectations(case) -> list[Expect]:
    return [Expect(W_PREFETCH, prefetch_outcome(case))]

"""The parts of torch.utils.data that a CPU run of the data area cannot reach, and why (see suite/unreached.py).

Not listed here, because the public API reaches them (gaps of the suite, shown as "not reached"): a DataPipe
under an initialized process group; the "too many open files" diagnosis of _try_get_data (it needs a receive
error while the main process is within 10 descriptors of RLIMIT_NOFILE: lowering the limit of the test process
itself, or of a subprocess with file_descriptor sharing, is neither cheap nor reliably bounded on a loaded
machine); a worker idling 5 s for its next task, and a worker still alive 5 s (MP_STATUS_CHECK_INTERVAL) after
the shutdown request, which _shutdown_workers then terminates -- each costs at least 5 s of the ci budget;
a worker stopped by Ctrl-C (a KeyboardInterrupt in a sample ends the worker quietly, seen by the main
process only after its timeout or 5 s); and a num_workers made negative after construction (iter() then fails
an AssertionError of _MultiProcessingDataLoaderIter.__init__).
"""
from __future__ import annotations

from suite.unreached import CUDA_ONLY, DEPRECATED, UNREACHABLE, Unreached

LOADER = "utils/data/dataloader.py"
WORKER = "utils/data/_utils/worker.py"
_PIN = ("pin_memory=True pins only where an accelerator is available (_BaseDataLoaderIter.__init__: "
        "self._pin_memory = loader.pin_memory and torch.accelerator.is_available()); without one no pin-memory "
        "thread starts")
_MPS = "pin memory on the MPS accelerator (macOS) is switched off with a warning (pytorch/pytorch#86060)"
_INVARIANT = "an internal consistency check of the iterator's own bookkeeping, which no argument or dataset can break"
_WINDOWS = ("the Windows implementation (IS_WINDOWS): it watches the manager process through kernel32 "
            "handles; on Linux the POSIX ManagerWatchdog below it runs")


def _places(file: str, reason: str, why: str, places) -> list[Unreached]:
    """One entry per (function, text of the range's first line or None) with the same reason and sentence."""
    return [Unreached(file, function, reason, why, contains) for function, contains in places]


_ITER = "_MultiProcessingDataLoaderIter."
UNREACHED = [
    # ---- pin memory: needs an accelerator
    *_places(LOADER, CUDA_ONLY, _MPS, [("_BaseDataLoaderIter.__init__", "self._pin_memory = False"),
                                       ("_BaseDataLoaderIter.__init__", "warnings.warn(warn_msg, stacklevel=2)")]),
    *_places(LOADER, CUDA_ONLY, _PIN, [
        ("_SingleProcessDataLoaderIter._next_data", None),
        (_ITER + "__init__", "self._pin_memory_thread_done_event = threading.Event()"),
        (_ITER + "__init__", "self._data_queue = queue.Queue()"),
        (_ITER + "__init__", "pin_memory_thread.daemon"),
        (_ITER + "__init__", "self._pin_memory_thread = pin_memory_thread"),
        (_ITER + "__init__", "self._register_persistent_workers_atexit()"),  # persistent workers + pin thread
        (_ITER + "_get_data", "pin_memory_thread"),
        (_ITER + "_get_data", "Pin memory thread exited"),
        (_ITER + "_shutdown_workers", "_pin_memory_thread"),
        (_ITER + "_shutdown_workers", "self._worker_result_queue.put((None, None))"),
        (_ITER + "_clean_up_persistent_workers_atexit", None),
        (_ITER + "_register_persistent_workers_atexit", None)]),
    # ---- dead code and the iterator's own consistency checks
    Unreached(LOADER, "_BaseDataLoaderIter._next_data", UNREACHABLE,
              "the abstract method of the base iterator: DataLoader only builds its two subclasses, which override it"),
    Unreached(LOADER, "_BaseDataLoaderIter.__next__", UNREACHABLE,
              "_sampler_iter is set in __init__ and _reset and never None (the TODO of pytorch/pytorch#76750)",
              contains="self._reset()"),
    *_places(LOADER, UNREACHABLE, _INVARIANT, [(_ITER + name, "raise AssertionError(") for name in
                                               ("_reset", "_next_data", "_try_put_index", "_mark_worker_as_unavailable")]),
    Unreached(LOADER, "_SingleProcessDataLoaderIter.__init__", UNREACHABLE,
              "DataLoader._get_iterator builds the single-process iterator only when loader.num_workers == 0, and "
              "_BaseDataLoaderIter.__init__ reads that same attribute just before this check",
              contains="raise AssertionError("),
    Unreached(LOADER, "_MultiProcessingDataLoaderIter.__init__", UNREACHABLE,
              "DataLoader._get_iterator builds the multi-process iterator only when loader.num_workers > 0, and "
              "__init__ refuses a negative num_workers", contains="raise AssertionError("),
    Unreached(LOADER, "_sharding_worker_init_fn", UNREACHABLE,
              "DataLoader installs this function (a functools.partial) as worker_init_fn only for a DataPipe "
              "dataset (_MultiProcessingDataLoaderIter.__init__), and a worker calls it with its worker info set "
              "and that dataset as info.dataset, so neither check can fail", contains="raise AssertionError("),
    Unreached(LOADER, _ITER + "_shutdown_workers", UNREACHABLE,
              "runs only while the Python interpreter itself is shutting down (python_exit_status; NOTE [ Data "
              "Loader Multiprocessing Shutdown Logic ] (2)), after a test can observe anything", contains="return"),
    # ---- worker.py: the Windows watchdog and the worker loop's consistency checks
    *_places(WORKER, UNREACHABLE, _WINDOWS, [
        ("<module>", "import ctypes"), ("<module>", "from ctypes.wintypes"), ("ManagerWatchdog", None),
        *[("ManagerWatchdog.__init__", text) for text in ("kernel32", "SYNCHRONIZE", "manager_handle",
                                                          "self.manager_dead = False")],
        *[("ManagerWatchdog.is_alive", text) for text in ("def is_alive", "self.manager_dead = (",
                                                          "return not self.manager_dead")]]),
    Unreached(WORKER, "_worker_loop", UNREACHABLE,
              "a consistency check between the main process and its workers (a shared seed for every IterDataPipe "
              "worker, the final None only after done_event or the end of an iterable)", contains="raise AssertionError("),
    # ---- datasets, samplers, fetchers
    Unreached("utils/data/dataset.py", "ConcatDataset.cummulative_sizes", DEPRECATED,
              "the misspelt alias of cumulative_sizes, deprecated with a FutureWarning "
              "(torch/utils/data/dataset.py: @deprecated('`cummulative_sizes` attribute is renamed to "
              "`cumulative_sizes`'))"),
    Unreached("utils/data/distributed.py", "DistributedSampler.__init__", UNREACHABLE,
              "only a torch built without torch.distributed has dist.is_available() False; every Linux wheel has it",
              contains="raise RuntimeError(\"Requires distributed package to be available\")"),
    Unreached("utils/data/distributed.py", "DistributedSampler.__iter__", UNREACHABLE,
              "a consistency check of the padded and subsampled index lists, whose lengths __init__ computed",
              contains="raise AssertionError("),
    Unreached("utils/data/_utils/fetch.py", "_BaseDatasetFetcher.fetch", UNREACHABLE,
              "the abstract method of the internal fetcher base class; DataLoader builds only its map and iterable "
              "subclasses"),
]

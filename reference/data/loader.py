"""DataLoader construction: validation order, defaults, len() and the length warning.

Part of the data reference (see reference/data/__init__.py for its independence notes)."""
from __future__ import annotations

from conform.expect import Expect
from conform.outcome import OneOf, Raised
from conform.rules import rule
from reference.data.rng import DOC, LOADER


L_WORKERS = rule("data.loader.num_workers_negative", "num_workers < 0 raises ValueError (checked first).",
                 f"{LOADER}: DataLoader.__init__")
L_TIMEOUT = rule("data.loader.timeout_negative", "timeout < 0 raises ValueError.", f"{LOADER}: DataLoader.__init__")
L_TIMEOUT_MOOT = rule("data.loader.timeout_without_workers",
                      "timeout bounds only the collection of a batch from workers: with num_workers=0 any "
                      "non-negative timeout is accepted and moot -- the loader yields the batches it yields with "
                      "timeout=0 (nothing documents a refusal).",
                      f"{DOC}#torch.utils.data.DataLoader (timeout: 'if positive, the timeout value for collecting "
                      "a batch from workers. Should always be non-negative.')")
L_PREFETCH = rule("data.loader.prefetch_without_workers",
                  "prefetch_factor with num_workers=0 raises ValueError; with workers it defaults to 2.",
                  f"{LOADER}: DataLoader.__init__")
L_PREFETCH_POS = rule("data.loader.prefetch_factor_positive",
                      "prefetch_factor must be a positive number of batches per worker; a value that cannot load "
                      "anything is rejected with ValueError when the DataLoader is built.",
                      f"{DOC}#torch.utils.data.DataLoader (prefetch_factor: number of batches loaded in advance "
                      "by each worker)")
L_PERSIST = rule("data.loader.persistent_without_workers", "persistent_workers=True with num_workers=0 raises "
                 "ValueError.", f"{LOADER}: DataLoader.__init__")
L_ITER_SHUFFLE = rule("data.loader.iterable_shuffle",
                      "An IterableDataset with shuffle other than None/False raises ValueError.",
                      f"{LOADER}: DataLoader.__init__")
L_ITER_SAMPLER = rule("data.loader.iterable_sampler",
                      "An IterableDataset with a sampler or batch_sampler raises ValueError.",
                      f"{LOADER}: DataLoader.__init__")
L_SAMPLER_SHUFFLE = rule("data.loader.sampler_shuffle_exclusive", "sampler with shuffle=True raises ValueError.",
                         f"{LOADER}: DataLoader.__init__")
L_BATCH_SAMPLER = rule("data.loader.batch_sampler_exclusive",
                       "batch_sampler with batch_size != 1, shuffle, sampler or drop_last raises ValueError.",
                       f"{LOADER}: DataLoader.__init__")
L_NONE_DROP = rule("data.loader.batch_size_none_drop_last", "batch_size=None with drop_last=True raises ValueError.",
                   f"{LOADER}: DataLoader.__init__")
L_DEFAULTS = rule("data.loader.default_samplers",
                  "Without a sampler: RandomSampler if shuffle else SequentialSampler (an infinite constant sampler "
                  "for iterables); a BatchSampler wraps it when batch_size is set; collate is default_collate with "
                  "batching, default_convert without.", f"{LOADER}: DataLoader.__init__")
L_LEN_MAP = rule("data.loader.len_map", "len(loader) of a map-style dataset, and of each of its iterators, is len "
                 "of its (batch) sampler.", f"{LOADER}: DataLoader.__len__, _BaseDataLoaderIter.__len__")
L_ITER_PICKLE = rule("data.loader.iterator_not_picklable",
                     "A DataLoader iterator (single- or multi-process) cannot be pickled: pickling it raises "
                     "NotImplementedError ('... cannot be pickled').",
                     f"{LOADER}: _BaseDataLoaderIter.__getstate__")
L_LEN_ITER = rule("data.loader.len_iterable",
                  "len(loader) of an IterableDataset is len(dataset), divided by batch_size (ceil, floor with "
                  "drop_last); TypeError without __len__.", f"{LOADER}: DataLoader.__len__")
L_LEN_WARN = rule("data.loader.iterable_len_warning",
                  "After len(loader) was taken, the iterator warns at each batch beyond that length.",
                  f"{LOADER}: NOTE [ IterableDataset and __len__ ]")


L_MP_CONTEXT = rule("data.loader.multiprocessing_context",
                    "multiprocessing_context with num_workers=0 raises ValueError; with workers a str that is not an "
                    "available start method raises ValueError, and a value that is neither a str nor a "
                    "multiprocessing context raises TypeError; a valid name or context selects that start method.",
                    f"{LOADER}: DataLoader.multiprocessing_context (setter)")
L_FROZEN = rule("data.loader.frozen_attributes",
                "After construction, assigning batch_size, batch_sampler, sampler, drop_last, dataset or "
                "persistent_workers raises ValueError('<attr> attribute should not be set after DataLoader is "
                "initialized'); other attributes (num_workers, timeout, collate_fn, ...) can be assigned.",
                f"{LOADER}: DataLoader.__setattr__")
FROZEN_ATTRS = ("batch_size", "batch_sampler", "sampler", "drop_last", "dataset", "persistent_workers")


def loader_attr_outcome(case) -> dict:
    """{"context": start method name or None, or Raised; "set": "ok" or Raised} for a LoaderAttrCase."""
    import multiprocessing  # the platform's start methods (the standard library, not under test)

    ctx = case.context
    if ctx != "none" and case.num_workers == 0:
        context = Raised("ValueError", r"multiprocessing_context can only be used with multi-process loading")
    elif ctx == "object":
        context = Raised("TypeError", r"multiprocessing_context option should be a valid context object")
    elif ctx in ("none", "spawn_context"):
        context = None if ctx == "none" else "spawn"
    elif ctx in multiprocessing.get_all_start_methods():
        context = ctx
    else:
        context = Raised("ValueError", r"should specify a valid start method")
    if isinstance(context, Raised):
        return {"context": context}
    if case.attr in FROZEN_ATTRS:
        return {"context": context,
                "set": Raised("ValueError", rf"^{case.attr} attribute should not be set after DataLoader is initialized")}
    return {"context": context, "set": "ok"}


def construction_error(case):
    """(rule, error) of the first failing construction check, in the documented order; None if none fails."""
    it, shuffle = case.iterable, case.shuffle
    if case.num_workers < 0:
        return L_WORKERS, Raised("ValueError", r"num_workers option should be non-negative")
    if case.timeout < 0:
        return L_TIMEOUT, Raised("ValueError", r"timeout option should be non-negative")
    if case.num_workers == 0 and case.prefetch_factor is not None:
        return L_PREFETCH, Raised("ValueError", r"prefetch_factor option could only be specified in multiprocessing")
    if case.num_workers > 0 and case.prefetch_factor is not None and case.prefetch_factor <= 0:
        return L_PREFETCH_POS, Raised("ValueError", r"prefetch_factor")
    if case.persistent_workers and case.num_workers == 0:
        return L_PERSIST, Raised("ValueError", r"persistent_workers option needs num_workers > 0")
    if it and shuffle not in (None, False):
        return L_ITER_SHUFFLE, Raised("ValueError", r"expected unspecified shuffle option")
    if it and (case.sampler or case.batch_sampler):
        return L_ITER_SAMPLER, Raised("ValueError", r"expected unspecified (batch_)?sampler option")
    if case.sampler and shuffle:
        return L_SAMPLER_SHUFFLE, Raised("ValueError", r"sampler option is mutually exclusive with shuffle")
    if case.batch_sampler and (case.batch_size != 1 or shuffle or case.sampler or case.drop_last):
        return L_BATCH_SAMPLER, Raised("ValueError", r"batch_sampler option is mutually exclusive")
    if not case.batch_sampler and case.batch_size is None and case.drop_last:
        return L_NONE_DROP, Raised("ValueError", r"mutually exclusive with drop_last")
    return None


def loader_config(case) -> dict:
    """What a DataLoader built from a valid LoaderArgsCase picks: sampler, batch sampler, batch_size,
    drop_last, collate_fn and prefetch_factor, and with ``iterate`` its first batch."""
    batch_size, drop_last = (None, False) if case.batch_sampler else (case.batch_size, case.drop_last)
    if case.iterable:
        sampler = "_InfiniteConstantSampler"
    elif case.sampler:
        sampler = "SequentialSampler"
    else:
        sampler = "RandomSampler" if case.shuffle else "SequentialSampler"
    batching = case.batch_sampler or batch_size is not None
    out = {"sampler": sampler, "batch_sampler": "BatchSampler" if batching else None,
           "batch_size": batch_size, "drop_last": drop_last,
           "collate_fn": "default_collate" if batching else "default_convert",
           "prefetch_factor": (2 if case.prefetch_factor is None else case.prefetch_factor) if case.num_workers else None}
    if case.iterate:
        out["first"] = _first_batch(case, batch_size, drop_last)
    return out


def loader_len(case):
    """len(loader) of a valid LoaderArgsCase (an IterableDataset without __len__: TypeError)."""
    batch_size, drop_last = (None, False) if case.batch_sampler else (case.batch_size, case.drop_last)
    if case.iterable:
        if case.declared_len is None:
            return Raised("TypeError")
        if batch_size is None:
            return case.declared_len
        return case.declared_len // batch_size if drop_last else -(-case.declared_len // batch_size)
    if case.batch_sampler:
        return -(-case.n // 2)
    if batch_size is None:
        return case.n
    return case.n // batch_size if drop_last else -(-case.n // batch_size)


NOT_BUILT = None  # run_loader_args' "len" where DataLoader refused to build (a question of L_DEFAULTS, not of len)


def expectations(case) -> list[Expect]:
    """A LoaderArgsCase: the first failing check's error, in the documented order; else the defaults picked
    (L_DEFAULTS) and len(loader) under the map-style or iterable length rule.  Whether the loader is built
    at all is the defaults' question, so the length rule holds of a built loader only."""
    error = construction_error(case)
    if error is not None:
        return [Expect(error[0], error[1], key="config")]
    out = [Expect(L_DEFAULTS, loader_config(case), key="config"),
           Expect(L_LEN_ITER if case.iterable else L_LEN_MAP, OneOf(loader_len(case), NOT_BUILT), key="len")]
    if case.iterate:  # an iterator was made: its length (map-style) and pickling it
        if not case.iterable:
            out.append(Expect(L_LEN_MAP, loader_len(case), key="iter_len"))
        out.append(Expect(L_ITER_PICKLE, Raised("NotImplementedError", r"cannot be pickled"), key="pickle"))
    return out


def _first_batch(case, batch_size, drop_last):
    if case.n == 0 or (batch_size is not None and drop_last and case.n < batch_size):
        return None
    if case.shuffle and not case.iterable:
        return "shuffled"  # a placeholder: no strategy asks for the first shuffled batch
    if batch_size is None and not case.batch_sampler:
        return 0
    size = 2 if case.batch_sampler else batch_size
    return list(range(min(size, case.n)))


def attr_expectations(case) -> list[Expect]:
    """A LoaderAttrCase: the start method kept (or the error), then, for a built loader, the assignment."""
    expected = loader_attr_outcome(case)
    out = [Expect(L_MP_CONTEXT, expected["context"], key="context")]
    if "set" in expected:
        out.append(Expect(L_FROZEN, expected["set"], key="set"))
    return out


def len_warning_expectations(case) -> list[Expect]:
    return [Expect(L_LEN_WARN, iterable_len_warning_outcome(case))]


def iterable_len_warning_outcome(case) -> dict:
    """The rule's reading: warn at every batch number beyond len(loader)."""
    bs = case.batch_size
    length = case.declared_len if bs is None else (case.declared_len // bs if case.drop_last else -(-case.declared_len // bs))
    produced = case.n if bs is None else (case.n // bs if case.drop_last else -(-case.n // bs))
    return {"len": length, "warned_at": list(range(length + 1, produced + 1))}


def timeout_expectations(case) -> list[Expect]:
    """A valid LoaderArgsCase without workers, loaded for one epoch: its batches, whatever its timeout."""
    return [Expect(L_TIMEOUT_MOOT, loader_batches(case))]


def loader_batches(case) -> list:
    """Every batch of one epoch of a valid LoaderArgsCase over the items 0..n-1 in order (no shuffle, no
    sampler): single items without batching, else lists of batch_size (the last one short unless drop_last)."""
    items = list(range(case.n))
    if case.batch_size is None:
        return items
    batches = [items[i:i + case.batch_size] for i in range(0, len(items), case.batch_size)]
    return [b for b in batches if len(b) == case.batch_size or not case.drop_last]

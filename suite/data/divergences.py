"""Known divergences of torch.utils.data from its documented behaviour.

Every range is the one measured on the release matrix (2.4.1 .. 2.15.0, CPU): it starts at 2.4,
the oldest release measured, wherever the repro already reproduces there."""
from __future__ import annotations

import dataclasses
import functools

import numpy as np
import torch

from conform.outcome import OneOf, Raised
from reference.data import collate as collate_ref
from reference.data import datasets as datasets_ref
from reference.data import iterable as iterable_ref
from reference.data import loader as loader_ref
from reference.data import samplers as samplers_ref
from reference.data.rng import global_seed
from reference.versions import since
from suite.data.cases import CollateCase, DatasetCase, LoaderArgsCase, LoaderCase, SamplerCase, make_batch
from suite.data.torch_side.collate import run_collate
from suite.data.torch_side.datasets import run_dataset
from suite.data.torch_side.loader import run_iterable_len_warning, run_loader_args, run_loader_batches
from suite.data.torch_side.rng import u64
from suite.data.torch_side.samplers import run_sampler
from suite.data.torch_side.workers import run_datapipe_shuffle
from suite.divergences import Divergence

# One family per Case type: the reference's expectations and the torch-side runner the area's tests use.
_sampler_entry = functools.partial(Divergence, case_type=SamplerCase, run=run_sampler,
                                   expect=lambda case, device: samplers_ref.expectations(case))
_loader_args_entry = functools.partial(Divergence, case_type=LoaderArgsCase, run=run_loader_args,
                                       expect=lambda case, device: loader_ref.expectations(case))
_len_warning_entry = functools.partial(Divergence, case_type=LoaderArgsCase, run=run_iterable_len_warning,
                                       expect=lambda case, device: loader_ref.len_warning_expectations(case))
_timeout_entry = functools.partial(Divergence, case_type=LoaderArgsCase, run=run_loader_batches,
                                   expect=lambda case, device: loader_ref.timeout_expectations(case))
_datapipe_shuffle_entry = functools.partial(Divergence, case_type=LoaderCase, run=run_datapipe_shuffle,
                                            expect=lambda case, device: iterable_ref.datapipe_shuffle_expectations(case))
_collate_entry = functools.partial(Divergence, case_type=CollateCase, run=run_collate,
                                   expect=lambda case, device: collate_ref.expectations(case, make_batch(case, device)))
_dataset_entry = functools.partial(Divergence, case_type=DatasetCase, run=run_dataset,
                                   expect=lambda case, device: datasets_ref.expectations(case, device))


def _weighted_short_of_nonzero(case) -> bool:
    if case.kind != "weighted" or samplers_ref.sampler_rule(case) == samplers_ref.W_VALID:
        return False
    positive = sum(1 for w in case.weights if w > 0)
    return (case.kind == "weighted" and case.replacement is False and isinstance(case.num_samples, int)
            and not isinstance(case.num_samples, bool) and positive < case.num_samples <= len(case.weights))


def _weighted_race_as_built(case) -> dict:
    """torch as built: every pass runs the exponential race over all the weights and never raises; the
    zero weights' keys w/Exp(1) tie at 0 behind every positive one, in an order topk leaves unspecified (so
    each such position is any zero-weight index).  The Exp(1) noise comes from a generator in the
    sampler's state (the same primitive the reference uses)."""
    g = torch.Generator().manual_seed(case.seed if case.use_generator else global_seed(case.seed))
    zeros = [j for j, w in enumerate(case.weights) if w == 0]
    passes = []
    for _ in range(case.passes):
        noise = torch.empty(len(case.weights), dtype=torch.float64).exponential_(1, generator=g).tolist()
        keys = {j: w / e for j, (w, e) in enumerate(zip(case.weights, noise)) if w > 0}
        ranked = sorted(keys, key=lambda j: -keys[j])
        passes.append(ranked + [OneOf(*zeros)] * (case.num_samples - len(ranked)))
    return {"passes": passes, "next": u64(g)}


def _weighted_zero_torch(case, expected):
    # W_ZERO is about two parts of the sampler's outcome: the passes (a list) and the stream's next draw
    as_built = _weighted_race_as_built(case)
    return as_built["passes"] if isinstance(expected, list) else as_built["next"]


def _random_num_samples_true(case) -> bool:
    return case.kind == "random" and case.num_samples is True and isinstance(case.replacement, bool)


def _prefetch_zero(case) -> bool:
    return (case.num_workers > 0 and case.prefetch_factor == 0 and case.timeout >= 0)


def _prefetch_zero_torch(case, expected):
    # torch accepts 0 at construction (only negatives are rejected), so every later check and the
    # defaults apply as for a valid prefetch_factor; iterating then fails an internal assertion.
    valid = dataclasses.replace(case, prefetch_factor=1, iterate=False)
    error = loader_ref.construction_error(valid)
    if error is not None:
        return error[1]
    out = loader_ref.loader_config(valid)
    out["prefetch_factor"] = 0
    if case.iterate:
        # a bare `assert self._prefetch_factor > 0` (empty message) up to torch 2.9; from 2.10 an explicit
        # AssertionError with a message (measured on 2.9.1 and 2.10.0; dataloader.py of each release)
        out["first"] = Raised("AssertionError", r"prefetch_factor must be greater than 0 for MultiProcessingDataLoaderIter"
                              if since("2.10") else r"^$")
    return out


def _tensor_sizes_differ(case) -> bool:
    return case.kind == "tensor" and len(set(case.sizes)) > 1


def _tensor_sizes_unchecked_torch(case, expected):
    # the check never fires: len is the first tensor's size, and item i indexes every tensor
    if any(case.index >= size for size in case.sizes):
        return Raised("IndexError", r"out of bounds")
    return datasets_ref.dataset_outcome(dataclasses.replace(case, sizes=(case.sizes[0],) * len(case.sizes)), "cpu")


NUMPY_BOOL_ERROR = r"'numpy\.bool' object cannot be interpreted as an integer"


def _children(spec) -> list:
    """The sub-specs of a container spec, in the order collate and default_convert visit them."""
    kind = spec[0]
    if kind == "map":
        return [sub for _, sub in spec[2]]
    if kind == "namedtuple":
        return [spec[1], spec[2]]
    if kind in ("tuple", "list", "row"):
        return list(spec[1])
    if kind == "ragged":
        return [spec[1]]
    return []


def _is_numpy_bool(spec) -> bool:
    return spec[0] == "npscalar" and spec[1] == "bool_"


def _first_collate_event(spec, batch: int):
    """Walks a collate spec in the order collate() visits it: "numpy_bool" where a numpy bool scalar is
    reached first, "error" where another documented error (unsupported type, string array, sparse,
    unequal lengths) is raised first, None where collation succeeds."""
    kind = spec[0]
    if _is_numpy_bool(spec):
        return "numpy_bool"
    if kind in ("none", "opaque", "sparse") or (kind == "ndarray" and spec[1].lstrip("<>=|")[0] in "SaUO"):
        return "error"
    if kind == "ragged" and batch > 1:  # the length check comes before the positions are collated
        return "error"
    for child in _children(spec):
        event = _first_collate_event(child, batch)
        if event:
            return event
    return None


def _has_numpy_bool(spec) -> bool:
    return _is_numpy_bool(spec) or any(_has_numpy_bool(child) for child in _children(spec))


def _numpy_bool_reached(case) -> bool:
    # NumPy 1.x numpy.bool still has a (deprecated) __index__, and torch 2.4.1 then returns the documented
    # bool tensor (measured with NumPy 1.26.4, with a DeprecationWarning): the bug needs NumPy >= 2
    if np.lib.NumpyVersion(np.__version__) < "2.0.0":
        return False
    if case.mode == "convert":  # default_convert converts every sample, and every value in it
        return _has_numpy_bool(case.spec)
    return _first_collate_event(case.spec, case.batch) == "numpy_bool"


def _shuffle_empty(case) -> bool:
    return (not case.iterable and case.n == 0 and bool(case.shuffle) and not case.sampler
            and loader_ref.construction_error(case) is None)


def _batched_len_warning(case) -> bool:
    expected = loader_ref.iterable_len_warning_outcome(case)
    return case.batch_size not in (None, 1) and bool(expected["warned_at"])


def _batched_len_warning_torch(case, expected):
    # torch compares the number of *batches* yielded with len(dataset), the *sample* count
    bs = case.batch_size
    produced = case.n // bs if case.drop_last else -(-case.n // bs)
    return {"len": expected["len"], "warned_at": list(range(case.declared_len + 1, produced + 1))}


def _timeout_without_workers(case) -> bool:
    return case.num_workers == 0 and case.timeout > 0 and loader_ref.construction_error(case) is None


def _timeout_assertion(case, expected):
    # a bare `assert self._timeout == 0` (empty message) up to torch 2.9, an explicit AssertionError with a
    # message from 2.10 (read in dataloader.py of 2.4.1 .. 2.15.0; measured: `torchconform matrix --registry-only`
    # ran the repro on all 12 releases and it reproduced, with this message split, on each)
    return Raised("AssertionError", r"_SingleProcessDataLoaderIter requires timeout == 0" if since("2.10") else r"^$")


def _datapipe_shuffler_dropped(case) -> bool:
    return (case.iterable and case.datapipe and case.shuffle is True and not case.shuffler
            and case.lengths[0] >= iterable_ref.SHUFFLE_CHECKED_ITEMS)


def _datapipe_input_order(case, expected):
    # every epoch is the DataPipe's own order: all items, each epoch in input order, no epoch reshuffled
    return {"items": expected["items"], "reordered": False, "reshuffled": False}


DIVERGENCES = [
    _sampler_entry(
        id="data-weighted-zero-weight-drawn",
        rule=samplers_ref.W_ZERO,
        torch=">=2.4",
        reason="WeightedRandomSampler(replacement=False) asked for more samples than there are non-zero weights "
               "returns zero-weight indices instead of raising; which zero-weight indices (ties in topk of keys "
               "w/Exp(1) = 0) is unspecified: each such position may be any zero-weight index",
        evidence="https://github.com/pytorch/pytorch/issues/48841 , https://github.com/pytorch/pytorch/issues/50034 "
                 "(torch.multinomial docs: num_samples must be lower than the number of non-zero elements); "
                 "aten/src/ATen/native/Distributions.cpp multinomial only checks n_sample <= n_categories",
        when=_weighted_short_of_nonzero,
        torch_does=_weighted_zero_torch,
        repro=SamplerCase(kind="weighted", n=3, seed=0, weights=(1.0, 0.0, 2.0), num_samples=3, replacement=False),
    ),
    _sampler_entry(
        id="data-random-sampler-num-samples-bool",
        arguable=True,  # shared/research/registry-audit.md: bool is an int in Python; a consistency nit
        rule=samplers_ref.RS_VALID,
        torch=">=2.4",
        reason="RandomSampler accepts num_samples=True as 1 (isinstance(True, int)), while WeightedRandomSampler "
               "and BatchSampler reject bools for the same kind of argument with ValueError",
        evidence="torch/utils/data/sampler.py: RandomSampler.__init__ checks isinstance(num_samples, int) only; "
                 "WeightedRandomSampler.__init__ and BatchSampler.__init__ add `or isinstance(x, bool)`",
        when=_random_num_samples_true,
        torch_does=lambda case, expected: samplers_ref.sampler_outcome(dataclasses.replace(case, num_samples=1)),
        repro=SamplerCase(kind="random", n=4, seed=1, num_samples=True),
    ),
    _loader_args_entry(
        id="data-prefetch-factor-zero",
        rule=loader_ref.L_PREFETCH_POS,
        torch=">=2.4",
        reason="prefetch_factor=0 with num_workers>0 passes DataLoader's check (only negatives are rejected) and "
               "fails later, at iter(), with AssertionError('prefetch_factor must be greater than 0 for "
               "MultiProcessingDataLoaderIter'): an invalid argument surfaces as an internal assertion",
        evidence="https://github.com/pytorch/pytorch/issues/196089 (open; proposed fix "
                 "https://github.com/pytorch/pytorch/pull/196093 rejects <= 0 with ValueError at construction); "
                 "torch/utils/data/dataloader.py: DataLoader.__init__ (`prefetch_factor < 0`) vs "
                 "_MultiProcessingDataLoaderIter.__init__ (`assert prefetch_factor > 0` up to 2.9, an explicit "
                 "AssertionError with a message from 2.10); the prefetch_factor docstring is the same on every "
                 "release 2.4 .. 2.15 (a number of batches loaded in advance by each worker)",
        when=_prefetch_zero,
        torch_does=_prefetch_zero_torch,
        repro=LoaderArgsCase(iterable=False, n=4, num_workers=2, prefetch_factor=0, iterate=True),
    ),
    _len_warning_entry(
        id="data-iterable-len-warning-counts-batches-against-samples",
        rule=loader_ref.L_LEN_WARN,
        torch=">=2.4",
        reason="With batch_size > 1 the 'Length of IterableDataset ... samples have been fetched' warning compares "
               "the number of batches yielded with len(dataset) (a sample count) instead of len(loader): an "
               "iterable dataset yielding more than its __len__ goes unwarned until batches exceed samples",
        evidence="torch/utils/data/dataloader.py: DataLoader.__len__ stores len(dataset) in "
                 "_IterableDataset_len_called; _BaseDataLoaderIter.__next__ compares _num_yielded (batches) with it; "
                 "see https://github.com/pytorch/pytorch/pull/40344 (proposal to count samples)",
        when=_batched_len_warning,
        torch_does=_batched_len_warning_torch,
        repro=LoaderArgsCase(iterable=True, n=10, batch_size=2, declared_len=4),
    ),
    _loader_args_entry(
        id="data-shuffle-empty-map-dataset",
        arguable=True,  # shared/research/registry-audit.md: RandomSampler's positivity check is deliberate and doubles as an empty-dataset guard
        rule=loader_ref.L_DEFAULTS,
        torch=">=2.4",
        reason="DataLoader(empty map-style dataset, shuffle=True) raises ValueError('num_samples should be a "
               "positive integer value, but got num_samples=0') at construction -- an argument the caller never "
               "passed -- while shuffle=False accepts the same dataset and yields nothing; the DataLoader docs "
               "document no such restriction (the check is RandomSampler's, inherited by the default sampler)",
        evidence="torch/utils/data/dataloader.py: DataLoader.__init__ builds RandomSampler(dataset) for shuffle=True; "
                 "torch/utils/data/sampler.py: RandomSampler.__init__ rejects num_samples=len(dataset)=0; many user "
                 "reports, e.g. https://github.com/yunjey/pytorch-tutorial/issues/235",
        when=_shuffle_empty,
        torch_does=lambda case, expected: Raised("ValueError", r"num_samples should be a positive integer value, "
                                                               r"but got num_samples=0"),
        repro=LoaderArgsCase(iterable=False, n=0, shuffle=True),
    ),
    _timeout_entry(
        id="data-timeout-without-workers-asserts",
        rule=loader_ref.L_TIMEOUT_MOOT,
        torch=">=2.4",
        reason="DataLoader(num_workers=0, timeout>0) is accepted at construction (only timeout < 0 is refused) and "
               "then iter() fails an internal assertion of _SingleProcessDataLoaderIter (AssertionError, empty up to "
               "2.9, '_SingleProcessDataLoaderIter requires timeout == 0' from 2.10) instead of loading: the "
               "documented timeout bounds only the collection of a batch from workers and is refused nowhere",
        evidence="torch/utils/data/dataloader.py (2.13.0): DataLoader.__init__ checks only `timeout < 0` (line 284) "
                 "and stores it (305); _SingleProcessDataLoaderIter.__init__ `if self._timeout != 0: raise "
                 "AssertionError(...)` (760-761; `assert self._timeout == 0` in 2.4.1 .. 2.9.1), while the "
                 "multi-process iterator reads it only to bound a get from its workers (_next_data/_get_data, "
                 "`if self._timeout > 0`, 1444); the worker-only options prefetch_factor, persistent_workers and "
                 "multiprocessing_context are refused at construction with ValueError, timeout is not; "
                 "https://github.com/pytorch/pytorch/issues/106634 (open: the reporter expected the timeout to be "
                 "ignored without workers)",
        when=_timeout_without_workers,
        torch_does=_timeout_assertion,
        repro=LoaderArgsCase(iterable=False, n=4, timeout=5.0),
    ),
    _datapipe_shuffle_entry(
        id="data-datapipe-shuffle-added-shuffler-dropped",
        rule=iterable_ref.I_DP_SHUFFLE,
        torch=">=2.4",
        reason="DataLoader(an IterDataPipe without a Shuffler, shuffle=True) warns '`shuffle=True` was set, but the "
               "datapipe does not contain a `Shuffler`. Adding one at the end.' and then yields every epoch in the "
               "DataPipe's input order: the Shuffler apply_shuffle_settings adds is bound to DataLoader.__init__'s "
               "local `dataset` after self.dataset was stored, and never reaches the iterators (a graph that has "
               "a Shuffler is set in place and is shuffled)",
        evidence="torch/utils/data/dataloader.py (2.13.0): DataLoader.__init__ `self.dataset = dataset` (line 300) "
                 "and its _IterDataPipeSerializationWrapper (312-313), then `dataset = torch.utils.data."
                 "graph_settings.apply_shuffle_settings(dataset, shuffle=shuffle)` (349-352), never assigned to "
                 "self.dataset; torch/utils/data/graph_settings.py apply_shuffle_settings: the warning (115), "
                 "`datapipe = datapipe.shuffle()` (120), `return datapipe` (128); the same lines in 2.4.1 "
                 "(dataloader.py 257, 269, 306) .. 2.15.0",
        when=_datapipe_shuffler_dropped,
        torch_does=_datapipe_input_order,
        repro=LoaderCase(n=0, iterable=True, datapipe=True, shuffle=True, lengths=(12,), num_workers=0,
                         batch_size=None, epochs=2, seed=0),
    ),
    _collate_entry(
        id="data-collate-numpy-bool-scalar",
        rule=collate_ref.C_NPSCALAR,
        also_rules=(collate_ref.C_CUSTOM_MAP, collate_ref.C_CONVERT, collate_ref.C_WORKER, collate_ref.C_MAP,
                    collate_ref.C_NT, collate_ref.C_SEQ),
        torch=">=2.4,<2.9",
        reason="default_collate, collate(collate_fn_map=...) and default_convert (batch_size=None) raise "
               "TypeError(\"'numpy.bool' object cannot be interpreted as an integer\") for numpy bool scalars "
               "(under NumPy 2) instead of returning a bool tensor: collate_numpy_scalar_fn and default_convert "
               "call torch.as_tensor, whose scalar conversion treated numpy.bool as an integer; the error "
               "surfaces wherever collation reaches such a scalar (inside mappings, namedtuples, sequences, "
               "and re-raised from a DataLoader worker)",
        evidence="https://github.com/pytorch/pytorch/issues/157973 ('numpy.bool' object cannot be interpreted as "
                 "an integer, NumPy >= 2), fixed by https://github.com/pytorch/pytorch/pull/158036 "
                 "(THPUtils_unpackNumberAsBool recognises numpy.bool); measured with NumPy 2.4: torch.as_tensor("
                 "np.bool_(True)) raises on 2.4.1 .. 2.8.0 and returns tensor(True) from 2.9.1 on",
        when=_numpy_bool_reached,
        torch_does=lambda case, expected: Raised("TypeError", NUMPY_BOOL_ERROR),
        repro=CollateCase(spec=("npscalar", "bool_"), batch=3, seed=1),
    ),
    _dataset_entry(
        id="data-tensor-dataset-size-check-never-fires",
        rule=datasets_ref.DS_TENSOR,
        torch=">=2.10,<2.11",
        devices=("cpu",),  # measured on CPU; torch_does cannot name another device's tensors
        reason="TensorDataset accepts tensors whose first dimensions differ: the size check became "
               "`if all(t0.size(0) != t.size(0) for t in tensors): raise` (always False, since t0 equals itself), "
               "so len() is the first tensor's size and indexing past a shorter tensor raises IndexError later",
        evidence="torch 2.10.0 torch/utils/data/dataset.py: TensorDataset.__init__ (all instead of any, when the "
                 "`assert all(... == ...)` was rewritten as a raise); fixed by "
                 "https://github.com/pytorch/pytorch/pull/171795 ('Fix broken size mismatch check in __init__ "
                 "(always False)'), in 2.11.0 (`any`); measured: 2.9.1 and 2.11.0 raise AssertionError, 2.10.0 accepts",
        when=_tensor_sizes_differ,
        torch_does=_tensor_sizes_unchecked_torch,
        repro=DatasetCase("tensor", sizes=(2, 1), index=0),
    ),
]

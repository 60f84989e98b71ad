"""Known divergences of torch.utils.data from its documented behaviour (torch 2.13 CPU)."""
from __future__ import annotations

import dataclasses

from reference import data as R
from suite.compare import Raised
from suite.data.torch_side import (LoaderArgsCase, SamplerCase, sampler_passes, torch_sampler,
                                   torch_iterable_len_warning, torch_loader_args)
from suite.divergences import Divergence


def _weighted_short_of_nonzero(case) -> bool:
    positive = sum(1 for w in case.weights if w > 0)
    return (case.kind == "weighted" and case.replacement is False and isinstance(case.num_samples, int)
            and not isinstance(case.num_samples, bool) and positive < case.num_samples <= len(case.weights))


def _random_num_samples_true(case) -> bool:
    return case.kind == "random" and case.num_samples is True and isinstance(case.replacement, bool)


def _prefetch_zero(case) -> bool:
    return (case.num_workers > 0 and case.prefetch_factor == 0 and case.timeout >= 0)


def _prefetch_zero_torch(case, expected):
    # torch accepts 0 at construction (only negatives are rejected), so every later check and the
    # defaults apply as for a valid prefetch_factor; iterating then fails an internal assertion.
    _, out = R.loader_args_outcome(dataclasses.replace(case, prefetch_factor=1, iterate=False))
    if isinstance(out, Raised):
        return out
    out["prefetch_factor"] = 0
    if case.iterate:
        out["first"] = Raised("AssertionError", "prefetch_factor must be greater than 0 for MultiProcessingDataLoaderIter")
    return out


def _shuffle_empty(case) -> bool:
    return (not case.iterable and case.n == 0 and bool(case.shuffle) and not case.sampler
            and not isinstance(R.loader_args_outcome(case)[1], Raised))


def _batched_len_warning(case) -> bool:
    expected = R.iterable_len_warning_outcome(case)
    return case.batch_size not in (None, 1) and bool(expected["warned_at"])


def _batched_len_warning_torch(case, expected):
    # torch compares the number of *batches* yielded with len(dataset), the *sample* count
    bs = case.batch_size
    produced = case.n // bs if case.drop_last else -(-case.n // bs)
    return {"len": expected["len"], "warned_at": list(range(case.declared_len + 1, produced + 1))}


DIVERGENCES = [
    Divergence(
        id="data-weighted-zero-weight-drawn",
        rule=R.W_ZERO,
        torch=">=2.0",
        reason="WeightedRandomSampler(replacement=False) asked for more samples than there are non-zero weights "
               "returns zero-weight indices instead of raising; which zero-weight indices (ties in topk of keys "
               "w/Exp(1) = 0) is unspecified, so any deviation within `when` is accepted",
        evidence="https://github.com/pytorch/pytorch/issues/48841 , https://github.com/pytorch/pytorch/issues/50034 "
                 "(torch.multinomial docs: num_samples must be lower than the number of non-zero elements); "
                 "aten/src/ATen/native/Distributions.cpp multinomial only checks n_sample <= n_categories",
        when=_weighted_short_of_nonzero,
        torch_does=None,
        repro=SamplerCase(kind="weighted", n=3, seed=0, weights=(1.0, 0.0, 2.0), num_samples=3, replacement=False),
        reference_fn=lambda case: R.sampler_outcome(case)["passes"] if not isinstance(R.sampler_outcome(case), Raised)
        else R.sampler_outcome(case),
        torch_fn=sampler_passes,
    ),
    Divergence(
        id="data-random-sampler-num-samples-bool",
        rule=R.RS_VALID,
        torch=">=2.0",
        reason="RandomSampler accepts num_samples=True as 1 (isinstance(True, int)), while WeightedRandomSampler "
               "and BatchSampler reject bools for the same kind of argument with ValueError",
        evidence="torch/utils/data/sampler.py: RandomSampler.__init__ checks isinstance(num_samples, int) only; "
                 "WeightedRandomSampler.__init__ and BatchSampler.__init__ add `or isinstance(x, bool)`",
        when=_random_num_samples_true,
        torch_does=lambda case, expected: R.sampler_outcome(dataclasses.replace(case, num_samples=1)),
        repro=SamplerCase(kind="random", n=4, seed=1, num_samples=True),
        reference_fn=R.sampler_outcome,
        torch_fn=torch_sampler,
    ),
    Divergence(
        id="data-prefetch-factor-zero",
        rule=R.L_PREFETCH_POS,
        torch=">=2.0",
        reason="prefetch_factor=0 with num_workers>0 passes DataLoader's check (only negatives are rejected) and "
               "fails later, at iter(), with AssertionError('prefetch_factor must be greater than 0 for "
               "MultiProcessingDataLoaderIter'): an invalid argument surfaces as an internal assertion",
        evidence="torch/utils/data/dataloader.py: DataLoader.__init__ (`prefetch_factor < 0`) vs "
                 "_MultiProcessingDataLoaderIter.__init__ (`prefetch_factor <= 0` -> AssertionError)",
        when=_prefetch_zero,
        torch_does=_prefetch_zero_torch,
        repro=LoaderArgsCase(iterable=False, n=4, num_workers=2, prefetch_factor=0, iterate=True),
        reference_fn=lambda case: R.loader_args_outcome(case)[1],
        torch_fn=torch_loader_args,
    ),
    Divergence(
        id="data-iterable-len-warning-counts-batches-against-samples",
        rule=R.L_LEN_WARN,
        torch=">=1.6",
        reason="With batch_size > 1 the 'Length of IterableDataset ... samples have been fetched' warning compares "
               "the number of batches yielded with len(dataset) (a sample count) instead of len(loader): an "
               "iterable dataset yielding more than its __len__ goes unwarned until batches exceed samples",
        evidence="torch/utils/data/dataloader.py: DataLoader.__len__ stores len(dataset) in "
                 "_IterableDataset_len_called; _BaseDataLoaderIter.__next__ compares _num_yielded (batches) with it; "
                 "see https://github.com/pytorch/pytorch/pull/40344 (proposal to count samples)",
        when=_batched_len_warning,
        torch_does=_batched_len_warning_torch,
        repro=LoaderArgsCase(iterable=True, n=10, batch_size=2, declared_len=4),
        reference_fn=R.iterable_len_warning_outcome,
        torch_fn=torch_iterable_len_warning,
    ),
    Divergence(
        id="data-shuffle-empty-map-dataset",
        rule=R.L_DEFAULTS,
        torch=">=1.0",
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
        reference_fn=lambda case: R.loader_args_outcome(case)[1],
        torch_fn=torch_loader_args,
    ),
]

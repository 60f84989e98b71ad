"""Torch side of the samplers: order, length, validation and generator consumption."""
from __future__ import annotations

import torch
from torch.utils.data import (BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler,
                              WeightedRandomSampler)
from torch.utils.data.distributed import DistributedSampler

from conform.outcome import Raised
from suite.data.cases import SamplerCase
from suite.data.torch_side.probes import one_rank_group
from suite.data.torch_side.rng import u64


def make_sampler(case: SamplerCase, g: torch.Generator | None, rank: int | None = None):
    data = range(case.n)
    if case.kind == "base":
        return Sampler()
    if case.kind == "sequential":
        return SequentialSampler(data)
    if case.kind == "random":
        return RandomSampler(data, replacement=case.replacement, num_samples=case.num_samples, generator=g)
    if case.kind == "subset_random":
        return SubsetRandomSampler(list(case.indices), generator=g)
    if case.kind == "weighted":
        return WeightedRandomSampler(list(case.weights), case.num_samples, replacement=case.replacement, generator=g)
    if case.kind == "batch":
        inner = RandomSampler(data, generator=g) if case.inner == "random" else SequentialSampler(data)
        return BatchSampler(inner, case.batch_size, case.drop_last)
    if case.kind == "distributed":
        # shuffle, seed, drop_last given as None are left out of the call
        given = {"shuffle": case.shuffle, "seed": case.dist_seed,
                 "drop_last": None if case.drop_last is None else bool(case.drop_last)}
        return DistributedSampler(data, num_replicas=case.num_replicas, rank=case.rank if rank is None else rank,
                                  **{k: v for k, v in given.items() if v is not None})
    raise ValueError(case.kind)


def run_sampler(case: SamplerCase, device: str):
    """{"len", "passes": one list per pass (per epoch for DistributedSampler), "next": the
    stream's next int64 draw after all passes (explicit generator, or the global one)}, or the
    constructor's error."""
    torch.manual_seed((case.seed ^ 0x5EED) % 2**63)  # the global stream, seeded identically by the reference
    g = torch.Generator().manual_seed(case.seed) if case.use_generator else None
    try:
        with one_rank_group(case.process_group):  # (a distributed case's num_replicas/rank may come from it)
            sampler = make_sampler(case, g)
    except Exception as exc:
        return Raised.from_exception(exc)
    passes = []
    try:
        if case.kind == "distributed":
            for epoch in case.epochs:
                sampler.set_epoch(epoch)
                passes.append(list(sampler))
        else:
            for _ in range(case.passes):
                passes.append(list(sampler))
    except Exception as exc:
        passes.append(Raised.from_exception(exc))
    try:
        length = len(sampler)
    except TypeError as exc:  # a sampler without __len__
        length = Raised.from_exception(exc)
    return {"len": length, "passes": passes, "next": u64(g)}


def run_distributed_all_ranks(case: SamplerCase, device: str):
    """Every rank's indices for the first epoch (rank striding and padding, seen together)."""
    out = []
    for rank in range(case.num_replicas):
        sampler = make_sampler(case, None, rank=rank)
        sampler.set_epoch(case.epochs[0])
        out.append(list(sampler))
    return out

"""Samplers: order, length, validation and generator consumption.

Part of the data reference (see reference/data/__init__.py for its independence notes)."""
from __future__ import annotations

import math

from conform.expect import Expect
from conform.outcome import Raised
from conform.rules import rule
from reference.data.rng import SAMPLER, global_seed, MT


S_BASE = rule("data.sampler.base_class",
              "The Sampler base class provides no iteration: iterating it raises NotImplementedError (every "
              "subclass provides __iter__), and it has no __len__ (len() raises TypeError); it draws nothing.",
              f"{SAMPLER}: Sampler ('Every Sampler subclass has to provide an :meth:`__iter__` method'; NOTE [ Lack "
              "of Default `__len__` in Python Abstract Base Classes ])")
SEQ_ORDER = rule("data.sampler.sequential.order", "SequentialSampler yields 0..len-1 in order, every pass.",
                 f"{SAMPLER}: SequentialSampler")
RS_PERM = rule("data.sampler.random.permutation",
               "RandomSampler without replacement yields one randperm(n) per pass.", f"{SAMPLER}: RandomSampler")
RS_TRUNC = rule("data.sampler.random.truncated",
                "RandomSampler(num_samples=k<n) yields the first k entries of a fresh randperm(n).",
                f"{SAMPLER}: RandomSampler.__iter__")
RS_REPEAT = rule("data.sampler.random.repeated",
                 "RandomSampler(num_samples=k>n) yields k//n full permutations, then a prefix of length k%n of "
                 "another.", f"{SAMPLER}: RandomSampler.__iter__")
RS_REPL = rule("data.sampler.random.replacement",
               "RandomSampler(replacement=True) yields randint(n) draws in chunks of 32, then the remainder.",
               f"{SAMPLER}: RandomSampler.__iter__")
RS_CONSUME = rule("data.sampler.random.consumption",
                  "Per pass RandomSampler consumes num_samples//n + 1 randperm(n) (the last one even when unused) "
                  "or num_samples randint draws from its generator.", f"{SAMPLER}: RandomSampler.__iter__")
RS_GLOBAL = rule("data.sampler.random.global_seed",
                 "With generator=None, each pass draws one int64 seed from the global RNG and permutes with a "
                 "private generator seeded with it.", f"{SAMPLER}: RandomSampler.__iter__")
RS_VALID = rule("data.sampler.random.validation",
                "RandomSampler rejects a non-bool replacement (TypeError) and a num_samples that is not a positive "
                "int (ValueError).", f"{SAMPLER}: RandomSampler.__init__")
RS_LEN = rule("data.sampler.random.len", "len(RandomSampler) is num_samples, default len(data_source).",
              f"{SAMPLER}: RandomSampler.__len__")
SUBSET_ORDER = rule("data.sampler.subset_random.order",
                    "SubsetRandomSampler yields indices[p] for p in randperm(len(indices)) drawn directly from its "
                    "generator (the global RNG when None), one permutation per pass.",
                    f"{SAMPLER}: SubsetRandomSampler")
W_REPL = rule("data.sampler.weighted.replacement",
              "WeightedRandomSampler(replacement=True, num_samples>1) yields torch.multinomial draws with "
              "replacement (inverse CDF of the float64 weights; only their ratios matter).",
              f"{SAMPLER}: WeightedRandomSampler (weights: not necessary summing up to one; as_tensor(dtype=double))")
W_NOREPL = rule("data.sampler.weighted.exponential_race",
                "WeightedRandomSampler without replacement (or with one sample) orders indices by weight/Exp(1) "
                "noise, largest first: distinct indices.",
                "aten/src/ATen/native/Distributions.cpp: multinomial (no-replacement fast path)")
W_ZERO = rule("data.sampler.weighted.zero_weight",
              "A weight of zero is never sampled; without replacement, asking for more samples than non-zero "
              "weights raises RuntimeError.",
              "https://pytorch.org/docs/stable/generated/torch.multinomial.html (num_samples must be lower than "
              "the number of non-zero elements)")
W_LEN = rule("data.sampler.weighted.len", "len(WeightedRandomSampler) is num_samples.",
             f"{SAMPLER}: WeightedRandomSampler.__len__")
W_VALID = rule("data.sampler.weighted.validation",
               "WeightedRandomSampler rejects num_samples that is not a positive int (bool included), a non-bool "
               "replacement and non-1-D weights, all with ValueError.", f"{SAMPLER}: WeightedRandomSampler.__init__")
B_CHUNK = rule("data.sampler.batch.chunks",
               "BatchSampler groups the inner sampler's indices into lists of batch_size, the last possibly short.",
               f"{SAMPLER}: BatchSampler.__iter__")
B_DROP = rule("data.sampler.batch.drop_last", "BatchSampler(drop_last=True) drops the final short batch.",
              f"{SAMPLER}: BatchSampler.__iter__")
B_LEN = rule("data.sampler.batch.len",
             "len(BatchSampler) is floor(len/bs) with drop_last, else ceil(len/bs).", f"{SAMPLER}: BatchSampler.__len__")
B_VALID = rule("data.sampler.batch.validation",
               "BatchSampler rejects batch_size that is not a positive int (bool included) and a non-bool drop_last "
               "with ValueError.", f"{SAMPLER}: BatchSampler.__init__")
D_PAD = rule("data.sampler.distributed.padding",
             "DistributedSampler without drop_last pads the index list by wrapping around to a multiple of "
             "num_replicas.", "torch/utils/data/distributed.py: DistributedSampler.__iter__")
D_DROP = rule("data.sampler.distributed.drop_last",
              "DistributedSampler(drop_last=True) truncates to the largest multiple of num_replicas.",
              "torch/utils/data/distributed.py: DistributedSampler.__init__")
D_SHUFFLE = rule("data.sampler.distributed.shuffle_seed_epoch",
                 "DistributedSampler(shuffle=True) permutes with randperm from a generator seeded seed + epoch; "
                 "set_epoch changes the next pass only.", "torch/utils/data/distributed.py: DistributedSampler")
D_STRIDE = rule("data.sampler.distributed.rank_stride",
                "Rank r takes positions r, r + R, r + 2R... of the padded list: ranks are disjoint in position and "
                "together cover it.", "torch/utils/data/distributed.py: DistributedSampler.__iter__")
D_LEN = rule("data.sampler.distributed.len",
             "len(DistributedSampler) is ceil(n/R), or ceil((n-R)/R) with drop_last when R does not divide n.",
             "torch/utils/data/distributed.py: DistributedSampler.__init__")
D_VALID = rule("data.sampler.distributed.validation",
               "DistributedSampler raises ValueError for rank outside [0, num_replicas-1]; num_replicas or rank "
               "left as None is taken from the current distributed group, so without an initialized process group "
               "construction raises (ValueError or RuntimeError from torch.distributed).",
               "torch/utils/data/distributed.py: DistributedSampler.__init__")
D_DEFAULTS = rule("data.sampler.distributed.defaults",
                  "DistributedSampler's shuffle, seed and drop_last, left out, are True, 0 and False: the sampler "
                  "yields, epoch by epoch, what shuffle=True, seed=0, drop_last=False yields.",
                  "torch/utils/data/distributed.py: DistributedSampler (shuffle: 'If ``True`` (default)'; seed: "
                  "'Default: ``0``'; drop_last: 'Default: ``False``')")
D_GROUP = rule("data.sampler.distributed.from_group",
               "num_replicas and rank left as None are the world size and the rank of the current (default) process "
               "group: under an initialized one-rank group, 1 and 0.",
               "torch/utils/data/distributed.py: DistributedSampler (num_replicas: 'By default, world_size is "
               "retrieved from the current distributed group'; rank: 'By default, rank is retrieved from the "
               "current distributed group')")

# The process group a SamplerCase with process_group runs under: world size 1, rank 0.
GROUP_WORLD_SIZE, GROUP_RANK = 1, 0


def _dist_args(case):
    """(num_replicas, rank, shuffle, seed, drop_last) of a distributed case, the ones left out resolved: from
    the process group (None without one), and the documented defaults True, 0, False."""
    replicas, rank = case.num_replicas, case.rank
    if case.process_group:
        replicas = GROUP_WORLD_SIZE if replicas is None else replicas
        rank = GROUP_RANK if rank is None else rank
    return (replicas, rank, True if case.shuffle is None else case.shuffle,
            0 if case.dist_seed is None else case.dist_seed, False if case.drop_last is None else bool(case.drop_last))


def _nested(weights) -> bool:
    """Weights given as rows (a 2-D sequence) rather than one flat sequence."""
    return any(isinstance(w, tuple) for w in weights)


def _positive_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x > 0


def sampler_rule(case) -> str:
    """The most specific ordering rule a sampler case exercises."""
    if case.kind == "base":
        return S_BASE
    if case.kind == "sequential":
        return SEQ_ORDER
    if case.kind == "random":
        if not isinstance(case.replacement, bool) or not _positive_int(case.num_samples if case.num_samples is not None else case.n):
            return RS_VALID
        if case.replacement:
            return RS_REPL
        k = case.n if case.num_samples is None else case.num_samples
        return RS_PERM if k == case.n else (RS_TRUNC if k < case.n else RS_REPEAT)
    if case.kind == "subset_random":
        return SUBSET_ORDER
    if case.kind == "weighted":
        if not _positive_int(case.num_samples) or not isinstance(case.replacement, bool) or _nested(case.weights):
            return W_VALID
        if sum(1 for w in case.weights if w > 0) < len(case.weights):
            return W_ZERO
        return W_REPL if case.replacement and case.num_samples > 1 else W_NOREPL
    if case.kind == "batch":
        if not _positive_int(case.batch_size) or not isinstance(case.drop_last, bool):
            return B_VALID
        return B_DROP if case.drop_last else B_CHUNK
    replicas, rank, shuffle, _, drop_last = _dist_args(case)
    if replicas is None or rank is None or not 0 <= rank < replicas:
        return D_VALID
    if None in (case.shuffle, case.dist_seed, case.drop_last):
        return D_DEFAULTS
    if case.num_replicas is None or case.rank is None:
        return D_GROUP
    if shuffle:
        return D_SHUFFLE
    return D_DROP if drop_last else D_PAD


def _random_sampler_pass(n: int, replacement: bool, k: int, g: MT) -> list[int]:
    if replacement:
        out = []
        for _ in range(k // 32):
            out += g.randint(n, 32)
        return out + g.randint(n, k % 32)
    out = []
    for _ in range(k // n):
        out += g.randperm(n)
    return out + g.randperm(n)[: k % n]


def _weighted_pass(weights, k: int, replacement: bool, tg):
    """``tg`` is a torch.Generator used only as the exponential-noise primitive (see module doc)."""
    positive = sum(1 for w in weights if w > 0)
    if not replacement and k > positive:
        return Raised("RuntimeError", None)
    if replacement and k > 1:
        return tg.multinomial_replacement(weights, k)  # tg is our MT on this path
    import torch  # primitive only: Exp(1) noise from the same generator state

    q = torch.empty(len(weights), dtype=torch.float64).exponential_(1, generator=tg).tolist()
    keys = [w / e for w, e in zip(weights, q)]
    order = sorted(range(len(weights)), key=lambda j: -keys[j])  # ties have probability ~0
    return order[:k]


def distributed_indices(n: int, replicas: int, rank: int, shuffle: bool, seed: int, epoch: int, drop_last: bool):
    if drop_last and n % replicas:
        per_rank = math.ceil((n - replicas) / replicas)
    else:
        per_rank = math.ceil(n / replicas)
    total = per_rank * replicas
    order = MT(seed + epoch).randperm(n) if shuffle else list(range(n))
    padded = (order * (total // n + 1))[:total] if not drop_last else order[:total]
    return padded[rank::replicas], per_rank


def sampler_outcome(case):
    """{"len", "passes", "next"} or Raised, what suite.data.torch_side.samplers.run_sampler observes."""
    glob = MT(global_seed(case.seed))
    g = MT(case.seed) if case.use_generator else None
    stream = g if g is not None else glob
    n = case.n
    if case.kind == "base":
        return {"len": Raised("TypeError"), "passes": [Raised("NotImplementedError")], "next": stream.random64()}
    if case.kind == "sequential":
        return {"len": n, "passes": [list(range(n))] * case.passes, "next": stream.random64()}
    if case.kind == "random":
        if not isinstance(case.replacement, bool):
            return Raised("TypeError", r"replacement should be a boolean")
        k = n if case.num_samples is None else case.num_samples
        if not _positive_int(k):
            return Raised("ValueError", r"num_samples should be a positive integer")
        passes = []
        for _ in range(case.passes):
            # generator=None: one int64 from the global stream seeds a private generator per pass
            source = g if g is not None else MT(glob.random64())
            passes.append(_random_sampler_pass(n, case.replacement, k, source))
        return {"len": k, "passes": passes, "next": stream.random64()}
    if case.kind == "subset_random":
        idx = list(case.indices)
        passes = [[idx[p] for p in stream.randperm(len(idx))] for _ in range(case.passes)]
        return {"len": len(idx), "passes": passes, "next": stream.random64()}
    if case.kind == "weighted":
        if not _positive_int(case.num_samples):
            return Raised("ValueError", r"num_samples should be a positive integer")
        if not isinstance(case.replacement, bool):
            return Raised("ValueError", r"replacement should be a boolean")
        if _nested(case.weights):
            return Raised("ValueError", r"weights should be a 1d sequence")
        race = not (case.replacement and case.num_samples > 1)
        seed = case.seed if case.use_generator else global_seed(case.seed)
        if race:
            import torch  # Exp(1) noise primitive only (see module doc): a generator in the same state

            tg = torch.Generator().manual_seed(seed)
        else:
            tg = MT(seed)
        passes = []
        for _ in range(case.passes):
            result = _weighted_pass(case.weights, case.num_samples, case.replacement, tg)
            passes.append(result)
            if isinstance(result, Raised):
                break
        after = int(torch.empty((), dtype=torch.int64).random_(generator=tg).item()) if race else tg.random64()
        return {"len": case.num_samples, "passes": passes, "next": after}
    if case.kind == "batch":
        if not _positive_int(case.batch_size):
            return Raised("ValueError", r"batch_size should be a positive integer")
        if not isinstance(case.drop_last, bool):
            return Raised("ValueError", r"drop_last should be a boolean")
        bs = case.batch_size
        passes = []
        for _ in range(case.passes):
            order = list(range(n))
            if case.inner == "random":
                source = g if g is not None else MT(glob.random64())
                order = source.randperm(n)
                source.randperm(n)  # the inner RandomSampler's trailing permutation (RS_CONSUME)
            batches = [order[i:i + bs] for i in range(0, n, bs)]
            if case.drop_last and batches and len(batches[-1]) < bs:
                batches.pop()
            passes.append(batches)
        length = n // bs if case.drop_last else -(-n // bs)
        return {"len": length, "passes": passes, "next": stream.random64()}
    # distributed: never touches the passed generator or the global stream
    replicas, rank, shuffle, seed, drop_last = _dist_args(case)
    if replicas is None or rank is None:  # None to take from a process group, and none is initialized
        return Raised("ValueError|RuntimeError", r"process group|distributed")
    if not 0 <= rank < replicas:
        return Raised("ValueError", r"Invalid rank")
    passes = []
    for epoch in case.epochs:
        idx, per_rank = distributed_indices(n, replicas, rank, shuffle, seed, epoch, drop_last)
        passes.append(idx)
    _, per_rank = distributed_indices(n, replicas, 0, False, 0, 0, drop_last)
    return {"len": per_rank, "passes": passes, "next": stream.random64()}


def distributed_all_ranks(case) -> list[list[int]]:
    replicas, _, shuffle, seed, drop_last = _dist_args(case)
    return [distributed_indices(case.n, replicas, r, shuffle, seed, case.epochs[0], drop_last)[0]
            for r in range(replicas)]


# The length rule of each sampler kind (the others state their length in their ordering rule).
LEN_RULES = {"random": RS_LEN, "batch": B_LEN, "distributed": D_LEN, "weighted": W_LEN}


def expectations(case) -> list[Expect]:
    """A SamplerCase: a validation error under the rule that raises it, else the passes under the ordering
    rule, the length under the kind's length rule, and the stream's next draw under the rule saying how
    much a pass consumes (RandomSampler: its consumption rule, or the global-seed rule without a generator)."""
    expected = sampler_outcome(case)
    ordering = sampler_rule(case)
    if isinstance(expected, Raised):
        return [Expect(ordering, expected)]
    consume = ordering
    if case.kind == "random" and ordering != RS_VALID:
        consume = RS_CONSUME if case.use_generator else RS_GLOBAL
    # a length that follows from a left-out argument is that argument's rule
    length = ordering if ordering in (D_DEFAULTS, D_GROUP) else LEN_RULES.get(case.kind, ordering)
    return [Expect(ordering, expected["passes"], key="passes"),
            Expect(length, expected["len"], key="len"),
            Expect(consume, expected["next"], key="next")]


def stride_expectations(case) -> list[Expect]:
    """A DistributedSampler with a valid rank: every rank's indices of the first epoch, together (under the
    defaults rule when arguments are left out; a case taking num_replicas or rank from a group: none, its
    striding is that of the explicit cases)."""
    ordering = sampler_rule(case) if case.kind == "distributed" else None
    if ordering in (None, D_VALID, D_GROUP) or case.process_group:
        return []
    return [Expect(D_DEFAULTS if ordering == D_DEFAULTS else D_STRIDE, distributed_all_ranks(case))]

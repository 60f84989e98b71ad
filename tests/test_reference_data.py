"""Golden cases of reference/data, computed by hand or from published constants (no torch)."""
import dataclasses
import random

import numpy as np
import pytest

from conform.outcome import OneOf, Raised
from reference.data import collate as collate_model
from reference.data import datasets, iterable, loader, rng, samplers, workers
from reference.data.rng import MT
from suite.data.cases import DatasetCase, LoaderArgsCase, LoaderCase, SamplerCase


def test_mt_matches_reference_mt19937_outputs():
    # init_genrand(5489) first outputs (the C reference implementation / std::mt19937 default seed)
    g = MT(5489)
    assert [g.u32() for _ in range(3)] == [3499211612, 581869302, 3890346734]
    # the 10000th output of std::mt19937 default-seeded is 4123659995 (C++ standard [rand.predef])
    g = MT(5489)
    for _ in range(9999):
        g.u32()
    assert g.u32() == 4123659995


def test_mt_seed_uses_low_32_bits():
    assert MT(7).u64() == MT(7 + 2**32).u64()


def test_random64_is_high_word_first_mod_2_63():
    g1, g2 = MT(1), MT(1)
    hi, lo = g2.u32(), g2.u32()
    assert g1.random64() == ((hi << 32) | lo) % 2**63


def test_randperm_is_forward_fisher_yates():
    class Fixed(MT):
        def __init__(self, words):
            self.words = list(words)

        def u32(self):
            return self.words.pop(0)

    # n=3: i=0 swaps with 0 + 5 % 3 = 2 -> [2,1,0]; i=1 swaps with 1 + 4 % 2 = 1 -> unchanged
    assert Fixed([5, 4]).randperm(3) == [2, 1, 0]
    assert Fixed([]).randperm(1) == [0]


def test_multinomial_inverse_cdf():
    class Fixed(MT):
        def __init__(self, us):
            self.us = list(us)

        def uniform53(self):
            return self.us.pop(0)

    # weights 1,3 -> cumulative 0.25, 1.0: u=0.25 picks 0 (first bucket >= u), 0.26 picks 1
    assert Fixed([0.25, 0.26, 0.0]).multinomial_replacement([1.0, 3.0], 3) == [0, 1, 0]


def test_batch_sampler_golden():
    out = samplers.sampler_outcome(SamplerCase("batch", 10, 0, batch_size=3, drop_last=False))
    assert out["passes"] == [[[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]] and out["len"] == 4
    out = samplers.sampler_outcome(SamplerCase("batch", 10, 0, batch_size=3, drop_last=True))
    assert out["passes"] == [[[0, 1, 2], [3, 4, 5], [6, 7, 8]]] and out["len"] == 3
    assert isinstance(samplers.sampler_outcome(SamplerCase("batch", 10, 0, batch_size=True)), Raised)


def test_distributed_padding_and_drop_last():
    # n=5, R=3: padded [0,1,2,3,4,0], rank 1 takes positions 1 and 4
    assert samplers.distributed_indices(5, 3, 1, False, 0, 0, False) == ([1, 4], 2)
    # drop_last: ceil((5-3)/3) = 1 per rank -> [0,1,2]
    assert samplers.distributed_indices(5, 3, 2, False, 0, 0, True) == ([2], 1)
    # n=2, R=5: wrap around more than once: [0,1,0,1,0]
    assert [samplers.distributed_indices(2, 5, r, False, 0, 0, False)[0] for r in range(5)] == [[0], [1], [0], [1], [0]]


def test_distributed_defaults_and_group_resolution():
    # left-out shuffle/seed/drop_last are the documented True/0/False: the same outcome as spelling them out
    spelled = SamplerCase("distributed", 5, 0, num_replicas=2, rank=1, shuffle=True, dist_seed=0, drop_last=False,
                          epochs=(0, 1))
    left_out = dataclasses.replace(spelled, shuffle=None, dist_seed=None, drop_last=None)
    assert samplers.sampler_outcome(left_out) == samplers.sampler_outcome(spelled)
    assert samplers.distributed_all_ranks(left_out) == samplers.distributed_all_ranks(spelled)
    assert {e.rule for e in samplers.expectations(left_out) + samplers.stride_expectations(left_out)} \
        == {samplers.D_DEFAULTS}
    # num_replicas/rank from a one-rank group: 1 and 0; without a group: an error; outside it: Invalid rank
    group = SamplerCase("distributed", 5, 0, num_replicas=None, rank=None, process_group=True)
    assert samplers.sampler_outcome(group)["passes"] == [[0, 1, 2, 3, 4]]
    assert samplers.sampler_rule(group) == samplers.D_GROUP and samplers.stride_expectations(group) == []
    three = dataclasses.replace(group, num_replicas=3)
    assert samplers.sampler_outcome(three)["passes"] == [[0, 3]] and samplers.sampler_outcome(three)["len"] == 2
    assert isinstance(samplers.sampler_outcome(dataclasses.replace(group, process_group=False)), Raised)
    outside = samplers.sampler_outcome(dataclasses.replace(group, rank=1))
    assert outside.type == "ValueError" and samplers.sampler_rule(dataclasses.replace(group, rank=1)) == samplers.D_VALID


def test_fetch_outcome_golden():
    # 5 items in batches of 2: __getitems__ once per batch, else __getitem__ per index; unbatched: __getitem__
    batched = datasets.dataset_outcome(DatasetCase("fetch", sizes=(5,), batch_size=2, getitems=True))
    assert batched["calls"] == [["getitems", [0, 1]], ["getitems", [2, 3]], ["getitems", [4]]]
    assert batched["loaded"] == [{"collated": [1000, 1001]}, {"collated": [1002, 1003]}, {"collated": [1004]}]
    plain = datasets.dataset_outcome(DatasetCase("fetch", sizes=(5,), batch_size=2))
    assert plain["loaded"] == batched["loaded"] and plain["calls"] == [["getitem", i] for i in range(5)]
    single = datasets.dataset_outcome(DatasetCase("fetch", sizes=(3,), getitems=True))
    assert single == {"loaded": [{"collated": 1000}, {"collated": 1001}, {"collated": 1002}],
                      "calls": [["getitem", 0], ["getitem", 1], ["getitem", 2]]}
    assert datasets.dataset_rule(DatasetCase("fetch", sizes=(3,), getitems=True)) == datasets.DS_FETCH_UNBATCHED


def test_random_sampler_consumption_counts():
    # num_samples = 2n: three permutations drawn (the third unused)
    case = SamplerCase("random", 4, 3, num_samples=8)
    g = MT(3)
    perms = [g.randperm(4) for _ in range(3)]
    out = samplers.sampler_outcome(case)
    assert out["passes"] == [perms[0] + perms[1]] and out["next"] == g.random64()


def test_loader_args_precedence():
    # negative num_workers wins over everything else
    [error] = loader.expectations(LoaderArgsCase(iterable=True, n=3, num_workers=-1, timeout=-1, shuffle=True))
    assert error.rule == loader.L_WORKERS and error.expected.type == "ValueError" and error.key == "config"
    config, length = loader.expectations(LoaderArgsCase(iterable=False, n=5, batch_size=2, drop_last=True))
    assert (config.rule, length.rule) == (loader.L_DEFAULTS, loader.L_LEN_MAP)
    assert length.expected == OneOf(2, loader.NOT_BUILT)
    assert config.expected["sampler"] == "SequentialSampler" and config.expected["collate_fn"] == "default_collate"
    config, length = loader.expectations(LoaderArgsCase(iterable=True, n=5, batch_size=None, declared_len=7))
    assert length.rule == loader.L_LEN_ITER and length.expected.options[0] == 7
    assert config.expected["collate_fn"] == "default_convert"


def test_collate_model_golden():
    import collections

    Point = collections.namedtuple("Point", "x y")
    out = collate_model.model_collate([Point(0, 1.5), Point(2, 2.5)])
    assert out[0] == "namedtuple" and out[2][0][1] == "int64" and out[2][1][1] == "float64"
    assert collate_model.model_collate(["a", "b"]) == ("list", [("str", "a"), ("str", "b")])
    assert collate_model.model_collate([1, 2.5])[1] == "float32"  # int first: torch.tensor's inference
    assert collate_model.model_collate([True, False])[1] == "bool"
    with pytest.raises(collate_model._CollateError):
        collate_model.model_collate([[1], [1, 2]])


def test_random_split_fraction_remainders():
    # n=10, (0.34, 0.33, 0.33): floors 3,3,3, one left -> first split: 4,3,3
    out = datasets.random_split_outcome(DatasetCase("random_split", sizes=(10,), lengths=(0.34, 0.33, 0.33), seed=0))
    assert [len(p) for p in out["parts"]] == [4, 3, 3]
    assert isinstance(datasets.random_split_outcome(DatasetCase("random_split", sizes=(3,), lengths=(1, 1))), Raised)


def test_concat_negative_and_bounds():
    c = DatasetCase("concat", sizes=(2, 0, 3), index=-1)
    assert datasets.dataset_outcome(c)["item"] == 202
    assert datasets.dataset_outcome(DatasetCase("concat", sizes=(2, 0, 3), index=2))["item"] == 200
    assert datasets.dataset_outcome(DatasetCase("concat", sizes=(2,), index=-3))["item"].type == "ValueError"


def test_worker_seeding_model():
    base = 12345
    p = workers.worker_proc(base, 2, init_fn=False)
    assert p.initial_seed == base + 2
    assert p.py.getrandbits(32) == random.Random(base + 2).getrandbits(32)
    assert workers.np_worker_state(base, 2) == [int(x) for x in np.random.SeedSequence([2, base, 0, 0]).generate_state(4)]


def test_round_robin_skips_exhausted_workers():
    case = LoaderCase(n=0, iterable=True, lengths=(3, 1, 2), num_workers=3, batch_size=None)
    out = iterable.iterable_outcome(case)
    order = [b[0][:2] for b in out["epochs"][0]]
    assert order == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 2], [2, 0]]


def test_in_order_dispatch_is_round_robin():
    case = LoaderCase(n=7, batch_size=2, num_workers=3)
    out = workers.loader_outcome(case)
    assert [[r[1] for r in b] for b in out["epochs"][0]] == [[0, 0], [1, 1], [2, 2], [0]]


def test_prefetch_window_model():
    assert workers.prefetch_outcome(LoaderCase(n=10, batch_size=2, num_workers=2, prefetch_factor=1)) == [[2, 4], [3, 6], [4, 8]]


def test_unordered_dispatch_skips_full_workers():
    # W=2, prefetch_factor=1: priming puts s0->w0, s1->w1.  s1 arrives first: w1 frees its slot and
    # s2 is put; the cycle points at w0, which is full (s0 outstanding), so s2 goes to w1.  Then s0
    # arrives and s3 goes to w0.
    assert workers.unordered_dispatch([1, 0, 2, 3], 2, 1, 4, capacity=True) == [1, 0, 1, 0]
    # arrivals in dispatch order give plain round-robin
    assert workers.unordered_dispatch([0, 1, 2, 3, 4], 2, 1, 5, capacity=True) == [0, 1, 0, 1, 0]
    assert workers.unordered_dispatch([7], 2, 1, 4, capacity=True) == [-1]  # a batch never dispatched


def test_unordered_dispatch_before_capacity_rule():
    # torch 2.6 (in_order=False without the 2.7 capacity rule): s2 goes to the next worker of the
    # cycle, w0, although s0 is still outstanding there -- batch s on worker s mod W
    assert workers.unordered_dispatch([1, 0, 2, 3], 2, 1, 4, capacity=False) == [1, 0, 0, 1]
    assert workers.unordered_dispatch([2, 0, 1, 3, 4], 3, 2, 5, capacity=False) == [2, 0, 1, 0, 1]


def test_subset_getitems_golden():
    # base [0..4], indices (4, 0, 2): positions last first then negatives -> base[2], base[0], base[4], ...
    out = datasets.dataset_outcome(DatasetCase("subset", sizes=(5,), indices=(4, 0, 2)), "cpu", [2, 1, 0, -1, -2, -3])
    assert out["batch"] == [2, 0, 4, 2, 0, 4] == out["nested"]


def test_numpy_bool_divergence_predicate_follows_collate_order():
    # suite/data/divergences.py: the registered numpy-bool TypeError applies where collate reaches a numpy
    # bool scalar before any other documented error; default_convert converts every value
    from suite.data import divergences as D
    from suite.data.cases import CollateCase

    npbool, none = ("npscalar", "bool_"), ("none",)
    assert D._first_collate_event(npbool, 2) == "numpy_bool"
    assert D._first_collate_event(("tuple", (("int",), npbool, none)), 2) == "numpy_bool"
    assert D._first_collate_event(("tuple", (none, npbool)), 2) == "error"
    assert D._first_collate_event(("map", "dict", (("a", ("ndarray", "<U3", (2,))), ("b", npbool))), 2) == "error"
    assert D._first_collate_event(("namedtuple", ("float",), npbool), 2) == "numpy_bool"
    assert D._first_collate_event(("ragged", ("int",)), 2) == "error"
    assert D._first_collate_event(("ragged", ("int",)), 1) is None
    assert D._first_collate_event(("list", (("npscalar", "float32"), ("tensor", "bool", ()))), 3) is None
    if np.lib.NumpyVersion(np.__version__) >= "2.0.0":
        assert D._numpy_bool_reached(CollateCase(spec=("tuple", (none, npbool)), batch=2, seed=0, mode="convert"))
        assert not D._numpy_bool_reached(CollateCase(spec=("tuple", (none, npbool)), batch=2, seed=0))


def test_expectations_decide_the_rules():
    # samplers: ordering, length and consumption rules, each about its part of the observation
    rules = [(e.rule, e.key) for e in samplers.expectations(SamplerCase("random", 4, 1, use_generator=False))]
    assert rules == [(samplers.RS_PERM, "passes"), (samplers.RS_LEN, "len"), (samplers.RS_GLOBAL, "next")]
    [error] = samplers.expectations(SamplerCase("random", 4, 1, replacement=1))
    assert error.rule == samplers.RS_VALID and error.key is None
    assert samplers.stride_expectations(SamplerCase("distributed", 4, 0, num_replicas=2, rank=2)) == []
    # the RNG seed rule: a seed above 32 bits gives the stream of its low 32 bits
    from suite.data.cases import RngCase
    [alias] = rng.seed_expectations(RngCase("random64", 5 + 2**40, size=2))
    assert alias.rule == rng.RNG_SEED and alias.expected == rng.rng_outcome(RngCase("random64", 5, size=2))
    # faults: a failing worker_init_fn, else the kind of the sample's fault; no worker may stay behind
    assert workers.fault_rule(LoaderCase(n=2, num_workers=1, init_fail=0)) == workers.F_INIT
    assert [workers.fault_rule(LoaderCase(n=2, num_workers=1, fault=(0, k))) for k in ("kill", "hang", "KeyError")] \
        == [workers.F_KILL, workers.F_TIMEOUT, workers.F_EXC]
    stray, shm = workers.fault_expectations(LoaderCase(n=2, num_workers=1, fault=(0, "hang"), timeout=0.5))[-2:]
    assert (stray.rule, stray.expected, stray.key) == (workers.F_STRAY, 0, "leftover")
    assert (shm.rule, shm.expected, shm.key) == (workers.F_SHM, [], "leaked_shm")
    # the start method changes none of the reference's expectations (the docs say the same for all)
    for case in (LoaderCase(n=5, batch_size=2, num_workers=2, init_fn=True, seed=3),
                 LoaderCase(n=4, num_workers=1, fault=(1, "ValueError")),
                 LoaderCase(n=0, iterable=True, lengths=(5, 2), num_workers=2, batch_size=2)):
        family = iterable.expectations if case.iterable else (
            workers.fault_expectations if case.fault else workers.in_order_expectations)
        assert {family(dataclasses.replace(case, start_method=m)) == family(case)
                for m in ("spawn", "forkserver", "default")} == {True}
    # iterable datasets: sharding first, then per-worker drop_last, then round-robin over unequal replicas
    assert iterable.iterable_rule(LoaderCase(n=0, iterable=True, lengths=(3, 1), num_workers=2)) == iterable.I_ROUND_ROBIN
    assert iterable.iterable_rule(LoaderCase(n=0, iterable=True, lengths=(3,), shard=True, drop_last=True,
                                             batch_size=2)) == iterable.I_SHARD


def test_timeout_message_names_the_case_timeout():
    [epochs, _, _] = workers.fault_expectations(LoaderCase(n=2, num_workers=1, fault=(0, "hang"), timeout=0.5))
    assert epochs.rule == workers.F_TIMEOUT and epochs.expected[0][0].message.endswith(r"0\.5 seconds")


def test_timeout_without_workers_is_moot():
    # the batches of timeout=0, whatever the timeout: sequential items, the last batch short unless drop_last
    for timeout in (0.0, 5.0):
        assert loader.loader_batches(LoaderArgsCase(iterable=False, n=5, batch_size=2, timeout=timeout)) == [
            [0, 1], [2, 3], [4]]
    assert loader.loader_batches(LoaderArgsCase(iterable=True, n=5, batch_size=2, drop_last=True)) == [[0, 1], [2, 3]]
    assert loader.loader_batches(LoaderArgsCase(iterable=False, n=3, batch_size=None)) == [0, 1, 2]
    assert loader.loader_batches(LoaderArgsCase(iterable=False, n=0)) == []
    (expect,) = loader.timeout_expectations(LoaderArgsCase(iterable=False, n=2, timeout=1.0))
    assert expect.rule == loader.L_TIMEOUT_MOOT and expect.expected == [[0], [1]]


def test_datapipe_shuffle_properties():
    def expected(n, epochs):
        case = LoaderCase(n=0, iterable=True, datapipe=True, shuffle=True, lengths=(n,), epochs=epochs)
        (expect,) = iterable.datapipe_shuffle_expectations(case)
        assert expect.rule == iterable.I_DP_SHUFFLE
        return expect.expected

    # from 12 items: every item once an epoch, some epoch out of input order, the epochs not all alike
    assert expected(12, 2) == {"items": [list(range(12))] * 2, "reordered": True, "reshuffled": True}
    assert expected(12, 1)["reshuffled"] is False  # one epoch has one order
    # fewer items: the order is left open (a uniform shuffle of 8 repeats an order 1 time in 8! = 40320)
    small = expected(8, 3)
    assert small["items"] == [list(range(8))] * 3
    assert small["reordered"] == OneOf(True, False) and small["reshuffled"] == OneOf(True, False)

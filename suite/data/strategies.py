"""Hypothesis strategies for the data area: small Cases only (datasets <= 24 samples,
<= 3 workers), so multi-worker examples stay cheap on 2 cores."""
from __future__ import annotations

import functools

from hypothesis import strategies as st

from suite.data.cases import (LOADER_TIMEOUT, NO_TIMEOUT, CollateCase, DatasetCase, LoaderArgsCase, LoaderAttrCase,
                              LoaderCase, RngCase, SamplerCase)

# How workers start.  fork stays the common draw and spawn the rarest: a spawned worker imports torch
# afresh and exits through a full interpreter shutdown (5-10 s an example on a loaded 2-core machine), so
# the tests pin spawn with explicit examples where the start method could matter most (the seeding and
# worker_init_fn of every worker, iterable sharding with persistent workers, a worker exception, pickling,
# collation in a worker) and forkserver (preloaded: cheap) in every test.  "default" passes no
# multiprocessing_context (torch.multiprocessing's default start method).
START_METHODS = ("fork",) * 12 + ("default", "default", "forkserver", "forkserver", "forkserver", "spawn")
start_methods = st.sampled_from(START_METHODS)

seeds = st.integers(0, 2**64 - 1)
small_seeds = st.integers(0, 2**31 - 1)


@st.composite
def rng_cases(draw):
    op = draw(st.sampled_from(["randperm", "randint", "random64", "multinomial"]))
    seed = draw(seeds)
    if op == "multinomial":
        weights = tuple(draw(st.lists(st.integers(1, 9), min_size=1, max_size=8)))
        return RngCase(op, seed, size=draw(st.integers(2, 40)), weights=tuple(float(w) for w in weights))
    return RngCase(op, seed, n=draw(st.integers(1, 30)), size=draw(st.integers(0, 40)))


@st.composite
def sampler_cases(draw, kind: str):
    n = draw(st.integers(1, 24))
    seed = draw(seeds)
    use_generator = draw(st.booleans())
    passes = draw(st.integers(1, 3))
    if kind == "sequential":
        return SamplerCase(kind, n, seed, use_generator, passes=passes)
    if kind == "random":
        replacement = draw(st.one_of(st.booleans(), st.booleans(), st.booleans(), st.just(1)))
        num_samples = draw(st.one_of(st.none(), st.integers(1, 70), st.sampled_from([0, -1, 2.0, True])))
        return SamplerCase(kind, n, seed, use_generator, replacement=replacement, num_samples=num_samples,
                           passes=passes)
    if kind == "subset_random":
        indices = tuple(draw(st.lists(st.integers(0, 50), min_size=0, max_size=12)))
        return SamplerCase(kind, n, seed, use_generator, indices=indices, passes=passes)
    if kind == "weighted":
        weights = tuple(float(w) for w in draw(st.lists(st.sampled_from([0, 0.5, 1, 2, 3, 7.25]), min_size=1,
                                                            max_size=10)))
        if not any(weights):
            weights = (1.0,) + weights[1:]
        # weights need not sum to one: an exact power-of-two rescaling (down to where float32
        # underflows, up to where it overflows) must select the same indices
        scale = draw(st.sampled_from([1.0, 1.0, 1.0, 2.0 ** -1000, 2.0 ** 1000]))
        weights = tuple(w * scale for w in weights)
        # up to 64 draws: many inverse-CDF draws make the bucket boundaries (the weights' ratios) visible
        num_samples = draw(st.one_of(st.integers(1, 12), st.integers(13, 64), st.sampled_from([0, -2, True])))
        replacement = draw(st.one_of(st.booleans(), st.booleans(), st.just(0)))
        return SamplerCase(kind, len(weights), seed, use_generator, replacement=replacement, num_samples=num_samples,
                           weights=weights, passes=passes)
    if kind == "batch":
        batch_size = draw(st.one_of(st.integers(1, 8), st.integers(1, 8), st.sampled_from([0, -1, True, 2.0])))
        drop_last = draw(st.one_of(st.booleans(), st.booleans(), st.just(0)))
        inner = draw(st.sampled_from(["sequential", "random"]))
        # (an empty RandomSampler is a RandomSampler validation error, covered there)
        return SamplerCase(kind, draw(st.integers(0 if inner == "sequential" else 1, 24)), seed, use_generator, batch_size=batch_size,
                           drop_last=drop_last, inner=inner, passes=passes)
    replicas = draw(st.integers(1, 8))
    n = draw(st.one_of(st.just(n), st.integers(1, 3)))  # also fewer samples than replicas: padding wraps repeatedly
    rank = draw(st.one_of(st.integers(0, replicas - 1), st.integers(0, replicas - 1), st.sampled_from([-1, replicas])))
    epochs = tuple(draw(st.lists(st.integers(0, 5), min_size=1, max_size=3)))
    return SamplerCase(kind, n, seed, use_generator, num_replicas=replicas, rank=rank, shuffle=draw(st.booleans()),
                       dist_seed=draw(st.integers(0, 2**40)), drop_last=draw(st.booleans()), epochs=epochs)


@st.composite
def loader_args_cases(draw):
    iterable = draw(st.booleans())
    workers = draw(st.sampled_from([0, 0, 1, 2, -1]))
    return LoaderArgsCase(
        iterable=iterable, n=draw(st.integers(0, 12)),
        batch_size=draw(st.sampled_from([1, 1, 2, 3, None])),
        shuffle=draw(st.sampled_from([None, False, True])),
        sampler=draw(st.booleans()), batch_sampler=draw(st.booleans()), drop_last=draw(st.booleans()),
        num_workers=workers,
        prefetch_factor=draw(st.sampled_from([None, None, 1, 2, 0, -1])),
        persistent_workers=draw(st.booleans()), timeout=draw(st.sampled_from([0.0, 0.0, 1.0, -1.0])),
        declared_len=draw(st.one_of(st.none(), st.integers(0, 12))))


@st.composite
def timeout_cases(draw):
    """A valid loader without workers (map-style or iterable, batching drawn) with no or a positive timeout."""
    batch_size = draw(st.sampled_from([None, 1, 2, 3]))
    return LoaderArgsCase(iterable=draw(st.booleans()), n=draw(st.integers(0, 6)), batch_size=batch_size,
                          drop_last=batch_size is not None and draw(st.booleans()),
                          timeout=draw(st.sampled_from([0.0, 0.5, 5.0])))


@st.composite
def len_warning_cases(draw):
    """An iterable dataset yielding ``n`` items whose __len__ says ``declared_len``."""
    declared = draw(st.integers(0, 8))
    case = LoaderArgsCase(iterable=True, n=draw(st.integers(0, 14)), batch_size=draw(st.sampled_from([None, 1, 2, 3])),
                          drop_last=draw(st.booleans()), declared_len=declared)
    if case.batch_size is None and case.drop_last:  # a construction error, covered by loader_args_cases
        case = LoaderArgsCase(**{**case.__dict__, "drop_last": False})
    return case


# the attributes frozen after construction, then some that may be assigned
ATTRS = ("batch_size", "batch_sampler", "sampler", "drop_last", "dataset", "persistent_workers", "num_workers",
         "timeout", "collate_fn", "worker_init_fn", "generator")
CONTEXTS = ("none", "fork", "spawn", "forkserver", "bogus", "spawn_context", "object")


def loader_attr_cases():
    return st.builds(LoaderAttrCase, st.sampled_from([0, 1]), st.sampled_from(CONTEXTS), st.sampled_from(ATTRS))


def _leaf():
    return st.one_of(
        st.tuples(st.just("tensor"), st.sampled_from(["float32", "float64", "int64", "int32", "bool"]),
                  st.lists(st.integers(1, 3), max_size=2).map(tuple)),
        st.tuples(st.just("ndarray"), st.sampled_from(["float32", "float64", "int64", "int16", "uint8", "bool"]),
                  st.lists(st.integers(1, 3), max_size=2).map(tuple)),
        st.tuples(st.just("npscalar"), st.sampled_from(["float32", "float64", "int64", "int32", "bool_"])),
        st.sampled_from([("int",), ("float",), ("bool",), ("str",), ("bytes",), ("intfloat",)]),
    )


@functools.lru_cache(maxsize=None)  # built once: collate_cases draws it per example, and hypothesis
def collate_specs(max_depth: int = 2):  # derives a recursive strategy's properties on its first draw
    def extend(children):
        keys = st.sampled_from(["a", "b", "c", "z"])
        return st.one_of(
            st.tuples(st.just("map"), st.sampled_from(["dict", "OrderedDict", "FrozenMap", "FixedMap"]),
                      st.lists(st.tuples(keys, children), min_size=1, max_size=3, unique_by=lambda kv: kv[0])
                      .map(tuple)),
            st.tuples(st.just("namedtuple"), children, children),
            st.tuples(st.sampled_from(["tuple", "list", "row"]), st.lists(children, min_size=1, max_size=3).map(tuple)),
        )

    rare = st.sampled_from([("none",), ("opaque",), ("ndarray", "<U3", (2,)), ("ragged", ("int",)), ("range",)])
    return st.recursive(st.one_of(_leaf(), _leaf(), _leaf(), rare), extend, max_leaves=5)


@st.composite
def collate_cases(draw, mode: str = "collate"):
    case = CollateCase(spec=draw(collate_specs()), batch=draw(st.integers(1, 4)), seed=draw(small_seeds), mode=mode)
    if mode == "worker":
        case = CollateCase(**{**case.__dict__, "start_method": draw(start_methods)})
    return case


@st.composite
def dataset_cases(draw, kind: str):
    if kind == "concat":
        sizes = tuple(draw(st.lists(st.integers(0, 5), min_size=1, max_size=4)))
        total = sum(sizes)
        index = draw(st.integers(-total - 2, total + 1))
        return DatasetCase(kind, sizes=sizes, index=index, added=draw(st.booleans()))
    if kind == "subset":
        size = draw(st.integers(1, 10))
        indices = tuple(draw(st.lists(st.integers(-size, size - 1), max_size=8)))
        return DatasetCase(kind, sizes=(size,), indices=indices)
    if kind == "chain":
        return DatasetCase(kind, sizes=tuple(draw(st.lists(st.integers(0, 5), min_size=0, max_size=4))),
                           added=draw(st.booleans()))
    if kind in ("stack", "tensor"):
        size = draw(st.integers(1, 6))
        count = draw(st.integers(1, 3))
        sizes = [size] * count
        if count > 1 and not draw(st.integers(0, 4)):  # a size mismatch: any member, one longer or shorter
            sizes[draw(st.integers(0, count - 1))] += draw(st.sampled_from([1, -1]))
        sizes = tuple(sizes)
        index = draw(st.integers(0, size - 1))
        indices = tuple(draw(st.lists(st.integers(0, size - 1), max_size=4)))
        return DatasetCase(kind, sizes=sizes, index=index, indices=indices, as_dict=draw(st.booleans()),
                           added=kind == "stack" and draw(st.booleans()))
    n = draw(st.integers(0, 20))
    if draw(st.booleans()):
        parts = draw(st.integers(1, 4))
        cuts = sorted(draw(st.lists(st.integers(0, n), min_size=parts - 1, max_size=parts - 1)))
        lengths = tuple(b - a for a, b in zip([0] + cuts, cuts + [n]))
        if draw(st.integers(0, 5)) == 0:
            lengths = lengths[:-1] + (lengths[-1] + 1,)
    else:
        lengths = draw(st.sampled_from([(0.5, 0.5), (0.3, 0.7), (0.1, 0.2, 0.7), (0.25, 0.25, 0.25, 0.25),
                                        (1.0,), (0.0, 1.0), (1.2, -0.2), (0.34, 0.33, 0.33)]))
    return DatasetCase(kind, sizes=(n,), lengths=lengths, seed=draw(seeds))


# the DataLoader timeout of a healthy case: a generous bound, or none at all (the default: the main
# process polls its workers' liveness instead)
loader_timeouts = st.sampled_from([LOADER_TIMEOUT, NO_TIMEOUT])


@st.composite
def loader_cases(draw, workers=st.integers(1, 3), **fixed):
    """A map-style LoaderCase; ``fixed`` pins fields (a value, or a strategy to draw it from)."""
    fixed = {k: draw(v) if isinstance(v, st.SearchStrategy) else v for k, v in fixed.items()}
    n = draw(st.integers(1, 16))
    fields = dict(n=n, batch_size=draw(st.sampled_from([1, 2, 3, 4, None])), num_workers=draw(workers),
                  shuffle=draw(st.booleans()), drop_last=draw(st.booleans()), seed=draw(seeds),
                  use_generator=draw(st.booleans()), prefetch_factor=draw(st.sampled_from([None, 1, 2, 3])),
                  start_method=draw(start_methods), timeout=draw(loader_timeouts))
    fields.update(fixed)
    if fields["batch_size"] is None:
        fields["drop_last"] = False
        fields["collate"] = "default"  # a custom collate_fn sees single samples then (not a batch rule)
    if fields["num_workers"] == 0:
        fields["prefetch_factor"] = None
    return LoaderCase(**fields)


@st.composite
def exception_cases(draw):
    """A map-style LoaderCase whose sample at a drawn index raises a drawn exception type in its worker."""
    case = draw(loader_cases(shuffle=False, n=st.integers(2, 12)))
    kind = draw(st.sampled_from(["ValueError", "KeyError", "ZeroDivisionError"]))
    return type(case)(**{**case.__dict__, "fault": (draw(st.integers(0, case.n - 1)), kind)})


@st.composite
def iterable_cases(draw, **fixed):
    workers = draw(st.integers(0, 3))
    shard = draw(st.booleans())
    if shard:
        lengths = (draw(st.integers(0, 16)),)
    else:
        lengths = tuple(draw(st.lists(st.integers(0, 7), min_size=max(workers, 1), max_size=max(workers, 1))))
    fields = dict(n=0, iterable=True, lengths=lengths, shard=shard, num_workers=workers,
                  batch_size=draw(st.sampled_from([1, 2, 3, None])), drop_last=draw(st.booleans()),
                  seed=draw(seeds), use_generator=draw(st.booleans()),
                  prefetch_factor=draw(st.sampled_from([None, 1, 2])) if workers else None,
                  start_method=draw(start_methods), timeout=draw(loader_timeouts))
    fields.update({k: draw(v) if isinstance(v, st.SearchStrategy) else v for k, v in fixed.items()})
    if fields["batch_size"] is None:
        fields["drop_last"] = False
    if fields["num_workers"] == 0:
        fields["persistent"] = False  # persistent_workers needs workers (a construction error, covered elsewhere)
    return LoaderCase(**fields)


@st.composite
def datapipe_shuffle_cases(draw):
    """An IterDataPipe, with or without a Shuffler of its own, loaded with shuffle=True in the main process
    for 2-3 epochs (drop_last off: every item is yielded; from 12 items on its order is checked)."""
    return LoaderCase(n=0, iterable=True, datapipe=True, shuffle=True, shuffler=draw(st.booleans()),
                      lengths=(draw(st.integers(6, 16)),), num_workers=0, batch_size=draw(st.sampled_from([None, 1, 3])),
                      epochs=draw(st.integers(2, 3)), seed=draw(seeds), use_generator=draw(st.booleans()))

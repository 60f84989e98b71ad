"""Hypothesis strategies for the ``norm`` area: small Cases, nothing tensor-sized drawn here."""
from __future__ import annotations

from hypothesis import strategies as st

from reference.norm import functional as fn
from suite.norm.cases import (BN_HAS_BIAS_KW, GN_HAS_BIAS_KW, LN_HAS_BIAS_KW, BNCase, BNSeqCase,
                              ConstructCase, ConvertCase, DefaultsCase, DispatchCase, LoadCase, LRNCase, OtherNormCase,
                              ReprCase, RMSCase, SyncCase)

SPATIAL_RANK = {"BatchNorm1d": (0, 1), "BatchNorm2d": (2,), "BatchNorm3d": (3,)}
EPS = st.sampled_from([1e-5, 1e-3, 0.1])
MOMENTUM = st.sampled_from([0.1, 0.5, 1.0, 0.0, None])
SEED = st.integers(0, 2**16)


def dtypes_for(device: str) -> list[str]:
    """float32/float64 everywhere; bfloat16 and float16 BatchNorm run on CPU (2.13: native kernels with
    float accumulation) and CUDA.  Other accelerators: float32 only until checked."""
    kind = device.split(":")[0]
    if kind in ("cpu", "cuda"):
        return ["float32", "float64", "bfloat16", "float16"]
    return ["float32"]


def bias_flag() -> st.SearchStrategy[bool]:
    return st.booleans() if BN_HAS_BIAS_KW else st.just(True)


@st.composite
def bn_cases(draw, device: str = "cpu", kinds=("BatchNorm1d", "BatchNorm2d", "BatchNorm3d"), training=None,
             backward: bool = False, ill: bool = False, dtypes=None, min_per_channel: int = 2,
             momentum=MOMENTUM, track=st.booleans()) -> BNCase:
    kind = draw(st.sampled_from(kinds))
    base = kind.removeprefix("Lazy")
    spatial_rank = draw(st.sampled_from(SPATIAL_RANK[base] if base in SPATIAL_RANK else (0, 1, 2)))
    C = draw(st.integers(1, 4))
    spatial = tuple(draw(st.lists(st.integers(1, 3), min_size=spatial_rank, max_size=spatial_rank)))
    per_sample = 1
    for s in spatial:
        per_sample *= s
    N = draw(st.integers(max(1, -(-min_per_channel // per_sample)), 6))
    dtype = draw(st.sampled_from(dtypes or dtypes_for(device)))
    if ill:
        offset = draw(st.sampled_from([0.0, 1e2, -1e3, 1e4]))
        spread = draw(st.sampled_from([1.0, 1e-2, 1e-3, 1e-4]))
    else:
        offset, spread = draw(st.sampled_from([0.0, 0.5, -2.0])), draw(st.sampled_from([1.0, 3.0]))
    track = draw(track)
    momentum = draw(momentum)
    return BNCase(kind=kind, shape=(N, C) + spatial, num_features=C, dtype=dtype, eps=draw(EPS),
                  momentum=momentum, affine=draw(st.booleans()), bias=draw(bias_flag()), track=track,
                  training=draw(st.booleans()) if training is None else training, offset=offset, spread=spread,
                  seed=draw(SEED), backward=backward,
                  nbt_before=draw(st.integers(0, 5)) if track and momentum is None else 0)


@st.composite
def seq_cases(draw, device: str = "cpu") -> BNSeqCase:
    kind = draw(st.sampled_from(["BatchNorm1d", "BatchNorm2d"]))
    spatial = (2,) if kind == "BatchNorm2d" else draw(st.sampled_from([(), (2,)]))
    spatial = spatial * (2 if kind == "BatchNorm2d" else 1)
    forward = st.tuples(st.just("forward"), st.sampled_from([0, 1, 2, 3, 5]))
    op = st.one_of(forward, forward, forward, st.just(("train",)), st.just(("eval",)),
                   st.tuples(st.just("track"), st.booleans()), st.tuples(st.just("momentum"), MOMENTUM))
    ops = tuple(draw(st.lists(op, min_size=1, max_size=8)))
    if not any(o[0] == "forward" for o in ops):
        ops = ops + (("forward", 3),)
    return BNSeqCase(kind=kind, num_features=draw(st.integers(1, 3)), spatial=spatial,
                     dtype=draw(st.sampled_from(["float32", "float64"])), eps=draw(EPS), momentum=draw(MOMENTUM),
                     affine=draw(st.booleans()), track=draw(st.booleans()), ops=ops, seed=draw(SEED))


def defaults_cases() -> st.SearchStrategy[DefaultsCase]:
    return st.builds(DefaultsCase, kind=st.sampled_from(["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm",
                                                         "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d",
                                                         "GroupNorm", "LayerNorm", "LazyBatchNorm1d",
                                                         "LazyBatchNorm2d", "LazyBatchNorm3d", "LazyInstanceNorm1d",
                                                         "LazyInstanceNorm2d", "LazyInstanceNorm3d"]),
                     num_features=st.integers(1, 5))


def construct_cases(device: str = "cpu") -> st.SearchStrategy[ConstructCase]:
    return st.builds(ConstructCase, kind=st.sampled_from(["BatchNorm1d", "BatchNorm2d", "BatchNorm3d",
                                                          "SyncBatchNorm"]),
                     num_features=st.integers(1, 5), dtype=st.sampled_from(dtypes_for(device)),
                     affine=st.booleans(), bias=bias_flag(), track=st.booleans())


@st.composite
def other_norm_cases(draw, device: str = "cpu",
                     kinds=("InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "GroupNorm", "LayerNorm"),
                     variants: bool = True):
    """``variants`` (InstanceNorm, forward only): each case also draws, swarm-style, whether it is the Lazy
    module, an unbatched input, a rank one too high, or a num_features other than the input's channels."""
    kind = draw(st.sampled_from(kinds))
    instance = kind.startswith("InstanceNorm")
    extra = {}
    if instance and variants:
        lazy, unbatched, wrong_rank, mismatch = (draw(st.integers(0, n)) == 0 for n in (4, 3, 9, 5))
        extra = {"batched": not unbatched}
        if lazy:
            kind = "Lazy" + kind
        elif mismatch:
            extra["num_features"] = draw(st.integers(1, 6))
    if instance:
        spatial_rank = int(kind[-2]) + (1 if variants and wrong_rank else 0)
    else:
        spatial_rank = draw(st.integers(0, 2))
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 6))
    # size-1 spatial dims too: InstanceNorm's single-spatial-element error, GroupNorm's single-value error
    spatial = tuple(draw(st.lists(st.sampled_from([1, 2, 3, 4]), min_size=spatial_rank, max_size=spatial_rank)))
    shape = (N, C) + spatial
    groups = draw(st.sampled_from([g for g in range(1, C + 1)] + [C + 1])) if kind == "GroupNorm" else 1
    norm_dims = draw(st.integers(1, len(shape) - 1)) if kind == "LayerNorm" else 1
    bias_ok = {"GroupNorm": GN_HAS_BIAS_KW, "LayerNorm": LN_HAS_BIAS_KW}.get(kind, False)
    return OtherNormCase(**extra,kind=kind, shape=shape, groups=groups, norm_dims=norm_dims,
                         dtype=draw(st.sampled_from(dtypes_for(device))), eps=draw(EPS), affine=draw(st.booleans()),
                         bias=draw(st.booleans()) if bias_ok else True, seed=draw(SEED),
                         track=instance and draw(st.booleans()), training=not instance or draw(st.booleans()),
                         momentum=draw(st.sampled_from([0.1, 0.5, 1.0])) if instance else 0.1)


@st.composite
def sync_cases(draw, world: int | None = None, device: str = "cpu", dtypes=None,
               allow_empty: bool = True) -> SyncCase:
    R = world or draw(st.integers(1, 4))
    spatial = draw(st.sampled_from([(), (2,), (3,), (2, 2)]))
    per_sample = 1
    for s in spatial:
        per_sample *= s
    batches = tuple(draw(st.lists(st.integers(0 if allow_empty else 1, 4), min_size=R, max_size=R)))
    if sum(batches) * per_sample < 2:  # the global batch needs 2 values per channel
        batches = (2,) + batches[1:]
    momentum = draw(MOMENTUM)
    return SyncCase(rank_batches=batches, channels=draw(st.integers(1, 3)), spatial=spatial,
                    dtype=draw(st.sampled_from(dtypes or ["float32", "float64"])), eps=draw(EPS),
                    momentum=momentum, affine=draw(st.booleans()), bias=draw(bias_flag()), track=draw(st.booleans()),
                    nbt_before=draw(st.integers(0, 4)) if momentum is None else 0,
                    offset=draw(st.sampled_from([0.0, 3.0])), spread=draw(st.sampled_from([1.0, 0.1])),
                    seed=draw(SEED))


@st.composite
def convert_cases(draw) -> ConvertCase:
    leaf = st.sampled_from(["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "Linear", "ReLU", "InstanceNorm1d"])
    if draw(st.integers(0, 4)) == 0:
        layout = (("", draw(st.sampled_from(["BatchNorm1d", "BatchNorm2d", "BatchNorm3d"]))),)
    else:
        layout = [("", "Sequential")]
        for i in range(draw(st.integers(1, 3))):
            if draw(st.booleans()):
                layout.append((str(i), "Sequential"))
                for j in range(draw(st.integers(0, 2))):
                    layout.append((f"{i}.{j}", draw(leaf)))
            else:
                layout.append((str(i), draw(leaf)))
        layout = tuple(layout)
    return ConvertCase(layout=layout, num_features=draw(st.integers(1, 4)), eps=draw(EPS), momentum=draw(MOMENTUM),
                       affine=draw(st.booleans()), bias=draw(bias_flag()), track=draw(st.booleans()),
                       bn_training=draw(st.booleans()), requires_grad=draw(st.booleans()),
                       qconfig=draw(st.sampled_from([None, "qconfig-marker"])))


@st.composite
def lrn_cases(draw, kinds=("LocalResponseNorm", "CrossMapLRN2d"), backward: bool = False) -> LRNCase:
    """Mostly valid ranks (LocalResponseNorm: 3D-5D, CrossMapLRN2d: 4D), now and then a rejected one; the size
    from 1 to 5 against up to 6 channels, so windows are clipped on both sides."""
    kind = draw(st.sampled_from(kinds))
    valid = (3, 4, 5) if kind == "LocalResponseNorm" else (4,)
    invalid = (2,) if kind == "LocalResponseNorm" else (3, 5)
    ndim = draw(st.sampled_from(valid * (3 if kind == "LocalResponseNorm" else 7) + invalid))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 6)))[:ndim]
    shape += tuple(draw(st.lists(st.integers(1, 3), min_size=ndim - 2, max_size=ndim - 2)))
    return LRNCase(kind=kind, shape=shape, size=draw(st.integers(1, 5)),
                   alpha=draw(st.sampled_from([1e-4, 0.5, 1.0])), beta=draw(st.sampled_from([0.5, 0.75, 1.0])),
                   k=draw(st.sampled_from([1.0, 2.0])), dtype=draw(st.sampled_from(["float32", "float64"])),
                   seed=draw(SEED), backward=backward)


@st.composite
def rms_cases(draw, device: str = "cpu", backward: bool = False) -> RMSCase:
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=ndim, max_size=ndim)))
    norm_dims = draw(st.integers(1, ndim))
    dtype = draw(st.sampled_from(dtypes_for(device)))
    # eps=None only where every release's documented default agrees (reference/norm/rms.py)
    eps_choices = [None, 1e-5, 1e-3] if dtype in ("float32", "float64") else [1e-5, 1e-3]
    return RMSCase(shape=shape, norm_dims=norm_dims, shape_as_int=norm_dims == 1 and draw(st.booleans()),
                   eps=draw(st.sampled_from(eps_choices)), affine=draw(st.booleans()), dtype=dtype, seed=draw(SEED),
                   backward=backward)


@st.composite
def load_cases(draw) -> LoadCase:
    """BatchNorm (tracked or not) or InstanceNorm without tracking; state dicts of every version, with or without
    the keys the versions differ in."""
    kind = draw(st.sampled_from(["BatchNorm1d", "BatchNorm2d", "InstanceNorm1d", "InstanceNorm2d"]))
    track = kind.startswith("BatchNorm") and draw(st.booleans())
    return LoadCase(kind=kind, num_features=draw(st.integers(1, 4)), affine=draw(st.booleans()), track=track,
                    version=draw(st.sampled_from([None, 1, 2])), with_counter=draw(st.booleans()),
                    counter=draw(st.integers(0, 9)), with_running=not track and draw(st.booleans()),
                    prior=draw(st.sampled_from([0, 0, 3])), strict=draw(st.booleans()), seed=draw(SEED))


REPR_KINDS = ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "InstanceNorm1d", "InstanceNorm2d",
              "InstanceNorm3d", "LayerNorm", "GroupNorm", "RMSNorm", "LocalResponseNorm", "CrossMapLRN2d")


# the keywords a layer is built with (RMSNorm's eps: None, its default, or a number)
REPR_KEYWORDS = {"eps": st.sampled_from([1e-5, 1e-3, 0.1, 1e-8]), "momentum": MOMENTUM, "affine": st.booleans(),
                 "track_running_stats": st.booleans(), "elementwise_affine": st.booleans(), "bias": st.booleans(),
                 "alpha": st.sampled_from([1e-4, 0.5, 2, 1e-10]), "beta": st.sampled_from([0.75, 1.0, 0.5]),
                 "k": st.sampled_from([1.0, 2, 0.5]), "rms_eps": st.sampled_from([None, 1e-5, 1e-3])}


@st.composite
def repr_cases(draw) -> ReprCase:
    """A norm layer with drawn hyperparameters, each keyword passed or left at its default (swarm-style)."""
    kind = draw(st.sampled_from(REPR_KINDS))
    if kind in ("LayerNorm", "RMSNorm"):
        shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
        sizes = (shape[0] if len(shape) == 1 and draw(st.booleans()) else shape,)
        names = ["eps", "elementwise_affine"] + (["bias"] if kind == "LayerNorm" and LN_HAS_BIAS_KW else [])
    elif kind == "GroupNorm":
        groups = draw(st.integers(1, 3))
        sizes = (groups, groups * draw(st.integers(1, 3)))
        names = ["eps", "affine"] + (["bias"] if GN_HAS_BIAS_KW else [])
    elif kind in ("LocalResponseNorm", "CrossMapLRN2d"):
        sizes, names = (draw(st.integers(1, 5)),), ["alpha", "beta", "k"]
    else:
        sizes = (draw(st.integers(1, 6)),)
        names = ["eps", "momentum", "affine", "track_running_stats"]
        names += ["bias"] if BN_HAS_BIAS_KW and not kind.startswith("Instance") else []
    options = tuple((name, draw(REPR_KEYWORDS["rms_eps" if (kind, name) == ("RMSNorm", "eps") else name]))
                    for name in names if draw(st.booleans()))
    return ReprCase(kind=kind, sizes=sizes, options=options)


# the functionals' non-Tensor arguments, drawn; Tensor parameters get a Tensor-like, a real tensor or None
_PLAIN = {"training": st.booleans(), "use_input_stats": st.booleans(), "momentum": st.sampled_from([0.1, 0.3, None]),
          "eps": st.sampled_from([1e-5, 1e-3, 0.25]), "num_groups": st.sampled_from([1, 3]),
          "alpha": st.sampled_from([1e-4, 0.5]), "beta": st.sampled_from([0.75, 1.0]), "k": st.sampled_from([1.0, 2.0]),
          "size": st.integers(1, 4)}


@st.composite
def dispatch_cases(draw, func: str) -> DispatchCase:
    """F.<func> with a Tensor-like input or, where the functional has one, a Tensor-like weight/statistic (with a
    real input); the required arguments always given, each optional one given or left out, the leading given ones
    (a prefix in signature order) positionally."""
    tensor_params = fn.TENSOR_PARAMS[func]
    like = draw(st.sampled_from(tensor_params))
    arguments = []
    for name, default in fn.SIGNATURES[func]:
        if name == like:
            value = "like"
        elif name == "input":
            value = ("tensor", (2, 3, 4))
        elif name in tensor_params:
            value = draw(st.sampled_from([None, ("tensor", (3,))]))
        elif name == "normalized_shape":
            value = (4,)
        else:
            value = draw(_PLAIN[name])
        if name in ("input", like) or default is fn.REQUIRED or draw(st.booleans()):
            arguments.append((name, value))
    names = [name for name, _ in fn.SIGNATURES[func]]
    prefix = 0
    while prefix < len(arguments) and arguments[prefix][0] == names[prefix]:
        prefix += 1
    return DispatchCase(func=func, arguments=tuple(arguments), positional=draw(st.integers(1, prefix)))

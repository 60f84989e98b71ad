"""Cases of the ``norm`` area and the deterministic inputs both sides need.

A Case is a frozen dataclass of plain values.  ``make_*_inputs(case)`` draws the
tensors a case needs with torch's CPU generator seeded by the case (torch's RNG
is used here as a primitive, it is not under test), rounds them to the case's
dtype and hands them over as float64 numpy arrays: the test passes them to the
reference, the runner converts them back, so both sides see exactly the same values.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import torch

# ``bias=`` keyword of the norm layers (guarded: the suite also runs on older builds).
BN_HAS_BIAS_KW = "bias" in inspect.signature(torch.nn.BatchNorm1d.__init__).parameters
GN_HAS_BIAS_KW = "bias" in inspect.signature(torch.nn.GroupNorm.__init__).parameters
LN_HAS_BIAS_KW = "bias" in inspect.signature(torch.nn.LayerNorm.__init__).parameters


@dataclass(frozen=True)
class BNOptions:
    """What a BatchNorm-like module is built and preset with, and how its input values are drawn
    (shared by the single-process ``BNCase`` and the multi-rank ``SyncCase``)."""

    dtype: str = "float32"
    eps: float = 1e-5
    momentum: float | None = 0.1
    affine: bool = True
    bias: bool = True
    track: bool = True
    nbt_before: int = 0  # num_batches_tracked preset before the forward
    offset: float = 0.0
    spread: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class BNCase(BNOptions):
    """One fresh BatchNorm-like module (kind: BatchNorm{1,2,3}d, LazyBatchNorm{1,2,3}d, SyncBatchNorm),
    running stats preset to random values, one forward (and backward with a random grad_output)."""

    kind: str = "BatchNorm1d"
    shape: tuple = (4, 3)
    num_features: int = 3
    training: bool = True
    backward: bool = False


@dataclass(frozen=True)
class SyncCase(BNOptions):
    """SyncBatchNorm over len(rank_batches) ranks; rank r gets a (rank_batches[r], C, *spatial) input."""

    rank_batches: tuple = (3, 2)
    channels: int = 3
    spatial: tuple = ()
    frozen_weight: bool = False  # affine: weight.requires_grad_(False), the bias trained alone


@dataclass(frozen=True)
class BNSeqCase:
    """A fresh module, then ops in order: ("forward", n) | ("train",) | ("eval",) | ("track", bool) |
    ("momentum", float | None).  Each forward gets a fresh (n, C, *spatial) input."""

    kind: str = "BatchNorm1d"
    num_features: int = 3
    spatial: tuple = ()
    dtype: str = "float32"
    eps: float = 1e-5
    momentum: float | None = 0.1
    affine: bool = True
    track: bool = True
    ops: tuple = (("forward", 4),)
    seed: int = 0


@dataclass(frozen=True)
class SeqStep:
    """One field ("y", "running_mean", "running_var", "num_batches_tracked") of the record after the
    ``step``-th forward (0-based) of a BNSeqCase."""

    seq: BNSeqCase = BNSeqCase()
    step: int = 0
    field: str = "y"


@dataclass(frozen=True)
class ConstructCase:
    kind: str = "BatchNorm1d"
    num_features: int = 3
    dtype: str = "float32"
    affine: bool = True
    bias: bool = True
    track: bool = True


@dataclass(frozen=True)
class OtherNormCase:
    """InstanceNorm{1,2,3}d, GroupNorm or LayerNorm, one forward (and backward)."""

    kind: str = "GroupNorm"
    shape: tuple = (2, 4, 3)
    groups: int = 2
    norm_dims: int = 1
    dtype: str = "float32"
    eps: float = 1e-5
    affine: bool = True
    bias: bool = True
    seed: int = 0
    backward: bool = False
    track: bool = False  # InstanceNorm only: track_running_stats (running stats preset to random values)
    training: bool = True  # InstanceNorm only (the other kinds have no mode-dependent behaviour)
    momentum: float = 0.1  # InstanceNorm only
    batched: bool = True  # InstanceNorm (and GroupNorm's rank check): False passes the input x[0] of shape (C, *)
    num_features: int | None = None  # InstanceNorm only: the constructor's num_features (None: the input's C)


@dataclass(frozen=True)
class LRNCase:
    """LocalResponseNorm or CrossMapLRN2d (kind) built with (size, alpha, beta, k), one forward of a (N, C, *) input
    (LocalResponseNorm takes any rank >= 3, CrossMapLRN2d 4D only) and, with ``backward``, the input gradient."""

    kind: str = "LocalResponseNorm"
    shape: tuple = (2, 4, 3)
    size: int = 3
    alpha: float = 0.5
    beta: float = 0.75
    k: float = 1.0
    # the input values
    dtype: str = "float32"
    seed: int = 0
    backward: bool = False


@dataclass(frozen=True)
class RMSCase:
    """RMSNorm over the last ``norm_dims`` dims of ``shape``, one forward (and backward)."""

    shape: tuple = (2, 3)
    norm_dims: int = 1
    shape_as_int: bool = False  # normalized_shape passed as an int (norm_dims == 1)
    # eps=None: the documented default
    eps: float | None = None
    affine: bool = True
    dtype: str = "float32"
    seed: int = 0
    backward: bool = False


@dataclass(frozen=True)
class LoadCase:
    """load_state_dict into a fresh norm layer (its counter first set to ``prior``) of a state dict of the module's
    keys, with ``_metadata`` version ``version`` (None: no metadata), num_batches_tracked = ``counter`` when
    ``with_counter``, and (InstanceNorm without tracking) running stats when ``with_running``."""

    kind: str = "BatchNorm1d"
    num_features: int = 3
    affine: bool = True
    track: bool = True
    # the state dict
    version: int | None = 1
    with_counter: bool = False
    counter: int = 7
    with_running: bool = False
    prior: int = 0
    strict: bool = True
    seed: int = 0
    meta: bool = False  # the layer built on the meta device, the state dict loaded with assign=True


@dataclass(frozen=True)
class DefaultsCase:
    """A norm layer constructed with only its required arguments."""

    kind: str = "BatchNorm1d"
    num_features: int = 3


@dataclass(frozen=True)
class ConvertCase:
    """A module tree (path, kind) in named_modules order ("" is the root; only Sequential has children)
    converted with SyncBatchNorm.convert_sync_batchnorm."""

    layout: tuple = (("", "Sequential"), ("0", "BatchNorm1d"))
    num_features: int = 3
    eps: float = 1e-5
    momentum: float | None = 0.1
    affine: bool = True
    bias: bool = True
    track: bool = True
    bn_training: bool = True
    requires_grad: bool = True
    qconfig: str | None = None


@dataclass(frozen=True)
class ReprCase:
    """A norm layer built as ``kind(*sizes, **dict(options))``, then printed."""

    kind: str = "BatchNorm1d"
    sizes: tuple = (3,)  # the leading size arguments (LayerNorm/RMSNorm: normalized_shape, an int or a tuple)
    options: tuple = ()  # (keyword, value) pairs


@dataclass(frozen=True)
class DispatchCase:
    """F.<func>(...) called with the (name, value) pairs of ``arguments``, the first ``positional`` of them
    positionally; a value is "like" (an instance of a Tensor-like type defining __torch_function__),
    ("tensor", shape) (a real tensor of zeros) or a plain Python value."""

    func: str = "batch_norm"
    arguments: tuple = (("input", "like"), ("running_mean", None), ("running_var", None))
    positional: int = 3


# ---------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------

def dtype_of(name: str) -> torch.dtype:
    return getattr(torch, name)


def _draw(g: torch.Generator, shape, dtype: str, offset: float = 0.0, spread: float = 1.0) -> np.ndarray:
    z = torch.randn(tuple(shape), generator=g, dtype=torch.float64)
    return (offset + spread * z).to(dtype_of(dtype)).to(torch.float64).numpy()


def _positive(g: torch.Generator, shape, dtype: str) -> np.ndarray:
    u = torch.rand(tuple(shape), generator=g, dtype=torch.float64)
    return (0.5 + 1.5 * u).to(dtype_of(dtype)).to(torch.float64).numpy()


def make_bn_inputs(case: BNCase) -> dict:
    g = torch.Generator().manual_seed(case.seed)
    C = case.num_features
    return {"x": _draw(g, case.shape, case.dtype, case.offset, case.spread),
            "dy": _draw(g, case.shape, case.dtype),
            "weight": _draw(g, (C,), case.dtype, 1.0, 0.5),
            "bias": _draw(g, (C,), case.dtype),
            "running_mean": _draw(g, (C,), case.dtype, case.offset, case.spread),
            "running_var": _positive(g, (C,), case.dtype) * case.spread ** 2}


def make_seq_inputs(case: BNSeqCase) -> list[dict]:
    """inputs[0]: parameters; inputs[k]: the k-th forward's input."""
    g = torch.Generator().manual_seed(case.seed)
    C = case.num_features
    out = [{"weight": _draw(g, (C,), case.dtype, 1.0, 0.5), "bias": _draw(g, (C,), case.dtype)}]
    for op in case.ops:
        if op[0] == "forward":
            out.append({"x": _draw(g, (op[1], C) + tuple(case.spatial), case.dtype, 0.5, 1.5)})
    return out


def make_other_inputs(case: OtherNormCase) -> dict:
    """x (and dy) of ``case.shape``, or their first sample for an unbatched case; the parameters and running stats
    of the module (a Lazy module's documented initial ones: it cannot be preset before its first call)."""
    out = _other_inputs(case)
    if not case.batched:
        out["x"], out["dy"] = out["x"][0], out["dy"][0]
    if case.kind.startswith("Lazy"):
        C = out["x"].shape[1] if out["x"].ndim > 1 else case.shape[1]  # what the module infers: input.size(1)
        out.update(weight=np.ones(C), bias=np.zeros(C), running_mean=np.zeros(C), running_var=np.ones(C))
    return out


def _other_inputs(case: OtherNormCase) -> dict:
    g = torch.Generator().manual_seed(case.seed)
    C = case.num_features if case.num_features is not None else case.shape[1]
    pshape = tuple(case.shape[-case.norm_dims:]) if case.kind == "LayerNorm" else (C,)
    out = {"x": _draw(g, case.shape, case.dtype, 0.3, 2.0),
           "weight": _draw(g, pshape, case.dtype, 1.0, 0.5),
           "bias": _draw(g, pshape, case.dtype)}
    out["dy"] = _draw(g, case.shape, case.dtype)  # drawn after: the values above stay those of older seeds
    out["running_mean"] = _draw(g, pshape, case.dtype, 0.3, 2.0)
    out["running_var"] = _positive(g, pshape, case.dtype) * 4.0
    return out


def make_sync_inputs(case: SyncCase) -> dict:
    g = torch.Generator().manual_seed(case.seed)
    C = case.channels
    shapes = [(n, C) + tuple(case.spatial) for n in case.rank_batches]
    xs = [_draw(g, s, case.dtype, case.offset, case.spread) for s in shapes]
    dys = [_draw(g, s, case.dtype) for s in shapes]
    return {"xs": xs, "dys": dys,
            "weight": _draw(g, (C,), case.dtype, 1.0, 0.5),
            "bias": _draw(g, (C,), case.dtype),
            "running_mean": _draw(g, (C,), case.dtype),
            "running_var": _positive(g, (C,), case.dtype)}


def make_lrn_inputs(case: LRNCase) -> dict:
    g = torch.Generator().manual_seed(case.seed)
    return {"x": _draw(g, case.shape, case.dtype, 0.0, 2.0), "dy": _draw(g, case.shape, case.dtype)}


def make_rms_inputs(case: RMSCase) -> dict:
    g = torch.Generator().manual_seed(case.seed)
    pshape = tuple(case.shape[len(case.shape) - case.norm_dims:])
    return {"x": _draw(g, case.shape, case.dtype, 0.3, 2.0), "weight": _draw(g, pshape, case.dtype, 1.0, 0.5),
            "dy": _draw(g, case.shape, case.dtype)}


def make_load_inputs(case: LoadCase) -> dict:
    g = torch.Generator().manual_seed(case.seed)
    C = case.num_features
    return {"weight": _draw(g, (C,), "float32", 1.0, 0.5), "bias": _draw(g, (C,), "float32"),
            "running_mean": _draw(g, (C,), "float32"), "running_var": _positive(g, (C,), "float32")}

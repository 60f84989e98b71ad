"""Torch side of the ``norm`` area: Cases, input generation and the runners.

Imports only torch, numpy, the standard library and ``suite`` modules (the repro
writer embeds this file).  Inputs come from ``make_*_inputs(case)``: torch's CPU
generator seeded by the case, values rounded to the case's dtype and handed over
as float64 numpy arrays, so the reference sees exactly the values torch gets.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import torch

from conform.outcome import Raised

# ``bias=`` keyword of the norm layers (guarded: the suite also runs on older builds).
BN_HAS_BIAS_KW = "bias" in inspect.signature(torch.nn.BatchNorm1d.__init__).parameters
GN_HAS_BIAS_KW = "bias" in inspect.signature(torch.nn.GroupNorm.__init__).parameters
LN_HAS_BIAS_KW = "bias" in inspect.signature(torch.nn.LayerNorm.__init__).parameters


@dataclass(frozen=True)
class BNCase:
    """One fresh BatchNorm-like module (kind: BatchNorm{1,2,3}d, LazyBatchNorm{1,2,3}d, SyncBatchNorm),
    running stats preset to random values, one forward (and backward with a random grad_output)."""

    kind: str = "BatchNorm1d"
    shape: tuple = (4, 3)
    num_features: int = 3
    dtype: str = "float32"
    eps: float = 1e-5
    momentum: float | None = 0.1
    affine: bool = True
    bias: bool = True
    track: bool = True
    training: bool = True
    offset: float = 0.0
    spread: float = 1.0
    seed: int = 0
    backward: bool = False
    nbt_before: int = 0


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


@dataclass(frozen=True)
class DefaultsCase:
    """A norm layer constructed with only its required arguments."""

    kind: str = "BatchNorm1d"
    num_features: int = 3


@dataclass(frozen=True)
class SyncCase:
    """SyncBatchNorm over len(rank_batches) ranks; rank r gets a (rank_batches[r], C, *spatial) input."""

    rank_batches: tuple = (3, 2)
    channels: int = 3
    spatial: tuple = ()
    dtype: str = "float32"
    eps: float = 1e-5
    momentum: float | None = 0.1
    affine: bool = True
    bias: bool = True
    track: bool = True
    nbt_before: int = 0
    offset: float = 0.0
    spread: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class SyncField:
    """One field of a SyncCase's outcome (the per-field tolerances differ)."""

    sync: SyncCase = SyncCase()
    field: str = "y"


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
    g = torch.Generator().manual_seed(case.seed)
    pshape = tuple(case.shape[-case.norm_dims:]) if case.kind == "LayerNorm" else (case.shape[1],)
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


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------

def to_torch(arr: np.ndarray, dtype: str, device: str) -> torch.Tensor:
    # values are already representable in ``dtype``: the conversions are exact
    return torch.tensor(arr, dtype=torch.float64).to(dtype_of(dtype)).to(device)


def to_np(t: torch.Tensor | None):
    # copy: for float64 CPU tensors .to() is a no-op and numpy() would alias a buffer that later calls update
    return None if t is None else t.detach().to("cpu", torch.float64).numpy().copy()


def raised(exc: BaseException) -> Raised:
    return Raised(type(exc).__name__, str(exc))


def select(outcome, keys: tuple[str, ...]):
    """The named fields of a runner's dict outcome (a Raised stays a Raised)."""
    if isinstance(outcome, Raised):
        return outcome
    return {k: outcome[k] for k in keys if k in outcome}


def bn_kwargs(eps, momentum, affine, track, bias=True) -> dict:
    kw = {"eps": eps, "momentum": momentum, "affine": affine, "track_running_stats": track}
    if not bias:
        kw["bias"] = False  # only drawn where BN_HAS_BIAS_KW
    return kw


def build_bn(case: BNCase, device: str) -> torch.nn.Module:
    cls = getattr(torch.nn, case.kind)
    kw = bn_kwargs(case.eps, case.momentum, case.affine, case.track, case.bias)
    m = cls(**kw) if case.kind.startswith("Lazy") else cls(case.num_features, **kw)
    return m.to(device=device, dtype=dtype_of(case.dtype))


# ---------------------------------------------------------------------------------------
# runners
# ---------------------------------------------------------------------------------------

def run_bn(case: BNCase, device: str) -> dict | Raised:
    inputs = make_bn_inputs(case)
    m = build_bn(case, device)
    with torch.no_grad():
        if case.affine:
            m.weight.copy_(to_torch(inputs["weight"], case.dtype, device))
            if m.bias is not None:
                m.bias.copy_(to_torch(inputs["bias"], case.dtype, device))
        if case.track:
            m.running_mean.copy_(to_torch(inputs["running_mean"], case.dtype, device))
            m.running_var.copy_(to_torch(inputs["running_var"], case.dtype, device))
            m.num_batches_tracked.fill_(case.nbt_before)
    m.train(case.training)
    x = to_torch(inputs["x"], case.dtype, device).requires_grad_(case.backward)
    try:
        y = m(x)
    except (ValueError, RuntimeError) as exc:
        return raised(exc)
    out = {"dtype": str(y.dtype).removeprefix("torch."), "y": to_np(y)}
    if case.track:
        out.update(running_mean=to_np(m.running_mean), running_var=to_np(m.running_var),
                   num_batches_tracked=int(m.num_batches_tracked))
    if case.backward and x.numel():
        y.backward(to_torch(inputs["dy"], case.dtype, device))
        out["grad_input"] = to_np(x.grad)
        if case.affine:
            out["grad_weight"] = to_np(m.weight.grad)
            if m.bias is not None:
                out["grad_bias"] = to_np(m.bias.grad)
    return out


def bn_output(case: BNCase, device: str):
    return select(run_bn(case, device), ("y",))


def dtype_shape_of(outcome):
    if isinstance(outcome, Raised):
        return outcome
    return {"dtype": outcome["dtype"], "shape": list(outcome["y"].shape)}


def bn_dtype_shape(case: BNCase, device: str):
    return dtype_shape_of(run_bn(case, device))


def bn_running_mean(case: BNCase, device: str):
    return select(run_bn(case, device), ("running_mean",))


def bn_running_var(case: BNCase, device: str):
    return select(run_bn(case, device), ("running_var",))


def bn_counter(case: BNCase, device: str):
    return select(run_bn(case, device), ("num_batches_tracked",))


def bn_grad_input(case: BNCase, device: str):
    return select(run_bn(case, device), ("grad_input",))


def bn_grad_weight(case: BNCase, device: str):
    return select(run_bn(case, device), ("grad_weight",))


def bn_grad_bias(case: BNCase, device: str):
    return select(run_bn(case, device), ("grad_bias",))


def run_bn_sequence(case: BNSeqCase, device: str) -> list:
    inputs = make_seq_inputs(case)
    cls = getattr(torch.nn, case.kind)
    m = cls(case.num_features, **bn_kwargs(case.eps, case.momentum, case.affine, case.track))
    m = m.to(device=device, dtype=dtype_of(case.dtype))
    if case.affine:
        with torch.no_grad():
            m.weight.copy_(to_torch(inputs[0]["weight"], case.dtype, device))
            m.bias.copy_(to_torch(inputs[0]["bias"], case.dtype, device))
    records, step = [], 0
    for op in case.ops:
        if op[0] == "train":
            m.train()
        elif op[0] == "eval":
            m.eval()
        elif op[0] == "track":
            m.track_running_stats = op[1]
        elif op[0] == "momentum":
            m.momentum = op[1]
        elif op[0] == "forward":
            step += 1
            try:
                with torch.no_grad():
                    y = to_np(m(to_torch(inputs[step]["x"], case.dtype, device)))
            except (ValueError, RuntimeError) as exc:
                y = raised(exc)
            rec = {"y": y}
            if m.running_mean is not None:
                rec.update(running_mean=to_np(m.running_mean), running_var=to_np(m.running_var),
                           num_batches_tracked=int(m.num_batches_tracked))
            records.append(rec)
    return records


def seq_step(case: SeqStep, device: str):
    return select(run_bn_sequence(case.seq, device)[case.step], (case.field,))


def run_construct(case: ConstructCase, device: str) -> dict:
    cls = getattr(torch.nn, case.kind)
    m = cls(case.num_features, **bn_kwargs(1e-5, 0.1, case.affine, case.track, case.bias))
    m = m.to(device=device, dtype=dtype_of(case.dtype))
    out = {"weight": to_np(m.weight), "bias": to_np(m.bias)}
    if case.track:
        out["buffers"] = {"running_mean": to_np(m.running_mean), "running_var": to_np(m.running_var),
                          "num_batches_tracked": int(m.num_batches_tracked),
                          "dtypes": [str(t.dtype).removeprefix("torch.") for t in
                                     (m.running_mean, m.running_var, m.num_batches_tracked)]}
    else:
        out["buffers"] = {"running_mean": m.running_mean, "running_var": m.running_var,
                          "num_batches_tracked": m.num_batches_tracked}
    return out


def run_construct_params(case: ConstructCase, device: str):
    return select(run_construct(case, device), ("weight", "bias"))


def run_construct_buffers(case: ConstructCase, device: str):
    return select(run_construct(case, device), ("buffers",))


def run_lazy(case: BNCase, device: str) -> dict | Raised:
    """A Lazy module's first call (training, default parameters)."""
    inputs = make_bn_inputs(case)
    m = build_bn(case, device).train(case.training)
    try:
        y = m(to_torch(inputs["x"], case.dtype, device))
    except (ValueError, RuntimeError) as exc:
        return raised(exc)
    out = {"class": type(m).__name__, "num_features": m.num_features,
           "weight_shape": None if m.weight is None else list(m.weight.shape),
           "bias_shape": None if m.bias is None else list(m.bias.shape),
           "running_shape": None if m.running_mean is None else list(m.running_mean.shape),
           "y": to_np(y)}
    if case.track:
        out.update(running_mean=to_np(m.running_mean), running_var=to_np(m.running_var),
                   num_batches_tracked=int(m.num_batches_tracked))
    return out


LAZY_STRUCTURE = ("num_features", "weight_shape", "bias_shape", "running_shape")


def lazy_class(case: BNCase, device: str):
    return select(run_lazy(case, device), ("class",))


def lazy_structure(case: BNCase, device: str):
    return select(run_lazy(case, device), LAZY_STRUCTURE)


def lazy_output(case: BNCase, device: str):
    return select(run_lazy(case, device), ("y",))


def lazy_values(case: BNCase, device: str):
    return select(run_lazy(case, device), ("running_mean", "running_var", "num_batches_tracked"))


def run_other_norm(case: OtherNormCase, device: str) -> dict | Raised:
    inputs = make_other_inputs(case)
    dt = dtype_of(case.dtype)
    try:
        if case.kind.startswith("InstanceNorm"):
            m = getattr(torch.nn, case.kind)(case.shape[1], eps=case.eps, affine=case.affine,
                                             track_running_stats=case.track, momentum=case.momentum)
        elif case.kind == "GroupNorm":
            kw = {} if case.bias else {"bias": False}
            m = torch.nn.GroupNorm(case.groups, case.shape[1], eps=case.eps, affine=case.affine, **kw)
        else:
            kw = {} if case.bias else {"bias": False}
            m = torch.nn.LayerNorm(tuple(case.shape[-case.norm_dims:]), eps=case.eps,
                                   elementwise_affine=case.affine, **kw)
        m = m.to(device=device, dtype=dt)
        with torch.no_grad():
            for name in ("weight", "bias"):
                p = getattr(m, name, None)
                if isinstance(p, torch.Tensor):
                    p.copy_(to_torch(inputs[name], case.dtype, device))
            for name in ("running_mean", "running_var"):
                buf = getattr(m, name, None)
                if isinstance(buf, torch.Tensor):
                    buf.copy_(to_torch(inputs[name], case.dtype, device))
        m.train(case.training)
        x = to_torch(inputs["x"], case.dtype, device).requires_grad_(case.backward)
        y = m(x)
    except (ValueError, RuntimeError) as exc:
        return raised(exc)
    if case.backward:
        y.backward(to_torch(inputs["dy"], case.dtype, device))
        out = {"grad_input": to_np(x.grad)}
        for name in ("weight", "bias"):
            p = getattr(m, name, None)
            if isinstance(p, torch.Tensor):
                out["grad_" + name] = to_np(p.grad)
        return out
    if case.kind.startswith("InstanceNorm") and case.track:
        return {"y": to_np(y), "running_mean": to_np(m.running_mean), "running_var": to_np(m.running_var)}
    return {"y": to_np(y)}


def other_output(case: OtherNormCase, device: str):
    return select(run_other_norm(case, device), ("y",))


def other_running_mean(case: OtherNormCase, device: str):
    return select(run_other_norm(case, device), ("running_mean",))


def other_running_var(case: OtherNormCase, device: str):
    return select(run_other_norm(case, device), ("running_var",))


def other_grad(case: OtherNormCase, device: str, field: str):
    return select(run_other_norm(case, device), (field,))


def other_grad_input(case: OtherNormCase, device: str):
    return other_grad(case, device, "grad_input")


def other_grad_weight(case: OtherNormCase, device: str):
    return other_grad(case, device, "grad_weight")


def other_grad_bias(case: OtherNormCase, device: str):
    return other_grad(case, device, "grad_bias")


def run_defaults(case: DefaultsCase, device: str) -> dict:
    """The documented defaults as the constructed module holds them."""
    if case.kind == "LayerNorm":
        m = torch.nn.LayerNorm(case.num_features, device=device)
        return {"eps": m.eps, "elementwise_affine": m.elementwise_affine, "has_bias": m.bias is not None}
    if case.kind == "GroupNorm":
        m = torch.nn.GroupNorm(1, case.num_features, device=device)
        return {"eps": m.eps, "affine": m.affine, "has_bias": m.bias is not None}
    m = getattr(torch.nn, case.kind)(case.num_features, device=device)
    return {"eps": m.eps, "momentum": m.momentum, "affine": m.affine,
            "track_running_stats": m.track_running_stats, "has_bias": m.bias is not None}


# ---------------------------------------------------------------------------------------
# SyncBatchNorm, single process
# ---------------------------------------------------------------------------------------

def bn_class_for_ndim(ndim: int) -> str:
    return {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d", 5: "BatchNorm3d"}[ndim]


def set_sync_state(m: torch.nn.Module, case: SyncCase, inputs: dict, device: str) -> None:
    with torch.no_grad():
        if case.affine:
            m.weight.copy_(to_torch(inputs["weight"], case.dtype, device))
            if m.bias is not None:
                m.bias.copy_(to_torch(inputs["bias"], case.dtype, device))
        if case.track:
            m.running_mean.copy_(to_torch(inputs["running_mean"], case.dtype, device))
            m.running_var.copy_(to_torch(inputs["running_var"], case.dtype, device))
            m.num_batches_tracked.fill_(case.nbt_before)


def run_bn_concat(case: SyncCase, device: str) -> dict:
    """torch's single-process BatchNorm on the concatenation of every rank's batch, split back per rank."""
    inputs = make_sync_inputs(case)
    x = to_torch(np.concatenate(inputs["xs"]), case.dtype, device).requires_grad_()
    dy = to_torch(np.concatenate(inputs["dys"]), case.dtype, device)
    m = getattr(torch.nn, bn_class_for_ndim(x.dim()))(
        case.channels, **bn_kwargs(case.eps, case.momentum, case.affine, case.track, case.bias))
    m = m.to(device=device, dtype=dtype_of(case.dtype)).train()
    set_sync_state(m, case, inputs, device)
    y = m(x)
    y.backward(dy)
    cuts = list(np.cumsum(case.rank_batches)[:-1])
    out = {"y": np.split(to_np(y), cuts), "grad_input": np.split(to_np(x.grad), cuts)}
    if case.affine:
        out["grad_weight"] = to_np(m.weight.grad)
        if m.bias is not None:
            out["grad_bias"] = to_np(m.bias.grad)
    if case.track:
        out.update(running_mean=to_np(m.running_mean), running_var=to_np(m.running_var))
    return out


def concat_field(case: SyncField, device: str):
    return select(run_bn_concat(case.sync, device), (case.field,))


def run_convert(case: ConvertCase, device: str) -> dict:
    def make(kind: str) -> torch.nn.Module:
        if kind.startswith("BatchNorm"):
            m = getattr(torch.nn, kind)(case.num_features, **bn_kwargs(case.eps, case.momentum, case.affine,
                                                                       case.track, case.bias))
            m.train(case.bn_training)
            for p in m.parameters():
                p.requires_grad_(case.requires_grad)
            if case.qconfig is not None:
                m.qconfig = case.qconfig
            return m
        if kind == "Sequential":
            return torch.nn.Sequential()
        if kind == "Linear":
            return torch.nn.Linear(case.num_features, case.num_features)
        if kind == "InstanceNorm1d":
            return torch.nn.InstanceNorm1d(case.num_features)
        return getattr(torch.nn, kind)()

    root = make(case.layout[0][1])
    for path, kind in case.layout[1:]:
        parent, _, name = path.rpartition(".")
        root.get_submodule(parent).add_module(name, make(kind))
    root = root.to(device)
    before = dict(root.named_modules())
    converted = torch.nn.SyncBatchNorm.convert_sync_batchnorm(root)
    after = dict(converted.named_modules())
    bn = {}
    for path, old in before.items():
        if not isinstance(old, torch.nn.modules.batchnorm._BatchNorm):
            continue
        new = after[path]
        bn[path] = {
            "same": {k: getattr(new, k) is getattr(old, k) for k in
                     ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
                     if getattr(old, k) is not None},
            "hyper": [new.num_features, new.eps, new.momentum, new.affine, new.track_running_stats],
            "training": new.training,
            "requires_grad": [p.requires_grad for p in new.parameters(recurse=False)],
            "qconfig": getattr(new, "qconfig", None)}
    return {"root_same_object": converted is root,
            "modules": [(path, type(m).__name__) for path, m in converted.named_modules()],
            "bn": bn}


def convert_structure(case: ConvertCase, device: str):
    return select(run_convert(case, device), ("root_same_object", "modules"))


def convert_sharing(case: ConvertCase, device: str):
    return select(run_convert(case, device), ("bn",))

"""How the norm layers print: ``repr(layer)`` and ``layer.extra_repr()``.

Sources: torch.nn.Module.extra_repr ("Return the extra representation of the module. To print customized extra
information, you should re-implement this method in your own modules"; docs.pytorch.org/docs/stable/generated/
torch.nn.Module.html#torch.nn.Module.extra_repr) and Module.__repr__ (a module without children prints
``ClassName(<extra_repr>)`` on one line).  The fields each layer reports and their order are the layer's own
extra_repr (torch/nn/modules/batchnorm.py: _NormBase.extra_repr; normalization.py: LocalResponseNorm,
CrossMapLRN2d, LayerNorm, GroupNorm, RMSNorm .extra_repr): the docs leave them to the layer.

``bias=`` is reported from 2.12 on, the release that gave BatchNorm and GroupNorm their ``bias`` keyword and made
BatchNorm/InstanceNorm/LayerNorm/GroupNorm print it; measured by reading the extra_repr of every release 2.4.1 ...
2.15.0 (the installed wheels' torch/nn/modules/{batchnorm,normalization}.py): absent up to 2.11.0, present from
2.12.1 on, the other fields identical in all twelve.
"""
from __future__ import annotations

from conform.expect import Expect
from conform.rules import rule
from reference.versions import since

EXTRA_REPR_DOC = "https://docs.pytorch.org/docs/stable/generated/torch.nn.Module.html#torch.nn.Module.extra_repr"

REPR_ARGUMENTS = rule(
    "norm.repr.arguments",
    "repr(layer) of a norm layer is 'ClassName(<extra_repr>)', and extra_repr() reports the constructor's "
    "hyperparameters with the values the layer holds: the size arguments bare (normalized_shape as a tuple), then "
    "name=value (BatchNorm/InstanceNorm/SyncBatchNorm: eps, momentum, affine, bias (2.12+: whether the layer has a "
    "bias), track_running_stats; LayerNorm: eps, elementwise_affine, bias (2.12+); GroupNorm: eps, affine, bias "
    "(2.12+); RMSNorm: eps, elementwise_affine; LocalResponseNorm/CrossMapLRN2d: alpha, beta, k).",
    f"{EXTRA_REPR_DOC}; torch/nn/modules/module.py: Module.__repr__; torch/nn/modules/batchnorm.py: "
    "_NormBase.extra_repr; torch/nn/modules/normalization.py: LocalResponseNorm/CrossMapLRN2d/LayerNorm/GroupNorm/"
    "RMSNorm.extra_repr")

# what each kind prints after its size arguments: (field, the constructor keyword it reports, its default);
# "bias" reports whether the layer ends up with a bias (handled in ``reported``)
_BN = (("eps", 1e-5), ("momentum", 0.1), ("affine", True), ("bias", True), ("track_running_stats", True))
_IN = (("eps", 1e-5), ("momentum", 0.1), ("affine", False), ("bias", True), ("track_running_stats", False))
FIELDS = {
    **{f"BatchNorm{k}d": _BN for k in (1, 2, 3)}, "SyncBatchNorm": _BN,
    **{f"InstanceNorm{k}d": _IN for k in (1, 2, 3)},
    "LayerNorm": (("eps", 1e-5), ("elementwise_affine", True), ("bias", True)),
    "GroupNorm": (("eps", 1e-5), ("affine", True), ("bias", True)),
    "RMSNorm": (("eps", None), ("elementwise_affine", True)),
    "LocalResponseNorm": (("alpha", 1e-4), ("beta", 0.75), ("k", 1.0)),
    "CrossMapLRN2d": (("alpha", 1e-4), ("beta", 0.75), ("k", 1)),
}
# where the layer keeps its scale: a bias exists only with it (and, where the keyword exists, bias=True)
SCALE_FLAG = {"LayerNorm": "elementwise_affine"}


def reported(kind: str, options: dict) -> list[tuple[str, object]]:
    """The (name, value) pairs a layer of ``kind`` built with keyword ``options`` reports, in order."""
    out = []
    for name, default in FIELDS[kind]:
        if name == "bias":
            if not since("2.12"):
                continue
            flag = SCALE_FLAG.get(kind, "affine")
            out.append((name, bool(options.get(flag, dict(FIELDS[kind])[flag]) and options.get("bias", True))))
        else:
            out.append((name, options.get(name, default)))
    return out


def size_text(kind: str, sizes: tuple) -> list[str]:
    """The bare leading arguments: normalized_shape as the tuple the layer keeps (an int is a 1-tuple)."""
    if kind in ("LayerNorm", "RMSNorm"):
        shape = sizes[0]
        return [str(tuple(shape) if isinstance(shape, (tuple, list)) else (shape,))]
    return [str(s) for s in sizes]


def extra_repr(kind: str, sizes: tuple, options: dict) -> str:
    # str.format's "{eps}" is format(value, ""), i.e. str(value) of the same Python object (1e-05, None, 0.1)
    return ", ".join(size_text(kind, sizes) + [f"{name}={value}" for name, value in reported(kind, options)])


def expectations(case) -> list[Expect]:
    """A ReprCase: the layer's extra_repr() and its repr()."""
    text = extra_repr(case.kind, case.sizes, dict(case.options))
    return [Expect(REPR_ARGUMENTS, text, key="extra_repr"), Expect(REPR_ARGUMENTS, f"{case.kind}({text})", key="repr")]

"""scatter_kwargs: positional inputs and kwargs scattered separately, the shorter padded
(torch/nn/parallel/scatter_gather.py: scatter_kwargs)."""
from __future__ import annotations

from conform.expect import Expect
from conform.rules import rule
from reference.parallel.scatter import SG, STANDIN, Values, scatter_tree

KWARGS_PAD = rule(
    "parallel.scatter_kwargs.pad",
    "scatter_kwargs scatters inputs and kwargs separately and pads the shorter list (with () or {}) to the "
    "longer one's length; both are returned as tuples" + STANDIN,
    f"{SG}: scatter_kwargs")
KWARGS_NON_TENSOR = rule(
    "parallel.scatter_kwargs.non_tensor",
    "non-tensor kwargs are duplicated to every device (scatter: 'Duplicates references to objects that are "
    "not tensors'), so where the tensors scatter into fewer chunks than there are devices, scatter_kwargs "
    "pads the positional inputs with () up to the kwargs' length" + STANDIN,
    # The two documented behaviours compose to this; what DataParallel then does with an empty input
    # (pytorch/pytorch#31460, open) lies outside its contract ("The batch size should be larger than the
    # number of GPUs used") and is not modelled.
    f"{SG}: scatter (docstring), scatter_kwargs (pads the shorter of inputs / kwargs)")

EMPTY_INPUTS = ("seq", "tuple", None, [])
EMPTY_KWARGS = ("map", "dict", False, [])


def scattered(case, values: Values) -> tuple[list, list]:
    """The scattered positional inputs and kwargs, unpadded (an empty or missing one scatters to [])."""
    n, dim, dtype = case.n_devices, case.dim, case.dtype
    inputs = scatter_tree(case.inputs, n, dim, dtype, values) if case.inputs[2] else []
    kwargs = scatter_tree(case.kwargs, n, dim, dtype, values) if case.kwargs and case.kwargs[2] else []
    return inputs, kwargs


def scatter_kwargs_outcome(case, values: Values) -> dict:
    """``case``: ``inputs`` (a tuple tree), ``kwargs`` (a dict tree or None), ``n_devices``, ``dim``, ``dtype``."""
    inputs, kwargs = scattered(case, values)
    width = max(len(inputs), len(kwargs))
    inputs = inputs + [EMPTY_INPUTS] * (width - len(inputs))
    kwargs = kwargs + [EMPTY_KWARGS] * (width - len(kwargs))
    return {"inputs": ("tuple", inputs), "kwargs": ("tuple", kwargs)}


def expectations(case, values: Values) -> list[Expect]:
    """The padded pair, under KWARGS_NON_TENSOR where a kwarg is not a tensor (it goes to every device) and
    under KWARGS_PAD otherwise."""
    non_tensor = bool(case.kwargs) and any(child[0] != "T" for _, child in case.kwargs[2])
    return [Expect(KWARGS_NON_TENSOR if non_tensor else KWARGS_PAD, scatter_kwargs_outcome(case, values))]

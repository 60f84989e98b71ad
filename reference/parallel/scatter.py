"""scatter: chunking of tensors and recursion through containers (torch/nn/parallel/scatter_gather.py).

Where the rule is about chunking, the documented behaviour is ``torch.chunk``'s (the transport,
``torch/csrc/cuda/comm.cpp: scatter``, calls ``tensor.chunk(len(devices), dim)`` when no chunk
sizes are given): every chunk has ``ceil(n / N)`` rows except a smaller last one, so a small
batch yields *fewer* chunks than devices.

Trees and outcomes are plain nested tuples (the encoding is described in ``suite/parallel/cases.py``;
the reference reads them by position).  Tensor leaves ``("T", leaf_id, shape)`` get their values from
``values(leaf_id, shape)``, the input generation the caller hands in.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from conform.expect import Expect
from conform.outcome import Raised
from conform.rules import rule

SG = "torch/nn/parallel/scatter_gather.py"
STANDIN = " (on CPU: torch's Python recursion with a CPU stand-in for the Scatter/Gather transport)"

SCATTER_CHUNK = rule(
    "parallel.scatter.chunk",
    "scatter splits a tensor along dim into torch.chunk(N) pieces: ceil(n/N) rows each, a smaller last one, "
    "fewer pieces than devices when the batch is small; a tensor input gives a tuple" + STANDIN,
    f"{SG}: scatter; torch/nn/parallel/comm.py: scatter; torch.chunk docs")
SCATTER_MIN = rule(
    "parallel.scatter.min_chunks",
    "with several tensors, scatter returns as many replicas as the tensor with the fewest chunks; the rest is "
    "dropped (zip truncation)" + STANDIN,
    f"{SG}: scatter (zip over the scattered members)")
SCATTER_SEQUENCE = rule(
    "parallel.scatter.sequence",
    "tuples and lists are scattered member-wise into one tuple/list per replica (type kept), recursively"
    + STANDIN,
    f"{SG}: scatter; DataParallel docs ('tuple, list and dict types will be shallow copied')")
SCATTER_MAPPING = rule(
    "parallel.scatter.mapping",
    "dicts (and dict subclasses) are scattered value-wise into one mapping of the same type per replica, keys "
    "in order" + STANDIN,
    f"{SG}: scatter (type(obj)(pairs))")
SCATTER_NAMEDTUPLE = rule(
    "parallel.scatter.namedtuple",
    "namedtuples are scattered field-wise into one namedtuple of the same type per replica; like any tuple, "
    "an empty one is passed by reference" + STANDIN,
    f"{SG}: scatter, _is_namedtuple")
SCATTER_BY_REFERENCE = rule(
    "parallel.scatter.by_reference",
    "non-tensor objects are not copied: every replica receives the very same object (N references)" + STANDIN,
    f"{SG}: scatter docstring ('Duplicates references to objects that are not tensors')")
SCATTER_EMPTY = rule(
    "parallel.scatter.empty_container",
    "empty tuples, lists and dicts are treated as plain objects: each replica receives the same object" + STANDIN,
    f"{SG}: scatter (len(obj) > 0 guards)")
SCATTER_CPU_BUILD = rule(
    "parallel.scatter.cpu_build",
    "on a build without CUDA there is no transport: scattering a tensor raises instead of returning chunks",
    "torch/nn/parallel/comm.py: scatter (torch._C._scatter exists only in CUDA builds)")

# The structure a family of drawn inputs is built around (suite/parallel/strategies.py: scatter_cases(root)),
# and the rule that speaks about that structure.
ROOTS = {"tensor": SCATTER_CHUNK, "tensors": SCATTER_MIN, "sequence": SCATTER_SEQUENCE, "mapping": SCATTER_MAPPING,
         "namedtuple": SCATTER_NAMEDTUPLE, "plain": SCATTER_BY_REFERENCE, "empty": SCATTER_EMPTY}

Values = Callable[[int, tuple], np.ndarray]


def chunk_sizes(n: int, parts: int) -> list[int]:
    """torch.chunk: pieces of ceil(n/parts), the last smaller; as many as needed (<= parts)."""
    if n == 0:
        return [0] * parts  # torch.chunk returns `parts` empty pieces for an empty dimension
    size = -(-n // parts)
    return [min(size, n - start) for start in range(0, n, size)]


def tensor_value(node: tuple, dtype: str, values: Values) -> tuple:
    _, leaf_id, shape = node
    return ("T", dtype, values(leaf_id, tuple(shape)))


def _leaf(node: tuple) -> tuple:
    if node[0] == "obj":
        return ("obj", node[1], True)
    return tuple(node)


def _empty_same(typename: str):
    # The empty tuple is a CPython singleton: identity is not observable, both sides encode None.
    return None if typename == "tuple" else True


def scatter_tree(node: tuple, n: int, dim: int, dtype: str, values: Values, *, recurse=None) -> list:
    """One encoded value per replica (fewer than n where a tensor yields fewer chunks).

    ``recurse`` scatters the members of a non-empty container (same signature, without ``recurse``);
    by default this function itself."""
    def member(child: tuple) -> list:
        if recurse is None:
            return scatter_tree(child, n, dim, dtype, values)
        return recurse(child, n, dim, dtype, values)

    kind = node[0]
    if kind == "T":
        _, _, array = tensor_value(node, dtype, values)
        axis = dim % array.ndim
        bounds = np.cumsum(chunk_sizes(array.shape[axis], n))[:-1]
        return [("T", dtype, piece) for piece in np.split(array, bounds, axis=axis)]
    if kind == "seq" and node[2]:
        members = [member(child) for child in node[2]]
        count = min(len(m) for m in members)
        return [("seq", node[1], False, [m[j] for m in members]) for j in range(count)]
    if kind == "map" and node[2]:
        scattered = [member(child) for _, child in node[2]]
        count = min(len(v) for v in scattered)
        keys = [key for key, _ in node[2]]
        return [("map", node[1], False, [[k, v[j]] for k, v in zip(keys, scattered)]) for j in range(count)]
    if kind in ("seq", "map"):  # empty container: passed by reference like any other object
        return [(kind, node[1], _empty_same(node[1]), [])] * n
    return [_leaf(node)] * n


def scatter_outcome(case, values: Values) -> dict:
    """``case``: ``tree``, ``n_devices``, ``dim``, ``dtype``.  A tensor root gives a tuple, anything else a list."""
    replicas = scatter_tree(case.tree, case.n_devices, case.dim, case.dtype, values)
    return {"type": "tuple" if case.tree[0] == "T" else "list", "replicas": replicas}


def expectations(case, values: Values, root: str) -> list[Expect]:
    """A case drawn around ``root`` (a key of ROOTS): the whole scatter outcome, under that structure's rule."""
    return [Expect(ROOTS[root], scatter_outcome(case, values))]


def cpu_build_expectations(case) -> list[Expect]:
    """torch's own transport on a build without CUDA."""
    return [Expect(SCATTER_CPU_BUILD, {"type": "raised", "replicas": Raised("AttributeError|RuntimeError|AssertionError")})]

"""gather: concatenation of the replicas' outputs and recursion through them
(torch/nn/parallel/scatter_gather.py: gather).

``case.outputs`` holds one tree per replica (``suite/parallel/cases.py``); tensor leaves get their values
from ``values(leaf_id, shape)``, handed in by the caller.
"""
from __future__ import annotations

import numpy as np

from conform.expect import Expect
from conform.outcome import Raised
from conform.rules import rule
from reference.parallel.scatter import SG, STANDIN, Values, tensor_value

GATHER_CONCAT = rule(
    "parallel.gather.concat",
    "gather concatenates the replicas' tensors along dim in replica order" + STANDIN,
    f"{SG}: gather; torch/nn/parallel/comm.py: gather")
GATHER_MAPPING = rule(
    "parallel.gather.mapping",
    "dict outputs gather key-wise in the first replica's key order, keeping the mapping type" + STANDIN,
    f"{SG}: gather")
GATHER_KEYS = rule(
    "parallel.gather.dict_keys",
    "dict outputs with different numbers of keys raise ValueError('All dicts must have the same number of "
    "keys'); a key of the first replica missing elsewhere raises KeyError" + STANDIN,
    f"{SG}: gather")
GATHER_SEQUENCE = rule(
    "parallel.gather.sequence",
    "list, tuple and namedtuple outputs gather element-wise keeping the first replica's type; different "
    "lengths raise ValueError" + STANDIN,
    f"{SG}: gather (zip(..., strict=True))")
GATHER_NONE = rule(
    "parallel.gather.none",
    "None outputs gather to None; a None in some replicas only is a structure mismatch and raises" + STANDIN,
    f"{SG}: gather")
GATHER_SCALAR = rule(
    "parallel.gather.scalar",
    "0-dim outputs gathered along dim 0 are unsqueezed to a vector of one entry per replica, with a warning"
    + STANDIN,
    "torch/nn/parallel/_functions.py: Gather.forward; DataParallel docs (scalar outputs)")
GATHER_MISMATCH = rule(
    "parallel.gather.mismatch",
    "tensors whose sizes differ outside dim, or a tensor facing a non-tensor, raise instead of gathering"
    + STANDIN,
    "torch/nn/parallel/comm.py: gather ('sizes ... have to match')")
GATHER_UNSUPPORTED = rule(
    "parallel.gather.unsupported_leaf",
    "gather supports tensors, None and containers of them; other leaves (numbers, strings) raise TypeError "
    "instead of producing a value" + STANDIN,
    f"{SG}: gather; pytorch/pytorch#62466, #15994")
GATHER_CPU_TENSORS = rule(
    "parallel.gather.cpu_tensors",
    "the Gather autograd function refuses CPU tensors: AssertionError('Gather function not implemented for "
    "CPU tensors'), on every build",
    "torch/nn/parallel/_functions.py: Gather.forward")

# What a family of drawn outputs is built to exercise (suite/parallel/test_gather.py draws one family per
# key), and the rule that speaks about it.
ABOUT = {"concat": GATHER_CONCAT, "mapping": GATHER_MAPPING, "dict_keys": GATHER_KEYS, "sequence": GATHER_SEQUENCE,
         "none": GATHER_NONE, "scalar": GATHER_SCALAR, "mismatch": GATHER_MISMATCH,
         "unsupported_leaf": GATHER_UNSUPPORTED}

GATHER_SCALAR_WARNING = ("Was asked to gather along dimension 0, but all input tensors were scalars; "
                         "will instead unsqueeze and return a vector.")
MISMATCH = "TypeError|AttributeError|RuntimeError"


class GatherError(Exception):
    """The gather raises: ``raised`` is the expected outcome."""

    def __init__(self, raised: Raised):
        self.raised = raised


def gather_tree(nodes: list, dim: int, dtype: str, warns: list, values: Values, *, recurse=None) -> tuple:
    """The gathered value of the replicas' ``nodes`` at one position; raises GatherError.  ``recurse``
    gathers the members of containers (same signature, without ``recurse``); by default this function."""
    def member(children: list) -> tuple:
        if recurse is None:
            return gather_tree(children, dim, dtype, warns, values)
        return recurse(children, dim, dtype, warns, values)

    first = nodes[0]
    kind = first[0]
    if kind == "T":
        if any(node[0] != "T" for node in nodes):
            raise GatherError(Raised(MISMATCH))
        arrays = [tensor_value(node, dtype, values)[2] for node in nodes]
        if dim == 0 and all(a.ndim == 0 for a in arrays):
            arrays = [a.reshape(1) for a in arrays]
            warns.append(("UserWarning", GATHER_SCALAR_WARNING))
        ndim = arrays[0].ndim
        axis = dim % ndim
        if any(a.ndim != ndim for a in arrays) or any(
                a.shape[:axis] + a.shape[axis + 1:] != arrays[0].shape[:axis] + arrays[0].shape[axis + 1:]
                for a in arrays):
            raise GatherError(Raised("RuntimeError"))
        return ("T", dtype, np.concatenate(arrays, axis=axis))
    if kind == "None":
        if any(node[0] != "None" for node in nodes):
            raise GatherError(Raised(MISMATCH + "|ValueError"))
        return ("None",)
    if kind == "map":
        if any(node[0] != "map" for node in nodes):
            raise GatherError(Raised(MISMATCH + "|ValueError|KeyError"))
        if any(len(node[2]) != len(first[2]) for node in nodes):
            raise GatherError(Raised("ValueError", r"^All dicts must have the same number of keys$"))
        items = []
        for key, _ in first[2]:
            found = []
            for node in nodes:
                matching = [child for k, child in node[2] if k == key]
                if not matching:
                    raise GatherError(Raised("KeyError"))
                found.append(matching[0])
            items.append([key, member(found)])
        return ("map", first[1], False, items)
    if kind == "seq":
        if any(node[0] != "seq" for node in nodes):
            raise GatherError(Raised(MISMATCH + "|ValueError"))
        shortest = min(len(node[2]) for node in nodes)
        items = [member([node[2][j] for node in nodes]) for j in range(shortest)]
        if any(len(node[2]) != shortest for node in nodes):
            raise GatherError(Raised("ValueError"))  # zip(strict=True) notices after the shortest is exhausted
        # a new container; an empty tuple is the CPython singleton (identity unobservable: None)
        return ("seq", first[1], None if first[1] == "tuple" and not items else False, items)
    raise GatherError(Raised("TypeError"))  # numbers, strings, opaque objects: not gatherable


def gather_outcome(case, values: Values, *, tree=gather_tree) -> dict:
    """``case``: ``outputs``, ``dim``, ``dtype``.  ``tree``: the function gathering the outputs' roots."""
    warns: list = []
    try:
        result = tree(list(case.outputs), case.dim, case.dtype, warns, values)
    except GatherError as err:
        return {"result": err.raised, "warnings": None}
    return {"result": result, "warnings": warns}


def expectations(case, values: Values, about: str) -> list[Expect]:
    """Outputs drawn to exercise ``about`` (a key of ABOUT): the whole gather outcome, under its rule."""
    return [Expect(ABOUT[about], gather_outcome(case, values))]


def cpu_tensors_expectations(case) -> list[Expect]:
    """torch's own Gather on CPU tensors."""
    return [Expect(GATHER_CPU_TENSORS, Raised("AssertionError", r"^Gather function not implemented for CPU tensors$"))]

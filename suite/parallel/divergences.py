"""Known divergences of torch.nn.parallel from its documented (or clearly intended) behaviour.

What torch does instead is modelled here, outside the specification: as a transformation of the
reference's expected outcome, or -- where the deviation sits inside a recursion -- as a torch-as-built
variant that plugs into the spec's ``recurse`` extension point (``torch_scatter_tree``, ``torch_gather_tree``).
Each ``when`` is a plain predicate on the Case: the kind of node or structure that triggers the behaviour.
"""
from __future__ import annotations

import functools

from conform.outcome import Raised
from reference.parallel import gather, parallel_apply, replicate, scatter, scatter_kwargs
from suite.divergences import Divergence
from suite.parallel.cases import (ApplyCase, GatherCase, ModSpec, ReplicateCase, ScatterCase, ScatterKwargsCase,
                                  apply_input, leaf_values, replicate_values, replicate_view)
from suite.parallel.torch_side.parallel_apply import run_parallel_apply
from suite.parallel.torch_side.replicate import run_replicate
from suite.parallel.torch_side.scatter_gather import run_gather, run_scatter, run_scatter_kwargs

SG = "https://github.com/pytorch/pytorch/blob/main/torch/nn/parallel/scatter_gather.py"
ALL = ">=2.4"  # measured: reproduces on every release of the matrix (reports/matrix/)


# ---- predicates: the structures that trigger each behaviour ---------------------------------------
def has_node(node: tuple, want) -> bool:
    """Whether ``want`` holds for ``node`` or any node inside it."""
    if want(node):
        return True
    if node[0] == "seq":
        return any(has_node(c, want) for c in node[2])
    if node[0] == "map":
        return any(has_node(c, want) for _, c in node[2])
    return False


def is_empty_namedtuple(node: tuple) -> bool:
    return node[0] == "seq" and node[1].startswith("Rec") and not node[2]


def is_filled_defaultdict(node: tuple) -> bool:
    return node[0] == "map" and node[1] == "defaultdict" and bool(node[2])


def aligned(nodes: list):
    """The replicas' nodes at every position gather can reach: the root, then, while every replica holds
    the same kind of container, each member position (the first replica's keys; the shortest length)."""
    yield nodes
    if all(n[0] == "seq" for n in nodes):
        for j in range(min(len(n[2]) for n in nodes)):
            yield from aligned([n[2][j] for n in nodes])
    elif all(n[0] == "map" for n in nodes):
        for key, _ in nodes[0][2]:
            found = [[c for k, c in n[2] if k == key] for n in nodes]
            if all(found):
                yield from aligned([f[0] for f in found])


def none_first_facing_others(case) -> bool:
    return any(ns[0][0] == "None" and any(n[0] != "None" for n in ns[1:]) for ns in aligned(list(case.outputs)))


def first_holds_str(case) -> bool:
    return any(ns[0][0] == "str" for ns in aligned(list(case.outputs)))


def sequences_of_different_lengths(case) -> bool:
    return any(all(n[0] == "seq" for n in ns) and len({len(n[2]) for n in ns}) > 1
               for ns in aligned(list(case.outputs)))


# ---- scatter as built: the empty namedtuple and the defaultdict -----------------------------------
class TorchRaises(Exception):
    def __init__(self, raised: Raised):
        self.raised = raised


def torch_scatter_tree(node: tuple, n: int, dim: int, dtype: str, values) -> list:
    """scatter_map as built: an empty namedtuple takes the namedtuple branch (before the len(obj) > 0 guards)
    and yields no replica at all; a non-empty defaultdict is rebuilt as defaultdict(pairs), which raises."""
    if is_empty_namedtuple(node):
        return []
    replicas = scatter.scatter_tree(node, n, dim, dtype, values, recurse=torch_scatter_tree)
    if is_filled_defaultdict(node) and replicas:
        raise TorchRaises(Raised("TypeError", r"^first argument must be callable or None$"))
    return replicas


def torch_scatter(case, expected: dict) -> dict:
    try:
        replicas = torch_scatter_tree(case.tree, case.n_devices, case.dim, case.dtype, leaf_values)
    except TorchRaises as exc:
        return {"type": "raised", "replicas": exc.raised}
    return {"type": expected["type"], "replicas": replicas}


# ---- scatter_kwargs as built: the kwargs padded against the number of positional arguments ---------
def kwargs_left_unpadded(case) -> bool:
    """The kwargs scatter into fewer chunks than the inputs, but into at least len(inputs) chunks."""
    inputs, kwargs = scatter_kwargs.scattered(case, leaf_values)
    return len(inputs) > len(kwargs) >= len(case.inputs[2])


def torch_scatter_kwargs(case, expected: dict) -> dict:
    if not kwargs_left_unpadded(case):
        return expected
    _, kwargs = scatter_kwargs.scattered(case, leaf_values)
    return {"inputs": expected["inputs"], "kwargs": ("tuple", expected["kwargs"][1][:len(kwargs)])}


# ---- gather as built ------------------------------------------------------------------------------
def torch_gather_tree(nodes: list, dim: int, dtype: str, warns: list, values) -> tuple:
    """gather_map as built: a None in the first replica returns None whatever the others hold, and a string
    is 'gathered' as str(map object) ("<map object>" once its address is dropped)."""
    if nodes[0][0] == "None":
        return ("None",)
    if nodes[0][0] == "str":
        return ("str", "<map object>")
    return gather.gather_tree(nodes, dim, dtype, warns, values, recurse=torch_gather_tree)


def torch_gather(case, expected: dict) -> dict:
    return gather.gather_outcome(case, leaf_values, tree=torch_gather_tree)


def _truncated(nodes: list) -> list:
    """The replicas' outputs as a zip() without strict=True sees them: every sequence cut to the shortest."""
    if all(n[0] == "seq" for n in nodes):
        shortest = min(len(n[2]) for n in nodes)
        if nodes[0][1].startswith("Rec") and shortest < len(nodes[0][2]):
            raise _NamedTupleTooShort  # type(out)._make(fewer values than fields)
        columns = [_truncated([n[2][j] for n in nodes]) for j in range(shortest)]
        return [("seq", n[1], tuple(col[r] for col in columns)) for r, n in enumerate(nodes)]
    if all(n[0] == "map" for n in nodes) and all(len(n[2]) == len(nodes[0][2]) for n in nodes):
        keys = [k for k, _ in nodes[0][2]]
        if all(sorted(k for k, _ in n[2]) == sorted(keys) for n in nodes):
            columns = {k: _truncated([dict(n[2])[k] for n in nodes]) for k in keys}
            return [("map", n[1], tuple((k, columns[k][r]) for k in keys)) for r, n in enumerate(nodes)]
    return nodes


class _NamedTupleTooShort(Exception):
    pass


def gather_truncating(case, expected: dict) -> dict:
    """gather before zip(..., strict=True): sequences of different lengths are cut to the shortest (a
    namedtuple of the first replica cut below its field count then fails to rebuild: TypeError)."""
    try:
        outputs = tuple(_truncated(list(case.outputs)))
    except _NamedTupleTooShort:
        return {"result": Raised("TypeError"), "warnings": None}
    return gather.gather_outcome(GatherCase(outputs=outputs, dim=case.dim, dtype=case.dtype), leaf_values)


# ---- replicate as built: replica 0 holds the original parameters under detach -----------------------
def detach_with_parameters(case) -> bool:
    """Under detach, onto at least one device, a reachable module holds a parameter or a tie."""
    specs = case.modules
    return case.detach and case.n_devices > 0 and any(
        any(size is not None for _, size in specs[m].params) or specs[m].ties for m in replicate.reachable(specs))


def replica_zero_holds_originals(case, expected: dict) -> dict:
    """Under detach, replica 0's params part is the original module tree's (registered Parameters requiring
    grad)."""
    if not (case.detach and case.n_devices > 0):
        return expected
    original = replicate.module_entries(case, replicate_values, False)
    part = replicate_view({"replicas": [original]}, "params")["replicas"][0]
    # A complex parameter reaches the transport as its real view (comm.py: _handle_complex) and comes back through
    # view_as_complex: replica 0 holds a view of the original -- requiring grad like it, but not a Parameter, so
    # Module.__setattr__ does not register it.
    specs = case.modules
    part = [{**entry, "registered": [name for name in entry["registered"] if name not in _complex_names(specs,
                                                                                                       entry["spec"])]}
            for entry in part]
    return {**expected, "replicas": [part] + expected["replicas"][1:]}


def _complex_names(specs, m: int) -> set:
    """The names under which module m holds a complex parameter (its own, or tied from a complex module)."""
    spec = specs[m]
    return {name for name, size in spec.params if spec.complex_params and size is not None} | \
        {name for name, src, _ in spec.ties if specs[src].complex_params}


# ---- the registry ---------------------------------------------------------------------------------
def _scatter_expect(root: str):
    return lambda case, device: scatter.expectations(case, leaf_values, root)


def _gather_expect(about: str):
    return lambda case, device: gather.expectations(case, leaf_values, about)


_scatter_entry = functools.partial(Divergence, torch=ALL, case_type=ScatterCase, torch_does=torch_scatter,
                                   run=run_scatter)
_kwargs_entry = functools.partial(
    Divergence, torch=ALL, case_type=ScatterKwargsCase,
    reason="scatter_kwargs pads the kwargs only while len(scattered kwargs) < len(inputs), the number of "
           "positional arguments, not the number of scattered inputs: when kwargs scatter into fewer (but "
           "at least len(inputs)) chunks than the inputs, the two results have different lengths",
    evidence=f"{SG} scatter_kwargs: `elif len(scattered_kwargs) < len(inputs)` (the names were "
             "`inputs`/`kwargs` before the rename, when the test was right); "
             "parallel_apply then fails its length assertion",
    when=kwargs_left_unpadded, torch_does=torch_scatter_kwargs,
    expect=lambda case, device: scatter_kwargs.expectations(case, leaf_values), run=run_scatter_kwargs)
_gather_entry = functools.partial(Divergence, case_type=GatherCase, run=run_gather)

DIVERGENCES = [
    _scatter_entry(
        id="parallel-scatter-defaultdict",
        rule=scatter.SCATTER_MAPPING,
        reason="scatter rebuilds a mapping as type(obj)(pairs); defaultdict's first argument is its "
               "default_factory, so scattering any non-empty defaultdict raises TypeError",
        evidence=f"{SG} scatter_map: `type(obj)(i) for i in zip(...)`; "
                 "defaultdict([('a', 1)]) -> TypeError: first argument must be callable or None",
        when=lambda case: has_node(case.tree, is_filled_defaultdict),
        repro=ScatterCase(tree=("map", "defaultdict", (("a", ("T", 1, (2,))),)), n_devices=2),
        expect=_scatter_expect("mapping")),
    _scatter_entry(
        id="parallel-scatter-empty-namedtuple",
        rule=scatter.SCATTER_NAMEDTUPLE,
        reason="an empty namedtuple takes the namedtuple branch (checked before the len(obj) > 0 guards) and "
               "scatters to zero replicas, so it and every container holding it vanish: scatter returns [] "
               "(DataParallel then calls the module with no arguments), while an empty tuple is replicated",
        evidence=f"{SG} scatter_map: `if _is_namedtuple(obj): return [type(obj)(*args) for args in "
                 "zip(*map(scatter_map, obj))]` precedes `isinstance(obj, tuple) and len(obj) > 0`",
        when=lambda case: has_node(case.tree, is_empty_namedtuple) and not has_node(case.tree, is_filled_defaultdict),
        repro=ScatterCase(tree=("seq", "tuple", (("T", 1, (2,)), ("seq", "Rec0", ()))), n_devices=2),
        expect=_scatter_expect("namedtuple")),
    _kwargs_entry(
        id="parallel-scatter-kwargs-unpadded", rule=scatter_kwargs.KWARGS_PAD,
        repro=ScatterKwargsCase(inputs=("seq", "tuple", (("T", 1, (4,)),)),
                                kwargs=("map", "dict", (("a", ("T", 2, (2,))),)), n_devices=4)),
    _kwargs_entry(
        id="parallel-scatter-kwargs-unpadded-non-tensor", rule=scatter_kwargs.KWARGS_NON_TENSOR,
        repro=ScatterKwargsCase(inputs=("seq", "tuple", (("T", 1, (3,)),)),
                                kwargs=("map", "dict", (("a", ("T", 2, (2,))), ("b", ("int", 1)))), n_devices=3)),
    _gather_entry(
        id="parallel-gather-sequence-length-truncates",
        rule=gather.GATHER_SEQUENCE, torch=">=2.4,<2.10",
        reason="replica outputs that are sequences of different lengths are silently cut to the shortest "
               "(zip without strict=True): the extra elements of the longer replicas are dropped instead of "
               "the structure mismatch raising ValueError",
        evidence=f"{SG} gather_map: `type(out)(map(gather_map, zip(*outputs)))`; later releases use "
                 "`zip(*outputs, strict=True)` (2.10, where the ValueError appears)",
        when=sequences_of_different_lengths, torch_does=gather_truncating,
        repro=GatherCase(outputs=(("seq", "list", ()), ("seq", "list", (("T", 101, (1,)),)))),
        expect=_gather_expect("sequence")),
    _gather_entry(
        id="parallel-gather-none-first",
        arguable=True,  # shared/research/registry-audit.md: both inputs are invalid replica outputs; dropping one is poor but arguable
        rule=gather.GATHER_NONE, torch=ALL,
        reason="gather returns None as soon as the first replica's output is None, silently dropping the "
               "other replicas' tensors at that position (the same mix with the None elsewhere raises)",
        evidence=f"{SG} gather_map: `if out is None: return None` looks at outputs[0] only",
        when=none_first_facing_others, torch_does=torch_gather,
        repro=GatherCase(outputs=(("None",), ("T", 101, (2,)))),
        expect=_gather_expect("none")),
    _gather_entry(
        id="parallel-gather-str-map-object",
        rule=gather.GATHER_UNSUPPORTED, torch=ALL,
        reason="a string output is 'gathered' as str(map(...)): the result is the text '<map object at 0x...>' "
               "instead of an error (numbers raise TypeError, as they should)",
        evidence="https://github.com/pytorch/pytorch/issues/62466 (open); "
                 f"{SG} gather_map: `return type(out)(map(gather_map, zip(*outputs, strict=True)))`",
        when=first_holds_str, torch_does=torch_gather,
        repro=GatherCase(outputs=(("seq", "list", (("T", 1, (1,)), ("str", "x"))),
                                  ("seq", "list", (("T", 101, (1,)), ("str", "x"))))),
        expect=_gather_expect("unsupported_leaf")),
    Divergence(
        id="parallel-replicate-detach-registers-originals",
        arguable=True,  # shared/research/registry-audit.md: an internal replica detail with no documented contract
        rule=replicate.REPLICATE_PARAMS, torch=ALL, case_type=ReplicateCase,
        reason="under detach (DataParallel.replicate passes detach=not torch.is_grad_enabled()), "
               "comm.broadcast_coalesced returns devices[0]'s tensors as-is, so replica 0 receives the original "
               "Parameter objects and Module.__setattr__ registers them: replica 0's _parameters/parameters() hold "
               "the module's own leaves (requiring grad), unlike every other replica and unlike the grad-mode path; "
               "a complex parameter travels as its real view and comes back as view_as_complex of it, so replica "
               "0 holds an unregistered view that still requires grad",
        evidence="torch/nn/parallel/replicate.py: replicate (`# parameters in replicas are no longer leaves, so "
                 "setattr them as non-parameter attributes`; `setattr(replica, key, param_copy)`); "
                 "torch/csrc/cuda/comm.cpp: broadcast_coalesced (`outputs[0] = tensors.vec()`); seen on torch "
                 "2.11.0+cu130, 1x H200, device_ids [0]; the complex form read from replicate.py "
                 "(_broadcast_coalesced_reshape: view_as_complex of the transport's outputs) and comm.py "
                 "(_handle_complex), seen on CPU through the stand-in transport",
        when=detach_with_parameters, torch_does=replica_zero_holds_originals,
        repro=ReplicateCase(modules=(ModSpec(params=(("p0", 2),)),), n_devices=1, detach=True),
        expect=lambda case, device: replicate.expectations(case, replicate_values, replicate_view),
        run=run_replicate),
    Divergence(
        id="parallel-apply-no-device-message",
        arguable=True,  # shared/research/registry-audit.md: wrong code, but unreachable on stock builds: only the CPU stand-in reaches it
        rule=parallel_apply.APPLY_NO_DEVICE, torch=ALL, case_type=ApplyCase,
        reason="(reachable where no current device resolves, e.g. the CPU stand-in) the intended error for a "
               "replica without device and tensor input is built as "
               "ExceptionWrapper(where=...) outside an except block, so it wraps sys.exc_info() == (None, None, "
               "None); reraise() then fails on None.__name__ and the caller gets AttributeError('NoneType' object "
               "has no attribute '__name__') instead of the message",
        evidence="torch/nn/parallel/parallel_apply.py: _worker (`results[i] = ExceptionWrapper(where=f\"in replica "
                 "{i}, no device was provided ...\")`); torch/_utils.py: ExceptionWrapper.__init__/reraise",
        when=lambda case: case.input_style == "nontensor" and case.n_devices == -1,
        torch_does=lambda case, expected: Raised("AttributeError", r"'NoneType' object has no attribute '__name__'"),
        repro=ApplyCase(scales=(1, 2), failures=(None, None), input_style="nontensor", n_devices=-1),
        expect=lambda case, device: parallel_apply.expectations(case, apply_input), run=run_parallel_apply,
        # on CUDA devices=None resolves to the current device, so the branch is unreachable there
        devices=("cpu",)),
]

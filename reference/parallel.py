"""Executable spec of torch.nn.parallel: scatter, scatter_kwargs, gather, replicate, parallel_apply,
DataParallel.

Plain Python over the plain trees of ``suite/parallel/cases.py``; math in numpy float64.  Nothing
here calls torch.  Outcomes use the encoding described in ``suite/parallel/cases.py``.

Where the rule is about chunking, the documented behaviour is ``torch.chunk``'s (the transport,
``torch/csrc/cuda/comm.cpp: scatter``, calls ``tensor.chunk(len(devices), dim)`` when no chunk
sizes are given): every chunk has ``ceil(n / N)`` rows except a smaller last one, so a small
batch yields *fewer* chunks than devices.
"""
from __future__ import annotations

import numpy as np

from conform.rules import rule
from reference.versions import since
from conform.outcome import Raised
from suite.parallel.cases import (ApplyCase, DPCase, FallbackCase, GatherCase, ReplicateCase, ScatterCase,
                                  ScatterKwargsCase, affine_input, affine_params, apply_input, buffer_leaf,
                                  leaf_values, loss_weights, param_leaf)

SG = "torch/nn/parallel/scatter_gather.py"
STANDIN = " (on CPU: torch's Python recursion with a CPU stand-in for the Scatter/Gather transport)"

# ---- scatter ------------------------------------------------------------------------------------
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

# ---- scatter_kwargs -----------------------------------------------------------------------------
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

# ---- gather -------------------------------------------------------------------------------------
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

# ---- replicate ----------------------------------------------------------------------------------
REPLICATE_STRUCTURE = rule(
    "parallel.replicate.structure",
    "replicate returns one replica per device; each is a new module tree of the same types and child names, "
    "shared submodules stay shared within a replica, None children stay None, no object is shared between "
    "replicas or with the original (on CPU: broadcast transport stood in by copies)",
    "torch/nn/parallel/replicate.py: replicate; Module._replicate_for_data_parallel")
REPLICATE_PARAMS = rule(
    "parallel.replicate.params",
    "replica parameters are plain tensor attributes (not registered; only None parameters stay in "
    "_parameters) equal to the originals, tied parameters share one copy per replica, differentiable unless "
    "detach or frozen (on CPU: broadcast transport stood in by copies)",
    "torch/nn/parallel/replicate.py: replicate")
REPLICATE_BUFFERS = rule(
    "parallel.replicate.buffers",
    "replica buffers stay registered in the original order with equal values (None kept); buffers that require "
    "grad are copied differentiably (the copies require grad) unless detach, where replica 0 holds the originals "
    "(DataParallel docs: the replica on device[0] shares storage with the module) and the others detached copies; "
    "other buffers never require grad (on CPU: broadcast transport stood in by copies)",
    "torch/nn/parallel/replicate.py: replicate (buffers_rg / buffers_not_rg); torch/csrc/cuda/comm.cpp: "
    "broadcast_coalesced (outputs[0] = tensors); DataParallel docs")
REPLICATE_IS_REPLICA = rule(
    "parallel.replicate.is_replica",
    "every module of a replica has _is_replica = True; the original is untouched",
    "torch/nn/modules/module.py: Module._replicate_for_data_parallel")
REPLICATE_ZERO_GRAD = rule(
    "parallel.replicate.zero_grad_warning",
    "zero_grad() on a replica warns (UserWarning 'Calling .zero_grad() from a module created with "
    "nn.DataParallel() has no effect...'); on the original it does not",
    "torch/nn/modules/module.py: Module.zero_grad")

# ---- parallel_apply -----------------------------------------------------------------------------
PA = "torch/nn/parallel/parallel_apply.py: parallel_apply"
PA_STANDIN = " (on CPU: real threads, torch.accelerator stood in by no-op stream/device guards)"
APPLY_ORDER = rule(
    "parallel.parallel_apply.order",
    "parallel_apply returns modules[i](*inputs[i], **kwargs[i]) at position i whatever the threads' "
    "completion order; a non-sequence input is passed as the only argument" + PA_STANDIN,
    PA)
APPLY_EXCEPTION = rule(
    "parallel.parallel_apply.exception",
    "an exception in a replica is re-raised in the caller with its original type (RuntimeError if that type "
    "cannot be built from one message) and a message 'Caught <Type> in replica <i> on device <d>.' naming "
    "the lowest failing replica" + PA_STANDIN,
    f"{PA}; torch/_utils.py: ExceptionWrapper.reraise")
APPLY_LENGTHS = rule(
    "parallel.parallel_apply.lengths",
    "modules, inputs, kwargs_tup and devices must have equal lengths, checked in that order: AssertionError "
    "'The number of modules M is not equal to the number of inputs K' (from 2.11 the kwargs_tup and devices "
    "checks name theirs the same way; before, they carry no message)" + PA_STANDIN,
    PA)
APPLY_NO_DEVICE = rule(
    "parallel.parallel_apply.no_device",
    "where devices=None leaves a replica without device (no current device can be resolved, as on CPU) and "
    "its input holds no tensor, it fails with an error saying 'in replica <i>, no device was provided and no "
    "tensor input was found'" + PA_STANDIN,
    PA)
APPLY_GRAD_MODE = rule(
    "parallel.parallel_apply.grad_mode",
    "worker threads run with the caller's grad mode (outputs require grad exactly when grad is enabled)"
    + PA_STANDIN,
    PA)
APPLY_CPU_BUILD = rule(
    "parallel.parallel_apply.cpu_build",
    "on a build without an accelerator parallel_apply raises instead of running the modules",
    PA)

# ---- DataParallel -------------------------------------------------------------------------------
DP = "torch/nn/parallel/data_parallel.py: DataParallel"
DP_FALLBACK = rule(
    "parallel.data_parallel.cpu_fallback",
    "without an accelerator DataParallel keeps device_ids == [] (whatever was passed) and forward(*a, **kw) "
    "returns module(*a, **kw) unchanged",
    f"{DP}.__init__, forward")
DP_DEFAULTS = rule(
    "parallel.data_parallel.defaults",
    "device_ids default to all visible devices, output_device to device_ids[0]; torch.device entries become "
    "indices",
    f"{DP}.__init__ docs")
DP_SINGLE = rule(
    "parallel.data_parallel.single_device",
    "with one device id the module is moved there at construction and forward calls it directly: outputs "
    "(even non-tensor ones) are returned as the module returns them",
    f"{DP}.__init__, forward")
DP_PARAM_DEVICE = rule(
    "parallel.data_parallel.param_device",
    "with several device ids, forward raises RuntimeError 'module must have its parameters and buffers on "
    "device ...' when a parameter or buffer is not on device_ids[0]",
    f"{DP}.forward")
DP_FORWARD_BACKWARD = rule(
    "parallel.data_parallel.forward_backward",
    "DataParallel(module)(x) equals module(x) and the gradients summed into the original parameters equal "
    "module's own, also when the batch gives fewer chunks than devices",
    f"{DP} docs")
DP_BUFFER_INPLACE = rule(
    "parallel.data_parallel.buffer_inplace",
    "in-place buffer updates made by the replica on device_ids[0] are recorded in the module (BatchNorm "
    "running stats from the first chunk only)",
    f"{DP} docs (warning on replicas and in-place updates)")
DP_SCALAR = rule(
    "parallel.data_parallel.scalar_output",
    "a module returning a 0-dim tensor yields a vector with one entry per used replica",
    f"{DP} docs (warning on scalar outputs)")
DP_NO_INPUTS = rule(
    "parallel.data_parallel.no_inputs",
    "forward() without inputs runs the module once, on device_ids[0]",
    f"{DP}.forward")


# ==== scatter model ===============================================================================
def chunk_sizes(n: int, parts: int) -> list[int]:
    """torch.chunk: pieces of ceil(n/parts), the last smaller; as many as needed (<= parts)."""
    if n == 0:
        return [0] * parts  # torch.chunk returns `parts` empty pieces for an empty dimension
    size = -(-n // parts)
    return [min(size, n - start) for start in range(0, n, size)]


def tensor_value(node: tuple, dtype: str) -> tuple:
    _, leaf_id, shape = node
    return ("T", dtype, leaf_values(leaf_id, tuple(shape)))


def _leaf(node: tuple) -> tuple:
    kind = node[0]
    if kind == "obj":
        return ("obj", node[1], True)
    return tuple(node)


def _empty_same(typename: str):
    # The empty tuple is a CPython singleton: identity is not observable, both sides encode None.
    return None if typename == "tuple" else True


class TorchQuirk(Exception):
    """Raised by the ``quirks=True`` variants: torch's observed (divergent) behaviour, modelled only so that
    the divergence registry can say precisely when and how torch differs.  Not part of the spec."""

    def __init__(self, raised: Raised):
        self.raised = raised


def scatter_tree(node: tuple, n: int, dim: int, dtype: str, quirks: bool = False) -> list:
    """One encoded value per replica (fewer than n where a tensor yields fewer chunks).

    ``quirks=True``: torch's variant -- an empty namedtuple takes the namedtuple branch and yields no
    replica at all; a non-empty defaultdict is rebuilt as defaultdict(pairs), which raises TypeError."""
    kind = node[0]
    if quirks and kind == "seq" and node[1].startswith("Rec") and not node[2]:
        return []
    if kind == "T":
        _, _, array = tensor_value(node, dtype)
        axis = dim % array.ndim
        bounds = np.cumsum(chunk_sizes(array.shape[axis], n))[:-1]
        return [("T", dtype, piece) for piece in np.split(array, bounds, axis=axis)]
    if kind == "seq" and node[2]:
        members = [scatter_tree(child, n, dim, dtype, quirks) for child in node[2]]
        count = min(len(m) for m in members)
        return [("seq", node[1], False, [m[j] for m in members]) for j in range(count)]
    if kind == "map" and node[2]:
        values = [scatter_tree(child, n, dim, dtype, quirks) for _, child in node[2]]
        count = min(len(v) for v in values)
        if quirks and node[1] == "defaultdict" and count:
            raise TorchQuirk(Raised("TypeError", r"^first argument must be callable or None$"))
        keys = [key for key, _ in node[2]]
        return [("map", node[1], False, [[k, v[j]] for k, v in zip(keys, values)]) for j in range(count)]
    if kind in ("seq", "map"):  # empty container: passed by reference like any other object
        return [(kind, node[1], _empty_same(node[1]), [])] * n
    return [_leaf(node)] * n


def scatter_outcome(case: ScatterCase, quirks: bool = False) -> dict:
    try:
        replicas = scatter_tree(case.tree, case.n_devices, case.dim, case.dtype, quirks)
    except TorchQuirk as quirk:
        return {"type": "raised", "replicas": quirk.raised}
    return {"type": "tuple" if case.tree[0] == "T" else "list", "replicas": replicas}


def scatter_cpu_build(case: ScatterCase) -> dict:
    return {"type": "raised", "replicas": Raised("AttributeError|RuntimeError|AssertionError")}


# ==== scatter_kwargs model ========================================================================
def scatter_kwargs_outcome(case: ScatterKwargsCase, quirks: bool = False) -> dict:
    """``quirks=True``: torch's variant, whose kwargs padding compares with len(inputs) -- the number of
    positional arguments -- instead of the number of scattered inputs."""
    n, dim, dtype = case.n_devices, case.dim, case.dtype
    inputs = scatter_tree(case.inputs, n, dim, dtype) if case.inputs[2] else []
    kwargs = scatter_tree(case.kwargs, n, dim, dtype) if case.kwargs and case.kwargs[2] else []
    width = max(len(inputs), len(kwargs))
    pad_kwargs = len(kwargs) < len(case.inputs[2]) if quirks and len(inputs) >= len(kwargs) else True
    inputs = inputs + [("seq", "tuple", None, [])] * (width - len(inputs))
    if pad_kwargs:
        kwargs = kwargs + [("map", "dict", False, [])] * (width - len(kwargs))
    return {"inputs": ("tuple", inputs), "kwargs": ("tuple", kwargs)}


# ==== gather model ================================================================================
GATHER_SCALAR_WARNING = ("Was asked to gather along dimension 0, but all input tensors were scalars; "
                         "will instead unsqueeze and return a vector.")
MISMATCH = "TypeError|AttributeError|RuntimeError"


class _GatherError(Exception):
    def __init__(self, raised: Raised):
        self.raised = raised


def _gather(nodes: list, dim: int, dtype: str, warns: list, quirks: bool = False) -> tuple:
    """``quirks=True``: torch's variant -- a None in the first replica returns None whatever the others
    hold, and a string leaf becomes str(map object) ("<map object>" once its address is dropped)."""
    first = nodes[0]
    kind = first[0]
    if quirks and kind == "None":
        return ("None",)
    if quirks and kind == "str":
        return ("str", "<map object>")
    if kind == "T":
        if any(node[0] != "T" for node in nodes):
            raise _GatherError(Raised(MISMATCH))
        arrays = [tensor_value(node, dtype)[2] for node in nodes]
        if dim == 0 and all(a.ndim == 0 for a in arrays):
            arrays = [a.reshape(1) for a in arrays]
            warns.append(("UserWarning", GATHER_SCALAR_WARNING))
        ndim = arrays[0].ndim
        axis = dim % ndim
        if any(a.ndim != ndim for a in arrays) or any(
                a.shape[:axis] + a.shape[axis + 1:] != arrays[0].shape[:axis] + arrays[0].shape[axis + 1:]
                for a in arrays):
            raise _GatherError(Raised("RuntimeError"))
        return ("T", dtype, np.concatenate(arrays, axis=axis))
    if kind == "None":
        if any(node[0] != "None" for node in nodes):
            raise _GatherError(Raised(MISMATCH + "|ValueError"))
        return ("None",)
    if kind == "map":
        if any(node[0] != "map" for node in nodes):
            raise _GatherError(Raised(MISMATCH + "|ValueError|KeyError"))
        if any(len(node[2]) != len(first[2]) for node in nodes):
            raise _GatherError(Raised("ValueError", r"^All dicts must have the same number of keys$"))
        items = []
        for key, _ in first[2]:
            values = []
            for node in nodes:
                found = [child for k, child in node[2] if k == key]
                if not found:
                    raise _GatherError(Raised("KeyError"))
                values.append(found[0])
            items.append([key, _gather(values, dim, dtype, warns, quirks)])
        return ("map", first[1], False, items)
    if kind == "seq":
        if any(node[0] != "seq" for node in nodes):
            raise _GatherError(Raised(MISMATCH + "|ValueError"))
        shortest = min(len(node[2]) for node in nodes)
        items = [_gather([node[2][j] for node in nodes], dim, dtype, warns, quirks) for j in range(shortest)]
        if any(len(node[2]) != shortest for node in nodes):
            raise _GatherError(Raised("ValueError"))  # zip(strict=True) notices after the shortest is exhausted
        # a new container; an empty tuple is the CPython singleton (identity unobservable: None)
        return ("seq", first[1], None if first[1] == "tuple" and not items else False, items)
    raise _GatherError(Raised("TypeError"))  # numbers, strings, opaque objects: not gatherable


def gather_outcome(case: GatherCase, quirks: bool = False) -> dict:
    warns: list = []
    try:
        result = _gather(list(case.outputs), case.dim, case.dtype, warns, quirks)
    except _GatherError as err:
        return {"result": err.raised, "warnings": None}
    return {"result": result, "warnings": warns}


def gather_cpu_tensors(case: GatherCase) -> Raised:
    return Raised("AssertionError", r"^Gather function not implemented for CPU tensors$")


# ==== replicate model =============================================================================
def _reachable(modules: tuple) -> list[int]:
    order: list[int] = []

    def visit(i: int) -> None:
        if i in order:
            return
        order.append(i)
        for _, child in modules[i].children:
            if child is not None:
                visit(child)

    visit(0)
    return order


def _replica(case: ReplicateCase, is_replica: bool, holds_originals: bool = False, position: int = 0) -> list:
    """``holds_originals``: torch's variant for replica 0 under detach (see replicate_outcome).  ``position``:
    which replica (replica 0 holds the original buffers wherever they are not copied differentiably)."""
    if holds_originals:
        return [dict(entry, is_replica=True) for entry in _replica(case, False)]
    specs = case.modules
    order = _reachable(specs)
    refs: dict[tuple, int] = {}  # the original tensor (module, kind, index) -> identity number in this replica
    entries = []
    for m in order:
        spec = specs[m]

        def tensor(key: tuple, size: int, grad: bool) -> tuple:
            ref = refs.setdefault(key, len(refs))
            leaf = param_leaf(key[0], key[2]) if key[1] == "p" else buffer_leaf(key[0], key[2])
            return ("t", ref, leaf_values(leaf, (size,)), grad)

        trainable = not spec.frozen
        params = [[name, None if size is None else tensor((m, "p", i), size, trainable and not (
            is_replica and case.detach))] for i, (name, size) in enumerate(spec.params)]
        for name, src, src_name in spec.ties:
            index = [n for n, _ in specs[src].params].index(src_name)
            size = specs[src].params[index][1]
            params.append([name, tensor((src, "p", index), size, not specs[src].frozen and not (
                is_replica and case.detach))])
        # A buffer requiring grad is copied differentiably unless detach (the copies require grad); otherwise
        # replica 0 receives the original (which still requires grad) and the others detached copies.
        buffer_grad = spec.grad_buffers and (not is_replica or not case.detach or position == 0)
        buffers = [[name, None if size is None else tensor((m, "b", i), size, buffer_grad)]
                   for i, (name, size) in enumerate(spec.buffers)]
        registered = ([name for name, size in spec.params if size is None] if is_replica
                      else [name for name, _ in spec.params] + [name for name, _, _ in spec.ties])
        entries.append({"spec": m, "type": "Node", "is_replica": is_replica,
                        "children": [[name, None if c is None else order.index(c)] for name, c in spec.children],
                        "registered": registered, "params": params, "buffers": buffers})
    return entries


def replicate_outcome(case: ReplicateCase, quirks: bool = False) -> dict:
    """``quirks=True``: torch's variant -- under detach, broadcast_coalesced hands devices[0] the original
    Parameter objects, and setattr registers them: replica 0 holds the originals as registered parameters."""
    return {"replicas": [_replica(case, True, quirks and case.detach and j == 0, j) for j in range(case.n_devices)],
            "original": _replica(case, False),
            "distinct": True}


ZERO_GRAD_WARNING = "Calling .zero_grad() from a module created with nn.DataParallel() has no effect."


def zero_grad_outcome(case: ReplicateCase) -> dict:
    return {"replicas": [[("UserWarning", ZERO_GRAD_WARNING)] for _ in range(case.n_devices)], "original": []}


# ==== parallel_apply model ========================================================================
def _reraised_type(name: str) -> str:
    # ExceptionWrapper.reraise builds exc_type(msg); a type whose constructor needs more falls back to RuntimeError
    return "RuntimeError" if name == "TwoArgError" else name


def parallel_apply_outcome(case: ApplyCase):
    n = len(case.scales)
    for what, count in (("inputs", case.n_inputs), ("kwargs_tup", case.n_kwargs), ("devices", case.n_devices)):
        if count is not None and count >= 0 and count != n:
            if what != "inputs" and not since("2.11"):
                # before 2.11 the kwargs_tup / devices checks were bare asserts (no message); 2.11 names them
                # like the inputs check (parallel_apply.py: `raise AssertionError(f"The number of modules ...")`)
                return Raised("AssertionError", r"^$")
            return Raised("AssertionError", rf"^The number of modules {n} is not equal to the number of {what} {count}$")
    for i, failure in enumerate(case.failures):
        if case.input_style == "nontensor" and case.n_devices == -1:
            return Raised("RuntimeError|ValueError|TypeError|AssertionError",
                          rf"in replica {i}, no device was provided and no tensor input was found")
        if failure is not None:
            return Raised(_reraised_type(failure), rf"^Caught {failure} in replica {i} on device -?\d+\.\nOriginal Traceback")
    outputs = []
    for i, scale in enumerate(case.scales):
        add = i + 1 if case.n_kwargs is None else 0
        if case.input_style == "nontensor":
            outputs.append(("int", i * scale + add))
        else:
            outputs.append(("T", "float32", apply_input(i, case.rows) * scale + add, case.grad_enabled))
    return outputs


def parallel_apply_cpu_build(case: ApplyCase) -> Raised:
    return Raised("RuntimeError|AssertionError")


# ==== DataParallel model ==========================================================================
def affine_forward(x: np.ndarray, features: int, shift: float = 0.0) -> np.ndarray:
    weight, bias = affine_params(features)
    return x @ weight.T + bias + shift


def fallback_outcome(case: FallbackCase) -> dict:
    x = affine_input(case.batch, case.features)
    shift = 2.0 if case.with_kwarg else 0.0
    return {"device_ids": [], "output": affine_forward(x, case.features, shift), "module_is_wrapped": True}


def dp_forward_backward(case: DPCase) -> dict:
    """y = x W^T + b; loss = sum(y * g) with g = grad weights; dW = g^T x, db = sum_rows g."""
    x = affine_input(case.batch, case.features, case.seed)
    g = loss_weights(case.batch)
    return {"output": affine_forward(x, case.features), "weight_grad": g.T @ x, "bias_grad": g.sum(axis=0)}


def dp_defaults(case: DPCase) -> dict:
    """``case.n_replicas`` is the number of visible devices here."""
    return {"device_ids": list(range(case.n_replicas)), "output_device": 0, "explicit": [[0], 0]}


def dp_single(case: DPCase) -> dict:
    y = affine_forward(affine_input(case.batch, case.features, case.seed), case.features)
    return {"moved": True, "output": ("map", "dict", False, [["y", ("T", "float32", y)], ["tag", ("str", "chunk")]])}


def dp_param_device(case: DPCase) -> Raised:
    return Raised("RuntimeError", r"^module must have its parameters and buffers on device \w+:\d+ "
                  r"\(device_ids\[0\]\) but found one of them on device: cpu$")


def dp_no_inputs(case: DPCase) -> np.ndarray:
    return np.array([2.0, 4.0, 6.0])  # Const: c * 2 with c = [1, 2, 3], computed once


def dp_scalar(case: DPCase) -> np.ndarray:
    """Module returns sum(x W^T + b) of its chunk: one entry per used replica (one device: the 0-dim
    value itself, no gather)."""
    x = affine_input(case.batch, case.features, case.seed)
    y = affine_forward(x, case.features)
    if case.n_replicas == 1:
        return np.array(y.sum())
    bounds = np.cumsum(chunk_sizes(case.batch, case.n_replicas))[:-1]
    return np.array([chunk.sum() for chunk in np.split(y, bounds, axis=0)])


def dp_running_mean(case: DPCase) -> np.ndarray:
    """BatchNorm1d(3, momentum=0.1) after Affine, training: only replica 0's chunk updates running_mean."""
    y = affine_forward(affine_input(case.batch, case.features, case.seed), case.features)
    first = chunk_sizes(case.batch, case.n_replicas)[0]
    return 0.1 * y[:first].mean(axis=0)

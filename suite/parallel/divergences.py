"""Known divergences of torch.nn.parallel from its documented (or clearly intended) behaviour.

Each entry's ``when`` is exact: torch's behaviour is modelled by the reference's ``quirks=True`` variant,
and an example is covered only where that variant's outcome differs from the spec's.
"""
from __future__ import annotations

from reference import parallel as ref
from conform.outcome import Raised, compare
from suite.divergences import Divergence
from suite.parallel import torch_side as ts
from suite.parallel.cases import (ApplyCase, GatherCase, ModSpec, ReplicateCase, ScatterCase, ScatterKwargsCase,
                                  replicate_view)

SG = "https://github.com/pytorch/pytorch/blob/main/torch/nn/parallel/scatter_gather.py"
ALL = ">=2.4"  # measured: reproduces on every release of the matrix (reports/matrix/)


def _differs(spec, variant, case) -> bool:
    return bool(compare(spec(case), variant(case)))


def _has(node: tuple, want) -> bool:
    if want(node):
        return True
    if node[0] == "seq":
        return any(_has(c, want) for c in node[2])
    if node[0] == "map":
        return any(_has(c, want) for _, c in node[2])
    return False


def _scatter_quirk(case):
    return ref.scatter_outcome(case, quirks=True)


def _kwargs_quirk(case):
    return ref.scatter_kwargs_outcome(case, quirks=True)


def _gather_quirk(case):
    return ref.gather_outcome(case, quirks=True)


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


def _gather_truncating(case):
    """gather before zip(..., strict=True): sequences of different lengths are cut to the shortest (a
    namedtuple of the first replica cut below its field count then fails to rebuild: TypeError)."""
    try:
        outputs = tuple(_truncated(list(case.outputs)))
    except _NamedTupleTooShort:
        return {"result": Raised("TypeError"), "warnings": None}
    return ref.gather_outcome(GatherCase(outputs=outputs, dim=case.dim,
                                         dtype=case.dtype))


def _replicate_quirk(case):
    return ref.replicate_outcome(case, quirks=True)


def _kwargs_entry(id_: str, rule: str, repro: ScatterKwargsCase) -> Divergence:
    return Divergence(
        id=id_, rule=rule, torch=ALL,
        reason="scatter_kwargs pads the kwargs only while len(scattered kwargs) < len(inputs), the number of "
               "positional arguments, not the number of scattered inputs: when kwargs scatter into fewer (but "
               "at least len(inputs)) chunks than the inputs, the two results have different lengths",
        evidence=f"{SG} scatter_kwargs: `elif len(scattered_kwargs) < len(inputs)` (the names were "
                 "`inputs`/`kwargs` before the rename, when the test was right); "
                 "parallel_apply then fails its length assertion",
        when=lambda case: _differs(ref.scatter_kwargs_outcome, _kwargs_quirk, case),
        torch_does=lambda case, expected: _kwargs_quirk(case),
        repro=repro, reference_fn=ref.scatter_kwargs_outcome, torch_fn=ts.run_scatter_kwargs)


DIVERGENCES = [
    Divergence(
        id="parallel-scatter-defaultdict",
        rule=ref.SCATTER_MAPPING, torch=ALL,
        reason="scatter rebuilds a mapping as type(obj)(pairs); defaultdict's first argument is its "
               "default_factory, so scattering any non-empty defaultdict raises TypeError",
        evidence=f"{SG} scatter_map: `type(obj)(i) for i in zip(...)`; "
                 "defaultdict([('a', 1)]) -> TypeError: first argument must be callable or None",
        when=lambda case: _has(case.tree, lambda n: n[0] == "map" and n[1] == "defaultdict" and n[2])
        and _differs(ref.scatter_outcome, _scatter_quirk, case),
        torch_does=lambda case, expected: _scatter_quirk(case),
        repro=ScatterCase(tree=("map", "defaultdict", (("a", ("T", 1, (2,))),)), n_devices=2),
        reference_fn=ref.scatter_outcome, torch_fn=ts.run_scatter),
    Divergence(
        id="parallel-scatter-empty-namedtuple",
        rule=ref.SCATTER_NAMEDTUPLE, torch=ALL,
        reason="an empty namedtuple takes the namedtuple branch (checked before the len(obj) > 0 guards) and "
               "scatters to zero replicas, so it and every container holding it vanish: scatter returns [] "
               "(DataParallel then calls the module with no arguments), while an empty tuple is replicated",
        evidence=f"{SG} scatter_map: `if _is_namedtuple(obj): return [type(obj)(*args) for args in "
                 "zip(*map(scatter_map, obj))]` precedes `isinstance(obj, tuple) and len(obj) > 0`",
        when=lambda case: _has(case.tree, lambda n: n[0] == "seq" and n[1] == "Rec0")
        and not _has(case.tree, lambda n: n[0] == "map" and n[1] == "defaultdict")
        and _differs(ref.scatter_outcome, _scatter_quirk, case),
        torch_does=lambda case, expected: _scatter_quirk(case),
        repro=ScatterCase(tree=("seq", "tuple", (("T", 1, (2,)), ("seq", "Rec0", ()))), n_devices=2),
        reference_fn=ref.scatter_outcome, torch_fn=ts.run_scatter),
    _kwargs_entry("parallel-scatter-kwargs-unpadded", ref.KWARGS_PAD,
                  ScatterKwargsCase(inputs=("seq", "tuple", (("T", 1, (4,)),)),
                                    kwargs=("map", "dict", (("a", ("T", 2, (2,))),)), n_devices=4)),
    _kwargs_entry("parallel-scatter-kwargs-unpadded-non-tensor", ref.KWARGS_NON_TENSOR,
                  ScatterKwargsCase(inputs=("seq", "tuple", (("T", 1, (3,)),)),
                                    kwargs=("map", "dict", (("a", ("T", 2, (2,))), ("b", ("int", 1)))),
                                    n_devices=3)),
    Divergence(
        id="parallel-gather-sequence-length-truncates",
        rule=ref.GATHER_SEQUENCE, torch=">=2.4,<2.10",
        reason="replica outputs that are sequences of different lengths are silently cut to the shortest "
               "(zip without strict=True): the extra elements of the longer replicas are dropped instead of "
               "the structure mismatch raising ValueError",
        evidence=f"{SG} gather_map: `type(out)(map(gather_map, zip(*outputs)))`; later releases use "
                 "`zip(*outputs, strict=True)` (2.10, where the ValueError appears)",
        when=lambda case: _differs(ref.gather_outcome, _gather_truncating, case),
        torch_does=lambda case, expected: _gather_truncating(case),
        repro=GatherCase(outputs=(("seq", "list", ()), ("seq", "list", (("T", 101, (1,)),)))),
        reference_fn=ref.gather_outcome, torch_fn=ts.run_gather),
    Divergence(
        id="parallel-gather-none-first",
        arguable=True,  # shared/research/registry-audit.md: both inputs are invalid replica outputs; dropping one is poor but arguable
        rule=ref.GATHER_NONE, torch=ALL,
        reason="gather returns None as soon as the first replica's output is None, silently dropping the "
               "other replicas' tensors at that position (the same mix with the None elsewhere raises)",
        evidence=f"{SG} gather_map: `if out is None: return None` looks at outputs[0] only",
        when=lambda case: _differs(ref.gather_outcome, _gather_quirk, case),
        torch_does=lambda case, expected: _gather_quirk(case),
        repro=GatherCase(outputs=(("None",), ("T", 101, (2,)))),
        reference_fn=ref.gather_outcome, torch_fn=ts.run_gather),
    Divergence(
        id="parallel-gather-str-map-object",
        rule=ref.GATHER_UNSUPPORTED, torch=ALL,
        reason="a string output is 'gathered' as str(map(...)): the result is the text '<map object at 0x...>' "
               "instead of an error (numbers raise TypeError, as they should)",
        evidence="https://github.com/pytorch/pytorch/issues/62466 (open); "
                 f"{SG} gather_map: `return type(out)(map(gather_map, zip(*outputs, strict=True)))`",
        when=lambda case: _differs(ref.gather_outcome, _gather_quirk, case),
        torch_does=lambda case, expected: _gather_quirk(case),
        repro=GatherCase(outputs=(("seq", "list", (("T", 1, (1,)), ("str", "x"))),
                                  ("seq", "list", (("T", 101, (1,)), ("str", "x"))))),
        reference_fn=ref.gather_outcome, torch_fn=ts.run_gather),
    Divergence(
        id="parallel-replicate-detach-registers-originals",
        arguable=True,  # shared/research/registry-audit.md: an internal replica detail with no documented contract
        rule=ref.REPLICATE_PARAMS, torch=ALL,
        reason="under detach (DataParallel.replicate passes detach=not torch.is_grad_enabled()), "
               "comm.broadcast_coalesced returns devices[0]'s tensors as-is, so replica 0 receives the original "
               "Parameter objects and Module.__setattr__ registers them: replica 0's _parameters/parameters() hold "
               "the module's own leaves (requiring grad), unlike every other replica and unlike the grad-mode path",
        evidence="torch/nn/parallel/replicate.py: replicate (`# parameters in replicas are no longer leaves, so "
                 "setattr them as non-parameter attributes`; `setattr(replica, key, param_copy)`); "
                 "torch/csrc/cuda/comm.cpp: broadcast_coalesced (`outputs[0] = tensors.vec()`); seen on torch "
                 "2.11.0+cu130, 1x H200, device_ids [0]",
        when=lambda case: case.detach and case.n_devices > 0 and _differs(ref.replicate_outcome, _replicate_quirk,
                                                                          case),
        torch_does=lambda case, expected: replicate_view(_replicate_quirk(case), "params"),
        repro=ReplicateCase(modules=(ModSpec(params=(("p0", 2),)),), n_devices=1, detach=True),
        reference_fn=lambda case: replicate_view(ref.replicate_outcome(case), "params"),
        torch_fn=ts.run_replicate_params),
    Divergence(
        id="parallel-apply-no-device-message",
        arguable=True,  # shared/research/registry-audit.md: wrong code, but unreachable on stock builds: only the CPU stand-in reaches it
        rule=ref.APPLY_NO_DEVICE, torch=ALL,
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
        reference_fn=ref.parallel_apply_outcome, torch_fn=ts.run_parallel_apply,
        # on CUDA devices=None resolves to the current device, so the branch is unreachable there
        devices=("cpu",)),
]

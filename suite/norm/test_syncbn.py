"""SyncBatchNorm: global statistics over ranks, the distributed backward, convert_sync_batchnorm.

Which kernels each check runs on (also in the rule statements / skip reasons):
- test_reference_vs_concat: the reference's multi-rank math vs torch's single-process BatchNorm (real kernels).
- test_sync_function on ``cpu``: torch's own ``_functions.SyncBatchNorm`` over 3 gloo ranks with the five
  kernels the CPU build lacks replaced by float64 stand-ins ("CPU stand-in kernels", suite/norm/sync_torch.py);
  on a CUDA device: real ``nn.SyncBatchNorm`` modules and real kernels.
- test_sync_cuda_module: real kernels only; skipped without a CUDA device.
Rules: reference/norm.py (norm.sync.*, norm.convert.*).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch.distributed as dist
from hypothesis import event, given, settings
from hypothesis import strategies as st

from reference import norm as ref
from conform.outcome import Raised
from conform.tolerance import EXACT
from suite.devices import device_count
from suite.norm import sync_torch
from suite.norm import torch_side as ts
from suite.norm.strategies import bn_cases, convert_cases, dtypes_for, sync_cases
from suite.norm.tolerances import (bn_output_tol, grad_bias_tol, grad_input_tol, grad_weight_tol,
                                   running_mean_tol, running_var_tol)

WORLD = 3  # ranks per process group: enough for uneven and empty batches, small enough for 2 cores


def field_tols(case: ts.SyncCase, inputs: dict, sides: int = 1) -> dict:
    """Per-field bounds, from the concatenated batch (the statistics are global)."""
    x = np.concatenate(inputs["xs"])
    dy = np.concatenate(inputs["dys"])
    w = inputs["weight"] if case.affine else None
    b = inputs["bias"] if case.affine and case.bias else None
    return {"y": bn_output_tol(case.dtype, x, case.eps, w, b, sides=sides),
            "grad_input": grad_input_tol(case.dtype, x, dy, case.eps, w, sides=sides),
            "grad_weight": grad_weight_tol(case.dtype, x, dy, case.eps, sides=sides),
            "grad_bias": grad_bias_tol(case.dtype, x, dy, sides=sides),
            "running_mean": running_mean_tol(case.dtype, x, case.eps, inputs["running_mean"], sides=sides),
            "running_var": running_var_tol(case.dtype, x, case.eps, inputs["running_var"], sides=sides)}


def check_fields(conform, rule, case, expected, actual, tols, torch_fn, fields=None):
    for field in fields or expected:
        if field in tols and field in expected:
            conform.check(rule, ts.SyncField(case, field), {field: expected[field]}, ts.select(actual, (field,)),
                          tols[field], torch_fn)


# ---- (a) the reference's multi-rank math against torch BatchNorm on the concatenated batch -----------

@pytest.mark.rules(ref.SYNC_REFERENCE_CONCAT)
@given(data=st.data())
def test_reference_vs_concat(conform, device, data):
    case = data.draw(sync_cases(device=device, dtypes=["float32", "float64"]))
    event(f"{len(case.rank_batches)} ranks, {'with' if 0 in case.rank_batches else 'no'} empty rank")
    inputs = ts.make_sync_inputs(case)
    expected = ref.sync_as_concat(case, inputs)
    actual = ts.run_bn_concat(case, device)
    check_fields(conform, ref.SYNC_REFERENCE_CONCAT, case, expected, actual, field_tols(case, inputs),
                 ts.concat_field)


# ---- SyncBatchNorm without a process group ----------------------------------------------------------

@pytest.mark.rules(ref.SYNC_FALLBACK)
@given(data=st.data())
def test_sync_fallback(conform, device, data):
    """No process group in this (pytest) process: SyncBatchNorm takes F.batch_norm's path."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        pytest.skip("a process group of size > 1 is initialized in the pytest process (left by another test): "
                    "SyncBatchNorm would not take its single-process path")
    case = data.draw(bn_cases(device, kinds=("SyncBatchNorm",)))
    if data.draw(st.integers(0, 5)) == 0:
        case = ts.BNCase(kind="SyncBatchNorm", shape=(2, 0, 3), num_features=0, training=case.training)
    inputs = ts.make_bn_inputs(case)
    expected, actual = ref.bn_forward(case, inputs), ts.run_bn(case, device)
    w = inputs["weight"] if case.affine else None
    b = inputs["bias"] if case.affine and case.bias else None
    use_batch = case.training or not case.track
    tol = bn_output_tol(case.dtype, inputs["x"], case.eps, w, b,
                        None if use_batch else (inputs["running_mean"], inputs["running_var"]))
    conform.check(ref.SYNC_FALLBACK, case, ts.select(expected, ("y",)), ts.select(actual, ("y",)), tol, ts.bn_output)
    if case.track and not isinstance(expected, Raised):
        conform.check(ref.SYNC_FALLBACK, case, ts.select(expected, ("running_var",)),
                      ts.select(actual, ("running_var",)),
                      running_var_tol(case.dtype, inputs["x"], case.eps, inputs["running_var"]), ts.bn_running_var)
        conform.check(ref.SYNC_FALLBACK, case, ts.select(expected, ("num_batches_tracked",)),
                      ts.select(actual, ("num_batches_tracked",)), EXACT, ts.bn_counter)


# ---- (b) torch's SyncBatchNorm over WORLD ranks ------------------------------------------------------

def run_sync_examples(conform, device, pool, dtypes, allow_empty, fwd_rule, bwd_rule):
    @settings(max_examples=min(10, settings.default.max_examples))
    @given(case=sync_cases(world=pool.world, device=device, dtypes=dtypes, allow_empty=allow_empty))
    def examples(case):
        empty = 0 in case.rank_batches
        event(f"{case.dtype}, {'an empty rank' if empty else 'no empty rank'}")
        inputs = ts.make_sync_inputs(case)
        expected = ref.sync_forward_backward(case, inputs)
        for key in ("running_mean", "running_var"):
            if key in expected:
                expected[key] = [expected[key]] * pool.world  # every rank ends with the same stats
        actual = sync_torch.assemble(sync_torch.pool_call(pool, "sync", case))
        tols = field_tols(case, inputs)
        f_rule = ref.SYNC_EMPTY_RANK if empty else fwd_rule
        b_rule = ref.SYNC_EMPTY_RANK if empty else bwd_rule
        check_fields(conform, f_rule, case, expected, actual, tols, sync_torch.sync_field,
                     ("y", "running_mean", "running_var"))
        check_fields(conform, b_rule, case, expected, actual, tols, sync_torch.sync_field,
                     ("grad_input", "grad_weight", "grad_bias"))
        if case.track:
            conform.check(f_rule, ts.SyncField(case, "num_batches_tracked"),
                          {"num_batches_tracked": [case.nbt_before + 1] * pool.world},
                          ts.select(actual, ("num_batches_tracked",)), EXACT, sync_torch.sync_field)
        # the defining property, torch against torch: weight/bias grads summed over ranks (DDP's all-reduce)
        if not isinstance(actual, Raised):
            summed = dict(actual)
            for key in ("grad_weight", "grad_bias"):
                if key in summed:
                    summed[key] = np.sum(summed[key], axis=0)
            for key in ("running_mean", "running_var"):
                if key in summed:
                    summed[key] = summed[key][0]
            concat = ts.run_bn_concat(case, device)
            check_fields(conform, ref.SYNC_EQUALS_CONCAT, case, concat, summed, field_tols(case, inputs, sides=2),
                         ts.concat_field)

    examples()


@pytest.mark.timeout(300)
@pytest.mark.rules(ref.SYNC_FORWARD, ref.SYNC_BACKWARD, ref.SYNC_EMPTY_RANK, ref.SYNC_EQUALS_CONCAT,
                   ref.SYNC_CPU_REJECTED)
def test_sync_function(conform, device):
    """One process group of WORLD ranks for the whole test; cpu: CPU stand-in kernels (see module doc)."""
    kind = device.split(":")[0]
    if kind not in ("cpu", "cuda"):
        pytest.skip(f"SyncBatchNorm ranks on {kind!r} are not wired up (cpu: stand-in kernels; cuda: real)")
    pool = sync_torch.start_pool(WORLD, device)
    try:
        probe_case = ts.SyncCase(rank_batches=(2,) * WORLD)
        conform.check(ref.SYNC_CPU_REJECTED, probe_case,
                      [Raised("ValueError", r"^SyncBatchNorm expected input tensor to be on GPU")] * WORLD,
                      sync_torch.pool_call(pool, "probe", probe_case.channels), EXACT, sync_torch.sync_probe_cpu)
        run_sync_examples(conform, device, pool, ["float32", "float64"], True, ref.SYNC_FORWARD, ref.SYNC_BACKWARD)
    finally:
        sync_torch.stop_pool(pool)


@pytest.mark.timeout(300)
@pytest.mark.rules(ref.SYNC_CUDA_MODULE)
def test_sync_cuda_module(conform, device):
    """Real nn.SyncBatchNorm (CUDA kernels), half dtypes included; NCCL with one GPU per rank when there are
    WORLD GPUs, else every rank on one GPU with gloo on CUDA tensors."""
    if device.split(":")[0] != "cuda":
        pytest.skip("needs a CUDA device (--device cuda): the real SyncBatchNorm kernels exist only on GPU "
                    "builds; on CPU test_sync_function ran torch's SyncBatchNorm function on CPU stand-in kernels")
    if device_count("cuda") < 1:
        pytest.skip("needs 1 CUDA device: none visible")
    pool = sync_torch.start_pool(WORLD, device)
    try:
        # half dtypes only without empty ranks: an empty rank sends its zeros in the input dtype while the others
        # send float statistics (_functions.py: SyncBatchNorm.forward), a mismatch not exercised here
        run_sync_examples(conform, device, pool, dtypes_for(device), False, ref.SYNC_CUDA_MODULE,
                          ref.SYNC_CUDA_MODULE)
    finally:
        sync_torch.stop_pool(pool)


# ---- (c) convert_sync_batchnorm against real torch ----------------------------------------------------

@pytest.mark.rules(ref.CONVERT_REPLACE, ref.CONVERT_SHARES)
@given(data=st.data())
def test_convert_sync_batchnorm(conform, device, data):
    case = data.draw(convert_cases())
    expected, actual = ref.convert_outcome(case), ts.run_convert(case, device)
    conform.check(ref.CONVERT_REPLACE, case, ts.select(expected, ("root_same_object", "modules")),
                  ts.select(actual, ("root_same_object", "modules")), EXACT, ts.convert_structure)
    conform.check(ref.CONVERT_SHARES, case, ts.select(expected, ("bn",)), ts.select(actual, ("bn",)), EXACT,
                  ts.convert_sharing)

"""SyncBatchNorm: global statistics over ranks, the distributed backward, convert_sync_batchnorm.

Which kernels each check runs on (also in the rule statements / skip reasons):
- test_reference_vs_concat: the reference's multi-rank math vs torch's single-process BatchNorm (real kernels).
- test_sync_function on ``cpu``: torch's own ``_functions.SyncBatchNorm`` over 3 gloo ranks with the five
  kernels the CPU build lacks replaced by float64 stand-ins ("CPU stand-in kernels",
  suite/norm/torch_side/syncbn_kernels.py); on a CUDA device: real ``nn.SyncBatchNorm`` modules and real kernels.
- test_sync_cuda_module: real kernels only; skipped without a CUDA device.
Rules: reference/norm/syncbn.py.
"""
from __future__ import annotations

import pytest
import torch.distributed as dist
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from conform.outcome import Raised
from reference.norm import syncbn as ref
from suite.devices import device_count
from suite.norm.cases import BNCase, SyncCase, make_bn_inputs, make_sync_inputs
from suite.norm.strategies import BN_HAS_BIAS_KW, bn_cases, convert_cases, dtypes_for, sync_cases
from suite.norm.torch_side.batchnorm import run_bn
from suite.norm.torch_side.syncbn import (rank_pool, run_bn_concat, run_convert, run_probe_cpu, run_sync,
                                          run_sync_as_concat)

WORLD = 3  # ranks per process group: enough for uneven and empty batches, small enough for 2 cores


# ---- (a) the reference's multi-rank math against torch BatchNorm on the concatenated batch -----------

@pytest.mark.rules(ref.SYNC_REFERENCE_CONCAT)
@given(data=st.data())
def test_reference_vs_concat(conform, device, data):
    case = data.draw(sync_cases(device=device, dtypes=["float32", "float64"]))
    event(f"{len(case.rank_batches)} ranks, {'with' if 0 in case.rank_batches else 'no'} empty rank")
    conform.check(case, ref.concat_expectations(case, make_sync_inputs(case)), run=run_bn_concat)


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
        case = BNCase(kind="SyncBatchNorm", shape=(2, 0, 3), num_features=0, training=case.training)
    conform.check(case, ref.fallback_expectations(case, make_bn_inputs(case)), run=run_bn)


# ---- (b) torch's SyncBatchNorm over WORLD ranks ------------------------------------------------------

def run_sync_examples(conform, device, expectations, dtypes, allow_empty):
    @settings(max_examples=min(10, settings.default.max_examples))
    @given(case=sync_cases(world=WORLD, device=device, dtypes=dtypes, allow_empty=allow_empty))
    # affine without a bias (where the build has the bias flag): only the weight gets a gradient
    @example(case=SyncCase(rank_batches=(2, 3, 1), channels=2, affine=True, bias=not BN_HAS_BIAS_KW, track=False))
    # a frozen weight with a trained bias (bias-only fine-tuning): the bias gradient alone
    @example(case=SyncCase(rank_batches=(1, 2, 2), channels=2, affine=True, frozen_weight=True))
    def examples(case):
        event(f"{case.dtype}, {'an empty rank' if 0 in case.rank_batches else 'no empty rank'}")
        inputs = make_sync_inputs(case)
        actual = conform.check(case, expectations(case, inputs), run=run_sync)
        # the defining property, torch against torch: weight/bias grads summed over ranks (DDP's all-reduce)
        if not isinstance(actual, Raised):
            conform.check(case, ref.equals_concat_expectations(case, inputs, run_bn_concat(case, device)),
                          run=run_sync_as_concat)

    examples()


@pytest.mark.timeout(300)
@pytest.mark.rules(ref.SYNC_FORWARD, ref.SYNC_BACKWARD, ref.SYNC_EMPTY_RANK, ref.SYNC_EQUALS_CONCAT,
                   ref.SYNC_CPU_REJECTED)
def test_sync_function(conform, device):
    """One process group of WORLD ranks for the whole test; cpu: CPU stand-in kernels (see module doc)."""
    kind = device.split(":")[0]
    if kind not in ("cpu", "cuda"):
        pytest.skip(f"SyncBatchNorm ranks on {kind!r} are not wired up (cpu: stand-in kernels; cuda: real)")
    with rank_pool(WORLD, device):
        probe_case = SyncCase(rank_batches=(2,) * WORLD)
        conform.check(probe_case, ref.cpu_rejected_expectations(probe_case), run=run_probe_cpu)
        run_sync_examples(conform, device, ref.function_expectations, ["float32", "float64"], True)


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
    with rank_pool(WORLD, device):
        # half dtypes only without empty ranks: an empty rank sends its zeros in the input dtype while the others
        # send float statistics (_functions.py: SyncBatchNorm.forward), a mismatch not exercised here
        run_sync_examples(conform, device, ref.cuda_module_expectations, dtypes_for(device), False)


# ---- (c) convert_sync_batchnorm against real torch ----------------------------------------------------

@pytest.mark.rules(ref.CONVERT_REPLACE, ref.CONVERT_SHARES)
@given(data=st.data())
def test_convert_sync_batchnorm(conform, device, data):
    case = data.draw(convert_cases())
    conform.check(case, ref.convert_expectations(case), run=run_convert)

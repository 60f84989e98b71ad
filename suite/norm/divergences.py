"""Known divergences of the ``norm`` area (see suite/divergences.py for the contract).

torch's own counting of tracked training calls (``torch_counts``) is what torch does instead of the
documented counting (reference.norm.batchnorm.documented_counts); the reference's sequence model takes
it through its ``counts`` extension point.
"""
from __future__ import annotations

import functools

from conform.outcome import Raised
from reference.norm import batchnorm, lazy, running, syncbn
from suite.divergences import Divergence
from suite.norm.cases import BNCase, BNSeqCase, SeqStep, SyncCase, make_bn_inputs, make_seq_inputs, make_sync_inputs
from suite.norm.torch_side.lazy import run_lazy
from suite.norm.torch_side.running_stats import run_seq_step
from suite.norm.torch_side.syncbn import run_sync


@functools.lru_cache(maxsize=256)
def _seq_inputs(seq: BNSeqCase):
    return make_seq_inputs(seq)


def torch_counts(call: str) -> tuple[int, int]:
    """torch's _BatchNorm.forward: every tracked training call, also one with an empty batch or one that then
    raises, increments num_batches_tracked before F.batch_norm runs, and momentum=None weights the batch
    1/num_batches_tracked (so every counted call is in the average)."""
    return 1, 1


def torch_counting(case: SeqStep, expected):
    """The field after step ``case.step`` as torch's counting makes it."""
    return running.bn_sequence(case.seq, _seq_inputs(case.seq), counts=torch_counts)[case.step][case.field]


def seq_expect(case: SeqStep, device: str):
    return running.expectations(case, _seq_inputs(case.seq))


_running_entry = functools.partial(Divergence, torch=">=2.4", case_type=SeqStep, torch_does=torch_counting,
                                   expect=seq_expect, run=run_seq_step)


def empty_batch_in_average(case: SeqStep) -> bool:
    """momentum=None averaging at or before this step followed an empty tracked batch."""
    return running.averages_after_empty_batch(case.seq, case.step, case.field)


def failed_call_counted(case: SeqStep) -> bool:
    """The counter after a tracked training call that raised, or stats averaged with momentum=None after it
    (and not already the empty-batch entry's)."""
    return (not empty_batch_in_average(case)
            and running.follows_failed_update(case.seq, case.step, case.field))


def lazy_no_params(case: BNCase) -> bool:
    return case.kind.startswith("Lazy") and not case.affine and not case.track


# float16/bfloat16 SyncBatchNorm (CUDA only)
HALF = ("float16", "bfloat16")


def _sync_cuda_expect(case: SyncCase, device: str):
    return syncbn.cuda_module_expectations(case, make_sync_inputs(case))


def _sync_function_expect(case: SyncCase, device: str):
    return syncbn.function_expectations(case, make_sync_inputs(case))


def half_untracked(case: SyncCase) -> bool:
    return case.dtype in HALF and not case.track


def half_with_empty_rank(case: SyncCase) -> bool:
    return case.dtype in HALF and 0 in case.rank_batches


DIVERGENCES = [
    _running_entry(
        id="norm-cumulative-average-counts-empty-batch",
        rule=batchnorm.RUNNING_CUMULATIVE,
        reason="momentum=None is documented as a simple average of the batch statistics, but an empty batch (N=0) "
               "bumps num_batches_tracked without contributing statistics, and the next batch is weighted "
               "1/num_batches_tracked: the stats that were there before (initially 0 and 1) keep a phantom share",
        evidence="torch/nn/modules/batchnorm.py: _BatchNorm.forward increments num_batches_tracked and sets "
                 "exponential_average_factor = 1/num_batches_tracked before F.batch_norm, whose numel()==0 path "
                 "skips the update; e.g. BatchNorm1d(3, momentum=None): forward(randn(0,3)); forward(x) leaves "
                 "running_mean = x.mean(0) / 2 instead of x.mean(0)",
        when=empty_batch_in_average,
        # float64, 2 values, factor 1/2: the mean and the update are exact in both torch and numpy
        repro=SeqStep(BNSeqCase(dtype="float64", momentum=None, ops=(("forward", 0), ("forward", 2))), step=1,
                      field="running_mean")),
    _running_entry(
        id="norm-failed-call-counted",
        arguable=True,  # shared/research/registry-audit.md: exception-safety of a counter; matters only with momentum=None after a caught error
        rule=batchnorm.RUNNING_COUNTER,
        reason="a training forward that raises (e.g. 'Expected more than 1 value per channel when training') "
               "still increments num_batches_tracked: the module's state changes although the call failed, and "
               "with momentum=None later averages are weighted by the inflated count",
        evidence="torch/nn/modules/batchnorm.py: _BatchNorm.forward calls num_batches_tracked.add_(1) before "
                 "F.batch_norm runs _verify_batch_size; BatchNorm1d(3)(randn(1,3)) raises ValueError and leaves "
                 "num_batches_tracked == 1",
        when=failed_call_counted,
        repro=SeqStep(BNSeqCase(ops=(("forward", 1),)), step=0, field="num_batches_tracked")),
    Divergence(
        id="norm-lazy-num-features-not-inferred",
        rule=lazy.LAZY_INFER,
        torch=">=2.4",
        reason="LazyBatchNorm with affine=False and track_running_stats=False has no uninitialized parameter, so "
               "initialize_parameters never runs: after the first call the module is a BatchNorm{k}d whose "
               "num_features is 0 (and repr says so) instead of input.shape[1]",
        evidence="torch/nn/modules/batchnorm.py: _LazyNormBase.initialize_parameters sets num_features only under "
                 "has_uninitialized_params(); LazyBatchNorm1d(affine=False, track_running_stats=False)(randn(2,5)) "
                 "then .num_features == 0",
        case_type=BNCase,
        when=lazy_no_params,
        torch_does=lambda case, expected: {**expected, "num_features": 0},
        repro=BNCase(kind="LazyBatchNorm1d", shape=(4, 3), num_features=3, affine=False, track=False),
        expect=lambda case, device: lazy.expectations(case, make_bn_inputs(case)),
        run=run_lazy),
    Divergence(
        id="norm-sync-half-untracked-counts-dtype",
        rule=syncbn.SYNC_CUDA_MODULE,
        torch=">=2.11,<2.12",  # observed on one H200 only (reports/matrix/cuda/2.11.0.json)
        reason="SyncBatchNorm with float16/bfloat16 parameters and track_running_stats=False fails in training "
               "across ranks: the gathered counts stay float32 (the dtype batch_norm_stats returns for half input) "
               "and are cast to the running stats' dtype only when running stats exist, while "
               "batch_norm_gather_stats_with_counts then expects counts in the input dtype",
        evidence="observed on torch 2.11.0+cu130, H200, 3 ranks (gloo on CUDA tensors): RuntimeError 'Expected "
                 "counts to have type BFloat16 but got Float'; torch/nn/modules/_functions.py: "
                 "SyncBatchNorm.forward casts counts only 'if running_mean is not None' (pytorch/pytorch#98332 "
                 "fixed the tracked case, #50126/#49730 the float32 untracked case)",
        case_type=SyncCase,
        when=half_untracked,
        torch_does=lambda case, expected: Raised("RuntimeError",
                                                 r"Expected counts to have type (Half|BFloat16) but got Float"),
        repro=SyncCase(rank_batches=(2, 2, 2), dtype="bfloat16", track=False),
        expect=_sync_cuda_expect,
        run=run_sync,
        devices=("cuda",)),
    Divergence(
        id="norm-sync-half-empty-rank-gather-mismatch",
        rule=syncbn.SYNC_EMPTY_RANK,
        torch=">=2.11,<2.12",  # observed on one H200 only (reports/matrix/cuda/2.11.0.json)
        reason="with float16/bfloat16 input, a rank with an empty batch all-gathers zeros in the input dtype "
               "(2 bytes) while its peers gather float32 statistics (4 bytes): the collective's sizes disagree, "
               "so the group's SyncBatchNorm call fails: with gloo the rank aborts ('Received data size doesn't "
               "match expected size') and its peers are left without an answer; a backend that raises instead "
               "raises a RuntimeError (DistBackendError is one)",
        evidence="observed on torch 2.11.0+cu130, H200, 3 ranks on one GPU with gloo: gloo::EnforceNotMet "
                 "'op.preamble.length <= op.nbytes. 14 vs 7' and the rank exits with SIGABRT; "
                 "torch/nn/modules/_functions.py: SyncBatchNorm.forward builds the empty rank's 'combined' with "
                 "dtype=input.dtype, the others' from batch_norm_stats' float32 mean/invstd",
        case_type=SyncCase,
        when=half_with_empty_rank,
        # the call fails on some rank: RankCrashed is how suite/norm/torch_side/syncbn.py reports a rank process
        # that died without answering
        torch_does=lambda case, expected: Raised("RankCrashed|RuntimeError|DistBackendError"),
        repro=SyncCase(rank_batches=(2, 0, 2), dtype="float16"),
        expect=_sync_function_expect,
        run=run_sync,
        devices=("cuda",)),
]

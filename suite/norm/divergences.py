"""Known divergences of the ``norm`` area (see suite/divergences.py for the contract)."""
from __future__ import annotations

import functools

from reference import norm as ref
from conform.outcome import Raised, compare
from suite.divergences import Divergence
from suite.norm.sync_torch import sync_field
from suite.norm.torch_side import LAZY_STRUCTURE, BNCase, SyncCase, SyncField, make_sync_inputs, BNSeqCase, SeqStep, lazy_structure, make_bn_inputs, make_seq_inputs, \
    select, seq_step


@functools.lru_cache(maxsize=256)
def _seq_inputs(seq: BNSeqCase):
    return make_seq_inputs(seq)


def seq_expected(case: SeqStep, **flags):
    """The reference's record field after step ``case.step`` (flags: see reference.norm.DOCUMENTED)."""
    return select(ref.bn_sequence(case.seq, _seq_inputs(case.seq), **flags)[case.step], (case.field,))


def _differs(case: SeqStep, **flags) -> bool:
    return bool(compare(seq_expected(case), seq_expected(case, **flags)))


def empty_batch_in_average(case) -> bool:
    """momentum=None averaging is off at this step because an earlier empty batch was counted."""
    return isinstance(case, SeqStep) and _differs(case, empty_in_average=True)


def failed_call_counted(case) -> bool:
    """This step differs only because an earlier (or this) call that raised still bumped the counter."""
    return (isinstance(case, SeqStep) and not empty_batch_in_average(case)
            and (_differs(case, failed_counted=True) or _differs(case, **ref.TORCH_COUNTING)))


def torch_counting(case: SeqStep, expected):
    return seq_expected(case, **ref.TORCH_COUNTING)


def _seq_reference(case: SeqStep):
    return seq_expected(case)


def lazy_no_params(case) -> bool:
    return isinstance(case, BNCase) and case.kind.startswith("Lazy") and not case.affine and not case.track


def _lazy_reference(case: BNCase):
    return select(ref.lazy_forward(case, make_bn_inputs(case)), LAZY_STRUCTURE)


# float64, 2 values, factor 1/2: the mean and the update are exact in both torch and numpy, so the repro's
# torch_does comparison needs no tolerance
HALF = ("float16", "bfloat16")


def _sync_reference(case: SyncField):
    return {case.field: ref.sync_forward_backward(case.sync, make_sync_inputs(case.sync)).get(case.field)}


def half_untracked(case) -> bool:
    return isinstance(case, SyncField) and case.sync.dtype in HALF and not case.sync.track


def half_with_empty_rank(case) -> bool:
    return isinstance(case, SyncField) and case.sync.dtype in HALF and 0 in case.sync.rank_batches


_CUMULATIVE_REPRO = SeqStep(BNSeqCase(dtype="float64", momentum=None, ops=(("forward", 0), ("forward", 2))), step=1,
                            field="running_mean")
_FAILED_REPRO = SeqStep(BNSeqCase(ops=(("forward", 1),)), step=0, field="num_batches_tracked")

DIVERGENCES = [
    Divergence(
        id="norm-cumulative-average-counts-empty-batch",
        rule=ref.RUNNING_CUMULATIVE,
        torch=">=2.4",
        reason="momentum=None is documented as a simple average of the batch statistics, but an empty batch (N=0) "
               "bumps num_batches_tracked without contributing statistics, and the next batch is weighted "
               "1/num_batches_tracked: the stats that were there before (initially 0 and 1) keep a phantom share",
        evidence="torch/nn/modules/batchnorm.py: _BatchNorm.forward increments num_batches_tracked and sets "
                 "exponential_average_factor = 1/num_batches_tracked before F.batch_norm, whose numel()==0 path "
                 "skips the update; e.g. BatchNorm1d(3, momentum=None): forward(randn(0,3)); forward(x) leaves "
                 "running_mean = x.mean(0) / 2 instead of x.mean(0)",
        when=empty_batch_in_average,
        torch_does=torch_counting,
        repro=_CUMULATIVE_REPRO,
        reference_fn=_seq_reference,
        torch_fn=seq_step),
    Divergence(
        id="norm-failed-call-counted",
        arguable=True,  # shared/research/registry-audit.md: exception-safety of a counter; matters only with momentum=None after a caught error
        rule=ref.RUNNING_COUNTER,
        torch=">=2.4",
        reason="a training forward that raises (e.g. 'Expected more than 1 value per channel when training') "
               "still increments num_batches_tracked: the module's state changes although the call failed, and "
               "with momentum=None later averages are weighted by the inflated count",
        evidence="torch/nn/modules/batchnorm.py: _BatchNorm.forward calls num_batches_tracked.add_(1) before "
                 "F.batch_norm runs _verify_batch_size; BatchNorm1d(3)(randn(1,3)) raises ValueError and leaves "
                 "num_batches_tracked == 1",
        when=failed_call_counted,
        torch_does=torch_counting,
        repro=_FAILED_REPRO,
        reference_fn=_seq_reference,
        torch_fn=seq_step),
    Divergence(
        id="norm-lazy-num-features-not-inferred",
        rule=ref.LAZY_INFER,
        torch=">=2.4",
        reason="LazyBatchNorm with affine=False and track_running_stats=False has no uninitialized parameter, so "
               "initialize_parameters never runs: after the first call the module is a BatchNorm{k}d whose "
               "num_features is 0 (and repr says so) instead of input.shape[1]",
        evidence="torch/nn/modules/batchnorm.py: _LazyNormBase.initialize_parameters sets num_features only under "
                 "has_uninitialized_params(); LazyBatchNorm1d(affine=False, track_running_stats=False)(randn(2,5)) "
                 "then .num_features == 0",
        when=lazy_no_params,
        torch_does=lambda case, expected: {**expected, "num_features": 0},
        repro=BNCase(kind="LazyBatchNorm1d", shape=(4, 3), num_features=3, affine=False, track=False),
        reference_fn=_lazy_reference,
        torch_fn=lazy_structure),
    Divergence(
        id="norm-sync-half-untracked-counts-dtype",
        rule=ref.SYNC_CUDA_MODULE,
        torch=">=2.11,<2.12",  # observed on one H200 only (reports/matrix/cuda/2.11.0.json)
        reason="SyncBatchNorm with float16/bfloat16 parameters and track_running_stats=False fails in training "
               "across ranks: the gathered counts stay float32 (the dtype batch_norm_stats returns for half input) "
               "and are cast to the running stats' dtype only when running stats exist, while "
               "batch_norm_gather_stats_with_counts then expects counts in the input dtype",
        evidence="observed on torch 2.11.0+cu130, H200, 3 ranks (gloo on CUDA tensors): RuntimeError 'Expected "
                 "counts to have type BFloat16 but got Float'; torch/nn/modules/_functions.py: "
                 "SyncBatchNorm.forward casts counts only 'if running_mean is not None' (pytorch/pytorch#98332 "
                 "fixed the tracked case, #50126/#49730 the float32 untracked case)",
        when=half_untracked,
        torch_does=lambda case, expected: Raised("RuntimeError",
                                                 r"Expected counts to have type (Half|BFloat16) but got Float"),
        repro=SyncField(SyncCase(rank_batches=(2, 2, 2), dtype="bfloat16", track=False), "y"),
        reference_fn=_sync_reference,
        torch_fn=sync_field,
        devices=("cuda",)),
    Divergence(
        id="norm-sync-half-empty-rank-gather-mismatch",
        rule=ref.SYNC_EMPTY_RANK,
        torch=">=2.11,<2.12",  # observed on one H200 only (reports/matrix/cuda/2.11.0.json)
        reason="with float16/bfloat16 input, a rank with an empty batch all-gathers zeros in the input dtype "
               "(2 bytes) while its peers gather float32 statistics (4 bytes): the collective's sizes disagree. "
               "With gloo the rank aborts ('Received data size doesn't match expected size'); what NCCL does is "
               "not verified here, so any deviation is accepted (torch_does=None)",
        evidence="observed on torch 2.11.0+cu130, H200, 3 ranks on one GPU with gloo: gloo::EnforceNotMet "
                 "'op.preamble.length <= op.nbytes. 14 vs 7' and the rank exits with SIGABRT; "
                 "torch/nn/modules/_functions.py: SyncBatchNorm.forward builds the empty rank's 'combined' with "
                 "dtype=input.dtype, the others' from batch_norm_stats' float32 mean/invstd",
        when=half_with_empty_rank,
        torch_does=None,
        repro=SyncField(SyncCase(rank_batches=(2, 0, 2), dtype="float16"), "y"),
        reference_fn=_sync_reference,
        torch_fn=sync_field,
        devices=("cuda",)),
]

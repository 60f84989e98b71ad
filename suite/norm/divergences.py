"""Known divergences of the ``norm`` area (see suite/divergences.py for the contract).

torch's own counting of tracked training calls (``torch_counts``) is what torch does instead of the
documented counting (reference.norm.batchnorm.documented_counts); the reference's sequence model takes
it through its ``counts`` extension point.
"""
from __future__ import annotations

import functools

import numpy as np

from conform.outcome import Raised
from reference.norm import batchnorm, lazy, lrn, other_norms, running, syncbn
from suite.divergences import Divergence
from suite.norm.cases import (BNCase, BNSeqCase, DefaultsCase, LRNCase, OtherNormCase, SeqStep, SyncCase,
                              make_bn_inputs, make_lrn_inputs, make_other_inputs, make_seq_inputs, make_sync_inputs)
from suite.norm.torch_side.batchnorm import run_defaults
from suite.norm.torch_side.lazy import run_lazy
from suite.norm.torch_side.lrn import run_lrn
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


def lazy_no_params(case: BNCase | OtherNormCase) -> bool:
    """A Lazy module without parameters or running stats (for an InstanceNorm case: one whose input the
    documented num_features = input.size(1) matches, so that the reference expects no channel warning)."""
    if not (case.kind.startswith("Lazy") and not case.affine and not case.track):
        return False
    if isinstance(case, OtherNormCase):
        x = make_other_inputs(case)["x"]
        return other_norms.instance_checks(case, x)[0] is None
    return True


def lazy_low_rank(case: BNCase | OtherNormCase) -> bool:
    """A Lazy module with an uninitialized parameter or buffer (affine or track_running_stats) whose first call
    gets a 0D or 1D input (an unbatched OtherNormCase passes its first sample)."""
    if not (case.kind.startswith("Lazy") and (case.affine or case.track)):
        return False
    ndim = len(case.shape) - (0 if getattr(case, "batched", True) else 1)
    return ndim < 2


def lazy_rank_expect(case: BNCase | OtherNormCase, device: str):
    if isinstance(case, OtherNormCase):
        return other_norms.expectations(case, make_other_inputs(case))
    return batchnorm.rank_expectations(case, make_bn_inputs(case))


def lazy_instance_torch_defaults(case: DefaultsCase, expected: dict) -> dict:
    """_LazyNormBase.__init__'s defaults (affine=True, track_running_stats=True): a bias, and after the first call
    weight, bias and running stats of num_features entries."""
    return {**expected, "affine": True, "track_running_stats": True, "has_bias": True,
            "after_first_call": {name: [case.num_features]
                                 for name in ("weight", "bias", "running_mean", "running_var")}}


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


# ---- LocalResponseNorm / CrossMapLRN2d: which channels torch sums ------------------------------------------------

def lrn_torch_windows(channels: int, size: int) -> list[list[int]]:
    """F.local_response_norm pads the channel axis by (size // 2, (size - 1) // 2) and average-pools size
    channels: channel c sums [c - size//2, c + (size-1)//2], size channels (the formula says size + 1 for even
    size)."""
    return [list(range(max(0, c - size // 2), min(channels - 1, c + (size - 1) // 2) + 1)) for c in range(channels)]


def crossmap_torch_windows(channels: int, size: int) -> list[list[int]]:
    """_functions.CrossMapLRN2d.forward's running sum: it starts with channels [0, pre_pad) and, moving to channel
    c, adds channel c + pre_pad - 1 while c < channels - pre_pad + 1 and removes c - pre_pad only when
    c > pre_pad (the legacy 1-based loop translated without shifting that bound), so channel 0 is never removed."""
    pre = int((size - 1) / 2 + 1)
    current = set(range(min(pre, channels)))
    windows = [sorted(current)]
    for c in range(1, channels):
        if c < channels - pre + 1:
            current.add(c + pre - 1)
        if c > pre:
            current.discard(c - pre)
        windows.append(sorted(current))
    return windows


def crossmap_inverse_pre_pad(size: int) -> int:
    return int(size - (size - 1) / 2)


def crossmap_torch_backward_windows(channels: int, size: int) -> list[list[int]]:
    """The channels CrossMapLRN2d.backward accumulates for channel c: the ratios placed at offset
    int(size - (size - 1) / 2) of a (channels + size - 1) buffer, summed over size entries ending at c + size - 1."""
    inv = crossmap_inverse_pre_pad(size)
    return [list(range(max(0, c - inv), min(channels - 1, c + size - 1 - inv) + 1)) for c in range(channels)]


def crossmap_torch_backward(x: np.ndarray, dy: np.ndarray, case: LRNCase):
    """CrossMapLRN2d.backward's loop in float64: dy D^-beta - 2 alpha beta / size * x * (the accumulated
    dy * y / D over crossmap_torch_backward_windows), D from the forward's windows; size 1 places the ratios
    past the buffer's end: narrow raises RuntimeError."""
    N, C = x.shape[:2]
    size, alpha, beta, k = case.size, case.alpha, case.beta, case.k
    inv = crossmap_inverse_pre_pad(size)
    if inv + C > C + size - 1:
        return Raised("RuntimeError", r"exceeds dimension size")
    D = lrn.denominators(x, size, alpha, k, crossmap_torch_windows(C, size))
    y = x * D ** (-beta)
    grad = D ** (-beta) * dy
    coef = 2.0 * alpha * beta / size
    for n in range(N):
        padded = np.zeros((C + size - 1,) + x.shape[2:])
        padded[inv:inv + C] = dy[n] * y[n] / D[n]
        acc = padded[:size - 1].sum(axis=0)
        for c in range(C):
            acc = acc + padded[c + size - 1]
            grad[n, c] -= coef * x[n, c] * acc
            acc = acc - padded[c]
    return grad


def _transposed(windows: list[list[int]]) -> list[list[int]]:
    return [[c for c, w in enumerate(windows) if j in w] for j in range(len(windows))]


def lrn_even_size(case: LRNCase) -> bool:
    C = case.shape[1] if len(case.shape) > 1 else 0
    return (case.kind == "LocalResponseNorm" and len(case.shape) >= 3
            and lrn_torch_windows(C, case.size) != lrn.documented_windows(C, case.size))


def crossmap_forward_window(case: LRNCase) -> bool:
    return (case.kind == "CrossMapLRN2d" and len(case.shape) == 4 and not case.backward
            and crossmap_torch_windows(case.shape[1], case.size) != lrn.documented_windows(case.shape[1], case.size))


def crossmap_backward_differs(case: LRNCase) -> bool:
    if case.kind != "CrossMapLRN2d" or len(case.shape) != 4 or not case.backward:
        return False
    C, size = case.shape[1], case.size
    documented = lrn.documented_windows(C, size)
    return (crossmap_inverse_pre_pad(size) > size - 1 or crossmap_torch_windows(C, size) != documented
            or crossmap_torch_backward_windows(C, size) != _transposed(documented))


def _lrn_expect(case: LRNCase, device: str):
    return lrn.expectations(case, make_lrn_inputs(case))


def lrn_with_torch_windows(case: LRNCase, expected):
    out = lrn.lrn_outcome(case, make_lrn_inputs(case), windows=lrn_torch_windows)
    return out["grad_input" if case.backward else "y"]


def crossmap_with_torch_windows(case: LRNCase, expected):
    return lrn.lrn_outcome(case, make_lrn_inputs(case), windows=crossmap_torch_windows)["y"]


def crossmap_torch_grad(case: LRNCase, expected):
    inputs = make_lrn_inputs(case)
    return crossmap_torch_backward(inputs["x"], inputs["dy"], case)


_lrn_entry = functools.partial(Divergence, torch=">=2.4", case_type=LRNCase, expect=_lrn_expect, run=run_lrn)


DIVERGENCES = [
    _lrn_entry(
        id="norm-lrn-even-size-window",
        rule=lrn.LRN_FORWARD,
        also_rules=(lrn.LRN_BACKWARD,),
        bug_in="docs",
        reason="for an even size n the documented sum runs over c' from c - n/2 to c + n/2 (n + 1 channels), but "
               "LocalResponseNorm sums n channels, c - n/2 to c + n/2 - 1 (still dividing by n); odd sizes agree",
        evidence="torch/nn/functional.py: local_response_norm pads by (size // 2, (size - 1) // 2) and "
                 "avg_pools size channels; the docstring's own example is LocalResponseNorm(2). "
                 "LocalResponseNorm(2, alpha=1.0)(x) for x of shape (1, 2, 1) = [[[1.], [2.]]] gives channel 0 "
                 "1 / (1 + 1/2 * 1)^0.75, the formula 1 / (1 + 1/2 * 5)^0.75",
        when=lrn_even_size,
        torch_does=lrn_with_torch_windows,
        repro=LRNCase(kind="LocalResponseNorm", shape=(1, 2, 1), size=2, dtype="float64")),
    _lrn_entry(
        id="norm-crossmaplrn2d-window-keeps-channel-0",
        rule=lrn.CROSSMAP_FORWARD,
        reason="CrossMapLRN2d's running window never drops channel 0 (and for an even size spans size - 1 "
               "channels): every channel c >= (size - 1) // 2 + 1 is normalized with a_0^2 in its sum, unlike "
               "LocalResponseNorm's formula",
        evidence="torch/nn/modules/_functions.py: CrossMapLRN2d.forward removes channel c - pre_pad only 'if c > "
                 "pre_pad' (the legacy Lua loop's 1-based bound kept in 0-based code); CrossMapLRN2d(3)(x) and "
                 "LocalResponseNorm(3)(x) differ in channel 2 for any x with 3 channels and a_0 != 0",
        when=crossmap_forward_window,
        torch_does=crossmap_with_torch_windows,
        repro=LRNCase(kind="CrossMapLRN2d", shape=(1, 3, 1, 1), size=3, dtype="float64")),
    _lrn_entry(
        id="norm-crossmaplrn2d-backward-shifted",
        rule=lrn.CROSSMAP_BACKWARD,
        reason="CrossMapLRN2d.backward is not the gradient of its forward: it accumulates the neighbours' "
               "ratios over a window shifted by one channel (and uses the forward's window), so gradcheck fails "
               "from 2 channels on; with size=1 it raises RuntimeError instead",
        evidence="torch/nn/modules/_functions.py: CrossMapLRN2d.backward places the ratios at offset "
                 "int(size - (size - 1) / 2) (the legacy 1-based narrow index); "
                 "torch.autograd.gradcheck(lambda t: CrossMapLRN2d.apply(t, 3, 0.5, 0.75, 1.0), "
                 "torch.randn(1, 2, 2, 2, dtype=torch.float64, requires_grad=True)) is False; size=1: "
                 "'start (1) + length (C) exceeds dimension size (C)'",
        when=crossmap_backward_differs,
        torch_does=crossmap_torch_grad,
        repro=LRNCase(kind="CrossMapLRN2d", shape=(1, 2, 1, 1), size=3, dtype="float64", backward=True)),

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
        # the same num_features == 0 makes a LazyInstanceNorm{k}d without parameters or running stats warn on every
        # first call that its input's channels do not match num_features
        also_rules=(other_norms.INSTANCE_CHANNELS,),
        case_type=(BNCase, OtherNormCase),
        when=lazy_no_params,
        torch_does=lambda case, expected: {**expected, "num_features": 0} if isinstance(case, BNCase) else True,
        repro=BNCase(kind="LazyBatchNorm1d", shape=(4, 3), num_features=3, affine=False, track=False),
        expect=lambda case, device: lazy.expectations(case, make_bn_inputs(case)),
        run=run_lazy),
    Divergence(
        id="norm-lazy-low-rank-index-error",
        rule=batchnorm.INPUT_RANK,
        also_rules=(other_norms.INSTANCE_RANK,),
        torch=">=2.4",  # measured: the repro reproduces on every release of the matrix, 2.4.1 to 2.15.0
        reason="a Lazy{Batch,Instance}Norm{1,2,3}d with affine=True or track_running_stats=True given a 0D or 1D "
               "input on its first call raises IndexError ('tuple index out of range') instead of the rank check's "
               "documented ValueError: the lazy initialization reads input.shape[1] before _check_input_dim runs "
               "(without parameters or stats nothing is initialized and the ValueError comes as documented)",
        evidence="torch/nn/modules/batchnorm.py: _LazyNormBase.initialize_parameters sets num_features = "
                 "input.shape[1] in the forward pre-hook, before forward's _check_input_dim; on 2.13.0 "
                 "LazyBatchNorm1d()(torch.randn(3)) and LazyInstanceNorm2d()(torch.randn(())) raise IndexError, "
                 "LazyBatchNorm1d(affine=False, track_running_stats=False)(torch.randn(3)) raises 'expected 2D or "
                 "3D input (got 1D input)'; every kind x ranks 0..5 measured: only ranks 0 and 1 differ",
        case_type=(BNCase, OtherNormCase),
        when=lazy_low_rank,
        torch_does=lambda case, expected: Raised("IndexError", r"tuple index out of range"),
        repro=BNCase(kind="LazyBatchNorm1d", shape=(3,), num_features=2),
        expect=lazy_rank_expect,
        run=run_lazy),
    Divergence(
        id="norm-lazy-instance-defaults-affine-tracked",
        rule=batchnorm.CONSTRUCT_DEFAULTS,
        torch=">=2.4",  # measured: the repro reproduces on every release of the matrix, 2.4.1 to 2.15.0
        reason="LazyInstanceNorm{1,2,3}d() defaults to affine=True and track_running_stats=True (so it gets a bias, "
               "and after its first call weight, bias and running stats) although its docstring documents both as "
               "False, like InstanceNorm{1,2,3}d's",
        evidence="torch/nn/modules/instancenorm.py: LazyInstanceNorm1d/2d/3d define no __init__ and inherit "
                 "batchnorm.py _LazyNormBase.__init__(eps=1e-5, momentum=0.1, affine=True, "
                 "track_running_stats=True), written for LazyBatchNorm, while their docstrings say 'Default: "
                 "``False``' for both (the same in the 2.4.1 ... 2.15.0 sources of the uv cache: the defaults were "
                 "inherited, never chosen, when LazyInstanceNorm joined _LazyNormBase, pytorch/pytorch#60982); "
                 "inspect.signature(torch.nn.LazyInstanceNorm2d) on 2.13.0 shows affine=True, "
                 "track_running_stats=True",
        case_type=DefaultsCase,
        when=lambda case: case.kind.startswith("LazyInstanceNorm"),
        torch_does=lazy_instance_torch_defaults,
        repro=DefaultsCase(kind="LazyInstanceNorm1d", num_features=2),
        expect=lambda case, device: batchnorm.defaults_expectations(case),
        run=run_defaults),
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

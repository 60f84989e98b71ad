"""Ranges of the norm area's torch files a CPU run cannot reach (see suite/unreached.py for the form)."""
from __future__ import annotations

from suite.unreached import CUDA_ONLY, UNREACHABLE, Unreached

BN = "nn/modules/batchnorm.py"
IN = "nn/modules/instancenorm.py"
FN = "nn/modules/_functions.py"
LAZY_SWAP = ("the forward pre-hook LazyModuleMixin._infer_parameters sets __class__ to cls_to_become before forward "
             "runs (nn/modules/lazy.py), so forward calls the non-lazy class's method (the Lazy modules' rank checks "
             "are still checked through it: norm.input.rank, norm.instance.rank)")
NON_GLOO = ("the all_gather_into_tensor path (all_gather_single) is taken for non-gloo backends (NCCL/XCCL), i.e. GPU "
            "ranks; the CPU ranks run gloo (_functions.py: SyncBatchNorm.forward)")

UNREACHED = [
    Unreached(BN, "_NormBase._check_input_dim", UNREACHABLE,
              "the abstract base's NotImplementedError: every public norm class overrides _check_input_dim "
              "(batchnorm.py: _NormBase is private)"),
    *(Unreached(IN, f"_InstanceNorm.{name}", UNREACHABLE,
                "the private base's NotImplementedError: InstanceNorm{1,2,3}d and their Lazy forms override it")
      for name in ("_check_input_dim", "_get_no_batch_dim")),
    *(Unreached(path, f"Lazy{kind}{k}d.{name}", UNREACHABLE, LAZY_SWAP)
      for path, kind, names in ((BN, "BatchNorm", ("_check_input_dim",)),
                                (IN, "InstanceNorm", ("_check_input_dim", "_get_no_batch_dim")))
      for k in (1, 2, 3) for name in names),
    Unreached(BN, "_LazyNormBase.initialize_parameters", UNREACHABLE,
              "internal assertions that weight/bias are still UninitializedParameters, which "
              "has_uninitialized_params() guarantees just above", contains="raise AssertionError"),
    Unreached(BN, "SyncBatchNorm.forward", UNREACHABLE,
              "internal assertion: num_batches_tracked exists whenever track_running_stats is set at construction "
              "(_NormBase.__init__)", contains='raise AssertionError("num_batches_tracked'),
    Unreached(BN, "SyncBatchNorm.forward", CUDA_ONLY,
              "synchronized training needs input on GPU/XPU/PrivateUse1 once a process group exists (CPU input "
              "raises just before, checked by norm.sync.cpu_rejected; the CPU ranks call the autograd function "
              "directly with stand-in kernels)", contains="process_group = torch.distributed.group.WORLD"),
    Unreached(BN, "SyncBatchNorm.forward", CUDA_ONLY,
              "the synchronized branch (sync_batch_norm.apply from the module) runs only for GPU/XPU input with a "
              "process group of size > 1", contains="if not bn_training"),
    *(Unreached(FN, "SyncBatchNorm.forward", CUDA_ONLY, NON_GLOO, contains=first_line)
      for first_line in ("combined_size = combined.numel()", "dist.all_gather_single", "combined = torch.reshape",
                         "mean_all, invstd_all")),
    Unreached(FN, "SyncBatchNorm.forward", CUDA_ONLY,
              "batch_norm_stats returns float32 statistics for half input, a dtype other than the running stats' "
              "only with float16/bfloat16 modules, which only the CUDA kernels take", contains="counts = counts.to("),
    Unreached(FN, "SyncBatchNorm.backward", CUDA_ONLY,
              "weight in a dtype other than the saved float32 mean: half-precision modules, CUDA kernels only",
              contains="weight = weight.to(mean.dtype)"),
    Unreached(FN, "SyncBatchNorm.forward", UNREACHABLE,
              "a single value per channel on a single rank: the module only calls the function with world_size > "
              "1, where this check is skipped (a single rank falls back to F.batch_norm)",
              contains="raise ValueError("),
]

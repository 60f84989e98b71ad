"""Executable spec of torch's normalization layers (area ``norm``), one module per topic.

numpy float64 for the math, plain Python for module state.  Nothing here calls
torch: the test side draws the input values (suite/norm/cases.py) and hands them
over as numpy arrays; the reference reads a Case's attributes and never needs its class.

- ``batchnorm``: construction, input checks, one forward and its running-stat update (the model of one call);
- ``running``: histories of calls (momentum, cumulative average, counter, toggles, empty batches);
- ``backward``: BatchNorm's analytic backward;
- ``lazy``: LazyBatchNorm's first call;
- ``other_norms``: InstanceNorm (and its Lazy forms, unbatched input), GroupNorm, LayerNorm;
- ``lrn``: LocalResponseNorm and CrossMapLRN2d; ``rms``: RMSNorm;
- ``extra_repr``: how the layers print; ``functional``: the functionals' __torch_function__ dispatch;
- ``state``: loading older state dicts (num_batches_tracked, InstanceNorm's pre-0.4 running stats);
- ``syncbn``: SyncBatchNorm over ranks, its fallback, convert_sync_batchnorm;
- ``core``: the shared statistics and formulas; ``tolerances``: every bound of the area.
"""
from reference.norm import (backward, batchnorm, core, extra_repr, functional, lazy, lrn, other_norms, rms, running,
                            state, syncbn, tolerances)
from reference.norm.other_norms import layer_norm

__all__ = ["backward", "batchnorm", "core", "extra_repr", "functional", "lazy", "layer_norm", "lrn", "other_norms",
           "rms", "running", "state", "syncbn", "tolerances"]

"""What a CPU run of the parallel area leaves unreached in torch.nn.parallel, and why (see suite/unreached.py).

The CUDA-only transports (torch._C._scatter/_gather/_broadcast_coalesced, torch.accelerator streams, device
discovery and properties) are stood in on CPU (suite/parallel/torch_side/), so the Python logic around them
runs and is checked there; what is left is dead code, code behind states the public API cannot produce, and a
deprecated alias.
"""
from __future__ import annotations

from suite.unreached import DEPRECATED, UNREACHABLE, Unreached

SG = "nn/parallel/scatter_gather.py"
REP = "nn/parallel/replicate.py"
PA = "nn/parallel/parallel_apply.py"
DP = "nn/parallel/data_parallel.py"

SCRIPT_REFUSES = ("needs a Python module among a ScriptModule's descendants, which TorchScript refuses to build "
                  "(torch/jit/_script.py: 'Cannot re-assign modules in a ScriptModule with non-scripted module'; "
                  "torch.jit.script converts every child); parallel.replicate.script_module checks the other side")
NO_DEVICES = ("_get_all_device_indices() returns None only where _get_available_device_type() is None, and that "
              "case has already returned (DataParallel) or raised (data_parallel) above (torch/_utils.py: "
              "_get_device_attr)")
DEVICE_IS_INDEX = ("device is already an int here: parallel_apply turns every device into an index with "
                   "_get_device_index before the workers start, and get_a_var's tensor.get_device() returns one")
STREAM_GIVEN = ("every worker gets a stream: parallel_apply builds them with torch.accelerator.current_stream(x), "
                "which returns a Stream or raises, never None")
NO_KWARGS_NONE = ("scatter_kwargs always returns a tuple of kwargs, so module_kwargs is never None "
                  "(scatter_gather.py: scatter_kwargs returns tuple(scattered_kwargs))")

UNREACHED = [
    Unreached(SG, "is_namedtuple", DEPRECATED,
              "the public alias is deprecated (FutureWarning '`is_namedtuple` is deprecated, please use the python "
              "checks instead'); scatter and gather call _is_namedtuple, which parallel.scatter.namedtuple and "
              "parallel.gather.sequence check"),
    Unreached(REP, "_is_script_method", UNREACHABLE,
              "a helper nothing in torch calls (replicate.py defines it; no caller in torch/)"),
    Unreached(REP, "_init_script_module", UNREACHABLE,
              "a helper nothing in torch calls (replicate.py defines it; no caller in torch/)"),
    Unreached(REP, "_replicatable_module", UNREACHABLE, SCRIPT_REFUSES, contains="return False"),
    Unreached(REP, "replicate", UNREACHABLE, SCRIPT_REFUSES, contains="raise RuntimeError"),
    Unreached(PA, "parallel_apply._worker", UNREACHABLE, DEVICE_IS_INDEX, contains="device = device.index"),
    Unreached(PA, "parallel_apply._worker", UNREACHABLE, STREAM_GIVEN, contains="stream = torch.accelerator"),
    Unreached(DP, "DataParallel.__init__", UNREACHABLE, NO_DEVICES, contains="no available devices were found"),
    Unreached(DP, "data_parallel", UNREACHABLE, NO_DEVICES, contains="no available devices were found"),
    Unreached(DP, "data_parallel", UNREACHABLE, NO_KWARGS_NONE, contains="module_kwargs should not be None"),
]

"""Registered divergences of the single-call checks (MiscCase, suite/module/test_tree_single.py: test_misc_calls).

Both ranges were measured on 2.13.0 only so far (the repro reproduces there); the release matrix
(`torchconform matrix --registry-only`) has yet to measure them on the other releases."""
from __future__ import annotations

import functools

from conform.outcome import OneOf, Raised
from reference.module import convert as convert_ref
from reference.module import hooks as hooks_ref
from reference.module import tree as tree_ref
from suite.divergences import Divergence
from suite.module.cases import MiscCase
from suite.module.torch_side.tree import run_misc

MODULE_PY = "torch/nn/modules/module.py"
MEMORY_FORMAT_5D = MiscCase("to_memory_format", (("param", "w4", (2, 3, 4, 5), "float32"),
                                                 ("param", "w5", (2, 3, 2, 2, 2), "float32")))
NON_TENSOR_OUTPUT = "For backward hooks to be called, module output should be a Tensor or a tuple of Tensors"


def _hook_not_fired(case, expected):
    """torch: the hook is never called (0 calls) and the call warns; the input's gradient is unaffected."""
    if isinstance(expected, OneOf):
        return Raised("UserWarning", "^" + NON_TENSOR_OUTPUT)
    return 0 if isinstance(expected, int) else expected


_misc_entry = functools.partial(Divergence, case_type=MiscCase, torch=">=2.4", run=run_misc,
                                expect=lambda case, device: tree_ref.misc_expectations(case, device))

DIVERGENCES = [
    _misc_entry(
        id="module-to-channels-last-5d-raises",
        rule=convert_ref.CONVERT_MEMORY_FORMAT,
        reason="Module.to(memory_format=torch.channels_last) on a module holding a 5-D parameter or buffer raises "
               "RuntimeError 'required rank 4 tensor to use channels_last format' instead of leaving it as it is: "
               "the memory format is applied to every 4-D and 5-D tensor, so a model with both Conv2d and Conv3d "
               "layers cannot be converted (its 4-D tensors may already be converted when it raises).",
        evidence=f"{MODULE_PY}: Module.to documents 'memory_format: the desired memory format for 4D parameters and "
                 "buffers in this module'; Module.to.convert applies it when 't.dim() in (4, 5)' and "
                 "Tensor.to(memory_format=torch.channels_last) refuses a 5-D tensor.",
        when=lambda case: case.kind == "to_memory_format" and any(len(shape) == 5 for _, _, shape, _ in case.entries),
        torch_does=lambda case, expected: Raised("RuntimeError", "required rank 4 tensor to use channels_last format"),
        repro=MEMORY_FORMAT_5D,
    ),
    _misc_entry(
        id="module-full-backward-hook-dict-output-never-fires",
        rule=hooks_ref.BACKWARD_HOOK_FIRES,
        bug_in="docs",
        reason="A full backward hook on a module whose forward returns a dict (anything but a Tensor or a tuple) is "
               "never called, though the gradients with respect to the module's inputs are computed; torch warns "
               f"'{NON_TENSOR_OUTPUT}' at the call.  The limitation is deliberate (the warning) but "
               "register_full_backward_hook's firing rules do not mention it.",
        evidence=f"{MODULE_PY}: Module._call_impl ('if not isinstance(result, (torch.Tensor, tuple)): "
                 "warnings.warn(...)', then BackwardHook.setup_output_hook attaches to Tensors and tuples only); "
                 "register_full_backward_hook: '1. Ordinarily, the hook fires when the gradients are computed with "
                 "respect to the module inputs.'",
        when=lambda case: case.kind == "backward_hook_dict",
        torch_does=_hook_not_fired,
        repro=MiscCase("backward_hook_dict"),
    ),
]

"""The norm functionals honour ``__torch_function__``: a Tensor-like argument takes the call over.

Sources: "Extending torch with a Tensor-like type" (docs.pytorch.org/docs/stable/notes/extending.html#extending-torch
-with-a-tensor-like-type; torch.overrides): a type defining ``__torch_function__(cls, func, types, args, kwargs)``
passed to a torch function (torch.nn.functional included) makes that function return what ``__torch_function__``
returns; ``func`` is the public function called, ``types`` holds the Tensor-like type, ``args``/``kwargs`` are the
call's arguments.  How they split between args and kwargs is not documented, so the check binds them to the
documented signature (defaults filled in) and compares the bound arguments.

The signatures and defaults are the documented ones (docs.pytorch.org/docs/stable/generated/torch.nn.functional.
<name>.html), identical in 2.4.1 ... 2.15.0 (read from every release's torch/nn/functional.py).
"""
from __future__ import annotations

from conform.expect import Expect
from conform.rules import rule

EXTENDING_DOC = "https://docs.pytorch.org/docs/stable/notes/extending.html#extending-torch-with-a-tensor-like-type"

TORCH_FUNCTION = rule(
    "norm.functional.torch_function",
    "F.batch_norm, instance_norm, layer_norm, group_norm, rms_norm and local_response_norm called with a Tensor-like "
    "argument (input, or a weight/running stat) whose type defines __torch_function__ return what that override "
    "returns; it receives func = the functional itself, types holding the Tensor-like type, and args/kwargs that "
    "bind to the functional's signature as the call's own arguments (the documented defaults for the rest).",
    f"{EXTENDING_DOC}; torch.overrides; torch/nn/functional.py: has_torch_function_variadic / handle_torch_function "
    "in batch_norm, instance_norm, layer_norm, rms_norm, group_norm, local_response_norm")

REQUIRED = object()  # a parameter without a default
SIGNATURES = {
    "batch_norm": (("input", REQUIRED), ("running_mean", REQUIRED), ("running_var", REQUIRED), ("weight", None),
                   ("bias", None), ("training", False), ("momentum", 0.1), ("eps", 1e-5)),
    "instance_norm": (("input", REQUIRED), ("running_mean", None), ("running_var", None), ("weight", None),
                      ("bias", None), ("use_input_stats", True), ("momentum", 0.1), ("eps", 1e-5)),
    "layer_norm": (("input", REQUIRED), ("normalized_shape", REQUIRED), ("weight", None), ("bias", None),
                   ("eps", 1e-5)),
    "group_norm": (("input", REQUIRED), ("num_groups", REQUIRED), ("weight", None), ("bias", None), ("eps", 1e-5)),
    "rms_norm": (("input", REQUIRED), ("normalized_shape", REQUIRED), ("weight", None), ("eps", None)),
    "local_response_norm": (("input", REQUIRED), ("size", REQUIRED), ("alpha", 1e-4), ("beta", 0.75), ("k", 1.0)),
}
# the parameters a Tensor-like may stand in for (Tensor parameters of each functional)
TENSOR_PARAMS = {"batch_norm": ("input", "running_mean", "running_var", "weight", "bias"),
                 "instance_norm": ("input", "running_mean", "running_var", "weight", "bias"),
                 "layer_norm": ("input", "weight", "bias"), "group_norm": ("input", "weight", "bias"),
                 "rms_norm": ("input", "weight"), "local_response_norm": ("input",)}


def bound_arguments(func: str, arguments: tuple) -> dict:
    """Every parameter of ``func`` with the call's value (arguments: (name, value) pairs) or its default."""
    given = dict(arguments)
    return {name: given.get(name, default) for name, default in SIGNATURES[func]}


def expectations(case) -> list[Expect]:
    """A DispatchCase: the override's return value, what it was called with."""
    return [Expect(TORCH_FUNCTION, "override", key="returned"),
            Expect(TORCH_FUNCTION, {"func": case.func, "is_public_function": True, "like_in_types": True,
                                    "arguments": bound_arguments(case.func, case.arguments)}, key="received")]

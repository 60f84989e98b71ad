"""Model of the dtype conversions of Module.float/double/half/bfloat16/to
(docstrings in torch/nn/modules/module.py)."""
from __future__ import annotations

import numpy as np

from conform.expect import Expect
from conform.outcome import Raised
from conform.rules import rule

SRC = "torch/nn/modules/module.py"

CONVERT_FLOAT_METHODS = rule("module.convert.float_methods",
    "float()/double()/half()/bfloat16() cast only floating point parameters and buffers, of the module and "
    "all its descendants (Module._apply recurses); integer, bool and complex ones keep their dtype.",
    f"{SRC}: Module.float, Module.double, Module.half, Module.bfloat16")
CONVERT_TO_DTYPE = rule("module.convert.to_dtype",
    "to(dtype) accepts only floating point or complex dtypes (else TypeError) and casts only the floating point "
    "and complex parameters and buffers; integral ones keep their dtype.", f"{SRC}: Module.to")
CONVERT_IDENTITY = rule("module.convert.parameter_identity",
    "Conversion modifies the module in place: Parameter objects stay the same objects (their data is replaced, or "
    "with torch.__future__.set_swap_module_params_on_conversion(True) swapped), except that with "
    "set_overwrite_module_params_on_conversion(True) every parameter is a new Parameter; a buffer is replaced by "
    "the converted tensor unless the conversion leaves it unchanged; parameters and buffers registered as None stay "
    "None.", f"{SRC}: Module._apply, Module.to; torch/__future__.py: set_overwrite_module_params_on_conversion "
    "('the following methods will assign new parameters to the module: module.{device}(), module.{dtype}(), "
    "module.to(), module.to_empty()'), set_swap_module_params_on_conversion ('will swap the existing parameters "
    "in-place')")
CONVERT_TYPE = rule("module.convert.type_to_empty_share_memory",
    "type(dst_type) casts all parameters and buffers (integral ones too) to dst_type; cpu() moves them to the CPU "
    "(the same tensors where they are already there); to_empty(device=) keeps "
    "dtypes and gives every buffer a new (uninitialised) tensor; share_memory() moves them to shared memory in "
    "place (the same tensors).", f"{SRC}: Module.type ('Casts all parameters and buffers to dst_type'), "
    "Module.cpu, Module.to_empty ('without copying storage'), Module.share_memory (Tensor.share_memory_)")
CONVERT_GRADS = rule("module.convert.grads",
    "A parameter's .grad is converted with it: after the conversion it has the parameter's new dtype.",
    f"{SRC}: Module._apply (param_grad is passed through the same fn); torch/__future__.py: "
    "set_swap_module_params_on_conversion")

FLOATS = ("float16", "bfloat16", "float32", "float64")
COMPLEX = ("complex64", "complex128")
TARGET = {"float": "float32", "double": "float64", "half": "float16", "bfloat16": "bfloat16"}


FUTURE_METHODS = ("float", "double", "half", "bfloat16", "to", "type", "to_empty")  # the flags' documented scope


def run_convert(case, device: str = "cpu"):
    """{"dtypes": dtype after, "same": same object as before, "nones": None entries still None} per entry (and
    "grads": the dtype of each parameter's .grad, None without one), or the documented error."""
    method = case.method
    if method.startswith("to:"):
        target = method[3:]
        if target not in FLOATS + COMPLEX:
            return Raised("TypeError", "nn.Module.to only accepts floating point or complex dtypes")
        convertible = FLOATS + COMPLEX
    elif method.startswith("type:"):
        target, convertible = method[5:], None  # every dtype
    elif method in ("to_empty", "share_memory", "cpu"):
        target, convertible = None, ()
    else:
        target, convertible = TARGET[method], FLOATS
    dtypes = [target if convertible is None or dtype in convertible else dtype for _, dtype in case.entries]

    def same(kind, before, after):
        if kind == "param":
            return case.future != "overwrite"
        # buffers: to_empty makes new tensors, cpu() off the CPU too; a cast that changes nothing returns the
        # tensor itself
        return method != "to_empty" and (method != "cpu" or device == "cpu") and before == after

    out = {"dtypes": dtypes, "same": [same(kind, dtype, new) for (kind, dtype), new in zip(case.entries, dtypes)],
           "nones": [True, True]}
    if case.grads:
        out["grads"] = [new if kind == "param" and dtype in FLOATS + COMPLEX else None
                        for (kind, dtype), new in zip(case.entries, dtypes)]
    return out


def expectations(case, device: str = "cpu") -> list[Expect]:
    """A ConvertCase: the dtypes under the method's rule (the error of to() included), the identities under
    CONVERT_IDENTITY where the conversion happens, the grads' dtypes under CONVERT_GRADS."""
    expected = run_convert(case, device)
    if case.method.startswith("to:"):
        rule_id = CONVERT_TO_DTYPE
    elif case.method.startswith("type:") or case.method in ("to_empty", "share_memory", "cpu"):
        rule_id = CONVERT_TYPE
    else:
        rule_id = CONVERT_FLOAT_METHODS
    if isinstance(expected, Raised):
        return [Expect(rule_id, expected)]
    out = [Expect(rule_id, expected["dtypes"], key="dtypes"), Expect(CONVERT_IDENTITY, expected["same"], key="same"),
           Expect(CONVERT_IDENTITY, expected["nones"], key="nones")]
    if case.grads:
        out.append(Expect(CONVERT_GRADS, expected["grads"], key="grads"))
    return out


# ---- values and gradients ------------------------------------------------------------
CONVERT_SWAP_REFUSED = rule("module.convert.swap_refused",
    "Under torch.__future__.set_swap_module_params_on_conversion(True), converting a module whose parameter is of a "
    "Parameter subclass with its own __slots__ raises RuntimeError: the converted value is a plain Parameter, and "
    "swap_tensors refuses tensors whose slots differ.",
    "torch/__future__.py: set_swap_module_params_on_conversion (module.double() and the others swap the parameters "
    "in place); torch/utils/__init__.py: swap_tensors ('This will not work if t1 and t2 have different slots')")
CONVERT_VALUES = rule("module.convert.values",
    "Converted parameters hold the source values rounded to the target dtype (round to nearest even).",
    f"{SRC}: Module.float, Module.double, Module.half, Module.bfloat16")
ZERO_GRAD = rule("module.zero_grad.set_to_none",
    "zero_grad() (default set_to_none=True) sets the grad of every parameter to None; "
    "zero_grad(set_to_none=False) zeroes it in place "
    "and detaches it (requires_grad False); parameters without grad keep None.", f"{SRC}: Module.zero_grad")


def _bfloat16(x: np.ndarray) -> np.ndarray:
    """Round float32 values to bfloat16 (nearest even) by bit manipulation, returned as float64."""
    bits = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return rounded.astype(np.uint32).view(np.float32).astype(np.float64)


def convert_values(case, values: np.ndarray):
    """(dtype name, values) after case.method on a parameter of case.source dtype holding ``values``."""
    if case.method == "double":
        return "float64", values
    if case.method == "float":
        return "float32", values.astype(np.float32).astype(np.float64)
    if case.method == "half":
        return "float16", values.astype(np.float16).astype(np.float64)
    return "bfloat16", _bfloat16(values.astype(np.float32))


def values_expectations(case, values) -> list[Expect]:
    """A ValueCase whose parameter initially holds ``values`` (suite/module/cases.py: value_inputs)."""
    return [Expect(CONVERT_VALUES, convert_values(case, values))]


def zero_grad_expectations(case) -> list[Expect]:
    return [Expect(ZERO_GRAD, zero_grad(case))]


def zero_grad(case):
    out = []
    for i in range(case.n_params):
        if i in case.frozen or case.set_to_none is not False:  # None: the default, set_to_none=True
            out.append(None)
        else:
            out.append((np.zeros(2), False))
    return out


# ---- memory format -------------------------------------------------------------------
CONVERT_MEMORY_FORMAT = rule("module.convert.memory_format",
    "to(memory_format=torch.channels_last) gives every 4-D parameter and buffer (integral ones too) the channels_last "
    "layout (strides of an NHWC tensor) with its values and shape kept, parameters staying the same Parameter "
    "objects; parameters and buffers of any other dimension are left as they are (contiguous).",
    f"{SRC}: Module.to ('memory_format (torch.memory_format): the desired memory format for 4D parameters and "
    "buffers in this module (keyword only argument)'; 'This method modifies the module in-place')")


def _strides(shape, channels_last: bool) -> tuple:
    """Element strides of a dense tensor of ``shape``: row-major, or NHWC order for channels_last (4-D)."""
    order = (0, 2, 3, 1) if channels_last else tuple(range(len(shape)))  # outermost .. innermost dimension
    strides, step = [0] * len(shape), 1
    for dim in reversed(order):
        strides[dim] = step
        step *= shape[dim]
    return tuple(strides)


def memory_format_outcome(entries) -> dict:
    """Module.to(memory_format=torch.channels_last) on a module holding ``entries`` ((kind, name, shape, dtype),
    contiguous before): each entry's strides after, whether its values are kept, whether a parameter is the same
    object (buffers: True)."""
    return {"strides": [_strides(shape, len(shape) == 4) for _, _, shape, _ in entries],
            "kept": [True] * len(entries), "same": [True] * len(entries)}


def memory_format_expectations(case) -> list[Expect]:
    expected = memory_format_outcome(case.entries)
    return [Expect(CONVERT_MEMORY_FORMAT, expected[key], key=key) for key in ("strides", "kept", "same")]

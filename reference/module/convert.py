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
    "Conversion modifies the module in place: Parameter objects stay the same objects (their data is replaced); "
    "a buffer is replaced by the converted tensor unless its dtype is unchanged.", f"{SRC}: Module._apply, Module.to")

FLOATS = ("float16", "bfloat16", "float32", "float64")
COMPLEX = ("complex64", "complex128")
TARGET = {"float": "float32", "double": "float64", "half": "float16", "bfloat16": "bfloat16"}


def run_convert(case):
    """{"dtypes": dtype after, "same": same object as before} per entry, or the documented error."""
    if case.method.startswith("to:"):
        target = case.method[3:]
        if target not in FLOATS + COMPLEX:
            return Raised("TypeError", "nn.Module.to only accepts floating point or complex dtypes")
        convertible = FLOATS + COMPLEX
    else:
        target, convertible = TARGET[case.method], FLOATS
    dtypes = [target if dtype in convertible else dtype for _, dtype in case.entries]
    return {"dtypes": dtypes, "same": [kind == "param" or new == dtype
                                       for (kind, dtype), new in zip(case.entries, dtypes)]}


def expectations(case) -> list[Expect]:
    """A ConvertCase: the dtypes under the method's rule (the error of to() included), the identities under
    CONVERT_IDENTITY where the conversion happens."""
    expected = run_convert(case)
    rule_id = CONVERT_TO_DTYPE if case.method.startswith("to:") else CONVERT_FLOAT_METHODS
    if isinstance(expected, Raised):
        return [Expect(rule_id, expected)]
    return [Expect(rule_id, expected["dtypes"], key="dtypes"), Expect(CONVERT_IDENTITY, expected["same"], key="same")]


# ---- values and gradients ------------------------------------------------------------
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

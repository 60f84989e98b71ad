"""dtype conversion rules of Module.float/double/half/bfloat16/to against reference/module/convert.py.
bfloat16/float16 tensors are only created and cast (supported on CPU and accelerators)."""
from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from reference.module import convert as ref
from suite.module.cases import ConvertCase, GradCase, ValueCase, value_inputs
from suite.module.strategies import DTYPES
from suite.module.torch_side.convert import run_convert, run_convert_values, run_zero_grad


METHODS = ["float", "double", "half", "bfloat16", "to:float64", "to:float16", "to:complex128", "to:int64",
           "to:float32", "type:float64", "type:float16", "to_empty", "share_memory", "cpu"]


@st.composite
def convert_cases(draw):
    method = draw(st.sampled_from(METHODS))
    # the future flags' documented scope: the dtype/device methods (share_memory is not among them)
    future = draw(st.sampled_from(["", "overwrite", "swap"])) if method != "share_memory" else ""
    return ConvertCase(draw(st.lists(st.tuples(st.sampled_from(["param", "buffer"]), DTYPES), min_size=1,
                                     max_size=4).map(tuple)), method, draw(st.booleans()), future, draw(st.booleans()))


@pytest.mark.rules(ref.CONVERT_FLOAT_METHODS, ref.CONVERT_TO_DTYPE, ref.CONVERT_IDENTITY, ref.CONVERT_TYPE,
                   ref.CONVERT_GRADS)
@given(case=convert_cases())
# the flags and grads through every branch of Module._apply (set_data, overwrite, swap; a grad of each)
@example(case=ConvertCase((("param", "float32"), ("buffer", "float32"), ("param", "int64")), "double", True,
                          "overwrite", True))
@example(case=ConvertCase((("param", "float32"), ("buffer", "int64"), ("param", "float16")), "half", False, "swap",
                          True))
@example(case=ConvertCase((("param", "float32"), ("buffer", "float32")), "to_empty", False, "", True))
@example(case=ConvertCase((("param", "float32"), ("buffer", "bool")), "type:float64", False, "", True))
@example(case=ConvertCase((("param", "float32"), ("buffer", "float32")), "share_memory"))
@example(case=ConvertCase((("param", "float32"), ("buffer", "int64")), "cpu", True))
def test_conversion(conform, device, case):
    conform.check(case, ref.expectations(case, device), run=run_convert)


@pytest.mark.rules(ref.CONVERT_VALUES)
@given(case=st.one_of(
    st.builds(ValueCase, st.integers(0, 2**16), st.just("float32"), st.sampled_from(["float", "double", "half",
                                                                                    "bfloat16"])),
    st.builds(ValueCase, st.integers(0, 2**16), st.just("float64"), st.sampled_from(["float", "double"]))))
def test_conversion_values(conform, device, case):
    # Rounding is exact arithmetic: the reference rounds the same source values (round to nearest even),
    # so the comparison is exact.  half/bfloat16 only from float32 sources (float64 -> 16-bit may round twice).
    conform.check(case, ref.values_expectations(case, value_inputs(case)), run=run_convert_values)


@pytest.mark.rules(ref.ZERO_GRAD)
@given(case=st.builds(GradCase, st.integers(1, 3), st.lists(st.integers(0, 2), max_size=2, unique=True).map(tuple),
                      st.sampled_from([True, False, None]), st.booleans(), st.booleans()))
def test_zero_grad(conform, device, case):
    conform.check(case, ref.zero_grad_expectations(case), run=run_zero_grad)

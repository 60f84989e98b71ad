"""dtype conversion rules of Module.float/double/half/bfloat16/to against reference/module/convert.py.
bfloat16/float16 tensors are only created and cast (supported on CPU and accelerators)."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference.module import convert as ref
from suite.module.convert_torch import (ConvertCase, GradCase, ValueCase, run_convert, run_convert_identity,
                                        run_convert_values, run_zero_grad, value_inputs)

DTYPES = st.sampled_from(["float16", "bfloat16", "float32", "float64", "complex64", "int64", "int32", "bool"])


@pytest.mark.rules(ref.CONVERT_FLOAT_METHODS, ref.CONVERT_TO_DTYPE, ref.CONVERT_IDENTITY)
@given(case=st.builds(ConvertCase, st.lists(st.tuples(st.sampled_from(["param", "buffer"]), DTYPES), min_size=1,
                                            max_size=4).map(tuple),
                      st.sampled_from(["float", "double", "half", "bfloat16", "to:float64", "to:float16",
                                       "to:complex128", "to:int64", "to:float32"]),
                      st.booleans()))
def test_conversion(conform, device, case):
    expected, actual = ref.run_convert(case), run_convert(case, device)
    conform.check(ref.convert_rule(case), case, expected, actual, torch_fn=run_convert)
    if isinstance(expected, list) and isinstance(actual, list):
        conform.check(ref.CONVERT_IDENTITY, case, [e[1] for e in expected], [a[1] for a in actual],
                      torch_fn=run_convert_identity)


@pytest.mark.rules(ref.CONVERT_VALUES)
@given(case=st.one_of(
    st.builds(ValueCase, st.integers(0, 2**16), st.just("float32"), st.sampled_from(["float", "double", "half",
                                                                                    "bfloat16"])),
    st.builds(ValueCase, st.integers(0, 2**16), st.just("float64"), st.sampled_from(["float", "double"]))))
def test_conversion_values(conform, device, case):
    # Rounding is exact arithmetic: the reference rounds the same source values (round to nearest even),
    # so the comparison is exact.  half/bfloat16 only from float32 sources (float64 -> 16-bit may round twice).
    expected = ref.convert_values(case, value_inputs(case))
    conform.check(ref.CONVERT_VALUES, case, expected, run_convert_values(case, device), torch_fn=run_convert_values)


@pytest.mark.rules(ref.ZERO_GRAD)
@given(case=st.builds(GradCase, st.integers(1, 3), st.lists(st.integers(0, 2), max_size=2, unique=True).map(tuple),
                      st.sampled_from([True, False, None]), st.booleans(), st.booleans()))
def test_zero_grad(conform, device, case):
    conform.check(ref.ZERO_GRAD, case, ref.zero_grad(case), run_zero_grad(case, device), torch_fn=run_zero_grad)

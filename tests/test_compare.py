"""The shared comparison helper and its derived tolerances."""
import numpy as np
import pytest

from conform.outcome import Raised, compare
from conform.tolerance import EPS, EXACT, tolerance


def test_exact_scalars_and_types():
    assert compare(1, 1) == []
    assert compare("a", "b")
    assert compare(True, 1), "bool is not an int for conformance purposes"
    assert compare(None, 0)
    assert compare(1.0, 1.0 + 1e-12), "EXACT tolerates nothing"


def test_complex_arrays_compare_both_parts():
    e = np.array([1 + 2j, 3 - 1j], dtype=np.complex64)
    assert compare(e, e.astype(np.complex128)) == []
    [m] = compare(e, np.array([1 + 2j, 3 + 1j]))  # only the imaginary part differs
    assert m.path.startswith("[1]")
    assert compare(np.array([1.0, 2.0]), np.array([1 + 0j, 2 + 0j])) == []
    assert compare(np.array([1.0, 2.0]), np.array([1 + 1e-3j, 2 + 0j]))
    assert compare(np.array([np.nan + 1j]), np.array([np.nan + 1j])) == []


def test_dict_keys_compare_in_order():
    assert compare({"a": 1, "b": 2}, {"a": 1, "b": 2}) == []
    [m] = compare({"a": 1, "b": 2}, {"b": 2, "a": 1})
    assert m.path == ".keys()"


def test_sequences_compare_length_then_elements():
    assert compare([1, 2], (1, 2)) == []
    assert compare([1, 2], [1, 2, 3])
    [m] = compare([1, [2, 3]], [1, [2, 4]], rule="r")
    assert m.path == "[1][1]" and m.rule == "r"


def test_arrays_shape_nan_inf_and_tolerance():
    tol = tolerance("float32", ops=1)
    e = np.array([1.0, np.nan, np.inf, -np.inf])
    assert compare(e, e.copy(), tol) == []
    assert compare(e, np.array([1.0, 0.0, np.inf, -np.inf]), tol), "NaN only matches NaN"
    assert compare(e, np.array([1.0, np.nan, -np.inf, -np.inf]), tol), "infinities must match exactly"
    assert compare(np.zeros((2, 3)), np.zeros((3, 2)), tol)[0].path == ".shape"
    near = np.array([1.0 + 0.5 * tol.rtol])
    far = np.array([1.0 + 4 * tol.rtol])
    assert compare(np.array([1.0]), near, tol) == []
    [m] = compare(np.array([1.0]), far, tol)
    assert "1 of 1 elements differ" in m.path


def test_integer_arrays_compare_exactly():
    assert compare(np.array([1, 2]), np.array([1, 2])) == []
    assert compare(np.array([1, 2]), np.array([1, 3]))


def test_tolerance_is_derived_and_monotone():
    t32 = tolerance("float32", ops=2)
    assert t32.rtol == pytest.approx(2 * EPS["float32"] * 2)
    assert tolerance("torch.float32", ops=2) == t32
    assert tolerance("float16").rtol > tolerance("float32").rtol > tolerance("float64").rtol
    assert tolerance("float32", reduction=100).rtol > tolerance("float32", reduction=10).rtol
    assert tolerance("float32", cond=10).rtol == pytest.approx(10 * tolerance("float32").rtol)
    assert tolerance("float32", scale=5).atol == pytest.approx(5 * tolerance("float32").rtol)
    assert str(EXACT).startswith("rtol=0")


def test_raised_matches_type_alternatives_and_message_regex():
    actual = Raised("KeyError", "attribute 'w' already exists")
    assert compare(Raised("KeyError"), actual) == []
    assert compare(Raised("TypeError|KeyError", r"already exists"), actual) == []
    assert compare(Raised("KeyError", r"^nope"), actual)
    assert compare(Raised("TypeError"), actual)
    assert compare(Raised("KeyError"), 3), "a value where an error was expected"
    assert compare(3, actual), "an error where a value was expected"


def test_a_tiny_result_rounded_to_zero_in_its_dtype_conforms():
    """Found by a fuzzing campaign: BatchNorm1d float16's running_var of 1.4e-8 is stored as 0.0, the
    correctly rounded float16 value (below half the smallest subnormal, 2**-25)."""
    import numpy as np

    tol = tolerance("float16", cond=1.0, scale=1e-8)
    assert compare(np.array([1.403e-8]), np.array([0.0]), tol) == []
    assert compare(np.array([1e-6]), np.array([0.0]), tol), "a real error above the rounding floor still fails"

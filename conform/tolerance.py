"""Tolerances: every one in the project is derived here, once.

A tolerance follows from the dtype's unit roundoff, the number of rounded
operations that feed one output element, the longest reduction, and a
conditioning factor the caller states (see ``tolerance``).  Nothing else in the
project may invent one; each area keeps its derivations in one home
(``reference/<area>/tolerances.py`` or the area's reference module), all through
``tolerance()``.

Imports only the standard library: the repro writer embeds it.
"""
from __future__ import annotations

from dataclasses import dataclass

# Unit roundoff (machine epsilon / 2 is the rounding error of one op; we use
# the spacing at 1.0, which is the conventional, slightly safer "eps").
EPS = {
    "float64": 2.0**-52,
    "float32": 2.0**-23,
    "float16": 2.0**-10,
    "bfloat16": 2.0**-7,
}


# Half the smallest positive subnormal: the largest error of rounding a tiny result to the dtype (a
# float16 result of 1.4e-8 is stored as 0.0, correctly rounded).  Near zero the relative bound says
# nothing, so every derived tolerance carries this absolute floor.
TINY = {
    "float64": 2.0**-1075,
    "float32": 2.0**-150,
    "float16": 2.0**-25,
    "bfloat16": 2.0**-134,
}


@dataclass(frozen=True)
class Tol:
    """|actual - expected| <= atol + rtol * |expected|, elementwise."""

    rtol: float = 0.0
    atol: float = 0.0
    why: str = "exact"

    def __str__(self) -> str:
        return f"rtol={self.rtol:.3g} atol={self.atol:.3g} ({self.why})"


EXACT = Tol()


def tolerance(dtype: str, ops: int = 1, reduction: int = 1, cond: float = 1.0, scale: float = 1.0) -> Tol:
    """Forward-error bound for a result computed in ``dtype`` from inputs that are
    exactly representable in ``dtype`` (the reference sees the same rounded inputs,
    in float64).

    - ``ops``: rounded elementwise operations on the path to one output element
      (each contributes at most one unit roundoff);
    - ``reduction``: length of the longest sum feeding it; we take the worst case
      of recursive summation, ``(n - 1) * eps`` relative to the sum of magnitudes,
      because backends are free to pick any summation order (tree, atomics, Welford);
    - ``cond``: the caller's bound on the condition number of the computation
      (e.g. 1/sqrt(var + eps) growth in normalization, exp growth in softmax);
    - ``scale``: magnitude of the summed terms, which turns the relative bound on
      a sum of magnitudes into an absolute one for results that cancel to ~0.

    A factor of 2 covers the final rounding of the output and of the float64
    reference itself; near zero that final rounding is absolute, at most half the
    smallest subnormal (``TINY``), which the absolute part carries.  The bound is
    deliberately the rigorous worst case: a planted kernel bug (a wrong divisor, a dropped term, a swapped mask) shows
    up at O(1/n) relative error or larger, orders of magnitude above it.
    """
    dtype = str(dtype).replace("torch.", "")
    eps = EPS[dtype]
    rtol = 2.0 * eps * (ops + max(reduction - 1, 0)) * cond
    return Tol(rtol=rtol, atol=rtol * scale + TINY[dtype], why=f"{dtype}, ops={ops}, n={reduction}, cond={cond:.3g}")



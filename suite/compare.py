"""The one comparison helper: plain outcomes in, ``Mismatch`` records out.

Every tolerance in the suite is derived here, once, from the dtype's unit
roundoff, the number of rounded operations that feed one output element and a
conditioning factor the caller states (see ``tolerance``).  Nothing else in the
project may invent a tolerance.

This module imports only the standard library and numpy: the repro writer
embeds its source in standalone scripts.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Unit roundoff (machine epsilon / 2 is the rounding error of one op; we use
# the spacing at 1.0, which is the conventional, slightly safer "eps").
EPS = {
    "float64": 2.0**-52,
    "float32": 2.0**-23,
    "float16": 2.0**-10,
    "bfloat16": 2.0**-7,
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
    reference itself.  The bound is deliberately the rigorous worst case: a
    planted kernel bug (a wrong divisor, a dropped term, a swapped mask) shows
    up at O(1/n) relative error or larger, orders of magnitude above it.
    """
    dtype = str(dtype).replace("torch.", "")
    eps = EPS[dtype]
    rtol = 2.0 * eps * (ops + max(reduction - 1, 0)) * cond
    return Tol(rtol=rtol, atol=rtol * scale, why=f"{dtype}, ops={ops}, n={reduction}, cond={cond:.3g}")


@dataclass(frozen=True)
class Raised:
    """An exception as an outcome.  Expected errors match on the type name
    (any of ``type`` separated by '|') and, where a rule says so, a message regex."""

    type: str
    message: str | None = None  # actual message (actual side) or regex (expected side)

    def matches(self, actual: "Raised") -> bool:
        if actual.type not in self.type.split("|"):
            return False
        if self.message is None:
            return True
        return re.search(self.message, actual.message or "") is not None


@dataclass(frozen=True)
class Mismatch:
    path: str
    expected: Any
    actual: Any
    tolerance: str
    rule: str

    def __str__(self) -> str:
        return f"{self.rule} at {self.path or '<root>'}: expected {_short(self.expected)}, got {_short(self.actual)} [{self.tolerance}]"


def _short(value: Any, limit: int = 300) -> str:
    if isinstance(value, np.ndarray):
        with np.printoptions(precision=8, threshold=20, edgeitems=3):
            text = f"array{value.shape}={value!r}"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def compare(expected: Any, actual: Any, tol: Tol = EXACT, rule: str = "", path: str = "") -> list[Mismatch]:
    """Structural diff.  Dicts compare keys *in order*, sequences by length then
    element; floats and arrays within ``tol`` (NaN matches NaN, infinities must
    match exactly); everything else by ``==``."""
    out: list[Mismatch] = []
    _diff(expected, actual, tol, rule, path, out)
    return out


def _diff(e: Any, a: Any, tol: Tol, rule: str, path: str, out: list[Mismatch]) -> None:
    def miss(exp: Any = e, act: Any = a, p: str = path, t: Tol = EXACT) -> None:
        out.append(Mismatch(p, exp, act, str(t), rule))

    if isinstance(e, Raised):
        if not (isinstance(a, Raised) and e.matches(a)):
            miss()
        return
    if isinstance(a, Raised):
        miss()
        return
    if isinstance(e, dict):
        if not isinstance(a, dict):
            miss()
            return
        if list(e) != list(a):
            miss(list(e), list(a), path + ".keys()")
            return
        for key in e:
            _diff(e[key], a[key], tol, rule, f"{path}[{key!r}]", out)
        return
    if isinstance(e, (list, tuple)):
        if not isinstance(a, (list, tuple)) or len(e) != len(a):
            miss()
            return
        for i, (ei, ai) in enumerate(zip(e, a)):
            _diff(ei, ai, tol, rule, f"{path}[{i}]", out)
        return
    if isinstance(e, np.ndarray) or isinstance(a, np.ndarray):
        ea, aa = np.asarray(e), np.asarray(a)
        if ea.shape != aa.shape:
            miss(f"shape {ea.shape}", f"shape {aa.shape}", path + ".shape")
            return
        if ea.dtype.kind in "fc" or aa.dtype.kind in "fc":
            bad = ~_close(ea.astype(np.float64), aa.astype(np.float64), tol)
            if bad.any():
                idx = tuple(int(i) for i in np.argwhere(bad)[0])
                miss(ea, aa, f"{path}{list(idx)} ({int(bad.sum())} of {bad.size} elements differ; first: "
                     f"expected {ea[idx]!r}, got {aa[idx]!r})", tol)
        elif not np.array_equal(ea, aa):
            miss()
        return
    if isinstance(e, float) and not isinstance(a, bool) and isinstance(a, (int, float)):
        if not _close(np.float64(e), np.float64(a), tol):
            miss(t=tol)
        return
    if type(e) is not type(a) and not (isinstance(e, (int, float)) and isinstance(a, (int, float)) and not isinstance(e, bool) and not isinstance(a, bool)):
        miss()
        return
    if e != a:
        miss()


def _close(e: np.ndarray, a: np.ndarray, tol: Tol) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):
        both_nan = np.isnan(e) & np.isnan(a)
        same_inf = np.isinf(e) & (e == a)
        finite = np.isfinite(e) & np.isfinite(a)
        within = np.zeros(np.shape(e), dtype=bool)
        within[...] = finite & (np.abs(a - e) <= tol.atol + tol.rtol * np.abs(e))
    return both_nan | same_inf | within

"""Outcomes and the one comparison: plain outcomes in, ``Mismatch`` records out.

An outcome is a plain value (numbers, numpy arrays, containers), an exception
as ``Raised``, or an accepted set of outcomes (``OneOf``).  ``compare`` is the
only place two outcomes are compared; tolerances come from ``conform.tolerance``.

This module imports only the standard library, numpy and ``conform.tolerance``:
the repro writer embeds its source in standalone scripts.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conform.tolerance import EXACT, Tol


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

    @classmethod
    def from_exception(cls, exc: BaseException) -> "Raised":
        """The actual side of an exception: its type name and message."""
        return cls(type(exc).__name__, str(exc))


@dataclass(frozen=True)
class OneOf:
    """An expected outcome that documentation leaves open: any one of ``options`` conforms
    (e.g. a fused SDPA backend may refuse an input, or give the formula's result)."""

    options: tuple

    def __init__(self, *options: Any) -> None:
        object.__setattr__(self, "options", tuple(options))


@dataclass(frozen=True)
class Finite:
    """An expected outcome whose values are unspecified but checkable: a float array of this
    shape whose every element is finite."""

    shape: tuple


@dataclass(frozen=True)
class Mismatch:
    path: str
    expected: Any
    actual: Any
    tolerance: str
    rule: str

    def to_dict(self) -> dict:
        """The record form: every field as short text, for results.json and the report."""
        return {"rule": self.rule, "path": self.path or "<root>", "expected": _short(self.expected),
                "actual": _short(self.actual), "tolerance": self.tolerance}

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

    if isinstance(e, OneOf):
        if not any(not compare(option, a, tol, rule, path) for option in e.options):
            miss()
        return
    if isinstance(e, Finite):
        arr = None if isinstance(a, Raised) else np.asarray(a)
        if arr is None or arr.dtype.kind not in "fc" or arr.shape != tuple(e.shape) or not np.isfinite(arr).all():
            miss()
        return
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
        if ea.dtype.kind == "c" or aa.dtype.kind == "c":
            # complex: the real and the imaginary parts, each within the tolerance (a cast to float would drop
            # the imaginary part)
            ec, ac = ea.astype(np.complex128), aa.astype(np.complex128)
            bad = ~(_close(ec.real, ac.real, tol) & _close(ec.imag, ac.imag, tol))
        elif ea.dtype.kind == "f" or aa.dtype.kind == "f":
            bad = ~_close(ea.astype(np.float64), aa.astype(np.float64), tol)
        else:
            bad = None
        if bad is not None:
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

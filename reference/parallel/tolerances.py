"""The parallel area's tolerances, all derived through ``conform.tolerance.tolerance``.

Everything else in the area is compared exactly: scattered and gathered values are copies of exact
inputs, and every DataParallel result but the running mean is a sum of small integers (far below 2**11:
exact in float32 and TF32, whatever the kernels and the reduction order across replicas).
"""
from __future__ import annotations

from conform.tolerance import Tol, tolerance


def running_mean_tol(first_chunk_rows: int) -> Tol:
    """running_mean = momentum * mean(chunk) + (1 - momentum) * 0: a mean of ``first_chunk_rows`` exact
    integers (one reduction of that length), a division and a multiply by momentum (ops=3); the BN kernel
    may use Welford, whose error is bounded the same way relative to the magnitudes (scale: |y| <= 2*4*3+1
    = 25)."""
    return tolerance("float32", ops=3, reduction=first_chunk_rows, scale=25.0)

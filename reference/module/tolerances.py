"""The module area's tolerances, all derived through ``conform.tolerance.tolerance``.

Everything else in the area is compared exactly: labels, keys, dtypes, exact
integer arithmetic, and rounding that the reference performs itself.
"""
from __future__ import annotations

from conform.tolerance import tolerance

# Full backward hooks (reference/module/hooks.py: run_backward), float64: x @ W.T and its gradients are sums of
# at most n_in/n_out/batch (<= 3) products, scaled by exact small integers; |values| are O(1) randn draws, so
# scale ~ n * 4^2 covers cancellation.
BACKWARD_TOL = tolerance("float64", ops=2, reduction=3, scale=50.0)

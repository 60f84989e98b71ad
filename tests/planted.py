"""A deliberately planted divergence: the self-tests' stand-in for a torch bug.

The "reference" says adding two tensors adds one more; torch (correctly) does
not, so every check of ``module.selftest.planted`` fails and must yield a repro
that reproduces.  The torch side lives in ``tests/planted_torch.py``, which, like
every torch-side module, imports no reference code.
"""
from __future__ import annotations

from conform.rules import rule

PLANTED = rule("module.selftest.planted", "a + b == a + b + 1 (a planted, false rule)", "tests/planted.py")


def reference_add(case) -> float:
    return case.a + case.b + 1.0

# A second rule the same planted behaviour affects (the registry's also_rules).
PLANTED_TOO = rule("module.selftest.planted_too", "the planted rule, seen through another check", "tests/planted.py")

HONEST = rule("module.selftest.honest", "a + b == a + b (a true rule)", "tests/planted.py")


def reference_add_honest(case) -> float:
    return case.a + case.b

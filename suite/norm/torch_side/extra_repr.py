"""Runner of reference/norm/extra_repr.py: build a norm layer and print it."""
from __future__ import annotations

import torch

from suite.norm.cases import ReprCase


def run_repr(case: ReprCase, device: str) -> dict:
    sizes = [list(s) if isinstance(s, tuple) else s for s in case.sizes]  # a shape as the list users pass
    m = getattr(torch.nn, case.kind)(*sizes, **dict(case.options))
    return {"extra_repr": m.extra_repr(), "repr": repr(m)}

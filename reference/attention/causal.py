"""Causal masks: Transformer.generate_square_subsequent_mask, _detect_is_causal_mask, and the is_causal
hint of MultiheadAttention."""
from __future__ import annotations

import numpy as np

from conform.expect import Expect
from conform.rules import rule
from reference.attention.masks import T_ACT, T_MHAF

T_TR = "torch/nn/modules/transformer.py"

CAUSAL_GEN = rule("attention.causal.generate_square_subsequent_mask",
                  "generate_square_subsequent_mask(sz) is (sz, sz) of the requested dtype: 0 on and below the "
                  "diagonal, -inf above.", T_TR + ": Transformer.generate_square_subsequent_mask")
CAUSAL_DETECT = rule("attention.causal.detect",
                     "_detect_is_causal_mask returns a given hint as is; with hint None it is True iff the mask equals "
                     "the square subsequent mask of the given size (or the mask's size).", T_TR + ": _detect_is_causal_mask")
CAUSAL_HINT_NEEDS_MASK = rule("attention.causal.mha_hint_requires_mask",
                              "MultiheadAttention is_causal=True without attn_mask raises RuntimeError.", T_MHAF)
CAUSAL_HINT = rule("attention.causal.mha_hint_with_causal_mask",
                   "is_causal=True together with the causal attn_mask gives the result of the mask alone.", T_ACT + ".forward")


def square_subsequent_mask(case) -> dict:
    n = case.size
    vals = np.where(np.triu(np.ones((n, n), dtype=bool), k=1), -np.inf, 0.0)
    return {"dtype": case.dtype, "values": vals}


def detect_causal(case) -> bool:
    """A hint is returned as is; otherwise the mask must equal, elementwise and with the same
    size, the square subsequent mask generated in the mask's own dtype (for bool: True above
    the diagonal, which is the MultiheadAttention causal mask)."""
    if case.hint is not None:
        return case.hint
    if case.mask in ("none", "other", "batched_causal"):
        return False  # no mask; a different mask; (2, n, n) never has the comparison's (n, n) size
    size = case.check_size if case.check_size is not None else case.size
    return size == case.size


def mask_expectations(case) -> list[Expect]:
    return [Expect(CAUSAL_GEN, square_subsequent_mask(case))]


def detect_expectations(case) -> list[Expect]:
    return [Expect(CAUSAL_DETECT, detect_causal(case))]

"""Transformer.generate_square_subsequent_mask and _detect_is_causal_mask."""
from __future__ import annotations

import torch

from suite.attention.cases import DTYPES, CausalCase
from suite.attention.torch_side.common import outcome


@outcome
def run_causal_mask(case: CausalCase, device: str):
    m = torch.nn.Transformer.generate_square_subsequent_mask(case.size, device=device, dtype=DTYPES[case.dtype])
    return {"dtype": str(m.dtype).replace("torch.", ""), "values": m.to(torch.float64).cpu().numpy()}


def _causal_input(case: CausalCase, device: str) -> torch.Tensor | None:
    n = case.size
    if case.mask == "none":
        return None
    full = torch.triu(torch.full((n, n), float("-inf"), dtype=DTYPES[case.dtype]), diagonal=1)
    if case.mask == "causal_bool":
        full = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
    elif case.mask == "other":
        full = full.clone()
        if n > 1:
            full[-1, 0] = float("-inf")
        else:
            full[0, 0] = float("-inf")
    elif case.mask == "batched_causal":
        full = full.expand(2, n, n)
    return full.to(device)


@outcome
def run_detect_causal(case: CausalCase, device: str):
    from torch.nn.modules.transformer import _detect_is_causal_mask

    return _detect_is_causal_mask(_causal_input(case, device), case.hint, case.check_size)

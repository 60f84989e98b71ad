"""Torch side of the RNG primitives the samplers and the DataLoader consume."""
from __future__ import annotations

import torch

from suite.data.cases import RngCase


def u64(generator: torch.Generator | None) -> int:
    """One int64 draw, the primitive the DataLoader and RandomSampler use for seeds."""
    return int(torch.empty((), dtype=torch.int64).random_(generator=generator).item())


def run_rng(case: RngCase, device: str) -> dict:
    """{"out": the op's draws, "next": the generator's next int64 draw}."""
    g = torch.Generator().manual_seed(case.seed)
    if case.op == "randperm":
        out = torch.randperm(case.n, generator=g).tolist()
    elif case.op == "randint":
        out = torch.randint(case.n, (case.size,), generator=g).tolist()
    elif case.op == "random64":
        out = [u64(g) for _ in range(case.size)]
    else:
        w = torch.tensor(case.weights, dtype=torch.float64)
        out = torch.multinomial(w, case.size, case.replacement, generator=g).tolist()
    return {"out": out, "next": u64(g)}

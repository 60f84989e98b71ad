"""nn.MultiheadAttention: construction, parameters and forward on the slow and the fast path."""
from __future__ import annotations

import contextlib
import warnings

import torch

from suite.attention.cases import DTYPES, MhaCase, MhaCtorCase, mha_inputs
from suite.attention.torch_side.common import mask_tensor, outcome


def build_mha(case: MhaCase, device: str) -> torch.nn.MultiheadAttention:
    dt = DTYPES[case.dtype]
    m = torch.nn.MultiheadAttention(case.E, case.H, dropout=case.dropout, bias=case.bias, add_bias_kv=case.add_bias_kv,
                                    add_zero_attn=case.add_zero_attn, kdim=case.kdim, vdim=case.vdim,
                                    batch_first=case.batch_first, dtype=dt)
    params = mha_inputs(case)["params"]
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.copy_(torch.from_numpy(params[name]).to(dt))
    return m.to(device)


def _forward(case: MhaCase, device: str) -> tuple[dict, list[str]]:
    """({"out", "weights", "fast_path"}, the deprecation warnings seen).  The fast path is observed by
    counting calls of torch._native_multi_head_attention (its kernel), without changing it."""
    inp = mha_inputs(case)
    dt = DTYPES[case.dtype]
    m = build_mha(case, device)
    q = torch.from_numpy(inp["query"]).to(dt).to(device)
    if case.self_attention:
        k = v = q
    else:
        k = torch.from_numpy(inp["key"]).to(dt).to(device)
        v = torch.from_numpy(inp["value"]).to(dt).to(device)
    am = mask_tensor(case.attn_mask.kind, inp["attn_masked"], inp.get("attn_mask_add"), dt, device)
    kpm = mask_tensor(case.kpm.kind, inp["kpm_masked"], inp.get("kpm_add"), dt, device)
    original, calls = torch._native_multi_head_attention, []

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    if case.path == "slow":
        m.train()  # dropout is 0.0 on this path, so training mode only disables the fast path
        ctx = contextlib.nullcontext()
    else:
        m.eval()
        ctx = torch.no_grad() if case.path == "eval_nograd" else contextlib.nullcontext()
    torch._native_multi_head_attention = counted
    try:
        with warnings.catch_warnings(record=True) as caught, ctx:
            warnings.simplefilter("always")
            out, w = m(q, k, v, key_padding_mask=kpm, need_weights=case.need_weights, attn_mask=am,
                       average_attn_weights=case.average_attn_weights, is_causal=case.is_causal)
    finally:
        torch._native_multi_head_attention = original
    result = {"out": out.detach().to(torch.float64).cpu().numpy(),
              "weights": None if w is None else w.detach().to(torch.float64).cpu().numpy()}
    return {"outputs": result, "fast_path": bool(calls)}, [str(x.message) for x in caught if "deprecated" in str(x.message)]


@outcome
def run_mha(case: MhaCase, device: str):
    """{"outputs": {"out", "weights"}, "fast_path": the fused kernel ran}, or Raised."""
    return _forward(case, device)[0]


@outcome
def run_mha_mask_warnings(case: MhaCase, device: str):
    """{"out", "warnings": the deprecation warnings emitted}, or Raised."""
    result, caught = _forward(case, device)
    return {"out": result["outputs"]["out"], "warnings": caught}


@outcome
def run_mha_parameters(case: MhaCase, device: str):
    m = build_mha(case, device)
    return [(n, tuple(p.shape)) for n, p in m.named_parameters()]


@outcome
def run_mha_constructor(case: MhaCtorCase, device: str):
    m = torch.nn.MultiheadAttention(case.embed_dim, case.num_heads, device=device)
    return {"head_dim": m.head_dim}

"""torch.nn.functional.multi_head_attention_forward called directly (static_k/static_v, broken arguments)."""
from __future__ import annotations

import torch

from suite.attention.cases import MhaFunctionalCase, mha_functional_inputs
from suite.attention.torch_side.common import outcome


def _arguments(case: MhaFunctionalCase, device: str) -> tuple[tuple, dict]:
    """The positional and keyword arguments of the call, with ``case.which``'s argument broken."""
    inp = mha_functional_inputs(case)
    t = {name: torch.from_numpy(value).float().to(device) for name, value in inp["params"].items()}
    q, k, v = (torch.from_numpy(inp[n]).float().to(device) for n in ("query", "key", "value"))
    E, which = case.E, case.which
    w_q, w_k, w_v = t["in_proj_weight"].chunk(3)
    bias_kv = torch.zeros(1, 1, E, device=device)
    kw = dict(training=False, need_weights=case.need_weights,
              static_k=torch.from_numpy(inp["static_k"]).float().to(device) if case.static_k else None,
              static_v=torch.from_numpy(inp["static_v"]).float().to(device) if case.static_v else None)
    in_w, in_b = t["in_proj_weight"], t["in_proj_bias"]
    bias_k = bias_v = None
    if which.startswith("separate") or which in ("q_weight_shape", "in_bias_long", "in_bias_short"):
        kw.update(use_separate_proj_weight=True, q_proj_weight=w_q, k_proj_weight=w_k, v_proj_weight=w_v)
        kw.update({"separate_no_q": dict(q_proj_weight=None), "separate_no_k": dict(k_proj_weight=None),
                   "separate_no_v": dict(v_proj_weight=None),
                   "q_weight_shape": dict(q_proj_weight=torch.zeros(E, E + 1, device=device))}.get(which, {}))
        in_b = {"in_bias_long": torch.zeros(3 * E + 3, device=device),
                "in_bias_short": torch.zeros(3 * E - 1, device=device)}.get(which, in_b)
    elif which == "packed_none":
        in_w = None
    if which in ("bias_k_static", "bias_v_static", "bias_k_only"):
        bias_k = bias_kv
    if which in ("bias_k_static", "bias_v_static", "bias_v_only"):
        bias_v = bias_kv
    n = max(case.batch, 1) * case.H
    bad_static = {"static_k_batch": ("static_k", (n + 1, case.S, E // case.H)),
                  "static_k_dim": ("static_k", (n, case.S, E // case.H + 1)),
                  "static_v_batch": ("static_v", (n + 1, case.S, E // case.H)),
                  "static_v_dim": ("static_v", (n, case.S, E // case.H + 1)),
                  "bias_k_static": ("static_k", (n, case.S, E // case.H)),
                  "bias_v_static": ("static_v", (n, case.S, E // case.H))}
    if which in bad_static:
        name, shape = bad_static[which]
        kw[name] = torch.zeros(shape, device=device)
    heads = 3 if which == "heads_indivisible" else case.H
    args = (q, k, v, E, heads, in_w, in_b, bias_k, bias_v, case.add_zero_attn, 0.0,
            t["out_proj.weight"], t["out_proj.bias"])
    return args, kw


@outcome
def run_mha_functional(case: MhaFunctionalCase, device: str):
    """{"out", "weights"} of F.multi_head_attention_forward, or Raised."""
    args, kw = _arguments(case, device)
    with torch.no_grad():
        out, w = torch.nn.functional.multi_head_attention_forward(*args, **kw)
    return {"out": out.double().cpu().numpy(), "weights": None if w is None else w.double().cpu().numpy()}

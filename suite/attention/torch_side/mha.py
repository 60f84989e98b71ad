"""nn.MultiheadAttention: construction, parameters and forward on the slow and the fast path."""
from __future__ import annotations

import contextlib
import pickle
import warnings

import torch

from suite.attention.cases import DTYPES, MhaCase, MhaCtorCase, MhaInputErrorCase, mha_inputs
from suite.attention.torch_side.common import Passthrough, fastpath_enabled, mask_tensor, outcome


def build_mha(case: MhaCase, device: str) -> torch.nn.MultiheadAttention:
    dt = DTYPES[case.dtype]
    # each option passed only when it is not its documented default, so the defaults are what torch uses; kdim/vdim
    # as fresh int objects: "kdim == embed_dim" is equality, whether or not the caller's int is the same object
    options = {k: v for k, v in (("dropout", case.dropout), ("bias", case.bias), ("add_bias_kv", case.add_bias_kv),
                                 ("add_zero_attn", case.add_zero_attn), ("batch_first", case.batch_first))
               if v != {"dropout": 0.0, "bias": True}.get(k, False)}
    options.update({k: int(str(v)) for k, v in (("kdim", case.kdim), ("vdim", case.vdim)) if v is not None})
    m = torch.nn.MultiheadAttention(case.E, case.H, **options, dtype=dt)
    params = mha_inputs(case)["params"]
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.copy_(torch.from_numpy(params[name]).to(dt))
    if case.legacy:  # a checkpoint of v1.1.0: the attribute did not exist yet
        del m._qkv_same_embed_dim
        m = pickle.loads(pickle.dumps(m))
    return m.to(device)


def _forward(case: MhaCase, device: str) -> tuple[dict, list[str]]:
    """({"out", "weights", "fast_path"}, the deprecation warnings seen).  The fast path is observed by
    counting calls of torch._native_multi_head_attention (its kernel), without changing it."""
    inp = mha_inputs(case)
    dt = DTYPES[case.dtype]
    device = "meta" if case.meta else device
    m = build_mha(case, device)
    wrap = (lambda t: t.as_subclass(Passthrough)) if case.subclass else (lambda t: t)  # noqa: E731
    q = wrap(torch.from_numpy(inp["query"]).to(dt).to(device))
    if case.nested_lengths:
        q = torch.nested.nested_tensor([q[b, :n] for b, n in enumerate(case.nested_lengths)])
    if case.self_attention:
        k = v = q
    else:
        k = wrap(torch.from_numpy(inp["key"]).to(dt).to(device))
        v = wrap(torch.from_numpy(inp["value"]).to(dt).to(device))
    am = mask_tensor(case.attn_mask.kind, inp["attn_masked"], inp.get("attn_mask_add"), dt, device)
    kpm = mask_tensor(case.kpm.kind, inp["kpm_masked"], inp.get("kpm_add"), dt, device)
    original, calls = torch._native_multi_head_attention, []

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    if case.path == "slow":
        m.train()  # dropout is 0.0 (training mode only disables the fast path) or 1.0 (every weight dropped)
        ctx = contextlib.nullcontext()
    else:
        m.eval()
        m.requires_grad_(case.path != "eval_frozen")
        ctx = torch.no_grad() if case.path == "eval_nograd" else contextlib.nullcontext()
    torch._native_multi_head_attention = counted
    try:
        with warnings.catch_warnings(record=True) as caught, ctx, fastpath_enabled(case.fastpath):
            warnings.simplefilter("always")
            out, w = m(q, k, v, key_padding_mask=kpm, need_weights=case.need_weights, attn_mask=am,
                       average_attn_weights=case.average_attn_weights, is_causal=case.is_causal)
    finally:
        torch._native_multi_head_attention = original
    if case.meta:  # no data: the shapes
        result = {"out": tuple(out.shape), "weights": None if w is None else tuple(w.shape)}
        return {"outputs": result, "fast_path": bool(calls)}, []
    if out.is_nested:
        out = [t.to(torch.float64).cpu().numpy() for t in out.unbind()]
    else:
        out = out.detach().as_subclass(torch.Tensor).to(torch.float64).cpu().numpy()
    result = {"out": out,
              "weights": None if w is None else w.detach().as_subclass(torch.Tensor).to(torch.float64).cpu().numpy()}
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


@outcome
def run_mha_input_error(case: MhaInputErrorCase, device: str):
    """MultiheadAttention(4, 2) (kdim=3 / vdim=5 for the *_separate and *_self cases) on broken inputs."""
    kdim = 3 if case.which in ("key_features_separate", "kv_lengths_separate") else None
    vdim = 5 if case.which in ("value_features_self", "kv_lengths_separate") else None
    pdtype = torch.float64 if case.which.startswith("dtype") else torch.float32
    m = torch.nn.MultiheadAttention(4, 2, bias=case.which != "dtype_nobias", kdim=kdim, vdim=vdim,
                                    batch_first=case.batch_first, dtype=pdtype, device=device).eval()
    g = torch.Generator().manual_seed(0)

    def x(*shape):
        return torch.randn(shape, generator=g).to(device)

    q, k, v = {
        "batched_query_2d_kv": lambda: (x(3, 2, 4), x(5, 4), x(5, 4)),
        "unbatched_query_3d_kv": lambda: (x(3, 4), x(5, 2, 4), x(5, 2, 4)),
        "query_1d": lambda: (x(4), x(4), x(4)),
        "query_4d": lambda: (x(2, 3, 5, 4),) * 3,  # one tensor: self-attention, as the fast path wants
        "query_features": lambda: (x(3, 2, 5), x(5, 2, 4), x(5, 2, 4)),
        "kv_shapes": lambda: (x(3, 2, 4), x(5, 2, 4), x(6, 2, 4)),
        "kv_lengths_separate": lambda: (x(3, 2, 4), x(4, 2, 3), x(5, 2, 5)),
        "key_features_separate": lambda: (x(3, 2, 4), x(5, 2, 4), x(5, 2, 4)),
        "value_features_self": lambda: (x(2, 3, 4),) * 3,
        "dtype_bias": lambda: (x(2, 3, 4),) * 3,
        "dtype_nobias": lambda: (x(2, 3, 4),) * 3,
    }[case.which]()
    with torch.no_grad():
        m(q, k, v)
    return "no error"

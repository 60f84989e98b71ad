"""F.scaled_dot_product_attention, on a forced backend or by default dispatch."""
from __future__ import annotations

import contextlib
import warnings

import torch
import torch.nn.functional as F

from suite.attention.cases import DTYPES, SdpaCase, sdpa_inputs
from suite.attention.torch_side.common import mask_tensor, outcome

# The warnings a fused kernel emits when it cannot run an input (sdp_utils: "<kernel> not used because",
# then one warning per failed check); with a forced backend they must come with an error, never a result.
REFUSAL_WARNING = ("not used because", "can't be used because", "was not compiled with")


def _backend_ctx(backend: str):
    if backend == "default":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    names = {"math": "MATH", "flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION", "cudnn": "CUDNN_ATTENTION"}
    return sdpa_kernel(getattr(SDPBackend, names[backend]))


def available_backends(device: str) -> tuple[str, ...]:
    """SDPA backends this build offers on ``device`` (CPU: math and the CPU flash kernel)."""
    if device.split(":")[0] == "cuda":
        return ("default", "math", "flash", "efficient", "cudnn")
    return ("default", "math", "flash")


@outcome
def run_sdpa(case: SdpaCase, device: str):
    """{"out": the output, "refusal_warned": a kernel warned that it could not run the input}, or Raised."""
    inp = sdpa_inputs(case)
    dt = DTYPES[case.dtype]
    q, k, v = (torch.from_numpy(inp[n]).to(dt).to(device) for n in ("q", "k", "v"))
    mdt = DTYPES[case.mask_dtype] if case.mask_dtype else dt
    mask = mask_tensor(case.mask.kind, inp["masked"], inp.get("mask_add"), mdt, device,
                       attend_true=case.polarity == "sdpa")
    kwargs = {}
    if case.scale is not None:
        kwargs["scale"] = case.scale
    if case.enable_gqa:
        kwargs["enable_gqa"] = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _backend_ctx(case.backend):
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0,
                                                 is_causal=case.is_causal, **kwargs)
    warned = any(w in str(c.message) for c in caught for w in REFUSAL_WARNING)
    return {"out": out.to(torch.float64).cpu().numpy(), "refusal_warned": warned}


@outcome
def run_sdpa_mixed_dtypes(case: SdpaCase, device: str):
    """SDPA with a float64 key next to float32 query/value."""
    inp = sdpa_inputs(case)
    q, k, v = (torch.from_numpy(inp[n]).to(device) for n in ("q", "k", "v"))
    F.scaled_dot_product_attention(q.float(), k.double(), v.float())
    return "no error"

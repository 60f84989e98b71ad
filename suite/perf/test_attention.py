"""Attention hot paths: MultiheadAttention's fast and slow path, TransformerEncoder with and without
nested tensors, and scaled_dot_product_attention per available backend.

A fast-path benchmark first checks that the fast path really runs on this
build; otherwise it would time the slow path under the fast path's name.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn


def _mha():
    torch.manual_seed(0)
    return nn.MultiheadAttention(64, 4, batch_first=True), torch.randn(4, 32, 64)


def fast_path_calls(mha, *args, **kwargs) -> int:
    """How often one call reaches torch._native_multi_head_attention, the fused kernel that
    MultiheadAttention.forward calls only when ``why_not_fast_path`` is empty
    (torch/nn/modules/activation.py); counted by wrapping it for that one call."""
    original, calls = torch._native_multi_head_attention, []

    def counting(*a, **k):
        calls.append(1)
        return original(*a, **k)

    torch._native_multi_head_attention = counting
    try:
        mha(*args, **kwargs)
    finally:
        torch._native_multi_head_attention = original
    return len(calls)


@pytest.mark.benchmark(group="attention")
def test_mha_fast_path(benchmark):
    """Eval mode, inference mode, self-attention, need_weights=False: the native fused path."""
    mha, x = _mha()
    mha.eval()

    def call():
        with torch.inference_mode():
            return mha(x, x, x, need_weights=False)

    with torch.inference_mode():
        assert fast_path_calls(mha, x, x, x, need_weights=False) == 1, "the MHA fast path did not run"
    benchmark(call)


@pytest.mark.benchmark(group="attention")
def test_mha_slow_path(benchmark):
    """Training mode with autograd on and averaged weights requested: the Python path."""
    mha, x = _mha()
    mha.train()
    mha.dropout = 0.0

    def call():
        return mha(x, x, x, need_weights=True)

    assert fast_path_calls(mha, x, x, x, need_weights=True) == 0, "the slow-path benchmark took the fast path"
    benchmark(call)


@pytest.mark.parametrize("nested", [True, False], ids=["nested", "padded"])
@pytest.mark.benchmark(group="attention")
def test_transformer_encoder(benchmark, nested):
    """Two layers, eval + inference mode, batch of 8 with half the positions padded.  With
    ``enable_nested_tensor`` the encoder packs the batch into a nested tensor and drops the padding;
    its output is then exactly 0 at padded positions, which is how we confirm that path ran
    (torch/nn/modules/transformer.py: TransformerEncoder.forward, to_padded_tensor(0.0))."""
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(64, 4, dim_feedforward=128, batch_first=True)
    encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=nested).eval()
    x = torch.randn(8, 32, 64)
    pad = torch.zeros(8, 32, dtype=torch.bool)
    pad[:, 16:] = True

    def call():
        with torch.inference_mode():
            return encoder(x, src_key_padding_mask=pad)

    took_nested = bool((call()[pad] == 0).all())
    assert took_nested == nested, f"nested tensor path {'not ' if nested else ''}taken"
    benchmark(call)


BACKENDS = ["MATH", "FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.benchmark(group="attention")
def test_sdpa(benchmark, backend):
    """scaled_dot_product_attention restricted to one backend (torch.nn.attention.sdpa_kernel); a
    backend this build or device cannot run is skipped with torch's own reason."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    device = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator().manual_seed(0)
    dtype = torch.float16 if device == "cuda" else torch.float32
    q, k, v = (torch.randn(4, 4, 64, 32, generator=g).to(device, dtype) for _ in range(3))

    def call():
        with sdpa_kernel(getattr(SDPBackend, backend)):
            out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    try:
        call()
    except RuntimeError as exc:
        pytest.skip(f"{backend} unavailable on {device}: {str(exc).splitlines()[0][:160]}")
    benchmark(call)

# temporary exploration script (deleted before hand-off)
import torch, warnings, sys
import torch.nn.functional as F
print(torch.__version__, torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")
from torch.nn.attention import sdpa_kernel, SDPBackend
dev = sys.argv[1] if len(sys.argv) > 1 else "cuda"
torch.manual_seed(0)
def t(name, f):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        try:
            r = f()
            if isinstance(r, tuple): r = r[0]
            r = (r.dtype, tuple(r.shape), [round(float(v), 4) for v in r.flatten()[:6].float().cpu()])
        except Exception as e: r = (type(e).__name__, str(e)[:160])
    print(name, r, [str(x.message)[:100] for x in w], flush=True)
backs = [SDPBackend.MATH, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION]
for dt in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
    q = torch.randn(1, 2, 3, 8, dtype=dt, device=dev)
    bmask = torch.tensor([[True]*3, [False]*3, [True, False, False]], device=dev)
    fmask = torch.zeros(3, 3, dtype=dt, device=dev); fmask[1, :] = float("-inf")
    for b in backs:
        with sdpa_kernel(b):
            t(f"{dt} {b} plain", lambda: F.scaled_dot_product_attention(q, q, q))
            t(f"{dt} {b} boolrow1 masked (row1 should be last)", lambda: F.scaled_dot_product_attention(q, q, q, attn_mask=bmask)[0, 0, 1])
            t(f"{dt} {b} floatrow1", lambda: F.scaled_dot_product_attention(q, q, q, attn_mask=fmask)[0, 0, 1])
            t(f"{dt} {b} causal", lambda: F.scaled_dot_product_attention(q, q, q, is_causal=True))
            t(f"{dt} {b} causal+mask", lambda: F.scaled_dot_product_attention(q, q, q, attn_mask=torch.ones(3, 3, dtype=torch.bool, device=dev), is_causal=True))
            t(f"{dt} {b} scale", lambda: F.scaled_dot_product_attention(q, q, q, scale=0.3))
            q4 = torch.randn(1, 4, 3, 8, dtype=dt, device=dev)
            t(f"{dt} {b} gqa", lambda: F.scaled_dot_product_attention(q4, q, q, enable_gqa=True))
            t(f"{dt} {b} nonsq causal", lambda: F.scaled_dot_product_attention(q[:, :, :2], q, q, is_causal=True))
            t(f"{dt} {b} Lgt causal", lambda: F.scaled_dot_product_attention(torch.randn(1,2,5,8,dtype=dt,device=dev), q, q, is_causal=True)[0,0,0])
            t(f"{dt} {b} hd4", lambda: F.scaled_dot_product_attention(q[..., :4], q[..., :4], q[..., :4]))
            t(f"{dt} {b} hd6", lambda: F.scaled_dot_product_attention(q[..., :6].contiguous(), q[..., :6].contiguous(), q[..., :6].contiguous()))
for dt in (torch.float32, torch.float16, torch.float64):
    m = torch.nn.MultiheadAttention(8, 2, batch_first=True, device=dev, dtype=dt).eval()
    with torch.no_grad():
        m.out_proj.bias.fill_(0.5)
        x = torch.randn(2, 4, 8, device=dev, dtype=dt)
        am = torch.zeros(4, 4, dtype=torch.bool, device=dev); am[1, :] = True
        kpm = torch.zeros(2, 4, dtype=torch.bool, device=dev); kpm[1, :] = True
        for nw in (True, False):
            t(f"mha {dt} fast am nw={nw}", lambda: m(x, x, x, attn_mask=am, need_weights=nw)[0][:, 1])
            t(f"mha {dt} fast kpm nw={nw}", lambda: m(x, x, x, key_padding_mask=kpm, need_weights=nw)[0][1])
            t(f"mha {dt} slow am nw={nw}", lambda: m(x, x.clone(), x.clone(), attn_mask=am, need_weights=nw)[0][:, 1])
            t(f"mha {dt} slow kpm nw={nw}", lambda: m(x, x.clone(), x.clone(), key_padding_mask=kpm, need_weights=nw)[0][1])
            t(f"mha {dt} fast weights nw={nw}", lambda: m(x, x, x, attn_mask=am, need_weights=nw)[1][0])
        layer = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, device=dev, dtype=dt).eval()
        enc = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=True)
        enc.eval()
        kpm2 = torch.tensor([[False, False, True, True], [False, True, True, True]], device=dev)
        t(f"enc {dt} nested", lambda: enc(x, src_key_padding_mask=kpm2)[0, 2:])
        t(f"enc {dt} full pad", lambda: enc(x, src_key_padding_mask=kpm)[1])
        t(f"layer {dt} fast full pad", lambda: layer(x, src_key_padding_mask=kpm)[1])

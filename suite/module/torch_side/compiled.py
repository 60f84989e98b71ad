"""Torch side of Module.compile: a backend that records being handed the graph and runs it as traced."""
from __future__ import annotations

import torch

from conform.outcome import Raised
from suite.module.cases import CompileCase


class _Affine(torch.nn.Module):
    def forward(self, x):
        return x * 2 + 1


def compile_supported() -> bool:
    """Whether this build can compile on this Python (torch.compile refuses interpreters it does not support)."""
    import torch._dynamo

    check = getattr(torch._dynamo, "is_dynamo_supported", None)
    return check() if check is not None else True


def run_compile(case: CompileCase, device: str):
    import torch._dynamo

    handed = []

    def backend(gm, example_inputs):
        handed.append(type(gm).__name__)
        return gm.forward

    fired = []

    def add_ten(module, args, output):
        fired.append(1)
        return output + 10

    m = _Affine().to(device)
    if case.hook:
        m.register_forward_hook(add_ten)
    try:
        m.compile(backend=backend, dynamic=False)
        outs = [m(torch.arange(3.0, device=device) + i).cpu().tolist() for i in range(case.calls)]
    except Exception as exc:
        return Raised.from_exception(exc)
    finally:
        torch._dynamo.reset()
    return {"backend_called": bool(handed), "outputs": outs, "hook_calls": len(fired)}

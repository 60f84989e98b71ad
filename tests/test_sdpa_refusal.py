"""The SDPA backend rules are not tautological: a forced fused backend that refuses every input, or that
falls back silently (a refusal warning next to a result), fails suite/attention/test_sdpa.py.

The torch side is patched in a subprocess (a pytest plugin wrapping F.scaled_dot_product_attention):
whenever the math backend is disabled -- ``sdpa_kernel`` forcing a fused backend -- it refuses, or warns
and answers with the math backend.  The real run of the same file passes (the area's own run).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PATCH = '''
import warnings

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

_real = F.scaled_dot_product_attention
MODE = {mode!r}


def patched(*args, **kwargs):
    if torch.backends.cuda.math_sdp_enabled():  # default dispatch or the math backend: unchanged
        return _real(*args, **kwargs)
    warnings.warn("Flash attention kernel not used because: (planted)")
    if MODE == "refuse":
        raise RuntimeError("No available kernel. Aborting execution.")
    with sdpa_kernel(SDPBackend.MATH):  # "silent" fallback: a result from another backend
        return _real(*args, **kwargs)


F.scaled_dot_product_attention = patched
'''


@pytest.mark.parametrize("mode, rule", [("refuse", "attention.sdpa.backend.agrees"),
                                        ("fallback", "attention.sdpa.backend.refusal_is_error")])
def test_a_fused_backend_that_refuses_or_falls_back_fails_the_sdpa_suite(tmp_path, mode, rule):
    (tmp_path / "planted_sdpa_backend.py").write_text(textwrap.dedent(PATCH.format(mode=mode)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-m", "pytest", "suite/attention/test_sdpa.py", "-p", "planted_sdpa_backend",
                          "-p", "no:cacheprovider", "--hypothesis-profile", "ci", "--device", "cpu", "-x", "-q",
                          "-k", "test_sdpa_every_backend"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    output = run.stdout + run.stderr
    assert run.returncode == 1, output[-3000:]
    assert "ConformanceFailure" in output and rule in output, output[-3000:]

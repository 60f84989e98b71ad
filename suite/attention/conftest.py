"""The attention area's tests run torch's CPU kernels on one intra-op thread.

Every tensor here is tiny (seq <= 8, embed <= 16): a second OpenMP thread never speeds an op up, and on a
loaded 2-core machine its spin-wait hand-off made each CPU op ~10-100x slower (measured: layer_norm + SDPA on
(2, 4, 8) took 0.6-15 ms with 2 threads, 0.065 ms with 1).  The results do not depend on it beyond rounding
within the derived tolerances.  Restored after each test, so other areas keep the process's setting.
"""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_intra_op_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)

"""The machine's control benchmark: pure Python, no torch.

Times are per call of the benchmarked function, as in every file here.  Its
ratio between two builds' runs measures how much the machine itself sped up or
slowed down between them; ``--compare`` widens the noise by it, and in an
interleaved ``--against`` run it should come out within noise (a check on the
method itself).
"""
from __future__ import annotations

import pytest

CONTROL = "test_machine_control"


@pytest.mark.benchmark(group="control")
def test_machine_control(benchmark):
    def work():
        return sum(i * i for i in range(2000))

    benchmark(work)

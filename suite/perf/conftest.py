"""Benchmarks run only when asked for: ``torchconform bench`` (or ``pytest suite/perf
--benchmark-only``).  A plain ``pytest`` of the project skips them, and
``--benchmark-disable`` runs each once as a smoke test.

Each saved JSON gets a ``torchconform`` block naming the torch build and the
machine, which ``torchconform bench --compare`` uses to file and check results.
"""
from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("benchmark_only", False) or config.getoption("benchmark_disable", False):
        return
    skip = pytest.mark.skip(reason="performance benchmark: run `torchconform bench` "
                                   "(or pytest suite/perf --benchmark-only; --benchmark-disable for one smoke pass)")
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(skip)


def pytest_benchmark_update_json(config: pytest.Config, benchmarks, output_json: dict) -> None:
    from suite.results import machine_key, torch_build

    build = torch_build()
    output_json["torchconform"] = {"build": build["name"], "torch": build,
                                   "machine": machine_key(output_json.get("machine_info") or {})}

"""The suite's own time budget, as a benchmark: it runs only when asked for
(``python -m pytest tests/bench --benchmark-only``); a plain ``pytest`` skips it."""
from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("benchmark_only", False):
        return
    skip = pytest.mark.skip(reason="the suite's time budget: python -m pytest tests/bench --benchmark-only")
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(skip)

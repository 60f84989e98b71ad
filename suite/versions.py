"""Skipping what a release lacks: an API added later makes its rules skip, with that reason."""
from __future__ import annotations

import pytest

from reference.versions import since, torch_release


def requires_torch(release: str, what: str) -> None:
    """Skip the calling test on builds older than ``release``, naming the missing API."""
    if not since(release):
        pytest.skip(f"{what} is new in torch {release}; this build is {torch_release()}")

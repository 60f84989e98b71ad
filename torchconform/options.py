"""What every subcommand shares: the usage error and option helpers (imported by ``cli`` and the
subcommands alike, so that no subcommand imports ``cli`` back)."""
from __future__ import annotations

PROFILES = ("ci", "dev", "fuzz")


class UsageError(Exception):
    """A bad option: reported as one line, exit status 2."""


def split_list(values: list[str] | None) -> list[str]:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]`` (order kept, duplicates dropped)."""
    items = [part.strip() for value in values or [] for part in value.split(",")]
    return list(dict.fromkeys(item for item in items if item))

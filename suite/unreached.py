"""Why a range of torch's code under test stays unreached by a CPU run of the suite.

Each area lists, in ``suite/<area>/unreached.py`` (``UNREACHED = [Unreached(...), ...]``), the parts of its torch
files that a run cannot reach, each with one of three reasons and a sentence saying why:

- ``CUDA_ONLY``: runs only with an accelerator (or several); a run on such a device reaches it, and then it counts.
- ``DEPRECATED``: a deprecated entry point or a legacy-format branch (say which, with the torch reference).
- ``UNREACHABLE``: not reachable through torch's public API (internal tracing/scripting hooks, dead code).

An entry names the torch file (relative to the torch package, as in ``reports.coverage.FILES``), the function the
range lies in (its qualified name, as the coverage page shows it, e.g. ``DataParallel.forward``) and, where only
some of that function's unreached lines have the reason, a piece of source text that the range's first line
contains.  Keyed by name and text, not line numbers, so one entry holds across torch releases.

The coverage page lists every unreached range with its reason; a range no entry explains is listed as
"not reached" -- a gap in the suite, not an excuse.  Percentages are given both raw and of the lines left once
the explained ranges are set aside.
"""
from __future__ import annotations

import dataclasses

CUDA_ONLY = "CUDA-only"
DEPRECATED = "deprecated"
UNREACHABLE = "unreachable from the public API"
REASONS = (CUDA_ONLY, DEPRECATED, UNREACHABLE)


@dataclasses.dataclass(frozen=True)
class Unreached:
    file: str       # torch file, relative to the torch package: "nn/parallel/data_parallel.py"
    function: str   # qualified name of the def the range lies in: "DataParallel.forward" ("<module>" at top level)
    reason: str     # one of REASONS
    why: str        # one sentence, with the torch reference
    contains: str | None = None  # only ranges whose first line contains this text (None: every range there)

    def __post_init__(self):
        if self.reason not in REASONS:
            raise ValueError(f"Unreached reason must be one of {REASONS}, not {self.reason!r}")

    def explains(self, file: str, function: str, first_line: str) -> bool:
        return (file == self.file and function == self.function
                and (self.contains is None or self.contains in first_line))


def all_entries() -> list[Unreached]:
    """Every area's entries (an area without a ``suite/<area>/unreached.py`` has none)."""
    import importlib

    from conform.rules import AREAS

    entries: list[Unreached] = []
    for area in AREAS:
        try:
            module = importlib.import_module(f"suite.{area}.unreached")
        except ModuleNotFoundError as exc:
            if exc.name != f"suite.{area}.unreached":
                raise
            continue
        entries.extend(module.UNREACHED)
    return entries


def explain(entries: list[Unreached], file: str, function: str, first_line: str) -> Unreached | None:
    return next((e for e in entries if e.explains(file, function, first_line)), None)

"""The release matrix's committed outcomes: ``reports/matrix/<release>.json``.

``torchconform matrix`` runs the suite on every release of ``RELEASES`` (one tox env each)
and writes, per release, the rule statuses and which registry entries' repros reproduce
there.  The registry's version ranges are measured from these files
(``tests/test_registry_ranges.py`` fails when a declared range disagrees), and a build
newer than every measured release may show a registered divergence as ``fixed?`` instead
of failing (see ``suite/plugin.py``).

Only the standard library and ``packaging``: the report and the CLI read it too.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

from packaging.version import Version

# The last patch of every minor release from 2.4 on (the supported range: README).
RELEASES = ("2.4.1", "2.5.1", "2.6.0", "2.7.1", "2.8.0", "2.9.1", "2.10.0", "2.11.0", "2.12.1", "2.13.0",
            "2.14.1", "2.15.0")
MATRIX_DIR = Path(__file__).resolve().parent.parent / "reports" / "matrix"

# How a registry entry's minimal repro came out on one build (suite/test_divergences.py).
REPRODUCES, CONFORMS, DIFFERS = "reproduces", "conforms", "differs otherwise"


def base_version(torch_version: str) -> Version:
    """``2.6.0+cu124`` -> 2.6.0: local build tags do not change the release."""
    return Version(str(torch_version).split("+")[0])


@functools.cache
def load(directory: Path = MATRIX_DIR) -> dict[str, dict]:
    """Every committed release outcome, keyed by release, oldest first."""
    found = {}
    for path in directory.glob("*.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        found[data["release"]] = data
    return dict(sorted(found.items(), key=lambda kv: Version(kv[0])))


def newest_measured(directory: Path = MATRIX_DIR) -> Version | None:
    releases = list(load(directory))
    return Version(releases[-1]) if releases else None


def beyond_measured(torch_version: str, directory: Path = MATRIX_DIR) -> bool:
    """True for a build newer than every measured release: there a registered divergence
    that stopped reproducing is reported as ``fixed?`` (probably fixed upstream), not as a failure."""
    newest = newest_measured(directory)
    return newest is not None and base_version(torch_version) > newest


def measured_range(observations: dict[str, str], releases: tuple[str, ...] = RELEASES) -> str | None:
    """The version range an entry's observations (release -> repro outcome) support, drawn at minor
    boundaries: from the first release that reproduces; an upper bound only where a measured later
    release did not; a gap excluded as ``!=X.Y.*``.  None when it reproduced nowhere."""
    measured = [r for r in releases if r in observations]
    hits = [r for r in measured if observations[r] == REPRODUCES]
    if not hits:
        return None

    def minor(release: str) -> str:
        v = Version(release)
        return f"{v.major}.{v.minor}"

    parts = [f">={minor(hits[0])}"]
    after = [r for r in measured if Version(r) > Version(hits[-1])]
    if after:
        parts.append(f"<{minor(after[0])}")
    parts += [f"!={minor(r)}.*" for r in measured
              if Version(hits[0]) < Version(r) < Version(hits[-1]) and observations[r] != REPRODUCES]
    # releases of the matrix nobody measured (a CUDA entry seen on one GPU) stay outside
    unmeasured_inside = [r for r in releases if r not in observations and Version(hits[0]) < Version(r)
                         and (not after or Version(r) < Version(after[0]))]
    parts += [f"!={minor(r)}.*" for r in unmeasured_inside]
    if not after and releases[-1] not in observations:
        parts = [p for p in parts if not p.startswith("!=")] + [f"<{_next_minor(hits[-1])}"]
    return ",".join(parts)


def _next_minor(release: str) -> str:
    v = Version(release)
    return f"{v.major}.{v.minor + 1}"

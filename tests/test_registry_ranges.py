"""Every registry entry's version range is the one the release matrix measured.

``reports/matrix/<release>.json`` (written by ``torchconform matrix``) records, per
release, how each entry's minimal repro came out on CPU; ``reports/matrix/cuda/`` holds
what GPU runs observed for CUDA-only entries.  For each entry, on the device it is
registered for:

- on every measured release, the range includes the release iff the repro reproduced there
  (it starts at the first release where it reproduces; it ends only where a release was
  observed to fix it);
- a release of the matrix nobody measured on that device, and any release older than the
  matrix, is outside the range (a range says only what was observed);
- where the newest release of the matrix reproduces, the range has no upper bound;
- ranges are drawn between minor releases: every patch of a measured minor is judged
  alike, so another patch release never fails because of a range.
"""
from __future__ import annotations

import pytest
from packaging.version import Version

from suite.divergences import all_divergences, applies_to_build
from suite.matrix import MATRIX_DIR, RELEASES, REPRODUCES, load, measured_range

CPU = load(MATRIX_DIR)
CUDA = load(MATRIX_DIR / "cuda")


def observations(entry) -> dict[str, str]:
    """release -> outcome of the entry's repro, on the device kind it is registered for."""
    kind, data = ("cpu", CPU) if "*" in entry.devices or "cpu" in entry.devices else ("cuda", CUDA)
    return {release: d["registry"][kind][entry.id] for release, d in data.items()
            if entry.id in d.get("registry", {}).get(kind, {})}


ENTRIES = all_divergences()


@pytest.mark.skipif(not CPU, reason="no release matrix data committed yet")
@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.id)
def test_range_is_the_measured_one(entry):
    seen = observations(entry)
    assert any(o == REPRODUCES for o in seen.values()), \
        f"{entry.id}: its repro reproduced on no measured release ({seen or 'never measured'}); run the matrix"
    hint = f" (the matrix measured {measured_range(seen)!r})"
    for release in RELEASES:
        declared = applies_to_build(entry.torch, release)
        if release in seen:
            measured = seen[release] == REPRODUCES
            assert declared == measured, (f"{entry.id}: range {entry.torch!r} {'includes' if declared else 'excludes'} "
                                          f"{release}, where its repro {seen[release]}{hint}")
        else:
            assert not declared, f"{entry.id}: range {entry.torch!r} includes {release}, which nobody measured{hint}"
    oldest = Version(RELEASES[0])
    before = f"{oldest.major}.{oldest.minor - 1}.0"
    assert not applies_to_build(entry.torch, before), \
        f"{entry.id}: range {entry.torch!r} includes {before}, older than every measured release{hint}"
    newest = RELEASES[-1]
    if seen.get(newest) == REPRODUCES:
        nxt = Version(newest)
        for later in (f"{nxt.major}.{nxt.minor}.{nxt.micro + 1}", f"{nxt.major}.{nxt.minor + 1}.0", f"{nxt.major + 1}.0.0"):
            assert applies_to_build(entry.torch, later), \
                f"{entry.id}: reproduces on {newest}, yet its range {entry.torch!r} ends before {later} (unmeasured){hint}"


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.id)
def test_range_is_drawn_between_minor_releases(entry):
    for release in RELEASES:
        v = Version(release)
        verdicts = {applies_to_build(entry.torch, f"{v.major}.{v.minor}.{patch}") for patch in range(10)}
        assert len(verdicts) == 1, f"{entry.id}: range {entry.torch!r} splits the patch releases of {v.major}.{v.minor}"


def test_matrix_files_are_the_matrix_releases():
    assert set(CPU) <= set(RELEASES), f"data for releases outside the matrix: {sorted(set(CPU) - set(RELEASES))}"
    for release, data in CPU.items():
        assert Version(data["torch"].split("+")[0]) == Version(release), f"{release}.json ran torch {data['torch']}"


def test_measured_range_is_drawn_from_observations():
    r, c = REPRODUCES, "conforms"
    assert measured_range({"2.4.1": r, "2.5.1": r, "2.6.0": c}) == ">=2.4,<2.6"
    assert measured_range({release: r for release in RELEASES}) == ">=2.4"
    assert measured_range({"2.11.0": r}) == ">=2.11,<2.12", "a single GPU observation says only that release"
    assert measured_range({"2.4.1": c}) is None

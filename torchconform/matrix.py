"""``torchconform matrix [--release R[,S]] [--keep-envs] [-- RUN ARGS]``: the release matrix.

For each release (default: every one of ``suite.matrix.RELEASES``), one after another:
``tox -e torch<release>`` installs that wheel into its own env and runs
``torchconform run --profile ci`` into ``reports/out/matrix/torch<release>/``; the release's
outcome (rule statuses, and how every registry entry's repro came out) is then written to
``reports/matrix/<release>.json`` -- the committed data the registry's ranges are measured
from -- and the env is removed (a CUDA wheel is ~5 GB installed).  Finally the runs are
merged into one report, one column per release: ``reports/out/matrix/index.html``.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from torchconform.options import UsageError, split_list

OUT = Path("reports") / "out" / "matrix"


def parse_releases(values: list[str] | None) -> list[str]:
    from suite.matrix import RELEASES

    releases = split_list(values) or list(RELEASES)
    unknown = [r for r in releases if r not in RELEASES]
    if unknown:
        raise UsageError(f"unknown release {unknown[0]!r} (the matrix has {', '.join(RELEASES)}; "
                         f"add a tox env and a RELEASES entry for another)")
    return releases


def release_data(results: dict, release: str) -> dict:
    """The committed form of one release's run: small, stable, diffable."""
    rules: dict[str, dict[str, str]] = {}
    for entry in results["rules"]:
        rules.setdefault(entry["device"], {})[entry["id"]] = entry["status"]
    registry: dict[str, dict[str, str]] = {}
    for entry_id, by_device in sorted(results.get("registry_outcomes", {}).items()):
        for device, outcome in by_device.items():
            registry.setdefault(device, {})[entry_id] = outcome
    counts = {k: v for k, v in results["counts"].items() if k != "examples"}
    return {
        "release": release,
        "torch": results["build"]["version"],
        "cuda": results["build"].get("cuda"),
        "python": results["machine"]["python"],
        "machine": {k: results["machine"][k] for k in ("machine", "cpus")},
        "suite_commit": results.get("suite_commit"),
        "profile": results.get("profile"),
        "started": results.get("started"),
        "duration_s": results.get("duration_s"),
        "counts": counts,
        "rules": {d: dict(sorted(r.items())) for d, r in sorted(rules.items())},
        "registry": registry,
    }


def record_release(run_dir: Path, release: str, matrix_dir: Path, registry_only: bool = False) -> Path:
    """Write ``<matrix_dir>/<release>.json`` from a run.  A run of some areas only (``-- --area A``)
    replaces those areas' rules and registry outcomes in the release's existing data and keeps the rest; a
    registry-only run (``--registry-only``: the entries' repros, no property tests) replaces only the outcomes
    of the entries it measured."""
    from suite.matrix import base_version

    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    version = results["build"]["version"]
    if base_version(version) != base_version(release):
        raise UsageError(f"{run_dir} ran torch {version}, not {release}")
    matrix_dir.mkdir(parents=True, exist_ok=True)
    path = matrix_dir / f"{release}.json"
    data = release_data(results, release)
    areas = results.get("areas") or []
    from conform.rules import AREAS

    if registry_only:
        if not path.exists():
            raise UsageError(f"{path} does not exist: a registry-only run updates a measured release")
        data = merge_registry(json.loads(path.read_text(encoding="utf-8")), data)
    elif path.exists() and areas and set(areas) != set(AREAS):
        data = merge_areas(json.loads(path.read_text(encoding="utf-8")), data, areas)
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return path


def merge_areas(old: dict, new: dict, areas: list[str]) -> dict:
    """``old`` with the rules and registry outcomes of ``areas`` taken from ``new``."""
    def area(key: str) -> str:
        return key.split(".", 1)[0] if "." in key else key.split("-", 1)[0]

    merged = dict(old)
    for field in ("rules", "registry"):
        by_device: dict[str, dict[str, str]] = {}
        for source, keep in ((old, lambda k: area(k) not in areas), (new, lambda k: area(k) in areas)):
            for device, items in (source.get(field) or {}).items():
                by_device.setdefault(device, {}).update({k: v for k, v in items.items() if keep(k)})
        merged[field] = {d: dict(sorted(items.items())) for d, items in sorted(by_device.items())}
    tally: dict[str, int] = {}
    for items in merged["rules"].values():
        for status in items.values():
            tally[status] = tally.get(status, 0) + 1
    merged["counts"] = {s: tally.get(s, 0) for s in old.get("counts", tally)}
    merged["updates"] = list(old.get("updates") or []) + [
        {"areas": areas, "suite_commit": new.get("suite_commit"), "started": new.get("started"),
         "duration_s": new.get("duration_s")}]
    return merged


def merge_registry(old: dict, new: dict) -> dict:
    """``old`` with the registry outcomes ``new`` measured; its rules and counts kept."""
    merged = dict(old)
    registry = {d: dict(items) for d, items in (old.get("registry") or {}).items()}
    for device, items in (new.get("registry") or {}).items():
        registry.setdefault(device, {}).update(items)
    merged["registry"] = {d: dict(sorted(items.items())) for d, items in sorted(registry.items())}
    merged["updates"] = list(old.get("updates") or []) + [
        {"registry_only": True, "suite_commit": new.get("suite_commit"), "started": new.get("started"),
         "duration_s": new.get("duration_s")}]
    return merged


def matrix(args: argparse.Namespace) -> int:
    from suite.matrix import MATRIX_DIR

    releases = parse_releases(args.release)
    registry_only = getattr(args, "registry_only", False)
    if registry_only and "--" in args.run_args:
        raise UsageError("--registry-only chooses the tests itself: no pytest arguments after a second --")
    root = Path(__file__).resolve().parent.parent
    if not (root / "tox.ini").is_file():
        raise UsageError(f"no tox.ini in {root}: run the matrix from a checkout of the suite")
    if shutil.which("tox") is None:
        raise UsageError("tox is not installed (pip install tox tox-uv)")
    failed = []
    for release in releases:
        env = f"torch{release}"
        run_dir = root / OUT / env
        shutil.rmtree(run_dir, ignore_errors=True)  # a stale results.json must not pass for this run
        print(f"torchconform matrix: {env}", flush=True)
        t0 = time.monotonic()
        # -k: only the module suite/test_divergences.py (its entries' repros), no property test
        run_args = [*args.run_args, "--", "-k", "test_divergences"] if registry_only else list(args.run_args)
        code = subprocess.call(["tox", "-e", env, "--", *run_args], cwd=root)
        wall = time.monotonic() - t0
        try:
            path = record_release(run_dir, release, root / MATRIX_DIR.relative_to(root), registry_only)
            print(f"torchconform matrix: {release}: exit {code} in {wall:.0f}s (install + run) -> {path}", flush=True)
        except (OSError, ValueError, KeyError, UsageError) as exc:
            failed.append(release)
            print(f"torchconform matrix: error: {release}: no results recorded ({exc})", file=sys.stderr, flush=True)
        if code != 0:
            failed.append(release)
        if not args.keep_envs:
            shutil.rmtree(root / ".tox" / env, ignore_errors=True)
    runs = [str(root / OUT / f"torch{r}") for r in releases if (root / OUT / f"torch{r}" / "results.json").exists()]
    if runs:
        from torchconform.report import report

        report(argparse.Namespace(dirs=runs, out=str(root / OUT), bench=None, bench_dir="reports/perf",
                                  bench_history=None, issues=None))
    if failed:
        print(f"torchconform matrix: not clean on {', '.join(dict.fromkeys(failed))}", file=sys.stderr)
    return 1 if failed else 0

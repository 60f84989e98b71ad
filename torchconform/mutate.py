"""``torchconform mutate``: mutation testing of torch's own Python code under test, with cosmic-ray.

    torchconform mutate --file utils/data/sampler.py [--file ...] [--out DIR] [--max-mutants N [--sample SEED]]
                        [--timeout S] [--nice N]

For each file (relative to the torch package, one of ``reports.coverage.FILES``):

1. A throwaway work directory holds a *copy* of the file and a ``sitecustomize.py`` import hook (a meta
   path finder, first on ``PYTHONPATH``) that makes ``torch.<module>`` load from the copy -- in the test
   process and in every process it starts (spawned DataLoader workers, SyncBN ranks). The installed torch
   is never written to: cosmic-ray mutates the copy in place and restores it after each mutant. The suite
   is a snapshot of the checkout's last commit (``git archive HEAD``), so edits in progress in the work
   tree cannot kill or save a mutant.
2. cosmic-ray enumerates the mutants of the copy (``cosmic_ray.commands.init``, all its operators; a
   session database in the work directory). Mutants inside type annotations are not run (``annotation``):
   torch evaluates them at import, so a mutant there either changes nothing or breaks ``import torch``;
   neither says anything about the suite. In ``nn/functional.py`` and ``nn/modules/activation.py`` only
   the areas' parts (``reports.coverage.PARTS``) are mutated.
3. Baseline: the file's tests (``TESTS``; by default ``suite/<area>`` of its areas) run once, unmutated,
   under coverage.py (workers included). They must pass. A mutant on a line the baseline never executed
   survives by construction: it is recorded as ``not-covered`` without running.
4. Every other mutant: cosmic-ray's ``mutate_and_test`` applies it to the copy and runs
   ``pytest <tests> --hypothesis-profile ci-mutation -x -p no:cacheprovider`` under ``nice`` (conftest.py: the
   ci profile's examples, without shrinking the failure that kills a mutant); exit 0 = survived,
   anything else = killed, over ``--timeout`` = timeout (counted apart), a worker exception = incompetent.

Writes ``DIR/<file, / as .>.json`` (per mutant: operator, occurrence, line, function, diff, outcome,
seconds, the failing test) after every mutant, so an interrupted run resumes where it stopped (same
file, tests and suite trees -- ``suite_tree``; otherwise every mutant runs again), and
``DIR/summary.md`` + ``DIR/summary.json`` over every file in DIR. Default DIR: the checkout's
``reports/mutation/<torch version>/``. The score is (killed + timeout) / (killed + timeout + survived +
not-covered); with ``--max-mutants N --sample SEED`` a seeded random sample of the file's mutants is run
and the score comes with a 95% Wilson interval.

``DIR/verdicts.csv`` (``file,id,line,verdict,reason``; written by hand) is the triage of each surviving mutant:
``equivalent`` (no documented behaviour tells it apart), ``cuda-only`` (differs only with an accelerator),
``deprecated`` (in a path only a deprecated API takes, e.g. torch.jit.trace; listed like cuda-only),
``closed`` (a check added after the run kills it; a rerun confirms), ``needs-check``. The summary counts them per
file, shows the survivors that have no verdict yet, and gives the score with the equivalent mutants set aside
(killed + timeout over the non-equivalent ones): the usual mutation score, since no test can kill an equivalent
mutant. A verdicts file that cannot be read is refused before anything runs.
"""
from __future__ import annotations

import argparse
import ast
import csv
import hashlib
import importlib.util
import json
import math
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from torchconform.options import UsageError

TOOL = "cosmic-ray"
# Narrower test sets where the file's users are obvious (paths relative to the checkout); every other
# file runs the tests of its areas, suite/<area>.
TESTS: dict[str, tuple[str, ...]] = {
    "utils/data/sampler.py": ("suite/data/test_samplers.py", "suite/data/test_loader_args.py",
                              "suite/data/test_rng.py"),
    "utils/data/distributed.py": ("suite/data/test_samplers.py",),
    "utils/data/dataset.py": ("suite/data/test_datasets.py", "suite/data/test_iterable.py"),
    "utils/data/_utils/collate.py": ("suite/data/test_collate.py", "suite/data/test_loader_args.py"),
    # the fetchers run in the main process when num_workers=0: the loader-argument and iterable tests
    "utils/data/_utils/fetch.py": ("suite/data/test_iterable.py", "suite/data/test_loader_args.py",
                                   "suite/data/test_datasets.py"),  # test_fetch: __getitems__, batched or not
    "nn/modules/container.py": ("suite/module/test_containers.py",),
    # cheap tests first: with -x a killed mutant stops at the first failure
    "nn/parallel/scatter_gather.py": ("suite/parallel/test_data_parallel.py", "suite/parallel/test_scatter_kwargs.py",
                                      "suite/parallel/test_scatter.py", "suite/parallel/test_gather.py"),
    "nn/parallel/parallel_apply.py": ("suite/parallel/test_parallel_apply.py", "suite/parallel/test_data_parallel.py"),
    "nn/parallel/replicate.py": ("suite/parallel/test_replicate.py",),
}
OUTCOMES = ("killed", "timeout", "survived", "not-covered", "incompetent", "annotation")
VERDICTS = ("equivalent", "cuda-only", "deprecated", "closed", "needs-check")


# ---------------------------------------------------------------- options

def parse_options(args: argparse.Namespace) -> dict:
    """Every check before anything runs or is written: unknown file, missing tool, bad numbers."""
    from reports.coverage import FILES

    files = []
    for value in args.file or []:
        for f in (v.strip() for v in value.split(",") if v.strip()):
            f = f.removeprefix("torch/")
            if f not in FILES:
                raise UsageError(f"unknown file {f!r} (choose from {', '.join(FILES)})")
            if f not in files:
                files.append(f)
    if not files:
        raise UsageError("give at least one --file (a torch file under test, e.g. utils/data/sampler.py)")
    for name, module in ((TOOL, "cosmic_ray"), ("coverage.py", "coverage")):
        if importlib.util.find_spec(module) is None:
            raise UsageError(f"{name} is not installed: pip install 'torchconform[mutation]'")
    max_mutants = _positive(args.max_mutants, "--max-mutants") if args.max_mutants is not None else None
    if args.sample is not None:
        if max_mutants is None:
            raise UsageError("--sample SEED draws --max-mutants N mutants at random: give --max-mutants too")
        if not str(args.sample).isdigit():
            raise UsageError(f"--sample must be a non-negative integer seed, not {args.sample!r}")
    timeout = None
    if args.timeout is not None:
        try:
            timeout = float(args.timeout)
        except ValueError:
            timeout = -1.0
        if not timeout > 0:
            raise UsageError(f"--timeout must be a positive number of seconds, not {args.timeout!r}")
    if not str(args.nice).lstrip("-").isdigit():
        raise UsageError(f"--nice must be an integer, not {args.nice!r}")
    root = _repo_root()
    out = Path(args.out) if args.out else root / "reports" / "mutation" / _torch_version().split("+")[0]
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    read_verdicts(out)  # a broken triage file is refused now, not after hours of mutants
    return {"files": files, "max_mutants": max_mutants, "seed": None if args.sample is None else int(args.sample),
            "timeout": timeout, "nice": int(args.nice), "out": out, "root": root}


def _positive(value, flag: str) -> int:
    if not str(value).isdigit() or int(value) < 1:
        raise UsageError(f"{flag} must be a positive integer, not {value!r}")
    return int(value)


def _repo_root() -> Path:
    import suite

    return Path(suite.__file__).resolve().parent.parent


def _torch_version() -> str:
    import torch

    return torch.__version__


def tests_for(rel: str) -> list[str]:
    from reports.coverage import FILES

    if rel in TESTS:
        return list(TESTS[rel])
    return [f"suite/{area.strip()}" for area in FILES[rel].split(",")]


def module_name(rel: str) -> str:
    return "torch." + rel[:-3].replace("/", ".")


def json_name(rel: str) -> str:
    return rel[:-3].replace("/", ".") + ".json"


# ---------------------------------------------------------------- static filters

def annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(start, end) positions -- (line, column) -- of every type annotation in ``source``."""
    spans = []
    for node in ast.walk(ast.parse(source)):
        notes = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            notes = [x.annotation for x in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg)
                     if x is not None] + [node.returns]
        elif isinstance(node, ast.AnnAssign):
            notes = [node.annotation]
        spans += [((n.lineno, n.col_offset), (n.end_lineno, n.end_col_offset)) for n in notes if n is not None]
    return spans


def in_annotation(pos: tuple[int, int], spans) -> bool:
    return any(start <= tuple(pos) < end for start, end in spans)


def statement_lines(source: str) -> dict[int, tuple[int, ...]]:
    """line -> the lines coverage.py may report for the innermost statement containing it (its first
    line, and its first decorator's for a decorated definition)."""
    out: dict[int, tuple[int, ...]] = {}
    for node in ast.walk(ast.parse(source)):  # breadth first: inner statements overwrite outer ones
        if isinstance(node, ast.stmt):
            first = (node.lineno,) + tuple(d.lineno for d in getattr(node, "decorator_list", ())[:1])
            body_start = min((c.lineno for f in ("body", "orelse", "finalbody", "handlers")
                              for c in getattr(node, f, ()) or () if isinstance(c, (ast.stmt, ast.excepthandler))),
                             default=node.end_lineno + 1)
            for line in range(first[-1] if len(first) > 1 else node.lineno, node.end_lineno + 1):
                if line < body_start or line not in out:
                    out[line] = first
    return out


def covered(line: int, executed: set[int], stmts: dict[int, tuple[int, ...]]) -> bool:
    return line in executed or any(s in executed for s in stmts.get(line, ()))


def select(population: list, max_mutants: int | None, seed: int | None) -> list:
    """The mutants a run records: all of ``population`` (pairs ``(item, in_annotation)``), or at most
    ``max_mutants`` of those outside annotations -- the first ones, or a sample seeded by ``seed``."""
    runnable = [p for p in population if not p[1]]  # a limited run draws from the mutants it would run
    if max_mutants is None or max_mutants >= len(runnable):
        return population if max_mutants is None else runnable
    if seed is None:
        return runnable[:max_mutants]
    # in the drawn order: any prefix of it (a run stopped early) is itself a random sample
    return [runnable[i] for i in random.Random(seed).sample(range(len(runnable)), max_mutants)]


# ---------------------------------------------------------------- scoring

def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    if n == 0:
        return None
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def read_verdicts(out: Path) -> dict[tuple[str, str, int], str]:
    """``out/verdicts.csv`` as {(file, id, line): verdict}; {} when there is none. UsageError names a bad row."""
    path = out / "verdicts.csv"
    if not path.is_file():
        return {}
    verdicts = {}
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            missing = {"file", "id", "line", "verdict"} - set(reader.fieldnames or ())
            if missing:
                raise UsageError(f"{path}: no column {', '.join(sorted(missing))} (want file,id,line,verdict,reason)")
            for row in reader:
                where = f"{path}: line {reader.line_num}"
                if row["verdict"] not in VERDICTS:
                    raise UsageError(f"{where}: verdict {row['verdict']!r} is not one of {', '.join(VERDICTS)}")
                if not str(row["line"]).isdigit():
                    raise UsageError(f"{where}: line {row['line']!r} is not a line number")
                verdicts[(row["file"], row["id"], int(row["line"]))] = row["verdict"]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"{path}: unreadable ({exc})") from None
    return verdicts


def score(mutants: list[dict], verdicts: dict | None = None, file: str = "") -> dict:
    """Counts per outcome and the scores of one file's recorded mutants; with ``verdicts`` (read_verdicts) also
    the survivors' triage and the score with the equivalent ones set aside."""
    counts = {o: 0 for o in OUTCOMES}
    triage = {v: 0 for v in (*VERDICTS, "untriaged")}
    for m in mutants:
        counts[m["outcome"]] += 1
        if m["outcome"] in ("survived", "not-covered"):
            triage[(verdicts or {}).get((file, m.get("id"), m.get("line")), "untriaged")] += 1
    dead = counts["killed"] + counts["timeout"]
    scored = dead + counts["survived"] + counts["not-covered"]
    covered_n = dead + counts["survived"]
    real = scored - triage["equivalent"]
    ci = wilson(dead, scored)
    return {**counts, "scored": scored,
            "score": round(dead / scored, 3) if scored else None,
            "score_covered": round(dead / covered_n, 3) if covered_n else None,
            "ci95": [round(ci[0], 3), round(ci[1], 3)] if ci else None,
            "triage": triage, "score_non_equivalent": round(dead / real, 3) if real else None}


def summarize(out: Path) -> dict:
    """summary.json and summary.md over every per-file JSON in ``out`` (with verdicts.csv's triage)."""
    verdicts = read_verdicts(out)
    rows = []
    for path in sorted(out.glob("*.json")):
        if path.name == "summary.json":
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if "mutants" not in data:
            continue
        s = score(data["mutants"], verdicts, data["file"])
        ran = [m["seconds"] for m in data["mutants"] if m.get("seconds") is not None]
        rows.append({"file": data["file"], "area": data.get("area"), "population": data.get("population"),
                     "recorded": len(data["mutants"]), "sampled": data.get("sample_seed") is not None,
                     **s, "seconds_per_run": round(sum(ran) / len(ran), 1) if ran else None,
                     "wall_s": data.get("wall_s"), "baseline_s": data.get("baseline_s"),
                     "command": data.get("command"), "tests": data.get("tests"),
                     "suite_commit": data.get("suite_commit"), "torch": data.get("torch"),
                     "complete": data.get("complete", False)})
    (out / "summary.json").write_text(json.dumps({"tool": TOOL, "files": rows}, indent=1) + "\n")
    lines = [f"# Mutation scores ({TOOL})", "",
             "score = (killed + timeout) / (killed + timeout + survived + not-covered); "
             "score_cov leaves out the not-covered ones. `annotation` mutants are not run (see "
             "torchconform/mutate.py). Sampled files: the score of a seeded random sample, with its "
             "95% Wilson interval. Survivors' triage (verdicts.csv): equivalent / CUDA-only / deprecated / "
             "closed by a later check / needs a check / untriaged; score_non_eq = (killed + timeout) / the "
             "non-equivalent mutants.",
             "",
             "| file | area | mutants (file) | run/recorded | killed | timeout | survived (covered) | "
             "survived (not covered) | incompetent | annotation (not run) | score | score_cov | 95% CI | "
             "eq / cuda / deprecated / closed / needs / untriaged | score_non_eq | s/mutant | wall s | complete |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ci = f"{r['ci95'][0]:.2f}-{r['ci95'][1]:.2f}" if r["ci95"] and r["sampled"] else ""  # a full run is exact
        lines.append(f"| {r['file']} | {r['area']} | {r['population']} | {r['recorded']}"
                     f"{' (sample)' if r['sampled'] else ''} | {r['killed']} | {r['timeout']} | {r['survived']} | "
                     f"{r['not-covered']} | {r['incompetent']} | {r['annotation']} | {_fmt(r['score'])} | "
                     f"{_fmt(r['score_covered'])} | {ci} | {' / '.join(str(n) for n in r['triage'].values())} | "
                     f"{_fmt(r['score_non_equivalent'])} | {r['seconds_per_run']} | {r['wall_s']} | "
                     f"{'yes' if r['complete'] else 'no'} |")
    lines += ["", "Commands (each from the checkout, in the throwaway environment of README \"Mutation testing\"):", ""]
    for r in rows:
        lines.append(f"- `{r['command']}` -- tests: {' '.join(r['tests'] or [])}; suite commit "
                     f"{(r['suite_commit'] or '?')[:10]}; torch {r['torch']}; baseline {r['baseline_s']} s")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    return {"files": rows}


def _fmt(x) -> str:
    return "" if x is None else f"{x:.2f}"


# ---------------------------------------------------------------- the run

HOOK = '''"""torchconform mutate: load {names} from the mutated copies (this process and every child)."""
import importlib.util
import sys

_COPIES = {copies!r}


class _TorchconformMutantFinder:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        origin = _COPIES.get(name)
        return importlib.util.spec_from_file_location(name, origin) if origin else None


sys.meta_path.insert(0, _TorchconformMutantFinder)
'''


SUITE_PATHS = ("suite", "reference", "conform", "conftest.py", "pyproject.toml")


def suite_tree(root: Path) -> str | None:
    """The git trees of what the tests run (suite, reference, conform, conftest) at HEAD, as one id: a
    commit touching only other paths (reports, torchconform) leaves recorded outcomes valid."""
    try:
        ids = subprocess.run(["git", "-C", str(root), "rev-parse", *(f"HEAD:{p}" for p in SUITE_PATHS)],
                             capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return None
    return hashlib.sha1(" ".join(ids).encode()).hexdigest()


def _snapshot(root: Path, dest: Path) -> tuple[Path, str]:
    """The suite as last committed (git archive HEAD) in ``dest``; the checkout itself without git."""
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        dest.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(root), "archive", "HEAD"], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        return dest, commit
    except (OSError, subprocess.CalledProcessError):
        return root, "working tree"


def _killed_by(output: str) -> str | None:
    for line in (output or "").splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line[:300]
    return None


def _enumerate(copy: Path, work: Path) -> list:
    """cosmic-ray's work items for ``copy``, in its order (operator, then occurrence)."""
    from cosmic_ray.commands import init
    from cosmic_ray.work_db import WorkDB, use_db

    with use_db(str(work / "session.sqlite"), WorkDB.Mode.create) as db:
        init([copy], db, {})
        items = list(db.work_items)
    return items


def _baseline(python: str, tests: list[str], suite: Path, hook: Path, copy: Path, work: Path,
              nice: int) -> tuple[set[int], float, str]:
    """Run the unmutated tests under coverage: (executed lines of the copy, seconds, output)."""
    cov = work / "coverage"
    cov.mkdir()
    rc = cov / "coveragerc"
    rc.write_text(f"[run]\nparallel = True\nconcurrency = multiprocessing,thread\nsigterm = True\n"
                  f"data_file = {cov / '.coverage'}\ninclude =\n    {copy}\n"
                  "disable_warnings = no-data-collected, module-not-imported, couldnt-parse\n")
    env = _env(hook, suite)
    cmd = ["nice", "-n", str(nice), python, "-m", "coverage", "run", f"--rcfile={rc}", "-m", "pytest",
           *tests, "--hypothesis-profile", "ci-mutation", "-x", "-q", "-p", "no:cacheprovider"]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=suite, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"the unmutated tests fail (exit {proc.returncode}): "
                           f"{_killed_by(proc.stdout) or proc.stdout[-500:] + proc.stderr[-500:]}")
    for step in (["combine", "--quiet"], ["json", "--quiet", "-o", str(cov / "raw.json")]):
        subprocess.run([python, "-m", "coverage", *step, f"--rcfile={rc}"], cwd=cov, env=env, check=True,
                       capture_output=True)
    data = json.loads((cov / "raw.json").read_text())
    executed: set[int] = set()
    for path, entry in data.get("files", {}).items():
        if Path(path).resolve() == copy.resolve():
            executed = set(entry.get("executed_lines", []))
    if not executed:
        raise RuntimeError(f"the tests never executed the copy {copy}: the import hook did not take effect")
    return executed, seconds, proc.stdout


def _env(hook: Path, suite: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(hook), str(suite)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH")
                                                                   else []))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_file(rel: str, opts: dict, log=print) -> dict:
    from cosmic_ray.mutating import mutate_and_test

    from reports.coverage import FILES, PARTS, _part_lines, torch_dir

    started = time.monotonic()
    original = torch_dir() / rel
    source = original.read_text(encoding="utf-8")
    digest = hashlib.sha256(source.encode()).hexdigest()
    tests = tests_for(rel)
    out: Path = opts["out"]
    out.mkdir(parents=True, exist_ok=True)
    result_path = out / json_name(rel)
    work = Path(tempfile.mkdtemp(prefix="torchconform-mutate-"))
    try:
        copy = work / "copies" / "torch" / rel
        copy.parent.mkdir(parents=True)
        shutil.copyfile(original, copy)
        hook = work / "hook"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(HOOK.format(names=module_name(rel),
                                                           copies={module_name(rel): str(copy)}))
        suite, commit = _snapshot(opts["root"], work / "suite")
        tree = suite_tree(opts["root"]) if commit != "working tree" else None
        missing = [t for t in tests if not (suite / t).exists()]
        if missing:
            raise RuntimeError(f"test path {missing[0]} does not exist in the suite")

        items = _enumerate(copy, work)
        spans = annotation_spans(source)
        part = _part_lines(source, PARTS[rel]) if rel in PARTS else None
        population = []
        for item in items:
            m = item.mutations[0]
            if part is not None and m.start_pos[0] not in part:
                continue
            population.append((item, in_annotation(m.start_pos, spans)))
        runnable = [p for p in population if not p[1]]
        selected = select(population, opts["max_mutants"], opts["seed"])

        previous = {}
        if result_path.exists():
            try:
                old = json.loads(result_path.read_text())
                # outcomes hold for one suite commit: a changed suite runs every mutant again
                if old.get("source_sha256") == digest and old.get("tests") == tests and \
                        old.get("suite_tree") == tree and tree is not None:
                    previous = {m["id"]: m for m in old.get("mutants", [])}
            except (OSError, json.JSONDecodeError):
                previous = {}

        log(f"torchconform: mutate {rel}: {len(population)} mutants in the file, {len(selected)} selected "
            f"({sum(1 for _, a in selected if a)} in annotations, not run), {len(previous)} already recorded")
        executed, base_s, _ = _baseline(sys.executable, tests, suite, hook, copy, work, opts["nice"])
        timeout = opts["timeout"] or max(60.0, round(2.0 * base_s + 30.0))
        log(f"torchconform: mutate {rel}: baseline passes in {base_s:.0f}s under coverage "
            f"({len(executed)} lines executed); timeout per mutant {timeout:.0f}s")
        stmts = statement_lines(source)
        test_cmd = " ".join(shlex.quote(p) for p in [
            "env", f"--chdir={suite}", f"PYTHONPATH={_env(hook, suite)['PYTHONPATH']}",
            "nice", "-n", str(opts["nice"]), sys.executable, "-m", "pytest", *tests,
            "--hypothesis-profile", "ci-mutation", "-x", "-q", "-p", "no:cacheprovider"])
        command = "torchconform mutate --file " + rel + (
            f" --max-mutants {opts['max_mutants']}" if opts["max_mutants"] else "") + (
            f" --sample {opts['seed']}" if opts["seed"] is not None else "")
        record = {"file": rel, "area": FILES[rel], "tool": f"{TOOL} {_tool_version()}", "torch": _torch_version(),
                  "source_sha256": digest, "tests": tests, "suite_commit": commit, "suite_tree": tree,
                  "command": command,
                  "population": len(population), "population_annotation": len(population) - len(runnable),
                  "sample_seed": opts["seed"], "max_mutants": opts["max_mutants"],
                  "baseline_s": round(base_s, 1), "timeout_s": timeout, "covered_lines": sorted(executed),
                  "complete": False, "wall_s": None, "mutants": []}
        prior_wall = json.loads(result_path.read_text()).get("wall_s") or 0 if previous else 0
        for n, (item, annotation) in enumerate(selected, 1):
            m = item.mutations[0]
            mid = f"{m.operator_name}#{m.occurrence}"
            if mid in previous:
                record["mutants"].append(previous[mid])
                continue
            entry = {"id": mid, "operator": m.operator_name, "occurrence": m.occurrence,
                     "line": m.start_pos[0], "col": m.start_pos[1], "end": list(m.end_pos),
                     "function": m.definition_name, "diff": None, "outcome": None, "seconds": None,
                     "killed_by": None, "suite_commit": commit}
            if annotation:
                entry["outcome"] = "annotation"
            elif not covered(m.start_pos[0], executed, stmts):
                entry["outcome"] = "not-covered"
            t0 = time.monotonic()
            result = mutate_and_test([m], test_cmd, timeout) if entry["outcome"] is None else None
            if result is not None:
                entry["seconds"] = round(time.monotonic() - t0, 1)
                entry["diff"] = _clean_diff(result.diff, copy, rel)
                if result.worker_outcome.value != "normal" or result.test_outcome is None \
                        or result.test_outcome.value == "incompetent":
                    entry["outcome"] = "incompetent"
                    entry["killed_by"] = (result.output or "")[-300:] or result.worker_outcome.value
                elif result.test_outcome.value == "survived":
                    entry["outcome"] = "survived"
                elif result.output == "timeout":
                    entry["outcome"] = "timeout"
                else:
                    entry["outcome"] = "killed"
                    entry["killed_by"] = _killed_by(result.output)
            else:
                entry["diff"] = _static_diff(copy, m, rel)
            record["mutants"].append(entry)
            record["wall_s"] = round(prior_wall + time.monotonic() - started)
            _write(result_path, record)
            if entry["seconds"] is not None:
                log(f"  [{n}/{len(selected)}] {mid} line {entry['line']}: {entry['outcome']} ({entry['seconds']}s)")
        record["complete"] = True
        record["wall_s"] = round(prior_wall + time.monotonic() - started)
        _write(result_path, record)
        return record
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _write(path: Path, record: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(path)


def _clean_diff(diff: str | None, copy: Path, rel: str) -> str | None:
    if not diff:
        return diff
    return diff.replace(str(copy), f"torch/{rel}")


def _static_diff(copy: Path, mutation, rel: str) -> str | None:
    """The diff of a mutant that is not run (cosmic-ray's mutator on the source text, nothing written)."""
    import difflib

    import cosmic_ray.plugins
    from cosmic_ray.mutating import mutate_code

    try:
        code = copy.read_text(encoding="utf-8")
        operator = cosmic_ray.plugins.get_operator(mutation.operator_name)(**(mutation.operator_args or {}))
        mutated = mutate_code(code, operator, mutation.occurrence)
        if mutated is None:
            return None
        return "".join(difflib.unified_diff(code.splitlines(True), mutated.splitlines(True),
                                            f"torch/{rel}", f"torch/{rel}", n=0))
    except Exception:  # noqa: BLE001 -- a missing diff is not worth failing the run
        return None


def _tool_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cosmic-ray")
    except PackageNotFoundError:
        return "?"


def mutate(args: argparse.Namespace) -> int:
    opts = parse_options(args)
    # SIGTERM unwinds like Ctrl-C: the mutated copy is restored and the work directory removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    status = 0
    for rel in opts["files"]:
        try:
            run_file(rel, opts)
        except RuntimeError as exc:
            print(f"torchconform: error: {rel}: {exc}", file=sys.stderr)
            status = 1
    summary = summarize(opts["out"])
    for row in summary["files"]:
        if row["file"] in opts["files"]:
            print(f"torchconform: {row['file']}: score {_fmt(row['score'])}, "
                  f"{_fmt(row['score_non_equivalent'])} of the non-equivalent mutants "
                  f"(killed {row['killed']}, timeout {row['timeout']}, survived {row['survived']}, "
                  f"not covered {row['not-covered']}, incompetent {row['incompetent']})")
    print(f"torchconform: summary: {opts['out'] / 'summary.md'}")
    return status

"""Interleaved benchmark rounds of two torch environments (``torchconform bench --against``).

A session starts one pytest process per build, both at once.  For each
benchmark both run, they take turns: a turn is about 2 ms of calls of one
side, then the other side's, in random order within each pair of turns, and
so on (suite/perf/conftest.py: ``benchmark.pedantic`` whose untimed setup
waits for the turn).  Load from other processes on the machine -- which on a
shared 2-core VM changes within seconds and slows one process by up to 2x --
then hits both sides of a pair of turns alike and cancels out of their ratio;
rounds seconds apart (one process per side per round, as first built) did not
pair well enough for that.  Several sessions, each a fresh pair of processes,
sample per-process luck (memory layout, which core) as pyperf's worker
processes do.  asv's ``--interleave-rounds`` is the same idea at the level of
whole rounds.

Both sides run the checkout's own benchmarks (cwd and PYTHONPATH are the
checkout, ``--confcutdir suite/perf``), whatever torchconform the other
environment may have installed.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

# Names of the environment knobs of suite/perf/conftest.py (not imported: the checkout's conftest is
# not a package the parent needs to load).
INJECT = ("TORCHCONFORM_BENCH_INJECT_SLOWDOWN", "TORCHCONFORM_BENCH_INJECT_SLEEP_S")
MACHINE_INFO = "TORCHCONFORM_BENCH_MACHINE_INFO"
PAIR = "TORCHCONFORM_BENCH_PAIR"
CPU = "TORCHCONFORM_BENCH_CPU"

PROBE = ("import json, sys, torch, pytest, pytest_benchmark; "
         "print(json.dumps({'torch': torch.__version__, 'python': sys.version.split()[0]}))")


class EnvironmentProblem(Exception):
    """The other environment cannot run the benchmarks; the message is one line."""


@dataclass
class Side:
    name: str  # "A" or "B"
    python: str
    env: dict[str, str] = field(default_factory=dict)  # added to the environment of this side only
    torch: str = ""
    docs: list[dict] = field(default_factory=list)  # one pytest-benchmark document per round
    seconds: list[float] = field(default_factory=list)


def child_env(root: Path, extra: dict[str, str], machine_info: dict) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in INJECT}
    env["PYTHONPATH"] = os.pathsep.join([str(root)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    env[MACHINE_INFO] = json.dumps(machine_info)
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env.update(extra)
    return env


def probe(python: str, root: Path) -> dict:
    """torch and python version of ``python``; EnvironmentProblem when it cannot run the benchmarks."""
    path = Path(python)
    if not path.exists():
        raise EnvironmentProblem(f"--against {python}: no such file")
    if path.is_dir() or not os.access(path, os.X_OK):
        raise EnvironmentProblem(f"--against {python}: not an executable (give the environment's bin/python)")
    try:
        proc = subprocess.run([python, "-c", PROBE], cwd=root, env=child_env(root, {}, {}), capture_output=True,
                              text=True, timeout=180, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentProblem(f"--against {python}: cannot run it ({exc})") from None
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        why = lines[-1] if lines else f"exit status {proc.returncode}"
        raise EnvironmentProblem(f"--against {python}: not an environment with torch, pytest and pytest-benchmark "
                                 f"({why})")
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise EnvironmentProblem(f"--against {python}: unexpected output from its python") from None


SLICE_S = 0.002  # one turn's length: short, so load on the machine hits both sides of a pair alike
MIN_TURNS, MAX_TURNS = 5, 400


class Child:
    """One side's pytest process and the two pipes of the turn-taking protocol."""

    def __init__(self, side: Side, root: Path, out: Path, select: str | None, machine_info: dict, cpu: int | None):
        down_r, down_w = os.pipe()  # parent -> child
        up_r, up_w = os.pipe()  # child -> parent
        # Only pytest-benchmark among the installed plugins (PYTEST_DISABLE_PLUGIN_AUTOLOAD): the others cost
        # a second of start-up per process and nothing here uses them.
        cmd = [side.python, "-m", "pytest", "suite/perf", "-q", "-p", "no:cacheprovider", "-p",
               "pytest_benchmark.plugin", "-W", "ignore::pytest.PytestUnknownMarkWarning", "--confcutdir",
               "suite/perf", "--benchmark-only", "--benchmark-save-data", f"--benchmark-json={out}",
               "--benchmark-columns=median,iqr,rounds", "--benchmark-sort=fullname"]
        if select:
            cmd += ["-k", select]
        env = child_env(root, {**side.env, PAIR: f"{down_r},{up_w}", **({CPU: str(cpu)} if cpu is not None else {})},
                        machine_info)
        self.side, self.out = side, out
        self.log = out.with_suffix(".log")
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(cmd, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, pass_fds=(down_r, up_w))
        os.close(down_r)
        os.close(up_w)
        self.down = os.fdopen(down_w, "w")
        self.up = os.fdopen(up_r, "r")
        self.finished = False

    def send(self, **message) -> None:
        self.down.write(json.dumps(message) + "\n")
        self.down.flush()

    def receive(self) -> dict | None:
        """The next message, or None once the process has closed its end (its benchmarks are over)."""
        line = self.up.readline()
        if not line:
            self.finished = True
            return None
        return json.loads(line)

    def result(self) -> dict:
        self.proc.wait()
        self.down.close()
        self.up.close()
        if not self.out.is_file():
            tail = self.log.read_text(errors="replace").strip().splitlines()[-3:]
            raise EnvironmentProblem(f"side {self.side.name} ({self.side.python}) wrote no benchmark results "
                                     f"(pytest exit {self.proc.returncode}: {' | '.join(tail)})")
        doc = json.loads(self.out.read_text())
        if self.proc.returncode not in (0, 5):
            failed = [line for line in self.log.read_text(errors="replace").splitlines()
                      if line.startswith(("FAILED", "ERROR"))]
            doc.setdefault("torchconform", {})["failed"] = failed
        return doc


def plan(call_a: float, call_b: float, max_time: float) -> dict:
    """Calls per turn (about SLICE_S) and rounds, the same for both sides."""
    call = max(call_a, call_b, 1e-7)
    per_turn = max(1, int(SLICE_S / call))
    turns = min(MAX_TURNS, max(MIN_TURNS, int(max_time / (per_turn * call))))
    return {"per_turn": per_turn, "rounds": per_turn * turns, "turns": turns}


def session(a: Side, b: Side, root: Path, work: Path, number: int, max_time: float, select: str | None,
            machine_info: dict, rng: random.Random, timeout: float = 900) -> dict:
    """Both builds' processes at once; each benchmark both run is timed in alternating turns."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    cpu = cpus[number % len(cpus)] if cpus else None  # the same CPU for both sides; the next one next session
    children = {s.name: Child(s, root, work / f"{s.name}-{number}.json", select, machine_info, cpu)
                for s in (a, b)}
    watchdog = threading.Timer(timeout, lambda: [c.proc.kill() for c in children.values()])
    watchdog.start()
    orders: dict[str, int] = {"AB": 0, "BA": 0}
    try:
        order: list[str] = []
        for child in children.values():
            message = child.receive()
            if message and "items" in message and not order:
                order = message["items"]
        ready: dict[str, dict] = {}
        while True:
            for name, child in children.items():
                if name not in ready and not child.finished:
                    message = child.receive()
                    if message is not None:
                        ready[name] = message
            if not ready:
                break
            if len(ready) == 2 and ready["A"]["ready"] == ready["B"]["ready"]:
                paired = plan(ready["A"]["call"], ready["B"]["call"], max_time)
                for child in children.values():
                    child.send(**paired)
                for _ in range(paired["turns"]):
                    pair = ["A", "B"]
                    rng.shuffle(pair)
                    orders["".join(pair)] += 1
                    for name in pair:
                        children[name].send(go=True)
                        if children[name].receive() is None:
                            raise EnvironmentProblem(f"side {name} stopped during {ready[name]['ready']} "
                                                     f"(see {children[name].log})")
                ready.clear()
                continue
            # one side runs a benchmark the other skipped (or has finished): the earlier one runs alone
            position = {nodeid: i for i, nodeid in enumerate(order)}
            alone = min(ready, key=lambda n: position.get(ready[n]["ready"], -1))
            children[alone].send(solo=True)
            del ready[alone]
        return {"A": children["A"].result(), "B": children["B"].result(), "orders": orders}
    finally:
        watchdog.cancel()
        for child in children.values():
            if child.proc.poll() is None:
                child.proc.kill()
                child.proc.wait()


def interleave(a: Side, b: Side, root: Path, work: Path, *, sessions: int, duration: float | None,
               max_time: float, select: str | None, seed: int, machine_info: dict, log=print) -> dict[str, int]:
    """``sessions`` fresh pairs of processes (or, with ``duration``, as many as fit, at least 2); returns how
    often each order ran within a pair of turns."""
    rng = random.Random(seed)
    orders = {"AB": 0, "BA": 0}
    start = time.perf_counter()
    number = 0
    while True:
        number += 1
        began = time.perf_counter()
        result = session(a, b, root, work, number, max_time, select, machine_info, rng)
        for side in (a, b):
            side.docs.append(result[side.name])
            side.seconds.append(time.perf_counter() - began)
        for key, count in result["orders"].items():
            orders[key] += count
        elapsed = time.perf_counter() - start
        total = f"{number}/{sessions}" if duration is None else f"{number} ({elapsed:.0f}/{duration:.0f} s)"
        log(f"torchconform: session {total}: {sum(result['orders'].values())} pairs of turns in "
            f"{time.perf_counter() - began:.1f} s", flush=True)
        if duration is None and number >= sessions:
            return orders
        if duration is not None and number >= 2 and elapsed >= duration:
            return orders


def machine_info() -> dict:
    """pytest-benchmark's description of this machine, measured once for all rounds."""
    from pytest_benchmark.plugin import pytest_benchmark_generate_machine_info

    return pytest_benchmark_generate_machine_info()


def this_python() -> str:
    return sys.executable

"""Benchmarks run only when asked for: ``torchconform bench`` (or ``pytest suite/perf
--benchmark-only``).  A plain ``pytest`` of the project skips them, and
``--benchmark-disable`` runs each once as a smoke test.

Each saved JSON gets a ``torchconform`` block naming the torch build and the
machine, which ``torchconform bench`` uses to file and check results (from
``suite.results``, which needs only the standard library).  This conftest imports
nothing of the suite's conformance machinery: ``torchconform
bench --against`` runs these files with another environment's python
(``--confcutdir suite/perf``), which needs only torch, numpy, pytest and
pytest-benchmark.

Environment knobs (``torchconform bench --against`` passes the injections to side B only):

- ``TORCHCONFORM_BENCH_MACHINE_INFO``: pytest-benchmark's machine info as JSON, measured once
  by the parent, so each short round does not spend a second in py-cpuinfo;
- ``TORCHCONFORM_BENCH_PAIR=READ_FD,WRITE_FD``: set by ``torchconform bench --against``
  (torchconform/interleave.py), which runs one process per build at once and lets
  them take turns: each benchmark then runs as ``benchmark.pedantic`` rounds whose
  untimed ``setup`` waits for this side's turn;
- ``TORCHCONFORM_BENCH_CPU=N``: run on CPU N only (set by ``--against`` to the same CPU for
  both builds' processes of a session, so both meet the same neighbours);
- ``TORCHCONFORM_BENCH_INJECT_SLOWDOWN=PATTERN:FRACTION``: benchmarks whose name matches the
  glob PATTERN spin after each call for FRACTION of that call's own time -- a relative
  slowdown, to measure whether ``--against`` detects one (``torchconform/bench_power.py``).
"""
from __future__ import annotations

import fnmatch
import itertools
import json
import os
import time
from pathlib import Path

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

HERE = Path(__file__).parent
INJECT_SLOWDOWN = "TORCHCONFORM_BENCH_INJECT_SLOWDOWN"
MACHINE_INFO = "TORCHCONFORM_BENCH_MACHINE_INFO"
PAIR = "TORCHCONFORM_BENCH_PAIR"  # "READ_FD,WRITE_FD": pipes to the parent that takes turns between two builds
CPU = "TORCHCONFORM_BENCH_CPU"  # the one CPU both builds' processes of a session run on


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("benchmark_only", False) or config.getoption("benchmark_disable", False):
        return
    skip = pytest.mark.skip(reason="performance benchmark: run `torchconform bench` "
                                   "(or pytest suite/perf --benchmark-only; --benchmark-disable for one smoke pass)")
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(skip)


def pytest_configure(config: pytest.Config) -> None:
    # Before torch is imported, so its threads (and DataLoader workers, forked or spawned) inherit the mask.
    if os.environ.get(CPU) and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(os.environ[CPU])})


def pytest_benchmark_generate_machine_info(config):
    if os.environ.get(MACHINE_INFO):
        return json.loads(os.environ[MACHINE_INFO])
    return None  # pytest-benchmark's own (firstresult hook: None defers to it)


def pytest_benchmark_update_json(config: pytest.Config, benchmarks, output_json: dict) -> None:
    from suite.results import machine_key, torch_build  # stdlib only: another env needs nothing more than torch

    build = torch_build()
    output_json["torchconform"] = {"build": build["name"], "torch": build,
                                   "machine": machine_key(output_json.get("machine_info") or {})}


def slowdown_for(name: str, spec: str | None) -> float:
    """The injected relative slowdown for benchmark ``name`` from ``PATTERN:FRACTION`` (0 when none)."""
    if not spec:
        return 0.0
    pattern, _, fraction = spec.rpartition(":")
    return float(fraction) if fnmatch.fnmatchcase(name, pattern) else 0.0


def slowed(fn, fraction: float):
    """``fn`` followed by a busy wait of ``fraction`` of its own time: exactly ``1 + fraction`` times slower,
    whatever the machine's speed (a sleep would add a fixed time, and the scheduler rounds it)."""

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        until = start + (time.perf_counter() - start) * (1 + fraction)
        while time.perf_counter() < until:
            pass
        return result

    return wrapper


class Turns:
    """This process's side of the turn-taking protocol: JSON lines over two pipes (see interleave.py)."""

    def __init__(self, spec: str):
        read_fd, write_fd = (int(x) for x in spec.split(","))
        self.inbox = os.fdopen(read_fd, "r")
        self.outbox = os.fdopen(write_fd, "w")

    def send(self, **message) -> None:
        self.outbox.write(json.dumps(message) + "\n")
        self.outbox.flush()

    def receive(self) -> dict:
        line = self.inbox.readline()
        if not line:
            raise RuntimeError("the interleaving parent went away")
        return json.loads(line)


_turns: list[Turns] = []


def turns() -> Turns | None:
    if not _turns and os.environ.get(PAIR):
        _turns.append(Turns(os.environ[PAIR]))
    return _turns[0] if _turns else None


def pytest_collection_finish(session: pytest.Session) -> None:
    if turns():  # the parent pairs benchmarks by name, in this order
        turns().send(items=[item.name for item in session.items])


class Benchmark(BenchmarkFixture):
    """pytest-benchmark's fixture (the plugin insists on its type), with the injected slowdown applied, and
    under ``torchconform bench --against`` taking turns with the other build's process."""

    slowdown = 0.0

    def __call__(self, fn, *args, **kwargs):
        target = slowed(fn, self.slowdown) if self.slowdown else fn
        if turns():
            return self.take_turns(target, args, kwargs)
        return super().__call__(target, *args, **kwargs)

    def take_turns(self, fn, args, kwargs):
        """Pedantic rounds paired with the other build's process: the parent plans how many calls a turn
        has (about 2 ms) and says whose turn it is; ``setup`` (not timed) waits for it."""
        channel = turns()
        fn(*args, **kwargs)  # warm-up, then a call's time for the plan (over 5 ms at least, or one call)
        calls, start = 0, time.perf_counter()
        while not calls or time.perf_counter() - start < 0.005:
            fn(*args, **kwargs)
            calls += 1
        channel.send(ready=self.name, call=(time.perf_counter() - start) / calls)
        plan = channel.receive()
        if plan.get("solo"):  # the other build does not run this benchmark
            return super().__call__(fn, *args, **kwargs)
        calls = itertools.count()

        def wait_for_turn():
            number = next(calls)
            if number % plan["per_turn"] == 0:
                if number:
                    channel.send(done=self.name)
                channel.receive()

        self.extra_info["per_turn"] = plan["per_turn"]
        result = self.pedantic(fn, args=args, kwargs=kwargs, setup=wait_for_turn, rounds=plan["rounds"])
        channel.send(done=self.name)
        return result


@pytest.fixture
def benchmark(benchmark, request):
    """pytest-benchmark's fixture as :class:`Benchmark`."""
    benchmark.__class__ = Benchmark
    benchmark.slowdown = slowdown_for(request.node.name, os.environ.get(INJECT_SLOWDOWN))
    return benchmark


@pytest.fixture(autouse=True)
def _single_thread():
    """One intra-op thread: the machine is shared, and builds are compared on equal terms."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

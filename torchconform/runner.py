"""Run pytest in a child process and show per-rule progress as records arrive.

The suite runs in a subprocess of its own session so that a crash in a torch
kernel (segfault, abort) kills only the child; the records it flushed before
stay on disk and are aggregated anyway.  Ctrl-C reaches only this process
(the child is in its own session); it is forwarded once as SIGINT so pytest
stops cleanly, a second Ctrl-C (or a child that does not stop within
``GRACE_S``) kills the child's whole process group.  Whatever was recorded is
then aggregated and marked interrupted.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

GRACE_S = 30.0
_MARK = {"pass": "ok", "fail": "FAIL", "known_divergence": "known", "skipped": "skip"}


@dataclass
class RecordTail:
    """Reads the record files incrementally (only complete lines)."""
    directory: Path
    offsets: dict[Path, int] = field(default_factory=dict)

    def new_rows(self) -> list[dict]:
        rows = []
        for path in sorted(self.directory.glob("*.jsonl")):
            start = self.offsets.get(path, 0)
            try:
                with open(path, "rb") as fh:
                    fh.seek(start)
                    chunk = fh.read()
            except OSError:
                continue
            end = chunk.rfind(b"\n") + 1
            self.offsets[path] = start + end
            for line in chunk[:end].splitlines():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return rows


@dataclass
class Progress:
    """Terminal progress: an area header when the area changes, one line per rule record."""
    stream: TextIO
    quiet: bool = False
    area: str | None = None
    done: dict[str, int] = field(default_factory=lambda: {s: 0 for s in _MARK})

    def pytest_line(self, line: str) -> None:
        if not self.quiet:
            self.stream.write(line if line.endswith("\n") else line + "\n")
            self.stream.flush()

    def record(self, row: dict) -> None:
        status = row.get("status", "?")
        self.done[status] = self.done.get(status, 0) + 1
        area = row.get("area") or str(row.get("id", "?")).split(".", 1)[0]
        if area != self.area:
            self.area = area
            self.stream.write(f"== area {area} ==\n")
        first = (row.get("detail") or "").strip().splitlines()[:1]
        note = f"  {first[0][:120]}" if first and status != "pass" else ""
        self.stream.write(f"   {_MARK.get(status, status):5} {row.get('id')} [{row.get('device')}] "
                          f"{row.get('examples', 0)} ex{note}\n")
        self.stream.flush()


@dataclass
class ChildResult:
    returncode: int
    interrupted: bool
    timed_out: bool = False  # stopped (like Ctrl-C) because ``timeout`` ran out


def run_child(cmd: list[str], cwd: Path, env: dict[str, str], log_path: Path,
              on_line: Callable[[str], None], on_poll: Callable[[], None], timeout: float | None = None,
              grace: float = GRACE_S) -> ChildResult:
    """Run ``cmd``; call ``on_line`` per output line and ``on_poll`` after each line and at the end.

    ``timeout``: seconds after which the child is stopped as by a Ctrl-C (SIGINT to its group, SIGKILL
    ``grace`` seconds later) -- how a fuzzing campaign ends on time."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, bufsize=0,
                            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
    state = {"interrupted": False, "killer": None, "timed_out": False}

    def kill_group() -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def on_signal(signum: int, frame) -> None:
        if state["interrupted"]:
            kill_group()
            return
        state["interrupted"] = True
        try:
            os.killpg(proc.pid, signal.SIGINT)
        except (ProcessLookupError, PermissionError):
            pass
        timer = threading.Timer(grace, kill_group)
        timer.daemon = True
        timer.start()
        state["killer"] = timer

    def on_timeout() -> None:
        if not state["interrupted"]:
            state["timed_out"] = True
            on_signal(signal.SIGINT, None)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    deadline = threading.Timer(timeout, on_timeout) if timeout is not None else None
    if deadline is not None:
        deadline.daemon = True
        deadline.start()
    try:
        with open(log_path, "ab") as log:
            assert proc.stdout is not None
            for raw in iter(proc.stdout.readline, b""):
                log.write(raw)
                log.flush()
                on_line(raw.decode("utf-8", errors="replace").rstrip("\n"))
                on_poll()
        returncode = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if deadline is not None:
            deadline.cancel()
        if state["killer"] is not None:
            state["killer"].cancel()
        # Leave nothing behind: DataLoader workers or ranks that outlived pytest share its process group.
        kill_group()
    on_poll()
    # A child killed by a signal (segfault in a kernel, our SIGKILL) reports -signum.
    return ChildResult(returncode=returncode, interrupted=state["interrupted"] and not state["timed_out"],
                       timed_out=state["timed_out"])


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM it if this CLI is killed outright (SIGKILL gives no chance to forward)."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("PYTHONFAULTHANDLER", "1")  # a segfault in torch prints the Python stack into the log
    return env


def python() -> str:
    return sys.executable

"""``torchconform repro PATH``: replay one repro script and say whether it still reproduces.

Exit 1: the divergence reproduces; 0: torch conforms now; 2: not a repro
script (missing file, not written by torchconform), or the replay crashed or
timed out without a verdict.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

MARKER = '"""torchconform repro: '


def repro(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if not path.is_file():
        print(f"torchconform: error: {path}: no such repro script", file=sys.stderr)
        return 2
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:4096]
    except OSError as exc:
        print(f"torchconform: error: {path}: unreadable ({exc.strerror or exc})", file=sys.stderr)
        return 2
    if MARKER not in head:
        print(f"torchconform: error: {path}: not a torchconform repro script", file=sys.stderr)
        return 2
    # -I: isolated, like on a machine with only torch -- the script must need nothing from this checkout.
    cmd = [sys.executable, "-I", str(path.resolve())] + ([args.device] if args.device else [])
    try:
        proc = subprocess.run(cmd, cwd=path.resolve().parent, capture_output=True, text=True, timeout=args.timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        print(f"torchconform: error: {path}: no verdict within {args.timeout:g}s", file=sys.stderr)
        return 2
    sys.stdout.write(proc.stdout)
    if proc.returncode == 1 and "REPRODUCES" in proc.stdout:
        print(f"torchconform: {path.name}: STILL REPRODUCES")
        return 1
    if proc.returncode == 0 and "CONFORMS" in proc.stdout:
        print(f"torchconform: {path.name}: no longer reproduces (torch conforms)")
        return 0
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    print(f"torchconform: error: {path}: replay ended without a verdict (exit {proc.returncode}): {tail}",
          file=sys.stderr)
    return 2

"""Torch side of the ``data`` area: runners ``run_<thing>(case, device)``, one module per topic.

Every runner recomputes torch's outcome from a Case alone, with only torch, numpy, the standard
library, ``conform`` and ``suite.data.cases`` (the repro writer inlines what it reaches).  Outcomes are
plain data: ints, strs, lists, dicts, numpy arrays, ``Raised``.

Multi-worker runners start their workers with the Case's start method (``fork``, ``spawn`` or
``forkserver`` passed as ``multiprocessing_context``; ``default`` passes none: fork on Linux up to Python
3.13, forkserver from 3.14), so the probes, datasets and functions they hand the DataLoader are
top-level definitions a spawned worker imports by module path.  They use a generous DataLoader
``timeout`` or none (the default: the main process polls its workers' liveness; the tests' own timeouts
stop a hang), and shut the iterator down before returning.
"""

"""Torch side of the ``data`` area: runners ``run_<thing>(case, device)``, one module per topic.

Every runner recomputes torch's outcome from a Case alone, with only torch, numpy, the standard
library, ``conform`` and ``suite.data.cases`` (the repro writer inlines what it reaches).  Outcomes are
plain data: ints, strs, lists, dicts, numpy arrays, ``Raised``.

Multi-worker runners always pass ``multiprocessing_context="fork"`` (the Linux default up to Python
3.13; 3.14 switched to forkserver, so we name it) and a DataLoader ``timeout`` so a hung worker turns
into an error instead of a hang, and they shut the iterator down before returning.
"""

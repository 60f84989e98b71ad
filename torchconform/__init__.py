"""torchconform: a differential conformance test suite and fuzzer for PyTorch builds.

The command-line entry point is :func:`torchconform.cli.main` (``torchconform`` /
``python -m torchconform``).
"""
__version__ = "0.1.0"

"""Executable specifications of torch semantics, one module per area.

A reference never calls the torch function it specifies; where it uses a torch
primitive that is not under test in its area, the call site says so.
"""


def load_all():
    """Import every area's reference so that ``conform.rules.RULES`` is complete."""
    import importlib

    from conform.rules import AREAS, RULES

    for area in AREAS:
        try:
            importlib.import_module(f"reference.{area}")
        except ModuleNotFoundError as exc:
            if exc.name != f"reference.{area}":
                raise
    return RULES

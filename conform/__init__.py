"""The core every package may import, and that imports nothing of the project.

- ``conform.outcome``: outcomes (``Raised``, ``OneOf``, ``Finite``), ``Mismatch`` and ``compare``;
- ``conform.tolerance``: ``Tol``, ``EXACT`` and the one derivation, ``tolerance()``;
- ``conform.rules``: the rule registry (``rule``, ``RULES``, ``AREAS``);
- ``conform.expect``: ``Expect``, what a reference returns per rule.

Only the standard library and numpy: the repro writer inlines these modules into
standalone scripts.  Layers (enforced by ``tests/test_layers.py``):
``conform`` <- ``reference`` <- ``suite`` <- ``reports`` <- ``torchconform``.
"""

"""Executable specifications of torch semantics, one module per area.

A reference never calls the torch function it specifies; where it uses a torch
primitive that is not under test in its area, the call site says so.
"""

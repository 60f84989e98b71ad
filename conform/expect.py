"""What a reference returns for a case: one ``Expect`` per rule the case exercises.

The reference decides which rule a result belongs to (the rule's check order
lives next to the text it cites), the expected outcome and its tolerance.  The
test runs torch once (``conform.check(case, expects, run=...)``) and the plugin
compares each expectation with its part of the actual outcome, so the repro
replays exactly what was compared.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conform.tolerance import EXACT, Tol


@dataclass(frozen=True)
class Expect:
    """``rule``'s expected outcome.  ``key`` selects the part of torch's outcome it is compared with:
    None (the whole outcome), a dict key / sequence index, or a tuple of them (a path)."""

    rule: str
    expected: Any
    tol: Tol = EXACT
    key: Any = None

    def select(self, actual: Any) -> Any:
        return select(actual, self.key)


def select(actual: Any, key: Any) -> Any:
    """The part of ``actual`` at ``key`` (see ``Expect``); an outcome without that part (an exception,
    a missing key) is returned whole, so that the comparison reports it."""
    path = key if isinstance(key, tuple) else (() if key is None else (key,))
    for step in path:
        try:
            actual = actual[step]
        except (KeyError, IndexError, TypeError):
            return actual
    return actual

"""The known-divergence registry: where torch differs from its documented behaviour.

Each area keeps its entries in ``suite/<area>/divergences.py`` as a list
``DIVERGENCES`` of ``Divergence``.  An entry is precise:

- ``when(case)`` says for which Cases torch diverges (never a whole test);
- ``torch_does(case, expected)`` says what torch returns instead (None: any
  deviation from the reference within ``when`` is accepted -- use only where
  torch's wrong answer is itself unspecified, and say so in ``reason``);
- ``torch`` is the version range (PEP 440 specifier) and ``devices`` the device
  types it was observed on.  The range is *measured*: it starts at the first release
  of the matrix (``reports/matrix/``) where the repro reproduces and has an upper
  bound only where a later release was observed to fix it
  (``tests/test_registry_ranges.py`` holds it to the committed matrix data);
- ``also_rules`` are further rules whose checks the same behaviour affects: the
  entry is recognised under each of them, not only under ``rule``, where it was
  first seen;
- ``bug_in`` says which side is wrong: ``"torch"`` (it contradicts its documented
  contract) or ``"docs"`` (maintainers changed the behaviour on purpose and the
  reference follows the change; the documentation lags).  ``arguable`` marks
  entries a second reading judged a matter of taste (shown as such in the report);
- ``repro`` is a minimal Case and ``reference_fn(case)`` / ``torch_fn(case, device)``
  compute its two outcomes; ``suite/test_divergences.py`` runs it on every run,
  so an entry that stops reproducing turns into a failure ("fixed").

A drawn example that matches an entry and shows exactly the registered
behaviour is recorded as ``known_divergence``; one that conforms although the
entry says it should not, or deviates differently, is a failure.
"""
from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Any, Callable

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from reference.rules import AREAS
from suite.compare import EXACT, Tol


@dataclass(frozen=True)
class Divergence:
    id: str
    rule: str
    torch: str
    reason: str
    evidence: str
    when: Callable[[Any], bool]
    torch_does: Callable[[Any, Any], Any] | None
    repro: Any
    reference_fn: Callable[[Any], Any]
    torch_fn: Callable[[Any, str], Any]
    devices: tuple[str, ...] = ("*",)
    also_rules: tuple[str, ...] = ()
    bug_in: str = "torch"
    arguable: bool = False
    # The tolerance the area's test uses for this rule (a Tol, or a function of the
    # case for tolerances derived per example); the repro check uses it too.
    tol: Tol | Callable[[Any], Tol] = EXACT

    def tol_for(self, case: Any) -> Tol:
        return self.tol(case) if callable(self.tol) else self.tol

    @property
    def rules(self) -> tuple[str, ...]:
        return (self.rule, *self.also_rules)

    def applies(self, rule: str, case: Any, device: str, torch_version: str) -> bool:
        if rule not in self.rules or not applies_to_build(self.torch, torch_version):
            return False
        if "*" not in self.devices and device.split(":")[0] not in self.devices:
            return False
        try:
            return bool(self.when(case))
        except Exception:  # a predicate written for another Case type
            return False


def applies_to_build(spec: str, torch_version: str) -> bool:
    version = Version(torch_version.split("+")[0])
    return SpecifierSet(spec).contains(version, prereleases=True)


@functools.cache
def all_divergences() -> tuple[Divergence, ...]:
    entries: list[Divergence] = []
    for area in AREAS:
        try:
            module = importlib.import_module(f"suite.{area}.divergences")
        except ModuleNotFoundError as exc:
            if exc.name in (f"suite.{area}", f"suite.{area}.divergences"):
                continue
            raise
        entries.extend(module.DIVERGENCES)
    ids = [e.id for e in entries]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise ValueError(f"duplicate divergence ids: {sorted(dupes)}")
    return tuple(entries)


def find(rule: str, case: Any, device: str, torch_version: str) -> Divergence | None:
    for entry in all_divergences():
        if entry.applies(rule, case, device, torch_version):
            return entry
    return None

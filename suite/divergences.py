"""The known-divergence registry: where torch differs from its documented behaviour.

Each area keeps its entries in ``suite/<area>/divergences.py`` as a list
``DIVERGENCES`` of ``Divergence``.  An entry is precise:

- ``case_type`` is the Case type (or tuple of types) the entry is about, and
  ``when(case)`` a plain predicate on such a Case saying where torch diverges
  (never a whole test).  An exception in ``when`` is a bug of the entry and
  propagates;
- ``torch_does(case, expected)`` says what torch returns instead: always a
  checkable outcome (where torch's value is unspecified, a checkable property
  such as ``conform.outcome.Finite(shape)``);
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
- ``repro`` is a minimal Case; ``expect(case, device)`` is the reference's
  expectations for a case (the one for ``rule`` is used) and ``run(case, device)``
  the torch side the area's test runs; ``suite/test_divergences.py`` runs the
  repro on every run, so an entry that stops reproducing turns into a failure
  ("fixed").

At most one entry may apply to an example: ``find`` raises on overlapping entries.

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

from conform.rules import AREAS
from conform.expect import Expect


@dataclass(frozen=True)
class Divergence:
    id: str
    rule: str
    torch: str
    reason: str
    evidence: str
    case_type: type | tuple[type, ...]
    when: Callable[[Any], bool]
    torch_does: Callable[[Any, Any], Any]
    repro: Any
    expect: Callable[[Any, str], Expect | list[Expect]]
    run: Callable[[Any, str], Any]
    devices: tuple[str, ...] = ("*",)
    also_rules: tuple[str, ...] = ()
    bug_in: str = "torch"
    arguable: bool = False

    def expectation(self, case: Any, device: str) -> Expect:
        """The reference's expectation (expected outcome, tolerance, part) for this entry's rule on ``case``."""
        expects = self.expect(case, device)
        expects = [expects] if isinstance(expects, Expect) else list(expects)
        for e in expects:
            if e.rule == self.rule:
                return e
        raise LookupError(f"{self.id}: the reference expects nothing of {self.rule} for its repro")

    @property
    def rules(self) -> tuple[str, ...]:
        return (self.rule, *self.also_rules)

    def applies(self, rule: str, case: Any, device: str, torch_version: str) -> bool:
        if rule not in self.rules or not applies_to_build(self.torch, torch_version):
            return False
        if "*" not in self.devices and device.split(":")[0] not in self.devices:
            return False
        return isinstance(case, self.case_type) and bool(self.when(case))


@functools.lru_cache(maxsize=None)
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


class OverlappingEntries(Exception):
    """Two registry entries claim one example: the registry must say which behaviour torch has."""


_BY_RULE: list = [None, {}]  # (the registry it indexes, rule -> its entries)


def _entries_by_rule() -> dict[str, tuple[Divergence, ...]]:
    """Each rule's entries: find() runs for every checked rule of every example, so it looks up, not scans
    (rebuilt whenever all_divergences() hands back another registry, as tests that patch it do)."""
    entries = all_divergences()
    if _BY_RULE[0] is not entries:
        by_rule: dict[str, list[Divergence]] = {}
        for entry in entries:
            for rule in entry.rules:
                by_rule.setdefault(rule, []).append(entry)
        _BY_RULE[:] = [entries, {rule: tuple(found) for rule, found in by_rule.items()}]
    return _BY_RULE[1]


def find(rule: str, case: Any, device: str, torch_version: str) -> Divergence | None:
    found = [e for e in _entries_by_rule().get(rule, ()) if e.applies(rule, case, device, torch_version)]
    if len(found) > 1:
        raise OverlappingEntries(f"entries {', '.join(e.id for e in found)} all apply to {rule} on {case!r}")
    return found[0] if found else None

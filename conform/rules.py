"""Rule ids, statements and citations.

Each area module registers its rules next to the code that implements them::

    SETATTR_PARAMETER = rule("module.setattr.parameter",
        "Assigning a Parameter registers it in _parameters and removes the name from "
        "__dict__, _buffers and _modules.",
        "torch/nn/modules/module.py: Module.__setattr__")

The id's first component is the area.  ``RULES`` is the registry the recorder,
the report and the repro writer read; ``reference.load_all()`` fills it.
"""
from __future__ import annotations

from dataclasses import dataclass

AREAS = ("module", "data", "norm", "parallel", "attention")


@dataclass(frozen=True)
class Rule:
    id: str
    statement: str
    citation: str

    @property
    def area(self) -> str:
        return self.id.split(".", 1)[0]


RULES: dict[str, Rule] = {}


def rule(id: str, statement: str, citation: str) -> str:
    """Register a rule and return its id (so modules keep ids as constants)."""
    area = id.split(".", 1)[0]
    if area not in AREAS:
        raise ValueError(f"rule {id!r}: unknown area {area!r}")
    known = RULES.get(id)
    if known is not None and known != Rule(id, statement, citation):
        raise ValueError(f"rule {id!r} registered twice with different text")
    RULES[id] = Rule(id, statement, citation)
    return id

"""Registered divergences of the nn containers (ContainerProgram cases)."""
from __future__ import annotations

import functools
import re

from conform.outcome import Raised
from reference.module import containers as ct_ref
from suite.divergences import Divergence
from suite.module.cases import ContainerProgram, CtOp
from suite.module.torch_side.containers import run_container_program

_container_entry = functools.partial(Divergence, case_type=ContainerProgram, run=run_container_program,
                                     expect=lambda case, device: ct_ref.expectations(case, device))


def _modulelist_insert_out_of_list_range(case) -> bool:
    if case.container != "ModuleList" or not case.ops or case.ops[-1].kind != "insert":
        return False
    before = ct_ref.run(ContainerProgram(case.container, case.init, case.ops[:-1], case.named))
    return not 0 <= case.ops[-1].args[0] <= len(before[1])


def _torch_modulelist_insert(case, expected):
    """What ModuleList.insert does: shift keys str(i) <- str(i-1) for i in range(n, index, -1), then set
    key str(index); a missing key raises KeyError after the earlier shifts were made."""
    _, keys, labels = ct_ref.run(ContainerProgram(case.container, case.init, case.ops[:-1], case.named))
    d = dict(zip(keys, labels))
    index, new = case.ops[-1].args
    try:
        for i in range(len(d), index, -1):
            d[str(i)] = d[str(i - 1)]
        d[str(index)] = new
        result = None
    except KeyError as exc:
        result = Raised("KeyError", re.escape(str(exc)))
    return result, list(d), list(d.values())


def _parameterdict_missing_key(case) -> bool:
    if case.container != "ParameterDict" or not case.ops or case.ops[-1].kind not in ("getitem", "pop") \
            or not isinstance(case.ops[-1].args[0], str):  # a non-str key raises TypeError, as documented
        return False
    before = ct_ref.run(ContainerProgram(case.container, case.init, case.ops[:-1], case.named))
    return case.ops[-1].args[0] not in before[1]


def _parameterdict_bad_setitem(case) -> bool:
    # a missing key looked up last is the missing-key entry's (entries must not overlap)
    return (case.container == "ParameterDict" and any(o.kind == "setitem" and (o.args[0] == "" or "." in o.args[0])
                                                      for o in case.ops) and not _parameterdict_missing_key(case))


def _torch_parameterdict_bad_setitem(case, expected):
    # the key stays in ParameterDict._keys although registration failed: len() counts it
    result, keys, labels = expected
    bad = [o.args[0] for o in case.ops if o.kind == "setitem" and (o.args[0] == "" or "." in o.args[0])]
    new_bad = [k for k in dict.fromkeys(bad) if k not in keys]
    if case.ops[-1].kind == "len":
        result = result + len(new_bad)
    return result, keys + new_bad, labels + [("unreachable",)] * len(new_bad)


DIVERGENCES = [
    _container_entry(
        id="module-modulelist-insert-index",
        rule=ct_ref.CT_INSERT,
        torch=">=2.4",
        reason="ModuleList.insert does not follow list semantics outside 0..len: a negative index raises KeyError "
               "after having shifted (and so duplicated) entries; an index past the end creates a key with a gap "
               "(e.g. '5' in a list of 3), so len() and indexing disagree.",
        evidence="torch/nn/modules/container.py: ModuleList.insert has no index normalisation or range check "
                 "(Sequential.insert has both); docstring: 'Insert a given module before a given index in the list.' "
                 "Repro: ml = nn.ModuleList([a, b, c]); ml.insert(-1, d) -> KeyError '-1', ml now has 4 entries.",
        when=_modulelist_insert_out_of_list_range,
        torch_does=_torch_modulelist_insert,
        repro=ContainerProgram("ModuleList", ("m1", "m2"), (CtOp("insert", (-1, "m3")),)),
    ),
    _container_entry(
        id="module-sequential-imul-named",
        rule=ct_ref.CT_MUL,
        torch=">=2.4",
        reason="Sequential *= n on a Sequential built from an OrderedDict (non-numeric keys) raises KeyError '0' "
               "for n >= 2 (and keeps the names for n == 1), while Sequential * n works and renumbers.",
        evidence="torch/nn/modules/container.py: Sequential.__imul__ reads self._modules[str(i)], assuming keys "
                 "'0'..'n-1'; __mul__ iterates the modules instead.",
        when=lambda case: case.named and case.ops and case.ops[-1].kind == "imul" and case.ops[-1].args[0] >= 1,
        torch_does=lambda case, expected: (
            (None if case.ops[-1].args[0] == 1 else Raised("KeyError", "'0'")),
            [k for k, _ in case.init], [v for _, v in case.init]),
        repro=ContainerProgram("Sequential", (("a", "m1"), ("b", "m2")), (CtOp("imul", (2,)),), named=True),
    ),
    _container_entry(
        id="module-parameterdict-missing-key-attributeerror",
        rule=ct_ref.CT_PARAMDICT,
        torch=">=2.4",
        reason="ParameterDict[key] and ParameterDict.pop(key) raise AttributeError for a missing key instead of "
               "KeyError, although ParameterDict 'can be indexed like a regular Python dictionary'.",
        evidence="torch/nn/modules/container.py: ParameterDict.__getitem__ returns getattr(self, key) "
                 "(Module.__getattr__ raises AttributeError); ModuleDict raises KeyError.",
        when=_parameterdict_missing_key,
        torch_does=lambda case, expected: (Raised("AttributeError", "has no attribute"), expected[1], expected[2]),
        repro=ContainerProgram("ParameterDict", (), (CtOp("getitem", ("zz",)),)),
    ),
    _container_entry(
        id="module-parameterdict-failed-setitem-keeps-key",
        rule=ct_ref.CT_PARAMDICT,
        torch=">=2.4",
        reason="A ParameterDict assignment that fails (key '' or containing '.') still adds the key to the dict's "
               "key list: len() counts it and iteration yields a key whose lookup fails.",
        evidence="torch/nn/modules/container.py: ParameterDict.__setitem__ does self._keys[key] = None before "
                 "setattr/register_parameter validate the name.",
        when=_parameterdict_bad_setitem,
        torch_does=_torch_parameterdict_bad_setitem,
        repro=ContainerProgram("ParameterDict", (), (CtOp("setitem", ("x.y", "p0")), CtOp("len"))),
    ),
]


def _sliced_append_collides(case) -> bool:
    if case.container != "Sequential" or not case.ops or case.ops[-1].kind != "slice_append":
        return False
    _, keys, labels = ct_ref.run(ContainerProgram(case.container, case.init, case.ops[:-1], case.named))
    chosen = keys[slice(*case.ops[-1].args[:3])]
    return str(len(chosen)) in chosen


def _torch_sliced_append(case, expected):
    _, keys, labels = ct_ref.run(ContainerProgram(case.container, case.init, case.ops[:-1], case.named))
    s = slice(*case.ops[-1].args[:3])
    part = dict(zip(keys[s], labels[s]))
    part[str(len(part))] = case.ops[-1].args[3]  # add_module(str(len(self)), module) overwrites
    return (len(part), list(part.values())), expected[1], expected[2]


DIVERGENCES += [
    _container_entry(
        id="module-sequential-slice-append-overwrites",
        rule=ct_ref.CT_APPEND,
        torch=">=2.4",
        reason="A slice of a Sequential keeps the original keys (s[1:] has keys '1', '2'); append (and +=) then "
               "register the new module under str(len(self)), which can be an existing key: the last module is "
               "silently replaced instead of a module being appended (len stays the same). insert raises KeyError.",
        evidence="torch/nn/modules/container.py: Sequential.__getitem__(slice) builds OrderedDict(list(items)[idx]) "
                 "without renumbering; Sequential.append does add_module(str(len(self)), module) ('Append a given "
                 "module to the end'). Repro: s = nn.Sequential(a, b, c)[1:]; s.append(d); len(s) == 2, c is gone.",
        when=_sliced_append_collides,
        torch_does=_torch_sliced_append,
        repro=ContainerProgram("Sequential", ("m1", "m2", "m3"), (CtOp("slice_append", (1, None, None, "m4")),)),
    ),
]

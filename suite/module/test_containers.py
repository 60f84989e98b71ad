"""Random op sequences on the five containers against the model
(reference/module/containers.py); the outcome of every prefix of the program is
checked (result of its last op, keys, item identities)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference.module import containers as ref
from suite.module.cases import MODS, PARS, TENS, ContainerProgram, CtOp
from suite.module.torch_side.containers import run_container_program

KEYS = st.sampled_from(["a", "b", "c", "d"])
IDX = st.integers(-5, 5)
SLICES = st.tuples(st.one_of(st.none(), IDX), st.one_of(st.none(), IDX), st.sampled_from([None, 1, 2, -1]))


def list_ops(container, items):
    labels = st.sampled_from(MODS if container != "ParameterList" else PARS + TENS)
    ops = [st.builds(CtOp, st.just("getitem"), st.tuples(IDX)), st.builds(CtOp, st.just("getslice"), SLICES),
           st.builds(CtOp, st.just("setitem"), st.tuples(IDX, labels)),
           st.builds(CtOp, st.just("append"), st.tuples(labels)),
           st.builds(CtOp, st.just("extend"), st.lists(labels, max_size=3).map(tuple)),
           st.just(CtOp("len"))]
    if container != "ParameterList":
        ops += [st.builds(CtOp, st.just("delitem"), st.tuples(IDX)), st.builds(CtOp, st.just("pop"), st.tuples(IDX)),
                st.builds(CtOp, st.just("delslice"), SLICES),
                st.builds(CtOp, st.just("add"), st.lists(labels, max_size=3).map(tuple)),
                st.builds(CtOp, st.just("iadd"), st.lists(labels, max_size=3).map(tuple))]
    if container != "ParameterList":
        ops.append(st.just(CtOp("repr")))
    if container == "Sequential":
        ops += [st.builds(CtOp, st.just("slice_append"), st.tuples(st.just(0), st.none(), st.just(None), labels)),
                # a slice not starting at 0 keeps its original keys: registered divergence region
                st.builds(CtOp, st.just("slice_append"), st.tuples(IDX, IDX, st.sampled_from([None, 2]), labels)),
                st.builds(CtOp, st.just("insert"), st.tuples(IDX, labels)),
                st.builds(CtOp, st.sampled_from(["mul", "imul"]), st.tuples(st.integers(-1, 3)))]
    if container == "ModuleList":
        # indices outside [0, len] hit a registered divergence (test_modulelist_insert_index)
        ops += [st.builds(CtOp, st.just("insert"), st.tuples(st.integers(0, 0), labels))]
    return st.one_of(ops)


def dict_ops(container):
    labels = st.sampled_from(MODS if container == "ModuleDict" else PARS + TENS)
    ops = [st.builds(CtOp, st.sampled_from(["delitem", "pop", "contains"]), st.tuples(KEYS)),
           st.builds(CtOp, st.just("setitem"), st.tuples(KEYS, labels)),
           st.builds(CtOp, st.just("update"), st.lists(st.tuples(KEYS, labels), max_size=3,
                                                       unique_by=lambda kv: kv[0]).map(tuple)),
           st.just(CtOp("len"))]
    if container == "ModuleDict":
        ops += [st.builds(CtOp, st.just("getitem"), st.tuples(KEYS)), st.just(CtOp("repr"))]
    else:
        # a missing key is a registered divergence (AttributeError): only present keys here
        ops += [st.just(CtOp("popitem")), st.builds(CtOp, st.just("get"), st.tuples(KEYS)),
                st.builds(CtOp, st.just("setdefault"), st.tuples(KEYS, labels))]
    return st.one_of(ops)


@st.composite
def programs(draw, container):
    if container in ("ModuleDict", "ParameterDict"):
        labels = st.sampled_from(MODS if container == "ModuleDict" else PARS + TENS)
        init = tuple(draw(st.lists(st.tuples(KEYS, labels), max_size=3, unique_by=lambda kv: kv[0])))
        ops = tuple(draw(st.lists(dict_ops(container), max_size=8)))
    else:
        init = tuple(draw(st.lists(st.sampled_from(MODS if container != "ParameterList" else PARS + TENS),
                                   max_size=4)))
        ops = tuple(draw(st.lists(list_ops(container, init), max_size=8)))
    return ContainerProgram(container, init, ops)


LIST_RULES = (ref.CT_INDEX, ref.CT_SLICE, ref.CT_SETITEM, ref.CT_DELETE, ref.CT_APPEND, ref.CT_INSERT, ref.CT_ADD)
CONTAINER_RULES = {
    "Sequential": LIST_RULES + (ref.CT_MUL, ref.CT_REPR),
    "ModuleList": LIST_RULES + (ref.CT_REPR,),
    "ModuleDict": (ref.CT_MODULEDICT, ref.CT_REPR),
    "ParameterList": (ref.CT_INDEX, ref.CT_SLICE, ref.CT_PARAMLIST),
    "ParameterDict": (ref.CT_PARAMDICT,),
}


@pytest.mark.parametrize("container", [pytest.param(c, marks=pytest.mark.rules(*rules))
                                       for c, rules in CONTAINER_RULES.items()])
@settings(max_examples=max(settings.default.max_examples, 100))  # ~5 ms an example
@given(data=st.data())
def test_container_programs(conform, device, container, data):
    program = data.draw(programs(container))
    for i in range(1, len(program.ops) + 1):
        prefix = ContainerProgram(program.container, program.init, program.ops[:i], program.named)
        conform.check(prefix, ref.expectations(prefix), run=run_container_program)


@pytest.mark.rules(ref.CT_INSERT)
@given(init=st.lists(st.sampled_from(MODS), min_size=1, max_size=4).map(tuple), index=st.integers(-6, 6),
       new=st.sampled_from(MODS))
def test_modulelist_insert_index(conform, device, init, index, new):
    program = ContainerProgram("ModuleList", init, (CtOp("insert", (index, new)),))
    conform.check(program, ref.expectations(program), run=run_container_program)


@pytest.mark.rules(ref.CT_MUL)
@given(keys=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3, unique=True),
       labels=st.lists(st.sampled_from(MODS), min_size=3, max_size=3), n=st.integers(1, 3))
def test_named_sequential_imul(conform, device, keys, labels, n):
    program = ContainerProgram("Sequential", tuple(zip(keys, labels)), (CtOp("imul", (n,)),), named=True)
    conform.check(program, ref.expectations(program), run=run_container_program)


@pytest.mark.rules(ref.CT_PARAMDICT)
@given(init=st.lists(st.tuples(KEYS, st.sampled_from(PARS)), max_size=2, unique_by=lambda kv: kv[0]).map(tuple),
       op=st.one_of(st.builds(CtOp, st.just("setitem"), st.tuples(st.sampled_from(["x.y", ""]), st.sampled_from(PARS))),
                    st.builds(CtOp, st.just("getitem"), st.tuples(st.just("zz")))))
def test_parameterdict_bad_keys(conform, device, init, op):
    program = ContainerProgram("ParameterDict", init, (op, CtOp("len")) if op.kind == "setitem" else (op,))
    conform.check(program, ref.expectations(program), run=run_container_program)


@pytest.mark.rules(ref.CT_APPEND)
@given(init=st.lists(st.sampled_from(MODS), min_size=2, max_size=4).map(tuple), start=st.integers(1, 3),
       new=st.sampled_from(MODS))
def test_sequential_slice_append(conform, device, init, start, new):
    program = ContainerProgram("Sequential", init, (CtOp("slice_append", (start, None, None, new)),))
    conform.check(program, ref.expectations(program), run=run_container_program)

"""Random op sequences on the five containers against the model
(reference/module/containers.py); the outcome of every prefix of the program is
checked (result of its last op, keys, item identities)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference.module import containers as ref
from suite.module.cases import MODS, PARS, ContainerProgram, CtOp
from suite.module.strategies import KEYS, programs
from suite.module.torch_side.containers import run_container_program

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

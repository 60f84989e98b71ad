"""Random op sequences on the five containers against the model
(reference/module/containers.py); the outcome of every prefix of the program is
checked (result of its last op, keys, item identities)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference.module import containers as ref
from reference.module.traversal import DIR
from suite.module.cases import DIR_PROBE, MODS, PARS, ContainerProgram, CtOp
from suite.module.strategies import KEYS, programs
from suite.module.torch_side.containers import run_container_program

LIST_RULES = (ref.CT_INDEX, ref.CT_SLICE, ref.CT_SETITEM, ref.CT_DELETE, ref.CT_APPEND, ref.CT_INSERT, ref.CT_ADD,
              ref.CT_CALL, DIR)
DICT_RULES = (ref.CT_DICT_VIEWS, ref.CT_DICT_UPDATE, ref.CT_CALL, ref.CT_REPR)
CONTAINER_RULES = {
    "Sequential": LIST_RULES + (ref.CT_MUL, ref.CT_REPR),
    "ModuleList": LIST_RULES + (ref.CT_REPR,),
    "ModuleDict": (ref.CT_MODULEDICT,) + DICT_RULES,
    "ParameterList": (ref.CT_INDEX, ref.CT_SLICE, ref.CT_PARAMLIST, ref.CT_CALL, ref.CT_REPR, DIR),
    "ParameterDict": (ref.CT_PARAMDICT,) + DICT_RULES,
}


def _check_prefixes(conform, device, program):
    for i in range(1, len(program.ops) + 1):
        prefix = ContainerProgram(program.container, program.init, program.ops[:i], program.named)
        conform.check(prefix, ref.expectations(prefix, device), run=run_container_program)


@pytest.mark.parametrize("container", [pytest.param(c, marks=pytest.mark.rules(*rules))
                                       for c, rules in CONTAINER_RULES.items()])
@settings(max_examples=max(settings.default.max_examples, 100))  # ~5 ms an example
@given(data=st.data())
def test_container_programs(conform, device, container, data):
    _check_prefixes(conform, device, data.draw(programs(container)))


# States the derandomized ci draws missed (measured with --coverage): each is an explicit example, checked
# prefix by prefix like a drawn program.  st.data() takes no @example, hence a list.
EXAMPLES = [
    ContainerProgram("Sequential", ("m1", "m2", "m3"), (CtOp("pop", (1,)), CtOp("pop", (-1,)), CtOp("mul", (0,)),
                                                        CtOp("mul", (-1,)), CtOp("rmul", (-1,)),
                                                        CtOp("imul", (-1,)), CtOp("mul", (1.5,)), CtOp("imul", (1.5,)),
                                                        CtOp("rmul", (2,)), CtOp("add_list", ("m4",)),
                                                        CtOp("dir", DIR_PROBE), CtOp("call", (7,)),
                                                        # one item: -n - 1 is out of range, -n the front
                                                        CtOp("insert", (-2, "m4")), CtOp("insert", (-1, "m4")))),
    # submodules under names: dir() lists them beside the class attributes
    ContainerProgram("Sequential", (("a", "m1"), ("b", "m4")), (CtOp("dir", DIR_PROBE), CtOp("append", ("m2",)),
                                                              CtOp("dir", DIR_PROBE)), named=True),
    ContainerProgram("Sequential", (), (CtOp("call", (7,)), CtOp("iadd", ("m1", "m2")), CtOp("iadd_list", ("m3",)),
                                        CtOp("imul", (2,)), CtOp("setitem", (-1, "m5")), CtOp("insert", (-2, "m3")),
                                        CtOp("insert", (9, "m3")), CtOp("insert_bad", (1, 5)), CtOp("len"))),
    ContainerProgram("ModuleList", ("m1", "m1", "m2", "m4", "m5"), (
        CtOp("repr"), CtOp("setitem", (-1, "m3")), CtOp("getslice", (None, None, 2)), CtOp("extend_bad", (5,)),
        CtOp("dir", DIR_PROBE), CtOp("call", (7,)))),
    ContainerProgram("ModuleDict", (("a", "m1"),), (
        CtOp("update_pairs", (("b", "m2"), ("a", "m3"))), CtOp("update_dict", (("c", "m4"), ("d", "m1"))),
        CtOp("keys"), CtOp("values"), CtOp("items"), CtOp("iter"), CtOp("contains", ("c",)),
        CtOp("update_bad", ("notiter",)),
        CtOp("update_bad", ("elem",)), CtOp("update_bad", ("len",)), CtOp("call", (7,)), CtOp("dir", DIR_PROBE),
        CtOp("pop", ("a",)), CtOp("clear"), CtOp("len"))),
    ContainerProgram("ParameterList", ("p0", "t0", "p1"), (CtOp("repr"), CtOp("getslice", (None, None, 2)), CtOp("extend_bad", (5,)), CtOp("dir", DIR_PROBE),
                                                   CtOp("call", (7,)))),
    ContainerProgram("ParameterDict", (("b", "p0"), ("a", "t0")), (
        CtOp("update_dict", (("c", "t1"), ("d", "p1"))), CtOp("update_pairs", (("b", "t1"),)), CtOp("repr"),
        CtOp("keys"), CtOp("values"), CtOp("items"), CtOp("iter"), CtOp("reversed"), CtOp("copy"),
        CtOp("fromkeys", (("x", "y"), "t0")), CtOp("fromkeys", (("x",), None)), CtOp("or", (("a", "p2"), ("z", "t1"))),
        CtOp("ror", (("z", "t1"), ("a", "p3"))), CtOp("ior", (("y", "p3"),)), CtOp("update_bad", ("notiter",)),
        CtOp("update_bad", ("elem",)), CtOp("update_bad", ("len",)), CtOp("getitem", (1,)), CtOp("call", (7,)),
        CtOp("dir", DIR_PROBE), CtOp("pop", ("a",)), CtOp("clear"), CtOp("len"))),
    # non-tensor items are kept as they are; repr() still returns a str (naming their type)
    ContainerProgram("ParameterList", ("p0", 5), (CtOp("getitem", (1,)), CtOp("repr_types", ("int", "str")))),
    ContainerProgram("ParameterDict", (("a", "t0"), ("b", 5)), (CtOp("getitem", ("b",)), CtOp("dir", DIR_PROBE),
                                                                CtOp("repr_types", ("int", "str")))),
]


@pytest.mark.rules(ref.CT_MUL, ref.CT_DELETE, ref.CT_ADD, ref.CT_CALL, ref.CT_DICT_VIEWS, ref.CT_DICT_UPDATE,
                   ref.CT_REPR, ref.CT_PARAMDICT, ref.CT_OBJECTS, ref.CT_INDEX, ref.CT_INSERT, DIR)
@pytest.mark.parametrize("program", EXAMPLES, ids=lambda p: p.container)
def test_container_examples(conform, device, program):
    _check_prefixes(conform, device, program)


@pytest.mark.rules(ref.CT_INSERT)
@given(init=st.lists(st.sampled_from(MODS), min_size=1, max_size=4).map(tuple), index=st.integers(-6, 6),
       new=st.sampled_from(MODS))
def test_modulelist_insert_index(conform, device, init, index, new):
    program = ContainerProgram("ModuleList", init, (CtOp("insert", (index, new)),))
    conform.check(program, ref.expectations(program, device), run=run_container_program)


@pytest.mark.rules(ref.CT_MUL)
@given(keys=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3, unique=True),
       labels=st.lists(st.sampled_from(MODS), min_size=3, max_size=3), n=st.integers(1, 3))
def test_named_sequential_imul(conform, device, keys, labels, n):
    program = ContainerProgram("Sequential", tuple(zip(keys, labels)), (CtOp("imul", (n,)),), named=True)
    conform.check(program, ref.expectations(program, device), run=run_container_program)


@pytest.mark.rules(ref.CT_PARAMDICT)
@given(init=st.lists(st.tuples(KEYS, st.sampled_from(PARS)), max_size=2, unique_by=lambda kv: kv[0]).map(tuple),
       op=st.one_of(st.builds(CtOp, st.just("setitem"), st.tuples(st.sampled_from(["x.y", ""]), st.sampled_from(PARS))),
                    st.builds(CtOp, st.just("getitem"), st.tuples(st.just("zz")))))
def test_parameterdict_bad_keys(conform, device, init, op):
    program = ContainerProgram("ParameterDict", init, (op, CtOp("len")) if op.kind == "setitem" else (op,))
    conform.check(program, ref.expectations(program, device), run=run_container_program)


@pytest.mark.rules(ref.CT_APPEND)
@given(init=st.lists(st.sampled_from(MODS), min_size=2, max_size=4).map(tuple), start=st.integers(1, 3),
       new=st.sampled_from(MODS))
def test_sequential_slice_append(conform, device, init, start, new):
    program = ContainerProgram("Sequential", init, (CtOp("slice_append", (start, None, None, new)),))
    conform.check(program, ref.expectations(program, device), run=run_container_program)

"""Single-shot checks outside the tree machine: the regions it does not generate (see test_tree.py), each
checked here against the model (torch's registered divergences
in suite/module/divergences.py explain the differences), and assignments before Module.__init__."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference.module import registration as reg
from reference.module import traversal as trav
from reference.module import tree as ref
from reference.versions import since
from suite.module.cases import MODULES, TENSORS, BeforeInit, Op, RegistrationReplace, TreeProgram
from suite.module.strategies import BAD, repr_cases
from suite.module.torch_side.tree import run_before_init, run_registration_replace, run_repr, run_tree_program
from suite.versions import requires_torch

# nn.Buffer is new in torch 2.5 (absent from 2.4.1): before it, no case assigns one (register_buffer is still drawn)
HAS_BUFFER = since("2.5")


def _check(conform, program):
    conform.check(program, ref.expectations(program), run=run_tree_program)


@pytest.mark.rules(reg.SETATTR_MODULE)
@given(name=BAD, child=st.sampled_from(MODULES[1:]))
def test_setattr_module_name_checks(conform, device, name, child):
    _check(conform, TreeProgram((Op("setattr", "m0", name, ("module", child)),)))


@pytest.mark.rules(reg.GETATTR)
@given(name=BAD, plain=st.sampled_from((("int", 1), ("tensor", "t0"), ("none",))))
def test_failed_parameter_assignment_keeps_attribute(conform, device, name, plain):
    ops = (Op("setattr", "m0", name, plain), Op("setattr", "m0", name, ("param", "p0")), Op("getattr", "m0", name))
    _check(conform, TreeProgram(ops))


@pytest.mark.rules(reg.SETATTR_BUFFER)
@given(name=st.sampled_from(("a", "b")), plain=st.sampled_from((("int", 1), ("tensor", "t1"), ("none",))),
       tensor=st.sampled_from(TENSORS), persistent=st.booleans())
def test_buffer_assignment_over_attribute(conform, device, name, plain, tensor, persistent):
    requires_torch("2.5", "nn.Buffer")
    ops = (Op("setattr", "m0", name, plain), Op("setattr", "m0", name, ("buffer", tensor, persistent)))
    _check(conform, TreeProgram(ops))


@pytest.mark.rules(trav.DIR)
@given(value=st.sampled_from((("int", 1), ("tensor", "t0"), ("module", "m1"))))
def test_dir_with_empty_name(conform, device, value):
    _check(conform, TreeProgram((Op("setattr", "m0", "", value),), ("dir",)))


@pytest.mark.rules(reg.BEFORE_INIT)
@given(case=st.builds(BeforeInit, st.sampled_from(["param_attr", "module_attr", "buffer_attr", "plain_attr",
                                                    "register_parameter", "register_buffer", "add_module"]
                                                   if HAS_BUFFER else
                                                   ["param_attr", "module_attr", "plain_attr", "register_parameter",
                                                    "register_buffer", "add_module"])))
def test_assignment_before_init(conform, device, case):
    conform.check(case, ref.before_init_expectations(case), run=run_before_init)


@pytest.mark.rules(trav.EXTRA_REPR)
@given(case=repr_cases())
def test_extra_repr_layout(conform, device, case):
    conform.check(case, ref.extra_repr_expectations(case), run=run_repr)


@pytest.mark.rules(reg.REGISTRATION_REPLACE)
@given(case=st.one_of(
    st.builds(RegistrationReplace, st.sampled_from(["parameter", "buffer", "module"]), st.sampled_from(["register",
                                                                                                     "setattr"]),
              st.lists(st.booleans(), min_size=1, max_size=3).map(tuple))
    .filter(lambda case: HAS_BUFFER or not (case.kind == "buffer" and case.via == "setattr")),
    st.builds(RegistrationReplace, st.just("module"), st.just("setattr_none"),
              st.lists(st.booleans(), min_size=1, max_size=3).map(tuple))))
def test_registration_hook_replacement(conform, device, case):
    conform.check(case, ref.registration_replace_expectations(case), run=run_registration_replace)


@pytest.mark.rules(trav.SET_SUBMODULE)
@given(name=st.sampled_from(("a", "forward")),
       before=st.sampled_from((("setattr", ("int", 1)), ("setattr", ("param", "p0")), ("setattr", ("none",)),
                               ("register_buffer", ("tensor", "t0")), ("add_module", ("none",)))),
       child=st.sampled_from(MODULES[1:]))
def test_set_submodule_over_non_module(conform, device, name, before, child):
    """The last atom names an existing attribute that is not a Module (for 'forward': the method)."""
    requires_torch("2.5", "Module.set_submodule")
    ops = () if name == "forward" else (Op(before[0], "m0", name, before[1]),)
    ops += (Op("set_submodule", "m0", name, ("module", child), False),)
    _check(conform, TreeProgram(ops))

"""Single-shot checks outside the tree machine: the regions it does not generate (see test_tree.py), each
checked here against the model (torch's registered divergences
in suite/module/divergences.py explain the differences), and assignments before Module.__init__."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from reference.module import convert as convert_ref
from reference.module import hooks as hooks_ref
from reference.module import registration as reg
from reference.module import state as state_ref
from reference.module import traversal as trav
from reference.module import tree as ref
from reference.versions import since
from suite.module.cases import MODULES, TENSORS, BeforeInit, MiscCase, Op, RegistrationReplace, TreeProgram
from suite.module.strategies import BAD, repr_cases
from suite.module.torch_side.tree import run_before_init, run_misc, run_registration_replace, run_repr, \
    run_tree_program
from suite.versions import requires_torch

# Module.register_state_dict_post_hook: checked on this build, not assumed (test_tree.py: public since 2.5)
HAS_STATE_DICT_POST_HOOK = hasattr(torch.nn.Module, "register_state_dict_post_hook")
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


def _grown(*extra):
    """m0.a = m1 (parameter w, buffer r), m1.b = m2: paths for the get_*/set_submodule examples."""
    return (Op("setattr", "m0", "a", ("module", "m1")), Op("setattr", "m1", "w", ("param", "p0")),
            Op("register_buffer", "m1", "r", ("tensor", "t0"), True), Op("setattr", "m1", "b", ("module", "m2")),
            *extra)


# States the derandomized machine rarely builds (measured with --coverage): a path that resolves, and the
# argument checks of registration and set_submodule.  Each op's outcome is checked, then the tree's views.
TREE_EXAMPLES = [
    _grown(Op("get_submodule", "m0", "a.b"), Op("get_parameter", "m0", "a.w"), Op("get_buffer", "m0", "a.r"),
           Op("get_parameter", "m0", "a.r"), Op("get_buffer", "m0", "a.w"), Op("get_parameter", "m0", "a.b"),
           Op("get_buffer", "m0", "a.nope"), Op("get_parameter", "m0", "a.nope")),
    _grown(Op("set_submodule", "m0", "", ("module", "m3"), False), Op("set_submodule", "m0", "a.c", ("int", 1), False),
           Op("set_submodule", "m0", "a.c", ("module", "m3"), False)),
    # a value that is neither a Module nor None assigned over a child module
    _grown(Op("setattr", "m0", "a", ("int", 1)), Op("setattr", "m1", "b", ("param", "p1"))),
    # a three-atom target: the parent is the module at the first two atoms
    _grown(Op("set_submodule", "m0", "a.b.c", ("module", "m3"), False), Op("get_submodule", "m0", "a.b.c")),
    (Op("register_parameter", "m0", 1, ("param", "p0")), Op("register_buffer", "m0", 1, ("tensor", "t0"), True),
     Op("add_module", "m0", 1, ("module", "m1")), Op("add_module", "m0", 1, ("int", 1)),
     Op("register_module", "m0", "x.y", ("module", "m1")), Op("add_module", "m0", "", ("none",)),
     Op("add_module", "m0", "forward", ("module", "m1"))),
    # strict: the missing last atom of a two-atom target is the one named (strict is new in 2.7: strategies.py)
    *([_grown(Op("set_submodule", "m0", "a.zz", ("module", "m3"), True))] if since("2.7") else []),
]


@pytest.mark.rules(reg.REGISTER_PARAMETER, reg.REGISTER_BUFFER, reg.ADD_MODULE, trav.GET_SUBMODULE, trav.GET_PARAMETER,
                   trav.GET_BUFFER, trav.SET_SUBMODULE, trav.NAMED_MODULES, trav.NAMED_BUFFERS)
@pytest.mark.parametrize("ops", TREE_EXAMPLES, ids=range(len(TREE_EXAMPLES)))
def test_tree_examples(conform, device, ops):
    if any(op.kind == "set_submodule" for op in ops):
        requires_torch("2.5", "Module.set_submodule")
    for i in range(1, len(ops) + 1):
        _check(conform, TreeProgram(ops[:i]))
    _check(conform, TreeProgram(ops, ("modules", "buffers", "named_modules", "named_buffers")))


MISC_KINDS = ["init_args", "init_kwargs", "super_init", "get_extra_state", "set_extra_state", "load_non_mapping",
              "load_post_hook_return", "call_no_forward", "meta_to"] + \
    (["post_hook_return", "hooks_deepcopy", "hooks_pickle"] if HAS_STATE_DICT_POST_HOOK else [])
# States of module.py no drawn case builds (measured with --coverage), each one call: the channels_last branch of
# Module.to (4-D entries converted, the others not; a 5-D entry: see the registered divergence), non-leaf
# Parameters, register_buffer overrides, a dict output under a full backward hook, loads into/from meta tensors
MEMORY_FORMAT = (("param", "w4", (2, 3, 4, 5), "float32"), ("buffer", "b4", (2, 3, 2, 2), "int64"),
                 ("param", "w2", (3, 4), "float32"), ("buffer", "b1", (3,), "float64"))
MISC_CASES = [MiscCase(kind) for kind in MISC_KINDS] + [
    MiscCase("to_memory_format", MEMORY_FORMAT),
    MiscCase("to_memory_format", (("param", "w4", (2, 3, 4, 5), "float32"), ("param", "w5", (2, 3, 2, 2, 2), "float32"))),
    MiscCase("register_non_leaf"), MiscCase("setattr_non_leaf"), MiscCase("backward_hook_dict"),
    MiscCase("load_into_meta"), MiscCase("load_into_meta_assign"), MiscCase("load_from_meta"),
    MiscCase("load_assign_parameter"), MiscCase("swap_slots"), MiscCase("state_dict_positional"),
    *(MiscCase(f"buffer_override{kind}") for kind in ("_true", "_false", "_persistent_true", "_persistent_false")
      if HAS_BUFFER)]


@pytest.mark.rules(reg.INIT_ARGS, reg.CALL_NO_FORWARD, state_ref.EXTRA_STATE_BASE, state_ref.LOAD_NON_MAPPING,
                   trav.STATE_DICT_POST_HOOK_RETURN, convert_ref.CONVERT_TYPE, state_ref.LOAD_POST_HOOKS,
                   convert_ref.CONVERT_MEMORY_FORMAT, reg.REGISTER_NON_LEAF, reg.BUFFER_OVERRIDE,
                   hooks_ref.BACKWARD_HOOK_FIRES, state_ref.LOAD_META, state_ref.LOAD_ASSIGN, trav.COPY_HOOKS,
                   convert_ref.CONVERT_SWAP_REFUSED, trav.STATE_DICT_POSITIONAL)
@pytest.mark.parametrize("case", MISC_CASES, ids=lambda case: case.kind + ("_5d" if len(case.entries) == 2 else ""))
def test_misc_calls(conform, device, case):
    conform.check(case, ref.misc_expectations(case, device), run=run_misc)

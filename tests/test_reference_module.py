"""Golden cases of the module reference (hand-derived from the docs, no torch)."""
from __future__ import annotations

from conform.outcome import Raised
from reference.module import containers, convert, hooks, registration, state, tree
from suite.module.cases import (ContainerProgram, ConvertCase, CtOp, Hook, HookCase, LoadCase, Op, RegistrationReplace,
                                Spec, TreeProgram, make_inputs)


def run_program(program):
    """The expectation of a one-observable program."""
    (expect,) = tree.expectations(program)
    return expect.expected


def test_shared_child_traversal():
    ops = (Op("add_module", "m0", "a", ("module", "m1")), Op("add_module", "m0", "b", ("module", "m1")),
           Op("register_parameter", "m1", "w", ("param", "p0")))
    assert run_program(TreeProgram(ops, ("named_parameters",))) == [("a.w", "p0")]
    assert run_program(TreeProgram(ops, ("named_parameters_all",))) == [("r.a.w", "p0"), ("r.b.w", "p0")]
    assert run_program(TreeProgram(ops, ("named_modules",))) == [("", "m0"), ("a", "m1")]
    assert run_program(TreeProgram(ops, ("state_dict",))) == [("a.w", "p0"), ("b.w", "p0")]
    assert run_program(TreeProgram(ops, ("metadata",))) == [("", {"version": 1}), ("a", {"version": 1}),
                                                               ("b", {"version": 1})]
    assert run_program(TreeProgram(ops, ("apply",))) == ["m1", "m0"]


def test_registration_errors_and_order():
    assert run_program(TreeProgram((Op("register_parameter", "m0", "x.y", ("int", 1)),))).type == "KeyError"
    # add_module checks the value type first
    assert run_program(TreeProgram((Op("add_module", "m0", "x.y", ("int", 1)),))).type == "TypeError"
    out = run_program(TreeProgram((Op("register_parameter", "m0", "a", ("param", "p0")),
                                        Op("setattr", "m0", "a", ("tensor", "t0")))))
    assert isinstance(out, Raised) and out.type == "TypeError"


def test_repr_nested():
    ops = (Op("add_module", "m0", "a", ("module", "m1")), Op("add_module", "m1", "b", ("none",)))
    assert run_program(TreeProgram(ops, ("repr",))) == "Module(\n  (a): Module(\n    (b): None\n  )\n)"


def test_hook_order_prepend_and_replacement():
    case = HookCase((Hook("post"), Hook("post", "replace", prepend=True), Hook("gpost")), x=1)
    calls, result = hooks.run_forward(case)
    assert [c[0] for c in calls] == ["h2", "h1", "h0"]
    assert result == 2 + 200


def test_always_call_hook_runs_once_after_a_raising_hook():
    # h0 (always_call) runs normally, h1 raises: h0 is not run again, h2 (always_call, not yet run) runs with
    # the output so far; the hook's exception propagates.
    case = HookCase((Hook("post", "replace", always_call=True), Hook("post", "raise"), Hook("post", always_call=True)),
                    x=1)
    calls, result = hooks.run_forward(case)
    assert calls == [("h0", [1], 2), ("h1", [1], 102), ("h2", [1], 102)]
    assert result.type == "ArithmeticError" and result.message == "hook h1 failed"
    assert [e.rule for e in hooks.expectations(case)] == [hooks.HOOK_ALWAYS]


def test_registration_hooks_chain_replacements():
    assert registration.registration_replace(RegistrationReplace("buffer", "register", (True, False))) == (["orig", "r0"], "r0")
    assert registration.registration_replace(RegistrationReplace("module", "setattr_none", (False,))) == (["none"], "none")


def test_containers():
    seq = ContainerProgram("Sequential", ("m1", "m2", "m3"), (CtOp("delitem", (0,)),))
    assert containers.run(seq) == (None, ["0", "1"], ["m2", "m3"])
    ml = ContainerProgram("ModuleList", ("m1",), (CtOp("insert", (-1, "m2")),))
    assert containers.run(ml) == (None, ["0", "1"], ["m2", "m1"])
    assert containers.run(ContainerProgram("Sequential", ("m1",), (CtOp("mul", (0,)),)))[0].type == "ValueError"
    assert containers.run(ContainerProgram("Sequential", ("m1",), (CtOp("rmul", (-1,)),)))[0].type == "ValueError"
    # Sequential.insert accepts -n <= i <= n: -n inserts at the front, -n - 1 is out of range
    assert containers.run(ContainerProgram("Sequential", ("m1", "m2"), (CtOp("insert", (-2, "m3")),))) == \
        (True, ["0", "1", "2"], ["m3", "m1", "m2"])
    assert containers.run(ContainerProgram("Sequential", ("m1", "m2"), (CtOp("insert", (-3, "m3")),)))[0].type == \
        "IndexError"


def test_container_dir_and_objects():
    # class attributes, 'training' and named items, sorted; position keys ('0', '1') never listed
    probe = ("append", "keys", "training", "forward", "0", "1", "a", "b")
    named = ContainerProgram("Sequential", (("b", "m1"), ("a", "m2")), (CtOp("dir", probe),), named=True)
    assert containers.run(named)[0] == ["a", "append", "b", "forward", "training"]
    assert containers.run(ContainerProgram("ModuleList", ("m1", "m2"), (CtOp("dir", probe),)))[0] == \
        ["append", "forward", "training"]
    assert containers.run(ContainerProgram("ModuleDict", (("a", "m1"),), (CtOp("dir", probe),)))[0] == \
        ["a", "forward", "keys", "training"]
    # a non-tensor item is kept as it is, and the repr names its type
    objs = ContainerProgram("ParameterDict", (("a", "t0"), ("b", 5)), (CtOp("repr_types", ("int", "str")),))
    assert containers.run(objs) == (("str", ["int"]), ["a", "b"], [("Parameter", "t0"), 5])


def test_conversion():
    case = ConvertCase((("param", "float32"), ("buffer", "int64"), ("buffer", "complex64")), "half")
    assert convert.run_convert(case) == {"dtypes": ["float16", "int64", "complex64"], "same": [True, True, True],
                                         "nones": [True, True]}
    assert convert.run_convert(ConvertCase((("param", "float32"),), "to:int64")).type == "TypeError"


def test_load_size_of_1d_into_0d():
    """Only a 1-element 1-d value loads into a 0-d tensor (its element 0)."""
    ok = LoadCase(Spec(params=(("w", ()),)), (("w", (1,)),))
    assert state.observe(ok, make_inputs(ok)) == ("_IncompatibleKeys", [], [])
    values = state.observe(LoadCase(ok.spec, ok.entries, observe="values"), make_inputs(ok))["w"]
    assert values.shape == () and values == make_inputs(ok)["sd"]["w"][0]
    bad = LoadCase(Spec(params=(("w", ()),)), (("w", (2,)),))
    assert state.observe(bad, make_inputs(bad)).type == "RuntimeError" and state.first_of_1d_keys(bad) == ["w"]
    assert state.first_of_1d_keys(ok) == []
    assert [e.rule for e in state.expectations(bad, make_inputs(bad))] == [state.LOAD_SIZE]


def test_set_submodule_last_atom():
    # the last atom must be a Module (or absent, without strict); the parent path must resolve
    over_attr = (Op("setattr", "m0", "a", ("int", 1)), Op("set_submodule", "m0", "a", ("module", "m1"), False))
    assert run_program(TreeProgram(over_attr)) == Raised("AttributeError", "`a` is not an nn.Module")
    new = (Op("set_submodule", "m0", "a", ("module", "m1"), False), Op("get_submodule", "m0", "a"))
    assert run_program(TreeProgram(new)) == "m1"
    strict = (Op("set_submodule", "m0", "a", ("module", "m1"), True),)
    assert run_program(TreeProgram(strict)).type == "AttributeError"


def test_container_dict_views_and_updates():
    pd = ContainerProgram("ParameterDict", (("b", "p0"), ("a", "t0")), (CtOp("ror", (("z", "t1"), ("a", "p3"))),))
    assert containers.run(pd)[0] == ("dict", [("z", "t1"), ("a", ("Parameter", "t0")), ("b", "p0")])
    md = ContainerProgram("ModuleDict", (), (CtOp("update_bad", ("len",)),))
    assert containers.run(md)[0].type == "ValueError"
    assert containers.run(ContainerProgram("ParameterList", ("p0",), (CtOp("call", (7,)),)))[0].type == "RuntimeError"
    assert containers.run(ContainerProgram("Sequential", (), (CtOp("call", (7,)),)))[0] == 7
    # one extra_repr line is printed inline (Module.__repr__)
    assert containers.container_repr("ParameterList", [("0", "p0")]) == \
        "ParameterList(  (0): Parameter containing: [torch.float32 of size 2])"


def test_conversion_future_flags_and_grads():
    case = ConvertCase((("param", "float32"), ("buffer", "float32"), ("param", "int64")), "double", future="overwrite",
                       grads=True)
    assert convert.run_convert(case) == {"dtypes": ["float64", "float64", "int64"], "same": [False, False, False],
                                         "nones": [True, True], "grads": ["float64", None, None]}
    swap = ConvertCase((("param", "float32"), ("buffer", "int64")), "type:float64", future="swap")
    assert convert.run_convert(swap)["same"] == [True, False]


def test_load_pre_hooks_pre_order_through_copies():
    spec = Spec(children=(("c", Spec()),), share="e")
    case = LoadCase(spec, (), strict=False, observe="pre_hooks", copy="deepcopy")
    assert state.observe(case, make_inputs(case)) == [("", "", False), ("c.", "c.", False), ("c.", "e.", False)]


def test_memory_format_and_single_calls():
    # NHWC strides of a (N, C, H, W) tensor: C innermost, then W, H, N; other ranks stay row-major
    entries = (("param", "w", (2, 3, 4, 5), "float32"), ("buffer", "b", (3, 4), "int64"))
    assert convert.memory_format_outcome(entries)["strides"] == [(60, 1, 15, 3), (4, 1)]
    # an override without persistent: called with (name, tensor) only, persistent; a non-persistent Buffer refused
    assert registration.buffer_override(False, True) == ((), ["b"])
    assert registration.buffer_override(False, False).type == "RuntimeError"
    assert registration.buffer_override(True, False) == ((False,), [])
    rule_id, expected = state.load_single("load_into_meta", "cpu")
    assert rule_id == state.LOAD_META and expected["device"] == "meta" and expected["warning"].type == "UserWarning"
    assert state.load_single("load_assign_parameter", "cuda:1")[1]["device"] == "cuda"

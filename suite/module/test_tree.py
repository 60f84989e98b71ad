"""Random sequences of registration / assignment / traversal operations on a real
module tree and on the model (reference/module/tree.py); every observable is
compared after every step.

Regions where the registry (suite/module/divergences.py) says this build diverges
from its documentation in a way that changes the tree are not entered -- torch's
tree would then differ from the model's and surface again under unrelated rules
in every later step -- but each has its own test in test_tree_single.py.  The
machine asks the registry itself, so it explores a region again the day its entry
stops applying to the build.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import event, given, settings, target
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule as hrule

from reference.module import registration as reg
from reference.module import traversal as trav
from reference.module import tree as ref
from reference.versions import since
from suite import divergences
from suite.module.cases import MODULES, OBSERVABLES, PARAMS, POOL_NAMES, TENSORS, Op, TreeProgram
from suite.module.torch_side.tree import run_tree_program


def registered_region(ops: tuple, op: Op, device: str) -> bool:
    """Whether a registry entry applies, on this build, to ``op`` after ``ops`` -- to its outcome, or to what a
    getattr of its name or dir() sees right after it."""
    done = (*ops, op)
    probes = ((ref.run_op(ref.world_after(ops), len(ops), op).rule, TreeProgram(done)),
              (trav.DIR, TreeProgram(done, ("dir",))),
              (reg.GETATTR, TreeProgram((*done, Op("getattr", op.target, op.name)))))
    return any(divergences.find(rule_id, program, device, torch.__version__) is not None
               for rule_id, program in probes)


def makes_cycle(w: reg.World, op: Op) -> bool:
    """Attaching an ancestor (or self) would make traversal recurse forever: never generated."""
    if not op.value or op.value[0] != "module":
        return False
    parent = op.target
    if op.kind == "set_submodule":
        parent = trav.get_submodule(w, op.target, op.name.rpartition(".")[0])
        if not isinstance(parent, str):
            return False
    return parent in trav.reachable(w, op.value[1])


def avoided(w: reg.World, ops: tuple, op: Op, device: str) -> bool:
    return makes_cycle(w, op) or registered_region(ops, op, device)


# biased towards two ordinary names so that ops collide on the same attribute often
names = st.one_of(st.sampled_from(("a", "b")), st.sampled_from(POOL_NAMES))
targets = st.sampled_from(MODULES)
values = st.one_of(
    st.tuples(st.just("param"), st.sampled_from(PARAMS)),
    st.tuples(st.just("tensor"), st.sampled_from(TENSORS)),
    # nn.Buffer is new in torch 2.5 (torch/nn/parameter.py: class Buffer; absent from 2.4.1): before it, buffers
    # are registered by register_buffer and replaced by assigning a tensor to a buffer name, both still drawn
    *([st.tuples(st.just("buffer"), st.sampled_from(TENSORS), st.booleans())] if since("2.5") else []),
    st.tuples(st.just("module"), st.sampled_from(MODULES[1:])),
    st.just(("none",)),
    st.tuples(st.just("int"), st.integers(0, 3)),
)
FLAGS = st.sampled_from([True, False, None])  # None: called without the argument (its default)
paths = st.lists(st.sampled_from(("a", "b", "c", "0", "forward")), max_size=3).map(".".join)


# Ops that grow (or freeze) the tree under ordinary names.  Without them a random op is rarely an attachment
# (most draws are queries, errors or flat assignments), so deep prefixes, shared children and tied
# parameters -- the region the remove_duplicate / prefix / memo rules are about -- were almost
# never built (measured: a child of a child in ~2% of 30-op programs).
ordinary = st.sampled_from(("a", "b", "c", "0"))
near_root = st.sampled_from(MODULES[:3])  # attachments land in the observed tree (rooted at m0) more often
grow_op = st.one_of(
    st.builds(Op, st.just("setattr"), near_root, ordinary, st.tuples(st.just("module"), st.sampled_from(MODULES[1:]))),
    st.builds(Op, st.just("setattr"), targets, ordinary, st.tuples(st.just("param"), st.sampled_from(PARAMS))),
    st.builds(Op, st.just("register_buffer"), targets, ordinary, st.tuples(st.just("tensor"), st.sampled_from(TENSORS)),
              st.booleans()),
    # freezing part of a populated tree (requires_grad_ on a module without parameters is a no-op)
    st.builds(Op, st.just("requires_grad_"), near_root, st.just(""), st.just(()), FLAGS),
)


# Module.set_submodule is new in torch 2.5 (pytorch/pytorch#127714; absent from 2.4.1); its strict argument is new
# in 2.7 (pytorch/pytorch#143455): before, only the default (strict=False) can be drawn.
SET_SUBMODULE_STRICT = st.booleans() if since("2.7") else st.just(False)


# Module.register_state_dict_post_hook is public since torch 2.5 (absent from 2.4.1, which has only the private
# _register_state_dict_hook): before it, module.state_dict.hooks is not observed (the rule reaches no example).
MACHINE_OBSERVABLES = tuple(what for what in OBSERVABLES if what != "state_dict_hooks" or since("2.5"))


def op_strategy():
    setattr_op = st.builds(Op, st.just("setattr"), targets, names, values)
    return st.one_of(
        setattr_op, setattr_op, setattr_op, grow_op, grow_op, grow_op, grow_op,
        st.builds(Op, st.just("delattr"), targets, names),
        st.builds(Op, st.just("getattr"), targets, names),
        st.builds(Op, st.just("register_parameter"), targets, names, values),
        st.builds(Op, st.just("register_buffer"), targets, names, values, st.booleans()),
        st.builds(Op, st.sampled_from(("add_module", "register_module")), targets, names, values),
        st.builds(Op, st.just("train"), targets, st.just(""), st.just(()), FLAGS),
        st.builds(Op, st.just("eval"), targets),
        st.builds(Op, st.just("train_value"), targets, st.just(""), st.tuples(st.just("int"), st.integers(0, 1))),
        st.builds(Op, st.just("requires_grad_"), targets, st.just(""), st.just(()), FLAGS),
        st.builds(Op, st.sampled_from(("get_submodule", "get_parameter", "get_buffer")), targets, paths),
        *([st.builds(Op, st.just("set_submodule"), targets, paths.filter(bool),
                     st.tuples(st.just("module"), st.sampled_from(MODULES[1:])), SET_SUBMODULE_STRICT)]
          if since("2.5") else []),
    )


# What every step observes: the op's outcome, the registration hook calls during it, every observable.
STEP = ("result", "registration", *MACHINE_OBSERVABLES)


class TreeMachine(RuleBasedStateMachine):
    def __init__(self, conform, device):
        super().__init__()
        self.conform, self.device = conform, device

    @initialize()
    def fresh(self):
        self.world = reg.new_world(MODULES, PARAMS, TENSORS)
        self.ops: tuple[Op, ...] = ()
        self.paths = 1

    def teardown(self):
        # steer towards bigger trees (more sharing, deeper prefixes); target() once per example
        if hasattr(self, "paths"):
            target(float(self.paths), label="tree paths")

    @hrule(op=op_strategy())
    def step(self, op):
        if avoided(self.world, self.ops, op, self.device):
            event("tree: skipped op in a divergent/cyclic region")
            return
        index = len(self.ops)
        self.ops += (op,)
        expects = ref.step(self.world, index, op, STEP)
        event(f"tree op {op.kind} -> {'error' if type(expects[0].expected).__name__ == 'Raised' else 'ok'}")
        self.conform.check(TreeProgram(self.ops, STEP), expects, run=run_tree_program)
        self.paths = max(self.paths, len(trav.named_modules(self.world, "m0", remove_duplicate=False)))


ALL_RULES = sorted({ref.OBSERVABLE_RULES[what] for what in ("registration", *OBSERVABLES)} | {
    reg.SETATTR_PARAMETER, reg.SETATTR_PARAM_NAME, reg.SETATTR_MODULE, reg.SETATTR_MODULE_NAME, reg.SETATTR_BUFFER,
    reg.SETATTR_PLAIN, reg.GETATTR, reg.DELATTR, reg.REGISTER_PARAMETER, reg.REGISTER_BUFFER, reg.ADD_MODULE,
    trav.GET_SUBMODULE, trav.GET_PARAMETER, trav.GET_BUFFER, trav.SET_SUBMODULE})


@pytest.mark.rules(*ALL_RULES)
def test_module_tree_machine(conform, device):
    from hypothesis.stateful import run_state_machine_as_test

    # More steps and examples than the profile's default: the interesting states (shared children,
    # tied parameters, replaced registrations) need a few ops to build, and a step costs ~2 ms.
    run_state_machine_as_test(lambda: TreeMachine(conform, device),
                              settings=settings(stateful_step_count=max(settings.default.stateful_step_count, 30),
                                                max_examples=max(settings.default.max_examples, 100)))


@st.composite
def valid_programs(draw, device, observe):
    """A random op sequence outside the divergent/cyclic regions, built on the model."""
    world = reg.new_world(MODULES, PARAMS, TENSORS)
    ops: tuple[Op, ...] = ()
    for op in draw(st.lists(op_strategy(), min_size=4, max_size=16)):
        if avoided(world, ops, op, device):
            continue
        ref.run_op(world, len(ops), op)
        ops += (op,)
    return TreeProgram(ops, (draw(observe),))


@pytest.mark.rules(trav.APPLY, trav.DEEPCOPY, trav.PICKLE)
@settings(max_examples=max(settings.default.max_examples, 60))  # ~3 ms an example
@given(data=st.data())
def test_apply_copy_pickle(conform, device, data):
    program = data.draw(valid_programs(device, st.sampled_from(["apply", "deepcopy", "pickle"])), label="program")
    conform.check(program, ref.expectations(program), run=run_tree_program)

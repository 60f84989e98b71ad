"""Random sequences of registration / assignment / traversal operations on a real
module tree and on the model (reference/module/tree.py); every observable is
compared after every step.

Regions where torch diverges from its documentation (suite/module/divergences.py)
are not generated here -- a divergence changes the tree and would surface again
under unrelated rules in every later step -- but each has its own test in
test_tree_single.py.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import event, given, settings, target
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule as hrule

from reference.module import tree as ref
from reference.module.tree import OBSERVABLE_RULES, expected_observation, run_op
from reference.versions import since
from suite.divergences import applies_to_build
from suite.module import divergences as module_divergences
from suite.module.tree_torch import (MODULES, OBSERVABLES, PARAMS, POOL_NAMES, TENSORS, Op, TreeProgram,
                                     apply_op_recorded, make_pool, observe, replay)

# ---- which ops the machine may generate ----------------------------------------------
BAD_NAMES = ("", "x.y", "forward")


def known_divergent(w: ref.World, op: Op) -> bool:
    """Ops in a registered divergence's region (each tested in test_tree_single.py)."""
    if op.kind != "setattr":
        return False
    m = w.mods[op.target]
    kind = op.value[0]
    if kind == "module" and op.name in BAD_NAMES and op.name not in m.params and op.name not in m.modules:
        return True  # D: setattr skips add_module's name checks
    if kind == "param" and op.name in BAD_NAMES and op.name in m.attrs:
        return True  # D: failed Parameter assignment drops the instance attribute
    if kind == "buffer" and op.name in m.attrs and op.name not in m.params and op.name not in m.modules:
        return True  # D: nn.Buffer cannot replace an instance attribute
    if op.name == "" and op.name not in m.params and op.name not in m.modules and kind != "param":
        return True  # D: an attribute named '' makes dir() crash
    return False


def _registered_here(entry_id: str) -> bool:
    entry = next(e for e in module_divergences.DIVERGENCES if e.id == entry_id)
    return applies_to_build(entry.torch, torch.__version__)


# Where the registry says this build's set_submodule does not check the last atom (torch 2.5, 2.6), ops in that
# region are not generated (each is checked in test_tree_single.py); on other builds they are.
SET_SUBMODULE_UNCHECKED = _registered_here("module-set-submodule-replaces-non-module")


def known_divergent_here(w: ref.World, op: Op) -> bool:
    """known_divergent, plus the regions of divergences registered for some releases only, on those releases."""
    return known_divergent(w, op) or (SET_SUBMODULE_UNCHECKED and module_divergences.replaces_non_module(w, op))


def makes_cycle(w: ref.World, op: Op) -> bool:
    """Attaching an ancestor (or self) would make traversal recurse forever: never generated."""
    if not op.value or op.value[0] != "module":
        return False
    parent = op.target
    if op.kind == "set_submodule":
        parent = ref.get_submodule(w, op.target, op.name.rpartition(".")[0])
        if not isinstance(parent, str):
            return False
    return parent in ref.reachable(w, op.value[1])


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


class TreeMachine(RuleBasedStateMachine):
    def __init__(self, conform, device):
        super().__init__()
        self.conform, self.device = conform, device

    @initialize()
    def fresh(self):
        self.world = ref.new_world(MODULES, PARAMS, TENSORS)
        self.pool = make_pool(self.device)
        self.ops: list[Op] = []
        self.paths = 1

    def teardown(self):
        # steer towards bigger trees (more sharing, deeper prefixes); target() once per example
        if hasattr(self, "paths"):
            target(float(self.paths), label="tree paths")

    @hrule(op=op_strategy())
    def step(self, op):
        if known_divergent_here(self.world, op) or makes_cycle(self.world, op):
            event("tree: skipped op in a divergent/cyclic region")
            return
        index = len(self.ops)
        self.ops.append(op)
        rule_id, expected = run_op(self.world, index, op)
        actual, registrations = apply_op_recorded(self.pool, index, op)
        event(f"tree op {op.kind} -> {'error' if type(expected).__name__ == 'Raised' else 'ok'}")
        ops = tuple(self.ops)
        self.conform.check(rule_id, TreeProgram(ops, "result"), expected, actual, torch_fn=replay)
        self.conform.check(ref.REGISTRATION_HOOKS, TreeProgram(ops, "registration"),
                           expected_observation(self.world, "registration"), registrations, torch_fn=replay)
        self.paths = max(self.paths, len(ref.named_modules(self.world, "m0", remove_duplicate=False)))
        for what in MACHINE_OBSERVABLES:
            self.conform.check(OBSERVABLE_RULES[what], TreeProgram(ops, what), expected_observation(self.world, what),
                               observe(self.pool, what), torch_fn=replay)


ALL_RULES = sorted((set(OBSERVABLE_RULES.values()) - {ref.APPLY, ref.DEEPCOPY, ref.PICKLE}) | {
    ref.SETATTR_PARAMETER, ref.SETATTR_PARAM_NAME, ref.SETATTR_MODULE, ref.SETATTR_MODULE_NAME, ref.SETATTR_BUFFER,
    ref.SETATTR_PLAIN, ref.GETATTR, ref.DELATTR, ref.REGISTER_PARAMETER, ref.REGISTER_BUFFER, ref.ADD_MODULE,
    ref.GET_SUBMODULE, ref.GET_PARAMETER, ref.GET_BUFFER, ref.SET_SUBMODULE, ref.REGISTRATION_HOOKS})


@pytest.mark.rules(*ALL_RULES)
def test_module_tree_machine(conform, device):
    from hypothesis.stateful import run_state_machine_as_test

    # More steps and examples than the profile's default: the interesting states (shared children,
    # tied parameters, replaced registrations) need a few ops to build, and a step costs ~2 ms.
    run_state_machine_as_test(lambda: TreeMachine(conform, device),
                              settings=settings(stateful_step_count=max(settings.default.stateful_step_count, 30),
                                                max_examples=max(settings.default.max_examples, 100)))


@st.composite
def valid_programs(draw, observe):
    """A random op sequence outside the divergent/cyclic regions, built on the model."""
    world = ref.new_world(MODULES, PARAMS, TENSORS)
    ops: list[Op] = []
    for op in draw(st.lists(op_strategy(), min_size=4, max_size=16)):
        if known_divergent_here(world, op) or makes_cycle(world, op):
            continue
        run_op(world, len(ops), op)
        ops.append(op)
    return TreeProgram(tuple(ops), draw(observe))


@pytest.mark.rules(ref.APPLY, ref.DEEPCOPY, ref.PICKLE)
@settings(max_examples=max(settings.default.max_examples, 60))  # ~3 ms an example
@given(program=valid_programs(st.sampled_from(["apply", "deepcopy", "pickle"])))
def test_apply_copy_pickle(conform, device, program):
    rule_id = {"apply": ref.APPLY, "deepcopy": ref.DEEPCOPY, "pickle": ref.PICKLE}[program.observe]
    conform.check(rule_id, program, ref.run_program(program), replay(program, device), torch_fn=replay)

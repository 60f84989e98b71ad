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

import dataclasses

import pytest
from hypothesis import event, given, settings, target
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule as hrule

from reference.module import registration as reg
from reference.module import traversal as trav
from reference.module import tree as ref
from reference.versions import since
from suite.module.cases import MODULES, OBSERVABLES, PARAMS, TENSORS, Op, TreeProgram
from suite.module.strategies import avoided, op_strategy, valid_programs
from suite.module.torch_side.tree import run_tree_program


# Module.register_state_dict_post_hook is public since torch 2.5 (absent from 2.4.1, which has only the private
# _register_state_dict_hook): before it, module.state_dict.hooks is not observed (the rule reaches no example).
MACHINE_OBSERVABLES = tuple(what for what in OBSERVABLES if what != "state_dict_hooks" or since("2.5"))


LOOKUPS = ("get_submodule", "get_parameter", "get_buffer")

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

    @hrule(op=op_strategy(), data=st.data())
    def step(self, op, data):
        if op.kind in LOOKUPS:
            op = self._existing_path(op, data)
        self._run(op)

    def _existing_path(self, op, data):
        """Three lookups in four (get_submodule / get_parameter / get_buffer) get a target and a path under it that
        exists: op_strategy's random paths almost never name one (measured over the ci run: get_parameter
        never found its parameter, get_submodule 2 of 39; with this, about 20 lookups a run succeed), so the
        lookups' success -- walking several levels, through shared children, to the registered object -- went
        unchecked."""
        if op.kind == "get_submodule":
            found = [(label, name) for label in MODULES for name, _ in trav.named_modules(self.world, label) if name]
        else:
            store = "params" if op.kind == "get_parameter" else "buffers"
            found = [(label, name) for label in MODULES for name, _ in trav.named_members(self.world, label, store)]
        if found and data.draw(st.integers(0, 3), label="an existing path") > 0:
            target, name = data.draw(st.sampled_from(found), label="target and path")
            return dataclasses.replace(op, target=target, name=name)
        return op

    def _run(self, op):
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

@pytest.mark.rules(trav.APPLY, trav.DEEPCOPY, trav.PICKLE)
@settings(max_examples=max(settings.default.max_examples, 60))  # ~3 ms an example
@given(data=st.data())
def test_apply_copy_pickle(conform, device, data):
    program = data.draw(valid_programs(device, st.sampled_from(["apply", "deepcopy", "pickle"])), label="program")
    conform.check(program, ref.expectations(program), run=run_tree_program)

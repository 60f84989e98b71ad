"""Forward (pre-)hooks, global hooks, always_call, handles and full backward
hooks against the model (reference/module/hooks.py)."""
from __future__ import annotations

import pytest
from hypothesis import event, example, given, settings, target
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule as hrule, \
    run_state_machine_as_test

from reference.module import hooks as ref
from suite.module.cases import BackwardCase, GlobalHookRemoval, Hook, HookCase, HookProgram, LegacyBackwardCase, \
    backward_inputs
from suite.module.strategies import GLOBAL_KWARGS, hooks
from suite.module.torch_side.hooks import run_backward, run_global_hook_removal, run_hook_program, run_hooks, \
    run_legacy_backward


@pytest.mark.rules(ref.HOOK_ORDER, ref.HOOK_PREPEND, ref.HOOK_RETURN, ref.HOOK_KWARGS, ref.HOOK_ALWAYS, ref.HOOK_REMOVE)
@settings(max_examples=max(settings.default.max_examples, 200))  # ~1 ms an example; one rule per case
@given(case=st.builds(HookCase, st.lists(hooks(), max_size=5).map(tuple), st.integers(-3, 3),
                      st.one_of(st.none(), st.integers(0, 3)), st.booleans()))
# Drawn cases credit one rule each (reference/module/hooks.py forward_rule: the most specific feature wins), so a
# case with prepend alone is rare; these explicit examples reach module.hooks.prepend in every profile.
@example(case=HookCase((Hook("pre"), Hook("pre", prepend=True), Hook("post"), Hook("post", prepend=True)), x=2))
@example(case=HookCase((Hook("gpost"), Hook("post"), Hook("post", prepend=True)), x=-1))
def test_forward_hooks(conform, device, case):
    conform.check(case, ref.expectations(case), run=run_hooks)


class HookMachine(RuleBasedStateMachine):
    """One module's forward-hook history: registrations, handle removals (a handle removed twice too) and calls,
    interleaved; every call is checked (HookProgram replays the history on a fresh module).  The module area's
    per-concern machine for hooks (shared/research: the tree machine never registers a hook).  Swarm: each program
    draws which hook kinds it may register, so programs of only module pre-hooks or only global hooks occur;
    target() steers towards calls after the hook set changed and towards many live hooks at a call."""

    def __init__(self, conform, device):
        super().__init__()
        self.conform, self.device = conform, device
        self.steps: tuple = ()
        self.added = self.live_at_call = self.changed_calls = 0
        self.changed = False

    @initialize(kinds=st.lists(st.sampled_from(["pre", "post", "gpre", "gpost"]), min_size=1, unique=True))
    def swarm(self, kinds):
        self.kinds = tuple(kinds)
        event(f"hook machine: kinds {'+'.join(sorted(kinds))}")

    @hrule(data=st.data())
    def add(self, data):
        self.steps += (("add", data.draw(hooks(self.kinds), label="hook")),)
        self.added += 1
        self.changed = True

    @precondition(lambda self: self.added > 0)
    @hrule(data=st.data())
    def remove(self, data):
        self.steps += (("remove", data.draw(st.integers(0, self.added - 1), label="handle")),)
        self.changed = True

    @hrule(x=st.integers(-3, 3), b=st.one_of(st.none(), st.integers(0, 3)), fail=st.integers(0, 7).map(lambda n: n == 0))
    def call(self, x, b, fail):
        self.steps += (("call", x, b, fail),)
        self.changed_calls += self.changed
        self.changed = False
        live = [i for i in range(self.added) if ("remove", i) not in self.steps]
        self.live_at_call = max(self.live_at_call, len(live))
        program = HookProgram(self.steps)
        self.conform.check(program, ref.program_expectations(program), run=run_hook_program)

    def teardown(self):
        target(float(self.changed_calls), label="calls after the hook set changed")
        target(float(self.live_at_call), label="live hooks at a call")


@pytest.mark.rules(ref.HOOK_ORDER, ref.HOOK_PREPEND, ref.HOOK_RETURN, ref.HOOK_KWARGS, ref.HOOK_ALWAYS, ref.HOOK_REMOVE)
def test_hook_history_machine(conform, device):
    run_state_machine_as_test(lambda: HookMachine(conform, device),
                              settings=settings(stateful_step_count=max(settings.default.stateful_step_count, 20)))


@pytest.mark.rules(ref.BACKWARD_HOOKS)
@given(case=st.builds(
    BackwardCase, st.integers(0, 2**16), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
    st.lists(st.tuples(st.sampled_from(["bpre", "bpost", "gbpre", "gbpost"]), st.sampled_from([0, 0, 2, 3]),
                       st.booleans()), max_size=4).map(tuple),
    st.booleans()))
def test_full_backward_hooks(conform, device, case):
    conform.check(case, ref.backward_expectations(case, backward_inputs(case)), run=run_backward)


@pytest.mark.rules(ref.HOOK_REMOVE)
@given(case=st.builds(GlobalHookRemoval, st.booleans() if GLOBAL_KWARGS else st.just(False), st.booleans()))
def test_global_forward_hook_removal(conform, device, case):
    conform.check(case, ref.removal_expectations(case), run=run_global_hook_removal)


@pytest.mark.rules(ref.LEGACY_BACKWARD)
@pytest.mark.parametrize("order", ["legacy_then_full", "full_then_legacy", "global_full_then_legacy", "call"])
def test_legacy_backward_hooks(conform, device, order):
    case = LegacyBackwardCase(order)
    conform.check(case, ref.legacy_backward_expectations(case, backward_inputs(BackwardCase(0, 2, 2, 2, ()))),
                  run=run_legacy_backward)

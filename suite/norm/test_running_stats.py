"""Running statistics over a history of calls: momentum and cumulative updates, the counter, eval,
toggling track_running_stats / momentum after construction, empty batches.

A drawn ``BNSeqCase`` is the whole history (a fresh module, then ops), so a failure shrinks to a short
op list and its repro replays it; every record after a forward is checked field by field as a
``SeqStep`` under the rule the reference says describes that step.  Rules: reference/norm/running.py.
"""
from __future__ import annotations

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from reference.norm import batchnorm, running
from suite.norm.cases import BNSeqCase, SeqStep, make_seq_inputs
from suite.norm.strategies import seq_cases
from suite.norm.torch_side.running_stats import run_seq_step


@pytest.mark.rules(batchnorm.RUNNING_MOMENTUM, batchnorm.RUNNING_CUMULATIVE, batchnorm.RUNNING_COUNTER,
                   batchnorm.RUNNING_EVAL_FROZEN, batchnorm.TOGGLE_TRACK, batchnorm.TOGGLE_MOMENTUM,
                   batchnorm.EMPTY_BATCH)
@settings(max_examples=2 * settings.default.max_examples)  # cheap (~0.1 s an example), seven rules to reach
@given(data=st.data())
def test_running_sequences(conform, device, data):
    check_sequence(conform, data.draw(seq_cases(device)), note=event)


@pytest.mark.rules(batchnorm.TOGGLE_MOMENTUM)
def test_momentum_toggled_after_construction(conform, device):
    """A fixed sequence that reaches norm.toggle.momentum in every profile (drawn sequences credit
    each step to its most specific rule, so random runs reach this one only by chance)."""
    seq = BNSeqCase(kind="BatchNorm1d", num_features=2, spatial=(), dtype="float64", eps=1e-5, momentum=0.1,
                    affine=True, track=True, ops=(("forward", 3), ("momentum", 0.5), ("forward", 3)), seed=1)
    check_sequence(conform, seq)


@pytest.mark.rules(batchnorm.RUNNING_CUMULATIVE, batchnorm.RUNNING_MOMENTUM)
@pytest.mark.parametrize("momentum", [None, 0.3])
def test_sync_batchnorm_without_group(conform, device, momentum):
    """SyncBatchNorm without a process group keeps its running statistics like BatchNorm (its own forward computes
    the averaging factor and which statistics to pass): a cumulative average over three batches, and momentum;
    then with track_running_stats switched off, batch statistics in training and eval."""
    seq = BNSeqCase(kind="SyncBatchNorm", num_features=2, spatial=(2,), dtype="float64", eps=1e-5, momentum=momentum,
                    affine=True, track=True, ops=(("forward", 3), ("forward", 2), ("eval",), ("forward", 2),
                                                   ("train",), ("forward", 4), ("track", False), ("forward", 3),
                                                   ("eval",), ("forward", 2)), seed=2)
    check_sequence(conform, seq)


def check_sequence(conform, seq, note=lambda rule: None):
    inputs = make_seq_inputs(seq)
    for k, field in running.steps(seq):
        case = SeqStep(seq, k, field)
        expects = running.expectations(case, inputs)
        note(expects[0].rule)  # hypothesis.event inside the property test
        conform.check(case, expects, run=run_seq_step)

"""Running statistics over a history of calls: momentum and cumulative updates, the counter, eval,
toggling track_running_stats / momentum after construction, empty batches.

A drawn ``BNSeqCase`` is the whole history (a fresh module, then ops), so a failure shrinks to a short
op list and its repro replays it; every record after a forward is checked field by field as a
``SeqStep`` under the rule that describes that step.  Rules: reference/norm.py.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from reference import norm as ref
from conform.tolerance import EXACT, tolerance
from suite.norm import torch_side as ts
from suite.norm.divergences import empty_batch_in_average, failed_call_counted
from suite.norm.strategies import seq_cases
from suite.norm.tolerances import bn_output_tol
from suite.norm.tolerances import channel_stats

FIELDS = ("y", "running_mean", "running_var", "num_batches_tracked")


def contexts(seq: ts.BNSeqCase) -> list[dict]:
    """Module flags at each forward, in order."""
    flags = {"training": True, "track": seq.track, "momentum": seq.momentum}
    out = []
    for op in seq.ops:
        if op[0] in ("train", "eval"):
            flags["training"] = op[0] == "train"
        elif op[0] in ("track", "momentum"):
            flags[op[0]] = op[1]
        elif op[0] == "forward":
            out.append({**flags, "n": op[1]})
    return out


def step_rule(case: ts.SeqStep, ctx: dict, expected) -> str:
    seq = case.seq
    if empty_batch_in_average(case):
        return ref.RUNNING_CUMULATIVE
    if failed_call_counted(case):
        return ref.RUNNING_COUNTER
    per_channel = ctx["n"] * int(np.prod(seq.spatial or (1,)))
    if isinstance(expected.get("y"), ref.Raised) or (case.field == "y" and per_channel == 1):
        return ref.INPUT_SINGLE_VALUE
    if ctx["n"] == 0:
        return ref.EMPTY_BATCH
    if ctx["track"] != seq.track:
        return ref.TOGGLE_TRACK
    if case.field == "y":
        return ref.FORWARD_BATCH if ctx["training"] or not seq.track else ref.FORWARD_EVAL
    if not ctx["training"]:
        return ref.RUNNING_EVAL_FROZEN
    if case.field == "num_batches_tracked":
        return ref.RUNNING_COUNTER
    if ctx["momentum"] != seq.momentum:
        return ref.TOGGLE_MOMENTUM
    return ref.RUNNING_CUMULATIVE if ctx["momentum"] is None else ref.RUNNING_MOMENTUM


def step_tol(case: ts.SeqStep, inputs: list[dict], ctxs: list[dict], records: list[dict]):
    """Errors of every earlier update add up (each update contracts the old error by 1 - f <= 1):
    ``steps`` updates of ``n_total`` summed values, conditioning the worst batch's."""
    seq, k = case.seq, case.step
    if case.field == "num_batches_tracked":
        return EXACT
    xs = [inputs[j + 1]["x"] for j in range(k + 1) if inputs[j + 1]["x"].shape[0]]
    steps = max(len(xs), 1)
    n_total = sum(x.size // x.shape[1] for x in xs) or 1
    batch = [channel_stats(x, seq.eps) for x in xs if x.size // x.shape[1] > 1]
    cond = max([b[4] for b in batch] + [1.0])
    M = max([float(np.max(np.abs(x))) for x in xs] + [1.0])
    rec = records[k]
    if case.field == "y":
        x = inputs[k + 1]["x"]
        w = inputs[0]["weight"] if seq.affine else None
        b = inputs[0]["bias"] if seq.affine else None
        use_batch = ctxs[k]["training"] or not seq.track
        if use_batch or x.size == 0:
            return bn_output_tol(seq.dtype, x, seq.eps, w, b)
        # eval: the running stats carry the error of every earlier update
        rm, rv = rec["running_mean"], rec["running_var"]
        sd = np.sqrt(rv + seq.eps)
        as_channels = (1, -1) + (1,) * (x.ndim - 2)
        xhat = float(np.max(np.abs(x - rm.reshape(as_channels)) / sd.reshape(as_channels)))
        cond_eval = max(cond, float(np.max((np.max(np.abs(x)) + np.abs(rm)) / sd)))
        scale = (1 + xhat) * (float(np.max(np.abs(w))) if w is not None else 1.0) + (
            float(np.max(np.abs(b))) if b is not None else 0.0)
        return tolerance(seq.dtype, ops=8 * steps, reduction=n_total, cond=cond_eval, scale=scale)
    if case.field == "running_mean":
        return tolerance(seq.dtype, ops=4 * steps, reduction=n_total, scale=max(M, 1.0))
    var_scale = max([float(np.max(b[2])) * b[0] / (b[0] - 1) for b in batch]
                    + [float(np.max(rec["running_var"])), 1.0])
    return tolerance(seq.dtype, ops=6 * steps, reduction=n_total, cond=cond, scale=var_scale)


@pytest.mark.rules(ref.RUNNING_MOMENTUM, ref.RUNNING_CUMULATIVE, ref.RUNNING_COUNTER, ref.RUNNING_EVAL_FROZEN,
                   ref.TOGGLE_TRACK, ref.TOGGLE_MOMENTUM, ref.EMPTY_BATCH)
@settings(max_examples=2 * settings.default.max_examples)  # cheap (~0.1 s an example), seven rules to reach
@given(data=st.data())
def test_running_sequences(conform, device, data):
    check_sequence(conform, device, data.draw(seq_cases(device)), note=event)


@pytest.mark.rules(ref.TOGGLE_MOMENTUM)
def test_momentum_toggled_after_construction(conform, device):
    """A fixed sequence that reaches norm.toggle.momentum in every profile (drawn sequences credit
    each step to its most specific rule, so random runs reach this one only by chance)."""
    seq = ts.BNSeqCase(kind="BatchNorm1d", num_features=2, spatial=(), dtype="float64", eps=1e-5, momentum=0.1,
                       affine=True, track=True, ops=(("forward", 3), ("momentum", 0.5), ("forward", 3)), seed=1)
    check_sequence(conform, device, seq)


def check_sequence(conform, device, seq, note=lambda rule: None):
    inputs = ts.make_seq_inputs(seq)
    expected = ref.bn_sequence(seq, inputs)
    actual = ts.run_bn_sequence(seq, device)
    ctxs = contexts(seq)
    if len(actual) != len(expected):  # defensive: both produce one record per forward
        conform.check(ref.RUNNING_COUNTER, seq, len(expected), len(actual), EXACT, None)
    for k, (exp, act) in enumerate(zip(expected, actual)):
        for field in FIELDS:
            if field not in exp and field not in act:
                continue
            case = ts.SeqStep(seq, k, field)
            rule = step_rule(case, ctxs[k], exp)
            note(rule)  # hypothesis.event inside the property test
            conform.check(rule, case, ts.select(exp, (field,)), ts.select(act, (field,)),
                          step_tol(case, inputs, ctxs, expected), ts.seq_step)

"""BatchNorm{1,2,3}d: construction, input checks, forward (train/eval, dtypes, conditioning), one-step
running-stat update.  Rules: reference/norm.py."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import event, given, target
from hypothesis import strategies as st

from reference import norm as ref
from conform.tolerance import EXACT
from suite.norm import torch_side as ts
from suite.norm.strategies import bn_cases, construct_cases, defaults_cases
from suite.norm.tolerances import bn_output_tol, running_mean_tol, running_var_tol
from suite.norm.tolerances import channel_stats


def weight_bias(case, inputs):
    w = inputs["weight"] if case.affine else None
    return w, (inputs["bias"] if case.affine and case.bias else None)


def output_tol(case, inputs):
    w, b = weight_bias(case, inputs)
    use_batch = case.training or not case.track
    running = None if use_batch else (inputs["running_mean"], inputs["running_var"])
    return bn_output_tol(case.dtype, inputs["x"], case.eps, w, b, running)


def forward_rule(case) -> str:
    if not case.training:
        return ref.FORWARD_EVAL if case.track else ref.FORWARD_UNTRACKED
    return ref.FORWARD_BATCH if case.affine and case.bias else ref.FORWARD_AFFINE


def check_running(conform, case, inputs, expected, actual, rule=None):
    """running_mean / running_var / num_batches_tracked after one forward of a fresh module."""
    if not case.track:
        return
    if rule is None:
        rule = (ref.RUNNING_EVAL_FROZEN if not case.training else
                ref.RUNNING_CUMULATIVE if case.momentum is None else ref.RUNNING_MOMENTUM)
    x = inputs["x"]
    conform.check(rule, case, ts.select(expected, ("running_mean",)), ts.select(actual, ("running_mean",)),
                  running_mean_tol(case.dtype, x, case.eps, inputs["running_mean"]), ts.bn_running_mean)
    conform.check(rule, case, ts.select(expected, ("running_var",)), ts.select(actual, ("running_var",)),
                  running_var_tol(case.dtype, x, case.eps, inputs["running_var"]), ts.bn_running_var)
    counter_rule = ref.RUNNING_EVAL_FROZEN if not case.training else ref.RUNNING_COUNTER
    conform.check(counter_rule, case, ts.select(expected, ("num_batches_tracked",)),
                  ts.select(actual, ("num_batches_tracked",)), EXACT, ts.bn_counter)


@pytest.mark.rules(ref.CONSTRUCT_PARAMS, ref.CONSTRUCT_BUFFERS)
@given(data=st.data())
def test_construct(conform, device, data):
    case = data.draw(construct_cases(device))
    expected, actual = ref.construct(case), ts.run_construct(case, device)
    conform.check(ref.CONSTRUCT_PARAMS, case, ts.select(expected, ("weight", "bias")),
                  ts.select(actual, ("weight", "bias")), EXACT, ts.run_construct_params)
    conform.check(ref.CONSTRUCT_BUFFERS, case, ts.select(expected, ("buffers",)), ts.select(actual, ("buffers",)),
                  EXACT, ts.run_construct_buffers)


@pytest.mark.rules(ref.CONSTRUCT_DEFAULTS)
@given(case=defaults_cases())
def test_defaults(conform, device, case):
    conform.check(ref.CONSTRUCT_DEFAULTS, case, ref.defaults(case), ts.run_defaults(case, device), EXACT,
                  ts.run_defaults)


def check_forward(conform, device, case):
    event(f"{case.kind} {case.dtype} {'train' if case.training else 'eval'}")
    inputs = ts.make_bn_inputs(case)
    expected, actual = ref.bn_forward(case, inputs), ts.run_bn(case, device)
    conform.check(ref.FORWARD_DTYPE, case, {"dtype": case.dtype, "shape": list(case.shape)},
                  ts.dtype_shape_of(actual), EXACT, ts.bn_dtype_shape)
    conform.check(forward_rule(case), case, ts.select(expected, ("y",)), ts.select(actual, ("y",)),
                  output_tol(case, inputs), ts.bn_output)
    check_running(conform, case, inputs, expected, actual)


@pytest.mark.rules(ref.FORWARD_BATCH, ref.FORWARD_AFFINE, ref.FORWARD_DTYPE,
                   ref.RUNNING_MOMENTUM, ref.RUNNING_CUMULATIVE, ref.RUNNING_COUNTER)
@given(data=st.data())
def test_forward_train(conform, device, data):
    check_forward(conform, device, data.draw(bn_cases(device, training=True)))


@pytest.mark.rules(ref.RUNNING_CUMULATIVE, ref.RUNNING_COUNTER)
@given(data=st.data())
def test_forward_train_cumulative(conform, device, data):
    """momentum=None with a preset counter k: the update weight is 1/(k + 1)."""
    check_forward(conform, device, data.draw(bn_cases(device, training=True, momentum=st.none(), track=st.just(True))))


@pytest.mark.rules(ref.FORWARD_EVAL, ref.FORWARD_UNTRACKED, ref.FORWARD_DTYPE, ref.RUNNING_EVAL_FROZEN)
@given(data=st.data())
def test_forward_eval(conform, device, data):
    check_forward(conform, device, data.draw(bn_cases(device, training=False)))


@pytest.mark.rules(ref.FORWARD_ILL)
@given(data=st.data())
def test_ill_conditioned(conform, device, data):
    """Large offsets and tiny variances; hypothesis.target steers towards large max|x| / sqrt(var + eps)."""
    case = data.draw(bn_cases(device, training=True, ill=True))
    inputs = ts.make_bn_inputs(case)
    cond = channel_stats(inputs["x"], case.eps)[4]
    target(math.log10(cond), label="log10 max|x|/sqrt(var+eps)")
    expected, actual = ref.bn_forward(case, inputs), ts.run_bn(case, device)
    conform.check(ref.FORWARD_ILL, case, ts.select(expected, ("y",)), ts.select(actual, ("y",)),
                  output_tol(case, inputs), ts.bn_output)
    if case.track:
        conform.check(ref.FORWARD_ILL, case, ts.select(expected, ("running_var",)),
                      ts.select(actual, ("running_var",)),
                      running_var_tol(case.dtype, inputs["x"], case.eps, inputs["running_var"]), ts.bn_running_var)


@st.composite
def wrong_rank_cases(draw, device):
    kind = draw(st.sampled_from(["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm"]))
    allowed = {"BatchNorm1d": (2, 3), "BatchNorm2d": (4,), "BatchNorm3d": (5,), "SyncBatchNorm": (2, 3, 4, 5, 6)}
    ndim = draw(st.sampled_from([d for d in range(0, 7) if d not in allowed[kind]]))
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=ndim, max_size=ndim)))
    C = shape[1] if ndim > 1 else 2
    return ts.BNCase(kind=kind, shape=shape, num_features=C, training=draw(st.booleans()),
                     track=draw(st.booleans()), seed=draw(st.integers(0, 99)))


@pytest.mark.rules(ref.INPUT_RANK)
@given(data=st.data())
def test_input_rank(conform, device, data):
    case = data.draw(wrong_rank_cases(device))
    expected = ref.bn_forward(case, ts.make_bn_inputs(case))
    conform.check(ref.INPUT_RANK, case, expected, ts.bn_output(case, device), EXACT, ts.bn_output)


@pytest.mark.rules(ref.INPUT_CHANNELS)
@given(data=st.data())
def test_input_channels(conform, device, data):
    base = data.draw(bn_cases(device, dtypes=["float32", "float64"]))
    C = base.shape[1]
    num_features = data.draw(st.sampled_from([c for c in range(1, 6) if c != C]))
    case = replace(base, num_features=num_features)
    inputs = ts.make_bn_inputs(case)
    expected = ref.bn_forward(case, inputs)
    # only modules without per-channel tensors accept the input; then the output is plain standardization
    tol = bn_output_tol(case.dtype, inputs["x"], case.eps, None, None)
    conform.check(ref.INPUT_CHANNELS, case, ts.select(expected, ("y",)), ts.bn_output(case, device), tol,
                  ts.bn_output)


@st.composite
def single_value_cases(draw, device):
    kind = draw(st.sampled_from(["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm"]))
    ndim = {"BatchNorm1d": draw(st.sampled_from([2, 3])), "BatchNorm2d": 4, "BatchNorm3d": 5,
            "SyncBatchNorm": draw(st.integers(2, 4))}[kind]
    C = draw(st.integers(1, 4))
    base = draw(bn_cases(device, kinds=("BatchNorm1d",), dtypes=["float32", "float64"]))
    return replace(base, kind=kind, shape=(1, C) + (1,) * (ndim - 2), num_features=C)


@pytest.mark.rules(ref.INPUT_SINGLE_VALUE)
@given(data=st.data())
def test_single_value_per_channel(conform, device, data):
    case = data.draw(single_value_cases(device))
    inputs = ts.make_bn_inputs(case)
    expected = ref.bn_forward(case, inputs)
    event("raises" if isinstance(expected, ref.Raised) else "eval with running stats")
    conform.check(ref.INPUT_SINGLE_VALUE, case, ts.select(expected, ("y",)), ts.bn_output(case, device),
                  output_tol(case, inputs), ts.bn_output)

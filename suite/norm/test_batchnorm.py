"""BatchNorm{1,2,3}d: construction, input checks, forward (train/eval, dtypes, conditioning), one-step
running-stat update.  Rules: reference/norm/batchnorm.py."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import event, example, given, settings, target
from hypothesis import strategies as st

from conform.expect import Expect
from conform.outcome import Raised
from reference.norm import batchnorm as ref
from reference.norm.tolerances import channel_stats
from suite.norm.cases import BNCase, DefaultsCase, make_bn_inputs
from suite.norm.strategies import bn_cases, construct_cases, defaults_cases
from suite.norm.torch_side.batchnorm import run_bn, run_construct, run_defaults
from suite.norm.torch_side.lazy import run_lazy


@pytest.mark.rules(ref.CONSTRUCT_PARAMS, ref.CONSTRUCT_BUFFERS)
@given(data=st.data())
def test_construct(conform, device, data):
    case = data.draw(construct_cases(device))
    # every parameter and buffer on the device the factory keyword named (none at all: no type)
    on_device = [device.split(":")[0]] if case.affine or case.track else []
    conform.check(case, ref.construct_expectations(case) + [Expect(ref.CONSTRUCT_BUFFERS, on_device,
                                                                   key="device_types")], run=run_construct)


@pytest.mark.rules(ref.CONSTRUCT_DEFAULTS)
@example(case=DefaultsCase(kind="LazyInstanceNorm2d", num_features=2))  # documented False, False (a divergence)
@example(case=DefaultsCase(kind="LazyBatchNorm1d", num_features=2))
@given(case=defaults_cases())
def test_defaults(conform, device, case):
    conform.check(case, ref.defaults_expectations(case), run=run_defaults)


def check_forward(conform, case):
    event(f"{case.kind} {case.dtype} {'train' if case.training else 'eval'}")
    conform.check(case, ref.forward_expectations(case, make_bn_inputs(case)), run=run_bn)


@pytest.mark.rules(ref.FORWARD_BATCH, ref.FORWARD_AFFINE, ref.FORWARD_DTYPE,
                   ref.RUNNING_MOMENTUM, ref.RUNNING_CUMULATIVE, ref.RUNNING_COUNTER)
@given(data=st.data())
def test_forward_train(conform, device, data):
    check_forward(conform, data.draw(bn_cases(device, training=True)))


@pytest.mark.rules(ref.RUNNING_CUMULATIVE, ref.RUNNING_COUNTER)
@settings(max_examples=max(1, settings.default.max_examples // 2))  # a slice of test_forward_train's states
@given(data=st.data())
def test_forward_train_cumulative(conform, device, data):
    """momentum=None with a preset counter k: the update weight is 1/(k + 1)."""
    check_forward(conform, data.draw(bn_cases(device, training=True, momentum=st.none(), track=st.just(True))))


@pytest.mark.rules(ref.FORWARD_EVAL, ref.FORWARD_UNTRACKED, ref.FORWARD_DTYPE, ref.RUNNING_EVAL_FROZEN)
@given(data=st.data())
def test_forward_eval(conform, device, data):
    check_forward(conform, data.draw(bn_cases(device, training=False)))


@pytest.mark.rules(ref.FORWARD_ILL)
@given(data=st.data())
def test_ill_conditioned(conform, device, data):
    """Large offsets and tiny variances; hypothesis.target steers towards large max|x| / sqrt(var + eps)."""
    case = data.draw(bn_cases(device, training=True, ill=True))
    inputs = make_bn_inputs(case)
    target(math.log10(channel_stats(inputs["x"], case.eps)[4]), label="log10 max|x|/sqrt(var+eps)")
    conform.check(case, ref.ill_conditioned_expectations(case, inputs), run=run_bn)


@st.composite
def wrong_rank_cases(draw, device):
    kind = draw(st.sampled_from(["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "LazyBatchNorm1d",
                                 "LazyBatchNorm2d", "LazyBatchNorm3d"]))
    allowed = {"BatchNorm1d": (2, 3), "BatchNorm2d": (4,), "BatchNorm3d": (5,), "SyncBatchNorm": (2, 3, 4, 5, 6)}
    # every rank, 0D and 1D too (a Lazy module with parameters or running stats raises IndexError there:
    # norm-lazy-low-rank-index-error; affine is drawn so that the Lazy module without them is reached as well)
    ndim = draw(st.sampled_from([d for d in range(0, 7) if d not in allowed[kind.removeprefix("Lazy")]]))
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=ndim, max_size=ndim)))
    C = shape[1] if ndim > 1 else 2
    return BNCase(kind=kind, shape=shape, num_features=C, training=draw(st.booleans()), affine=draw(st.booleans()),
                  track=draw(st.booleans()), seed=draw(st.integers(0, 99)))


@pytest.mark.rules(ref.INPUT_RANK)
@given(data=st.data())
def test_input_rank(conform, device, data):
    case = data.draw(wrong_rank_cases(device))
    # a Lazy module cannot be preset: its own runner (its first call is the checked one)
    conform.check(case, ref.rank_expectations(case, make_bn_inputs(case)),
                  run=run_lazy if case.kind.startswith("Lazy") else run_bn)


@pytest.mark.rules(ref.INPUT_CHANNELS)
@given(data=st.data())
def test_input_channels(conform, device, data):
    base = data.draw(bn_cases(device, dtypes=["float32", "float64"]))
    C = base.shape[1]
    num_features = data.draw(st.sampled_from([c for c in range(1, 6) if c != C]))
    case = replace(base, num_features=num_features)
    conform.check(case, ref.channels_expectations(case, make_bn_inputs(case)), run=run_bn)


@pytest.mark.rules(ref.INPUT_EPS)
@pytest.mark.parametrize("case", [
    BNCase(kind="BatchNorm2d", shape=(2, 3, 2, 2), eps=0.0),  # training: batch statistics
    # eval with running stats: eps 0 is fine from 2.12 on
    BNCase(kind="BatchNorm1d", shape=(4, 2), num_features=2, eps=0.0, training=False),
    BNCase(kind="BatchNorm1d", shape=(4, 2, 3), num_features=2, eps=-1e-3, training=False, affine=False),
    # eval without running stats: batch statistics
    BNCase(kind="SyncBatchNorm", shape=(3, 2), num_features=2, eps=-1e-3, training=False, track=False)],
    ids=["train-zero", "eval-zero", "eval-negative", "untracked-negative"])
def test_input_eps(conform, device, case):
    conform.check(case, ref.eps_expectations(case, make_bn_inputs(case)), run=run_bn)


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
    expects = ref.single_value_expectations(case, make_bn_inputs(case))
    event("raises" if isinstance(expects[0].expected, Raised) else "eval with running stats")
    conform.check(case, expects, run=run_bn)

"""Golden cases of reference/norm: hand-computed values and identities, numpy only (no torch), and the
registry's predicates for torch's counting held against the counting itself."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from conform.outcome import Raised
from reference.norm import backward, batchnorm, core, extra_repr, functional, layer_norm, other_norms, running, syncbn
from reference.versions import since


def seq(**kw):
    # eps 1e-300: negligible next to every variance here (the hand values assume none), and > 0 as batch_norm
    # requires in training from 2.10 on (batchnorm.eps_rejected)
    base = dict(kind="BatchNorm1d", num_features=1, spatial=(), dtype="float64", eps=1e-300, momentum=0.1,
                affine=False, track=True, ops=(("forward", 2),), seed=0)
    return SimpleNamespace(**{**base, **kw})


def seq_inputs(*batches):
    return [{"weight": np.ones(1), "bias": np.zeros(1)}] + [{"x": np.asarray(b, float).reshape(-1, 1)} for b in batches]


def test_batch_stats_and_normalize_by_hand():
    x = np.array([[1.0], [3.0]])
    mean, var, n = core.batch_stats(x)
    assert (mean.tolist(), var.tolist(), n) == ([2.0], [1.0], 2)  # biased: ((1-2)^2 + (3-2)^2) / 2
    assert core.normalize(x, mean, var, 0.0, None, None).tolist() == [[-1.0], [1.0]]
    assert core.normalize(x, mean, var, 0.0, np.array([2.0]), np.array([5.0])).tolist() == [[3.0], [7.0]]
    assert core.unbiased(var, n).tolist() == [2.0]


def test_running_update_by_hand():
    records = running.bn_sequence(seq(), seq_inputs([1, 3]))
    assert np.allclose(records[0]["running_mean"], [0.2])    # 0.9 * 0 + 0.1 * 2
    assert np.allclose(records[0]["running_var"], [1.1])     # 0.9 * 1 + 0.1 * 2 (unbiased)
    assert records[0]["num_batches_tracked"] == 1


def test_cumulative_average_is_simple_average():
    case = seq(momentum=None, ops=(("forward", 2), ("forward", 2), ("forward", 2)))
    records = running.bn_sequence(case, seq_inputs([1, 3], [5, 7], [-1, 1]))
    assert np.allclose(records[-1]["running_mean"], [(2 + 6 + 0) / 3])
    assert np.allclose(records[-1]["running_var"], [(2 + 2 + 2) / 3])


def count_every_call(call):
    """A counting that counts every tracked training call, in the counter and in the average."""
    return 1, 1


def test_empty_batch_documented_vs_counting_every_call():
    case = seq(momentum=None, ops=(("forward", 0), ("forward", 2)))
    inputs = seq_inputs([], [1, 3])
    documented = running.bn_sequence(case, inputs)
    torch_like = running.bn_sequence(case, inputs, counts=count_every_call)
    assert documented[0]["y"].shape == (0, 1) and documented[0]["num_batches_tracked"] == 1
    assert np.allclose(documented[1]["running_mean"], [2.0])        # the only batch with statistics
    assert np.allclose(torch_like[1]["running_mean"], [1.0])        # 1/2 weight on the initial 0
    assert documented[1]["num_batches_tracked"] == torch_like[1]["num_batches_tracked"] == 2


def test_failed_call_leaves_state_unchanged():
    case = seq(ops=(("forward", 1),))
    documented = running.bn_sequence(case, seq_inputs([4]))
    torch_like = running.bn_sequence(case, seq_inputs([4]), counts=count_every_call)
    assert isinstance(documented[0]["y"], Raised)
    assert documented[0]["num_batches_tracked"] == 0 and torch_like[0]["num_batches_tracked"] == 1


def test_toggle_track_after_construction_keeps_buffers_for_eval():
    case = seq(ops=(("forward", 2), ("track", False), ("forward", 2), ("eval",), ("forward", 2)))
    records = running.bn_sequence(case, seq_inputs([1, 3], [10, 20], [2, 2]))
    assert records[1]["num_batches_tracked"] == 1 and np.allclose(records[1]["running_mean"], [0.2])
    # eval normalizes with the kept buffers: (2 - 0.2) / sqrt(1.1)
    assert np.allclose(records[2]["y"], (2 - 0.2) / np.sqrt(1.1))


def test_rank_errors():
    assert batchnorm.check_rank("BatchNorm1d", 3) is None and batchnorm.check_rank("BatchNorm2d", 4) is None
    assert batchnorm.check_rank("BatchNorm3d", 4).matches(Raised("ValueError", "expected 5D input (got 4D input)"))
    assert batchnorm.check_rank("BatchNorm1d", 4).matches(Raised("ValueError", "expected 2D or 3D input (got 4D input)"))
    assert batchnorm.check_rank("SyncBatchNorm", 1).matches(Raised("ValueError", "expected at least 2D input (got 1D input)"))


def _sync_case(**kw):
    base = dict(eps=1e-3, momentum=0.1, affine=True, bias=True, track=True, nbt_before=0)
    return SimpleNamespace(**{**base, **kw})


def test_sync_global_stats_by_hand():
    xs = [np.array([[1.0], [3.0]]), np.zeros((0, 1)), np.array([[5.0]])]
    mean, var, n = syncbn.sync_global_stats(xs)
    assert (mean.tolist(), n) == ([3.0], 3) and np.allclose(var, [8 / 3])


@pytest.mark.parametrize("batches", [(3, 2), (1, 0, 4), (2, 2, 2, 1)])
def test_sync_equals_concat_identity(batches):
    """SyncBN over ranks == BN over the concatenation (forward, dx, summed dw/db, running stats)."""
    rng = np.random.default_rng(sum(batches))
    C = 2
    xs = [rng.normal(size=(n, C, 3)) for n in batches]
    dys = [rng.normal(size=(n, C, 3)) for n in batches]
    inputs = {"xs": xs, "dys": dys, "weight": rng.normal(size=C), "bias": rng.normal(size=C),
              "running_mean": rng.normal(size=C), "running_var": rng.uniform(0.5, 2, size=C)}
    case = _sync_case()
    got = syncbn.sync_as_concat(case, inputs)
    x, dy = np.concatenate(xs), np.concatenate(dys)
    mean, var, n = core.batch_stats(x)
    dx, dw, db = backward.backward_train(x, dy, mean, var, case.eps, inputs["weight"])
    assert np.allclose(np.concatenate(got["y"]), core.normalize(x, mean, var, case.eps, inputs["weight"], inputs["bias"]))
    assert np.allclose(np.concatenate(got["grad_input"]), dx)
    assert np.allclose(got["grad_weight"], dw) and np.allclose(got["grad_bias"], db)
    assert np.allclose(got["running_var"], 0.9 * inputs["running_var"] + 0.1 * var * n / (n - 1))


def test_backward_matches_finite_differences():
    """The analytic train-mode backward against central differences of L = sum(y * dy), float64."""
    rng = np.random.default_rng(0)
    x, dy = rng.normal(size=(4, 2, 3)), rng.normal(size=(4, 2, 3))
    w, b, eps = rng.normal(size=2), rng.normal(size=2), 1e-3

    def loss(x_, w_, b_):
        m, v, _ = core.batch_stats(x_)
        return float((core.normalize(x_, m, v, eps, w_, b_) * dy).sum())

    mean, var, _ = core.batch_stats(x)
    dx, dw, db = backward.backward_train(x, dy, mean, var, eps, w)
    h = 1e-6
    num_dx = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        num_dx[idx] = (loss(x + e, w, b) - loss(x - e, w, b)) / (2 * h)
    num_dw = np.array([(loss(x, w + h * np.eye(2)[c], b) - loss(x, w - h * np.eye(2)[c], b)) / (2 * h) for c in range(2)])
    num_db = np.array([(loss(x, w, b + h * np.eye(2)[c]) - loss(x, w, b - h * np.eye(2)[c])) / (2 * h) for c in range(2)])
    assert np.allclose(dx, num_dx, atol=1e-6) and np.allclose(dw, num_dw, atol=1e-6) and np.allclose(db, num_db, atol=1e-6)


def test_group_layer_instance_identities():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 4, 5))
    inst = other_norms.instance_norm(x, 1e-5, None, None)
    assert np.allclose(other_norms.group_norm(x, 4, 1e-5, None, None), inst)          # one channel per group
    assert np.allclose(layer_norm(x, 1, 1e-5, None, None), inst)          # same axes for 3D input
    whole = other_norms.group_norm(x, 1, 0.0, None, None)
    assert np.allclose(whole.reshape(2, -1).mean(1), 0) and np.allclose(whole.reshape(2, -1).var(1), 1)
    assert layer_norm(np.array([[1.0, 3.0]]), 1, 0.0, None, None).tolist() == [[-1.0, 1.0]]


@pytest.mark.parametrize("kind,groups,norm_dims,shape", [("GroupNorm", 2, 1, (2, 4, 3)), ("LayerNorm", 1, 2, (2, 3, 2)),
                                                         ("InstanceNorm1d", 1, 1, (2, 3, 4))])
def test_other_norm_backward_matches_finite_differences(kind, groups, norm_dims, shape):
    """The closed-form Instance/Group/LayerNorm gradients equal central differences of the forward formula."""
    rng = np.random.default_rng(2)
    case = SimpleNamespace(kind=kind, shape=shape, groups=groups, norm_dims=norm_dims, eps=1e-3, affine=True,
                           bias=True)
    pshape = shape[-norm_dims:] if kind == "LayerNorm" else (shape[1],)
    inputs = {"x": rng.normal(size=shape), "dy": rng.normal(size=shape), "weight": rng.normal(size=pshape),
              "bias": rng.normal(size=pshape)}
    grads = other_norms.other_norm_backward(case, inputs)

    def loss(**over):
        return float((other_norms.other_norm(case, {**inputs, **over})["y"] * inputs["dy"]).sum())

    h = 1e-6
    for name, key in (("x", "grad_input"), ("weight", "grad_weight"), ("bias", "grad_bias")):
        num = np.zeros_like(inputs[name])
        for idx in np.ndindex(num.shape):
            e = np.zeros_like(num)
            e[idx] = h
            num[idx] = (loss(**{name: inputs[name] + e}) - loss(**{name: inputs[name] - e})) / (2 * h)
        assert np.allclose(grads[key], num, atol=1e-6), key


def test_instance_norm_single_spatial_element_raises():
    case = SimpleNamespace(kind="InstanceNorm2d", shape=(3, 2, 1, 1), eps=1e-5, affine=False, bias=True)
    out = other_norms.other_norm(case, {"x": np.ones((3, 2, 1, 1)), "weight": np.ones(2), "bias": np.zeros(2)})
    assert out == Raised("ValueError", r"^Expected more than 1 spatial element when training")


def test_documented_defaults():
    assert batchnorm.defaults(SimpleNamespace(kind="BatchNorm2d")) == {
        "eps": 1e-5, "momentum": 0.1, "affine": True, "track_running_stats": True, "has_bias": True}
    assert batchnorm.defaults(SimpleNamespace(kind="InstanceNorm1d"))["affine"] is False
    assert batchnorm.defaults(SimpleNamespace(kind="LayerNorm")) == {"eps": 1e-5, "elementwise_affine": True,
                                                              "has_bias": True}


def test_other_norm_backward_has_no_grad_for_a_missing_parameter():
    case = SimpleNamespace(kind="LayerNorm", shape=(2, 3), groups=1, norm_dims=1, eps=1e-5, affine=False, bias=True)
    grads = other_norms.other_norm_backward(case, {"x": np.arange(6.0).reshape(2, 3), "dy": np.ones((2, 3)),
                                                   "weight": np.ones(3), "bias": np.zeros(3)})
    assert grads["grad_weight"] is None and grads["grad_bias"] is None


@pytest.mark.parametrize("ops,step,field,empty,failed", [
    ((("forward", 0), ("momentum", None), ("forward", 2)), 1, "running_mean", True, False),
    ((("forward", 0), ("momentum", None), ("forward", 2), ("momentum", 1.0), ("forward", 2)), 2, "running_var",
     False, False),  # momentum 1.0 replaces the stats: nothing of the earlier average is left
    ((("forward", 0), ("momentum", None), ("forward", 2), ("eval",), ("forward", 2)), 2, "y", True, False),
    ((("forward", 1), ("forward", 2)), 1, "num_batches_tracked", False, True),
    ((("forward", 1), ("momentum", None), ("forward", 2)), 1, "running_mean", False, True),
    ((("forward", 1), ("eval",), ("forward", 1)), 1, "num_batches_tracked", False, True),
    ((("eval",), ("forward", 1), ("train",), ("forward", 2)), 1, "num_batches_tracked", False, False),
])
def test_history_predicates_by_hand(ops, step, field, empty, failed):
    case = seq(ops=ops)
    assert running.averages_after_empty_batch(case, step, field) is empty
    assert running.follows_failed_update(case, step, field) is failed


def test_history_predicates_say_exactly_where_counting_every_call_differs():
    """The registry's predicates are plain statements about a history; on every field of these histories
    they hold exactly where counting every call changes the outcome."""
    rng = np.random.default_rng(3)
    ops_pool = [("forward", 0), ("forward", 1), ("forward", 2), ("train",), ("eval",), ("track", False),
                ("track", True), ("momentum", None), ("momentum", 1.0), ("momentum", 0.5)]
    for _ in range(300):
        ops = tuple(ops_pool[i] for i in rng.integers(0, len(ops_pool), size=6)) + (("forward", 2),)
        case = seq(ops=ops, momentum=None if rng.integers(2) else 0.1)
        inputs = seq_inputs(*[rng.normal(size=op[1]) for op in ops if op[0] == "forward"])
        documented = running.bn_sequence(case, inputs)
        every = running.bn_sequence(case, inputs, counts=count_every_call)
        for k, field in running.steps(case):
            a, b = documented[k][field], every[k][field]
            differs = a != b if isinstance(a, Raised) else not np.array_equal(a, b)
            shown = (running.averages_after_empty_batch(case, k, field)
                     or running.follows_failed_update(case, k, field))
            assert shown == differs, (ops, k, field)


def test_lrn_windows_and_formula_by_hand():
    from reference.norm import lrn
    assert lrn.documented_windows(4, 3) == [[0, 1], [0, 1, 2], [1, 2, 3], [2, 3]]
    assert lrn.documented_windows(3, 2) == [[0, 1], [0, 1, 2], [1, 2]]  # even n: c - n/2 .. c + n/2
    x = np.array([[[1.0], [2.0]]])  # (N=1, C=2, L=1)
    # size 3, alpha 1, beta 1, k 1: D = 1 + (1 + 4) / 3 for both channels
    y = lrn.lrn_forward(x, 3, 1.0, 1.0, 1.0, lrn.documented_windows(2, 3))
    assert np.allclose(y[0, :, 0], [1 / (1 + 5 / 3), 2 / (1 + 5 / 3)])


def test_lrn_grad_is_the_formulas_derivative():
    from reference.norm import lrn
    rng = np.random.default_rng(1)
    x, dy = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 5, 3))
    w = lrn.documented_windows(5, 3)
    f = lambda t: (lrn.lrn_forward(t, 3, 0.5, 0.75, 1.0, w) * dy).sum()
    h, num = 1e-6, np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        num[i] = (f(x + e) - f(x - e)) / (2 * h)
    assert np.allclose(lrn.lrn_grad(x, dy, 3, 0.5, 0.75, 1.0, w), num, atol=1e-7)


def test_rms_by_hand():
    from reference.norm import rms
    case = SimpleNamespace(norm_dims=1, eps=0.0, affine=True, dtype="float64", backward=True)
    x = np.array([[3.0, 4.0]])
    out = rms.rms_outcome(case, {"x": x, "weight": np.array([1.0, 2.0]), "dy": np.ones((1, 2))})
    r = 1 / np.sqrt(12.5)
    assert np.allclose(out["y"], [[3 * r, 8 * r]])
    assert out["construct"] == {"normalized_shape": [2], "weight": [1.0, 1.0], "eps": 0.0}
    assert rms.eps_of(SimpleNamespace(eps=None, dtype="float32")) == float(np.finfo(np.float32).eps)


def test_legacy_state_dict_loads():
    from reference.norm import state
    from conform.outcome import OneOf
    inputs = {"weight": np.ones(2), "bias": np.zeros(2), "running_mean": np.zeros(2), "running_var": np.ones(2)}
    base = dict(kind="BatchNorm1d", num_features=2, affine=False, track=True, with_counter=False, counter=5,
                with_running=False, prior=3, strict=True)
    assert state.load_outcome(SimpleNamespace(**base, version=1), inputs)["num_batches_tracked"] == OneOf(0, 3)
    assert isinstance(state.load_outcome(SimpleNamespace(**base, version=2), inputs), Raised)
    assert state.load_outcome(SimpleNamespace(**{**base, "with_counter": True}, version=None),
                              inputs)["num_batches_tracked"] == 5
    inst = dict(base, kind="InstanceNorm1d", track=False, with_running=True)
    assert state.load_outcome(SimpleNamespace(**inst, version=None), inputs).message.startswith("Unexpected running")
    assert state.load_outcome(SimpleNamespace(**{**inst, "strict": False}, version=1), inputs) == {}


def test_lazy_defaults_follow_the_eager_twins():
    """LazyInstanceNorm's documented defaults are InstanceNorm's (nothing materialized), LazyBatchNorm's
    BatchNorm's (everything of num_features entries)."""
    inst = batchnorm.defaults(SimpleNamespace(kind="LazyInstanceNorm2d", num_features=4))
    assert (inst["affine"], inst["track_running_stats"], inst["has_bias"]) == (False, False, False)
    assert set(inst["after_first_call"].values()) == {None}
    bn = batchnorm.defaults(SimpleNamespace(kind="LazyBatchNorm3d", num_features=4))
    assert (bn["affine"], bn["track_running_stats"]) == (True, True)
    assert all(v == [4] for v in bn["after_first_call"].values())
    assert "after_first_call" not in batchnorm.defaults(SimpleNamespace(kind="InstanceNorm2d", num_features=4))


@pytest.mark.parametrize("ndim", [0, 1])
def test_lazy_low_rank_is_the_documented_rank_error(ndim):
    case = SimpleNamespace(kind="LazyBatchNorm1d", shape=(3,) * ndim, num_features=2, eps=1e-5, affine=True,
                           bias=True, track=True, training=True, nbt_before=0, momentum=0.1, dtype="float64")
    out = batchnorm.rank_expectations(case, {"x": np.zeros((3,) * ndim), "weight": np.ones(2), "bias": np.zeros(2),
                                             "running_mean": np.zeros(2), "running_var": np.ones(2)})[0].expected
    assert out == Raised("ValueError", rf"^expected 2D or 3D input \(got {ndim}D input\)$")


def test_extra_repr_by_hand():
    bias = ", bias=True" if since("2.12") else ""
    assert extra_repr.extra_repr("LayerNorm", (3,), {}) == f"(3,), eps=1e-05, elementwise_affine=True{bias}"
    assert extra_repr.extra_repr("RMSNorm", ((2, 3),), {"eps": 1e-3}) == "(2, 3), eps=0.001, elementwise_affine=True"
    no_bias = ", bias=False" if since("2.12") else ""
    assert (extra_repr.extra_repr("BatchNorm1d", (4,), {"momentum": None, "affine": False}) ==
            f"4, eps=1e-05, momentum=None, affine=False{no_bias}, track_running_stats=True")
    assert extra_repr.extra_repr("GroupNorm", (2, 6), {"bias": False}) == f"2, 6, eps=1e-05, affine=True{no_bias}"
    assert extra_repr.extra_repr("CrossMapLRN2d", (3,), {"alpha": 2}) == "3, alpha=2, beta=0.75, k=1"


def test_dispatch_binds_defaults():
    got = functional.bound_arguments("group_norm", (("input", "like"), ("num_groups", 3), ("eps", 0.25)))
    assert got == {"input": "like", "num_groups": 3, "weight": None, "bias": None, "eps": 0.25}


def test_eps_checks_by_release():
    if since("2.12"):
        assert batchnorm.eps_rejected(0.0, True) and not batchnorm.eps_rejected(0.0, False)
        assert batchnorm.eps_rejected(-1e-3, False)
    assert not batchnorm.eps_rejected(1e-5, True) and not batchnorm.eps_rejected(1e-5, False)

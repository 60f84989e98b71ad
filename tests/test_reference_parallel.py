"""Golden cases of reference/parallel.py, computed by hand (no torch)."""
from __future__ import annotations

import numpy as np
import pytest

from reference import parallel as ref
from conform.outcome import Raised, compare
from suite.parallel.cases import ApplyCase, DPCase, GatherCase, ModSpec, ReplicateCase, ScatterCase, ScatterKwargsCase


@pytest.mark.parametrize("n,parts,sizes", [(5, 4, [2, 2, 1]), (6, 4, [2, 2, 2]), (8, 4, [2, 2, 2, 2]),
                                           (1, 4, [1]), (3, 1, [3]), (7, 3, [3, 3, 1]), (0, 3, [0, 0, 0])])
def test_chunk_sizes(n, parts, sizes):
    assert ref.chunk_sizes(n, parts) == sizes


def test_scatter_tensor_is_a_tuple_of_chunks():
    out = ref.scatter_outcome(ScatterCase(tree=("T", 0, (3, 2)), n_devices=2, dim=0))
    assert out["type"] == "tuple"
    assert [r[2].tolist() for r in out["replicas"]] == [[[0, 1], [2, 3]], [[4, 5]]]


def test_scatter_negative_dim():
    out = ref.scatter_outcome(ScatterCase(tree=("T", 0, (1, 3)), n_devices=3, dim=-1))
    assert [r[2].tolist() for r in out["replicas"]] == [[[0]], [[1]], [[2]]]


def test_scatter_min_over_members_and_references():
    tree = ("seq", "tuple", (("T", 1, (4,)), ("T", 2, (2,)), ("obj", "a")))
    out = ref.scatter_outcome(ScatterCase(tree=tree, n_devices=4))
    assert out["type"] == "list" and len(out["replicas"]) == 2  # 4 and 2 rows over 4 devices: min(4, 2)
    first = out["replicas"][0]
    assert first[:3] == ("seq", "tuple", False)
    assert first[3][1][2].tolist() == [2000.0] and first[3][2] == ("obj", "a", True)


def test_scatter_mapping_keeps_type_and_order():
    tree = ("map", "OrderedDict", (("b", ("T", 1, (2,))), ("a", ("int", 3))))
    out = ref.scatter_outcome(ScatterCase(tree=tree, n_devices=2))
    assert [r[1] for r in out["replicas"]] == ["OrderedDict", "OrderedDict"]
    assert [k for k, _ in out["replicas"][1][3]] == ["b", "a"]
    assert out["replicas"][1][3][0][1][2].tolist() == [1001.0]


def test_scatter_empty_containers_by_reference():
    tree = ("seq", "list", (("seq", "list", ()), ("map", "dict", ()), ("seq", "tuple", ())))
    out = ref.scatter_outcome(ScatterCase(tree=tree, n_devices=2))
    assert out["replicas"][0][3] == [("seq", "list", True, []), ("map", "dict", True, []), ("seq", "tuple", None, [])]


def test_scatter_quirks():
    nt = ScatterCase(tree=("seq", "tuple", (("T", 1, (2,)), ("seq", "Rec0", ()))), n_devices=2)
    assert len(ref.scatter_outcome(nt)["replicas"]) == 2
    assert ref.scatter_outcome(nt, quirks=True)["replicas"] == []
    dd = ScatterCase(tree=("map", "defaultdict", (("a", ("int", 1)),)), n_devices=2)
    assert isinstance(ref.scatter_outcome(dd, quirks=True)["replicas"], Raised)


def test_scatter_kwargs_padding():
    case = ScatterKwargsCase(inputs=("seq", "tuple", (("T", 1, (1,)),)), kwargs=("map", "dict", (("k", ("int", 7)),)),
                             n_devices=3)
    out = ref.scatter_kwargs_outcome(case)
    assert len(out["inputs"][1]) == len(out["kwargs"][1]) == 3  # the int kwarg goes to all 3 devices
    assert out["inputs"][1][1:] == [("seq", "tuple", None, [])] * 2
    unpadded = ScatterKwargsCase(inputs=("seq", "tuple", (("T", 1, (4,)),)),
                                 kwargs=("map", "dict", (("a", ("T", 2, (2,))),)), n_devices=4)
    assert len(ref.scatter_kwargs_outcome(unpadded)["kwargs"][1]) == 4
    assert len(ref.scatter_kwargs_outcome(unpadded, quirks=True)["kwargs"][1]) == 2


def test_gather_concat_and_scalars():
    out = ref.gather_outcome(GatherCase(outputs=(("T", 0, (1, 2)), ("T", 1, (1, 1))), dim=1))
    assert out["result"][2].tolist() == [[0, 1, 1000]] and out["warnings"] == []
    out = ref.gather_outcome(GatherCase(outputs=(("T", 0, ()), ("T", 1, ()))))
    assert out["result"][2].tolist() == [0, 1000] and out["warnings"] == [("UserWarning", ref.GATHER_SCALAR_WARNING)]


def test_gather_dict_errors():
    a = ("map", "dict", (("x", ("T", 0, (1,))), ("y", ("None",))))
    fewer = ("map", "dict", (("x", ("T", 1, (1,))),))
    renamed = ("map", "dict", (("x", ("T", 1, (1,))), ("z", ("None",))))
    assert ref.gather_outcome(GatherCase(outputs=(a, fewer)))["result"].type == "ValueError"
    assert ref.gather_outcome(GatherCase(outputs=(a, renamed)))["result"].type == "KeyError"


def test_gather_none_and_strings():
    assert ref.gather_outcome(GatherCase(outputs=(("None",), ("None",))))["result"] == ("None",)
    mixed = GatherCase(outputs=(("None",), ("T", 1, (1,))))
    assert isinstance(ref.gather_outcome(mixed)["result"], Raised)
    assert ref.gather_outcome(mixed, quirks=True)["result"] == ("None",)
    strs = GatherCase(outputs=(("str", "a"), ("str", "a")))
    assert ref.gather_outcome(strs)["result"].type == "TypeError"
    assert ref.gather_outcome(strs, quirks=True)["result"] == ("str", "<map object>")


def test_gather_sequence_length_mismatch_after_members():
    a = ("seq", "list", (("T", 0, (1,)), ("T", 1, (1,))))
    b = ("seq", "list", (("T", 2, (2, 2)),))  # member 0 already mismatches: its error comes first
    assert ref.gather_outcome(GatherCase(outputs=(a, b)))["result"].type == "RuntimeError"


def test_replicate_ties_and_registration():
    case = ReplicateCase(modules=(ModSpec(params=(("p0", 2), ("p1", None)), children=(("c0", 1), ("c1", 1)),
                                          ties=(("t0", 1, "p0"),)), ModSpec(params=(("p0", 1),))), n_devices=2)
    out = ref.replicate_outcome(case)
    root, child = out["replicas"][1]
    assert root["registered"] == ["p1"] and root["children"] == [["c0", 1], ["c1", 1]]
    assert root["params"][2][1][1] == child["params"][0][1][1]  # tied: one copy
    assert out["original"][0]["registered"] == ["p0", "p1", "t0"] and not out["original"][0]["is_replica"]


def test_parallel_apply_lowest_failure_wins():
    case = ApplyCase(scales=(1, 1, 1), failures=(None, "KeyError", "ValueError"))
    out = ref.parallel_apply_outcome(case)
    assert out.type == "KeyError" and "replica 1" in out.message
    assert ref.parallel_apply_outcome(ApplyCase(scales=(1,), failures=("TwoArgError",))).type == "RuntimeError"
    lengths = ref.parallel_apply_outcome(ApplyCase(scales=(1, 1), failures=(None, None), n_kwargs=3))
    assert lengths.matches(Raised("AssertionError", "The number of modules 2 is not equal to the number of kwargs_tup 3"))


def test_data_parallel_values():
    case = DPCase(batch=3, features=1, n_replicas=2)
    # W = [[-2], [-1], [0]] (7000..7002 % 5 - 2), b = [1, -1, 0] (8000..8002 % 3 - 1), x = [[-3], [-2], [-1]]
    fb = ref.dp_forward_backward(case)
    assert fb["output"].tolist() == [[7, 2, 0], [5, 1, 0], [3, 0, 0]]
    assert ref.dp_scalar(case).tolist() == [15, 3]  # chunks of 2 and 1 rows
    assert np.allclose(ref.dp_running_mean(case), 0.1 * np.array([6, 1.5, 0]))
    assert not compare(ref.dp_scalar(DPCase(batch=3, features=1, n_replicas=1)), np.array(18.0))


def test_replicate_detach_quirk_only_touches_replica_zero():
    case = ReplicateCase(modules=(ModSpec(params=(("p0", 2), ("p1", None))),), n_devices=2, detach=True)
    spec, torch_like = ref.replicate_outcome(case), ref.replicate_outcome(case, quirks=True)
    assert spec["replicas"][0][0]["registered"] == ["p1"] and spec["replicas"][0][0]["params"][0][1][3] is False
    assert torch_like["replicas"][0][0]["registered"] == ["p0", "p1"]
    assert torch_like["replicas"][0][0]["params"][0][1][3] is True
    assert not compare(spec["replicas"][1], torch_like["replicas"][1])


def test_replicate_grad_buffers():
    spec = ModSpec(buffers=(("b0", 1),), grad_buffers=True)
    grads = lambda out: [r[0]["buffers"][0][1][3] for r in out["replicas"]]  # noqa: E731
    assert grads(ref.replicate_outcome(ReplicateCase(modules=(spec,), n_devices=3))) == [True, True, True]
    # detach: replica 0 holds the original (still requiring grad), the others detached copies
    detached = ReplicateCase(modules=(spec,), n_devices=3, detach=True)
    assert grads(ref.replicate_outcome(detached)) == [True, False, False]

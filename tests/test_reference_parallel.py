"""Golden cases of reference/parallel/, computed by hand (no torch), and the parallel registry's torch-as-built
models: on each entry's repro they differ from the spec, and each ``when`` covers exactly (or, for gather,
at least) the cases where they do."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conform.outcome import Raised, compare
from reference.parallel import data_parallel, gather, parallel_apply, replicate, scatter, scatter_kwargs
from suite.parallel import divergences as registry
from suite.parallel import strategies as S
from suite.parallel.cases import (ApplyCase, DPCase, GatherCase, ImbalanceCase, ModSpec, ReplicateCase, ScatterCase,
                                  ScatterKwargsCase, ScriptReplicateCase, apply_input, dp_inputs, leaf_values,
                                  replicate_values, replicate_view)


def scattered(case):
    return scatter.scatter_outcome(case, leaf_values)


def gathered(case):
    return gather.gather_outcome(case, leaf_values)


def replicated(case):
    return replicate.replicate_outcome(case, replicate_values)


def only(expects):
    (expect,) = expects
    return expect


@pytest.mark.parametrize("n,parts,sizes", [(5, 4, [2, 2, 1]), (6, 4, [2, 2, 2]), (8, 4, [2, 2, 2, 2]),
                                           (1, 4, [1]), (3, 1, [3]), (7, 3, [3, 3, 1]), (0, 3, [0, 0, 0])])
def test_chunk_sizes(n, parts, sizes):
    assert scatter.chunk_sizes(n, parts) == sizes


def test_scatter_tensor_is_a_tuple_of_chunks():
    out = scattered(ScatterCase(tree=("T", 0, (3, 2)), n_devices=2, dim=0))
    assert out["type"] == "tuple"
    assert [r[2].tolist() for r in out["replicas"]] == [[[0, 1], [2, 3]], [[4, 5]]]


def test_scatter_negative_dim():
    out = scattered(ScatterCase(tree=("T", 0, (1, 3)), n_devices=3, dim=-1))
    assert [r[2].tolist() for r in out["replicas"]] == [[[0]], [[1]], [[2]]]


def test_scatter_min_over_members_and_references():
    tree = ("seq", "tuple", (("T", 1, (4,)), ("T", 2, (2,)), ("obj", "a")))
    out = scattered(ScatterCase(tree=tree, n_devices=4))
    assert out["type"] == "list" and len(out["replicas"]) == 2  # 4 and 2 rows over 4 devices: min(4, 2)
    first = out["replicas"][0]
    assert first[:3] == ("seq", "tuple", False)
    assert first[3][1][2].tolist() == [2000.0] and first[3][2] == ("obj", "a", True)


def test_scatter_mapping_keeps_type_and_order():
    tree = ("map", "OrderedDict", (("b", ("T", 1, (2,))), ("a", ("int", 3))))
    out = scattered(ScatterCase(tree=tree, n_devices=2))
    assert [r[1] for r in out["replicas"]] == ["OrderedDict", "OrderedDict"]
    assert [k for k, _ in out["replicas"][1][3]] == ["b", "a"]
    assert out["replicas"][1][3][0][1][2].tolist() == [1001.0]


def test_scatter_empty_containers_by_reference():
    tree = ("seq", "list", (("seq", "list", ()), ("map", "dict", ()), ("seq", "tuple", ())))
    out = scattered(ScatterCase(tree=tree, n_devices=2))
    assert out["replicas"][0][3] == [("seq", "list", True, []), ("map", "dict", True, []), ("seq", "tuple", None, [])]


def test_scatter_expectations_name_the_root_rule():
    case = ScatterCase(tree=("T", 0, (2,)), n_devices=2)
    assert only(scatter.expectations(case, leaf_values, "tensor")).rule == scatter.SCATTER_CHUNK


def test_scatter_kwargs_padding_and_rule():
    case = ScatterKwargsCase(inputs=("seq", "tuple", (("T", 1, (1,)),)), kwargs=("map", "dict", (("k", ("int", 7)),)),
                             n_devices=3)
    expect = only(scatter_kwargs.expectations(case, leaf_values))
    assert expect.rule == scatter_kwargs.KWARGS_NON_TENSOR  # a non-tensor kwarg
    out = expect.expected
    assert len(out["inputs"][1]) == len(out["kwargs"][1]) == 3  # the int kwarg goes to all 3 devices
    assert out["inputs"][1][1:] == [("seq", "tuple", None, [])] * 2
    unpadded = ScatterKwargsCase(inputs=("seq", "tuple", (("T", 1, (4,)),)),
                                 kwargs=("map", "dict", (("a", ("T", 2, (2,))),)), n_devices=4)
    expect = only(scatter_kwargs.expectations(unpadded, leaf_values))
    assert expect.rule == scatter_kwargs.KWARGS_PAD and len(expect.expected["kwargs"][1]) == 4


def test_gather_concat_and_scalars():
    out = gathered(GatherCase(outputs=(("T", 0, (1, 2)), ("T", 1, (1, 1))), dim=1))
    assert out["result"][2].tolist() == [[0, 1, 1000]] and out["warnings"] == []
    out = gathered(GatherCase(outputs=(("T", 0, ()), ("T", 1, ()))))
    assert out["result"][2].tolist() == [0, 1000] and out["warnings"] == [("UserWarning", gather.GATHER_SCALAR_WARNING)]


def test_gather_dict_errors():
    a = ("map", "dict", (("x", ("T", 0, (1,))), ("y", ("None",))))
    fewer = ("map", "dict", (("x", ("T", 1, (1,))),))
    renamed = ("map", "dict", (("x", ("T", 1, (1,))), ("z", ("None",))))
    assert gathered(GatherCase(outputs=(a, fewer)))["result"].type == "ValueError"
    assert gathered(GatherCase(outputs=(a, renamed)))["result"].type == "KeyError"


def test_gather_none_and_strings():
    assert gathered(GatherCase(outputs=(("None",), ("None",))))["result"] == ("None",)
    assert isinstance(gathered(GatherCase(outputs=(("None",), ("T", 1, (1,)))))["result"], Raised)
    assert gathered(GatherCase(outputs=(("str", "a"), ("str", "a"))))["result"].type == "TypeError"


def test_gather_sequence_length_mismatch_after_members():
    a = ("seq", "list", (("T", 0, (1,)), ("T", 1, (1,))))
    b = ("seq", "list", (("T", 2, (2, 2)),))  # member 0 already mismatches: its error comes first
    assert gathered(GatherCase(outputs=(a, b)))["result"].type == "RuntimeError"


def test_replicate_ties_and_registration():
    case = ReplicateCase(modules=(ModSpec(params=(("p0", 2), ("p1", None)), children=(("c0", 1), ("c1", 1)),
                                          ties=(("t0", 1, "p0"),)), ModSpec(params=(("p0", 1),))), n_devices=2)
    out = replicated(case)
    root, child = out["replicas"][1]
    assert root["registered"] == ["p1"] and root["children"] == [["c0", 1], ["c1", 1]]
    assert root["params"][2][1][1] == child["params"][0][1][1]  # tied: one copy
    assert out["original"][0]["registered"] == ["p0", "p1", "t0"] and not out["original"][0]["is_replica"]


def test_replicate_expectations_one_per_part():
    case = ReplicateCase(modules=(ModSpec(params=(("p0", 2),)),), n_devices=2)
    expects = replicate.expectations(case, replicate_values, replicate_view)
    assert [(e.rule, e.key) for e in expects] == list(replicate.VIEWS.items())
    assert not compare(expects[1].expected, replicate_view(replicated(case), "params"))


def test_replicate_grad_buffers():
    spec = ModSpec(buffers=(("b0", 1),), grad_buffers=True)
    grads = lambda out: [r[0]["buffers"][0][1][3] for r in out["replicas"]]  # noqa: E731
    assert grads(replicated(ReplicateCase(modules=(spec,), n_devices=3))) == [True, True, True]
    # detach: replica 0 holds the original (still requiring grad), the others detached copies
    assert grads(replicated(ReplicateCase(modules=(spec,), n_devices=3, detach=True))) == [True, False, False]


def test_parallel_apply_rules_in_check_order():
    failing = only(parallel_apply.expectations(ApplyCase(scales=(1, 1, 1), failures=(None, "KeyError", "ValueError")),
                                               apply_input))
    assert failing.rule == parallel_apply.APPLY_EXCEPTION
    assert failing.expected.type == "KeyError" and "replica 1" in failing.expected.message
    two_arg = only(parallel_apply.expectations(ApplyCase(scales=(1,), failures=("TwoArgError",)), apply_input))
    assert two_arg.expected.type == "RuntimeError"
    lengths = only(parallel_apply.expectations(ApplyCase(scales=(1, 1), failures=(None, "KeyError"), n_kwargs=3),
                                               apply_input))
    assert lengths.rule == parallel_apply.APPLY_LENGTHS  # the length check comes before any replica runs
    ok = parallel_apply.expectations(ApplyCase(scales=(2,), failures=(None,), rows=1, grad_enabled=False), apply_input)
    assert [(e.rule, e.key) for e in ok] == [(parallel_apply.APPLY_ORDER, "outputs"),
                                             (parallel_apply.APPLY_GRAD_MODE, "requires_grad")]
    assert ok[0].expected[0][2].tolist() == [1.0] and ok[1].expected == [False]  # 0 * 2 + (0 + 1)


def test_data_parallel_values():
    case = DPCase(batch=3, features=1, n_replicas=2)
    inputs = dp_inputs(case)
    # W = [[-2], [-1], [0]] (7000..7002 % 5 - 2), b = [1, -1, 0] (8000..8002 % 3 - 1), x = [[-3], [-2], [-1]]
    fb = only(data_parallel.forward_backward_expectations(case, inputs)).expected
    assert fb["output"].tolist() == [[7, 2, 0], [5, 1, 0], [3, 0, 0]]
    assert only(data_parallel.scalar_expectations(case, inputs)).expected.tolist() == [15, 3]  # chunks of 2 and 1
    running = only(data_parallel.buffer_expectations(case, inputs))
    assert np.allclose(running.expected, 0.1 * np.array([6, 1.5, 0])) and running.tol.rtol > 0
    one = DPCase(batch=3, features=1, n_replicas=1)
    assert not compare(only(data_parallel.scalar_expectations(one, dp_inputs(one))).expected, np.array(18.0))


def test_data_parallel_imbalance_memory_first_then_cores():
    def warned(ids, memory, cores):
        return only(data_parallel.imbalance_expectations(ImbalanceCase(ids, memory, cores))).expected

    # memory 4 of 8 < 3/4: GPU 5 (least) against GPU 2 (most); the cores are not looked at
    (only_warning,) = warned((2, 5), (8, 4), (1, 8))
    assert only_warning[1].startswith("There is an imbalance between your GPUs. You may want to exclude GPU 5 which")
    assert "cores of GPU 2." in only_warning[1]
    # memory 6 of 8 is exactly 3/4: not below; cores 2 of 3 are: GPU 0 (fewest) against GPU 1
    assert "exclude GPU 0 " in warned((0, 1), (8, 6), (2, 3))[0][1]
    assert warned((0, 1, 2), (8, 7, 6), (7, 6, 8)) == []  # both at exactly 3/4


def test_data_parallel_functional_and_cpu_build():
    case = DPCase(batch=3, features=1, n_replicas=2)
    functional = only(data_parallel.functional_expectations(case, dp_inputs(case))).expected
    assert functional["output"].tolist() == [[7, 2, 0], [5, 1, 0], [3, 0, 0]]
    assert functional["no_inputs"].tolist() == [2, 4, 6]
    raised = only(data_parallel.functional_cpu_build_expectations(case)).expected
    assert raised.type == "RuntimeError" and raised.message == "^device type could not be determined$"
    param = only(data_parallel.param_device_expectations(case, "cuda:0", "cpu")).expected
    assert param["module"] == param["functional"] and param["module"].message.endswith("on device: cpu$")


def test_replicate_script_module_and_empty_parallel_apply():
    case = ScriptReplicateCase(n_devices=3, scripted_root=False, features=1, batch=3)
    script = only(replicate.script_expectations(case, dp_inputs(case))).expected
    assert script["scripted"] == [True] * 3 and [o.tolist() for o in script["outputs"]] == [
        [[7, 2, 0], [5, 1, 0], [3, 0, 0]]] * 3
    empty = only(parallel_apply.cpu_build_expectations(ApplyCase(scales=(), failures=()))).expected
    assert "IndexError" in empty.type  # nothing documented for no modules: any refusal


# ---- the registry's torch-as-built models ---------------------------------------------------------------
@pytest.mark.parametrize("entry", registry.DIVERGENCES, ids=lambda e: e.id)
def test_each_entry_models_a_deviation_on_its_repro(entry):
    expected = entry.expectation(entry.repro, "cpu").expected
    assert entry.when(entry.repro)
    assert differ(expected, entry.torch_does(entry.repro, expected)), f"{entry.id}: torch_does equals the spec"


def differ(a, b) -> bool:
    """Whether two modelled outcomes differ (two expected errors: by their patterns)."""
    if isinstance(a, Raised) or isinstance(b, Raised):
        return a != b
    if isinstance(a, dict) and isinstance(b, dict) and list(a) == list(b):
        return any(differ(a[k], b[k]) for k in a)
    return bool(compare(a, b))


def _differs(entry, case) -> bool:
    expects = entry.expect(case, "cpu")  # one expectation (of this or a sibling rule), or one per part
    expected = (expects[0] if len(expects) == 1 else next(e for e in expects if e.rule == entry.rule)).expected
    return differ(expected, entry.torch_does(case, expected))


ENTRY = {e.id: e for e in registry.DIVERGENCES}
FEW = settings(max_examples=60, deadline=None)


@FEW
@given(case=st.one_of(S.scatter_cases("mapping"), S.scatter_cases("namedtuple")))
def test_scatter_predicates_are_exact(case):
    """torch's scatter as built deviates exactly where one of the two entries' (disjoint) predicates holds."""
    defaultdict, namedtuple = ENTRY["parallel-scatter-defaultdict"], ENTRY["parallel-scatter-empty-namedtuple"]
    assert not (defaultdict.when(case) and namedtuple.when(case))
    assert _differs(defaultdict, case) == (defaultdict.when(case) or namedtuple.when(case))


@FEW
@given(case=st.one_of(S.scatter_kwargs_cases(), S.scatter_kwargs_cases(non_tensor=True)))
def test_scatter_kwargs_predicate_is_exact(case):
    entry = ENTRY["parallel-scatter-kwargs-unpadded"]
    assert entry.when(case) == _differs(entry, case)


@FEW
@given(case=S.replicate_cases())
def test_replicate_predicate_is_exact(case):
    entry = ENTRY["parallel-replicate-detach-registers-originals"]
    assert entry.when(case) == _differs(entry, case)


@FEW
@given(case=st.one_of(S.gather_cases(root="any", leaves="none", mutations=(None, "none_for_tensor", "none_for_none")),
                      S.gather_cases(root="any", leaves="unsupported"),
                      S.gather_cases(root="seq", mutations=(None, "shorten"))))
def test_gather_predicates_cover_every_deviation(case):
    """Where a gather as built deviates, its entries' predicates hold (they may also hold where an earlier
    error hides the deviation: there torch_does equals the spec)."""
    expected = gathered(case)
    if differ(expected, registry.torch_gather(case, expected)):
        assert registry.none_first_facing_others(case) or registry.first_holds_str(case)
    if differ(expected, registry.gather_truncating(case, expected)):
        assert registry.sequences_of_different_lengths(case)

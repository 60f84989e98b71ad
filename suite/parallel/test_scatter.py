"""scatter: chunking and recursion through containers (reference/parallel.py, scatter rules)."""
from __future__ import annotations

import pytest
import torch
from hypothesis import event, given, target
from hypothesis import strategies as st

from reference import parallel as ref
from suite.parallel import strategies as S
from suite.parallel import torch_side as ts
from suite.parallel.cases import ScatterCase

ROOTS = [(ref.SCATTER_CHUNK, "tensor"), (ref.SCATTER_MIN, "tensors"), (ref.SCATTER_SEQUENCE, "sequence"),
         (ref.SCATTER_MAPPING, "mapping"), (ref.SCATTER_NAMEDTUPLE, "namedtuple"),
         (ref.SCATTER_BY_REFERENCE, "plain"), (ref.SCATTER_EMPTY, "empty")]


@pytest.mark.parametrize("rule_id,root", [pytest.param(r, root, marks=pytest.mark.rules(r), id=root)
                                          for r, root in ROOTS])
@given(data=st.data())
def test_scatter(conform, device, rule_id, root, data):
    case = data.draw(S.scatter_cases(root))
    expected = ref.scatter_outcome(case)
    replicas = expected["replicas"]
    if isinstance(replicas, list):
        event(f"{len(replicas)} of {case.n_devices} replicas")
        target(float(case.n_devices - len(replicas)), label="devices left idle")
    conform.check(rule_id, case, expected, ts.run_scatter(case, device), torch_fn=ts.run_scatter)


@pytest.mark.rules(ref.SCATTER_CPU_BUILD)
@given(case=S.scatter_cases("tensor"))
def test_scatter_cpu_build(conform, device, case):
    if hasattr(torch._C, "_scatter"):
        pytest.skip("this torch build has torch._C._scatter (CUDA): the CPU-only behaviour does not apply")
    conform.check(ref.SCATTER_CPU_BUILD, case, ref.scatter_cpu_build(case), ts.run_scatter_unpatched(case, device),
                  torch_fn=ts.run_scatter_unpatched)


@pytest.mark.rules(ref.SCATTER_BY_REFERENCE)
def test_scatter_non_tensors_without_transport(conform, device):
    """Structures without tensors never reach the transport: torch's code runs unpatched on every build."""
    case = ScatterCase(tree=("seq", "list", (("obj", "a"), ("map", "dict", (("k", ("obj", "b")),)), ("int", 3))),
                       n_devices=3)
    conform.check(ref.SCATTER_BY_REFERENCE, case, ref.scatter_outcome(case), ts.run_scatter_unpatched(case, device),
                  torch_fn=ts.run_scatter_unpatched)

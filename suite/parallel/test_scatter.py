"""scatter: chunking and recursion through containers (reference/parallel/scatter.py)."""
from __future__ import annotations

import pytest
import torch
from hypothesis import event, given, settings, target
from hypothesis import strategies as st

from reference.parallel import scatter as ref
from suite.parallel import strategies as S
from suite.parallel.cases import ScatterCase, leaf_values
from suite.parallel.torch_side.scatter_gather import run_scatter, run_scatter_unpatched


@pytest.mark.parametrize("root", [pytest.param(root, marks=pytest.mark.rules(r), id=root)
                                  for root, r in ref.ROOTS.items()])
@given(data=st.data())
def test_scatter(conform, device, root, data):
    case = data.draw(S.scatter_cases(root))
    expects = ref.expectations(case, leaf_values, root)
    replicas = expects[0].expected["replicas"]
    event(f"{len(replicas)} of {case.n_devices} replicas")
    target(float(case.n_devices - len(replicas)), label="devices left idle")
    conform.check(case, expects, run=run_scatter)


@pytest.mark.rules(ref.SCATTER_CPU_BUILD)
@settings(max_examples=min(10, settings.default.max_examples))  # a refusal whatever the tensor: few suffice
@given(case=S.scatter_cases("tensor"))
def test_scatter_cpu_build(conform, device, case):
    if hasattr(torch._C, "_scatter"):
        pytest.skip("this torch build has torch._C._scatter (CUDA): the CPU-only behaviour does not apply")
    conform.check(case, ref.cpu_build_expectations(case), run=run_scatter_unpatched)


@pytest.mark.rules(ref.SCATTER_BY_REFERENCE)
def test_scatter_non_tensors_without_transport(conform, device):
    """Structures without tensors never reach the transport: torch's code runs unpatched on every build."""
    case = ScatterCase(tree=("seq", "list", (("obj", "a"), ("map", "dict", (("k", ("obj", "b")),)), ("int", 3))),
                       n_devices=3)
    conform.check(case, ref.expectations(case, leaf_values, "plain"), run=run_scatter_unpatched)

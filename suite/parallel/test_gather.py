"""gather: concatenation and recursion through outputs (reference/parallel/gather.py)."""
from __future__ import annotations

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from conform.outcome import Raised
from reference.parallel import gather as ref
from suite.parallel import strategies as S
from suite.parallel.cases import leaf_values
from suite.parallel.torch_side.scatter_gather import run_gather, run_gather_cpu_tensors

# The outputs drawn for each family (keys of ref.ABOUT, which names the rule each family exercises).
KINDS = {
    "concat": dict(root="leaf"),
    "mapping": dict(root="map"),
    "dict_keys": dict(root="map", mutations=("drop_key", "rename_key")),
    "sequence": dict(root="seq", mutations=(None, "shorten")),
    "none": dict(root="any", leaves="none", mutations=(None, None, "none_for_tensor", "none_for_none")),
    "scalar": dict(root="any", scalar=True),
    # a None facing tensors is parallel.gather.none's business
    "mismatch": dict(root="any", mutations=("reshape", "int_for_tensor")),
    "unsupported_leaf": dict(root="any", leaves="unsupported"),
}


@pytest.mark.parametrize("about", [pytest.param(a, marks=pytest.mark.rules(ref.ABOUT[a]), id=a) for a in KINDS])
@given(data=st.data())
def test_gather(conform, device, about, data):
    case = data.draw(S.gather_cases(**KINDS[about]))
    expects = ref.expectations(case, leaf_values, about)
    event("raises" if isinstance(expects[0].expected["result"], Raised) else "gathers")
    conform.check(case, expects, run=run_gather)


@pytest.mark.rules(ref.GATHER_CPU_TENSORS)
@settings(max_examples=min(10, settings.default.max_examples))  # a refusal whatever the tensors: few suffice
@given(case=S.gather_cases(root="leaf"))
def test_gather_cpu_tensors(conform, case):
    conform.check(case, ref.cpu_tensors_expectations(case), run=run_gather_cpu_tensors)

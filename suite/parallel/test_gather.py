"""gather: concatenation and recursion through outputs (reference/parallel.py, gather rules)."""
from __future__ import annotations

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from reference import parallel as ref
from conform.outcome import Raised
from suite.parallel import strategies as S
from suite.parallel import torch_side as ts

KINDS = [
    (ref.GATHER_CONCAT, dict(root="leaf")),
    (ref.GATHER_MAPPING, dict(root="map")),
    (ref.GATHER_KEYS, dict(root="map", mutations=("drop_key", "rename_key"))),
    (ref.GATHER_SEQUENCE, dict(root="seq", mutations=(None, "shorten"))),
    (ref.GATHER_NONE, dict(root="any", leaves="none", mutations=(None, None, "none_for_tensor", "none_for_none"))),
    (ref.GATHER_SCALAR, dict(root="any", scalar=True)),
    # a None facing tensors is parallel.gather.none's business
    (ref.GATHER_MISMATCH, dict(root="any", mutations=("reshape", "int_for_tensor"))),
    (ref.GATHER_UNSUPPORTED, dict(root="any", leaves="unsupported")),
]


@pytest.mark.parametrize("rule_id,kind", [pytest.param(r, k, marks=pytest.mark.rules(r), id=r.rsplit(".", 1)[1])
                                          for r, k in KINDS])
@given(data=st.data())
def test_gather(conform, device, rule_id, kind, data):
    case = data.draw(S.gather_cases(**kind))
    expected = ref.gather_outcome(case)
    event("raises" if isinstance(expected["result"], Raised) else "gathers")
    conform.check(rule_id, case, expected, ts.run_gather(case, device), torch_fn=ts.run_gather)


@pytest.mark.rules(ref.GATHER_CPU_TENSORS)
@given(case=S.gather_cases(root="leaf"))
def test_gather_cpu_tensors(conform, case):
    conform.check(ref.GATHER_CPU_TENSORS, case, ref.gather_cpu_tensors(case), ts.run_gather_cpu_tensors(case, "cpu"),
                  torch_fn=ts.run_gather_cpu_tensors)

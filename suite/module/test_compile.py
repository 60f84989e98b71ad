"""Module.compile against reference/module/compiled.py: a recording backend, few calls (tracing is costly)."""
from __future__ import annotations

import pytest

from reference.module import compiled as ref
from suite.module.cases import CompileCase
from suite.module.torch_side.compiled import compile_supported, run_compile


@pytest.mark.rules(ref.COMPILE_CALL)
@pytest.mark.parametrize("case", [CompileCase(calls=2, hook=True), CompileCase(calls=1, hook=False)],
                         ids=["hook", "plain"])
def test_compile(conform, device, case):
    if not compile_supported():
        pytest.skip("torch.compile does not support this Python on this build (torch._dynamo.is_dynamo_supported)")
    conform.check(case, ref.expectations(case), run=run_compile)

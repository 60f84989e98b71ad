"""Model of Module.compile (docstring in torch/nn/modules/module.py)."""
from __future__ import annotations

from conform.expect import Expect
from conform.rules import rule

SRC = "torch/nn/modules/module.py"

COMPILE_CALL = rule("module.compile.call",
    "compile(*args, **kwargs) compiles the module's __call__ with torch.compile, every argument passed as is: "
    "afterwards each call runs through the given backend (which is handed the traced graph) and returns what "
    "__call__ returns uncompiled -- forward hooks included, each firing once per call.",
    f"{SRC}: Module.compile ('This Module's `__call__` method is compiled and all arguments are passed as-is "
    "to torch.compile()'); torch/__init__.py: torch.compile (backend: 'a callable taking a torch.fx.GraphModule "
    "and example_inputs')")


def outputs(case) -> list[list[float]]:
    """The module under test computes 2x + 1 (and its forward hook, when present, adds 10 to the output),
    on x = [0, 1, 2] + i for call i: small integers, exact in float32."""
    return [[2.0 * (v + i) + 1.0 + (10.0 if case.hook else 0.0) for v in range(3)] for i in range(case.calls)]


def expectations(case) -> list[Expect]:
    return [Expect(COMPILE_CALL, {"backend_called": True, "outputs": outputs(case),
                                  "hook_calls": case.calls if case.hook else 0})]

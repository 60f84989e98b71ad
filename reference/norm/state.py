"""Loading state dicts into norm layers: the documented backward-compatible loads of older checkpoints.

Sources: torch/nn/modules/batchnorm.py: _NormBase._version = 2 and _load_from_state_dict ("at version 2: added
num_batches_tracked buffer, this should have a default value of 0"); torch/nn/modules/instancenorm.py:
_InstanceNorm._load_from_state_dict ("at version 1: removed running_mean and running_var when
track_running_stats=False"); nn.Module.load_state_dict (strict: missing/unexpected keys raise RuntimeError; the
version of each module is read from the state dict's ``_metadata``).
"""
from __future__ import annotations

from conform.expect import Expect
from conform.outcome import OneOf, Raised
from conform.rules import rule

BATCHNORM_PY = "torch/nn/modules/batchnorm.py"

STATE_LEGACY_COUNTER = rule(
    "norm.state.legacy_counter",
    "A BatchNorm state dict older than version 2 (or without version metadata) may lack num_batches_tracked: it "
    "loads, also with strict=True, and the counter takes the default 0 (or keeps the module's own; a layer on the "
    "meta device, loaded with assign=True, has none to keep); a counter the "
    "state dict holds is loaded; a version-2 state dict without it is missing a key (strict: RuntimeError).",
    f"{BATCHNORM_PY}: _NormBase._version, _NormBase._load_from_state_dict; nn.Module.load_state_dict")
STATE_INSTANCE_RUNNING = rule(
    "norm.state.instance_running_stats",
    "InstanceNorm with track_running_stats=False given a state dict without version metadata (pre-0.4) that holds "
    "running_mean/running_var raises RuntimeError 'Unexpected running stats buffer(s)' (whatever strict); with "
    "version metadata those keys are ordinary unexpected keys (strict: RuntimeError, else ignored).",
    "torch/nn/modules/instancenorm.py: _InstanceNorm._load_from_state_dict; nn.Module.load_state_dict")


def state_keys(case) -> list[str]:
    """The keys of a LoadCase's state dict."""
    keys = ["weight", "bias"] if case.affine else []
    if case.track or case.kind.startswith("InstanceNorm") and case.with_running:
        keys += ["running_mean", "running_var"]
    if case.track and case.with_counter:
        keys.append("num_batches_tracked")
    return keys


def load_outcome(case, inputs: dict) -> dict | Raised:
    """The module's state after load_state_dict (a LoadCase; inputs: cases.make_load_inputs), or the error."""
    keys = state_keys(case)
    legacy = case.version is None or case.version < 2
    if case.kind.startswith("InstanceNorm") and not case.track and "running_mean" in keys:
        if case.version is None:
            return Raised("RuntimeError", r"Unexpected running stats buffer\(s\)")
        if case.strict:
            return Raised("RuntimeError", r"Unexpected key\(s\) in state_dict")
    out = {k: inputs[k] for k in ("weight", "bias") if k in keys}
    if case.track:
        out.update(running_mean=inputs["running_mean"], running_var=inputs["running_var"])
        if "num_batches_tracked" in keys:
            out["num_batches_tracked"] = case.counter
        elif legacy:
            out["num_batches_tracked"] = OneOf(0, case.prior) if case.prior else 0
        elif case.strict:
            return Raised("RuntimeError", r'Missing key\(s\) in state_dict: "num_batches_tracked"')
        else:
            out["num_batches_tracked"] = case.prior
    return out


def expectations(case, inputs: dict) -> list[Expect]:
    rule_ = STATE_INSTANCE_RUNNING if case.kind.startswith("InstanceNorm") and not case.track else STATE_LEGACY_COUNTER
    return [Expect(rule_, load_outcome(case, inputs))]

"""Runner of reference/norm/state.py: load_state_dict of a hand-made (older) state dict into a fresh norm layer."""
from __future__ import annotations

from collections import OrderedDict

import torch

from conform.outcome import Raised
from suite.norm.cases import LoadCase, make_load_inputs
from suite.norm.torch_side.common import to_np


def run_load(case: LoadCase, device: str) -> dict | Raised:
    inputs = make_load_inputs(case)
    m = getattr(torch.nn, case.kind)(case.num_features, affine=case.affine, track_running_stats=case.track,
                                     device="meta" if case.meta else device)
    if case.track and not case.meta:
        m.num_batches_tracked.fill_(case.prior)
    sd = OrderedDict()
    for key in ("weight", "bias", "running_mean", "running_var"):
        wanted = case.affine if key in ("weight", "bias") else case.track or case.with_running
        if wanted:
            sd[key] = torch.tensor(inputs[key], dtype=torch.float32)
    if case.track and case.with_counter:
        sd["num_batches_tracked"] = torch.tensor(case.counter, dtype=torch.long)
    if case.version is not None:
        sd._metadata = {"": {"version": case.version}}  # what state_dict() records (nn.Module._version)
    try:
        m.load_state_dict(sd, strict=case.strict, **({"assign": True} if case.meta else {}))
    except RuntimeError as exc:
        return Raised.from_exception(exc)
    out = {k: to_np(getattr(m, k)) for k in ("weight", "bias") if case.affine}
    if case.track:
        out.update(running_mean=to_np(m.running_mean), running_var=to_np(m.running_var),
                   num_batches_tracked=int(m.num_batches_tracked))
    return out

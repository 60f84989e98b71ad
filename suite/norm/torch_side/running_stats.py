"""Runner of reference/norm/running.py: a fresh BatchNorm module, then a history of calls."""
from __future__ import annotations

import functools

import torch

from conform.outcome import Raised
from suite.norm.cases import BNSeqCase, SeqStep, dtype_of, make_seq_inputs
from suite.norm.torch_side.common import bn_kwargs, to_np, to_torch


# Each record field of a history is its own check (SeqStep), and each check runs its runner: the history
# is replayed once per (case, device), not once per field.  The records are plain numpy values, not shared
# with torch.
@functools.lru_cache(maxsize=4)
def run_bn_sequence(case: BNSeqCase, device: str) -> tuple:
    """One record per forward: the output (or the error it raised) and the module's buffers after it."""
    inputs = make_seq_inputs(case)
    cls = getattr(torch.nn, case.kind)
    m = cls(case.num_features, **bn_kwargs(case.eps, case.momentum, case.affine, case.track))
    m = m.to(device=device, dtype=dtype_of(case.dtype))
    if case.affine:
        with torch.no_grad():
            m.weight.copy_(to_torch(inputs[0]["weight"], case.dtype, device))
            m.bias.copy_(to_torch(inputs[0]["bias"], case.dtype, device))
    records, step = [], 0
    for op in case.ops:
        if op[0] == "train":
            m.train()
        elif op[0] == "eval":
            m.eval()
        elif op[0] == "track":
            m.track_running_stats = op[1]
        elif op[0] == "momentum":
            m.momentum = op[1]
        elif op[0] == "forward":
            step += 1
            try:
                with torch.no_grad():
                    y = to_np(m(to_torch(inputs[step]["x"], case.dtype, device)))
            except (ValueError, RuntimeError) as exc:
                y = Raised.from_exception(exc)
            rec = {"y": y}
            if m.running_mean is not None:
                rec.update(running_mean=to_np(m.running_mean), running_var=to_np(m.running_var),
                           num_batches_tracked=int(m.num_batches_tracked))
            records.append(rec)
    return tuple(records)


def run_seq_step(case: SeqStep, device: str) -> dict:
    """The record after forward ``case.step`` (the check's key selects ``case.field``)."""
    return run_bn_sequence(case.seq, device)[case.step]

"""Running statistics over a history of calls (a BNSeqCase: a fresh module, then ops): momentum and
cumulative updates, the counter, eval, toggling track_running_stats / momentum after construction,
empty batches.  Every record after a forward is checked field by field (a SeqStep) under the rule
that describes that step."""
from __future__ import annotations

import numpy as np

from conform.expect import Expect
from reference.norm import tolerances as tols
from reference.norm.batchnorm import (EMPTY_BATCH, FORWARD_BATCH, FORWARD_EVAL, INPUT_SINGLE_VALUE,
                                      RUNNING_COUNTER, RUNNING_CUMULATIVE, RUNNING_EVAL_FROZEN, RUNNING_MOMENTUM,
                                      TOGGLE_MOMENTUM, TOGGLE_TRACK, bn_call, bn_state0, documented_counts)

FIELDS = ("y", "running_mean", "running_var", "num_batches_tracked")


def bn_sequence(case, inputs: list[dict], counts=documented_counts) -> list:
    """A fresh module, then ``case.ops`` in order (inputs: cases.make_seq_inputs).  ``counts``: how a
    tracked training call moves the counters (batchnorm.documented_counts).

    Returns one record per ("forward", n) op: the output (or Raised) and the module state after it.
    """
    state = bn_state0(case)
    if case.track:
        state["running_mean"] = np.zeros(case.num_features)
        state["running_var"] = np.ones(case.num_features)
    weight = inputs[0]["weight"] if case.affine else None
    bias = inputs[0]["bias"] if case.affine else None
    records = []
    step = 0
    for op in case.ops:
        name = op[0]
        if name == "train":
            state["training"] = True
        elif name == "eval":
            state["training"] = False
        elif name == "track":
            state["track"] = op[1]
        elif name == "momentum":
            state["momentum"] = op[1]
        elif name == "forward":
            step += 1
            y = bn_call(state, inputs[step]["x"], case.kind, case.num_features, case.eps, weight, bias,
                        counts=counts)
            rec = {"y": y}
            if state["has_buffers"]:
                rec.update(running_mean=state["running_mean"], running_var=state["running_var"],
                           num_batches_tracked=state["num_batches_tracked"])
            records.append(rec)
    return records


# ---- the history of a sequence, read from its ops ------------------------------------------------------

def contexts(seq) -> list[dict]:
    """What each forward of a BNSeqCase is: the module's flags then, its batch size ``n``, whether it
    normalizes with batch statistics (``use_batch``), updates the running stats (``update``) and raises
    for a single value per channel (``raises``; the only error a sequence can meet)."""
    flags = {"training": True, "track": seq.track, "momentum": seq.momentum}
    per_sample = int(np.prod(seq.spatial or (1,)))
    out = []
    for op in seq.ops:
        if op[0] in ("train", "eval"):
            flags["training"] = op[0] == "train"
        elif op[0] in ("track", "momentum"):
            flags[op[0]] = op[1]
        elif op[0] == "forward":
            use_batch = flags["training"] or not seq.track
            out.append({**flags, "n": op[1], "use_batch": use_batch,
                        "update": flags["training"] and flags["track"] and seq.track,
                        "raises": use_batch and op[1] * per_sample == 1})
    return out


def _stats_follow(ctxs: list[dict], k: int, counted) -> bool:
    """Whether the running stats after forward ``k`` went through a momentum=None update on data that
    followed a ``counted(ctx)`` update, with no later update of factor 1 (momentum 1.0) replacing them."""
    after_counted = affected = False
    for ctx in ctxs[:k + 1]:
        data = ctx["update"] and not ctx["raises"] and ctx["n"] > 0
        if data and ctx["momentum"] is None and after_counted:
            affected = True
        elif data and ctx["momentum"] == 1.0:
            affected = False
        after_counted = after_counted or (ctx["update"] and counted(ctx))
    return affected


def _field_follows_stats(seq, ctxs: list[dict], k: int, field: str) -> bool:
    """Whether ``field`` after forward ``k`` is (or is computed from) the running stats."""
    if field in ("running_mean", "running_var"):
        return True
    ctx = ctxs[k]
    return field == "y" and not ctx["use_batch"] and ctx["n"] > 0


def averages_after_empty_batch(seq, k: int, field: str) -> bool:
    """The field shows how a momentum=None average treats an earlier empty batch (tracked, in training):
    the documented simple average leaves it out."""
    ctxs = contexts(seq)
    return (_field_follows_stats(seq, ctxs, k, field)
            and _stats_follow(ctxs, k, lambda ctx: ctx["n"] == 0 and not ctx["raises"]))


def follows_failed_update(seq, k: int, field: str) -> bool:
    """The field shows whether an earlier (or this) tracked training call that raised changed the state:
    the counter after it, or stats averaged with momentum=None after it."""
    ctxs = contexts(seq)
    if field == "num_batches_tracked":
        return any(ctx["update"] and ctx["raises"] for ctx in ctxs[:k + 1])
    return _field_follows_stats(seq, ctxs, k, field) and _stats_follow(ctxs, k, lambda ctx: ctx["raises"])


def step_rule(seq, k: int, field: str) -> str:
    """The rule field ``field`` after forward ``k`` is about, most specific first."""
    ctx = contexts(seq)[k]
    if averages_after_empty_batch(seq, k, field):
        return RUNNING_CUMULATIVE
    if follows_failed_update(seq, k, field):
        return RUNNING_COUNTER
    if ctx["raises"] or (field == "y" and ctx["n"] * int(np.prod(seq.spatial or (1,))) == 1):
        return INPUT_SINGLE_VALUE
    if ctx["n"] == 0:
        return EMPTY_BATCH
    if ctx["track"] != seq.track:
        return TOGGLE_TRACK
    if field == "y":
        return FORWARD_BATCH if ctx["training"] or not seq.track else FORWARD_EVAL
    if not ctx["training"]:
        return RUNNING_EVAL_FROZEN
    if field == "num_batches_tracked":
        return RUNNING_COUNTER
    if ctx["momentum"] != seq.momentum:
        return TOGGLE_MOMENTUM
    return RUNNING_CUMULATIVE if ctx["momentum"] is None else RUNNING_MOMENTUM


def steps(seq) -> list[tuple[int, str]]:
    """(forward index, field) of every field a record of the sequence has: the output, and the module's
    running stats and counter when it has buffers."""
    fields = FIELDS if seq.track else ("y",)
    return [(k, field) for k in range(len(contexts(seq))) for field in fields]


def expectations(step, inputs: list[dict]) -> list[Expect]:
    """A SeqStep: field ``step.field`` of the record after forward ``step.step`` (inputs:
    cases.make_seq_inputs(step.seq)), under the rule that describes that step."""
    seq, k, field = step.seq, step.step, step.field
    records = bn_sequence(seq, inputs)
    tol = tols.seq_step_tol(seq, k, field, inputs, contexts(seq)[k]["training"], records)
    return [Expect(step_rule(seq, k, field), records[k][field], tol, field)]

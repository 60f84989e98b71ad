"""Torch side of SyncBatchNorm across R processes on loopback.

A ``RankPool`` is R long-lived rank processes sharing one process group (gloo, or
NCCL when there is one GPU per rank); the parent sends each Case to every rank
and collects the per-rank outcomes, so one test function pays for one group.

Which kernels run:
- ``device == "cpu"``: torch's CPU build has no SyncBN kernels.  The ranks call
  torch's own autograd function ``torch.nn.modules._functions.SyncBatchNorm``
  (its Python-side all_gather / count masking / all_reduce / backward logic runs
  for real) with the five missing ATen kernels (``batch_norm_stats``,
  ``batch_norm_gather_stats_with_counts``, ``batch_norm_elemt``,
  ``batch_norm_backward_reduce``, ``batch_norm_backward_elemt``) replaced, in the
  rank processes only, by the float64 stand-ins below: "CPU stand-in kernels".
- ``device`` is a CUDA device: real ``torch.nn.SyncBatchNorm`` modules and real
  kernels; NCCL with one GPU per rank when there are enough GPUs, otherwise every
  rank on the same GPU with gloo on CUDA tensors.

Imports only torch, numpy, the standard library and ``suite`` (repro writer).
"""
from __future__ import annotations

import os
import queue
import socket
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.modules._functions import SyncBatchNorm as sync_fn

from conform.outcome import Raised
from suite.norm.torch_side import SyncCase, SyncField, bn_kwargs, dtype_of, make_sync_inputs, raised, set_sync_state, to_np, \
    to_torch

GROUP_TIMEOUT_S = 60.0   # collectives and process-group setup
REPLY_TIMEOUT_S = 90.0   # parent waiting for one reply of every rank
JOIN_TIMEOUT_S = 10.0


# ---------------------------------------------------------------------------------------
# CPU stand-ins for the SyncBN kernels (float64 math, CUDA kernels' calling conventions)
# ---------------------------------------------------------------------------------------

def _acc_dtype(t: torch.Tensor) -> torch.dtype:
    # the CUDA kernels return statistics in the accumulate type (float for half inputs)
    return t.dtype if t.dtype in (torch.float32, torch.float64) else torch.float32


def _cview(v: torch.Tensor, ndim: int) -> torch.Tensor:
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _axes(ndim: int) -> list[int]:
    return [0] + list(range(2, ndim))


def stand_in_stats(input, eps):
    x = input.double()
    mean = x.mean(dim=_axes(x.dim()))
    var = ((x - _cview(mean, x.dim())) ** 2).mean(dim=_axes(x.dim()))
    return mean.to(_acc_dtype(input)), (1.0 / torch.sqrt(var + eps)).to(_acc_dtype(input))


def stand_in_gather_stats_with_counts(input, mean_all, invstd_all, running_mean, running_var, momentum, eps,
                                      counts):
    n = counts.double().reshape(-1, 1)
    means, invstds = mean_all.double(), invstd_all.double()
    total = n.sum()
    mean = (n * means).sum(0) / total
    var = (n * (1.0 / invstds ** 2 - eps + (means - mean) ** 2)).sum(0) / total
    with torch.no_grad():
        if running_mean is not None:
            running_mean.copy_((1 - momentum) * running_mean.double() + momentum * mean)
        if running_var is not None:
            running_var.copy_((1 - momentum) * running_var.double() + momentum * var * total / (total - 1))
    return mean.to(mean_all.dtype), (1.0 / torch.sqrt(var + eps)).to(mean_all.dtype)


def stand_in_elemt(input, weight, bias, mean, invstd, eps):
    nd = input.dim()
    y = (input.double() - _cview(mean.double(), nd)) * _cview(invstd.double(), nd)
    if weight is not None:
        y = y * _cview(weight.double(), nd)
    if bias is not None:
        y = y + _cview(bias.double(), nd)
    return y.to(input.dtype)


def stand_in_backward_reduce(grad_out, input, mean, invstd, weight, input_g, weight_g, bias_g):
    nd = input.dim()
    dy = grad_out.double()
    xmu = input.double() - _cview(mean.double(), nd)
    sum_dy = dy.sum(dim=_axes(nd))
    sum_dy_xmu = (dy * xmu).sum(dim=_axes(nd))
    wdt = weight.dtype if weight is not None else input.dtype
    grad_weight = (sum_dy_xmu * invstd.double()).to(wdt) if weight_g else None
    grad_bias = sum_dy.to(wdt) if bias_g else None
    return sum_dy.to(mean.dtype), sum_dy_xmu.to(mean.dtype), grad_weight, grad_bias


def stand_in_backward_elemt(grad_out, input, mean, invstd, weight, sum_dy, sum_dy_xmu, count):
    nd = input.dim()
    total = count.double().sum()
    inv = _cview(invstd.double(), nd)
    xmu = input.double() - _cview(mean.double(), nd)
    w = _cview(weight.double(), nd) if weight is not None else 1.0
    dx = (grad_out.double() - _cview(sum_dy.double(), nd) / total
          - xmu * inv ** 2 * _cview(sum_dy_xmu.double(), nd) / total) * inv * w
    return dx.to(input.dtype)


STAND_INS = {"batch_norm_stats": stand_in_stats,
             "batch_norm_gather_stats_with_counts": stand_in_gather_stats_with_counts,
             "batch_norm_elemt": stand_in_elemt,
             "batch_norm_backward_reduce": stand_in_backward_reduce,
             "batch_norm_backward_elemt": stand_in_backward_elemt}


def install_stand_ins() -> None:
    """Rank processes on CPU only: torch's _functions.SyncBatchNorm looks these up on the torch module."""
    for name, fn in STAND_INS.items():
        setattr(torch, name, fn)


# ---------------------------------------------------------------------------------------
# one rank's work
# ---------------------------------------------------------------------------------------

def rank_device(device: str, rank: int, world: int) -> tuple[str, str]:
    """(device, backend) of one rank: NCCL with one GPU per rank when there are enough, else every rank on the
    given GPU with gloo on CUDA tensors; CPU ranks use gloo."""
    if device == "cpu":
        return "cpu", "gloo"
    dev = torch.device(device)
    count = torch.cuda.device_count() if dev.type == "cuda" else 1
    if count >= world and dev.index is None:
        return f"{dev.type}:{rank}", "nccl"
    return f"{dev.type}:{dev.index or 0}", "gloo"


def sync_step(case: SyncCase, rank: int, world: int, device: str) -> dict:
    """Forward + backward of one rank's batch; grads that autograd leaves None are reported as zeros
    (autograd's documented meaning of a None gradient)."""
    inputs = make_sync_inputs(case)
    m = torch.nn.SyncBatchNorm(case.channels, **bn_kwargs(case.eps, case.momentum, case.affine, case.track,
                                                          case.bias))
    m = m.to(device=device, dtype=dtype_of(case.dtype)).train()
    set_sync_state(m, case, inputs, device)
    x = to_torch(inputs["xs"][rank], case.dtype, device).requires_grad_()
    if device == "cpu":
        # SyncBatchNorm.forward rejects CPU input once a group exists, so call its autograd function with the
        # arguments the module would pass (batchnorm.py: SyncBatchNorm.forward)
        factor = 0.0 if case.momentum is None else case.momentum
        if case.track:
            m.num_batches_tracked.add_(1)
            if case.momentum is None:
                factor = 1.0 / m.num_batches_tracked.item()
        y = sync_fn.apply(x, m.weight, m.bias, m.running_mean, m.running_var, m.eps, factor,
                          dist.group.WORLD, world)
    else:
        y = m(x)
    y.backward(to_torch(inputs["dys"][rank], case.dtype, device))
    out = {"y": to_np(y), "grad_input": to_np(x.grad) if x.grad is not None else np.zeros(x.shape)}
    if case.affine:
        out["grad_weight"] = to_np(m.weight.grad) if m.weight.grad is not None else np.zeros(case.channels)
        if m.bias is not None:
            out["grad_bias"] = to_np(m.bias.grad) if m.bias.grad is not None else np.zeros(case.channels)
    if case.track:
        out.update(running_mean=to_np(m.running_mean), running_var=to_np(m.running_var),
                   num_batches_tracked=int(m.num_batches_tracked))
    return out


def probe_cpu_input(channels: int) -> Any:
    """nn.SyncBatchNorm in training on CPU input while the group is initialized."""
    try:
        torch.nn.SyncBatchNorm(channels).train()(torch.ones(2, channels))
    except (ValueError, RuntimeError) as exc:
        return raised(exc)
    return "no error"


def _rank_main(rank: int, world: int, port: int, device: str, inbox, outbox) -> None:
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    dev, backend = rank_device(device, rank, world)
    try:
        if dev != "cpu":
            torch.cuda.set_device(torch.device(dev))
        dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                                timeout=timedelta(seconds=GROUP_TIMEOUT_S))
        if dev == "cpu":
            install_stand_ins()
        outbox.put((rank, ("ready", backend)))
    except Exception as exc:  # report and exit: the parent fails the test with this message
        outbox.put((rank, raised(exc)))
        return
    try:
        while True:
            try:
                msg = inbox.get(timeout=600)
            except queue.Empty:
                break
            if msg is None:
                break
            what, arg = msg
            try:
                res = sync_step(arg, rank, world, dev) if what == "sync" else probe_cpu_input(arg)
            except Exception as exc:
                res = raised(exc)
            outbox.put((rank, res))
    finally:
        dist.destroy_process_group()


# ---------------------------------------------------------------------------------------
# the pool (parent side)
# ---------------------------------------------------------------------------------------

@dataclass
class RankPool:
    world: int
    device: str
    procs: list = field(default_factory=list)
    inboxes: list = field(default_factory=list)
    outbox: Any = None
    backend: str = ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _collect(pool: RankPool, timeout: float) -> list:
    """One reply per rank.  A rank process that dies (e.g. aborted by gloo) makes the missing replies
    Raised("RankCrashed", ...) at once; the pool is unusable afterwards (its peers may hang in a collective)."""
    replies: dict[int, Any] = {}
    waited = 0.0
    while len(replies) < pool.world:
        try:
            rank, res = pool.outbox.get(timeout=1.0)
            replies[rank] = res
            continue
        except queue.Empty:
            waited += 1.0
        dead = {r: p.exitcode for r, p in enumerate(pool.procs) if p.exitcode is not None and r not in replies}
        if dead:
            crash = Raised("RankCrashed", f"rank process(es) exited without answering: {dead}")
            return [replies.get(r, crash) for r in range(pool.world)]
        if waited >= timeout:
            raise TimeoutError(f"ranks {sorted(set(range(pool.world)) - set(replies))} did not answer within "
                               f"{timeout}s")
    return [replies[r] for r in range(pool.world)]


def start_pool(world: int, device: str) -> RankPool:
    # fork is cheap and safe for CPU-only ranks; CUDA needs spawn
    ctx = mp.get_context("fork" if device == "cpu" else "spawn")
    pool = RankPool(world, device, outbox=ctx.Queue())
    port = free_port()
    for rank in range(world):
        inbox = ctx.Queue()
        proc = ctx.Process(target=_rank_main, args=(rank, world, port, device, inbox, pool.outbox), daemon=True)
        proc.start()
        pool.procs.append(proc)
        pool.inboxes.append(inbox)
    try:
        ready = _collect(pool, REPLY_TIMEOUT_S)
    except BaseException:
        stop_pool(pool)
        raise
    bad = [r for r in ready if isinstance(r, Raised)]
    if bad:
        stop_pool(pool)
        raise RuntimeError(f"process group setup failed: {bad[0]}")
    pool.backend = ready[0][1]
    return pool


def pool_call(pool: RankPool, what: str, arg: Any) -> list:
    for inbox in pool.inboxes:
        inbox.put((what, arg))
    return _collect(pool, REPLY_TIMEOUT_S)


def stop_pool(pool: RankPool) -> None:
    for inbox in pool.inboxes:
        try:
            inbox.put(None)
        except Exception:
            pass
    for proc in pool.procs:
        proc.join(JOIN_TIMEOUT_S)
    for proc in pool.procs:
        if proc.is_alive():
            proc.terminate()
            proc.join(JOIN_TIMEOUT_S)
        if proc.is_alive():
            proc.kill()
            proc.join(JOIN_TIMEOUT_S)


def assemble(per_rank: list) -> dict | Raised:
    """Per-rank outcomes as one dict of per-rank lists (the reference's sync_forward_backward layout)."""
    errors = [r for r in per_rank if isinstance(r, Raised)]
    if errors:
        return errors[0]
    return {key: [r[key] for r in per_rank] for key in per_rank[0]}


def run_sync(case: SyncCase, device: str) -> dict | Raised:
    """Standalone: start len(rank_batches) ranks, run the case once, stop them."""
    pool = start_pool(len(case.rank_batches), device)
    try:
        return assemble(pool_call(pool, "sync", case))
    finally:
        stop_pool(pool)


def sync_field(case: SyncField, device: str):
    out = run_sync(case.sync, device)
    return out if isinstance(out, Raised) else {case.field: out.get(case.field)}


def sync_probe_cpu(case: SyncCase, device: str) -> Any:
    """Every rank's outcome of nn.SyncBatchNorm on CPU input inside an initialized group (device unused)."""
    pool = start_pool(len(case.rank_batches), "cpu")
    try:
        return pool_call(pool, "probe", case.channels)
    finally:
        stop_pool(pool)

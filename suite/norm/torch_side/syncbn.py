"""Runners of reference/norm/syncbn.py: SyncBatchNorm across R processes on loopback, BatchNorm on the
concatenated batch, convert_sync_batchnorm.

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
  rank processes only, by float64 stand-ins (syncbn_kernels.py): "CPU stand-in kernels".
- ``device`` is a CUDA device: real ``torch.nn.SyncBatchNorm`` modules and real
  kernels; NCCL with one GPU per rank when there are enough GPUs, otherwise every
  rank on the same GPU with gloo on CUDA tensors.

A test opens one pool for many cases (``rank_pool``); ``run_sync`` and ``run_probe_cpu`` use the
open pool of their world size and device, or start (and stop) their own, as a repro script does.
"""
from __future__ import annotations

import contextlib
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
from suite.norm.cases import ConvertCase, SyncCase, dtype_of, make_sync_inputs
from suite.norm.torch_side.common import bn_kwargs, preset, to_np, to_torch
from suite.norm.torch_side.syncbn_kernels import install_stand_ins

GROUP_TIMEOUT_S = 60.0   # collectives and process-group setup
REPLY_TIMEOUT_S = 90.0   # parent waiting for one reply of every rank
JOIN_TIMEOUT_S = 10.0


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
    preset(m, case, inputs, device)
    if case.affine and case.frozen_weight:
        m.weight.requires_grad_(False)
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
        return Raised.from_exception(exc)
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
        outbox.put((rank, Raised.from_exception(exc)))
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
                res = Raised.from_exception(exc)
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


# pools opened by a test for many cases, by (world, device)
_OPEN_POOLS: dict = {}


@contextlib.contextmanager
def rank_pool(world: int, device: str):
    """One pool of ``world`` ranks for a block of cases; stopped (processes joined, else killed) on exit."""
    pool = start_pool(world, device)
    _OPEN_POOLS[(world, device)] = pool
    try:
        yield pool
    finally:
        _OPEN_POOLS.pop((world, device), None)
        stop_pool(pool)


def _on_ranks(world: int, device: str, what: str, arg: Any) -> list:
    """Every rank's reply to (what, arg): in the open pool of this size and device, else in a pool of its own."""
    pool = _OPEN_POOLS.get((world, device))
    if pool is not None:
        return pool_call(pool, what, arg)
    with rank_pool(world, device) as pool:
        return pool_call(pool, what, arg)


def run_sync(case: SyncCase, device: str) -> dict | Raised:
    """SyncBatchNorm over len(case.rank_batches) ranks: every field as a list over ranks."""
    return assemble(_on_ranks(len(case.rank_batches), device, "sync", case))


def run_sync_as_concat(case: SyncCase, device: str) -> dict | Raised:
    """``run_sync`` assembled the way BatchNorm on the concatenated batch reports it: weight/bias grads summed
    over ranks (what DDP's all-reduce produces), the running stats of rank 0."""
    out = run_sync(case, device)
    if isinstance(out, Raised):
        return out
    out = dict(out)
    for key in ("grad_weight", "grad_bias"):
        if key in out:
            out[key] = np.sum(out[key], axis=0)
    for key in ("running_mean", "running_var"):
        if key in out:
            out[key] = out[key][0]
    return out


def run_probe_cpu(case: SyncCase, device: str) -> list:
    """Every rank's outcome of nn.SyncBatchNorm on CPU input inside an initialized group (a pool on
    ``device``, or a CPU pool of its own)."""
    world = len(case.rank_batches)
    if (world, device) in _OPEN_POOLS:
        return _on_ranks(world, device, "probe", case.channels)
    return _on_ranks(world, "cpu", "probe", case.channels)


# ---------------------------------------------------------------------------------------
# single process: BatchNorm on the concatenated batch, convert_sync_batchnorm
# ---------------------------------------------------------------------------------------

def bn_class_for_ndim(ndim: int) -> str:
    return {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d", 5: "BatchNorm3d"}[ndim]


def run_bn_concat(case: SyncCase, device: str) -> dict:
    """torch's single-process BatchNorm on the concatenation of every rank's batch, split back per rank."""
    inputs = make_sync_inputs(case)
    x = to_torch(np.concatenate(inputs["xs"]), case.dtype, device).requires_grad_()
    dy = to_torch(np.concatenate(inputs["dys"]), case.dtype, device)
    m = getattr(torch.nn, bn_class_for_ndim(x.dim()))(
        case.channels, **bn_kwargs(case.eps, case.momentum, case.affine, case.track, case.bias))
    m = m.to(device=device, dtype=dtype_of(case.dtype)).train()
    preset(m, case, inputs, device)
    if case.affine and case.frozen_weight:
        m.weight.requires_grad_(False)
    y = m(x)
    y.backward(dy)
    cuts = list(np.cumsum(case.rank_batches)[:-1])
    out = {"y": np.split(to_np(y), cuts), "grad_input": np.split(to_np(x.grad), cuts)}
    if case.affine:
        out["grad_weight"] = to_np(m.weight.grad) if m.weight.grad is not None else np.zeros(case.channels)
        if m.bias is not None:
            out["grad_bias"] = to_np(m.bias.grad)
    if case.track:
        out.update(running_mean=to_np(m.running_mean), running_var=to_np(m.running_var))
    return out


def run_convert(case: ConvertCase, device: str) -> dict:
    def make(kind: str) -> torch.nn.Module:
        if kind.startswith("BatchNorm"):
            m = getattr(torch.nn, kind)(case.num_features, **bn_kwargs(case.eps, case.momentum, case.affine,
                                                                       case.track, case.bias))
            m.train(case.bn_training)
            for p in m.parameters():
                p.requires_grad_(case.requires_grad)
            if case.qconfig is not None:
                m.qconfig = case.qconfig
            return m
        if kind == "Sequential":
            return torch.nn.Sequential()
        if kind == "Linear":
            return torch.nn.Linear(case.num_features, case.num_features)
        if kind == "InstanceNorm1d":
            return torch.nn.InstanceNorm1d(case.num_features)
        return getattr(torch.nn, kind)()

    root = make(case.layout[0][1])
    for path, kind in case.layout[1:]:
        parent, _, name = path.rpartition(".")
        root.get_submodule(parent).add_module(name, make(kind))
    root = root.to(device)
    before = dict(root.named_modules())
    converted = torch.nn.SyncBatchNorm.convert_sync_batchnorm(root)
    after = dict(converted.named_modules())
    bn = {}
    for path, old in before.items():
        if not isinstance(old, torch.nn.modules.batchnorm._BatchNorm):
            continue
        new = after[path]
        bn[path] = {
            "same": {k: getattr(new, k) is getattr(old, k) for k in
                     ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
                     if getattr(old, k) is not None},
            "hyper": [new.num_features, new.eps, new.momentum, new.affine, new.track_running_stats],
            "training": new.training,
            "requires_grad": [p.requires_grad for p in new.parameters(recurse=False)],
            "qconfig": getattr(new, "qconfig", None)}
    return {"root_same_object": converted is root,
            "modules": [(path, type(m).__name__) for path, m in converted.named_modules()],
            "bn": bn}

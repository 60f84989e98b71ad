"""Torch side of the container programs (Sequential, ModuleList, ModuleDict,
ParameterList, ParameterDict).  A ``ContainerProgram`` is the container kind, its
initial content (labels) and the ops so far; ``run_container_program`` rebuilds it
and returns (result of the last op, keys, labels) -- modules ``m1``.. and parameters
``p0``.. by identity, other tensors as ("Parameter"|"Tensor", label of the storage).
"""
from __future__ import annotations

from collections import OrderedDict

import torch

from conform.outcome import Raised
from suite.module.cases import MODS, PARS, TENS, ContainerProgram, CtOp

def make_pool(device: str) -> dict:
    g = torch.Generator().manual_seed(1)
    pool: dict = {m: torch.nn.Module() for m in MODS}
    for m in ("m4", "m5"):  # a different repr: one child
        pool[m].x = torch.nn.Module()
    for i, p in enumerate(PARS):
        pool[p] = torch.nn.Parameter(torch.randn(2, generator=g).to(device))
    for t in TENS:
        pool[t] = torch.randn(2, generator=g).to(device)
    return pool


def label(pool: dict, obj):
    if obj is None:
        return None
    if isinstance(obj, (int, str)):
        return obj
    for name, candidate in pool.items():
        if candidate is obj:
            return name
    if isinstance(obj, torch.Tensor):
        kind = "Parameter" if isinstance(obj, torch.nn.Parameter) else "Tensor"
        for name, candidate in pool.items():
            if isinstance(candidate, torch.Tensor) and candidate.data_ptr() == obj.data_ptr():
                return (kind, name)
    if isinstance(obj, torch.nn.Module):
        return (type(obj).__name__, snapshot(pool, obj))
    if isinstance(obj, dict):
        return ("dict", [(k, label(pool, v)) for k, v in obj.items()])
    return ("?", type(obj).__name__)


def snapshot(pool: dict, c) -> tuple:
    """(keys, labels) of a container's registered content."""
    if isinstance(c, torch.nn.ParameterDict):
        return list(c.keys()), [label(pool, c[k]) if hasattr(c, k) else ("unreachable",) for k in c.keys()]
    if isinstance(c, torch.nn.ParameterList):
        return [str(i) for i in range(len(c))], [label(pool, v) for v in c]
    return list(c._modules.keys()), [label(pool, v) for v in c._modules.values()]


def _item(pool: dict, v):
    """The pool object of a label; an int stands for itself (a non-tensor item of a parameter container)."""
    return v if isinstance(v, int) else pool[v]


def build(program: ContainerProgram, pool: dict):
    kind = program.container
    if kind == "Sequential":
        if program.named:
            return torch.nn.Sequential(OrderedDict((k, pool[v]) for k, v in program.init))
        return torch.nn.Sequential(*[pool[v] for v in program.init])
    if kind == "ModuleList":
        return torch.nn.ModuleList([pool[v] for v in program.init])
    if kind == "ModuleDict":
        return torch.nn.ModuleDict(OrderedDict((k, pool[v]) for k, v in program.init))
    if kind == "ParameterList":
        return torch.nn.ParameterList([_item(pool, v) for v in program.init])
    return torch.nn.ParameterDict(OrderedDict((k, _item(pool, v)) for k, v in program.init))


def _seq(pool, labels):
    return torch.nn.Sequential(*[pool[v] for v in labels])


def apply(c, pool: dict, op: CtOp):
    k, a = op.kind, op.args
    if k == "getitem":
        return label(pool, c[a[0]])
    if k == "getslice":
        return label(pool, c[slice(*a)])
    if k == "setitem":
        c[a[0]] = pool[a[1]]
        return None
    if k == "delitem":
        del c[a[0]]
        return None
    if k == "delslice":
        del c[slice(*a)]
        return None
    if k == "append":
        return c.append(pool[a[0]]) is c
    if k == "extend":
        return c.extend([pool[v] for v in a]) is c
    if k == "insert":
        out = c.insert(a[0], pool[a[1]])
        return None if out is None else out is c
    if k == "pop":
        return label(pool, c.pop(a[0]))
    if k == "add":
        other = _seq(pool, a) if isinstance(c, torch.nn.Sequential) else [pool[v] for v in a]
        return label(pool, c + other)
    if k == "iadd":
        other = _seq(pool, a) if isinstance(c, torch.nn.Sequential) else [pool[v] for v in a]
        c += other
        return None
    if k == "add_list":  # Sequential + a list of modules
        return label(pool, c + [pool[v] for v in a])
    if k == "iadd_list":  # Sequential += a list of modules
        c += [pool[v] for v in a]
        return None
    if k == "mul":
        return label(pool, c * a[0])
    if k == "rmul":
        return label(pool, a[0] * c)
    if k == "call":
        return label(pool, c(*a))
    if k == "dir":  # the names of dir() among the probe names, in dir's order (duplicates kept)
        return [key for key in dir(c) if key in a]
    if k == "repr_types":  # repr() must be a str; which of the probe type names it mentions
        text = repr(c)
        return type(text).__name__, [t for t in a if t in text]
    if k == "extend_bad":
        return c.extend(a[0])
    if k == "insert_bad":  # a non-Module value, as it is
        return c.insert(a[0], a[1])
    if k == "imul":
        c *= a[0]
        return None
    if k == "len":
        return len(c)
    if k == "repr":
        return repr(c)
    if k == "slice_append":
        part = c[slice(*a[:3])]
        part.append(pool[a[3]])
        return len(part), [label(pool, v) for v in part]
    if k == "contains":
        return a[0] in c
    if k == "update":
        c.update(OrderedDict((key, pool[v]) for key, v in a))
        return None
    if k == "update_dict":
        c.update({key: pool[v] for key, v in a})
        return None
    if k == "update_pairs":
        c.update([(key, pool[v]) for key, v in a])
        return None
    if k == "update_bad":
        c.update({"notiter": 5, "elem": [5], "len": [("a",)]}[a[0]])
        return None
    if k in ("keys", "iter", "reversed"):
        return list({"keys": c.keys, "iter": lambda: iter(c), "reversed": lambda: reversed(c)}[k]())
    if k == "values":
        return [label(pool, v) for v in c.values()]
    if k == "items":
        return [(key, label(pool, v)) for key, v in c.items()]
    if k == "clear":
        return c.clear()
    if k == "copy":
        return label(pool, c.copy())
    if k == "fromkeys":
        keys, default = a
        return label(pool, c.fromkeys(list(keys), None if default is None else pool[default]))
    if k == "or":
        return label(pool, c | OrderedDict((key, pool[v]) for key, v in a))
    if k == "ror":
        return label(pool, {key: pool[v] for key, v in a} | c)
    if k == "ior":
        c |= OrderedDict((key, pool[v]) for key, v in a)
        return None
    if k == "popitem":
        key, v = c.popitem()
        return (key, label(pool, v))
    if k == "setdefault":
        return label(pool, c.setdefault(a[0], pool[a[1]]))
    if k == "get":
        return label(pool, c.get(a[0]))
    raise ValueError(k)


# The container after the last program run: a program that extends it by one op (the next prefix a test
# checks) runs only that op.  Snapshots leave the container as it was.
_last_run: dict = {}


def run_container_program(program: ContainerProgram, device: str):
    """(result of the last op, keys, labels) after replaying every op."""
    last = _last_run.pop("state", None)
    if last is not None and last[0] == (device, program.container, program.init, program.named) \
            and last[1] == program.ops[:-1] and program.ops:
        pool, c, start = last[2], last[3], len(program.ops) - 1
    else:
        pool = make_pool(device)
        c, start = build(program, pool), 0
    result = None
    for op in program.ops[start:]:
        try:
            result = apply(c, pool, op)
        except Exception as exc:
            result = Raised.from_exception(exc)
    keys, labels = snapshot(pool, c)
    _last_run["state"] = ((device, program.container, program.init, program.named), program.ops, pool, c)
    return result, keys, labels

"""Model of the nn containers (torch/nn/modules/container.py docstrings): list
containers behave like Python lists whose keys are the positions '0'..'n-1'
(renumbered after deletions), dict containers like ordered dicts; ParameterList /
ParameterDict convert plain tensors to Parameters."""
from __future__ import annotations

from conform.expect import Expect
from conform.outcome import Raised
from conform.rules import rule

SRC = "torch/nn/modules/container.py"

CT_INDEX = rule("module.containers.index",
    "Sequential/ModuleList/ParameterList indexing accepts -n <= i < n (negative counts from the end), else "
    "IndexError 'index i is out of range'.", f"{SRC}: Sequential.__getitem__, ModuleList.__getitem__")
CT_SLICE = rule("module.containers.slice",
    "Slicing returns a new container of the same class with the selected items (ModuleList/ParameterList "
    "renumbered, Sequential keeping the original keys).", f"{SRC}: Sequential.__getitem__, ModuleList.__getitem__")
CT_SETITEM = rule("module.containers.setitem",
    "Item assignment replaces the item at that position (same key); out of range raises IndexError.",
    f"{SRC}: Sequential.__setitem__, ModuleList.__setitem__")
CT_DELETE = rule("module.containers.delete_renumbers",
    "del (index or slice) and pop remove items and renumber the keys to '0'..'n-1'; pop returns the item.",
    f"{SRC}: Sequential.__delitem__, ModuleList.__delitem__, pop")
CT_APPEND = rule("module.containers.append_extend",
    "append/extend/+= add items at the end under the next position keys and return the container.",
    f"{SRC}: Sequential.append, ModuleList.append, ModuleList.extend, ParameterList.append")
CT_INSERT = rule("module.containers.insert",
    "insert(i, m) puts m before position i (list semantics; Sequential rejects i outside [-n, n] with IndexError) "
    "and shifts the rest.", f"{SRC}: Sequential.insert, ModuleList.insert")
CT_ADD = rule("module.containers.add",
    "c + other returns a new container of the items of both, renumbered; self is unchanged.",
    f"{SRC}: Sequential.__add__, ModuleList.__add__")
CT_MUL = rule("module.containers.mul",
    "Sequential * n (and *= n) repeats the items n times (same module objects), renumbered; n <= 0 raises "
    "ValueError.", f"{SRC}: Sequential.__mul__, Sequential.__imul__")
CT_MODULEDICT = rule("module.containers.moduledict",
    "ModuleDict is an ordered dict of modules: insertion order, assignment to an existing key keeps its place, "
    "update follows the argument's order, pop/del remove, missing keys raise KeyError.", f"{SRC}: ModuleDict")
CT_PARAMLIST = rule("module.containers.parameterlist",
    "ParameterList stores Parameters as given and converts plain tensors to Parameters (same storage).",
    f"{SRC}: ParameterList")
CT_PARAMDICT = rule("module.containers.parameterdict",
    "ParameterDict is an ordered dict (indexable like a Python dict: a missing key raises KeyError) that "
    "converts plain tensors to Parameters; update/pop/popitem/setdefault/get behave like dict's.",
    f"{SRC}: ParameterDict")

CT_REPR = rule("module.containers.repr",
    "Sequential/ModuleDict repr lists '(key): <module repr>' per item (nested reprs indented by 2); ModuleList "
    "compresses runs of equal consecutive reprs into '(i-j): n x <repr>'; empty containers print 'Name()'.",
    f"{SRC}: ModuleList.__repr__; torch/nn/modules/module.py: Module.__repr__")

LISTS = ("Sequential", "ModuleList", "ParameterList")
# reprs of the pool modules (suite/module/cases.py: m4 and m5 have one child 'x')
POOL_REPR = {"m1": "Module()", "m2": "Module()", "m3": "Module()", "m4": "Module(\n  (x): Module()\n)",
             "m5": "Module(\n  (x): Module()\n)"}


def _indent2(text: str) -> str:
    first, *rest = text.split("\n")
    return "\n".join([first] + ["  " + line for line in rest])


def container_repr(c: str, items) -> str:
    if not items:
        return c + "()"
    if c == "ModuleList":
        blocks: list = []  # [start, end, repr]
        for i, (_, lab) in enumerate(items):
            if blocks and blocks[-1][2] == POOL_REPR[lab]:
                blocks[-1][1] = i
            else:
                blocks.append([i, i, POOL_REPR[lab]])
        lines = [_indent2(f"({s}): {r}" if s == e else f"({s}-{e}): {e - s + 1} x {r}") for s, e, r in blocks]
    else:
        lines = [f"({k}): " + _indent2(POOL_REPR[lab]) for k, lab in items]
    return c + "(\n  " + "\n  ".join(lines) + "\n)"


def _value(container: str, lab):
    if container.startswith("Parameter") and lab.startswith("t"):
        return ("Parameter", lab)  # converted, shares storage
    return lab


def _renumber(items):
    return [(str(i), v) for i, (_, v) in enumerate(items)]


def _index(n: int, i: int):
    if not -n <= i < n:
        raise _Err(Raised("IndexError", f"index {i} is out of range"))
    return i % n


class _Err(Exception):
    def __init__(self, outcome):
        super().__init__()
        self.outcome = outcome


def op_rule(program, op) -> str:
    c, k = program.container, op.kind
    if k == "repr":
        return CT_REPR
    if c == "ModuleDict":
        return CT_MODULEDICT
    if c == "ParameterDict":
        return CT_PARAMDICT
    if c == "ParameterList" and k in ("append", "extend", "setitem"):
        return CT_PARAMLIST
    return {"getitem": CT_INDEX, "getslice": CT_SLICE, "setitem": CT_SETITEM, "delitem": CT_DELETE,
            "delslice": CT_DELETE, "pop": CT_DELETE, "append": CT_APPEND, "slice_append": CT_APPEND, "extend": CT_APPEND, "iadd": CT_APPEND,
            "insert": CT_INSERT, "add": CT_ADD, "mul": CT_MUL, "imul": CT_MUL, "len": CT_INDEX}[k]


def run(program):
    """(result of the last op, keys, labels) per the documented semantics."""
    c = program.container
    if c in LISTS or c == "ModuleDict":
        items = [(str(i), _value(c, v)) for i, v in enumerate(program.init)] if c in LISTS else \
            [(k, v) for k, v in program.init]
        if program.named:
            items = list(program.init)
    else:
        items = [(k, _value(c, v)) for k, v in program.init]
    result = None
    for op in program.ops:
        try:
            result, items = _apply(c, items, op)
        except _Err as err:
            result = err.outcome
    return result, [k for k, _ in items], [v for _, v in items]


def _apply(c, items, op):
    k, a = op.kind, op.args
    n = len(items)
    if k == "repr":
        return container_repr(c, items), items
    if c in ("ModuleDict", "ParameterDict"):
        return _apply_dict(c, items, op)
    if k == "len":
        return n, items
    if k == "getitem":
        return items[_index(n, a[0])][1], items
    if k == "slice_append":
        # a slice is a container like any other: append adds one item at its end
        chosen = items[slice(*a[:3])]
        return (len(chosen) + 1, [v for _, v in chosen] + [a[3]]), items
    if k == "getslice":
        chosen = items[slice(*a)]
        return (c, ([key for key, _ in chosen] if c == "Sequential" else [str(i) for i in range(len(chosen))],
                    [v for _, v in chosen])), items
    if k == "setitem":
        i = _index(n, a[0])
        new = list(items)
        new[i] = (new[i][0], _value(c, a[1]))
        return None, new
    if k == "delitem":
        i = _index(n, a[0])
        return None, _renumber(items[:i] + items[i + 1:])
    if k == "delslice":
        drop = set(range(n)[slice(*a)])
        return None, _renumber([it for j, it in enumerate(items) if j not in drop])
    if k == "pop":
        i = _index(n, a[0])
        return items[i][1], _renumber(items[:i] + items[i + 1:])
    if k in ("append", "extend", "iadd"):
        labels = a if k != "append" else (a[0],)
        return (True if k != "iadd" else None), items + [(str(n + j), _value(c, v)) for j, v in enumerate(labels)]
    if k == "insert":
        i = a[0]
        if c == "Sequential" and not -n <= i <= n:
            raise _Err(Raised("IndexError", f"Index out of range: {i}"))
        values = [v for _, v in items]
        values.insert(i, a[1])  # Python list semantics (documented: "insert ... before a given index")
        return (True if c == "Sequential" else None), _renumber([("", v) for v in values])
    if k == "add":
        values = [v for _, v in items] + list(a)
        return (c, ([str(i) for i in range(len(values))], values)), items
    if k in ("mul", "imul"):
        if a[0] <= 0:
            raise _Err(Raised("ValueError", f"Non-positive multiplication factor {a[0]}"))
        values = [v for _, v in items] * a[0]
        out = [(str(i), v) for i, v in enumerate(values)]
        return ((c, ([key for key, _ in out], values)), items) if k == "mul" else (None, out)
    raise ValueError(k)


def _apply_dict(c, items, op):
    k, a = op.kind, op.args
    d = dict(items)
    if k == "len":
        return len(d), items
    if k == "contains":
        return a[0] in d, items
    if k == "getitem":
        if a[0] not in d:
            raise _Err(Raised("KeyError", None))
        return d[a[0]], items
    if k == "get":
        return d.get(a[0]), items
    if k == "setitem":
        if a[0] == "" or "." in a[0]:
            # items are registered as parameters / submodules, whose names cannot be empty or dotted
            raise _Err(Raised("KeyError", "name can"))
        d[a[0]] = _value(c, a[1])
        return None, list(d.items())
    if k in ("delitem", "pop"):
        if a[0] not in d:
            raise _Err(Raised("KeyError", None))
        v = d.pop(a[0])
        return (None if k == "delitem" else v), list(d.items())
    if k == "update":
        for key, v in a:
            d[key] = _value(c, v)
        return None, list(d.items())
    if k == "popitem":
        if not d:
            raise _Err(Raised("KeyError", None))
        key = list(d)[-1]
        return (key, d.pop(key)), list(d.items())
    if k == "setdefault":
        if a[0] not in d:
            d[a[0]] = _value(c, a[1])
        return d[a[0]], list(d.items())
    raise ValueError(k)


def expectations(program) -> list[Expect]:
    """A ContainerProgram: (result of the last op, keys, labels) under the rule its last op is about."""
    return [Expect(op_rule(program, program.ops[-1]), run(program))]

"""Model of the nn containers (torch/nn/modules/container.py docstrings): list
containers behave like Python lists whose keys are the positions '0'..'n-1'
(renumbered after deletions), dict containers like ordered dicts; ParameterList /
ParameterDict convert plain tensors to Parameters."""
from __future__ import annotations

from conform.expect import Expect
from conform.outcome import Raised
from conform.rules import rule
from reference.module.traversal import DIR

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
    "insert(i, m) puts m before position i (list semantics; Sequential rejects i outside [-n, n] with IndexError, "
    "and a non-Module m, leaving itself unchanged) and shifts the rest.", f"{SRC}: Sequential.insert, ModuleList.insert")
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

CT_OBJECTS = rule("module.containers.parameter_objects",
    "ParameterList/ParameterDict convert only Tensors to Parameters: any other object is stored as it is (indexing "
    "returns it), and repr() of such a container still returns a str, naming the type of each such object.",
    f"{SRC}: ParameterList ('will convert any Tensor into Parameter'; its __setitem__ keeps other objects as "
    "plain attributes), ParameterDict (likewise), ParameterList.extra_repr, ParameterDict.extra_repr; Python data "
    "model: object.__repr__ 'must return a string object'")

CT_CALL = rule("module.containers.call",
    "Calling a Sequential feeds the input through its modules in order (an empty one returns the input); "
    "ModuleList/ModuleDict have no forward (Module's NotImplementedError 'Module [<Name>] is missing the required "
    "\"forward\" function'), ParameterList/ParameterDict raise RuntimeError '<Name> should not be called.'.",
    f"{SRC}: Sequential docstring ('The forward() method of Sequential accepts any input and forwards it to the "
    "first module it contains'), ModuleDict ('remove forward altogether to fallback on Module's "
    "_forward_unimplemented'), ParameterList.__call__, ParameterDict.__call__")
CT_DICT_VIEWS = rule("module.containers.dict_views",
    "ModuleDict/ParameterDict keys()/values()/items()/iter() follow insertion order, reversed() (ParameterDict) the "
    "reverse, clear() empties; ParameterDict.copy() and fromkeys(keys, default) build new ParameterDicts (the same "
    "Parameter objects), d | other and d |= other update a copy / d in other's order, other | d a copy of other.",
    f"{SRC}: ModuleDict.keys/items/values/clear, ParameterDict.copy/fromkeys/__reversed__/__or__/__ror__/__ior__")
CT_DICT_UPDATE = rule("module.containers.dict_update",
    "ModuleDict/ParameterDict.update accepts a mapping or an iterable of key/value pairs, overwriting existing keys; "
    "the order of new keys is preserved for an OrderedDict or pairs (a plain dict's order is not promised); a "
    "non-iterable argument or element raises TypeError, an element of length != 2 ValueError.",
    f"{SRC}: ModuleDict.update, ParameterDict.update (note: 'If modules is an OrderedDict, a ModuleDict, or an "
    "iterable of key-value pairs, the order of new elements in it is preserved')")

LISTS = ("Sequential", "ModuleList", "ParameterList")
# dir(): the class attributes each container documents (its own methods, torch.nn docs) and those of Module every
# container inherits, plus Module's documented instance attribute ``training``.
DIR_METHODS = {
    "Sequential": ("append", "extend", "insert", "pop"),
    "ModuleList": ("append", "extend", "insert", "pop"),
    "ModuleDict": ("clear", "items", "keys", "pop", "update", "values"),
    "ParameterList": ("append", "extend"),
    "ParameterDict": ("clear", "copy", "fromkeys", "get", "items", "keys", "pop", "popitem", "setdefault", "update",
                      "values"),
}
DIR_MODULE_ATTRS = ("eval", "extra_repr", "forward", "parameters", "state_dict", "train")
DIR_INSTANCE_ATTRS = ("training",)
# reprs of the pool modules (suite/module/cases.py: m4 and m5 have one child 'x')
POOL_REPR = {"m1": "Module()", "m2": "Module()", "m3": "Module()", "m4": "Module(\n  (x): Module()\n)",
             "m5": "Module(\n  (x): Module()\n)"}


def _indent2(text: str) -> str:
    first, *rest = text.split("\n")
    return "\n".join([first] + ["  " + line for line in rest])


def _device_suffix(device: str) -> str:
    """ParameterList/ParameterDict.extra_repr name the device of CUDA tensors only: ' (cuda:0)'."""
    if device == "cpu":
        return ""
    return f" ({device if ':' in device else device + ':0'})"


def container_repr(c: str, items, device: str = "cpu") -> str:
    if not items:
        return c + "()"
    if c.startswith("Parameter"):
        # every pool value is a float32 tensor of size 2, held as a Parameter (ParameterList.extra_repr prints the
        # dtype, ParameterDict.extra_repr torch.typename)
        kind = "torch.float32" if c == "ParameterList" else \
            ("torch.FloatTensor" if device == "cpu" else f"torch.{device.split(':')[0]}.FloatTensor")
        lines = [f"  ({k}): Parameter containing: [{kind} of size 2{_device_suffix(device)}]" for k, _ in items]
        # Module.__repr__ layout of an extra_repr without children: inline when it is one line
        return c + ("(" + lines[0] + ")" if len(lines) == 1 else "(\n  " + "\n  ".join(lines) + "\n)")
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


def dir_names(c: str, items, probe) -> list:
    """dir() of a container, restricted to the names in ``probe``: class attributes (DIR_METHODS, DIR_MODULE_ATTRS),
    instance attributes, and the items (submodules / parameters / plain attributes under their keys), sorted, names
    starting with a digit dropped (list containers' position keys never show)."""
    keys = list(DIR_METHODS[c]) + list(DIR_MODULE_ATTRS) + list(DIR_INSTANCE_ATTRS) + [k for k, _ in items]
    return sorted(k for k in keys if k in probe and k != "" and not k[0].isdigit())


def _tensor_label(lab) -> bool:
    return isinstance(lab, str) or isinstance(lab, tuple)


def _value(container: str, lab):
    if container.startswith("Parameter") and isinstance(lab, str) and lab.startswith("t"):
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


_UPDATES = ("update", "update_dict", "update_pairs", "update_bad")
_VIEWS = ("keys", "values", "items", "iter", "reversed", "clear", "copy", "fromkeys", "or", "ror", "ior")


def op_rule(program, op) -> str:
    c, k = program.container, op.kind
    if k == "repr":
        return CT_REPR
    if k == "repr_types":
        return CT_OBJECTS
    if k == "call":
        return CT_CALL
    if k == "dir":
        return DIR
    if k in _UPDATES[1:]:
        return CT_DICT_UPDATE
    if k in _VIEWS:
        return CT_DICT_VIEWS
    if c == "ModuleDict":
        return CT_MODULEDICT
    if c == "ParameterDict":
        return CT_PARAMDICT
    if c == "ParameterList" and k in ("append", "extend", "setitem"):
        return CT_PARAMLIST
    return {"getitem": CT_INDEX, "getslice": CT_SLICE, "setitem": CT_SETITEM, "delitem": CT_DELETE,
            "delslice": CT_DELETE, "pop": CT_DELETE, "append": CT_APPEND, "slice_append": CT_APPEND, "extend": CT_APPEND, "iadd": CT_APPEND,
            "insert": CT_INSERT, "add": CT_ADD, "add_list": CT_ADD, "iadd_list": CT_APPEND, "mul": CT_MUL, "imul": CT_MUL, "rmul": CT_MUL,
            "extend_bad": CT_APPEND, "insert_bad": CT_INSERT, "len": CT_INDEX}[k]


def run(program, device: str = "cpu"):
    """(result of the last op, keys, labels) per the documented semantics (``device``: where the tensors live,
    which the parameter containers' repr names)."""
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
            result, items = _apply(c, items, op, device)
        except _Err as err:
            result = err.outcome
    return result, [k for k, _ in items], [v for _, v in items]


def _apply(c, items, op, device="cpu"):
    k, a = op.kind, op.args
    n = len(items)
    if k == "repr":
        return container_repr(c, items, device), items
    if k == "call":
        if c.startswith("Parameter"):
            raise _Err(Raised("RuntimeError", f"^{c} should not be called\\.$"))
        if c != "Sequential" or items:
            # the pool modules are plain Modules: the first one has no forward, nor have ModuleList/ModuleDict
            name = "Module" if c == "Sequential" else c
            raise _Err(Raised("NotImplementedError", rf'Module \[{name}\] is missing the required "forward" function'))
        return a[0], items
    if k == "dir":
        return dir_names(c, items, a), items
    if k == "repr_types":
        # the probe type names that name a non-tensor item (labels are str / ("Parameter", str); ints are objects)
        held = {type(v).__name__ for _, v in items if not _tensor_label(v)}
        return ("str", [t for t in a if t in held]), items
    if k == "extend_bad":
        raise _Err(Raised("TypeError", None))
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
    if k == "insert_bad":  # documented "module (Module)": anything else is refused, the container unchanged
        # (torch's source raises AssertionError; the docs name no type, so TypeError would conform as well)
        raise _Err(Raised("AssertionError|TypeError", None))
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
    if k in ("add_list", "iadd_list"):
        raise _Err(Raised("ValueError", "add operator supports only objects of Sequential class"))
    if k in ("mul", "imul", "rmul"):
        if not isinstance(a[0], int):
            raise _Err(Raised("TypeError", "unsupported operand type"))
        if a[0] <= 0:
            raise _Err(Raised("ValueError", f"Non-positive multiplication factor {a[0]}"))
        values = [v for _, v in items] * a[0]
        out = [(str(i), v) for i, v in enumerate(values)]
        return ((c, ([key for key, _ in out], values)), items) if k != "imul" else (None, out)
    raise ValueError(k)


def _apply_dict(c, items, op):
    k, a = op.kind, op.args
    d = dict(items)
    if k == "len":
        return len(d), items
    if k == "contains":
        return a[0] in d, items
    if k == "getitem":
        if not isinstance(a[0], str):
            # ParameterDict keys are strings ('Index given to ParameterDict cannot be used as a key as it is not a
            # string'); ModuleDict keys are looked up like a dict's
            raise _Err(Raised("TypeError" if c == "ParameterDict" else "KeyError", None))
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
    if k in ("update", "update_dict", "update_pairs"):
        # update_dict draws its keys sorted, so a plain dict's order (not promised) cannot matter
        for key, v in a:
            d[key] = _value(c, v)
        return None, list(d.items())
    if k == "update_bad":
        what = a[0]
        if what == "len":
            raise _Err(Raised("ValueError", "update sequence element #0 has length 1; 2 is required"))
        raise _Err(Raised("TypeError", "should be called with an iterable" if what == "notiter"
                          else "update sequence element #0 should be Iterable"))
    if k in ("keys", "iter"):
        return list(d), items
    if k == "values":
        return list(d.values()), items
    if k == "items":
        return list(d.items()), items
    if k == "reversed":
        return list(reversed(list(d))), items
    if k == "clear":
        return None, []
    if k == "copy":
        return (c, (list(d), list(d.values()))), items
    if k == "fromkeys":
        keys, default = a
        fresh = dict.fromkeys(keys, None if default is None else _value(c, default))
        return (c, (list(fresh), list(fresh.values()))), items
    if k in ("or", "ior"):
        new = dict(d)
        new.update((key, _value(c, v)) for key, v in a)
        return ((c, (list(new), list(new.values()))), items) if k == "or" else (None, list(new.items()))
    if k == "ror":
        # other | d: a copy of the plain dict ``other`` updated with d's entries (a dict, values as stored in d)
        new = {key: v for key, v in a}
        new.update(d)
        return ("dict", list(new.items())), items
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


def expectations(program, device: str = "cpu") -> list[Expect]:
    """A ContainerProgram: (result of the last op, keys, labels) under the rule its last op is about."""
    return [Expect(op_rule(program, program.ops[-1]), run(program, device))]

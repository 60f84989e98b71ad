"""Hypothesis strategies for the ``parallel`` area: small trees (see cases.py), device counts, modules."""
from __future__ import annotations

from functools import lru_cache

from hypothesis import strategies as st

from reference.parallel.scatter import chunk_sizes
from suite.parallel.cases import (DTYPES, ApplyCase, DPCase, FallbackCase, GatherCase, ImbalanceCase, ModSpec,
                                  ReplicateCase, ScatterCase, ScatterKwargsCase)

devices = st.integers(1, 6)
dtypes = st.sampled_from(DTYPES)
PLAIN = st.one_of(st.just(("None",)), st.integers(-3, 3).map(lambda v: ("int", v)),
                  st.sampled_from(["x", "yy"]).map(lambda v: ("str", v)),
                  st.sampled_from(["a", "b", "c"]).map(lambda v: ("obj", v)))
KEYS = "abcde"


def number_leaves(tree: tuple, start: int = 0) -> tuple:
    """Give every tensor leaf a distinct id (pre-order), so values never repeat across leaves."""
    counter = [start]

    def walk(node):
        kind = node[0]
        if kind == "T":
            counter[0] += 1
            return ("T", counter[0], node[2])
        if kind == "seq":
            return ("seq", node[1], tuple(walk(c) for c in node[2]))
        if kind == "map":
            return ("map", node[1], tuple((k, walk(c)) for k, c in node[2]))
        return node

    return walk(tree)


@lru_cache(maxsize=None)
def tensors(ndim: int, batch_axis_max: int = 9) -> st.SearchStrategy:
    """A tensor leaf of ``ndim`` dims; every axis may be the scattered one, so all are 1..batch_axis_max."""
    return st.tuples(*[st.integers(1, batch_axis_max)] * ndim).map(lambda shape: ("T", 0, shape))


@lru_cache(maxsize=None)
def seq(children: st.SearchStrategy, names: tuple, min_size: int = 0) -> st.SearchStrategy:
    return st.tuples(st.sampled_from(names), st.lists(children, min_size=min_size, max_size=3)).map(
        lambda t: ("seq", t[0] if t[0] != "Rec" else f"Rec{len(t[1])}", tuple(t[1])))


@lru_cache(maxsize=None)
def mapping(children: st.SearchStrategy, names: tuple, min_size: int = 0) -> st.SearchStrategy:
    return st.tuples(st.sampled_from(names), st.lists(st.tuples(st.sampled_from(KEYS), children), min_size=min_size,
                                                      max_size=3, unique_by=lambda kv: kv[0])).map(
        lambda t: ("map", t[0], tuple(t[1])))


@lru_cache(maxsize=None)
def trees(leaves: st.SearchStrategy, seq_names=("list", "tuple"), map_names=()) -> st.SearchStrategy:
    def extend(children):
        options = [seq(children, seq_names)]
        if map_names:
            options.append(mapping(children, map_names))
        return st.one_of(*options)

    return st.recursive(leaves, extend, max_leaves=6)


# The builders above are cached: hypothesis derives a strategy's properties (emptiness, recursion) the
# first time it draws from it, so a strategy rebuilt inside every draw costs more than the test itself.
# Caching changes no drawn value: draws depend on the choice sequence, not on the strategy object.
@lru_cache(maxsize=None)
def _scatter_trees(root: str, ndim: int) -> st.SearchStrategy:
    tensor = tensors(ndim)
    mixed = st.one_of(tensor, PLAIN)
    if root == "tensor":
        return tensor
    if root == "sequence":
        return seq(trees(mixed), ("list", "tuple"), min_size=1)
    if root == "mapping":
        # defaultdict is rarer: any non-empty one makes torch raise (a registered divergence)
        names = ("dict", "OrderedDict", "MyDict", "dict", "OrderedDict", "MyDict", "defaultdict")
        return mapping(trees(mixed, map_names=names), names, min_size=1)
    if root == "namedtuple":
        return seq(trees(mixed, seq_names=("tuple", "Rec")), ("Rec",))
    if root == "plain":
        return seq(trees(st.one_of(PLAIN, PLAIN, tensor)), ("list", "tuple"), min_size=1)
    return st.sampled_from([("seq", "list", ()), ("seq", "tuple", ()), ("map", "dict", ()), ("map", "MyDict", ())])


@st.composite
def scatter_cases(draw, root: str = "tensor") -> ScatterCase:
    """``root``: tensor | tensors (flat tuple of several) | sequence | mapping | namedtuple | plain | empty."""
    ndim = draw(st.integers(1, 3))
    dim = draw(st.integers(-ndim, ndim - 1))
    if root == "tensors":
        tree = ("seq", "tuple", tuple(draw(st.lists(tensors(ndim), min_size=2, max_size=4))))
    elif root == "empty":  # empty containers next to other members
        empty = _scatter_trees(root, ndim)
        tree = ("seq", draw(st.sampled_from(["list", "tuple"])),
                tuple(draw(st.lists(st.one_of(empty, empty, tensors(ndim), PLAIN), min_size=1, max_size=4))))
    else:
        tree = draw(_scatter_trees(root, ndim))
    return ScatterCase(tree=number_leaves(tree), n_devices=draw(devices), dim=dim, dtype=draw(dtypes),
                       dim_given=dim != 0 or draw(st.booleans()))  # dim 0 is the default: sometimes left out


@st.composite
def scatter_kwargs_cases(draw, non_tensor: bool = False) -> ScatterKwargsCase:
    ndim = draw(st.integers(1, 2))
    dim = draw(st.integers(-ndim, ndim - 1))
    n = draw(devices)
    if non_tensor:
        # a batch no larger than the device count, and kwargs holding at least one non-tensor value
        tensor = tensors(ndim, batch_axis_max=n)
        inputs = ("seq", "tuple", tuple(draw(st.lists(st.one_of(tensor, PLAIN), min_size=1, max_size=2))))
        values = st.lists(st.tuples(st.sampled_from(KEYS), st.one_of(PLAIN, tensor)), min_size=1, max_size=3,
                          unique_by=lambda kv: kv[0]).filter(lambda kvs: any(v[0] != "T" for _, v in kvs))
        kwargs = ("map", "dict", tuple(draw(values)))
    else:
        tensor = tensors(ndim)
        inputs = ("seq", "tuple", tuple(draw(st.lists(tensor, max_size=2))))
        kwargs = draw(st.one_of(st.none(), mapping(tensor, ("dict",))))
    tree = number_leaves(("seq", "tuple", (inputs, kwargs or ("None",))))
    return ScatterKwargsCase(inputs=tree[2][0], kwargs=None if kwargs is None else tree[2][1], n_devices=n,
                             dim=dim, dtype=draw(dtypes), dim_given=dim != 0 or draw(st.booleans()))


# ---- gather -------------------------------------------------------------------------------------
def instantiate(template: tuple, replica: int, sizes: list[int], axis_of) -> tuple:
    """Replica ``replica``'s copy of a template: tensor leaves get distinct ids and their own size along dim."""
    counter = [0]

    def walk(node):
        kind = node[0]
        if kind == "T":
            counter[0] += 1
            shape = list(node[2])
            if shape:
                shape[axis_of(len(shape))] = sizes[(counter[0] - 1) % len(sizes)]
            return ("T", 100 * replica + counter[0], tuple(shape))
        if kind == "seq":
            return ("seq", node[1], tuple(walk(c) for c in node[2]))
        if kind == "map":
            return ("map", node[1], tuple((k, walk(c)) for k, c in node[2]))
        return node

    return walk(template)


def _paths(node: tuple, want, path=()) -> list:
    found = [path] if want(node) else []
    if node[0] in ("seq", "map"):
        for i, child in enumerate(node[2]):
            found += _paths(child if node[0] == "seq" else child[1], want, path + (i,))
    return found


def _replace(node: tuple, path: tuple, fn) -> tuple:
    if not path:
        return fn(node)
    i, rest = path[0], path[1:]
    children = list(node[2])
    if node[0] == "seq":
        children[i] = _replace(children[i], rest, fn)
    else:
        children[i] = (children[i][0], _replace(children[i][1], rest, fn))
    return (node[0], node[1], tuple(children))


MUTATIONS = ("drop_key", "rename_key", "shorten", "none_for_tensor", "reshape", "int_for_tensor", "none_for_none")


def mutate(draw, tree: tuple, kind: str, dim: int) -> tuple:
    """One structural difference in one replica's tree (the tree unchanged where the kind finds no spot)."""
    if kind in ("drop_key", "rename_key"):
        spots = _paths(tree, lambda n: n[0] == "map" and n[2])

        def fn(n):
            if kind == "drop_key":
                return (n[0], n[1], n[2][:-1])
            return (n[0], n[1], n[2][:-1] + (("zz", n[2][-1][1]),))
    elif kind == "shorten":
        spots = _paths(tree, lambda n: n[0] == "seq" and n[2])

        def fn(n):
            return (n[0], n[1] if not n[1].startswith("Rec") else f"Rec{len(n[2]) - 1}", n[2][:-1])
    else:
        spots = _paths(tree, lambda n: n[0] == ("None" if kind == "none_for_none" else "T"))

        def fn(n):
            if kind == "none_for_tensor":
                return ("None",)
            if kind == "int_for_tensor":
                return ("int", 5)
            if kind == "none_for_none":
                return ("T", 999, (1,) * 2)
            # reshape: grow an axis other than the gathered one (ndim >= 2 here)
            shape = list(n[2])
            other = (dim % len(shape) + 1) % len(shape)
            shape[other] += 1
            return ("T", n[1], tuple(shape))
    if not spots:
        return tree
    return _replace(tree, draw(st.sampled_from(spots)), fn)


@lru_cache(maxsize=None)
def _gather_templates(root: str, leaves: str, ndim: int, map_names: tuple, seq_names: tuple) -> st.SearchStrategy:
    tensor = st.tuples(*[st.integers(1, 3)] * ndim).map(lambda shape: ("T", 0, shape))
    leaf = {"tensors": tensor, "none": st.one_of(tensor, st.just(("None",))),
            "unsupported": st.one_of(tensor, PLAIN.filter(lambda p: p[0] != "None"))}[leaves]
    inner = trees(leaf, seq_names, map_names)
    roots = {"leaf": leaf, "seq": seq(inner, seq_names, min_size=1), "map": mapping(inner, map_names, min_size=1)}
    return roots[root] if root != "any" else st.one_of(*roots.values())


@st.composite
def gather_cases(draw, root: str = "leaf", leaves: str = "tensors", mutations: tuple = (None,),
                 scalar: bool = False, map_names=("dict", "OrderedDict", "MyDict"),
                 seq_names=("list", "tuple", "Rec")) -> GatherCase:
    """``root``: leaf | seq | map | any; ``mutations``: kinds (or None) one of which is applied to one replica."""
    mutation = draw(st.sampled_from(mutations))
    n = draw(st.integers(1 if mutation is None else 2, 4))
    ndim = 0 if scalar else (2 if mutation == "reshape" else draw(st.integers(1, 2)))
    dim = 0 if scalar else draw(st.integers(-ndim, ndim - 1))
    template = draw(_gather_templates(root, leaves, ndim, map_names, seq_names))
    outputs = [instantiate(template, j, draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)),
                           lambda nd: dim % nd) for j in range(n)]
    if mutation is not None:
        j = draw(st.integers(0, n - 1))
        outputs[j] = mutate(draw, outputs[j], mutation, dim)
    return GatherCase(outputs=tuple(outputs), dim=dim, dtype=draw(dtypes), dim_given=dim != 0 or draw(st.booleans()))


# ---- replicate ----------------------------------------------------------------------------------
@st.composite
def replicate_cases(draw) -> ReplicateCase:
    count = draw(st.integers(1, 4))
    specs = []
    for i in range(count):
        params = tuple((f"p{j}", draw(st.one_of(st.none(), st.integers(1, 3)))) for j in range(draw(st.integers(0, 2))))
        buffers = tuple((f"b{j}", draw(st.one_of(st.none(), st.integers(1, 3)))) for j in range(draw(st.integers(0, 2))))
        later = list(range(i + 1, count))
        children = tuple((f"c{j}", draw(st.one_of(st.none(), st.sampled_from(later)) if later else st.none()))
                         for j in range(draw(st.integers(0, 2) if later else st.integers(0, 1))))
        specs.append([params, buffers, children, draw(st.booleans())])
    # ties: re-register an earlier-drawn, non-None parameter of some module under a new name
    sources = [(i, name) for i, s in enumerate(specs) for name, size in s[0] if size is not None]
    modules = []
    for i, (params, buffers, children, frozen) in enumerate(specs):
        ties = ()
        if sources and draw(st.booleans()):
            src, name = draw(st.sampled_from(sources))
            ties = (("t0", src, name),)
        grad_buffers = bool(buffers) and draw(st.booleans())
        modules.append(ModSpec(params=params, buffers=buffers, children=children, ties=ties, frozen=frozen,
                               grad_buffers=grad_buffers))
    # a module frozen or not decides its own parameters; a tie follows its source
    n_devices, detach, jit = draw(st.integers(0, 4)), draw(st.booleans()), draw(st.booleans())
    return ReplicateCase(modules=tuple(modules), n_devices=n_devices, detach=detach, jit=jit,
                         detach_given=detach or draw(st.booleans()))  # not given: the default, False


# ---- parallel_apply -----------------------------------------------------------------------------
FAILURES = ("ValueError", "KeyError", "ZeroDivisionError", "TwoArgError")


@st.composite
def apply_cases(draw, failures: bool = False, lengths: bool = False, no_device: bool = False) -> ApplyCase:
    n = draw(st.integers(1, 4))
    fails = tuple(draw(st.one_of(st.none(), st.sampled_from(FAILURES))) if failures else None for _ in range(n))
    n_inputs = n_kwargs = n_devices = None
    style = draw(st.sampled_from(["tuple", "list", "bare", "dict"]))
    if lengths:
        which = draw(st.sampled_from(["inputs", "kwargs", "devices"]))
        wrong = draw(st.integers(0, 5).filter(lambda k: k != n))
        n_inputs, n_kwargs, n_devices = (wrong if which == w else None for w in ("inputs", "kwargs", "devices"))
    elif no_device:
        style, n_devices = "nontensor", -1
    else:
        n_kwargs = draw(st.sampled_from([None, -1]))
        n_devices = draw(st.sampled_from([None, -1]))
        style = draw(st.sampled_from(["tuple", "list", "bare", "dict", "nontensor"])) if n_devices is None else style
    return ApplyCase(scales=tuple(draw(st.integers(-3, 3)) for _ in range(n)), failures=fails, input_style=style,
                     n_inputs=n_inputs, n_kwargs=n_kwargs, n_devices=n_devices, rows=draw(st.integers(1, 4)),
                     grad_enabled=draw(st.booleans()))


# ---- DataParallel -------------------------------------------------------------------------------
fallback_cases = st.builds(FallbackCase, batch=st.integers(1, 6), features=st.integers(1, 4),
                           device_ids=st.one_of(st.none(), st.lists(st.integers(0, 3), min_size=1, max_size=3).map(tuple)),
                           output_device=st.one_of(st.none(), st.integers(0, 3)), dim=st.integers(0, 1),
                           with_kwarg=st.booleans())


def dp_cases(replicas=st.integers(1, 4), min_rows_per_chunk: int = 1) -> st.SearchStrategy:
    return st.builds(DPCase, batch=st.integers(1, 9), features=st.integers(1, 4), n_replicas=replicas,
                     seed=st.integers(0, 5)).filter(
        lambda c: min(chunk_sizes(c.batch, c.n_replicas)) >= min_rows_per_chunk)


@st.composite
def imbalance_cases(draw) -> ImbalanceCase:
    """Distinct values per property (the least and the most are one device each); small integers put ratios
    on both sides of 3/4 and on it (3 of 4, 6 of 8)."""
    ids = tuple(draw(st.lists(st.integers(0, 5), min_size=2, max_size=4, unique=True)))
    values = st.lists(st.integers(1, 8), min_size=len(ids), max_size=len(ids), unique=True).map(tuple)
    return ImbalanceCase(device_ids=ids, memory=draw(values), cores=draw(values))

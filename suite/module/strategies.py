"""Hypothesis strategies for the module area: small Cases and op programs only (<= 4 container items and
8 ops, trees <= 3 levels deep, <= 5 hooks, <= 16 tree ops), so an example costs a few milliseconds.

Shrinking: every draw is a sampled choice, a small integer, a boolean or a short list, so examples shrink
toward empty programs and trees, the first choice of each list (first key, first label, first op kind)
and indices near 0.  The groups below follow the test files that use them."""
from __future__ import annotations

import functools

import torch
from hypothesis import event, target
from hypothesis import strategies as st

from reference.module import registration as reg
from reference.module import traversal as trav
from reference.module import tree as ref
from reference.versions import since
from suite import divergences
from suite.module.cases import MODS, MODULES, PARAMS, PARS, POOL_NAMES, TENS, TENSORS, ContainerProgram, CtOp, \
    DIR_PROBE, Hook, LoadCase, Op, ReprCase, Spec, TreeProgram, walk

# --- containers (test_containers.py) ---------------------------------------------------------------------------
# Draw: keys of the dict containers, indices and slices (bounds beyond a 4-item container on both sides), and
# programs: an initial content (<= 4 items, or <= 3 distinct keys) and <= 8 ops chosen among the container's
# own methods.  Shrinks toward key "a", index 0, the full slice, no initial items and no ops.

KEYS = st.sampled_from(["a", "b", "c", "d"])
IDX = st.integers(-5, 5)
SLICES = st.tuples(st.one_of(st.none(), IDX), st.one_of(st.none(), IDX), st.sampled_from([None, 1, 2, -1]))


@functools.lru_cache(maxsize=None)  # strategies are built once per container (building them per draw cost ~20%)
def list_ops(container) -> dict:
    """The op kinds a list container's programs may use, each with its strategy."""
    labels = st.sampled_from(MODS if container != "ParameterList" else PARS + TENS)
    some = st.lists(labels, max_size=3).map(tuple)
    ops = {"getitem": st.builds(CtOp, st.just("getitem"), st.tuples(IDX)),
           "getslice": st.builds(CtOp, st.just("getslice"), SLICES),
           "setitem": st.builds(CtOp, st.just("setitem"), st.tuples(IDX, labels)),
           "append": st.builds(CtOp, st.just("append"), st.tuples(labels)),
           "extend": st.builds(CtOp, st.just("extend"), some),
           # a non-iterable (and for ParameterList a tensor, never unpacked) is refused with TypeError
           "extend_bad": st.just(CtOp("extend_bad", (5,))),
           "len": st.just(CtOp("len")), "repr": st.just(CtOp("repr")), "call": st.just(CtOp("call", (7,))),
           "dir": st.just(CtOp("dir", DIR_PROBE))}
    if container != "ParameterList":
        ops.update({"delitem": st.builds(CtOp, st.just("delitem"), st.tuples(IDX)),
                    "pop": st.builds(CtOp, st.just("pop"), st.tuples(IDX)),
                    "delslice": st.builds(CtOp, st.just("delslice"), SLICES),
                    "add": st.builds(CtOp, st.just("add"), some),
                    "iadd": st.builds(CtOp, st.just("iadd"), some)})
    if container == "Sequential":
        factor = st.one_of(st.integers(-1, 3), st.just(1.5))  # 1.5: not an int, TypeError
        ops.update({
            "slice_append": st.one_of(
                st.builds(CtOp, st.just("slice_append"), st.tuples(st.just(0), st.none(), st.just(None), labels)),
                # a slice not starting at 0 keeps its original keys: registered divergence region
                st.builds(CtOp, st.just("slice_append"), st.tuples(IDX, IDX, st.sampled_from([None, 2]), labels))),
            "insert": st.builds(CtOp, st.just("insert"), st.tuples(IDX, labels)),
            "mul": st.builds(CtOp, st.sampled_from(["mul", "imul", "rmul"]), st.tuples(factor)),
            "add_list": st.builds(CtOp, st.sampled_from(["add_list", "iadd_list"]), some)})
    if container == "ModuleList":
        # indices outside [0, len] hit a registered divergence (test_modulelist_insert_index)
        ops["insert"] = st.builds(CtOp, st.just("insert"), st.tuples(st.integers(0, 0), labels))
    return ops


@functools.lru_cache(maxsize=None)
def dict_ops(container) -> dict:
    """The op kinds a dict container's programs may use, each with its strategy."""
    labels = st.sampled_from(MODS if container == "ModuleDict" else PARS + TENS)
    pairs = st.lists(st.tuples(KEYS, labels), max_size=3, unique_by=lambda kv: kv[0]).map(tuple)
    ops = {"delete": st.builds(CtOp, st.sampled_from(["delitem", "pop", "contains"]), st.tuples(KEYS)),
           "setitem": st.builds(CtOp, st.just("setitem"), st.tuples(KEYS, labels)),
           "update": st.builds(CtOp, st.sampled_from(["update", "update_pairs"]), pairs),
           # a plain dict's order is not promised: its keys are drawn sorted, so any order reads the same
           "update_dict": st.builds(CtOp, st.just("update_dict"), pairs.map(lambda kv: tuple(sorted(kv)))),
           "update_bad": st.builds(CtOp, st.just("update_bad"), st.tuples(st.sampled_from(["notiter", "elem", "len"]))),
           "views": st.builds(CtOp, st.sampled_from(["keys", "values", "items", "iter"])),
           "clear": st.just(CtOp("clear")), "len": st.just(CtOp("len")), "call": st.just(CtOp("call", (7,)))}
    if container == "ModuleDict":
        ops.update({"getitem": st.builds(CtOp, st.just("getitem"), st.tuples(KEYS)), "repr": st.just(CtOp("repr"))})
    else:
        # a missing key is a registered divergence (AttributeError): only present keys here
        ops.update({"popitem": st.just(CtOp("popitem")), "get": st.builds(CtOp, st.just("get"), st.tuples(KEYS)),
                    "setdefault": st.builds(CtOp, st.just("setdefault"), st.tuples(KEYS, labels)),
                    "repr": st.just(CtOp("repr")), "reversed": st.just(CtOp("reversed")),
                    "copy": st.just(CtOp("copy")),
                    "fromkeys": st.builds(CtOp, st.just("fromkeys"),
                                          st.tuples(st.lists(KEYS, max_size=3, unique=True).map(tuple),
                                                    st.one_of(st.none(), labels))),
                    "or": st.builds(CtOp, st.sampled_from(["or", "ior", "ror"]), pairs)})
    return ops


@functools.lru_cache(maxsize=None)
def _enabled_ops(container, enabled: tuple):
    kinds = dict_ops(container) if container in ("ModuleDict", "ParameterDict") else list_ops(container)
    return st.one_of([kinds[k] for k in enabled])


@st.composite
def programs(draw, container):
    """Swarm testing: each program first draws which op kinds it may use (each one or not), so programs
    made of a few kinds repeated -- many pops, many multiplications -- are as likely as an even mix."""
    kinds = dict_ops(container) if container in ("ModuleDict", "ParameterDict") else list_ops(container)
    # each kind is enabled with probability 1/2 (an empty draw enables every kind)
    enabled = [k for k in sorted(kinds) if draw(st.booleans(), label=f"enable {k}")] or sorted(kinds)
    ops = _enabled_ops(container, tuple(enabled))
    if container in ("ModuleDict", "ParameterDict"):
        labels = st.sampled_from(MODS if container == "ModuleDict" else PARS + TENS)
        init = tuple(draw(st.lists(st.tuples(KEYS, labels), max_size=3, unique_by=lambda kv: kv[0])))
    else:
        init = tuple(draw(st.lists(st.sampled_from(MODS if container != "ParameterList" else PARS + TENS),
                                   max_size=4)))
    program = ContainerProgram(container, init, tuple(draw(st.lists(ops, max_size=8))))
    # steer towards long programs over many kinds (the rare states need a few ops to build)
    target(float(len(program.ops) + len(enabled)), label="ops and kinds")
    return program


# --- dtype conversion (test_convert.py) ------------------------------------------------------------------------
# Draw: the dtype of a parameter or buffer, floating, complex, integer and bool.  Shrinks toward float16.

DTYPES = st.sampled_from(["float16", "bfloat16", "float32", "float64", "complex64", "int64", "int32", "bool"])


# --- hooks (test_hooks.py) -------------------------------------------------------------------------------------
# Draw: one forward hook -- module or global, pre or post, its return (none, replace, a tuple, a bad value, or
# raising one time in eight), prepend, with_kwargs, always_call, removed before the call.  Shrinks toward a
# module pre hook returning None with every flag off.

GLOBAL_KWARGS = since("2.6")


@st.composite
def hooks(draw, kinds=("pre", "post", "pre", "post", "gpre", "gpost")):
    kind = draw(st.sampled_from(kinds))
    local = kind in ("pre", "post")
    # register_module_forward_hook(with_kwargs=) is new in torch 2.6 (absent from 2.4.1 and 2.5.1): before it,
    # global forward hooks are drawn without kwargs (the module's own with_kwargs hooks still are)
    with_kwargs = draw(st.booleans()) if kind == "pre" or kind == "post" or (kind == "gpost" and GLOBAL_KWARGS) \
        else False
    rets = ["none", "replace"] + (["replace_tuple"] if kind in ("pre", "gpre") and not with_kwargs else []) \
        + (["bad"] if kind == "pre" and with_kwargs else [])
    # a raising hook (1 in 8): exercises always_call hooks after some post hooks already ran
    ret = "raise" if draw(st.integers(0, 7)) == 0 else draw(st.sampled_from(rets))
    return Hook(kind, ret, prepend=local and draw(st.booleans()), with_kwargs=with_kwargs,
                always_call=kind in ("post", "gpost") and draw(st.booleans()), remove=draw(st.booleans()) and
                draw(st.booleans()))


# --- load_state_dict (test_state.py) ---------------------------------------------------------------------------
# Draw: a module tree Spec (<= 2 parameters, <= 2 buffers, <= 2 children a level, 3 levels; missing (None)
# entries, None children, a shared child, extra state, frozen parameters) and a LoadCase: the tree's own state
# dict perturbed entry by entry (kept, dropped, reshaped, an int), <= 2 unexpected keys, in a drawn order, with
# strict/assign and what to observe.  Shrinks toward an empty tree, every entry kept in order, strict=False.

SHAPES = st.sampled_from([(), (1,), (2,), (2, 3)])
MAYBE_SHAPE = st.one_of(SHAPES, st.none())


@st.composite
def specs(draw, depth=0):
    pnames = draw(st.lists(st.sampled_from(["w", "b"]), unique=True, max_size=2))
    bnames = draw(st.lists(st.sampled_from(["r", "s"]), unique=True, max_size=2))
    params = tuple((n, draw(MAYBE_SHAPE)) for n in pnames)
    buffers = tuple((n, draw(MAYBE_SHAPE), draw(st.booleans())) for n in bnames)
    children = ()
    share = None
    extra = draw(st.booleans()) and draw(st.booleans())
    if depth < 2:
        cnames = draw(st.lists(st.sampled_from(["c", "d"]), unique=True, max_size=2))
        children = tuple((n, draw(st.one_of(st.none(), specs(depth=depth + 1)))) for n in cnames)
        if children and children[0][1] is not None and draw(st.booleans()):
            share = "e"
    frozen = bool(params) and draw(st.booleans()) and draw(st.booleans())
    return Spec(params, buffers, children, share, extra, frozen)


def _expected_keys(spec):
    keys, extras = [], []
    for prefix, s in walk(spec):
        keys += [(prefix + n, sh) for n, sh in s.params if sh is not None]
        keys += [(prefix + n, sh) for n, sh, pers in s.buffers if sh is not None and pers]
        extras += [prefix + n for n, sh in s.params if sh is None]
        extras += [prefix + n for n, sh, pers in s.buffers if sh is None or not pers]
        extras += [prefix + n + ".x" for n, c in s.children if c is None]
        extras += [prefix + "zz", prefix + "c.zz"]
        if s.extra:  # expected by set_extra_state
            keys.append((prefix + "_extra_state", (1,)))
        else:  # unexpected
            extras.append(prefix + "_extra_state")
    return keys, extras


# Module.register_load_state_dict_pre_hook: observed where this build has it (checked, not assumed; public since
# 2.5: absent from 2.4.1's module.py, present in 2.5.1's, read from the wheels)
LOAD_OBSERVABLES = ["result", "values", "identity", "post_hooks", "extra"] + \
    (["pre_hooks"] if hasattr(torch.nn.Module, "register_load_state_dict_pre_hook") else [])


@st.composite
def load_cases(draw, observe=st.sampled_from(LOAD_OBSERVABLES)):
    spec = draw(specs())
    keys, extras = _expected_keys(spec)
    entries = []
    for key, shape in keys:
        choice = draw(st.sampled_from(["keep", "keep", "keep", "drop", "reshape", "int"]))
        if choice == "keep":
            entries.append((key, shape))
        elif choice == "reshape":
            entries.append((key, draw(SHAPES)))
        elif choice == "int":
            entries.append((key, "int"))
    for key in draw(st.lists(st.sampled_from(extras), unique=True, max_size=2)) if extras else []:
        entries.append((key, draw(SHAPES)))
    entries = draw(st.permutations(entries))
    case = LoadCase(spec, tuple(entries), strict=draw(st.booleans()), assign=draw(st.booleans()),
                    seed=draw(st.integers(0, 2**16)), observe=draw(observe),
                    copy=draw(st.sampled_from(["", "", "deepcopy", "pickle"])), swap=draw(st.integers(0, 3)) == 0)
    event(f"load: {len(keys)} keys, {len(entries)} entries, shared={spec.share is not None}")
    return case


# --- the module tree (test_tree.py) ----------------------------------------------------------------------------
# Draw: one registration / assignment / traversal op on the fixed pool of modules, parameters and tensors
# (op_strategy, the tree machine's rule), and valid_programs: 4 to 16 such ops with those in a divergent or
# cyclic region left out, plus what to observe.  Shrinks toward setattr of a parameter on m0 under name "a"
# and short programs.

def registered_region(ops: tuple, op: Op, device: str) -> bool:
    """Whether a registry entry applies, on this build, to ``op`` after ``ops`` -- to its outcome, or to what a
    getattr of its name or dir() sees right after it."""
    done = (*ops, op)
    probes = ((ref.run_op(ref.world_after(ops), len(ops), op).rule, TreeProgram(done)),
              (trav.DIR, TreeProgram(done, ("dir",))),
              (reg.GETATTR, TreeProgram((*done, Op("getattr", op.target, op.name)))))
    return any(divergences.find(rule_id, program, device, torch.__version__) is not None
               for rule_id, program in probes)


def makes_cycle(w: reg.World, op: Op) -> bool:
    """Attaching an ancestor (or self) would make traversal recurse forever: never generated."""
    if not op.value or op.value[0] != "module":
        return False
    parent = op.target
    if op.kind == "set_submodule":
        parent = trav.get_submodule(w, op.target, op.name.rpartition(".")[0])
        if not isinstance(parent, str):
            return False
    return parent in trav.reachable(w, op.value[1])


def avoided(w: reg.World, ops: tuple, op: Op, device: str) -> bool:
    return makes_cycle(w, op) or registered_region(ops, op, device)


# biased towards two ordinary names so that ops collide on the same attribute often
names = st.one_of(st.sampled_from(("a", "b")), st.sampled_from(POOL_NAMES))
targets = st.sampled_from(MODULES)
values = st.one_of(
    st.tuples(st.just("param"), st.sampled_from(PARAMS)),
    st.tuples(st.just("tensor"), st.sampled_from(TENSORS)),
    # nn.Buffer is new in torch 2.5 (torch/nn/parameter.py: class Buffer; absent from 2.4.1): before it, buffers
    # are registered by register_buffer and replaced by assigning a tensor to a buffer name, both still drawn
    *([st.tuples(st.just("buffer"), st.sampled_from(TENSORS), st.booleans())] if since("2.5") else []),
    st.tuples(st.just("module"), st.sampled_from(MODULES[1:])),
    st.just(("none",)),
    st.tuples(st.just("int"), st.integers(0, 3)),
)
FLAGS = st.sampled_from([True, False, None])  # None: called without the argument (its default)
paths = st.lists(st.sampled_from(("a", "b", "c", "0", "forward")), max_size=3).map(".".join)


# Ops that grow (or freeze) the tree under ordinary names.  Without them a random op is rarely an attachment
# (most draws are queries, errors or flat assignments), so deep prefixes, shared children and tied
# parameters -- the region the remove_duplicate / prefix / memo rules are about -- were almost
# never built (measured: a child of a child in ~2% of 30-op programs).
ordinary = st.sampled_from(("a", "b", "c", "0"))
near_root = st.sampled_from(MODULES[:3])  # attachments land in the observed tree (rooted at m0) more often
grow_op = st.one_of(
    st.builds(Op, st.just("setattr"), near_root, ordinary, st.tuples(st.just("module"), st.sampled_from(MODULES[1:]))),
    st.builds(Op, st.just("setattr"), targets, ordinary, st.tuples(st.just("param"), st.sampled_from(PARAMS))),
    st.builds(Op, st.just("register_buffer"), targets, ordinary, st.tuples(st.just("tensor"), st.sampled_from(TENSORS)),
              st.booleans()),
    # freezing part of a populated tree (requires_grad_ on a module without parameters is a no-op)
    st.builds(Op, st.just("requires_grad_"), near_root, st.just(""), st.just(()), FLAGS),
)


# Module.set_submodule is new in torch 2.5 (pytorch/pytorch#127714; absent from 2.4.1); its strict argument is new
# in 2.7 (pytorch/pytorch#143455): before, only the default (strict=False) can be drawn.
SET_SUBMODULE_STRICT = st.booleans() if since("2.7") else st.just(False)


@functools.lru_cache(maxsize=None)  # built once: valid_programs draws it per example
def op_strategy():
    setattr_op = st.builds(Op, st.just("setattr"), targets, names, values)
    return st.one_of(
        setattr_op, setattr_op, setattr_op, grow_op, grow_op, grow_op, grow_op,
        st.builds(Op, st.just("delattr"), targets, names),
        st.builds(Op, st.just("getattr"), targets, names),
        st.builds(Op, st.just("register_parameter"), targets, names, values),
        st.builds(Op, st.just("register_buffer"), targets, names, values, st.booleans()),
        st.builds(Op, st.sampled_from(("add_module", "register_module")), targets, names, values),
        st.builds(Op, st.just("train"), targets, st.just(""), st.just(()), FLAGS),
        st.builds(Op, st.just("eval"), targets),
        st.builds(Op, st.just("train_value"), targets, st.just(""), st.tuples(st.just("int"), st.integers(0, 1))),
        st.builds(Op, st.just("requires_grad_"), targets, st.just(""), st.just(()), FLAGS),
        st.builds(Op, st.sampled_from(("get_submodule", "get_parameter", "get_buffer")), targets, paths),
        *([st.builds(Op, st.just("set_submodule"), targets, paths.filter(bool),
                     st.tuples(st.just("module"), st.sampled_from(MODULES[1:])), SET_SUBMODULE_STRICT)]
          if since("2.5") else []),
    )


@st.composite
def valid_programs(draw, device, observe):
    """A random op sequence outside the divergent/cyclic regions, built on the model."""
    world = reg.new_world(MODULES, PARAMS, TENSORS)
    ops: tuple[Op, ...] = ()
    for op in draw(st.lists(op_strategy(), min_size=4, max_size=16)):
        if avoided(world, ops, op, device):
            continue
        ref.run_op(world, len(ops), op)
        ops += (op,)
    return TreeProgram(ops, (draw(observe),))


# --- single-shot tree checks (test_tree_single.py) -------------------------------------------------------------
# Draw: a name torch refuses for a module or parameter (empty, dotted, an existing method); and a repr tree:
# each node <= 2 extra_repr lines and <= 2 children (some None), 3 levels.  Shrinks toward "" and a bare node.

BAD = st.sampled_from(("", "x.y", "forward"))


@st.composite
def repr_cases(draw, depth=0):
    lines = tuple(draw(st.lists(st.sampled_from(["in=2", "out=3, bias=True", "x"]), max_size=2)))
    children = ()
    if depth < 2:
        cnames = draw(st.lists(st.sampled_from(["a", "b", "0"]), unique=True, max_size=2))
        children = tuple((n, draw(st.one_of(st.none(), repr_cases(depth=depth + 1)))) for n in cnames)
    return ReprCase(lines, children)

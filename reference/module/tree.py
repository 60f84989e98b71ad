"""The Module-tree program interpreter: what the documentation expects of a
``TreeProgram`` (suite/module/cases.py), a sequence of registration / assignment /
query ops on a pool of modules, parameters and tensors, then observations of the
tree rooted at m0.  The rules and their models live in
reference/module/registration.py (registration, attribute dispatch) and
reference/module/traversal.py (named_*, state_dict, repr, dir, copies); here each
op and each observable is mapped to the rule it is about (``Expect``).
"""
from __future__ import annotations

from conform.expect import Expect
from conform.outcome import Raised
from reference.module.registration import (ADD_MODULE, BEFORE_INIT, DELATTR, GETATTR, MODULES, PARAMS, POOL_NAMES,
                                           REGISTER_BUFFER, REGISTER_PARAMETER, REGISTRATION_HOOKS,
                                           REGISTRATION_REPLACE, TENSORS, World, add_module, before_init, delattr_,
                                           getattr_, new_world, register_buffer, register_parameter,
                                           registration_replace, setattr_, value_label)
from reference.module.traversal import (APPLY, DEEPCOPY, DIR, EXTRA_REPR, GET_BUFFER, GET_PARAMETER, GET_SUBMODULE,
                                        NAMED_BUFFERS, NAMED_BUFFERS_ALL, NAMED_BUFFERS_LOCAL, NAMED_CHILDREN,
                                        NAMED_MODULES, NAMED_MODULES_ALL, NAMED_PARAMETERS, NAMED_PARAMETERS_ALL,
                                        NAMED_PARAMETERS_LOCAL, PICKLE, REPR, REQUIRES_GRAD, SET_SUBMODULE,
                                        STATE_DICT_DETACHED, STATE_DICT_HOOKS, STATE_DICT_KEYS, STATE_DICT_METADATA,
                                        STATE_DICT_PREFIX, TRAIN, apply_order, box_repr, dir_names, get_parameter,
                                        get_submodule, named_children, named_members, named_modules, ordered_meta,
                                        repr_, requires_grad_, set_submodule, state_dict_hook_calls,
                                        state_dict_items, structure, train)

OBSERVABLE_RULES = {
    "state_dict_hooks": STATE_DICT_HOOKS, "registration": REGISTRATION_HOOKS,
    "named_parameters": NAMED_PARAMETERS, "named_parameters_all": NAMED_PARAMETERS_ALL,
    "named_parameters_local": NAMED_PARAMETERS_LOCAL, "named_buffers": NAMED_BUFFERS,
    "named_buffers_all": NAMED_BUFFERS_ALL, "named_buffers_local": NAMED_BUFFERS_LOCAL,
    "named_modules": NAMED_MODULES, "named_modules_all": NAMED_MODULES_ALL,
    "named_children": NAMED_CHILDREN, "state_dict": STATE_DICT_KEYS,
    "state_dict_detached": STATE_DICT_DETACHED, "state_dict_prefixed": STATE_DICT_PREFIX,
    "metadata": STATE_DICT_METADATA, "training": TRAIN, "requires_grad": REQUIRES_GRAD,
    "repr": REPR, "dir": DIR, "apply": APPLY, "deepcopy": DEEPCOPY, "pickle": PICKLE,
    "modules": NAMED_MODULES, "buffers": NAMED_BUFFERS,
}


def expected_observation(w: World, what: str):
    if what == "named_parameters":
        return named_members(w, "m0", "params")
    if what == "named_parameters_all":
        return named_members(w, "m0", "params", prefix="r", remove_duplicate=False)
    if what == "named_parameters_local":
        return named_members(w, "m0", "params", recurse=False)
    if what == "named_buffers":
        return named_members(w, "m0", "buffers")
    if what == "named_buffers_all":
        return named_members(w, "m0", "buffers", prefix="r", remove_duplicate=False)
    if what == "named_buffers_local":
        return named_members(w, "m0", "buffers", recurse=False)
    if what == "named_modules":
        return named_modules(w, "m0")
    if what == "modules":  # modules()/buffers(): the objects of named_modules()/named_buffers(), same order
        return [label for _, label in named_modules(w, "m0")]
    if what == "buffers":
        return [label for _, label in named_members(w, "m0", "buffers")]
    if what == "named_modules_all":
        return named_modules(w, "m0", prefix="r", remove_duplicate=False)
    if what == "named_children":
        return named_children(w, "m0")
    if what == "state_dict":
        return state_dict_items(w, "m0")[0]
    if what == "state_dict_detached":
        return [(k, w.storage[v], False) for k, v in state_dict_items(w, "m0")[0]]
    if what == "state_dict_prefixed":
        return [k for k, _ in state_dict_items(w, "m0", "pre.")[0]]
    if what == "metadata":
        return ordered_meta(state_dict_items(w, "m0")[1])
    if what == "training":
        return [(label, w.mods[label].training) for label in MODULES]
    if what == "requires_grad":
        return [(p, w.requires_grad[p]) for p in PARAMS]
    if what == "repr":
        return repr_(w, "m0")
    if what == "dir":
        return dir_names(w.mods["m0"], POOL_NAMES)
    if what == "apply":
        return apply_order(w, "m0")
    if what == "registration":
        return list(w.mods["m0"].log)
    if what == "state_dict_hooks":
        return state_dict_hook_calls(w, "m0", "", [0])
    if what in ("deepcopy", "pickle"):
        return structure(w, "m0")
    raise ValueError(what)


def observed(w: World, what: str) -> Expect:
    """The expectation of observable ``what`` of the tree rooted at m0 (the part of torch's outcome named ``what``)."""
    return Expect(OBSERVABLE_RULES[what], expected_observation(w, what), key=what)


def run_op(w: World, index: int, op) -> Expect:
    """Apply one op (the ``index``-th of its program) to the model: the expectation of its outcome ("result")."""
    m = w.mods[op.target]
    m.log.clear()  # registration hook calls are observed per op
    label = value_label(index, op.value) if op.value else None
    k = op.kind
    if k == "setattr":
        rule_id, outcome = setattr_(w, m, op.name, op.value, label)
    elif k == "delattr":
        rule_id, outcome = DELATTR, delattr_(m, op.name)
    elif k == "getattr":
        rule_id, outcome = GETATTR, getattr_(m, op.name)
    elif k == "register_parameter":
        rule_id, outcome = REGISTER_PARAMETER, register_parameter(m, op.name, label)
    elif k == "register_buffer":
        if op.value[0] == "buffer":
            w.storage[label] = op.value[1]
        rule_id, outcome = REGISTER_BUFFER, register_buffer(m, op.name, label, op.flag)
    elif k in ("add_module", "register_module"):
        rule_id, outcome = ADD_MODULE, add_module(m, op.name, label)
    elif k == "train_value":
        rule_id, outcome = TRAIN, Raised("ValueError", "training mode is expected to be boolean")
    elif k in ("train", "eval"):
        # train() and requires_grad_() without an argument: the defaults mode=True, requires_grad=True
        train(w, op.target, (op.flag is not False) if k == "train" else False)
        rule_id, outcome = TRAIN, op.target
    elif k == "requires_grad_":
        requires_grad_(w, op.target, op.flag is not False)
        rule_id, outcome = REQUIRES_GRAD, op.target
    elif k == "get_submodule":
        rule_id, outcome = GET_SUBMODULE, get_submodule(w, op.target, op.name)
    elif k == "get_parameter":
        rule_id, outcome = GET_PARAMETER, get_parameter(w, op.target, op.name)
    elif k == "get_buffer":
        rule_id, outcome = GET_BUFFER, get_parameter(w, op.target, op.name, want_buffer=True)
    elif k == "set_submodule":
        rule_id, outcome = SET_SUBMODULE, set_submodule(w, op.target, op.name, op.value, label, op.flag)
    else:
        raise ValueError(k)
    return Expect(rule_id, outcome, key="result")


def step(w: World, index: int, op, observe) -> list[Expect]:
    """Apply ``op`` to the model, then the expectations of every observable in ``observe`` ("result": the op's)."""
    result = run_op(w, index, op)
    return [result if what == "result" else observed(w, what) for what in observe]


def world_after(ops) -> World:
    w = new_world(MODULES, PARAMS, TENSORS)
    for i, op in enumerate(ops):
        run_op(w, i, op)
    return w


def expectations(program) -> list[Expect]:
    """What the documentation expects of a TreeProgram: one Expect per observable it names."""
    if not program.ops:
        w = new_world(MODULES, PARAMS, TENSORS)
        return [observed(w, what) for what in program.observe if what != "result"]
    w = world_after(program.ops[:-1])
    return step(w, len(program.ops) - 1, program.ops[-1], program.observe)


# ---- single-shot cases -----------------------------------------------------------------
def before_init_expectations(case) -> list[Expect]:
    """A BeforeInit case: (outcome of the early call, whether the name is reachable after Module.__init__)."""
    return [Expect(BEFORE_INIT, before_init(case))]


def extra_repr_expectations(case) -> list[Expect]:
    return [Expect(EXTRA_REPR, box_repr(case))]


def registration_replace_expectations(case) -> list[Expect]:
    return [Expect(REGISTRATION_REPLACE, registration_replace(case))]


def misc_expectations(case, device: str = "cpu") -> list[Expect]:
    """A MiscCase (suite/module/cases.py): the one call's documented outcome."""
    from reference.module import convert, hooks, registration, state
    if case.kind == "to_memory_format":
        return convert.memory_format_expectations(case)
    if case.kind in ("register_non_leaf", "setattr_non_leaf"):
        return [Expect(registration.REGISTER_NON_LEAF, registration.NON_LEAF_ERROR)]
    if case.kind.startswith("buffer_override"):
        return [Expect(registration.BUFFER_OVERRIDE, registration.buffer_override(
            "_persistent_" in case.kind, case.kind.endswith("_true")))]
    if case.kind == "backward_hook_dict":
        return hooks.backward_hook_output_expectations(case)
    if case.kind.startswith("load_") and case.kind not in ("load_non_mapping", "load_post_hook_return"):
        return [Expect(*state.load_single(case.kind, device))]
    if case.kind == "state_dict_positional":
        from conform.outcome import OneOf
        from reference.module.traversal import STATE_DICT_POSITIONAL
        warned = "^Positional args are being deprecated, use kwargs instead"
        return [Expect(STATE_DICT_POSITIONAL, {"same": True, "keys": ["pre.w", "pre.b"], "kept": True,
                                               "warning": OneOf(Raised("FutureWarning", warned),
                                                                Raised("UserWarning", warned))})]
    if case.kind == "swap_slots":
        return [Expect(convert.CONVERT_SWAP_REFUSED, Raised("RuntimeError", None))]
    if case.kind in ("hooks_deepcopy", "hooks_pickle"):
        from reference.module.traversal import COPY_HOOKS, copied_hook_calls
        return [Expect(COPY_HOOKS, copied_hook_calls())]
    from reference.module.convert import CONVERT_TYPE
    from reference.module.registration import CALL_NO_FORWARD, INIT_ARGS
    from reference.module.state import EXTRA_STATE_BASE, LOAD_NON_MAPPING, LOAD_POST_HOOKS
    from reference.module.traversal import STATE_DICT_POST_HOOK_RETURN

    expected = {
        "init_args": (INIT_ARGS, Raised("TypeError", r"^Plain\.__init__\(\) takes 1 positional argument but 2 were "
                                                     "given$")),
        "init_kwargs": (INIT_ARGS, Raised("TypeError", r"^Plain\.__init__\(\) got an unexpected keyword argument "
                                                       "'k'$")),
        "super_init": (INIT_ARGS, ((1,), {"k": 2})),  # what the mixin after Module in the MRO received
        "get_extra_state": (EXTRA_STATE_BASE, Raised("RuntimeError", None)),
        "set_extra_state": (EXTRA_STATE_BASE, Raised("RuntimeError", None)),
        "post_hook_return": (STATE_DICT_POST_HOOK_RETURN, Raised("RuntimeError", "^state_dict post-hook must return "
                                                                                 "None$")),
        # register_load_state_dict_post_hook: 'hook(module, incompatible_keys) -> None' (modify the keys in place);
        # the message lacks the space in "not expected" before 2.13 (a string concatenation, read from the wheels)
        "load_post_hook_return": (LOAD_POST_HOOKS, Raised("AssertionError", "not ?expected to return new values")),
        "load_non_mapping": (LOAD_NON_MAPPING, Raised("TypeError", "^Expected state_dict to be dict-like")),
        # a module on the meta device has no data to copy: the error points to to_empty (Module.to_empty: 'Move the
        # parameters and buffers to the specified device without copying storage')
        "meta_to": (CONVERT_TYPE, Raised("NotImplementedError", r"Module\.to_empty\(\) instead of "
                                                              r"torch\.nn\.Module\.to\(\)")),
        "call_no_forward": (CALL_NO_FORWARD, Raised("NotImplementedError",
                                                    r'^Module \[Plain\] is missing the required "forward" function$')),
    }[case.kind]
    return [Expect(*expected)]

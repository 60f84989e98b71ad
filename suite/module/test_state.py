"""load_state_dict against the model (reference/module/state.py): keys, strictness,
errors (the whole message), copy vs assign, post hooks, on random trees with
None entries, None and shared children, and perturbed state dicts."""
from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from reference.module import state as ref
from suite.module.cases import LoadCase, Spec, make_inputs, walk
from suite.module.torch_side.state import run_load

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


@st.composite
def load_cases(draw, observe=st.sampled_from(["result", "values", "identity", "post_hooks", "extra"])):
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
                    seed=draw(st.integers(0, 2**16)), observe=draw(observe))
    event(f"load: {len(keys)} keys, {len(entries)} entries, shared={spec.share is not None}")
    return case


def _check(conform, case):
    conform.check(case, ref.expectations(case, make_inputs(case)), run=run_load)


@pytest.mark.rules(ref.LOAD_KEYS, ref.LOAD_STRICT, ref.LOAD_SIZE, ref.LOAD_NONE, ref.LOAD_VALUES, ref.LOAD_ASSIGN,
                   ref.LOAD_POST_HOOKS, ref.LOAD_EXTRA_STATE)
@settings(max_examples=max(settings.default.max_examples, 100))  # ~10 ms an example
@given(case=load_cases())
def test_load_state_dict(conform, device, case):
    _check(conform, case)
    # the same load seen through every observable
    for what in ("result", "values", "identity", "post_hooks", "extra"):
        if what != case.observe:
            _check(conform, replace(case, observe=what))


@pytest.mark.rules(ref.LOAD_ASSIGN)
@settings(max_examples=max(settings.default.max_examples, 50))
@given(case=load_cases(observe=st.just("identity")))
def test_load_state_dict_twice_from_one_dict(conform, device, case):
    """Loading a state dict (with _metadata, as state_dict() returns) with assign=True must not change
    how a later load of the same dict behaves."""
    case = replace(case, with_metadata=True, preload_assign=True)
    _check(conform, case)

"""Collation: default_collate, collate_fn_map, default_convert, custom collate_fn.

Part of the data reference (see reference/data/__init__.py for its independence notes)."""
from __future__ import annotations

import numpy as np

from conform.expect import Expect
from conform.outcome import Raised
from conform.rules import rule
from reference.data.rng import COLLATE, LOADER


C_TENSOR = rule("data.collate.tensor",
                "Tensors are stacked along a new dim 0, keeping dtype and device.", f"{COLLATE}: collate_tensor_fn")
C_NDARRAY = rule("data.collate.numpy_array",
                 "numpy arrays become one stacked tensor of the matching dtype; string/object arrays raise TypeError.",
                 f"{COLLATE}: collate_numpy_array_fn")
C_NPSCALAR = rule("data.collate.numpy_scalar", "numpy scalars become a 1-D tensor of their dtype.",
                  f"{COLLATE}: collate_numpy_scalar_fn")
C_NUMBER = rule("data.collate.python_number",
                "Python floats become a float64 tensor, ints an int64 tensor, bools a bool tensor.",
                f"{COLLATE}: collate_float_fn, collate_int_fn")
C_FIRST = rule("data.collate.first_element_dispatch",
               "The collate function is chosen by the type of the batch's first element: ints first then floats "
               "give torch.tensor's inference (default float dtype).", f"{COLLATE}: collate")
C_STR = rule("data.collate.str_bytes",
             "str and bytes batches are returned unchanged: the container collate received (a list at top level and "
             "in mappings, a tuple for transposed sequence/namedtuple fields).",
             f"{COLLATE}: collate_str_fn")
C_MAP = rule("data.collate.mapping",
             "A batch of mappings becomes a mapping of the same type with the first element's keys, each value "
             "collated; a plain dict where that type cannot be built from a dict.",
             f"{COLLATE}: default_collate ('Mapping[K, V_i] -> Mapping[K, default_collate([V_1, V_2, ...])]'), "
             "collate (the except TypeError fallback: 'The mapping type may not support ... __init__(iterable)')")
C_NT = rule("data.collate.namedtuple", "A batch of namedtuples becomes the namedtuple of collated fields.",
            f"{COLLATE}: collate")
C_SEQ = rule("data.collate.sequence",
             "A batch of sequences is transposed and each position collated; tuples come back as lists, other "
             "sequences as their own type, or a list where that type cannot be built from a list (range).",
             f"{COLLATE}: default_collate ('Sequence[V1_i, V2_i, ...] -> Sequence[default_collate([V1_1, V1_2, "
             "...]), ...]'), collate ('The sequence type may not support ... __init__(iterable) (e.g., range)')")
C_RAGGED = rule("data.collate.unequal_length",
                "Sequences of unequal length raise RuntimeError('each element in list of batch should be of "
                "equal size').", f"{COLLATE}: collate")
C_UNSUPPORTED = rule("data.collate.unsupported_type",
                     "An element type with no collate function (None, arbitrary objects) raises TypeError.",
                     f"{COLLATE}: collate")
C_SPARSE = rule("data.collate.sparse_unsupported",
                "default_collate refuses batches of sparse tensors with RuntimeError (use a custom collate_fn).",
                f"{COLLATE}: collate_tensor_fn")
C_NESTED = rule("data.collate.nested_unsupported",
                "default_collate refuses batches of nested tensors with RuntimeError (use a custom collate_fn).",
                f"{COLLATE}: collate_tensor_fn ('Batches of nested tensors are not currently supported by the "
                "default collate_fn'; measured: in the 2.4.1 to 2.15.0 wheels)")
C_CUSTOM_MAP = rule("data.collate.collate_fn_map",
                    "collate(collate_fn_map=...) uses the entry for the exact element type, else the first key in "
                    "insertion order that the element is an instance of.", f"{COLLATE}: collate")
C_WORKER = rule("data.collate.in_worker",
                "default_collate run inside a DataLoader worker (tensors stacked into shared memory there) gives "
                "the main process the same batch as in the main process; its errors are re-raised there with their "
                "type and message.", f"{COLLATE}: collate_tensor_fn (get_worker_info() branch); "
                                     "torch/_utils.py: ExceptionWrapper.reraise")
C_CONVERT = rule("data.convert.default_convert",
                 "With batch_size=None each sample is passed through default_convert: numpy arrays and scalars become "
                 "tensors (string arrays kept), tuples become lists, mappings, namedtuples and other sequences keep "
                 "their type (a plain dict or list where that type cannot be built from one, as range), everything "
                 "else is unchanged.", f"{COLLATE}: default_convert ('The general input type to output type mapping "
                 "is similar to that of default_collate'; the except TypeError fallbacks)")
C_CUSTOM_FN = rule("data.collate.custom_fn",
                   "A custom collate_fn receives the list of samples of one batch in sampler order and runs in the "
                   "worker that fetched them.", f"{LOADER}: DataLoader (collate_fn); torch/utils/data/_utils/fetch.py")

_NP_TO_TORCH = {"float16": "float16", "float32": "float32", "float64": "float64", "int8": "int8", "int16": "int16",
                "int32": "int32", "int64": "int64", "uint8": "uint8", "bool": "bool", "bool_": "bool"}


def collate_rule(spec: tuple, mode: str) -> str:
    if mode == "convert":
        return C_CONVERT
    if mode == "custom_map":
        return C_CUSTOM_MAP
    if mode == "worker":
        return C_WORKER
    kind = spec[0]
    return {"tensor": C_TENSOR, "ndarray": C_NDARRAY, "npscalar": C_NPSCALAR, "int": C_NUMBER, "float": C_NUMBER,
            "bool": C_NUMBER, "intfloat": C_FIRST, "str": C_STR, "bytes": C_STR, "map": C_MAP, "namedtuple": C_NT,
            "tuple": C_SEQ, "list": C_SEQ, "row": C_SEQ, "range": C_SEQ, "ragged": C_RAGGED, "none": C_UNSUPPORTED,
            "opaque": C_UNSUPPORTED, "sparse": C_SPARSE, "nested": C_NESTED}[kind]


def _kept_type(elem, plain: type) -> str:
    """The name of the type a collated/converted mapping or sequence comes back as: the input's own type
    where it can be built from a ``plain`` dict/list (or, mutable, copied and updated), else ``plain``.
    Building an empty one asks the input's type, not torch."""
    from collections.abc import MutableMapping, MutableSequence

    if isinstance(elem, (MutableMapping, MutableSequence)):
        return type(elem).__name__
    try:
        type(elem)(plain())
    except TypeError:
        return plain.__name__
    return type(elem).__name__


class _CollateError(Exception):
    def __init__(self, raised: Raised):
        self.raised = raised


def _tensor_pic(dtype: str, device: str, values) -> tuple:
    arr = np.asarray(values)
    arr = arr.astype(np.float64) if dtype.startswith(("float", "bfloat")) else arr.astype(np.int64)
    return ("Tensor", dtype, device, arr)


def _is_intlike(x) -> bool:
    return isinstance(x, int) or (isinstance(x, np.generic) and np.issubdtype(type(x), np.integer))


def model_collate(batch: list, custom: bool = False):
    """default_collate (or collate with the custom map of suite.data.torch_side.collate) on real input objects,
    returning describe()'s tagged picture.  Tensors are read via .numpy() (input values only)."""
    import torch  # inputs are tensors; we only read their values, dtype and device

    elem = batch[0]
    if custom:
        # exact type first: int, float, str, bytes, Tensor, ndarray keep their default entries;
        # subclasses / numpy integers hit numbers.Integral, inserted first.
        exact = (int, float, str, bytes, torch.Tensor, np.ndarray)
        if type(elem) not in exact and (isinstance(elem, (int, np.integer))):
            return ("tuple", [("str", "counted"), ("int", len(batch))])
    if isinstance(elem, torch.Tensor) and elem.is_nested:
        raise _CollateError(Raised("RuntimeError", r"Batches of nested tensors are not currently supported"))
    if isinstance(elem, torch.Tensor) and elem.layout != torch.strided:
        raise _CollateError(Raised("RuntimeError", r"Batches of sparse tensors are not currently supported"))
    if isinstance(elem, torch.Tensor):
        arrays = [t.detach().cpu().numpy() for t in batch]
        return _tensor_pic(str(elem.dtype).replace("torch.", ""), elem.device.type, np.stack(arrays))
    if isinstance(elem, np.ndarray):
        if elem.dtype.kind in "SaUO":
            raise _CollateError(Raised("TypeError", r"default_collate: batch must contain tensors"))
        return _tensor_pic(_NP_TO_TORCH[str(elem.dtype)], "cpu", np.stack(batch))
    if isinstance(elem, (np.bool_, np.number)):
        return _tensor_pic(_NP_TO_TORCH[type(elem).__name__.replace("bool_", "bool")], "cpu", [x.item() for x in batch])
    if isinstance(elem, float):
        return _tensor_pic("float64", "cpu", batch)
    if isinstance(elem, int):  # bool included: torch.tensor's inference on the whole batch
        if all(isinstance(x, bool) for x in batch):
            return _tensor_pic("bool", "cpu", batch)
        if any(isinstance(x, float) for x in batch):
            return _tensor_pic("float32", "cpu", np.array(batch, dtype=np.float32))
        return _tensor_pic("int64", "cpu", [int(x) for x in batch])
    if isinstance(elem, (str, bytes)):
        # returned unchanged: the very container collate was called with (a tuple for the
        # transposed fields of sequences and namedtuples, a list elsewhere)
        return (type(batch).__name__, [(type(x).__name__, x) for x in batch])
    from collections.abc import Mapping, Sequence

    if isinstance(elem, Mapping):
        items = {k: model_collate([d[k] for d in batch], custom) for k in elem}
        return ("map", _kept_type(elem, dict), items)
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):
        return ("namedtuple", type(elem).__name__, [model_collate(tuple(f), custom) for f in zip(*batch)])
    if isinstance(elem, Sequence):
        if any(len(x) != len(elem) for x in batch):
            raise _CollateError(Raised("RuntimeError", r"each element in list of batch should be of equal size"))
        kept = "list" if isinstance(elem, tuple) else _kept_type(elem, list)
        return (kept, [model_collate(tuple(f), custom) for f in zip(*batch)])
    raise _CollateError(Raised("TypeError", r"default_collate: batch must contain tensors, numpy arrays, numbers, "
                                            r"dicts or lists; found"))


def model_convert(sample):
    """default_convert, on one sample."""
    from collections.abc import Mapping, Sequence

    if isinstance(sample, np.ndarray):
        if sample.dtype.kind in "SaUO":
            return ("ndarray", str(sample.dtype), sample.tolist())
        return _tensor_pic(_NP_TO_TORCH[str(sample.dtype)], "cpu", sample)
    if isinstance(sample, (np.bool_, np.number)):
        return _tensor_pic(_NP_TO_TORCH[type(sample).__name__], "cpu", sample.item())
    if isinstance(sample, Mapping):
        return ("map", _kept_type(sample, dict), {k: model_convert(v) for k, v in sample.items()})
    if isinstance(sample, tuple) and hasattr(sample, "_fields"):
        return ("namedtuple", type(sample).__name__, [model_convert(v) for v in sample])
    if isinstance(sample, Sequence) and not isinstance(sample, (str, bytes)):
        kept = "list" if isinstance(sample, tuple) else _kept_type(sample, list)
        return (kept, [model_convert(v) for v in sample])
    import torch  # an input may be a tensor: we only read its values, dtype and device

    if isinstance(sample, torch.Tensor):
        return _tensor_pic(str(sample.dtype).replace("torch.", ""), sample.device.type, sample.detach().cpu().numpy())
    if isinstance(sample, (bool, int, float, str, bytes)) or sample is None:
        return (type(sample).__name__, sample)
    return ("object", type(sample).__name__)


def collate_outcome(case, batch: list):
    if case.mode == "convert":
        return [model_convert(s) for s in batch]
    try:
        return model_collate(batch, custom=case.mode == "custom_map")
    except _CollateError as err:
        return err.raised


def expectations(case, batch: list) -> list[Expect]:
    """A CollateCase whose samples (input data, made by the test) are ``batch``: the collated (converted)
    picture under the rule of its mode, or of the batch's element type."""
    return [Expect(collate_rule(case.spec, case.mode), collate_outcome(case, batch))]

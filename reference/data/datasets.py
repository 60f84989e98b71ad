"""Datasets (Concat, Subset, Chain, Stack, Tensor) and random_split.

Part of the data reference (see reference/data/__init__.py for its independence notes)."""
from __future__ import annotations

import math

from conform.expect import Expect
from conform.outcome import Raised
from conform.rules import rule
from reference.data.rng import DATASET, DOC, MT
from reference.data.collate import _tensor_pic
from reference.versions import since


DS_CONCAT = rule("data.dataset.concat_index",
                 "ConcatDataset maps index i to the first member whose cumulative size exceeds i (empty members "
                 "skipped); len is the sum; a + b of map-style datasets is ConcatDataset([a, b]).",
                 f"{DATASET}: ConcatDataset.__getitem__, Dataset.__add__")
DS_CONCAT_NEG = rule("data.dataset.concat_negative",
                     "ConcatDataset accepts -len <= i < 0 as len + i; i < -len raises ValueError.",
                     f"{DATASET}: ConcatDataset.__getitem__")
DS_CONCAT_OOB = rule("data.dataset.concat_out_of_range", "ConcatDataset index >= len raises IndexError.",
                     f"{DATASET}: ConcatDataset.__getitem__")
DS_SUBSET = rule("data.dataset.subset",
                 "Subset[k] is dataset[indices[k]] with Python indexing of indices (negatives wrap, out of range "
                 "raises IndexError); __getitems__(ks), what the DataLoader's fetcher calls, is [Subset[k] for k in "
                 "ks], also when the wrapped dataset has its own __getitems__ (a nested Subset); Subset[ks] with a "
                 "list of positions asks the wrapped dataset once, dataset[[indices[k] for k in ks]] (a dataset "
                 "that takes a list of indices, such as a Subset of a Subset, is sliced in one call).",
                 f"{DATASET}: Subset.__getitem__ ('if isinstance(idx, list)', pytorch/pytorch#59513), "
                 "Subset.__getitems__; torch/utils/data/_utils/fetch.py")
DS_CHAIN = rule("data.dataset.chain", "ChainDataset yields its members in order; len is the sum of lens; a + b of "
                "iterable datasets is ChainDataset([a, b]).", f"{DATASET}: ChainDataset, IterableDataset.__add__")
DS_STACK = rule("data.dataset.stack",
                "StackDataset returns a tuple (positional) or dict (keyword) of the members' items, also via "
                "__getitems__ (batched through members that have their own __getitems__); members of different "
                "lengths raise ValueError.", f"{DATASET}: StackDataset")
DS_TENSOR = rule("data.dataset.tensor",
                 "TensorDataset[i] is the tuple of each tensor's row i; tensors of different first size raise.",
                 f"{DATASET}: TensorDataset")
DS_KIND = rule("data.dataset.kind_checks",
               "ConcatDataset rejects an empty list and IterableDataset members; ChainDataset rejects a map-style "
               "member when iterated or measured (AssertionError each); StackDataset rejects datasets given both "
               "positionally and by keyword, and no dataset at all (ValueError); the Dataset base class's "
               "__getitem__ raises NotImplementedError (subclasses implement it).",
               f"{DATASET}: ConcatDataset.__init__, ChainDataset.__iter__, ChainDataset.__len__, "
               "StackDataset.__init__, Dataset.__getitem__")
DS_USER_ERRORS = rule("data.dataset.user_errors",
                      "Datasets built wrongly by the user are refused: StackDataset.__getitems__ raises ValueError "
                      "('Nested dataset's output size mismatch') when a member's own __getitems__ returns a number "
                      "of samples other than the number of indices asked (positional and keyword form); from torch "
                      "2.11 a Subset subclass that overrides __getitem__ but not __getitems__ raises "
                      "NotImplementedError when built (the DataLoader would otherwise bypass its __getitem__).",
                      f"{DATASET}: Dataset ('__getitems__ ... accepts list of indices of samples of batch and returns "
                      "list of samples'), StackDataset.__getitems__, Subset.__init__ (pytorch/pytorch#163961, "
                      "fixing #163184; measured: present in the 2.11.0 wheel's dataset.py, absent in 2.10.0's)")
DS_FETCH_BATCHED = rule("data.dataset.batched_fetch",
                        "With automatic batching, a map-style dataset that defines __getitems__ is asked once per "
                        "batch, __getitems__(the batch's indices), and collate_fn gets the list it returned; one "
                        "that does not is asked dataset[i] for each index of the batch, in order, and collate_fn "
                        "gets [dataset[i] for i in indices].",
                        f"{DATASET}: Dataset ('Subclasses could also optionally implement __getitems__, for speedup "
                        "batched samples loading. This method accepts list of indices of samples of batch and "
                        f"returns list of samples'); {DOC}#automatic-batching-default "
                        "('collate_fn([dataset[i] for i in indices])')")
DS_FETCH_UNBATCHED = rule("data.dataset.unbatched_fetch",
                          "With automatic batching disabled (batch_size=None) every sample is dataset[i], passed "
                          "to collate_fn alone, also when the dataset defines __getitems__.",
                          f"{DOC}#disable-automatic-batching ('for index in sampler: yield "
                          "collate_fn(dataset[index])')")
SPLIT = rule("data.seed.random_split",
             "random_split with integer lengths permutes range(sum) with one randperm from the generator and cuts it "
             "into consecutive pieces.", f"{DATASET}: random_split")
SPLIT_FRAC = rule("data.seed.random_split_fractions",
                  "Fractions summing to 1 become floor(f*n) each, the remainder handed out one by one round-robin from "
                  "the first split; a zero-length split warns.", f"{DATASET}: random_split")
SPLIT_ERR = rule("data.seed.random_split_errors",
                 "random_split raises ValueError when lengths do not sum to len(dataset) or a fraction is outside "
                 "[0, 1].", f"{DATASET}: random_split")


def dataset_rule(case) -> str:
    if case.kind == "concat":
        total = sum(case.sizes)
        if case.index >= total:
            return DS_CONCAT_OOB
        return DS_CONCAT_NEG if case.index < 0 else DS_CONCAT
    if case.kind == "random_split":
        lengths = case.lengths
        if any(isinstance(x, float) for x in lengths) and math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
            return SPLIT_FRAC if all(0 <= x <= 1 for x in lengths) else SPLIT_ERR
        return SPLIT if sum(lengths) == case.sizes[0] else SPLIT_ERR
    if case.kind == "fetch":
        return DS_FETCH_UNBATCHED if case.batch_size is None else DS_FETCH_BATCHED
    if case.kind == "kind_checks" and case.index >= len(KIND_CHECK_IDS):
        return DS_USER_ERRORS
    return {"subset": DS_SUBSET, "chain": DS_CHAIN, "stack": DS_STACK, "tensor": DS_TENSOR,
            "kind_checks": DS_KIND}[case.kind]


# the kind_checks variants (DatasetCase.index), then those of the user-error rule
KIND_CHECK_IDS = ("concat-empty", "concat-iterable", "chain-map", "chain-map-len", "stack-args-and-kwargs",
                  "stack-none", "dataset-base")
USER_ERROR_IDS = ("stack-getitems-miscount", "stack-getitems-miscount-dict", "subset-getitem-only",
                  "stack-getitems-short")


def dataset_outcome(case, device: str = "cpu", positions: list | None = None):
    """What run_dataset observes; ``positions`` (input data) are the Subset positions asked in one batch."""
    members = [[t * 100 + k for k in range(s)] for t, s in enumerate(case.sizes)]
    if case.kind == "concat":
        flat = [x for m in members for x in m]
        total = len(flat)
        i = case.index
        if i < -total:
            item = Raised("ValueError", r"absolute value of index should not exceed dataset length")
        elif i >= total:
            item = Raised("IndexError")
        else:
            item = flat[i]
        return {"len": total, "item": item}
    if case.kind == "kind_checks":
        return [Raised("AssertionError", r"datasets should not be an empty iterable"),
                Raised("AssertionError", r"ConcatDataset does not support IterableDataset"),
                Raised("AssertionError", r"ChainDataset only supports IterableDataset"),
                Raised("AssertionError", r"ChainDataset only supports IterableDataset"),
                Raised("ValueError", r"both types are given"),
                Raised("ValueError", r"At least one dataset should be passed"),
                Raised("NotImplementedError"),
                # a member whose __getitems__ returns one sample too many, asked for 2: tuple, then dict form
                Raised("ValueError", r"Nested dataset's output size mismatch\. Expected 2, got 3"),
                Raised("ValueError", r"Nested dataset's output size mismatch\. Expected 2, got 3"),
                Raised("NotImplementedError", r"overrides __getitem__ but not __getitems__") if since("2.11")
                else "accepted",
                # one sample too few, asked for 2
                Raised("ValueError", r"Nested dataset's output size mismatch\. Expected 2, got 1")][case.index]
    if case.kind == "subset":
        base, idx = members[0], list(case.indices)
        items = []
        for k in range(-len(idx) - 1, len(idx) + 1):
            items.append(base[idx[k]] if -len(idx) <= k < len(idx) else Raised("IndexError"))
        ks = positions
        return {"len": len(idx), "items": items, "batch": [base[idx[k]] for k in ks],
                "nested": [base[idx[k]] for k in ks], "loaded": [base[i] for i in idx],
                "listed": {"asked": [idx[k] for k in ks]}}
    if case.kind == "chain":
        return {"len": sum(case.sizes), "items": [k for s in case.sizes for k in range(s)]}
    if case.kind == "stack":
        if len(set(case.sizes)) > 1:
            return Raised("ValueError", r"Size mismatch between datasets")

        def pick(i):
            if case.as_dict:
                return ("map", "dict", {f"k{t}": ("int", m[i]) for t, m in enumerate(members)})
            return ("tuple", [("int", m[i]) for m in members])

        return {"len": case.sizes[0], "item": pick(case.index), "items": ("list", [pick(i) for i in case.indices])}
    if case.kind == "tensor":
        if len(set(case.sizes)) > 1:
            return Raised("AssertionError|ValueError", r"Size mismatch between tensors")
        return {"len": case.sizes[0],
                "item": ("tuple", [_tensor_pic("int64", device.split(":")[0], [2 * case.index + 100 * t, 2 * case.index + 1 + 100 * t])
                                   for t in range(len(case.sizes))])}
    if case.kind == "fetch":
        return fetch_outcome(case)
    return random_split_outcome(case)


def fetch_outcome(case):
    """A map-style probe of n items (item i is 1000 + i), loaded in order in the main process with a
    collate_fn that tags what it is given: the loaded batches, and the probe's calls in order."""
    n, bs = case.sizes[0], case.batch_size
    if bs is None:
        return {"loaded": [{"collated": 1000 + i} for i in range(n)], "calls": [["getitem", i] for i in range(n)]}
    batches = [list(range(i, min(i + bs, n))) for i in range(0, n, bs)]
    if case.getitems:
        calls = [["getitems", b] for b in batches]
    else:
        calls = [["getitem", i] for b in batches for i in b]
    return {"loaded": [{"collated": [1000 + i for i in b]} for b in batches], "calls": calls}


def random_split_outcome(case):
    n, lengths = case.sizes[0], list(case.lengths)
    warnings = 0
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        for i, f in enumerate(lengths):
            if f < 0 or f > 1:
                return Raised("ValueError", rf"Fraction at index {i} is not between 0 and 1")
        counts = [math.floor(n * f) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        warnings = sum(1 for c in counts if c == 0)
        lengths = counts
    if sum(lengths) != n:
        return Raised("ValueError", r"Sum of input lengths does not equal the length of the input dataset")
    g = MT(case.seed)
    perm = g.randperm(n)
    parts, start = [], 0
    for length in lengths:
        parts.append(perm[start:start + length])
        start += length
    return {"parts": parts, "warnings": warnings, "next": g.random64()}


def expectations(case, device: str = "cpu", positions: list | None = None) -> list[Expect]:
    """A DatasetCase (``positions``: the Subset positions asked in one __getitems__ batch, input data for
    a subset case): what the dataset yields, under the rule of its kind and index."""
    return [Expect(dataset_rule(case), dataset_outcome(case, device, positions))]

"""Executable spec of torch.utils.data: samplers, DataLoader construction, collation,
datasets, the multi-worker protocol, iterable datasets, seeding and faults.

Each topic module exposes ``expectations(case, ...) -> list[Expect]`` (one function per family
of checks): which rules a Case exercises, the expected outcome, and which part of the torch
side's observation each rule is about.  Cases are read by their attributes only.

Independence: nothing here calls DataLoader, a sampler, default_collate,
random_split or a dataset class under test.  Random draws are reproduced in pure
Python: torch's CPU generator is MT19937 (initialised like std::mt19937 from the
low 32 bits of the seed) and we load that state into ``random.Random`` (also
MT19937) via setstate, so ``randperm``/``randint``/``random_``/``multinomial``
(with replacement) are reproduced bit for bit, fully independent of torch.
One exception, stated where it is used: multinomial *without* replacement draws
``exponential_`` noise (MKL-backed on x86 builds), which we take from
``torch.Tensor.exponential_`` on an identically seeded generator (a primitive, not
the sampler under test); the selection logic (largest p/q first) is modelled here.

Worker seeding for numpy uses numpy's own SeedSequence (the documented recipe the
DataLoader mirrors) and numpy's legacy RandomState: numpy is not under test.
"""
from __future__ import annotations

# Every submodule registers its rules at import; use them by module (``workers.W_DISPATCH``).
from reference.data import collate, datasets, iterable, loader, rng, samplers, workers  # noqa: F401

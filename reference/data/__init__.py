"""Executable spec of torch.utils.data: samplers, DataLoader construction, collation,
datasets, the multi-worker protocol, seeding and faults.

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

# Every submodule registers its rules at import; the area's names are re-exported here.
from reference.data.rng import *  # noqa: F401,F403
from reference.data.samplers import *  # noqa: F401,F403
from reference.data.loader import *  # noqa: F401,F403
from reference.data.collate import *  # noqa: F401,F403
from reference.data.datasets import *  # noqa: F401,F403
from reference.data.workers import *  # noqa: F401,F403

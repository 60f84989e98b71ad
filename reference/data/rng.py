"""RNG primitives: torch's CPU generator reproduced in pure Python (MT19937).

Part of the data reference (see reference/data/__init__.py for its independence notes)."""
from __future__ import annotations

import bisect
import dataclasses
import random

from conform.expect import Expect
from conform.rules import rule


SAMPLER = "torch/utils/data/sampler.py"
LOADER = "torch/utils/data/dataloader.py"
DOC = "https://pytorch.org/docs/stable/data.html"
COLLATE = "torch/utils/data/_utils/collate.py"
WORKER = "torch/utils/data/_utils/worker.py"
DATASET = "torch/utils/data/dataset.py"
M32 = 0xFFFFFFFF
GLOBAL_SEED_SALT = 0x5EED


def global_seed(seed: int) -> int:
    """The main process's global torch seed for a Case (torch_side seeds it the same way); kept
    below 2**63 so torch.initial_seed() collates into an int64 tensor."""
    return (seed ^ GLOBAL_SEED_SALT) % 2**63


RNG_SEED = rule("data.rng.seed_low32",
                "A CPU Generator seeded with s is MT19937 initialised (init_genrand) from s mod 2**32.",
                "aten/src/ATen/core/MT19937RNGEngine.h: mt19937_engine::init_with_uint32")
RNG_RANDPERM = rule("data.rng.randperm",
                    "randperm(n) on CPU swaps p[i] with p[i + u32 % (n - i)] for i = 0..n-2, one 32-bit draw each.",
                    "aten/src/ATen/native/TensorFactories.cpp: randperm_cpu")
RNG_RANDINT = rule("data.rng.randint",
                   "randint(high) on CPU draws one 32-bit word per element and returns word % high (high < 2**32).",
                   "aten/src/ATen/core/DistributionsHelper.h: uniform_int_from_to_distribution")
RNG_RANDOM64 = rule("data.rng.random64",
                    "int64 random_() draws two 32-bit words (high first) and returns the 64-bit value mod 2**63.",
                    "aten/src/ATen/core/DistributionsHelper.h: uniform_int_distribution")
RNG_MULTINOMIAL = rule("data.rng.multinomial_replacement",
                       "multinomial with replacement (>1 sample) inverts the normalised cumulative weights with a "
                       "53-bit uniform per sample (first bucket whose cumulative value >= u).",
                       "aten/src/ATen/native/cpu/MultinomialKernel.cpp: multinomial_with_replacement_apply")


class MT:
    """torch's CPU generator state, reproduced with the standard library's MT19937."""

    def __init__(self, seed: int):
        state = [seed & M32]
        for j in range(1, 624):
            prev = state[-1]
            state.append((1812433253 * (prev ^ (prev >> 30)) + j) & M32)
        self._r = random.Random()
        self._r.setstate((3, tuple(state) + (624,), None))  # index 624: regenerate on the first draw

    def u32(self) -> int:
        return self._r.getrandbits(32)

    def u64(self) -> int:
        high = self.u32()
        return (high << 32) | self.u32()

    def random64(self) -> int:
        return self.u64() % 2**63

    def randperm(self, n: int) -> list[int]:
        p = list(range(n))
        for i in range(n - 1):
            z = i + self.u32() % (n - i)
            p[i], p[z] = p[z], p[i]
        return p

    def randint(self, high: int, size: int) -> list[int]:
        return [self.u32() % high for _ in range(size)]

    def uniform53(self) -> float:
        return (self.u64() & ((1 << 53) - 1)) * (1.0 / (1 << 53))

    def multinomial_replacement(self, weights, size: int) -> list[int]:
        cum, total = [], 0.0
        for w in weights:  # sequential float64 accumulation, as the kernel does
            total += float(w)
            cum.append(total)
        cum = [c / total for c in cum]
        cum[-1] = 1.0
        return [bisect.bisect_left(cum, self.uniform53()) for _ in range(size)]


def rng_outcome(case) -> dict:
    g = MT(case.seed)
    if case.op == "randperm":
        out = g.randperm(case.n)
    elif case.op == "randint":
        out = g.randint(case.n, case.size)
    elif case.op == "random64":
        out = [g.random64() for _ in range(case.size)]
    else:
        out = g.multinomial_replacement(case.weights, case.size)
    return {"out": out, "next": g.random64()}


RULE_OF_OP = {"randperm": RNG_RANDPERM, "randint": RNG_RANDINT, "random64": RNG_RANDOM64,
              "multinomial": RNG_MULTINOMIAL}


def expectations(case) -> list[Expect]:
    """An RngCase: the op's draws and the generator's next draw, under the op's rule."""
    return [Expect(RULE_OF_OP[case.op], rng_outcome(case))]


def seed_expectations(case) -> list[Expect]:
    """An RngCase whose seed may exceed 32 bits: the stream of the seed's low 32 bits."""
    return [Expect(RNG_SEED, rng_outcome(dataclasses.replace(case, seed=case.seed & M32)))]

"""Seeded randomness: independent named streams, weighted pickers, deterministic UUIDs.

Every random choice of a run comes from `random.Random` instances seeded with
"<seed>:<stream name>" (string seeds are hashed with SHA-512 by CPython, so they do not depend
on PYTHONHASHSEED). Separate streams keep e.g. fault injection from shifting the valid events:
turning duplicates on does not change a single valid event.
"""
from __future__ import annotations

import math
import random
from bisect import bisect
from collections.abc import Sequence
from itertools import accumulate
from typing import TypeVar

T = TypeVar("T")

_VERSION_MASK = ~(0xF000 << 64) & ((1 << 128) - 1)
_VERSION_4 = 0x4000 << 64
_VARIANT_MASK = ~(0xC000 << 48) & ((1 << 128) - 1)
_VARIANT_RFC = 0x8000 << 48


def stream(seed: int, name: str) -> random.Random:
    return random.Random(f"{seed}:{name}")


def uuid4_from(rng: random.Random) -> str:
    """A version-4 UUID string whose 122 random bits come from `rng` (not from os.urandom)."""
    n = (rng.getrandbits(128) & _VERSION_MASK & _VARIANT_MASK) | _VERSION_4 | _VARIANT_RFC
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Picker:
    """Weighted choice in O(log n) with one `random()` call (faster than random.choices per call)."""

    __slots__ = ("values", "cum", "total")

    def __init__(self, pairs: Sequence[tuple[T, float]] | None = None, values: Sequence[T] | None = None,
                 weights: Sequence[float] | None = None):
        if pairs is not None:
            values = [v for v, _ in pairs]
            weights = [w for _, w in pairs]
        assert values is not None and weights is not None and len(values) == len(weights) and values
        self.values = list(values)
        self.cum = list(accumulate(weights))
        self.total = self.cum[-1]

    def pick(self, rng: random.Random):
        return self.values[bisect(self.cum, rng.random() * self.total)]

    def index(self, rng: random.Random) -> int:
        return bisect(self.cum, rng.random() * self.total)


def poisson(rng: random.Random, lam: float) -> int:
    """Poisson variate: Knuth's method for small means, a rounded normal for large ones."""
    if lam <= 0:
        return 0
    if lam < 30:
        limit, k, p = math.exp(-lam), 0, rng.random()
        while p > limit:
            k += 1
            p *= rng.random()
        return k
    return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))


def geometric(rng: random.Random, mean: float) -> int:
    """Number of failures before a success, with the given mean (>= 0)."""
    if mean <= 0:
        return 0
    p = 1.0 / (1.0 + mean)
    return int(math.log(1.0 - rng.random()) / math.log(1.0 - p))

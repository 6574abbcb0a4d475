"""Random streams: one independent numpy stream per component and purpose, named by tags.

No global random state is used anywhere. Numbers are drawn in batches and handed out one at
a time by zero-argument callables, which is what the request path calls.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np

from ..model.keys import key_probabilities
from ..model.spec import KeysSpec


def stream(seed: int | np.random.SeedSequence, *tags: str | int) -> np.random.Generator:
    """An independent random stream for ``tags`` (e.g. ``("api", "service_time", "read")``).

    Streams are keyed by name, not by creation order: the same seed and tags give the same
    numbers in any design that has them, so adding a component does not change the numbers
    another one sees, and two designs that share a workload share their arrivals.
    """
    if isinstance(seed, np.random.SeedSequence):
        entropy, prefix = seed.entropy, tuple(seed.spawn_key)
    else:
        entropy, prefix = int(seed), ()
    key = tuple(t if isinstance(t, int) else zlib.crc32(str(t).encode()) for t in tags)
    return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=prefix + key))


def uniform_sampler(rng: np.random.Generator, batch: int = 4096) -> Callable[[], float]:
    """A zero-argument callable returning U(0, 1) draws from ``rng``."""
    def gen():
        while True:
            yield from rng.random(batch).tolist()
    return gen().__next__


def _no_key() -> int:
    return -1


def key_sampler(keys: KeysSpec | None, rng: np.random.Generator, batch: int = 4096) -> Callable[[], int]:
    """A zero-argument callable returning the next key (``-1`` when the class has no keys)."""
    if keys is None:
        return _no_key
    n = keys.count
    if keys.zipf is None:
        def gen_uniform():
            while True:
                yield from rng.integers(0, n, size=batch).tolist()
        return gen_uniform().__next__
    cdf = np.cumsum(key_probabilities(keys))
    cdf[-1] = 1.0

    def gen_zipf():
        while True:
            u = rng.random(batch)
            yield from np.searchsorted(cdf, u, side="right").tolist()
    return gen_zipf().__next__


def integer_sampler(rng: np.random.Generator, k: int, batch: int = 4096) -> Callable[[], int]:
    """A zero-argument callable returning integers uniform on ``0..k-1``."""
    def gen():
        while True:
            yield from rng.integers(0, k, size=batch).tolist()
    return gen().__next__

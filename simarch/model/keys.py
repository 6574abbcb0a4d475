"""Request keys and where they live: key popularity (uniform, Zipf) and the consistent-hash ring.

Keys are integers ``0..n-1``; with Zipf popularity key 0 is the hottest. A datastore places a
key on a shard with a consistent-hash ring: every shard owns ``vnodes`` points on a 64-bit ring
(positions from BLAKE2b of ``"shard-<i>-vnode-<j>"``), a key hashes with SplitMix64 and belongs
to the first point clockwise. The mapping depends only on the key, the shard count and
``vnodes``, never on the seed.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np

from .spec import KeysSpec


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser, vectorised over uint64 (wrap-around arithmetic)."""
    z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def ring_points(shards: int, vnodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ring positions and the shard that owns each."""
    pos = np.empty(shards * vnodes, dtype=np.uint64)
    owner = np.empty(shards * vnodes, dtype=np.int64)
    i = 0
    for s in range(shards):
        for v in range(vnodes):
            h = hashlib.blake2b(f"shard-{s}-vnode-{v}".encode(), digest_size=8).digest()
            pos[i] = np.frombuffer(h, dtype=np.uint64)[0]
            owner[i] = s
            i += 1
    order = np.argsort(pos, kind="stable")
    return pos[order], owner[order]


@functools.lru_cache(maxsize=4)  # (an array of n_keys int64 each: a few, not many)
def shard_of_keys(n_keys: int, shards: int, vnodes: int = 100) -> np.ndarray:
    """The shard (0..shards-1) of each key 0..n_keys-1 on the consistent-hash ring.

    Kept for the last few layouts asked for (the analyses of a plan and the runs of a study
    ask for the same ones again), so the array is read-only."""
    if shards == 1:
        out = np.zeros(n_keys, dtype=np.int64)
    else:
        pos, owner = ring_points(shards, vnodes)
        h = splitmix64(np.arange(n_keys, dtype=np.uint64))
        idx = np.searchsorted(pos, h, side="left")
        idx[idx == len(pos)] = 0  # wrap around the ring
        out = owner[idx]
    out.setflags(write=False)
    return out


def key_probabilities(keys: KeysSpec) -> np.ndarray:
    """P(key = k) for k = 0..n-1."""
    n = keys.count
    if keys.zipf is None:
        return np.full(n, 1.0 / n)
    w = 1.0 / np.power(np.arange(1, n + 1, dtype=float), keys.zipf)
    return w / w.sum()

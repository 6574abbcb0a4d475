"""Instance choice: how a caller (or a load balancer) picks the instance of its callee.

Each picker is a zero-argument callable built once, at wiring, for one policy: the policy is
decided there, never by comparing strings on each pick.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from .pools import LoadIndex, Pool
from .streams import uniform_sampler

INDEX_MIN = 32  # tiers of at least this many instances keep a LoadIndex for least connections


def least_loaded(pools: list[Pool], start: int) -> Pool:
    """The pool with the fewest requests (in service and waiting), scanning from ``start``:
    the first of the least loaded in turn from there."""
    k = len(pools)
    best = pools[start]
    best_load = best.load
    for j in range(1, k):
        p = pools[(start + j) % k]
        if p.load < best_load:
            best, best_load = p, p.load
    return best


def load_index(pools: list[Pool]) -> LoadIndex:
    """The tier's load index (one per set of pools, shared by every picker over it)."""
    index = pools[0].index
    if index is None:
        index = LoadIndex(pools)
    return index


def make_picker(policy: str, pools: list[Pool], rng: np.random.Generator) -> Callable[[], Pool]:
    """A zero-argument callable choosing the instance for the next request."""
    k = len(pools)
    if k == 1:
        return itertools.repeat(pools[0]).__next__
    if policy == "round_robin":
        return itertools.cycle(pools).__next__
    if policy == "random":
        def gen_random():
            while True:
                for i in rng.integers(0, k, size=4096).tolist():
                    yield pools[i]
        return gen_random().__next__
    if policy == "least_connections":
        if k >= INDEX_MIN:
            index = load_index(pools)
            turn = itertools.count().__next__

            def least_indexed() -> Pool:
                return index.least(turn())  # rotating among the tied: ties spread evenly
            return least_indexed
        start = itertools.cycle(range(k)).__next__

        def least() -> Pool:
            return least_loaded(pools, start())  # rotating start: ties spread evenly
        return least
    if policy == "power_of_two_choices":
        def gen_pairs():
            while True:
                a = rng.integers(0, k, size=4096)
                b = rng.integers(0, k - 1, size=4096)
                b = b + (b >= a)  # two distinct instances
                yield from zip(a.tolist(), b.tolist(), strict=True)
        pairs = gen_pairs().__next__

        def p2c() -> Pool:
            i, j = pairs()
            p, q = pools[i], pools[j]
            return p if p.load <= q.load else q
        return p2c
    raise ValueError(f"unknown policy {policy!r}")


def make_live_picker(policy: str, live: list[Pool], rng: np.random.Generator,
                     live_set: set[Pool] | None = None) -> Callable[[], Pool | None]:
    """Like :func:`make_picker` over a list that changes (the instances in rotation);
    ``None`` when no instance is in rotation. ``live_set``, when given, holds the same
    pools as ``live``: a large tier's least-connections pick then uses its load index."""
    count = itertools.count().__next__

    if policy == "round_robin":
        def pick_rr() -> Pool | None:
            k = len(live)
            if k <= 1:
                return live[0] if k else None
            return live[count() % k]
        return pick_rr
    u = uniform_sampler(rng)
    if policy == "random":
        def pick_random() -> Pool | None:
            k = len(live)
            if k <= 1:
                return live[0] if k else None
            return live[int(u() * k)]
        return pick_random
    if policy == "power_of_two_choices":
        def pick_p2c() -> Pool | None:
            k = len(live)
            if k <= 1:
                return live[0] if k else None
            i = int(u() * k)
            j = int(u() * (k - 1))
            j += j >= i
            p, q = live[i], live[j]
            return p if p.load <= q.load else q
        return pick_p2c
    if policy == "least_connections":
        if live_set is not None and len(live) >= INDEX_MIN:
            index = load_index(list(live))

            def pick_least_indexed() -> Pool | None:
                return index.least_of(count(), live_set)
            return pick_least_indexed

        def pick_least() -> Pool | None:
            k = len(live)
            if k <= 1:
                return live[0] if k else None
            return least_loaded(live, count() % k)
        return pick_least
    raise ValueError(f"unknown policy {policy!r}")

"""The cache kind: an LRU over request keys (``OrderedDict``) with an optional TTL, or a
fixed hit ratio. A hit makes the cache's ordinary calls; a miss also makes its ``on: miss``
calls and fills the entry once they succeed."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from ..model.metrics import ratio
from ..model.status import OK
from ..runtime.calls import Call
from ..runtime.pools import Pool
from ..runtime.streams import uniform_sampler
from .base import Flow, Kind
from .registry import register


def che_hit_ratio(p: np.ndarray, capacity: int) -> tuple[float, np.ndarray]:
    """LRU hit ratio under the independent reference model (Che's approximation).

    ``p`` is the request probability of each key. Returns the overall hit ratio and the
    per-key hit probability ``1 - exp(-p_i * T_C)``, where the characteristic time ``T_C``
    solves ``sum_i (1 - exp(-p_i * T_C)) = capacity``.

    ``T_C`` is found by Newton steps on ``log(sum_i (1 - exp(-p_i T))) - log(capacity)`` in
    ``log T``, kept inside a bracket that every step narrows (bisecting when a step leaves
    it), from ``T = capacity``, which is below the root because ``1 - e^-x <= x``: five or
    six passes over the keys for the usual popularities. Exponents are clipped at -40 so that
    no pass runs into denormal numbers (``e^-40`` is 4e-18 of a key).
    """
    p = np.asarray(p, dtype=float)
    live = p[p > 0]
    n = len(live)
    if capacity >= n:
        return 1.0, (p > 0).astype(float)
    lo, hi = math.log(capacity), math.inf
    u = lo
    buf = np.empty_like(live)  # one buffer for every pass: no fresh pages per pass
    for _ in range(200):
        t = math.exp(u)
        np.multiply(live, -t, out=buf)
        np.maximum(buf, -40.0, out=buf)
        np.exp(buf, out=buf)
        hits = n - float(buf.sum())
        buf *= live
        slope = t * float(buf.sum())  # d hits / d log T
        h = math.log(hits / capacity)
        if h <= 0:
            lo = u
        else:
            hi = u
        step = u - h * hits / slope if slope > 0 else math.inf
        if not lo <= step <= hi:
            step = (lo + hi) / 2 if math.isfinite(hi) else lo + 1.0
        done = abs(step - u) <= 1e-14 * max(1.0, abs(u))
        u = step
        if done:
            break
    per_key = np.multiply(p, -math.exp(u))
    np.expm1(per_key, out=per_key)
    np.negative(per_key, out=per_key)
    return float((p * per_key).sum()), per_key  # (no BLAS call: its threads cost more than the sum)


@register
class Cache(Kind):
    kind = "cache"
    label = "cache"
    colour = "#fdf0d5"

    def __init__(self, sim: Any, name: str, spec: Any):
        self.miss_calls: list[list[Call]] = [[] for _ in sim.classes]
        self.miss_path: list[list[Call]] = [[] for _ in sim.classes]  # calls + miss_calls
        super().__init__(sim, name, spec)
        self.lru: OrderedDict[int, float] | None = OrderedDict() if spec.capacity else None
        self.cap_keys = spec.capacity or 0
        self.ttl = spec.ttl
        self.hit_ratio = spec.hit_ratio
        self._hit_u = uniform_sampler(sim.rng(name, "hits"))
        self.hits = 0
        self.misses = 0
        self.fill_at_warm: int | None = None

    def serve(self, pool: Pool, cls: int, key: int, parent: int):
        lru = self.lru
        if lru is not None:
            filled = lru.get(key)
            hit = filled is not None and (self.ttl is None or self.env._now - filled <= self.ttl)
            if hit:
                lru.move_to_end(key)
        else:
            hit = self._hit_u() < self.hit_ratio
        if hit:
            self.hits += 1
            return self._serve(pool, cls, key, parent, self.calls[cls], self.fwd[cls])  # hands over
        self.misses += 1
        status = yield self._serve(pool, cls, key, parent, self.miss_path[cls], self.fwd[cls])
        if status == OK and lru is not None:
            lru[key] = self.env._now
            lru.move_to_end(key)
            if len(lru) > self.cap_keys:
                lru.popitem(last=False)
        return status

    def call_lists(self, call: Any) -> list[list[Call]]:
        return self.miss_calls if call.on == "miss" else super().call_lists(call)

    def add_call(self, call: Any, target: Kind, pick: Callable) -> None:
        super().add_call(call, target, pick)
        # what a miss does, built once here rather than per request
        self.miss_path = [c + m for c, m in zip(self.calls, self.miss_calls, strict=True)]

    def on_warm(self) -> None:
        super().on_warm()
        self.fill_at_warm = len(self.lru) if self.lru is not None else None

    def flush(self) -> None:
        """Lose every entry (a restart or a flush): the next lookups all miss."""
        if self.lru is not None:
            self.lru.clear()

    # -- statistics
    def counters(self, t: float) -> dict[str, Any]:
        out = super().counters(t)
        out.update(hits=self.hits, misses=self.misses)
        return out

    def window_stats(self, now, then, T, row, pool_rows):
        hits = now["hits"] - then["hits"]
        misses = now["misses"] - then["misses"]
        row["hit_ratio"] = ratio(hits, hits + misses)
        return {}

    def warnings(self) -> list[str]:
        fill = self.fill_at_warm
        if fill is not None and self.cap_keys and fill < 0.95 * self.cap_keys:
            return [f"cache {self.name} held {fill:,} of {self.cap_keys:,} keys at the end of the "
                    "warm-up: its hit ratio was still climbing; lengthen the warm-up for "
                    "steady-state figures"]
        return []

    # -- static capacity model
    @classmethod
    def initial_miss_ratio(cls, spec: Any) -> float | None:
        return 1.0 - (spec.hit_ratio if spec.hit_ratio is not None else 0.0)

    @classmethod
    def split_flows(cls, spec, flows, classes):
        """Che's approximation for an LRU under the key popularity that reaches the cache;
        the keys that miss go on with their own popularity."""
        miss_frac: dict[str, float] = {}
        miss_keys: dict[str, Any] = {}
        if spec.capacity is None:
            for c in classes:
                miss_frac[c] = 1.0 - spec.hit_ratio
            return spec.hit_ratio, miss_frac, miss_keys
        total = Flow()
        for c in classes:
            total.add(flows[c].rate, flows[c].keys)
        if total.keys is None or not total.rate > 0:
            return math.nan, miss_frac, miss_keys
        h, per_key = che_hit_ratio(total.keys / total.keys.sum(), spec.capacity)
        for c in classes:
            f = flows[c]
            if f.keys is None or f.rate <= 0:
                miss_frac[c], miss_keys[c] = 1.0, None
                continue
            hit = per_key[: len(f.keys)]
            if len(hit) < len(f.keys):  # keys the combined flow lost (a rate that underflowed): never cached
                hit = np.concatenate([hit, np.zeros(len(f.keys) - len(hit))])
            mk = f.keys * (1.0 - hit)
            total_keys = f.keys.sum()
            miss_frac[c] = float(mk.sum() / total_keys) if total_keys > 0 else 1.0
            miss_keys[c] = mk if mk.sum() > 0 else None
        return h, miss_frac, miss_keys

    @classmethod
    def capacity_note(cls, spec, hit_ratio, note):
        h = math.nan if hit_ratio is None else hit_ratio
        return (note + "; " if note else "") + f"hit ratio {h:.1%}" + (
            " (Che approximation, ttl ignored)" if spec.capacity is not None and spec.ttl else
            " (Che approximation)" if spec.capacity is not None else " (fixed)")

"""The cache kind: an LRU over request keys (``OrderedDict``) with an optional TTL, or a
fixed hit ratio. A hit makes the cache's ordinary calls; a miss also makes its ``on: miss``
calls and fills the entry once they succeed."""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

import numpy as np
from simpy.events import Event

from ..model.architecture import takes
from ..model.metrics import ratio
from ..model.status import OK
from ..runtime.calls import CALL, Call
from ..runtime.pools import ANY, Pool
from ..runtime.streams import uniform_sampler
from ..runtime.tasks import spawn
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


READ, WRITE_THROUGH, WRITE_AROUND, WRITE_BACK = 0, 1, 2, 3
_POLICIES = {"write_through": WRITE_THROUGH, "write_around": WRITE_AROUND, "write_back": WRITE_BACK}


def owner_of(spec: Any, cache: str, cls: str) -> str | None:
    """The datastore that the ``on: miss`` calls of ``cache`` reach for requests of class
    ``cls`` (through any components in between, breadth first in spec order), or ``None``."""
    comps = spec.components
    frontier = [c.to for c in spec.calls if c.source == cache and c.on == "miss" and takes(c, cls)]
    seen = set(frontier)
    while frontier:
        nxt = []
        for n in frontier:
            if comps[n].kind == "datastore":
                return n
            for c in spec.calls:
                if c.source == n and takes(c, cls) and c.to not in seen:
                    seen.add(c.to)
                    nxt.append(c.to)
        frontier = nxt
    return None


def _commits_writes(store: Any) -> bool:
    """Whether ``store`` commits the versions of the writes it serves itself."""
    return bool(getattr(store, "commits_writes", False))


class _Extras:
    """What an LRU cache keeps beyond its entries when it tracks freshness, has a write
    policy or coalesces misses (built only then: a plain cache runs without it)."""

    def __init__(self, cache: Cache, sim: Any, spec: Any):
        fr = sim.freshness
        wl = sim.spec.workload
        n = len(sim.classes)
        self.policy = _POLICIES.get(spec.write_policy or "", READ)
        self.op = [self.policy if wl.op(c) == "write" and self.policy else READ for c in sim.classes]
        own = cache.name
        # the system of record of each class's keys: the store behind the miss path, or the
        # cache itself (a write-back cache; a cache with no store behind it)
        self.owner = [own if self.policy == WRITE_BACK else (owner_of(sim.spec, own, c) or own)
                      for c in sim.classes]
        self.log = fr.log(own) if fr is not None else None
        self.clock = [fr.clock(o) for o in self.owner] if fr is not None else [None] * n
        # the session guarantees of classes with a session: the owner's book of what each
        # session wrote and read (shared with the store, which records its acknowledged writes)
        reqs = wl.requests
        self.session = [fr is not None and reqs[c].session is not None for c in sim.classes]
        self.books = [fr.session_book(o) for o in self.owner] if fr is not None else [None] * n
        self.fr = fr
        self.own_clock = fr.clock(own) if fr is not None else None
        self.commits = [True] * n  # whether the cache commits a write it passes on (see Cache.start)
        self.ver: dict[int, int] = {}  # the version each entry holds
        self.coalesce = spec.coalesce
        self.inflight: dict[int, Event | None] = {}  # key -> the event its waiters wait on
        self.join_path: list[list[Call]] = [[] for _ in range(n)]
        self.flying = 0  # fetches (misses that run the miss path) in flight now
        self.peak = 0  # ... and their peak since the warm-up
        self.fetches = 0
        self.coalesced = 0
        self.stale_hits = 0
        self.writes = 0
        self.lost = 0
        # write_around's invalidations, write_back's write-backs: (due, key) in due order
        self.delay = (spec.invalidation_delay or 0.0) if self.policy == WRITE_AROUND else (
            spec.write_back_delay if spec.write_back_delay is not None else 1.0)
        self.due: deque[tuple[float, int]] = deque()
        self.wake: Event | None = None
        self.dirty: dict[int, int] = {}  # write_back: writes per key not yet handed to the store
        self.dirty_cls: dict[int, int] = {}  # ... and the class of the write that made it dirty
        self.written: dict[int, int] = {}  # write_back: the version of each key the store holds
        self.epoch = 0  # write_back: losses of the cache's memory so far

    def read(self, cls: int, key: int, seen: int, now: float) -> float:
        """Log a read of ``key`` that returned version ``seen`` (its age, and for a class with
        a session its read-your-writes and monotonic-read verdicts); returns the age."""
        age = self.clock[cls].age(key, seen, now)
        self.log.read(cls, age, now)
        if self.session[cls]:
            book = self.books[cls]
            _, mono = book.check_read(key, seen)
            self.log.session(cls, seen < book.wrote.get(key, 0), mono, now)
        return age


def _che_with_writes(reads: np.ndarray, writes: np.ndarray, capacity: int, refresh: bool
                     ) -> tuple[float, np.ndarray]:
    """Che's approximation for an LRU whose keys are also written: ``reads`` and ``writes``
    are rates per key; a write refreshes the entry (``refresh``: write-through) or deletes it
    (write-around). Returns the read hit ratio and each key's read hit probability; the
    characteristic time T solves occupancy = ``capacity`` by bisection in log T."""
    from scipy.optimize import brentq

    n = max(len(reads), len(writes))
    r = np.zeros(n)
    r[: len(reads)] = reads
    w = np.zeros(n)
    w[: len(writes)] = writes
    a = r + w
    live = a > 0
    share = np.divide(r if not refresh else a, a, out=np.zeros(n), where=live)  # P(last request refills)
    if int(np.count_nonzero(share > 0)) <= capacity:
        per_key = share * live
    else:
        def occupancy(u: float) -> float:
            return float((share * -np.expm1(-a * math.exp(u))).sum()) - capacity
        lo, hi = math.log(capacity / a.sum()), math.log(capacity / a[live].min()) + 60.0
        u = brentq(occupancy, lo, hi, xtol=1e-12)
        per_key = share * -np.expm1(-a * math.exp(u))
    h = float((r * per_key).sum() / r.sum()) if r.sum() > 0 else math.nan
    return h, per_key


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
        # freshness, write policies, coalescing: another request path, chosen here (a cache
        # without them runs the plain one below)
        self.x: _Extras | None = None
        if self.lru is not None and (sim.freshness is not None or spec.write_policy is not None
                                     or spec.coalesce):
            self.x = _Extras(self, sim, spec)
            self.serve = self._serve_x  # type: ignore[method-assign]  (callers bind it at wiring)

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
        if self.x is not None:  # a miss that waits for the fetch of its key in flight
            join = Call(1.0, None, None, CALL, self._join, _any, None)
            self.x.join_path = [c + [join] for c in self.calls]

    def start(self) -> None:
        super().start()
        x = self.x
        if x is None:
            return
        # a write passed on to a store that commits its writes itself is not committed again
        # by the cache: a store says so with ``commits_writes``
        for c, owner in enumerate(x.owner):
            x.commits[c] = owner != self.name and not _commits_writes(self.sim.components.get(owner))
        if x.policy in (WRITE_BACK, WRITE_AROUND) and x.delay > 0:
            spawn(self.env, self._due_loop())

    # -- the request path with freshness, write policies or coalescing
    def _serve_x(self, pool: Pool, cls: int, key: int, parent: int):
        x = self.x
        op = x.op[cls]
        if op != READ:
            return self._write_back(pool, cls, key, parent) if op == WRITE_BACK else \
                self._write(pool, cls, key, parent, op)
        lru = self.lru
        now = self.env._now
        filled = lru.get(key)
        if filled is not None and (self.ttl is None or now - filled <= self.ttl):
            lru.move_to_end(key)
            self.hits += 1
            if x.log is not None and x.read(cls, key, x.ver.get(key, 0), now) > 0.0:
                x.stale_hits += 1
            return self._serve(pool, cls, key, parent, self.calls[cls], self.fwd[cls])  # hands over
        self.misses += 1
        if x.coalesce and key in x.inflight:  # a fetch of this key is in flight: wait for it
            return self._serve(pool, cls, key, parent, x.join_path[cls], self.fwd[cls])
        return self._miss(pool, cls, key, parent)

    def _miss(self, pool: Pool, cls: int, key: int, parent: int):
        """A miss that fetches: the miss path, then the entry is filled with the version the
        store returned."""
        x = self.x
        x.fetches += 1
        x.flying += 1
        if x.flying > x.peak:
            x.peak = x.flying
        if x.coalesce:
            x.inflight[key] = None
        status = yield self._serve(pool, cls, key, parent, self.miss_path[cls], self.fwd[cls])
        x.flying -= 1
        if status == OK:
            self._filled(cls, key)
        if x.coalesce:
            ev = x.inflight.pop(key, None)
            if ev is not None:
                ev.succeed(status)
        return status

    def _filled(self, cls: int, key: int) -> None:
        """Fill the entry of ``key`` now with what the miss path just returned (a read)."""
        x = self.x
        now = self.env._now
        if x.fr is not None:
            owner = x.owner[cls]
            if x.policy == WRITE_BACK:  # the store holds what was written back to it
                seen = x.written.get(key, 0)
            else:
                seen = x.fr.returned(owner, key)
            x.ver[key] = seen
            x.read(cls, key, seen, now)
        self._put(key, now)

    def _put(self, key: int, now: float) -> None:
        lru = self.lru
        lru[key] = now
        lru.move_to_end(key)
        if len(lru) > self.cap_keys:
            old, _ = lru.popitem(last=False)
            self.x.ver.pop(old, None)

    def _join(self, inst: Any, cls: int, key: int, parent: int):
        """A coalesced miss, after its own service at the cache: wait for the fetch of its key
        and take its result; if that fetch has ended by now, read the entry it filled, or
        (none: the fetch failed, or the entry is gone) fetch."""
        x = self.x
        if key in x.inflight:
            ev = x.inflight[key]
            if ev is None:
                ev = x.inflight[key] = Event(self.env)
            x.coalesced += 1
            status = yield ev
            if status == OK and x.log is not None:
                now = self.env._now
                x.read(cls, key, x.ver.get(key, 0), now)
            return status
        now = self.env._now
        filled = self.lru.get(key)
        if filled is not None and (self.ttl is None or now - filled <= self.ttl):
            x.coalesced += 1
            if x.log is not None:
                x.read(cls, key, x.ver.get(key, 0), now)
            return OK
        x.fetches += 1
        x.flying += 1
        if x.flying > x.peak:
            x.peak = x.flying
        x.inflight[key] = None
        status = yield self._sequence(self.miss_calls[cls], cls, key, parent)
        x.flying -= 1
        if status == OK:
            self._filled(cls, key)
        ev = x.inflight.pop(key, None)
        if ev is not None:
            ev.succeed(status)
        return status

    def _write(self, pool: Pool, cls: int, key: int, parent: int, op: int):
        """A write through the cache to the store (its miss path); then write_through puts
        the new version in the entry, write_around deletes the entry (after the delay)."""
        x = self.x
        x.writes += 1
        status = yield self._serve(pool, cls, key, parent, self.miss_path[cls], self.fwd[cls])
        if status != OK:
            return status
        now = self.env._now
        if x.fr is not None:
            clock = x.clock[cls]
            if x.commits[cls]:  # (a store that commits its writes records its sessions' too)
                v = clock.commit(key, now)
                if x.session[cls]:
                    x.books[cls].wrote_version(key, v)
            else:
                v = clock.version(key)
        else:
            v = 0
        if op == WRITE_THROUGH:
            x.ver[key] = v
            self._put(key, now)
        elif x.delay > 0:
            self._later(now, key)
        else:
            self._drop(key)
        return status

    def _write_back(self, pool: Pool, cls: int, key: int, parent: int):
        """A write to a write-back cache: acknowledged once the cache has it (a new version
        in its own clock); the store gets it ``write_back_delay`` later."""
        x = self.x
        x.writes += 1
        status = yield self._serve(pool, cls, key, parent, self.calls[cls], self.fwd[cls])
        if status != OK:
            return status
        now = self.env._now
        x.ver[key] = x.own_clock.commit(key, now) if x.own_clock is not None else 0
        if x.session[cls]:
            x.books[cls].wrote_version(key, x.ver[key])
        self._put(key, now)
        n = x.dirty.get(key, 0)
        x.dirty[key] = n + 1
        if not n:
            x.dirty_cls[key] = cls
            self._later(now, key)
        return status

    def _later(self, now: float, key: int) -> None:
        x = self.x
        x.due.append((now + x.delay, key))
        if x.wake is not None:
            ev, x.wake = x.wake, None
            ev.succeed()

    def _due_loop(self):
        """The invalidations (write_around) or write-backs (write_back) that fall due, in
        order (the delay is the same for all)."""
        x = self.x
        env = self.env
        due = x.due
        while True:
            if not due:
                x.wake = Event(env)
                yield x.wake
                continue
            t, key = due[0]
            if t > env._now:
                yield t - env._now
                continue
            due.popleft()
            if x.policy == WRITE_AROUND:
                self._drop(key)
            else:
                n = x.dirty.pop(key, 0)
                if n:
                    spawn(env, self._store_write(x.dirty_cls.pop(key), key, n))

    def _drop(self, key: int) -> None:
        if self.lru.pop(key, None) is not None:
            self.x.ver.pop(key, None)

    def _store_write(self, cls: int, key: int, n: int):
        """Write ``key`` back to the store (``n`` acknowledged writes go with it): the write
        class's miss calls, made by the cache itself. A failed write-back makes the key dirty
        again, unless the cache lost its memory meanwhile (the writes are then lost)."""
        x = self.x
        epoch = x.epoch
        version = x.own_clock.version(key) if x.own_clock is not None else 0
        status = yield self._sequence(self.miss_calls[cls], cls, key, -1)
        if status == OK:
            if version > x.written.get(key, 0):
                x.written[key] = version
        elif x.epoch != epoch:
            self._count_lost(n)
        else:
            m = x.dirty.get(key, 0)
            x.dirty[key] = m + n
            if not m:
                x.dirty_cls[key] = cls
                self._later(self.env._now, key)

    def _count_lost(self, n: int) -> None:
        x = self.x
        if self.env._now < self.warm:
            return
        x.lost += n
        if x.log is not None:
            x.log.lost_writes += n

    def _lose(self) -> None:
        """The cache's memory is gone (a flush, a crash of every instance): with write_back,
        so are the writes not yet handed to the store."""
        x = self.x
        x.ver.clear()
        if x.policy == WRITE_BACK:
            self._count_lost(sum(x.dirty.values()))
            x.dirty.clear()
            x.dirty_cls.clear()
            x.epoch += 1

    def on_warm(self) -> None:
        super().on_warm()
        self.fill_at_warm = len(self.lru) if self.lru is not None else None
        if self.x is not None:
            self.x.peak = self.x.flying

    def flush(self) -> None:
        """Lose every entry (a restart or a flush): the next lookups all miss; a write-back
        cache also loses the writes it has not handed to the store."""
        if self.lru is not None:
            self.lru.clear()
        if self.x is not None:
            self._lose()

    def crash(self, pools: list[Pool], hang: bool) -> None:
        super().crash(pools, hang)
        x = self.x
        if x is not None and x.policy == WRITE_BACK and all(p.down for p in self.pools):
            self.lru.clear()  # a write-back cache's crash loses its memory
            self._lose()

    # -- statistics
    def counters(self, t: float) -> dict[str, Any]:
        out = super().counters(t)
        out.update(hits=self.hits, misses=self.misses)
        x = self.x
        if x is not None:
            out.update(fetches=x.fetches, coalesced=x.coalesced, stale_hits=x.stale_hits,
                       writes=x.writes, lost_writes=x.lost, peak_fetches=x.peak)
        return out

    def window_stats(self, now, then, T, row, pool_rows):
        hits = now["hits"] - then["hits"]
        misses = now["misses"] - then["misses"]
        row["hit_ratio"] = ratio(hits, hits + misses)
        if self.x is not None:
            for k in ("fetches", "coalesced", "writes", "lost_writes"):
                row[k] = now[k] - then[k]
            row["peak_fetches"] = now["peak_fetches"]
            if self.x.log is not None:
                stale = now["stale_hits"] - then["stale_hits"]
                row["stale_hits"] = stale
                row["stale_hit_share"] = ratio(stale, hits)
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
    def split_flows(cls, spec, flows, classes, workload=None):
        """Che's approximation for an LRU under the key popularity that reaches the cache;
        the keys that miss go on with their own popularity.

        With a ``write_policy`` (and the ``workload``, to tell writes from reads) writes are
        not lookups: every write goes on to the store (``write_back``: at most once per write,
        an upper bound). ``write_through`` refreshes a key's entry on each write, so a read
        hits when the key's last request of either kind is within the characteristic time
        T; ``write_around`` deletes it, so a read hits when the key's last request was a read
        within T: with reads at rate r_i and writes at w_i, ``r_i / (r_i + w_i) * (1 - exp(-(r_i
        + w_i) T))``, and T solves the same sum for the cache's occupancy (the invalidation
        delay is ignored)."""
        miss_frac: dict[str, float] = {}
        miss_keys: dict[str, Any] = {}
        if spec.capacity is None:
            for c in classes:
                miss_frac[c] = 1.0 - spec.hit_ratio
            return spec.hit_ratio, miss_frac, miss_keys
        writes = set()
        if spec.write_policy is not None and workload is not None:
            writes = {c for c in classes if workload.op(c) == "write"}
        total, written = Flow(), Flow()
        for c in classes:
            (written if c in writes else total).add(flows[c].rate, flows[c].keys)
        for c in writes:
            miss_frac[c], miss_keys[c] = 1.0, flows[c].keys
        if total.keys is None or not total.rate > 0:
            return math.nan, miss_frac, miss_keys
        if written.keys is None or spec.write_policy == "write_back":
            h, per_key = che_hit_ratio(total.keys / total.keys.sum(), spec.capacity)
        else:
            h, per_key = _che_with_writes(total.keys, written.keys, spec.capacity,
                                          spec.write_policy == "write_through")
        for c in classes:
            if c in writes:
                continue
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


def _any() -> Pool:
    return ANY

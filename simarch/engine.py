"""The simulation engine: an :class:`Architecture` becomes SimPy processes and resources.

Data flow: validated spec -> one runtime object per component (worker pools, caches, shards,
brokers) -> one SimPy process per request, walking the call graph with ``yield from`` ->
columnar records (``array`` of floats and codes) -> :class:`~simarch.result.Result`.

Hot-path rules: no pandas, no dict or object per request. A request is ``(cls, key)``: two
ints carried as generator arguments. Random numbers are drawn in numpy batches from streams
spawned per component and purpose (see :func:`stream`), so adding a component does not change
the numbers another one sees, and two designs that share a workload share their arrivals.

Each instance's workers are a :class:`Pool`, a minimal SimPy resource: a free worker is taken
without scheduling any event; a waiting request waits on one ``simpy.Event`` that the releasing
request triggers, handing its worker over (FIFO). Pools keep their own time-weighted
statistics as running sums, so utilisation and queue length cost two additions per change.
"""

from __future__ import annotations

import itertools
import math
import zlib
from array import array
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

import numpy as np
import simpy
from simpy.events import Event

from .architecture import Architecture, classes_reaching
from .dists import Exponential, sampler
from .keys import key_sampler, shard_of_keys
from .resilience import Resilience
from .spec import (
    CacheSpec,
    CallSpec,
    DatastoreSpec,
    LoadBalancerSpec,
    QueueSpec,
    ServiceSpec,
    Spec,
)

# request outcome codes, in records and between components
OK, REJECTED, TIMEOUT, FAILED = 0, 1, 2, 3
STATUS_NAMES = ("ok", "rejected", "timeout", "failed")
CALL, FORWARD, ASYNC = 0, 1, 2
_MODES = {"call": CALL, "forward": FORWARD, "async": ASYNC}
INF = math.inf


def stream(seed: int | np.random.SeedSequence, *tags: str | int) -> np.random.Generator:
    """An independent random stream for ``tags`` (e.g. ``("api", "service_time", "read")``).

    Streams are keyed by name, not by creation order: the same seed and tags give the same
    numbers in any design that has them. No global random state is used anywhere.
    """
    if isinstance(seed, np.random.SeedSequence):
        entropy, prefix = seed.entropy, tuple(seed.spawn_key)
    else:
        entropy, prefix = int(seed), ()
    key = tuple(t if isinstance(t, int) else zlib.crc32(str(t).encode()) for t in tags)
    return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=prefix + key))


def uniform_sampler(rng: np.random.Generator, batch: int = 4096) -> Callable[[], float]:
    def gen():
        while True:
            yield from rng.random(batch).tolist()
    return gen().__next__


# ---------------------------------------------------------------------------- pools


class Pool:
    """The workers of one instance (or replica): ``cap`` slots and a FIFO wait queue.

    Time-weighted levels are kept as sums of start and end times: the busy-worker area up to
    ``t`` is ``s_end + n*t - s_start`` (the same for the wait queue with ``q_*``).
    """

    __slots__ = ("name", "cap", "workers", "qlimit", "n", "waiters", "s_start", "s_end", "q_start",
                 "q_end", "q_max", "done", "rejected", "down", "hang", "epoch", "x_start",
                 "x_end", "refused", "zone")

    def __init__(self, name: str, cap: float, qlimit: float, zone: str | None = None):
        self.name = name
        self.cap = cap
        self.workers = cap  # configured workers; ``cap`` drops while workers are lost
        self.qlimit = qlimit
        self.zone = zone
        self.n = 0
        self.waiters: deque[Event] = deque()
        self.s_start = self.s_end = 0.0
        self.q_start = self.q_end = 0.0
        self.q_max = 0
        self.done = 0
        self.rejected = 0
        self.down = 0  # > 0 while crashed (a count: faults may overlap)
        self.hang = False  # calls to a dead instance hang instead of failing fast
        self.epoch = 0  # bumped at each crash: work begun before it fails
        self.x_start = self.x_end = 0.0  # down-time sums, like s_start/s_end
        self.refused = 0

    def down_area(self, t: float) -> float:
        return self.x_end + (t if self.down else 0.0) - self.x_start

    def load(self) -> int:
        return self.n + len(self.waiters)

    def busy_area(self, t: float) -> float:
        return self.s_end + self.n * t - self.s_start

    def queue_area(self, t: float) -> float:
        return self.q_end + len(self.waiters) * t - self.q_start

    def counters(self, t: float) -> tuple[float, float, int, int, float]:
        return (self.busy_area(t), self.queue_area(t), self.done, self.rejected, self.down_area(t))

    # -- faults
    def crash(self, now: float, hang: bool) -> None:
        """The instance dies: waiting requests fail now, work in progress fails when it ends."""
        if not self.down:
            self.x_start += now
        self.down += 1
        self.hang = hang
        self.epoch += 1
        w = self.waiters
        if w:
            self.q_end += now * len(w)
            for ev in w:
                ev.succeed(True)
            w.clear()

    def recover(self, now: float) -> None:
        self.down -= 1
        if not self.down:
            self.x_end += now

    def set_workers(self, cap: float, now: float) -> None:
        """Change the usable workers (worker loss); freed slots go to waiting requests."""
        self.cap = cap
        w = self.waiters
        while w and self.n < self.cap:
            self.n += 1
            self.s_start += now
            self.q_end += now
            w.popleft().succeed()


ANY = Pool("any", INF, INF)  # "the callee chooses": datastores and queues route internally


def least_loaded(pools: list[Pool], start: int) -> Pool:
    """The pool with the fewest requests (in service and waiting), scanning from ``start``."""
    k = len(pools)
    best = pools[start]
    best_load = best.n + len(best.waiters)
    for j in range(1, k):
        p = pools[(start + j) % k]
        load = p.n + len(p.waiters)
        if load < best_load:
            best, best_load = p, load
    return best


def make_live_picker(policy: str, live: list[Pool], rng: np.random.Generator) -> Callable[[], Pool | None]:
    """Like :func:`make_picker` over a list that changes (instances in rotation); ``None``
    when no instance is in rotation."""
    count = itertools.count().__next__
    u = uniform_sampler(rng)

    def pick() -> Pool | None:
        k = len(live)
        if k == 0:
            return None
        if k == 1:
            return live[0]
        if policy == "round_robin":
            return live[count() % k]
        if policy == "random":
            return live[int(u() * k)]
        if policy == "power_of_two_choices":
            i = int(u() * k)
            j = int(u() * (k - 1))
            j += j >= i
            p, q = live[i], live[j]
            return p if p.n + len(p.waiters) <= q.n + len(q.waiters) else q
        return least_loaded(live, count() % k)
    return pick


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
            return p if p.n + len(p.waiters) <= q.n + len(q.waiters) else q
        return p2c
    raise ValueError(f"unknown policy {policy!r}")


# ---------------------------------------------------------------------------- components


class Link:
    """The network between two components, as faults see it: partitions and message loss."""

    __slots__ = ("cut", "loss", "hang", "_u")

    def __init__(self, u: Callable[[], float]):
        self.cut = 0  # > 0 while partitioned
        self.loss = 0.0
        self.hang = True
        self._u = u

    def drops(self) -> bool:
        return self.cut > 0 or (self.loss > 0.0 and self._u() < self.loss)


class Component:
    """Runtime of one node: its pools, service-time samplers and outgoing calls per class.

    A call is a tuple ``(probability, latency, timeout, mode, serve, pick, link)``: ``serve``
    is the callee's request generator (or a :class:`Resilience` wrapper's), ``pick`` chooses
    the callee's instance, ``link`` is the network state when faults can touch it.
    """

    def __init__(self, sim: Simulation, name: str, spec: Any):
        self.sim = sim
        self.env = sim.env
        self.name = name
        self.spec = spec
        self.kind: str = spec.kind
        self.warm = sim.warmup
        self.lat = array("f")  # per-visit residence time (s), visits that began after warm-up
        self.arrived = 0
        self.extra = 0  # visits that were retries or hedges (amplification)
        n_cls = len(sim.classes)
        self.st: list[Callable[[], float] | None] = [None] * n_cls
        reach = sim.reach[name]
        for c, cls in enumerate(sim.classes):
            if cls in reach:
                dist = spec.service_time.lookup(cls, sim.spec.workload.op(cls))
                self.st[c] = sampler(dist, sim.rng(name, "service_time", cls))
        self.calls: list[list[tuple]] = [[] for _ in range(n_cls)]
        self.fwd: list[list[tuple]] = [[] for _ in range(n_cls)]
        self.pools: list[Pool] = self.make_pools()
        self.parallel = spec.fanout == "parallel"
        self._u = uniform_sampler(sim.rng(name, "calls"))
        # degradation faults
        self.slow: list[tuple[float, Callable[[], float] | None]] = []
        self.err_p = 0.0
        self._err_u = uniform_sampler(sim.rng(name, "errors"))

    # -- construction
    def make_pools(self) -> list[Pool]:
        workers = getattr(self.spec, "workers", None)
        if self.kind == "load_balancer":
            workers = self.spec.connections
        queue = getattr(self.spec, "queue", None)
        cap = INF if workers is None else workers
        qlimit = INF if queue is None else queue
        n = self.spec.instances
        return [Pool(f"{self.name}[{i}]" if n > 1 else self.name, cap, qlimit, self.spec.zone_of(i))
                for i in range(n)]

    @property
    def capacity(self) -> float:
        return sum(p.workers for p in self.pools)

    def picker(self, policy: str | None = None, tag: str | int = "") -> Callable[[], Pool | None]:
        """The instance chooser for one caller (``tag`` names it, so that random choices of
        different callers come from different streams)."""
        policy = policy or self.spec.policy
        return make_picker(policy, self.pools, self.sim.rng(self.name, "route", policy, tag))

    def add_call(self, call: CallSpec, target: Component, pick: Callable, miss: bool = False) -> None:
        sim = self.sim
        lat = sampler(call.latency, sim.rng(self.name, call.to, "latency")) if call.latency else None
        link = sim.link(self.name, call.to)
        if call.resilient:
            fb = None
            if call.fallback is not None:
                fbc = sim.components[call.fallback]
                fb = (fbc.serve, fbc.picker(None, f"{self.name}-fallback"), sim.link(self.name, call.fallback))
            res = Resilience(self, call, target, pick, lat, link, fb)
            sim.resilience.append(res)
            entry = (call.probability, None, None, CALL, res.call, itertools.repeat(ANY).__next__, None)
        else:
            entry = (call.probability, lat, call.timeout, _MODES[call.mode], target.serve, pick, link)
        for c, cls in enumerate(sim.classes):
            if call.requests is None or cls in call.requests:
                lists = self.fwd if call.mode == "forward" else self.miss_calls if miss else self.calls
                lists[c].append(entry)

    # -- the request path
    def serve(self, pool: Pool, cls: int, key: int):
        return self._serve(pool, cls, key, self.calls[cls], self.fwd[cls])

    def _serve(self, pool: Pool, cls: int, key: int, calls: list, fwd: list, record: bool = True):
        """Queue for a worker of ``pool``, hold it for the service time and the synchronous
        calls, release it, then make the ``forward`` calls. Returns a status code."""
        env = self.env
        t0 = env._now
        if record:
            self.arrived += 1
        if pool.down:
            pool.refused += 1
            if pool.hang:
                yield Event(env)  # never answers: only the caller's timeout ends the wait
            return FAILED
        if pool.n < pool.cap:
            pool.n += 1
            pool.s_start += t0
        else:
            w = pool.waiters
            if len(w) >= pool.qlimit:
                pool.rejected += 1
                return REJECTED
            ev = Event(env)
            w.append(ev)
            pool.q_start += t0
            if len(w) > pool.q_max:
                pool.q_max = len(w)
            if (yield ev):  # the instance crashed while we waited
                return FAILED
        epoch = pool.epoch
        st = self.st[cls]()
        if self.slow:
            for factor, add in self.slow:
                st = st * factor + (add() if add is not None else 0.0)
        yield env.timeout(st)
        status = OK
        if calls:
            if self.parallel:
                status = yield from self._parallel(calls, cls, key)
            else:
                status = yield from self._sequence(calls, cls, key)
        now = env._now
        pool.s_end += now
        pool.done += 1
        w = pool.waiters
        if w and pool.n <= pool.cap:
            pool.q_end += now
            pool.s_start += now
            w.popleft().succeed()
        else:
            pool.n -= 1
        if pool.epoch != epoch:
            status = FAILED  # the instance crashed during the work
        elif self.err_p and status == OK and self._err_u() < self.err_p:
            status = FAILED
        if record and t0 >= self.warm:
            self.lat.append(now - t0)
        if fwd and status == OK:
            status = yield from self._sequence(fwd, cls, key)
        return status

    def _sequence(self, calls: list, cls: int, key: int):
        env = self.env
        for prob, lat, timeout, mode, serve, pick, link in calls:
            if prob < 1.0 and self._u() >= prob:
                continue
            if mode == ASYNC:
                env.process(self._one(lat, timeout, serve, pick, cls, key, link))
                continue
            if timeout is None and link is None:
                if lat is not None:
                    yield env.timeout(lat())
                inst = pick()
                if inst is None:
                    return FAILED  # no instance in rotation
                status = yield from serve(inst, cls, key)
            else:  # the caller's timeout covers the network too
                status = yield from self._one(lat, timeout, serve, pick, cls, key, link)
            if status:
                return status
        return OK

    def _parallel(self, calls: list, cls: int, key: int):
        env = self.env
        procs = []
        for prob, lat, timeout, mode, serve, pick, link in calls:
            if prob < 1.0 and self._u() >= prob:
                continue
            p = env.process(self._one(lat, timeout, serve, pick, cls, key, link))
            if mode != ASYNC:
                procs.append(p)
        if not procs:
            return OK
        yield env.all_of(procs)
        for p in procs:
            if p.value:
                return p.value
        return OK

    def _one(self, lat, timeout, serve, pick, cls, key, link=None, extra=None):
        """One call: the network (latency, partitions, loss), then the callee; under
        ``timeout`` if given. ``extra`` is the callee when this call is a retry or a hedge
        (counted when it reaches the callee, for the amplification figures)."""
        if timeout is not None:
            return (yield from self._timed(self._one(lat, None, serve, pick, cls, key, link, extra),
                                           timeout))
        if lat is not None:
            yield self.env.timeout(lat())
        if link is not None and link.drops():
            if link.hang:
                yield Event(self.env)  # lost: no answer ever comes
            return FAILED
        inst = pick()
        if inst is None:
            return FAILED
        if extra is not None:
            extra.extra += 1
        return (yield from serve(inst, cls, key))

    def _timed(self, gen, timeout: float):
        env = self.env
        proc = env.process(gen)
        yield proc | env.timeout(timeout)
        if proc.triggered:
            return proc.value
        return TIMEOUT

    # -- faults
    def pools_for(self, fault: Any) -> list[Pool]:
        """The pools a crash fault takes down."""
        n = getattr(fault, "instances", None)
        return self.pools[:n] if n else list(self.pools)

    def crash(self, pools: list[Pool], hang: bool) -> None:
        now = self.env.now
        for p in pools:
            p.crash(now, hang)

    def recover(self, pools: list[Pool]) -> None:
        now = self.env.now
        for p in pools:
            p.recover(now)

    # -- statistics
    def counters(self, t: float) -> dict[str, Any]:
        return {"arrived": self.arrived, "extra": self.extra, "pools": [p.counters(t) for p in self.pools]}

    def on_warm(self) -> None:
        for p in self.pools:
            p.q_max = len(p.waiters)


class TokenBucket:
    """Admission control: ``rate`` tokens per second, at most ``burst`` banked."""

    __slots__ = ("rate", "burst", "tokens", "last")

    def __init__(self, rate: float, burst: float):
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.last = 0.0

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class ServiceRuntime(Component):
    """A service tier; with ``rate_limit`` it sheds what exceeds its admission rate."""

    def __init__(self, sim: Simulation, name: str, spec: ServiceSpec):
        super().__init__(sim, name, spec)
        rl = spec.rate_limit
        self.bucket = TokenBucket(rl.rate, rl.burst) if rl is not None else None
        self.shed = 0

    def serve(self, pool: Pool, cls: int, key: int):
        if self.bucket is not None and not self.bucket.take(self.env._now):
            return self._shed()
        return self._serve(pool, cls, key, self.calls[cls], self.fwd[cls])

    def _shed(self):
        self.arrived += 1
        self.shed += 1
        return REJECTED
        yield  # a generator, like every request path

    def counters(self, t: float) -> dict[str, Any]:
        out = super().counters(t)
        out["shed"] = self.shed
        return out


class LoadBalancerRuntime(Component):
    """A load balancer; with ``health_check`` it takes dead instances out of rotation once
    the checks notice them, and puts them back once they pass again."""

    def live_picker(self, target: Component) -> Callable[[], Pool | None]:
        live = list(target.pools)
        pick = make_live_picker(self.spec.policy, live,
                                self.sim.rng(target.name, "route", self.spec.policy, self.name))
        self.env.process(self._health_checks(target.pools, live))
        return pick

    def _health_checks(self, pools: list[Pool], live: list[Pool]):
        hc = self.spec.health_check
        env = self.env
        in_rotation = [True] * len(pools)
        fails = [0] * len(pools)
        oks = [0] * len(pools)
        # checks start at a random phase of the interval, as independent checkers do
        yield env.timeout(self.sim.uniform(self.name, "health", pools[0].name)() * hc.interval)
        while True:
            changed = False
            for i, p in enumerate(pools):
                if p.down:
                    fails[i] += 1
                    oks[i] = 0
                    if in_rotation[i] and fails[i] >= hc.unhealthy_after:
                        in_rotation[i] = False
                        changed = True
                else:
                    oks[i] += 1
                    fails[i] = 0
                    if not in_rotation[i] and oks[i] >= hc.healthy_after:
                        in_rotation[i] = True
                        changed = True
            if changed:
                live[:] = [p for p, ok in zip(pools, in_rotation, strict=True) if ok]
            yield env.timeout(hc.interval)


class CacheRuntime(Component):
    """LRU over request keys (``OrderedDict``), or a fixed hit ratio."""

    def __init__(self, sim: Simulation, name: str, spec: CacheSpec):
        self.miss_calls: list[list[tuple]] = [[] for _ in sim.classes]
        self.miss_path: list[list[tuple]] = [[] for _ in sim.classes]  # calls + miss_calls
        super().__init__(sim, name, spec)
        self.lru: OrderedDict[int, float] | None = OrderedDict() if spec.capacity else None
        self.cap_keys = spec.capacity or 0
        self.ttl = spec.ttl
        self.hit_ratio = spec.hit_ratio
        self._hit_u = uniform_sampler(sim.rng(name, "hits"))
        self.hits = 0
        self.misses = 0
        self.fill_at_warm: int | None = None

    def serve(self, pool: Pool, cls: int, key: int):
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
            return (yield from self._serve(pool, cls, key, self.calls[cls], self.fwd[cls]))
        self.misses += 1
        status = yield from self._serve(pool, cls, key, self.miss_path[cls], self.fwd[cls])
        if status == OK and lru is not None:
            lru[key] = self.env._now
            lru.move_to_end(key)
            if len(lru) > self.cap_keys:
                lru.popitem(last=False)
        return status

    def add_call(self, call: CallSpec, target: Component, pick: Callable, miss: bool = False) -> None:
        super().add_call(call, target, pick, miss)
        # what a miss does, built once here rather than per request
        self.miss_path = [c + m for c, m in zip(self.calls, self.miss_calls, strict=True)]

    def on_warm(self) -> None:
        super().on_warm()
        self.fill_at_warm = len(self.lru) if self.lru is not None else None

    def flush(self) -> None:
        """Lose every entry (a restart or a flush): the next lookups all miss."""
        if self.lru is not None:
            self.lru.clear()

    def counters(self, t: float) -> dict[str, Any]:
        out = super().counters(t)
        out.update(hits=self.hits, misses=self.misses)
        return out


class DatastoreRuntime(Component):
    """Shards on a consistent-hash ring; each shard a list of replica pools, replica 0 primary."""

    def __init__(self, sim: Simulation, name: str, spec: DatastoreSpec):
        super().__init__(sim, name, spec)
        self.shards = spec.shards
        self.replicas: list[list[Pool]] = [
            self.pools[s * spec.replicas:(s + 1) * spec.replicas] for s in range(spec.shards)]
        n_keys = max((rc.keys.count for rc in sim.spec.workload.requests.values() if rc.keys), default=0)
        self.shard_of = array("i", shard_of_keys(n_keys, spec.shards, spec.vnodes).tolist())
        self.shard_load = [0] * spec.shards
        shard_rng = sim.rng(name, "shard")

        def random_shards():
            while True:
                yield from shard_rng.integers(0, spec.shards, size=4096).tolist()
        self._rand_shard = random_shards().__next__
        self.is_write = [sim.spec.workload.op(c) == "write" for c in sim.classes]
        # the cluster's view: the primary of each shard and the replicas it knows are alive
        self.primary: list[Pool] = [reps[0] for reps in self.replicas]
        self.members: list[list[Pool]] = [list(reps) for reps in self.replicas]
        self.readable: list[list[Pool]] = [
            m if spec.read_from == "any" else [self.primary[s]] for s, m in enumerate(self.members)]
        self.read_pick = [make_live_picker(spec.policy, self.readable[s], sim.rng(name, "replica", s))
                          for s in range(spec.shards)]
        self.sync = spec.replication == "sync"
        self._no_calls: list = []
        self.failovers: list[tuple[float, int, str, str]] = []  # (time, shard, old, new primary)

    def make_pools(self) -> list[Pool]:
        s = self.spec
        qlimit = INF if s.queue is None else s.queue
        return [Pool(f"{self.name}.shard{i}.replica{r}", s.workers, qlimit, s.zone_of(r))
                for i in range(s.shards) for r in range(s.replicas)]

    def picker(self, policy: str | None = None, tag: str | int = "") -> Callable[[], Pool]:
        return itertools.repeat(ANY).__next__

    def serve(self, pool: Pool | None, cls: int, key: int):
        if key >= 0:
            shard = self.shard_of[key] if self.shards > 1 else 0
        else:
            shard = self._rand_shard() if self.shards > 1 else 0
        self.shard_load[shard] += 1
        if self.is_write[cls]:
            primary = self.primary[shard]
            status = yield from self._serve(primary, cls, key, self.calls[cls], self.fwd[cls])
            members = self.members[shard]
            if status == OK and len(members) > 1:
                env = self.env
                procs = [env.process(self._serve(r, cls, key, self._no_calls, self._no_calls, False))
                         for r in members if r is not primary]
                if self.sync:
                    yield env.all_of(procs)
                    for p in procs:
                        if p.value:
                            return p.value
            return status
        replica = self.read_pick[shard]()
        if replica is None:
            self.arrived += 1
            return FAILED  # no live copy of this shard
        return (yield from self._serve(replica, cls, key, self.calls[cls], self.fwd[cls]))

    # -- faults and failover
    def pools_for(self, fault: Any) -> list[Pool]:
        shard = getattr(fault, "shard", None)
        if shard is not None:
            replica = getattr(fault, "replica", None)
            return [self.replicas[shard][replica]] if replica is not None else list(self.replicas[shard])
        return super().pools_for(fault)

    def crash(self, pools: list[Pool], hang: bool) -> None:
        super().crash(pools, hang)
        for p in pools:
            if self.spec.failover is not None and p.down == 1:
                self.env.process(self._failover(p, p.epoch))

    def _shard(self, pool: Pool) -> int:
        return self.pools.index(pool) // self.spec.replicas

    def _failover(self, pool: Pool, epoch: int):
        """After the failover time, a still-dead copy leaves the cluster; a dead primary is
        replaced by the first live replica (writes to the shard fail until then)."""
        yield self.env.timeout(self.spec.failover)
        if not pool.down or pool.epoch != epoch:
            return
        s = self._shard(pool)
        members = self.members[s]
        if pool in members:
            members.remove(pool)
        if self.primary[s] is pool:
            live = [p for p in members if not p.down]
            if live:
                self.primary[s] = live[0]
                self.failovers.append((self.env.now, s, pool.name, live[0].name))
                if self.spec.read_from == "primary":
                    self.readable[s][:] = [live[0]]

    def recover(self, pools: list[Pool]) -> None:
        super().recover(pools)
        for p in pools:
            if p.down:
                continue
            s = self._shard(p)
            if p not in self.members[s]:
                self.members[s].append(p)  # rejoins as a replica
                if self.primary[s].down and self.primary[s] not in self.members[s]:
                    self.primary[s] = p  # the shard had no live primary: this copy takes over
                    self.failovers.append((self.env.now, s, "-", p.name))
                    if self.spec.read_from == "primary":
                        self.readable[s][:] = [p]

    def counters(self, t: float) -> dict[str, Any]:
        out = super().counters(t)
        out["shard_load"] = list(self.shard_load)
        return out


class Backlog:
    """The messages waiting for one consumer group (one call from the queue)."""

    __slots__ = ("items", "getters", "takes", "prob")

    def __init__(self, takes: list[bool], prob: float):
        self.items: deque[tuple[int, int, float]] = deque()
        self.getters: deque[Event] = deque()
        self.takes = takes  # per request class: does this group take the message?
        self.prob = prob


class QueueRuntime(Component):
    """A broker: ``serve`` enqueues and returns at once; consumer workers pull and call their
    service. Every call from the queue is a consumer group with its own backlog: a message
    goes to each group that takes its class (pub/sub), and within a group the consumer
    workers compete for messages. ``capacity`` bounds each backlog."""

    def __init__(self, sim: Simulation, name: str, spec: QueueSpec):
        super().__init__(sim, name, spec)
        self.backlogs: list[Backlog] = []
        self.limit = INF if spec.capacity is None else spec.capacity
        self.wait = array("f")  # time in queue of messages taken after warm-up
        self.enqueued = 0
        self.rejected = 0
        self.consumed = 0
        self.failed = 0
        self.depth = 0
        self.d_start = self.d_end = 0.0
        self.d_max = 0

    def make_pools(self) -> list[Pool]:
        return [Pool(self.name, INF, INF, self.spec.zone_of(0))]

    def picker(self, policy: str | None = None, tag: str | int = "") -> Callable[[], Pool]:
        return itertools.repeat(ANY).__next__

    def add_group(self, call: CallSpec) -> Backlog:
        takes = [call.requests is None or cls in call.requests for cls in self.sim.classes]
        b = Backlog(takes, call.probability)
        self.backlogs.append(b)
        return b

    def serve(self, pool: Pool | None, cls: int, key: int):
        env = self.env
        t0 = env._now
        self.arrived += 1
        broker = self.pools[0]
        if broker.down:
            broker.refused += 1
            if broker.hang:
                yield Event(env)
            return FAILED
        st = self.st[cls]()
        for factor, add in self.slow:
            st = st * factor + (add() if add is not None else 0.0)
        if st:
            yield env.timeout(st)
        if self.err_p and self._err_u() < self.err_p:
            return FAILED
        targets = [b for b in self.backlogs
                   if b.takes[cls] and (b.prob >= 1.0 or self._u() < b.prob)]
        for b in targets:
            if len(b.items) >= self.limit:
                self.rejected += 1
                return REJECTED
        now = env._now
        self.enqueued += 1
        if now >= self.warm:
            self.lat.append(now - t0)
        msg = (cls, key, now)
        for b in targets:
            if b.getters:
                b.getters.popleft().succeed(msg)
            else:
                b.items.append(msg)
                self.depth += 1
                self.d_start += now
                if self.depth > self.d_max:
                    self.d_max = self.depth
        return OK

    def consumer(self, backlog: Backlog, call: tuple, pool: Pool):
        """One consumer worker: take a message, make the call to the consumer service, repeat."""
        env = self.env
        _prob, lat, timeout, _mode, serve, _pick = call
        items, getters = backlog.items, backlog.getters
        pick = itertools.repeat(pool).__next__
        while True:
            if items:
                msg = items.popleft()
                self.depth -= 1
                self.d_end += env._now
            else:
                ev = Event(env)
                getters.append(ev)
                msg = yield ev
            cls, key, t = msg
            now = env._now
            if now >= self.warm:
                self.wait.append(now - t)
            status = yield from self._one(lat, timeout, serve, pick, cls, key)
            if status == OK:
                self.consumed += 1
            else:
                self.failed += 1

    def depth_area(self, t: float) -> float:
        return self.d_end + self.depth * t - self.d_start

    def counters(self, t: float) -> dict[str, Any]:
        out = super().counters(t)
        out.update(enqueued=self.enqueued, rejected=self.rejected, consumed=self.consumed,
                   failed=self.failed, depth_area=self.depth_area(t))
        return out

    def on_warm(self) -> None:
        self.d_max = self.depth


RUNTIMES: dict[type, type[Component]] = {
    ServiceSpec: ServiceRuntime,
    LoadBalancerSpec: LoadBalancerRuntime,
    CacheSpec: CacheRuntime,
    DatastoreSpec: DatastoreRuntime,
    QueueSpec: QueueRuntime,
}


# ---------------------------------------------------------------------------- simulation


class Simulation:
    """One run: builds the runtime from an architecture, drives the workload, collects records."""

    def __init__(self, arch: Architecture, *, load: float = 1.0, duration: float, warmup: float,
                 seed: int | np.random.SeedSequence):
        self.arch = arch
        self.spec: Spec = arch.spec
        self.load = float(load)
        self.duration = float(duration)
        self.warmup = float(warmup)
        self.end = self.warmup + self.duration
        self.seed = seed
        self.env = simpy.Environment()
        self.classes: list[str] = list(self.spec.workload.requests)
        self.reach = classes_reaching(self.spec)
        # columnar request records (requests that arrived after warm-up and finished)
        self.t_start = array("d")
        self.t_end = array("d")
        self.code = array("H")  # class * 4 + status
        self.arrivals = [0] * len(self.classes)
        # time-weighted number in the system (Little's law)
        self.sys_n = 0
        self.sys_start = 0.0
        self.sys_end = 0.0
        # network links that faults can cut (only pairs some fault names)
        self.links: dict[frozenset[str], Link] = {}
        for f in self.spec.faults:
            pair = getattr(f, "between", None)
            if pair is not None and frozenset(pair) not in self.links:
                self.links[frozenset(pair)] = Link(self.uniform("link", *sorted(pair)))
        self.resilience: list[Resilience] = []
        self.fault_log: list[tuple[str, str, str, float, float]] = []  # name, kind, target, start, end
        self.components: dict[str, Component] = {
            name: RUNTIMES[type(spec)](self, name, spec) for name, spec in self.spec.components.items()}
        self._wire()
        self.warm_counters: dict[str, Any] = {}
        self.warm_resilience: list[dict[str, Any]] = []
        self.warm_sys = 0.0
        self.warm_in_system = 0

    def rng(self, *tags: str | int) -> np.random.Generator:
        return stream(self.seed, *tags)

    def uniform(self, *tags: str | int) -> Callable[[], float]:
        return uniform_sampler(self.rng(*tags))

    def link(self, a: str, b: str) -> Link | None:
        """The network state between two components, when a fault can touch it."""
        return self.links.get(frozenset((a, b)))

    def _wire(self) -> None:
        comps = self.components
        for call in self.spec.calls:
            src, dst = comps[call.source], comps[call.to]
            if isinstance(src, QueueRuntime):
                continue  # consumers are wired as processes in start()
            if isinstance(src, LoadBalancerRuntime) and src.spec.health_check is not None \
                    and not isinstance(dst, (DatastoreRuntime, QueueRuntime)):
                pick = src.live_picker(dst)
            else:
                policy = src.spec.policy if isinstance(src, LoadBalancerRuntime) else None
                pick = dst.picker(policy, src.name)
            src.add_call(call, dst, pick, miss=call.on == "miss")

    # -- workload
    def _class_sampler(self, *tags: str | int) -> Callable[[], int]:
        """Draws the request class of each new request, by weight, from its own stream."""
        reqs = self.spec.workload.requests
        if len(reqs) == 1:
            return itertools.repeat(0).__next__
        w = np.array([rc.weight for rc in reqs.values()], dtype=float)
        cdf = np.cumsum(w / w.sum())
        cdf[-1] = 1.0
        rng = self.rng("workload", "classes", *tags)

        def gen():
            while True:
                yield from np.searchsorted(cdf, rng.random(1024), side="right").tolist()
        return gen().__next__

    def _entry_picker(self) -> Callable[[], Pool | None]:
        """How clients choose the entry's instance: its policy, and if the entry is a load
        balancer with health checks, only instances that pass them (DNS or a floating IP
        failing over)."""
        entry = self.components[self.entry]
        if isinstance(entry, LoadBalancerRuntime) and entry.spec.health_check is not None:
            return entry.live_picker(entry)
        return entry.picker(tag="workload")

    def _request(self, serve, pick, cls: int, key: int):
        env = self.env
        t0 = env._now
        self.sys_n += 1
        self.sys_start += t0
        inst = pick()
        if inst is None:
            status = FAILED  # no entry instance in rotation
        else:
            status = yield from serve(inst, cls, key)
        now = env._now
        self.sys_n -= 1
        self.sys_end += now
        if t0 >= self.warmup:
            self.t_start.append(t0)
            self.t_end.append(now)
            self.code.append(cls * 4 + status)

    def _open_source(self, rate: float, profile):
        env = self.env
        warm = self.warmup
        entry = self.components[self.entry]
        serve, pick = entry.serve, self._entry_picker()
        next_cls = self._class_sampler()
        keys = [key_sampler(rc.keys, self.rng("workload", "keys", name))
                for name, rc in self.spec.workload.requests.items()]
        arrivals = self.arrivals
        process = env.process
        request = self._request
        if profile is None:
            gap = sampler(Exponential(1.0 / rate), self.rng("workload", "arrivals"))
            while True:
                yield env.timeout(gap())
                c = next_cls()
                if env._now >= warm:
                    arrivals[c] += 1
                process(request(serve, pick, c, keys[c]()))
        else:
            # non-homogeneous Poisson arrivals by thinning: candidates at the peak rate,
            # each kept with probability rate(t) / peak.
            mult, peak = profile
            if peak <= 0:
                return
            gap = sampler(Exponential(1.0 / peak), self.rng("workload", "arrivals"))
            u = uniform_sampler(self.rng("workload", "thinning"))
            t = env._now
            end = self.end
            while True:
                t += gap()
                if t >= end:
                    return  # no more arrivals within the run (the rate may have dropped to 0)
                if u() * peak > mult(t):
                    continue
                yield env.timeout(t - env._now)
                c = next_cls()
                if t >= warm:
                    arrivals[c] += 1
                process(request(serve, pick, c, keys[c]()))

    def _user(self, idx: int, think, pick):
        env = self.env
        serve = self.components[self.entry].serve
        next_cls = self._class_sampler("user", idx)
        keys = [key_sampler(rc.keys, self.rng("workload", "keys", name, "user", idx))
                for name, rc in self.spec.workload.requests.items()]
        while True:
            yield env.timeout(think())
            c = next_cls()
            if env._now >= self.warmup:
                self.arrivals[c] += 1
            yield from self._request(serve, pick, c, keys[c]())

    @property
    def entry(self) -> str:
        return self.arch.entry

    def start(self) -> None:
        from .workload import rate_profile

        env = self.env
        wl = self.spec.workload
        if wl.users is not None:
            n_users = max(1, int(round(wl.users * self.load)))
            pick = self._entry_picker()  # shared by all users
            for i in range(n_users):
                think = sampler(wl.think_time, self.rng("workload", "think", i))
                env.process(self._user(i, think, pick))
        else:
            profile = rate_profile(wl, self.load, self.arch.base_dir, self.end)
            if profile is None:
                if wl.rate * self.load > 0:
                    env.process(self._open_source(wl.rate * self.load, None))
            else:
                env.process(self._open_source(0.0, profile))
        for call in self.spec.calls:
            src = self.components[call.source]
            if isinstance(src, QueueRuntime):
                dst = self.components[call.to]
                lat = sampler(call.latency, self.rng(src.name, call.to, "latency")) if call.latency else None
                entry = (1.0, lat, call.timeout, CALL, dst.serve, None)
                backlog = src.add_group(call)
                for pool in dst.pools:
                    for _ in range(int(pool.cap)):
                        env.process(src.consumer(backlog, entry, pool))
        from .faults import schedule_faults

        schedule_faults(self)
        if self.warmup > 0:
            ev = env.timeout(self.warmup)
            ev.callbacks.append(lambda _ev: self._on_warm())
        else:
            self._on_warm()

    def _on_warm(self) -> None:
        t = self.env.now
        self.warm_counters = {n: c.counters(t) for n, c in self.components.items()}
        self.warm_sys = self.sys_area(t)
        self.warm_in_system = self.sys_n
        self.warm_resilience = [r.stats() for r in self.resilience]
        for c in self.components.values():
            c.on_warm()

    def sys_area(self, t: float) -> float:
        return self.sys_end + self.sys_n * t - self.sys_start

    def run(self):
        """Run to the end and return the :class:`~simarch.result.Result`."""
        from .result import build_result

        self.start()
        self.env.run(until=self.end)
        return build_result(self)

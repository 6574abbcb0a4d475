"""The request path every component kind shares: queue for a worker, serve, make the calls.

A request is ``(cls, key)``: two ints carried as generator arguments, no dict or object per
request. Each hop is a call of the callee's ``serve`` generator, which returns a
:class:`~simarch.model.status.Status` code; a request's hops run in one
:class:`~simarch.runtime.tasks.Task`, flat however deep the chain. Kind modules (``simarch.kinds``) subclass
:class:`Component` and override ``serve`` and the construction hooks.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from typing import Any

from simpy.events import PENDING, Event

from ..model.dists import sampler
from ..model.spec import CallSpec
from ..model.status import FAILED, OK, REJECTED, TIMEOUT
from .calls import ASYNC, CALL, MODES, Call
from .pickers import make_picker
from .pools import ANY, INF, Pool
from .resilience import Resilience
from .streams import uniform_sampler
from .tasks import first_of, gather, spawn


class Component:
    """Runtime of one node: its pools, service-time samplers and outgoing calls per class."""

    def __init__(self, sim: Any, name: str, spec: Any):
        self.sim = sim
        self.env = sim.env
        self.name = name
        self.spec = spec
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
        self.calls: list[list[Call]] = [[] for _ in range(n_cls)]
        self.fwd: list[list[Call]] = [[] for _ in range(n_cls)]
        self.pools: list[Pool] = self.make_pools()
        self.parallel = spec.fanout == "parallel"
        self._u = uniform_sampler(sim.rng(name, "calls"))
        # degradation faults
        self.slow: list[tuple[float, Callable[[], float] | None]] = []
        self.err_p = 0.0
        self._err_u = uniform_sampler(sim.rng(name, "errors"))

    # -- construction
    def make_pools(self) -> list[Pool]:
        """One pool per instance: ``spec.worker_limit`` slots (unbounded when there is none)
        and ``spec.queue`` places to wait."""
        workers = self.spec.worker_limit
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

    def picker_for(self, target: Component) -> Callable[[], Pool | None]:
        """How this component, as a caller, picks ``target``'s instance (a load balancer
        overrides it with its own policy and health checks)."""
        return target.picker(None, self.name)

    def add_call(self, call: CallSpec, target: Component, pick: Callable) -> None:
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
            entry = Call(call.probability, None, None, CALL, res.call, _any, None)
        else:
            entry = Call(call.probability, lat, call.timeout, MODES[call.mode], target.serve, pick, link)
        lists = self.call_lists(call)
        for c, cls in enumerate(sim.classes):
            if call.requests is None or cls in call.requests:
                lists[c].append(entry)

    def call_lists(self, call: CallSpec) -> list[list[Call]]:
        """Where a call goes: the calls made while holding the worker, or the ``forward``
        calls made after releasing it."""
        return self.fwd if call.mode == "forward" else self.calls

    def wired(self) -> None:
        """Called once every call is added (a cache builds its miss path here)."""

    def start(self) -> None:
        """Start the component's own processes (a queue's consumers), after wiring."""

    # -- the request path
    # Request generators follow the task protocol (:mod:`simarch.runtime.tasks`): yield a
    # float to take that long, a generator to call it, an event to wait for it; return a
    # generator to hand the request over to it (a tail call).
    def serve(self, pool: Pool, cls: int, key: int):
        return self._serve(pool, cls, key, self.calls[cls], self.fwd[cls])

    def _serve(self, pool: Pool, cls: int, key: int, calls: list, fwd: list, record: bool = True):
        """Queue for a worker of ``pool``, hold it for the service time and the synchronous
        calls, release it, then hand the request on to the ``forward`` calls. Returns a
        status code."""
        env = self.env
        t0 = env._now
        if record:
            self.arrived += 1
        if pool.down:
            pool.refused += 1
            if pool.hang:
                yield Event(env)  # never answers: only the caller's timeout ends the wait
            return FAILED
        if pool.n < pool.cap:  # a free worker: Pool.acquire's fast path, inlined (once per visit)
            pool.n += 1
            pool.s_start += t0
            pool.load += 1
            if pool.index is not None:
                pool.index.up(pool)
        else:
            wait = pool.acquire(env, t0)
            if wait is False:
                return REJECTED
            if wait is not None and (yield wait):  # the instance crashed while we waited
                return FAILED
        epoch = pool.epoch
        st = self.st[cls]()
        if self.slow:
            for factor, add in self.slow:
                st = st * factor + (add() if add is not None else 0.0)
        yield st
        status = OK
        if calls:
            if self.parallel:
                status = yield self._parallel(calls, cls, key)
            else:
                u = self._u
                for prob, lat, timeout, mode, serve, pick, link in calls:
                    if prob < 1.0 and u() >= prob:
                        continue
                    if mode == ASYNC:
                        spawn(env, self._one(lat, timeout, serve, pick, cls, key, link))
                        continue
                    if timeout is None and link is None:
                        if lat is not None:
                            yield lat()
                        inst = pick()
                        if inst is None:
                            status = FAILED  # no instance in rotation
                            break
                        status = yield serve(inst, cls, key)
                    else:  # the caller's timeout covers the network too
                        status = yield self._one(lat, timeout, serve, pick, cls, key, link)
                    if status:
                        break
        now = env._now
        if pool.waiters:
            pool.release(now)  # hands the worker to the first waiting request
        else:  # Pool.release's fast path, inlined (once per visit)
            pool.s_end += now
            pool.done += 1
            pool.n -= 1
            pool.load -= 1
            if pool.index is not None:
                pool.index.down(pool)
        if pool.epoch != epoch:
            status = FAILED  # the instance crashed during the work
        elif self.err_p and status == OK and self._err_u() < self.err_p:
            status = FAILED
        if record and t0 >= self.warm:
            self.lat.append(now - t0)
        if fwd and status == OK:  # the worker is free: hand the request on
            if len(fwd) == 1:  # the usual forward hop, straight to the next component
                prob, lat, timeout, mode, serve, pick, link = fwd[0]
                if prob >= 1.0 and lat is None and timeout is None and link is None:
                    inst = pick()
                    return FAILED if inst is None else serve(inst, cls, key)
            return self._sequence(fwd, cls, key)
        return status

    def _sequence(self, calls: list, cls: int, key: int):
        """Make ``calls`` in turn until one fails; the last one is a tail call."""
        env = self.env
        last = len(calls) - 1
        for i, (prob, lat, timeout, mode, serve, pick, link) in enumerate(calls):
            if prob < 1.0 and self._u() >= prob:
                continue
            if mode == ASYNC:
                spawn(env, self._one(lat, timeout, serve, pick, cls, key, link))
                continue
            if i == last:
                return self._one(lat, timeout, serve, pick, cls, key, link)
            status = yield self._one(lat, timeout, serve, pick, cls, key, link)
            if status:
                return status
        return OK

    def _parallel(self, calls: list, cls: int, key: int):
        env = self.env
        tasks = []
        for prob, lat, timeout, mode, serve, pick, link in calls:
            if prob < 1.0 and self._u() >= prob:
                continue
            t = spawn(env, self._one(lat, timeout, serve, pick, cls, key, link))
            if mode != ASYNC:
                tasks.append(t)
        if not tasks:
            return OK
        return gather(env, tasks)  # hands over: the first failure, else OK

    def _one(self, lat, timeout, serve, pick, cls, key, link=None, extra=None):
        """One call: the network (latency, partitions, loss), then the callee; under
        ``timeout`` if given. ``extra`` is the callee when this call is a retry or a hedge
        (counted when it reaches the callee, for the amplification figures)."""
        if timeout is not None:
            return self._timed(self._one(lat, None, serve, pick, cls, key, link, extra), timeout)
        if lat is not None:
            yield lat()
        if link is not None and link.drops():
            if link.hang:
                yield Event(self.env)  # lost: no answer ever comes
            return FAILED
        inst = pick()
        if inst is None:
            return FAILED
        if extra is not None:
            extra.extra += 1
        return serve(inst, cls, key)

    def _timed(self, gen, timeout: float):
        """Run ``gen`` as its own task and wait for it at most ``timeout``."""
        env = self.env
        task = spawn(env, gen)
        if task.value is PENDING:
            yield first_of(env, [task], env.timeout(timeout))
            if task.value is PENDING:
                return TIMEOUT
        return task.value

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

    def flush(self) -> None:
        """Lose all state held in memory (a cache flush); nothing for most kinds."""

    # -- statistics
    def counters(self, t: float) -> dict[str, Any]:
        """Running counters at time ``t``; results take the differences over the window."""
        return {"arrived": self.arrived, "extra": self.extra, "pools": [p.counters(t) for p in self.pools],
                "waited": sum(p.waited for p in self.pools)}

    def on_warm(self) -> None:
        for p in self.pools:
            p.q_max = len(p.waiters)


def _any() -> Pool:
    return ANY

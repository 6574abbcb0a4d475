"""The request path every component kind shares: queue for a worker, serve, make the calls.

A request is ``(cls, key, parent)``: three ints carried as generator arguments, no dict or
object per request (``parent`` links the visit's hop record to its caller's, see
:mod:`simarch.runtime.hops`; ``-1`` when the request is not recorded). Each hop is a call of
the callee's ``serve`` generator, which returns a :class:`~simarch.model.status.Status` code; a request's hops run in one
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
from .hops import AFTER, HopLog
from .hops import ASYNC as R_ASYNC
from .overload import (
    CANCELLING,
    DeadlineTask,
    PriorityPool,
    QueueSetup,
    TimedCall,
    cancel,
    timeout_of,
)
from .overload import MODES as DISCIPLINES
from .pickers import make_live_picker, make_picker
from .pools import ANY, INF, Pool
from .resilience import Resilience
from .rotation import Rotation
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
        n_cls = len(sim.classes)
        # per-visit residence time (s) by request class, visits that began after warm-up
        self.lats = [array("f") for _ in range(n_cls)]
        self.index = sim.component_index[name]  # the component's number in hop records
        self.hops: HopLog | None = sim.hops
        if self.hops is not None:
            self._new_id = self.hops.new_id
            self._pack = self.hops.pack
            self._add = self.hops.add
        self.arrived = 0
        self.extra = 0  # visits that were retries or hedges (amplification)
        self.st: list[Callable[[], float] | None] = [None] * n_cls
        reach = sim.reach[name]
        for c, cls in enumerate(sim.classes):
            if cls in reach:
                dist = spec.service_time.lookup(cls, sim.spec.workload.op(cls))
                self.st[c] = sampler(dist, sim.rng(name, "service_time", cls))
        self.calls: list[list[Call]] = [[] for _ in range(n_cls)]
        self.fwd: list[list[Call]] = [[] for _ in range(n_cls)]
        self.pools: list[Pool] = self.make_pools()
        # instances that come and go during the run (autoscaling, deployments): the pools
        # in rotation, read by every picker over the component
        self.rotation: Rotation | None = (
            Rotation(self.pools, range(self.initial_instances())) if name in sim.rotating else None)
        self.parallel = spec.fanout == "parallel"
        self._u = uniform_sampler(sim.rng(name, "calls"))
        # degradation faults
        self.slow: list[tuple[float, Callable[[], float] | None]] = []
        self.err_p = 0.0  # > 0 while visits may fail by error (an errors fault, a version's)
        self.fault_err = 0.0
        self._err_u = uniform_sampler(sim.rng(name, "errors"))
        # the version each pool runs during a deployment (see runtime/deploy.py): its error
        # rate and service-time factor, for the pools that differ from the spec
        self.pool_err: dict[Pool, float] = {}
        self.pool_factor: dict[Pool, float] = {}

    # -- construction
    def make_pools(self) -> list[Pool]:
        """One pool per instance it may ever run (:meth:`pool_count`): ``spec.worker_limit``
        slots (unbounded when there is none) and ``spec.queue`` places to wait."""
        workers = self.spec.worker_limit
        queue = getattr(self.spec, "queue", None)
        cap = INF if workers is None else workers
        qlimit = INF if queue is None else queue
        n = self.pool_count()
        return [self.new_pool(f"{self.name}[{i}]" if n > 1 else self.name, cap, qlimit, self.spec.zone_of(i))
                for i in range(n)]

    def queue_setup(self) -> QueueSetup:
        """What this component's wait queues need of the design's overload control (computed
        when asked: components keep no attribute for it, see
        :class:`~simarch.runtime.overload.QueueSetup`)."""
        return QueueSetup(self.sim, self.spec)

    def new_pool(self, name: str, cap: float, qlimit: float, zone: str | None) -> Pool:
        """A pool of this component: a plain FIFO :class:`~simarch.runtime.pools.Pool`, or a
        :class:`~simarch.runtime.overload.PriorityPool` when some request class has a
        priority other than ``default``, the component sets a ``discipline``, or some call
        propagates its deadline or cancels."""
        q = self.queue_setup()
        if q.plain:
            return Pool(name, cap, qlimit, zone)
        d = q.discipline
        if d is None:
            return PriorityPool(name, cap, qlimit, zone, q.ranks, deadlines=q.deadlines)
        return PriorityPool(name, cap, qlimit, zone, q.ranks, DISCIPLINES[d.type], d.target,
                            d.interval, q.deadlines)

    def pool_count(self) -> int:
        """How many instances the component may ever run (an autoscaled tier: its maximum;
        a deployed one: with the extra instances its deployments start)."""
        return self.spec.instances + self.sim.spare_pools.get(self.name, 0)

    def initial_instances(self) -> int:
        """How many of its instances are in rotation when the run starts (the first ones)."""
        return self.spec.instances

    @property
    def capacity(self) -> float:
        return sum(p.workers for p in self.pools)

    def picker(self, policy: str | None = None, tag: str | int = "") -> Callable[[], Pool | None]:
        """The instance chooser for one caller (``tag`` names it, so that random choices of
        different callers come from different streams)."""
        policy = policy or self.spec.policy
        rng = self.sim.rng(self.name, "route", policy, tag)
        if self.rotation is not None:
            return make_live_picker(policy, self.rotation.live, rng)
        return make_picker(policy, self.pools, rng)

    def picker_for(self, target: Component) -> Callable[[], Pool | None]:
        """How this component, as a caller, picks ``target``'s instance (a load balancer
        overrides it with its own policy and health checks)."""
        return target.picker(None, self.name)

    def add_call(self, call: CallSpec, target: Component, pick: Callable) -> None:
        sim = self.sim
        lat = sampler(call.latency, sim.rng(self.name, call.to, "latency")) if call.latency else None
        link = sim.link(self.name, call.to)
        if sim.regions is not None:
            return self._add_regional_call(call, target, pick, lat, link)
        entry = self._call_entry(call, target, target.serve, pick, lat, link)
        lists = self.call_lists(call)
        for c, cls in enumerate(sim.classes):
            if call.requests is None or cls in call.requests:
                lists[c].append(entry)

    def _call_entry(self, call: CallSpec, target: Any, serve: Callable, pick: Callable, lat: Any,
                    link: Any) -> Call:
        sim = self.sim
        if call.resilient:
            fb = None
            if call.fallback is not None:
                fbc = sim.components[call.fallback]
                fb = (fbc.serve, fbc.picker(None, f"{self.name}-fallback"), sim.link(self.name, call.fallback))
            res = Resilience(self, call, target, pick, lat, link, fb)
            sim.resilience.append(res)
            return Call(call.probability, None, None, CALL, res.call, _any, None)
        return Call(call.probability, lat, timeout_of(call), MODES[call.mode], serve, pick, link)

    def _add_regional_call(self, call: CallSpec, target: Component, pick: Callable, lat: Any,
                           link: Any) -> None:
        """A call in a design with regions: one entry per region of the caller's instances,
        each picking the callee's nearest instance and taking the round trip to it
        (:mod:`simarch.runtime.regions`). A caller in several regions makes each instance's
        calls from its own region (:meth:`_serve_regional`)."""
        sim = self.sim
        regions = sim.regions
        mine = sorted({p.rix for p in self.pools})
        home = self.pools[0].rix
        entries = {}
        for r in mine:
            rs = regions.serve_for(self.name, r, target)
            pick_r = regions.regional_pick(r, target, pick, f"{self.name}@{r}")
            entries[r] = self._call_entry(call, rs if call.resilient else target, rs.serve, pick_r, lat, link)
        lists = self.call_lists(call)
        k = len(regions.names)
        for c, cls in enumerate(sim.classes):
            if call.requests is None or cls in call.requests:
                lists[c].append(entries[home])
                if len(mine) > 1:  # per region (slot k, i.e. -1: instances with no region)
                    alt = self.region_calls.setdefault(id(lists[c]), [[] for _ in range(k + 1)])
                    for r in range(k + 1):
                        alt[r].append(entries.get(r if r < k else -1, entries[home]))

    @property
    def region_calls(self) -> dict[int, list[list[Call]]]:
        """Per list of calls (by its id) of a caller in several regions, the list each region's
        instances make (numbered as the design's regions; the last: no region)."""
        rc = self.__dict__.get("_region_calls")
        if rc is None:
            rc = self.__dict__["_region_calls"] = {}
        return rc

    def _serve_regional(self, pool: Pool, cls: int, key: int, parent: int, calls: list, fwd: list,
                        record: bool = True):
        """:meth:`_serve` for a caller in several regions: the calls of ``pool``'s region
        (installed at wiring in place of ``_serve``, only for such a caller)."""
        rc = self._region_calls
        alt = rc.get(id(calls))
        if alt is not None:
            calls = alt[pool.rix]
        alt = rc.get(id(fwd))
        if alt is not None:
            fwd = alt[pool.rix]
        return Component._serve(self, pool, cls, key, parent, calls, fwd, record)

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
    def serve(self, pool: Pool, cls: int, key: int, parent: int):
        return self._serve(pool, cls, key, parent, self.calls[cls], self.fwd[cls])

    def _serve(self, pool: Pool, cls: int, key: int, parent: int, calls: list, fwd: list,
               record: bool = True):
        """Queue for a worker of ``pool``, hold it for the service time and the synchronous
        calls, release it, then hand the request on to the ``forward`` calls. Returns a
        status code. With ``parent >= 0`` the visit writes its hop row."""
        env = self.env
        t0 = env._now
        if record:
            self.arrived += 1
        if parent >= 0:
            vid = self._new_id()
            me = vid * 4  # what the visit's own calls pass as their parent
        else:
            me = -1
        if pool.down:
            pool.refused += 1
            if pool.hang:
                yield Event(env)  # never answers: only the caller's timeout ends the wait
            if me >= 0:
                self._row(vid, parent, pool, t0, t0, t0, t0, FAILED)
            return FAILED
        if pool.n < pool.cap:  # a free worker: Pool.acquire's fast path, inlined (once per visit)
            pool.n += 1
            pool.s_start += t0
            pool.load += 1
            if pool.index is not None:
                pool.index.up(pool)
            t1 = t0
        else:
            wait = pool.acquire(env, t0, cls)
            if wait is False:
                if me >= 0:
                    self._row(vid, parent, pool, t0, t0, t0, t0, REJECTED)
                return REJECTED
            if wait is not None:
                try:
                    why = yield wait
                except GeneratorExit:  # cancelled while it waited
                    if CANCELLING[0]:
                        self._cancelled_wait(pool, wait)
                    raise
                if why:  # the instance crashed while we waited (True), or the queue dropped us
                    status = FAILED if why is True else why
                    if me >= 0:
                        now = env._now
                        self._row(vid, parent, pool, t0, now, now, now, status)
                    return status
            t1 = env._now
        try:  # (free when nothing is raised; a cancelled request's close() lands in it)
            epoch = pool.epoch
            st = self.st[cls]()
            if self.slow:  # a slowdown fault, or a pool warming up or running another version
                st = self._slowed(st, pool)
            yield st
            status = OK
            if calls:
                if self.parallel:
                    status = yield self._parallel(calls, cls, key, me)
                else:
                    u = self._u
                    for prob, lat, timeout, mode, serve, pick, link in calls:
                        if prob < 1.0 and u() >= prob:
                            continue
                        if mode == ASYNC:
                            spawn(env, self._one(lat, timeout, serve, pick, cls, key, link, None,
                                                 me + R_ASYNC if me >= 0 else -1))
                            continue
                        if timeout is None and link is None:
                            if lat is not None:
                                yield lat()
                            inst = pick()
                            if inst is None:
                                status = FAILED  # no instance in rotation
                                break
                            status = yield serve(inst, cls, key, me)
                        else:  # the caller's timeout covers the network too
                            status = yield self._one(lat, timeout, serve, pick, cls, key, link, None, me)
                        if status:
                            break
        except GeneratorExit:  # the request was cancelled: give the worker back
            if CANCELLING[0]:
                self._cancelled(pool)
            raise
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
        elif self.err_p and status == OK and self._erred(pool):
            status = FAILED
        if record and t0 >= self.warm:
            self.lats[cls].append(now - t0)
        if me >= 0:
            # (the service ended at t1 + st: a positive sleep ends exactly there)
            self._add(self._pack(vid, parent, pool.gid, t0, t1, t1 + st if st > 0.0 else t1, now, status))
        if fwd and status == OK:  # the worker is free: hand the request on
            after = me + AFTER if me >= 0 else -1
            if len(fwd) == 1:  # the usual forward hop, straight to the next component
                prob, lat, timeout, mode, serve, pick, link = fwd[0]
                if prob >= 1.0 and lat is None and timeout is None and link is None:
                    inst = pick()
                    return FAILED if inst is None else serve(inst, cls, key, after)
            return self._sequence(fwd, cls, key, after)
        return status

    def _slowed(self, st: float, pool: Pool) -> float:
        """A service time under the component's slowdown faults and ``pool``'s cold start."""
        for entry in self.slow:
            if entry is _COLD or entry is _VERSION:
                continue
            factor, add = entry
            st = st * factor + (add() if add is not None else 0.0)
        if self.pool_factor:
            st *= self.pool_factor.get(pool, 1.0)
        if pool.cold is not None:
            f = pool.cold(self.env._now)
            if f == 1.0:
                self.set_cold(pool, None)  # warm now
            else:
                st *= f
        return st

    def set_cold(self, pool: Pool, factor: Callable[[float], float] | None) -> None:
        """Start (``factor``: the service-time factor as a function of time, see
        :func:`~simarch.runtime.rotation.warming`) or end (``None``) ``pool``'s warm-up."""
        if pool.cold is not None:
            self.slow.remove(_COLD)
        pool.cold = factor
        if factor is not None:
            self.slow.append(_COLD)  # one marker per cold pool: ``_serve`` looks while any is

    def set_errors(self, p: float) -> None:
        """An errors fault: visits fail with probability ``p`` after doing their work."""
        self.fault_err = p
        self.err_p = p or (1.0 if self.pool_err else 0.0)

    def set_version(self, pool: Pool, errors: float = 0.0, factor: float = 1.0) -> None:
        """``pool`` runs a version whose visits fail with probability ``errors`` (after their
        work) and whose service times are multiplied by ``factor``; ``(0, 1)``: as the spec."""
        if pool in self.pool_factor:
            del self.pool_factor[pool]
            self.slow.remove(_VERSION)
        if factor != 1.0:
            self.pool_factor[pool] = factor
            self.slow.append(_VERSION)  # one marker per slower pool: ``_serve`` looks while any is
        self.pool_err.pop(pool, None)
        if errors > 0.0:
            if not hasattr(self, "_ver_u"):
                self._ver_u = uniform_sampler(self.sim.rng(self.name, "version", "errors"))
            self.pool_err[pool] = errors
        self.set_errors(self.fault_err)

    def _erred(self, pool: Pool) -> bool:
        """Whether a visit to ``pool`` that did its work fails by error: by an errors fault,
        or by the version the pool runs."""
        p = self.fault_err
        if p and self._err_u() < p:
            return True
        q = self.pool_err.get(pool) if self.pool_err else None
        return q is not None and self._ver_u() < q

    def _cancelled_wait(self, pool: Pool, wait: Event) -> None:
        """A request cancelled while it waited for a worker of ``pool`` leaves the queue (or,
        handed a worker at this instant, gives it back)."""
        pool.cancelled += 1
        if wait._value is PENDING:
            pool.remove(wait, self.env._now)
        elif wait._value is None:
            pool.release(self.env._now)
            pool.done -= 1  # (not an answer)

    def _cancelled(self, pool: Pool) -> None:
        """A request cancelled in service gives its worker back; its visit is not recorded."""
        pool.cancelled += 1
        pool.release(self.env._now)
        pool.done -= 1  # (not an answer)

    def _row(self, vid: int, parent: int, pool: Pool, t0: float, t1: float, t2: float,
             t3: float, status: int) -> None:
        """Write the hop row of a visit that ended early (refused, rejected, crashed)."""
        self._add(self._pack(vid, parent, pool.gid, t0, t1, t2, t3, status))

    def _sequence(self, calls: list, cls: int, key: int, parent: int):
        """Make ``calls`` in turn until one fails; the last one is a tail call."""
        env = self.env
        last = len(calls) - 1
        for i, (prob, lat, timeout, mode, serve, pick, link) in enumerate(calls):
            if prob < 1.0 and self._u() >= prob:
                continue
            if mode == ASYNC:
                spawn(env, self._one(lat, timeout, serve, pick, cls, key, link, None,
                                     parent - parent % 4 + R_ASYNC if parent >= 0 else -1))
                continue
            if i == last:
                return self._one(lat, timeout, serve, pick, cls, key, link, None, parent)
            status = yield self._one(lat, timeout, serve, pick, cls, key, link, None, parent)
            if status:
                return status
        return OK

    def _parallel(self, calls: list, cls: int, key: int, parent: int):
        env = self.env
        tasks = []
        for prob, lat, timeout, mode, serve, pick, link in calls:
            if prob < 1.0 and self._u() >= prob:
                continue
            if mode == ASYNC:
                spawn(env, self._one(lat, timeout, serve, pick, cls, key, link, None,
                                     parent + R_ASYNC if parent >= 0 else -1))
                continue
            tasks.append(spawn(env, self._one(lat, timeout, serve, pick, cls, key, link, None, parent)))
        if not tasks:
            return OK
        return gather(env, tasks)  # hands over: the first failure, else OK

    def _one(self, lat, timeout, serve, pick, cls, key, link, extra, parent, attempt=0):
        """One call: the network (latency, partitions, loss), then the callee; under
        ``timeout`` if given. ``extra`` is the callee when this call is a retry or a hedge
        (counted when it reaches the callee, for the amplification figures). A timed call
        writes a call row of the caller's (``attempt`` is its attempt number, when it is one
        of a retried call's), whose id the callee's visit takes as its parent."""
        if timeout is not None:
            if parent < 0:
                return self._timed(self._one(lat, None, serve, pick, cls, key, link, extra, -1), timeout)
            cid = self.hops.new_id()
            return self._timed(self._one(lat, None, serve, pick, cls, key, link, extra, cid * 4),
                               timeout, parent, cid, serve.__self__.index, attempt)
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
        return serve(inst, cls, key, parent)

    def _timed(self, gen, timeout: float, parent: int = -1, cid: int = 0, callee: int = 0,
               attempt: int = 0):
        """Run ``gen`` as its own task and wait for it at most ``timeout``; with ``parent >=
        0``, write the call row ``cid`` (to component ``callee``) when the wait ends."""
        env = self.env
        begun = env._now
        if type(timeout) is not TimedCall:
            task = spawn(env, gen)
        else:  # a TimedCall: the deadline travels with the request
            task = DeadlineTask(env, gen, begun + timeout if timeout.propagate else INF)
            task._step(None)
        status = task.value
        if status is PENDING:
            try:
                yield first_of(env, [task], env.timeout(timeout))
            except GeneratorExit:  # the caller itself was cancelled: so is its call
                if CANCELLING[0]:
                    cancel(task, env._now)
                raise
            status = task.value
            if status is PENDING:
                status = TIMEOUT
                if type(timeout) is TimedCall and timeout.cancel:
                    cancel(task, env._now)
        if parent >= 0:
            self.hops.call_row(cid, parent, callee, begun, env._now, status, attempt=attempt)
        return status

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


_COLD: Any = object()  # the marker a cold pool keeps in its component's ``slow`` list
_VERSION: Any = object()  # ... and a pool running a slower version

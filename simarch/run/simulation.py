"""The simulation driver: an :class:`~simarch.model.architecture.Architecture` becomes SimPy
processes and resources, is driven by its workload, and leaves columnar records.

Run phases, in order: build (one kind object per component, see :mod:`simarch.kinds`),
wire (the architecture graph's calls become :class:`~simarch.runtime.calls.Call` records and
instance pickers), start (workload sources, consumers, faults, the warm-up mark), run, and
collect (:mod:`simarch.run.collect` turns counters and records into a
:class:`~simarch.results.result.Result`).

Hot-path rules: no pandas, no dict or object per request. Request records are ``array``
columns of floats and codes (``class * N_STATUS + status``). Random numbers are drawn in
numpy batches from streams spawned per component and purpose
(:func:`~simarch.runtime.streams.stream`).
"""

from __future__ import annotations

import gc
import itertools
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import simpy

from ..kinds import Kind, kind
from ..model.architecture import Architecture
from ..model.deployments import spare_pools
from ..model.dists import Exponential, sampler
from ..model.spec import Spec
from ..model.status import FAILED, N_STATUS
from ..model.workload import rate_profile
from ..runtime.deploy import prepare_deployments, schedule_deployments
from ..runtime.faults import schedule_faults
from ..runtime.freshness import Freshness
from ..runtime.hops import HopLog
from ..runtime.links import Link
from ..runtime.pools import Pool
from ..runtime.regions import RegionalTask, RegionRuntime, travel
from ..runtime.resilience import Resilience
from ..runtime.streams import key_sampler, stream, uniform_sampler
from ..runtime.tasks import RecordedTask, RequestTask, run_until, spawn
from .budget import hop_sampling
from .collect import collect


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection while the event loop runs.

    The request path creates no reference cycles (``tests/test_engine_flat.py`` checks it),
    so reference counting frees every request's objects; but the collector would still scan
    the many generators of requests in flight, again and again (a third of the time of a
    300-hop call chain). Objects alive before the run are frozen out of later collections.
    """
    was = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
        gc.unfreeze()


class Simulation:
    """One run: builds the runtime from an architecture, drives the workload, collects records."""

    def __init__(self, arch: Architecture, *, load: float = 1.0, duration: float, warmup: float,
                 seed: int | np.random.SeedSequence, hops: bool | int | None = None):
        self.arch = arch
        self.spec: Spec = arch.spec
        self.load = float(load)
        self.duration = float(duration)
        self.warmup = float(warmup)
        self.end = self.warmup + self.duration
        self.seed = seed
        self.env = simpy.Environment()
        self.classes: list[str] = list(self.spec.workload.requests)
        self.reach = arch.reach()
        # columnar request records (requests that arrived after warm-up and finished)
        self.t_start = array("d")
        self.t_end = array("d")
        small = len(self.classes) * N_STATUS <= 256  # a code (and a class) fits in one byte
        self.code = array("B" if small else "H")  # class * N_STATUS + status
        # arrivals in the window (so that requests still in flight at the end are known), and
        # completions in the window of requests that arrived in the warm-up
        self.a_start = array("d")
        self.a_cls = array("B" if small else "H")
        self.late_end = array("d")
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
        # hop records (see simarch.runtime.hops): every request of the window, or one in N
        every = hop_sampling(arch, self.load, self.duration, hops)
        self.hops: HopLog | None = HopLog(every) if every else None
        self.r_id = array("q")  # per request record: its root id in the hop records (-1: none)
        self.r_key = array("q")  # and its key
        if self.hops is not None:
            self._root_id = self.hops.new_id if every == 1 else self.hops.root
            self._r_id, self._r_key = self.r_id.append, self.r_key.append
        self.component_index = {name: i for i, name in enumerate(self.spec.components)}
        # components whose instances come and go during the run (see runtime/rotation.py)
        self.rotating: set[str] = {n for n, c in self.spec.components.items() if c.changes_instances} | {d.target for d in self.spec.deployments}
        self.spare_pools: dict[str, int] = spare_pools(self.spec)  # extra instances deployments start
        # freshness accounting (runtime/freshness.py): when the design writes and some copy
        # can lag behind (with no write nothing is ever stale), or the SLO asks for it
        writes = any(self.spec.workload.op(c) == "write" for c in self.classes)
        self.freshness: Freshness | None = (
            Freshness(len(self.classes), self.warmup)
            if (writes and any(c.tracks_freshness for c in self.spec.components.values()))
            or (self.spec.slo is not None and self.spec.slo.stale_reads is not None) else None)
        self.components: dict[str, Kind] = {
            name: kind(spec.kind)(self, name, spec) for name, spec in self.spec.components.items()}
        self.pools: list[Pool] = [p for c in self.components.values() for p in c.pools]
        for gid, p in enumerate(self.pools):
            p.gid = gid
        prepare_deployments(self)
        # regions (a design with a ``regions:`` section only): pool regions, round trips, geo routing
        self.regions: RegionRuntime | None = RegionRuntime(self) if self.spec.regions is not None else None
        if self.regions is not None:
            self.r_ureg = array("B")  # per request record: the user's region (its number)
            self.r_added = array("d")  # ... and the round trip to the entry (s)
            self._next_ureg = self._region_sampler()
        self._wire()
        if self.regions is not None:
            for comp in self.components.values():
                if comp.__dict__.get("_region_calls"):  # a caller in several regions
                    comp._serve = comp._serve_regional
        self.warm_counters: dict[str, Any] = {}
        self.warm_resilience: list[dict[str, Any]] = []
        self.warm_sys = 0.0
        self.warm_in_system = 0

    def rng(self, *tags: str | int) -> np.random.Generator:
        return stream(self.seed, *tags)

    def uniform(self, *tags: str | int) -> Callable[[], float]:
        return uniform_sampler(self.rng(*tags))

    def region_delay(self, a: Pool, b: Pool) -> float:
        """One-way network time (s) between two pools' regions: half the round trip of the
        design's matrix; 0 within a region, or in a design without regions."""
        if self.regions is None:
            return 0.0
        return self.regions.delay(a, b)

    def _region_sampler(self) -> Callable[[], int]:
        """Draws the user region of each new request, by share, from its own stream."""
        reg = self.regions
        assert reg is not None
        if len(reg.user_regions) <= 1:
            return itertools.repeat(reg.user_regions[0] if reg.user_regions else -1).__next__
        cdf = np.cumsum(np.array(reg.user_shares) / sum(reg.user_shares))
        cdf[-1] = 1.0
        rng = self.rng("workload", "regions")
        regs = reg.user_regions

        def gen():
            while True:
                for i in np.searchsorted(cdf, rng.random(1024), side="right").tolist():
                    yield regs[i]
        return gen().__next__

    def _geo(self, t0: float):
        """The user region of a request arriving now, the entry instance geo routing sends it
        to, and the round trip between them."""
        reg = self.regions
        u = self._next_ureg()
        geo = reg.geo
        e = geo.route[u] if u >= 0 else geo.where[0]
        return u, geo.pickers[e](), reg.rtt_of(u, e)

    def _arrive_regional(self, serve, pick, cls: int, key: int) -> None:
        """:meth:`_arrive` in a design with regions: the user's region is drawn, geo routing
        picks the entry's region, and the request travels the round trip there first."""
        t0 = self._arrival(cls)
        rid = -1 if self.hops is None or t0 < self.warmup else self._root_id()
        u, inst, d = self._geo(t0)
        gen = serve(inst, cls, key, rid * 4 if rid >= 0 else -1)
        if d > 0.0:
            gen = travel(d, gen)
        RegionalTask(self.env, gen, self._finish_regional, t0, cls, rid, key, u, d)._step(None)

    def _finish_regional(self, task: RegionalTask) -> None:
        self._record(task.t0, task.cls, task.value, task.rid, task.key)
        if task.t0 >= self.warmup:
            self.r_ureg.append(max(task.ureg, 0))
            self.r_added.append(task.added)

    def _request_regional(self, serve, pick, cls: int, key: int):
        """:meth:`_request` in a design with regions."""
        t0 = self._arrival(cls)
        rid = self._root(t0) if self.hops is not None else -1
        u, inst, d = self._geo(t0)
        if d > 0.0:
            yield d
        status = yield serve(inst, cls, key, rid * 4 if rid >= 0 else -1)
        self._record(t0, cls, status, rid, key)
        if t0 >= self.warmup:
            self.r_ureg.append(max(u, 0))
            self.r_added.append(d)

    def link(self, a: str, b: str) -> Link | None:
        """The network state between two components, when a fault can touch it."""
        return self.links.get(frozenset((a, b)))

    def _wire(self) -> None:
        """Every edge of the architecture graph, in spec order, becomes calls of its caller."""
        comps = self.components
        for u, v, call in self.arch.call_edges():
            comps[u].wire(call, comps[v])

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
        """How clients choose the entry's instance (the entry kind decides)."""
        return self.components[self.entry].entry_picker()

    def _arrival(self, cls: int) -> float:
        """Count a request of class ``cls`` arriving now, and return the time."""
        t0 = self.env._now
        self.sys_n += 1
        self.sys_start += t0
        if t0 >= self.warmup:
            self.a_start.append(t0)
            self.a_cls.append(cls)
        return t0

    def _root(self, t0: float) -> int:
        """The root id of a request arriving at ``t0`` (-1: not recorded hop by hop)."""
        if self.hops is None or t0 < self.warmup:
            return -1
        return self.hops.root()

    def _arrive(self, serve, pick, cls: int, key: int) -> None:
        """A request from a client arrives now: it runs as its own task (not recorded hop by
        hop)."""
        t0 = self._arrival(cls)
        inst = pick()
        if inst is None:
            self._record(t0, cls, FAILED)  # no entry instance in rotation
            return
        RequestTask(self.env, serve(inst, cls, key, -1), self._finish, t0, cls)._step(None)

    def _finish(self, task: RequestTask) -> None:
        self._record(task.t0, task.cls, task.value)

    def _arrive_recorded(self, serve, pick, cls: int, key: int) -> None:
        """:meth:`_arrive` in a run with hop records: the request draws its root id."""
        t0 = self._arrival(cls)
        rid = -1 if t0 < self.warmup else self._root_id()
        inst = pick()
        if inst is None:
            self._record(t0, cls, FAILED, rid, key)  # no entry instance in rotation
            return
        RecordedTask(self.env, serve(inst, cls, key, rid * 4 if rid >= 0 else -1), self._finish_recorded,
                     t0, cls, rid, key)._step(None)

    def _finish_recorded(self, task: RecordedTask) -> None:
        self._record(task.t0, task.cls, task.value, task.rid, task.key)

    def _record(self, t0: float, cls: int, status: int, rid: int = -1, key: int = -1) -> None:
        now = self.env._now
        self.sys_n -= 1
        self.sys_end += now
        if t0 >= self.warmup:
            self.t_start.append(t0)
            self.t_end.append(now)
            self.code.append(cls * N_STATUS + status)
            if self.hops is not None:
                self._r_id(rid)
                self._r_key(key)
        elif now >= self.warmup:
            self.late_end.append(now)

    def _request(self, serve, pick, cls: int, key: int):
        """A closed-loop user's request: the user waits for it."""
        t0 = self._arrival(cls)
        rid = self._root(t0) if self.hops is not None else -1
        inst = pick()
        status = FAILED if inst is None else (yield serve(inst, cls, key, rid * 4 if rid >= 0 else -1))
        self._record(t0, cls, status, rid, key)

    def _open_source(self, rate: float, profile):
        env = self.env
        warm = self.warmup
        entry = self.components[self.entry]
        serve, pick = entry.serve, self._entry_picker()
        next_cls = self._class_sampler()
        keys = [key_sampler(rc.keys, self.rng("workload", "keys", name))
                for name, rc in self.spec.workload.requests.items()]
        arrivals = self.arrivals
        arrive = self._arrive if self.hops is None else self._arrive_recorded
        if self.regions is not None:
            arrive = self._arrive_regional
        if profile is None:
            gap = sampler(Exponential(1.0 / rate), self.rng("workload", "arrivals"))
            while True:
                yield gap()
                c = next_cls()
                if env._now >= warm:
                    arrivals[c] += 1
                arrive(serve, pick, c, keys[c]())
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
                yield t - env._now
                c = next_cls()
                if t >= warm:
                    arrivals[c] += 1
                arrive(serve, pick, c, keys[c]())

    def _bursty_source(self, rate: float, profile):
        """Bursty open-loop arrivals (``workload.arrivals``): a Markov-modulated Poisson
        process of batches, at a long-run mean of ``rate`` requests per second (batches at
        ``rate`` / E[size]); without an MMPP one state that never ends, without batches
        batches of one. With a ``profile`` ``(rate(t), peak)`` (the load included), each
        state's candidates come at ``peak`` × its multiplier and are kept with probability
        rate(t) / peak (thinning, given the state's path).

        The chain starts in its stationary distribution and visits the states in order, each
        for an exponential time; a pending arrival is dropped at a switch (exponential gaps
        are memoryless). Its own streams: ``workload, mmpp, ...`` and ``workload, batch``."""
        env = self.env
        warm, end = self.warmup, self.end
        wl = self.spec.workload
        arr = wl.arrivals
        assert arr is not None
        entry = self.components[self.entry]
        serve, pick = entry.serve, self._entry_picker()
        next_cls = self._class_sampler()
        keys = [key_sampler(rc.keys, self.rng("workload", "keys", name))
                for name, rc in wl.requests.items()]
        arrivals = self.arrivals
        arrive = self._arrive if self.hops is None else self._arrive_recorded
        if self.regions is not None:
            arrive = self._arrive_regional
        mult = None
        if profile is not None:
            mult, rate = profile
        if not rate > 0:
            return
        batch_rate = rate / arr.batch_mean
        if arr.mmpp is not None:
            rates = [batch_rate * m for m in arr.mmpp.multipliers]
            stays = [sampler(Exponential(st.mean_sojourn), self.rng("workload", "mmpp", "sojourn", i))
                     for i, st in enumerate(arr.mmpp.states)]
            cum = np.cumsum(arr.mmpp.shares)
            state = min(int(np.searchsorted(cum, self.rng("workload", "mmpp", "start").random(),
                                            side="right")), len(rates) - 1)
        else:
            rates, stays, state = [batch_rate], [lambda: float("inf")], 0
        k = len(rates)
        unit = sampler(Exponential(1.0), self.rng("workload", "mmpp", "gaps"))
        u = uniform_sampler(self.rng("workload", "mmpp", "thinning")) if mult is not None else None
        if arr.batch is not None:
            size, size_rng = arr.batch.size, self.rng("workload", "batch")

            def sizes():
                while True:
                    yield from size.draw(size_rng, 1024).tolist()
            next_size = sizes().__next__
        else:
            next_size = itertools.repeat(1).__next__
        t = env._now
        switch = t + stays[state]()
        lam = rates[state]
        while True:
            t_next = t + unit() / lam if lam > 0 else switch
            if t_next >= switch:  # the state ends first: the next one starts afresh
                t = switch
                if t >= end:
                    return
                state = (state + 1) % k
                switch = t + stays[state]()
                lam = rates[state]
                continue
            t = t_next
            if t >= end:
                return
            if u is not None and u() * rate > mult(t):
                continue
            yield t - env._now
            counted = t >= warm
            for _ in range(next_size()):
                c = next_cls()
                if counted:
                    arrivals[c] += 1
                arrive(serve, pick, c, keys[c]())

    def _user(self, idx: int, think, pick):
        env = self.env
        serve = self.components[self.entry].serve
        next_cls = self._class_sampler("user", idx)
        keys = [key_sampler(rc.keys, self.rng("workload", "keys", name, "user", idx))
                for name, rc in self.spec.workload.requests.items()]
        request = self._request if self.regions is None else self._request_regional
        while True:
            yield think()
            c = next_cls()
            if env._now >= self.warmup:
                self.arrivals[c] += 1
            yield request(serve, pick, c, keys[c]())

    @property
    def entry(self) -> str:
        return self.arch.entry

    def start(self) -> None:
        env = self.env
        wl = self.spec.workload
        if wl.users is not None:
            n_users = max(1, int(round(wl.users * self.load)))
            pick = self._entry_picker()  # shared by all users
            for i in range(n_users):
                think = sampler(wl.think_time, self.rng("workload", "think", i))
                spawn(env, self._user(i, think, pick))
        else:
            profile = rate_profile(wl, self.load, self.arch.base_dir, self.end)
            if wl.bursty:  # an MMPP or batches: their own source, chosen once
                spawn(env, self._bursty_source(wl.base_rate * self.load, profile))
            elif profile is None:
                if wl.base_rate * self.load > 0:
                    spawn(env, self._open_source(wl.base_rate * self.load, None))
            else:
                spawn(env, self._open_source(0.0, profile))
        for u, v, call in self.arch.call_edges():  # consumers and other per-call processes
            self.components[u].start_call(call, self.components[v])
        for comp in self.components.values():  # the components' own processes (autoscalers)
            comp.start()
        if self.regions is not None:
            self.regions.geo.start()
        schedule_faults(self)
        schedule_deployments(self)
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
        if self.regions is not None:
            self.regions.on_warm()
        for c in self.components.values():
            c.on_warm()

    def events_scheduled(self) -> int:
        """How many events the run has put on SimPy's queue so far (its event ids)."""
        return self.env._eid.__reduce__()[1][0]

    def sys_area(self, t: float) -> float:
        return self.sys_end + self.sys_n * t - self.sys_start

    def run(self, *, progress: Any = None, stop: Callable[[], None] | None = None):
        """Run to the end and return the :class:`~simarch.results.result.Result`.

        With a ``progress`` bar (:class:`~simarch.run.progress.RunProgress`) or a ``stop``
        hook the run goes in chunks of simulated time (:meth:`run_in_chunks`): after each,
        ``stop()`` may end the run by raising (:class:`~simarch.run.early_stop.SloWatch`
        raises :class:`~simarch.run.early_stop.RunStopped`), then ``progress.update(now,
        events)`` moves the bar. Chunks change nothing that is simulated.
        """
        self.start()
        with paused_gc():
            if progress is None and stop is None:
                run_until(self.env, self.end)
            else:
                self.run_in_chunks(progress, stop)
        return collect(self)

    # -- the run in chunks (a progress bar, a stop hook)
    RUN_CHUNKS = 200

    def run_in_chunks(self, progress: Any = None, stop: Callable[[], None] | None = None,
                      chunks: int = RUN_CHUNKS) -> None:
        """Run the started simulation to its end in ``chunks`` equal steps of simulated time.

        The same events run in the same order as in one run to the end: a step processes the
        events strictly before its end and schedules nothing, and the last step ends at
        ``end`` exactly.
        """
        env, end = self.env, self.end
        try:
            for k in range(1, chunks + 1):
                t = end if k == chunks else end * k / chunks
                if t > env._now:
                    run_until(env, t)
                if stop is not None and k < chunks:  # (at the end the run is whole)
                    stop()
                if progress is not None:
                    progress.update(env._now, self.events_scheduled())
        finally:
            if progress is not None:
                progress.close()

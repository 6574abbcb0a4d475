"""Regions at run time: each pool's region, the round trips between regions, the global
routing of the users' traffic and its view of which regions are lost, and the calls that
cross regions.

Everything here is built at wiring, and only for a design with a ``regions:`` section: a
design without regions runs none of it.

* Every pool gets ``region`` (its component's ``region:`` for that copy, or the region of its
  zone) and ``rix``, that region's number in the matrix (-1: none).
* A call from a caller pool in region A to a callee pool in region B takes the round trip
  ``rtt[A][B]`` before the callee's visit (:class:`RegionalServe` wraps the callee's
  ``serve``). Callers prefer the callee's instances in their own region, then the nearest
  region where the callee has an instance that is up (internal calls fail over at once: the
  callee's instances' state). A datastore takes the trips itself, to the copy that serves
  each call (:class:`PlacedServe`: the one-way time there before the visit, and back after
  it): a write to the shard's current primary (or the caller region's leader), a read to the
  copy its read policy picks, its caller's region first. Another callee that routes
  internally (a queue) is reached in the region of its first copy.
* Users come from regions in the workload's shares; the global routing sends each to the
  nearest region that has an instance of the entry and that it counts healthy
  (:class:`GeoRouting`): health checks probe each region's entry instances, a region counts
  lost after ``unhealthy_after`` failed checks in a row, and with DNS failover clients keep
  going to it for the TTL after that (their requests fail there, as a real client's do).
  Traffic comes back the same way after recovery.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..model.regions import component_regions, rtt_matrix
from .pickers import make_picker
from .pools import ANY, Pool
from .tasks import RecordedTask


class RegionalTask(RecordedTask):
    """A request task in a design with regions: also the user's region and the round trip
    added on the way to the entry."""

    __slots__ = ("ureg", "added")

    def __init__(self, env: Any, gen: Any, on_done: Callable, t0: float, cls: int, rid: int, key: int,
                 ureg: int, added: float):
        RecordedTask.__init__(self, env, gen, on_done, t0, cls, rid, key)
        self.ureg = ureg
        self.added = added


def travel(delay: float, gen: Any):
    """Take ``delay`` (a round trip between regions), then hand over to ``gen``."""
    yield delay
    return gen


class RegionalServe:
    """The callee's ``serve`` as one caller region sees it: the round trip to the picked
    instance's region first. Counts the calls and those that cross regions; stands in for
    the callee where the resilience wrappers want one (``index``, ``extra``)."""

    __slots__ = ("target", "rtt", "home", "index", "calls", "crossed", "added")

    def __init__(self, target: Any, rtt_row: list[float], home: int):
        self.target = target
        self.rtt = rtt_row  # round trip from the caller's region to each region
        self.home = home  # the region of an internally routed callee (-1: none)
        self.index = target.index
        self.calls = 0
        self.crossed = 0
        self.added = 0.0

    @property
    def extra(self) -> int:
        return self.target.extra

    @extra.setter
    def extra(self, v: int) -> None:
        self.target.extra = v

    def serve(self, inst: Pool, cls: int, key: int, parent: int):
        r = inst.rix if inst is not ANY else self.home
        self.calls += 1
        d = self.rtt[r] if r >= 0 else 0.0
        if d > 0.0:
            self.crossed += 1
            self.added += d
            return travel(d, self.target.serve(inst, cls, key, parent))
        return self.target.serve(inst, cls, key, parent)


class PlacedServe(RegionalServe):
    """The callee's entry point for one caller region, for a callee that places its own
    copies in regions and takes the trips to them itself (a datastore: the copy that serves a
    call depends on the op, the read policy and the failovers). At wiring the callee's
    ``serve_from(self)`` gives the entry point for this caller region (and may keep its own
    per-region state in ``ctx``); the callee adds ``crossed`` and ``added`` itself.

    ``row[i]`` is the one-way time (s) from the caller's region to the callee's pool ``i``."""

    __slots__ = ("rix", "row", "ctx", "_enter")

    def __init__(self, target: Any, rtt_row: list[float], rix: int, row: list[float]):
        RegionalServe.__init__(self, target, rtt_row, -1)
        self.rix = rix  # the caller's region (-1: none)
        self.row = row
        self.ctx: Any = None
        self._enter = target.serve_from(self)

    def serve(self, inst: Pool, cls: int, key: int, parent: int):
        self.calls += 1
        return self._enter(self, cls, key, parent)


class GeoRouting:
    """The global routing's view of the regions, and where each user region's traffic goes.

    ``route[u]`` is the region (number) users of region ``u`` are sent to now: the nearest
    region with an entry instance that the routing counts healthy (all lost: the nearest
    one anyway). ``events`` logs each change of the view."""

    def __init__(self, sim: Any, regions: RegionRuntime, entry: Any):
        self.sim = sim
        self.env = sim.env
        self.fo = sim.spec.regions.failover
        r = regions
        k = len(r.names)
        self.pools: dict[int, list[Pool]] = {}
        for p in entry.pools:
            if p.rix >= 0:
                self.pools.setdefault(p.rix, []).append(p)
        if not self.pools:  # an entry without a region: everyone reaches it, with no round trip
            self.pools[-1] = list(entry.pools)
        self.where = sorted(self.pools)  # regions with an entry instance
        # per user region, the entry's regions nearest first (ties: the design's order)
        self.order = [sorted(self.where, key=lambda e, u=u: (r.rtt_of(u, e), e != u, e)) for u in range(k)]
        self.healthy = {e: True for e in self.where}  # what the clients act on (after the TTL)
        self.route = [o[0] for o in self.order]
        self.events: list[tuple[float, str, str]] = []
        self.pickers: dict[int, Callable[[], Pool]] = {
            e: make_picker(entry.spec.policy, ps, sim.rng(entry.name, "route", "region", e))
            for e, ps in self.pools.items()}

    def start(self) -> None:
        if self.where == [-1]:
            return
        for e in self.where:
            self.env.process(self._checks(e))

    def _refresh(self) -> None:
        for u, order in enumerate(self.order):
            self.route[u] = next((e for e in order if self.healthy[e]), order[0])

    def _apply(self, e: int, healthy: bool) -> None:
        self.healthy[e] = healthy
        self.events.append((self.env.now, "region healthy" if healthy else "region lost",
                            self.sim.regions.names[e]))
        self._refresh()

    def _checks(self, e: int):
        """Health checks of region ``e``'s entry instances (up: some instance is up), at a
        random phase of the interval, as an independent checker's."""
        env, fo = self.env, self.fo
        pools = self.pools[e]
        ttl = fo.ttl
        seen = True  # what the checks have decided
        fails = oks = 0
        yield env.timeout(self.sim.uniform("regions", "health", self.sim.regions.names[e])() * fo.interval)
        while True:
            up = any(not p.down for p in pools)
            if up:
                oks, fails = oks + 1, 0
                change = not seen and oks >= fo.healthy_after
            else:
                fails, oks = fails + 1, 0
                change = seen and fails >= fo.unhealthy_after
            if change:
                seen = not seen
                if ttl > 0:  # clients act on it once their cached answer expires
                    ev = env.timeout(ttl)
                    ev.callbacks.append(lambda _ev, e=e, h=seen: self._apply(e, h))
                else:
                    self._apply(e, seen)
            yield env.timeout(fo.interval)


class RegionRuntime:
    """The design's regions at run time (``sim.regions``): names, round trips (s), each
    pool's region, the geo routing of the users and the calls' crossings."""

    def __init__(self, sim: Any):
        spec = sim.spec
        self.names, self.rtt = rtt_matrix(spec)
        self.ix = {n: i for i, n in enumerate(self.names)}
        regs = component_regions(spec)
        for name, comp in sim.components.items():
            per = regs[name]
            k = len(per)
            for i, p in enumerate(comp.pools):
                reg = per[i % k] if k else None
                p.region = reg
                p.rix = self.ix[reg] if reg is not None else -1
        shares = spec.workload.regions
        entry = sim.components[sim.entry]
        if shares:
            self.user_regions = [self.ix[u] for u in shares]
            self.user_shares = [float(v) for v in shares.values()]
        else:  # users in the entry's first region (or nowhere)
            first = next((p.rix for p in entry.pools if p.rix >= 0), -1)
            self.user_regions = [first] if first >= 0 else []
            self.user_shares = [1.0] if first >= 0 else []
        self.geo = GeoRouting(sim, self, entry)
        self.serves: list[tuple[str, str, RegionalServe]] = []  # (caller, callee, wrapper)
        self.warm: list[tuple[int, int, float]] = []

    def rtt_of(self, a: int, b: int) -> float:
        """The round trip (s) between regions ``a`` and ``b`` (numbers; -1: no region, 0)."""
        if a < 0 or b < 0:
            return 0.0
        return self.rtt[a][b]

    def delay(self, a: Pool, b: Pool) -> float:
        """One way (s) between two pools' regions: half the round trip."""
        return 0.5 * self.rtt_of(a.rix, b.rix)

    def regional_pick(self, caller_rix: int, target: Any, base_pick: Callable[[], Pool | None],
                      tag: str) -> Callable[[], Pool | None]:
        """The pick of ``target``'s instance for callers in region ``caller_rix``: its
        instances there first, then the nearest region where one is up. A callee that routes
        internally, or whose instances come and go, keeps ``base_pick``."""
        if target.routes_internally or target.rotation is not None:
            return base_pick
        by_region: dict[int, list[Pool]] = {}
        for p in target.pools:
            by_region.setdefault(p.rix, []).append(p)
        if len(by_region) <= 1:
            return base_pick
        order = sorted(by_region, key=lambda r: (self.rtt_of(caller_rix, r), r != caller_rix, r))
        policy = target.spec.policy
        cands = [(by_region[r], make_picker(policy, by_region[r], target.sim.rng(target.name, "route", "region",
                                                                                 tag, r)))
                 for r in order]
        first_pools, first_pick = cands[0]

        def pick() -> Pool | None:
            for p in first_pools:
                if not p.down:
                    return first_pick()
            for pools, pk in cands[1:]:
                for p in pools:
                    if not p.down:
                        return pk()
            return first_pick()  # nothing up anywhere: the local instances (they fail)
        return pick

    def serve_for(self, caller: str, caller_rix: int, target: Any) -> RegionalServe:
        """The callee's ``serve`` for callers in region ``caller_rix``: a callee with a
        ``serve_from`` hook (a datastore) takes the trips to the copy that serves each call
        itself (:class:`PlacedServe`); any other takes the round trip to the picked instance's
        region (an internally routed one: to its first copy's)."""
        row = self.rtt[caller_rix] if caller_rix >= 0 else [0.0] * len(self.names)
        rs: RegionalServe
        if getattr(target, "serve_from", None) is not None:
            rs = PlacedServe(target, row, caller_rix, [0.5 * self.rtt_of(caller_rix, p.rix) for p in target.pools])
        else:
            home = next((p.rix for p in target.pools if p.rix >= 0), -1)
            rs = RegionalServe(target, row, home)
        self.serves.append((caller, target.name, rs))
        return rs

    def on_warm(self) -> None:
        self.warm = [(rs.calls, rs.crossed, rs.added) for _, _, rs in self.serves]

    def call_rows(self) -> list[dict[str, Any]]:
        """Per call edge: calls in the window, those that crossed regions, their share and
        the mean round trip they added (ms per call)."""
        rows: dict[tuple[str, str], list[float]] = {}
        warm = self.warm or [(0, 0, 0.0)] * len(self.serves)
        for (u, v, rs), (c0, x0, a0) in zip(self.serves, warm, strict=True):
            acc = rows.setdefault((u, v), [0, 0, 0.0])
            acc[0] += rs.calls - c0
            acc[1] += rs.crossed - x0
            acc[2] += rs.added - a0
        return [{"call": f"{u}->{v}", "calls": int(n), "cross_region": int(x),
                 "cross_region_share": x / n if n else float("nan"),
                 "added_ms_per_call": 1e3 * a / n if n else float("nan")}
                for (u, v), (n, x, a) in rows.items()]

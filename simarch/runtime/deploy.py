"""Deployments: one SimPy process per entry of the spec's ``deployments``, replacing the
instances of a service while the run goes on (the spec is :mod:`simarch.model.deployments`).

Everything goes through the target's :class:`~simarch.runtime.rotation.Rotation`, which
every picker over the service reads (its callers', its load balancers' health-checked
lists, the clients'), so a change reaches every caller at once:

* **out**: the instance is taken out of rotation: no new request reaches it;
* **drain**: the requests it holds go on, for at most ``drain_timeout``;
* **stop**: the instance is stopped (crashed, fail fast): what is left of its work fails;
* **restart**: it is down for a draw of ``restart`` (the time from stop to ready), then up,
  running the new version (its own error rate and service-time factor, if any);
* **in**: it is put back once every health-checked load balancer in front passes it (they
  saw it down while it restarted and want ``healthy_after`` passing checks); without one at
  once. A cold start (``cold_start``) starts when it takes traffic again.

Instances started afresh (a surge, the green set) begin at **start** (down while they
provision) and go on as **in**; instances stopped for good (replaced by a surge, the blue
set) end idle, out of rotation. Every step is logged in ``sim.deploy_log`` and every
deployment in ``sim.deploy_runs``; the results turn them into ``Result.deployments()``.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Generator
from types import MethodType
from typing import TYPE_CHECKING, Any

import numpy as np
from simpy import Interrupt

from ..model.deployments import BlueGreenDeployment, CanaryDeployment, RollingDeployment
from ..model.dists import sampler
from ..model.status import OK
from .rotation import DRAIN_POLL, warming

if TYPE_CHECKING:
    from .component import Component
    from .pools import Pool

    Simulation = Any  # the run driver (simarch.run), which this module must not import

P99_MIN = 100  # visits a window needs before its p99 is judged


class Watch:
    """The visits to the pools being watched by a rollback rule: end time, residence time
    and whether each succeeded, in end-time order (columns, no object per visit)."""

    __slots__ = ("end", "lat", "ok", "pools", "lo")

    def __init__(self) -> None:
        self.end = array("d")
        self.lat = array("d")
        self.ok = array("b")
        self.pools: set[Pool] = set()
        self.lo = 0  # first record inside the current window

    def window(self, since: float) -> tuple[np.ndarray, np.ndarray]:
        """Residence times and successes of the visits that ended after ``since``."""
        end = self.end
        lo = self.lo
        while lo < len(end) and end[lo] <= since:
            lo += 1
        self.lo = lo
        # copies (a view would pin the columns, which go on growing)
        lat = np.array(self.lat[lo:], dtype=float)
        ok = np.array(self.ok[lo:], dtype=np.int8)
        return lat, ok


def _watched_serve(comp: Component, pool: Pool, cls: int, key: int, parent: int):
    """The target's ``serve`` while a rollback rule watches it: visits to watched pools are
    timed (a frame more); the others go straight on."""
    inner = comp._plain_serve(pool, cls, key, parent)
    w = comp._watch
    if pool not in w.pools:
        return inner
    return _timed_visit(comp.env, inner, w)


def _timed_visit(env: Any, gen: Generator, w: Watch):
    t0 = env._now
    status = yield gen
    now = env._now
    w.end.append(now)
    w.lat.append(now - t0)
    w.ok.append(1 if status == OK else 0)
    return status


def prepare_deployments(sim: Simulation) -> None:
    """Before wiring: the targets of deployments with a rollback rule get a watched ``serve``
    (so that every caller's call goes through it)."""
    sim.deploy_log = []
    sim.deploy_runs = []
    for d in sim.spec.deployments:
        comp = sim.components[d.target]
        if getattr(d, "rollback", None) is not None and not hasattr(comp, "_watch"):
            comp._watch = Watch()
            comp._plain_serve = comp.serve
            comp.serve = MethodType(_watched_serve, comp)


def schedule_deployments(sim: Simulation) -> None:
    """Start one process per deployment; deployments of one service run one after the other."""
    last: dict[str, Any] = {}
    for i, d in enumerate(sim.spec.deployments):
        run = DeployRun(sim, d, i)
        sim.deploy_runs.append(run.record)
        done = sim.env.event()
        sim.env.process(run.main(last.get(d.target), done))
        last[d.target] = done


class DeployRun:
    """One deployment in progress: its steps, its log and its record."""

    def __init__(self, sim: Simulation, d: Any, index: int):
        self.sim = sim
        self.env = sim.env
        self.d = d
        self.comp: Component = sim.components[d.target]
        self.rot = self.comp.rotation
        self.label = d.label
        tags = ("deploy", index, d.target)
        draw = d.provision if isinstance(d, BlueGreenDeployment) else d.restart
        self.restart = sampler(draw, sim.rng(*tags, "restart"))  # (or provision)
        self.n: int = sim.spec.components[d.target].instances
        self.record: dict[str, Any] = {
            "deployment": self.label, "target": d.target, "strategy": d.strategy,
            "at": d.at, "start": None, "end": None, "rolled_back": False, "reason": "",
            "instances": self.n, "extra_instance_s": 0.0, "failed_by_stop": 0,
            "min_in_rotation": None}
        self.billed = 0  # instances running beyond the tier's own, for the extra cost
        self.billed_since = 0.0
        v = d.version
        self.version = (0.0, 1.0) if v is None else (v.errors, v.latency_factor)

    # -- bookkeeping
    def log(self, step: str, where: str, detail: str = "") -> None:
        self.sim.deploy_log.append((self.env.now, self.label, step, where, detail))

    def _bill(self, change: int) -> None:
        now = self.env.now
        self.record["extra_instance_s"] += self.billed * (now - self.billed_since)
        self.billed += change
        self.billed_since = now

    # -- the steps of one instance (SimPy process bodies)
    def take_out(self, pool: Pool) -> None:
        self.rot.take_out(pool, self.env.now)
        self.log("out", pool.name, f"{pool.load} in flight")

    def drain(self, pool: Pool) -> Generator:
        """Wait for the instance's work, up to ``drain_timeout``."""
        env = self.env
        t0 = env.now
        try:
            drained = yield env.process(self.rot.drain(env, pool, self.d.drain_timeout))
        except Interrupt:  # put back in rotation (a rollback): no longer draining
            return
        self.log("drained" if drained else "drain timeout", pool.name,
                 f"{env.now - t0:.3f}s" + ("" if drained else f", {pool.load} in flight"))

    def stop(self, pool: Pool) -> None:
        """Stop the instance (fail fast): what is left of its work fails."""
        left = pool.load
        self.record["failed_by_stop"] += left
        self.comp.crash([pool], False)  # waiting requests fail now, those in service when they end
        self.log("stopped", pool.name, f"{left} in flight fail" if left else "")

    def drain_and_stop(self, pool: Pool) -> Generator:
        """Wait for the instance's work (up to ``drain_timeout``), then stop it."""
        yield self.env.process(self.drain(pool))
        self.stop(pool)

    def boot(self, pool: Pool, version: tuple[float, float]) -> Generator:
        """The instance (down) becomes ready after a draw of ``restart`` (or ``provision``),
        running ``version``."""
        yield self.env.timeout(self.restart())
        self.comp.recover([pool])
        self.comp.set_version(pool, *version)
        self.log("ready", pool.name)

    def join(self, pool: Pool) -> Generator:
        """Wait until every health check in front passes the instance, then put it in."""
        env = self.env
        while not self.rot.healthy(pool):
            yield env.timeout(DRAIN_POLL)
        self.rot.put_in(pool, env.now)
        cold = self.d.cold_start
        if cold is not None:
            self.comp.set_cold(pool, warming(env.now, cold.factor, cold.period, cold.decay))
        self.log("in", pool.name)

    def restart_in_place(self, pool: Pool, version: tuple[float, float], step: str = "") -> Generator:
        """out, drain, stop, restart, in: one instance replaced where it stands."""
        if step:
            self.log(step, pool.name)
        self.take_out(pool)
        yield self.env.process(self.drain_and_stop(pool))
        yield self.env.process(self.boot(pool, version))
        yield self.env.process(self.join(pool))

    def start_new(self, pool: Pool, version: tuple[float, float], join: bool = True) -> Generator:
        """An idle instance out of rotation starts (down while it provisions), then joins."""
        self.comp.crash([pool], False)
        self._bill(+1)
        self.log("start", pool.name)
        yield self.env.process(self.boot(pool, version))
        if join:
            yield self.env.process(self.join(pool))

    def retire(self, pool: Pool, drained: bool = False) -> Generator:
        """An instance out of rotation drains (unless ``drained``) and stops for good (it
        ends idle)."""
        if not drained:
            yield self.env.process(self.drain(pool))
        self.stop(pool)
        self.comp.recover([pool])  # gone: an idle instance out of rotation, not a dead one
        self._bill(-1)

    def all_of(self, bodies: list[Generator]) -> Any:
        return self.env.all_of([self.env.process(b) for b in bodies])

    # -- the deployment
    def main(self, after: Any, done: Any) -> Generator:
        env = self.env
        d = self.d
        try:
            if d.at > env.now:
                yield env.timeout(d.at - env.now)
            if after is not None and not after.triggered:
                self.log("waits", d.target, "for the deployment before it")
                yield after
            self.record["start"] = env.now
            self.billed_since = env.now
            self.log("begin", d.target, d.strategy)
            if isinstance(d, RollingDeployment):
                yield env.process(self.rolling(list(self.rot.live), d.batch.of(self.n), d.pause))
            elif isinstance(d, CanaryDeployment):
                yield env.process(self.canary())
            elif isinstance(d, BlueGreenDeployment):
                yield env.process(self.blue_green())
            self._bill(0)
            self.record["end"] = env.now
            self.log("end", d.target, "rolled back" if self.record["rolled_back"] else "done")
        finally:
            done.succeed()

    def _spares(self, old: list[Pool]) -> list[Pool]:
        return [p for p in self.comp.pools if p not in self.rot.live_set and p not in old]

    def rolling(self, old: list[Pool], batch: int, pause: float) -> Generator:
        """Replace ``old`` ``batch`` at a time: in place, or with ``surge`` new instances
        started before the batch stops (those it replaces end idle and are the next spares)."""
        env = self.env
        surge = getattr(self.d, "surge", None)
        spares = self._spares(old) if surge is not None else []
        for k in range(0, len(old), batch):
            group = old[k:k + batch]
            self.log("batch", ", ".join(p.name for p in group), f"{k // batch + 1} of "
                     f"{math.ceil(len(old) / batch)}")
            fresh = spares[:min(len(spares), len(group))]
            if fresh:  # surge: the new instances first, then the old ones go
                yield self.all_of([self.start_new(p, self.version) for p in fresh])
                for p in group:
                    self.take_out(p)
                going, staying = group[:len(fresh)], group[len(fresh):]
                bodies = [self.retire(p) for p in going]
                bodies += [self._restart_taken_out(p) for p in staying]
                yield self.all_of(bodies)
                spares = spares[len(fresh):] + going
            else:
                yield self.all_of([self.restart_in_place(p, self.version) for p in group])
            self._note_rotation()
            if pause > 0:
                yield env.timeout(pause)

    def _restart_taken_out(self, pool: Pool) -> Generator:
        yield self.env.process(self.drain_and_stop(pool))
        yield self.env.process(self.boot(pool, self.version))
        yield self.env.process(self.join(pool))

    def _note_rotation(self) -> None:
        """The fewest instances in rotation since the deployment began."""
        start = self.record["start"]
        counts = [n for t, n in self.rot.log if t >= start]
        before = [n for t, n in self.rot.log if t < start]
        if before:
            counts.append(before[-1])
        self.record["min_in_rotation"] = min(counts) if counts else len(self.rot)

    def canary(self) -> Generator:
        d: CanaryDeployment = self.d
        env = self.env
        old = list(self.rot.live)
        k = d.share.of(self.n)
        canaries = old[:k]
        self.log("canary", ", ".join(p.name for p in canaries), f"{k} of {self.n}")
        yield self.all_of([self.restart_in_place(p, self.version) for p in canaries])
        self._note_rotation()
        fired = yield env.process(self.bake(canaries, d.bake, d.rollback))
        if fired:
            self.record["rolled_back"] = True
            self.record["reason"] = fired
            self.log("rollback", ", ".join(p.name for p in canaries), fired)
            # the bad version stops taking traffic at once, then restarts as the old one
            for p in canaries:
                self.take_out(p)
            yield self.all_of([self._back_to_old(p) for p in canaries])
        elif d.promote:
            self.log("promote", d.target, f"{self.n - k} instance(s) left")
            yield env.process(self.rolling(old[k:], d.batch.of(self.n), d.pause))
        self._note_rotation()

    def _back_to_old(self, pool: Pool) -> Generator:
        yield self.env.process(self.drain_and_stop(pool))
        yield self.env.process(self.boot(pool, (0.0, 1.0)))
        yield self.env.process(self.join(pool))

    def bake(self, pools: list[Pool], bake: float, rule: Any) -> Generator:
        """Watch ``pools`` for ``bake`` seconds; returns why the rule fired, or ``""``."""
        env = self.env
        end = env.now + bake
        if rule is None:
            yield env.timeout(bake)
            return ""
        w: Watch = self.comp._watch
        w.pools = set(pools)
        w.lo = len(w.end)
        since = env.now
        step = rule.window / 10
        try:
            while env.now < end:
                yield env.timeout(min(step, end - env.now))
                lat, ok = w.window(max(since, env.now - rule.window))
                n = len(ok)
                if n < rule.min_requests:
                    continue
                if rule.errors is not None:
                    share = 1.0 - float(ok.mean())
                    if share > rule.errors:
                        return (f"errors {share:.2%} > {rule.errors:.2%} over {n} visits in the "
                                f"last {min(rule.window, env.now - since):g}s")
                if rule.p99 is not None:
                    good = lat[ok == 1]
                    if len(good) >= P99_MIN:
                        p99 = float(np.percentile(good, 99))
                        if p99 > rule.p99:
                            return (f"p99 {p99 * 1e3:.4g} ms > {rule.p99 * 1e3:.4g} ms over "
                                    f"{len(good)} visits in the last "
                                    f"{min(rule.window, env.now - since):g}s")
            return ""
        finally:
            w.pools = set()

    def blue_green(self) -> Generator:
        d: BlueGreenDeployment = self.d
        env = self.env
        blue = list(self.rot.live)
        green = self._spares(blue)[:len(blue)]
        self.log("provision", ", ".join(p.name for p in green), f"{len(green)} instance(s)")
        yield self.all_of([self.start_new(p, self.version, join=False) for p in green])
        # every green instance passes the health checks, then traffic switches at once
        while not all(self.rot.healthy(p) for p in green):
            yield env.timeout(DRAIN_POLL)
        self.switch(green, blue)
        drains = [env.process(self.drain(p)) for p in blue]
        fired = yield env.process(self.bake(green, d.bake, d.rollback))
        if fired:
            self.record["rolled_back"] = True
            self.record["reason"] = fired
            self.log("rollback", d.target, fired)
            for proc in drains:
                if proc.is_alive:
                    proc.interrupt()
            self.switch(blue, green, cold=False)
            yield self.all_of([self.retire(p) for p in green])
        else:
            yield env.all_of(drains)  # (the old set stays up for the bake, drained or not)
            yield self.all_of([self.retire(p, drained=True) for p in blue])
        self._note_rotation()

    def switch(self, to: list[Pool], away: list[Pool], cold: bool = True) -> None:
        """Every request goes to ``to`` from now on (put in first: no instant without any)."""
        now = self.env.now
        for p in to:
            self.rot.put_in(p, now)
            if cold and self.d.cold_start is not None:
                c = self.d.cold_start
                self.comp.set_cold(p, warming(now, c.factor, c.period, c.decay))
        for p in away:
            self.rot.take_out(p, now)
        self.log("switch", ", ".join(p.name for p in to), f"from {', '.join(p.name for p in away)}")

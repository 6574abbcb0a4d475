"""The service kind: a tier of identical instances, each a pool of workers with a bounded
wait queue; with ``rate_limit`` it sheds what exceeds its admission rate (lower priorities
first, when classes have priorities), with ``concurrency_limit`` it rejects a request that
finds its instance at the cap of requests in flight, and with ``autoscale`` its instances
come and go (:mod:`simarch.runtime.autoscale`)."""

from __future__ import annotations

import math
from typing import Any

from ..model.status import OK, REJECTED
from ..runtime.autoscale import Autoscaler
from ..runtime.overload import CANCELLING, Limiter, PriorityBucket, PriorityPool, make_limiter
from ..runtime.pools import Pool, TokenBucket
from .base import Kind
from .registry import register


@register
class Service(Kind):
    kind = "service"
    label = "service"
    colour = "#dbe9f6"

    def __init__(self, sim: Any, name: str, spec: Any):
        super().__init__(sim, name, spec)
        rl = spec.rate_limit
        self.bucket: TokenBucket | None = None
        self.shed = 0
        self.autoscaler = Autoscaler(self, spec.autoscale) if spec.autoscale is not None else None
        # (no further attributes: see simarch.runtime.overload.QueueSetup; a concurrency
        # limit lives on each pool)
        if rl is not None:
            q = self.queue_setup()
            if q.prioritised:
                self.bucket = PriorityBucket(rl.rate, rl.burst, q.ranks)
                self.serve = self._serve_by_priority  # type: ignore[method-assign]
            else:
                self.bucket = TokenBucket(rl.rate, rl.burst)
        if spec.concurrency_limit is not None:
            for p in self.pools:
                self._limit(p)
            self.serve = self._serve_limited  # type: ignore[method-assign]

    # -- autoscaling: a pool for each instance it may run, the first ``instances`` in rotation
    def pool_count(self) -> int:
        return self.spec.autoscale.max if self.spec.autoscale is not None else super().pool_count()

    def start(self) -> None:
        if self.autoscaler is not None:
            self.autoscaler.start()

    def consumes(self, backlog: Any) -> Any:
        """A queue's consumer group ``backlog`` feeds this service: its autoscaler (or
        ``None``) learns of it, and is what the group's consumers report to."""
        if self.autoscaler is not None:
            self.autoscaler.add_backlog(backlog)
        return self.autoscaler

    def _limit(self, pool: Pool) -> Limiter:
        """Give ``pool`` (an instance) its concurrency limit."""
        lim = make_limiter(self.spec.concurrency_limit, self.sim.end / 1000)  # ~1,000 changes kept
        pool.limiter = lim
        return lim

    @property
    def limiters(self) -> dict[Pool, Limiter]:
        """The concurrency limit of each instance that has one."""
        return {p: p.limiter for p in self.pools if p.limiter is not None}

    def serve(self, pool: Pool, cls: int, key: int, parent: int):
        if self.bucket is not None and not self.bucket.take(self.env._now):
            return self._shed(pool, parent)
        return self._serve(pool, cls, key, parent, self.calls[cls], self.fwd[cls])

    def _serve_by_priority(self, pool: Pool, cls: int, key: int, parent: int):
        """:meth:`serve` with a token bucket that keeps tokens for higher priorities."""
        if not self.bucket.take_cls(self.env._now, cls):  # type: ignore[union-attr]
            return self._shed(pool, parent)
        return self._serve(pool, cls, key, parent, self.calls[cls], self.fwd[cls])

    def _serve_limited(self, pool: Pool, cls: int, key: int, parent: int):
        """:meth:`serve` under a concurrency limit: a request that finds its instance's
        requests in flight at the limit is rejected at once, before it queues; each answer
        is a sample for an adaptive limit."""
        env = self.env
        bucket = self.bucket
        if bucket is not None:
            ok = bucket.take_cls(env._now, cls) if type(bucket) is PriorityBucket else bucket.take(env._now)
            if not ok:
                return (yield self._shed(pool, parent))
        lim = pool.limiter
        if lim is None:  # an instance added during the run
            lim = self._limit(pool)
        if lim.inflight >= lim.limit:
            lim.rejected += 1
            return (yield self._shed(pool, parent))
        lim.inflight += 1
        inflight = lim.inflight
        t0 = env._now
        try:
            status = yield self._serve(pool, cls, key, parent, self.calls[cls], self.fwd[cls])
        except GeneratorExit:  # cancelled (cancel: true): no longer in flight
            if CANCELLING[0]:
                lim.inflight -= 1
            raise
        lim.inflight -= 1
        now = env._now
        lim.sample(now, now - t0, status == OK, inflight)
        return status

    def _shed(self, pool: Pool, parent: int):
        self.arrived += 1
        self.shed += 1
        if parent >= 0:
            t = self.env._now
            self._row(self.hops.new_id(), parent, pool, t, t, t, t, REJECTED)
        return REJECTED
        yield  # a generator, like every request path

    def counters(self, t: float) -> dict[str, Any]:
        out = super().counters(t)
        out["shed"] = self.shed
        a = self.autoscaler
        if a is not None:
            out.update(serving=a.serving_area(t), billed=a.billed_area(t), pool_serving=a.pool_serving_area(t))
        out["limit_shed"] = sum(lim.rejected for lim in self.limiters.values())
        out["evicted"] = sum(getattr(p, "evicted", 0) for p in self.pools)
        out["dropped"] = sum(getattr(p, "dropped", 0) for p in self.pools)
        out["expired"] = sum(getattr(p, "expired", 0) for p in self.pools)
        out["cancelled"] = sum(p.cancelled for p in self.pools)
        return out

    def window_stats(self, now, then, T, row, pool_rows):
        row["rejected"] += now["shed"] - then["shed"]
        if self.autoscaler is not None:
            # an autoscaled tier: over the instance-time in service, not over its maximum
            serving = now["serving"] - then["serving"]
            w = self.spec.workers
            row["instances"] = serving / T
            row["workers"] = w * serving / T
            row["utilization"] = row["mean_busy"] / (w * serving / T) if serving > 0 else math.nan
            row["instance_hours"] = (now["billed"] - then["billed"]) / 3600.0
            row["peak_instances"] = self.autoscaler.peak(self.warm, self.warm + T)
            for r, a1, a0 in zip(pool_rows, now["pool_serving"], then["pool_serving"], strict=True):
                r["in_service_s"] = a1 - a0
                r["utilization"] = r["mean_busy"] * T / (w * (a1 - a0)) if a1 > a0 else math.nan
        limiters = self.limiters
        if limiters:
            row["limit_rejected"] = now["limit_shed"] - then["limit_shed"]
            row["concurrency_limit"] = sum(lim.limit for lim in limiters.values()) / len(limiters)
        if isinstance(self.pools[0], PriorityPool):
            row["evicted"] = now["evicted"] - then["evicted"]
            row["codel_dropped"] = now["dropped"] - then["dropped"]
            row["deadline_dropped"] = now["expired"] - then["expired"]
        if self.queue_setup().deadlines:
            row["cancelled"] = now["cancelled"] - then["cancelled"]
        return {}

    def events(self) -> list[dict[str, Any]]:
        """Each scaling decision of an autoscaled tier, and the concurrency limit of each
        instance each time it changed (an adaptive limit)."""
        a = self.autoscaler
        out = [] if a is None else [{"time_s": t, "what": what, "where": self.name, "from": n0, "to": n1}
                                    for t, what, n0, n1 in a.actions]
        for pool, lim in self.limiters.items():
            prev = None
            for t, value in lim.history:
                if prev is not None:
                    out.append({"time_s": t, "what": "concurrency_limit", "where": pool.name,
                                "from": prev, "to": value})
                prev = value
        return out

    def instance_timeline(self) -> tuple[Any, Any, Any] | None:
        a = self.autoscaler
        return None if a is None else (a.log_t, a.log_serving, a.log_billed)

    # -- static capacity model and SPOF analysis of an autoscaled tier
    @classmethod
    def utilization(cls, spec, name, flows, busy, classes, workload):
        a = spec.autoscale
        if a is None:
            return super().utilization(spec, name, flows, busy, classes, workload)
        workers = spec.workers * a.max
        return workers, busy / workers, f"autoscaled: at its most, {a.max} instances"

    @classmethod
    def redundancy(cls, spec: Any, name: str, comp: Any) -> tuple[bool, int, str]:
        """As any tier; an autoscaled tier at its ``min``; and a restart takes a
        one-instance service's whole capacity away (a rolling deployment, the design's own or
        any), as does a deployment of the design that takes every instance out at once."""
        a = comp.autoscale
        if a is not None and a.min < 2:
            return False, max(a.min, 1), f"autoscaled down to {a.min} instance{'s' if a.min != 1 else ''} at low load"
        redundant, copies, reason = super().redundancy(spec, name, comp)
        if comp.instances < 2:
            return redundant, copies, "one instance: a rolling deployment takes all its capacity away"
        for d in spec.deployments:
            if d.target == name and d.fewest_left(comp.instances) == 0:
                reason += f"; the deployment {d.label} takes all its capacity away"
        return redundant, copies, reason

    @classmethod
    def queueing_layout(cls, spec, flows, classes, workload, policy):
        if spec.autoscale is not None:  # the static models see the tier at its most
            spec = spec.model_copy(update={"instances": spec.autoscale.max})
        return super().queueing_layout(spec, flows, classes, workload, policy)

    @classmethod
    def capacity_note(cls, spec: Any, hit_ratio: float | None, note: str) -> str:
        cl = spec.concurrency_limit
        if cl is None:
            return note
        lim = f"at most {cl.limit} in flight per instance" if cl.limit is not None else \
            f"{cl.adaptive} concurrency limit"
        return (note + "; " if note else "") + lim

    # -- queueing model
    @classmethod
    def shed_share(cls, spec: Any, rate: float) -> float:
        """The share beyond the token bucket's rate (a fluid estimate: the burst only absorbs
        short excursions, so a bucket offered less than its rate sheds almost nothing)."""
        rl = spec.rate_limit
        if rl is None or not rate > rl.rate:
            return 0.0
        return 1.0 - rl.rate / rate

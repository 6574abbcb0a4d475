"""The service kind: a tier of identical instances, each a pool of workers with a bounded
wait queue; with ``rate_limit`` it sheds what exceeds its admission rate."""

from __future__ import annotations

from typing import Any

from ..model.status import REJECTED
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
        self.bucket = TokenBucket(rl.rate, rl.burst) if rl is not None else None
        self.shed = 0

    def serve(self, pool: Pool, cls: int, key: int, parent: int):
        if self.bucket is not None and not self.bucket.take(self.env._now):
            return self._shed(pool, parent)
        return self._serve(pool, cls, key, parent, self.calls[cls], self.fwd[cls])

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
        return out

    def window_stats(self, now, then, T, row, pool_rows):
        row["rejected"] += now["shed"] - then["shed"]
        return {}

    # -- SPOF analysis
    @classmethod
    def redundancy(cls, spec: Any, name: str, comp: Any) -> tuple[bool, int, str]:
        """As any tier; and a restart takes a one-instance service's whole capacity away (a
        rolling deployment, the design's own or any), as does a deployment of the design that
        takes every instance out at once."""
        redundant, copies, reason = super().redundancy(spec, name, comp)
        if comp.instances < 2:
            return redundant, copies, "one instance: a rolling deployment takes all its capacity away"
        for d in spec.deployments:
            if d.target == name and d.fewest_left(comp.instances) == 0:
                reason += f"; the deployment {d.label} takes all its capacity away"
        return redundant, copies, reason

    # -- queueing model
    @classmethod
    def shed_share(cls, spec: Any, rate: float) -> float:
        """The share beyond the token bucket's rate (a fluid estimate: the burst only absorbs
        short excursions, so a bucket offered less than its rate sheds almost nothing)."""
        rl = spec.rate_limit
        if rl is None or not rate > rl.rate:
            return 0.0
        return 1.0 - rl.rate / rate

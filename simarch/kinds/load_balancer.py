"""The load-balancer kind: its own instances, latency and connection limit; it routes by
its ``policy``, and with ``health_check`` it takes dead instances out of rotation once the
checks notice them, and puts them back once they pass again."""

from __future__ import annotations

from collections.abc import Callable

from ..runtime.pickers import make_live_picker
from ..runtime.pools import Pool
from .base import Kind
from .registry import register


@register
class LoadBalancer(Kind):
    kind = "load_balancer"
    label = "load balancer"
    colour = "#e8dff5"

    def picker_for(self, target: Kind) -> Callable[[], Pool | None]:
        if self.spec.health_check is not None and not target.routes_internally:
            return self.live_picker(target)
        return target.picker(self.spec.policy, self.name)

    def entry_picker(self) -> Callable[[], Pool | None]:
        # clients reach a health-checked entry through DNS or a floating IP that fails over
        if self.spec.health_check is not None:
            return self.live_picker(self)
        return super().entry_picker()

    def live_picker(self, target: Kind) -> Callable[[], Pool | None]:
        rot = target.rotation
        live = list(target.pools) if rot is None else list(rot.live)
        live_set = set(live)
        pick = make_live_picker(self.spec.policy, live,
                                self.sim.rng(target.name, "route", self.spec.policy, self.name),
                                live_set if rot is None else None)  # (a changing tier: no load index)
        self.env.process(self._health_checks(target.pools, live, live_set, rot))
        return pick

    def _health_checks(self, pools: list[Pool], live: list[Pool], live_set: set[Pool], rot=None):
        """Check every instance each interval; ``live`` is what passes and, for a tier whose
        instances come and go (``rot``), is in its rotation (changes of which apply at once)."""
        hc = self.spec.health_check
        env = self.env
        in_rotation = [True] * len(pools)
        fails = [0] * len(pools)
        oks = [0] * len(pools)

        def refresh() -> None:
            live[:] = [p for p, ok in zip(pools, in_rotation, strict=True)
                       if ok and (rot is None or p in rot.live_set)]
            live_set.clear()
            live_set.update(live)
        if rot is not None:
            rot.watch(refresh)
            slot = {p: i for i, p in enumerate(pools)}
            rot.checks.append(lambda p: in_rotation[slot[p]])  # what its checks say of p
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
                refresh()
            yield env.timeout(hc.interval)

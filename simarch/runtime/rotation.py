"""Instances that come and go while the run goes on: the rotation of a component.

A component whose instances change during the run (an autoscaled service, a service being
deployed) builds all the pools it may ever run at construction, so that every pool keeps
its number in the hop records and its statistics, and keeps a :class:`Rotation`: the
pools that take new requests. Every picker over the component (its callers', its load
balancers' health-checked lists, the clients' when it is the entry) reads the rotation's
``live`` list, which is changed in place, so a change reaches every caller at once and a
pick costs what it costs over a fixed tier.

Taking an instance out of rotation stops new requests only: the requests it holds (in
service and waiting) go on, and :meth:`Rotation.drain` waits for them to finish, up to a
deadline after which what is left fails (the instance is stopped under them).

A pool's ``cold`` is the factor its service times are multiplied by while it warms up
(a new instance, or one restarted with a cold cache): a function of the simulated time,
``None`` once warm. Components only look at it while they have a cold pool
(:meth:`simarch.runtime.component.Component.set_cold`), so warm runs pay nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Iterable
from typing import Any

from .pools import Pool

DRAIN_POLL = 0.01  # s: how often a drain looks whether the instance is empty


class Rotation:
    """The pools of one component that take new requests, as a list and a set (both
    changed in place and shared by every picker), and the time each pool spent in service.

    ``pools`` are all the component's pools, in their order; ``active`` the indices of those
    in rotation at the start. Watchers (``watch``) are called after each change, e.g. a load
    balancer recomputing its health-checked list.
    """

    __slots__ = ("pools", "live", "live_set", "watchers", "since", "area", "log", "checks")

    def __init__(self, pools: list[Pool], active: Iterable[int]):
        self.pools = pools
        chosen = set(active)
        self.live: list[Pool] = [p for i, p in enumerate(pools) if i in chosen]
        self.live_set: set[Pool] = set(self.live)
        self.watchers: list[Callable[[], None]] = []
        # in-rotation time per pool, as start/end sums: area(t) = area + (t - since) if live
        self.since: dict[Pool, float] = {p: 0.0 for p in self.live}
        self.area: dict[Pool, float] = {p: 0.0 for p in pools}
        self.log: list[tuple[float, int]] = [(0.0, len(self.live))]  # (time, instances in rotation)
        # the health checks in front (a load balancer's): whether each passes a pool
        self.checks: list[Callable[[Pool], bool]] = []

    def __contains__(self, pool: Pool) -> bool:
        return pool in self.live_set

    def __len__(self) -> int:
        return len(self.live)

    def watch(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` after every change of the rotation."""
        self.watchers.append(fn)

    def _changed(self, now: float) -> None:
        # keep the component's order, so that round robin and ties behave as in a fixed tier
        self.live[:] = [p for p in self.pools if p in self.live_set]
        self.log.append((now, len(self.live)))
        for fn in self.watchers:
            fn()

    def put_in(self, pool: Pool, now: float) -> None:
        """``pool`` takes new requests from ``now`` on."""
        if pool in self.live_set:
            return
        self.live_set.add(pool)
        self.since[pool] = now
        self._changed(now)

    def take_out(self, pool: Pool, now: float) -> None:
        """``pool`` takes no new requests from ``now`` on (what it holds goes on)."""
        if pool not in self.live_set:
            return
        self.live_set.discard(pool)
        self.area[pool] += now - self.since.pop(pool)
        self._changed(now)

    def healthy(self, pool: Pool) -> bool:
        """Whether every health check in front of the component (``checks``, one per
        health-checked load balancer) passes ``pool`` now; ``True`` with none. A pool put
        back in rotation gets traffic through a load balancer only once this holds."""
        for passes in self.checks:
            if not passes(pool):
                return False
        return True

    def in_rotation_area(self, pool: Pool, t: float) -> float:
        """Seconds ``pool`` spent in rotation up to ``t``."""
        start = self.since.get(pool)
        return self.area[pool] + (t - start if start is not None else 0.0)

    def drain(self, env: Any, pool: Pool, deadline: float = math.inf,
              poll: float = DRAIN_POLL) -> Generator[Any, Any, bool]:
        """A SimPy process body: wait until ``pool`` holds no request (``True``), or until
        ``deadline`` seconds have passed (``False``: work is left, the caller stops it).
        It looks every ``poll`` seconds, so the drain ends at most ``poll`` late."""
        end = env.now + deadline
        while pool.load > 0:
            if env.now >= end:
                return False
            yield env.timeout(min(poll, end - env.now) if math.isfinite(end) else poll)
        return True


def warming(start: float, factor: float, period: float, decay: str = "linear") -> Callable[[float], float]:
    """A cold-start factor: ``factor`` at ``start``, back to 1 after ``period`` seconds.

    ``decay`` is ``"step"`` (``factor`` for the whole period, then 1), ``"linear"`` (falls
    in a straight line to 1 at the end of the period) or ``"exponential"`` (``1 + (factor -
    1) e^{-(t - start) / period}``, taken as warm after five time constants)."""
    extra = factor - 1.0
    if decay == "step":
        def step(t: float) -> float:
            return factor if t - start < period else 1.0
        return step
    if decay == "linear":
        def linear(t: float) -> float:
            x = (t - start) / period
            return 1.0 + extra * (1.0 - x) if x < 1.0 else 1.0
        return linear
    if decay == "exponential":
        def exponential(t: float) -> float:
            x = (t - start) / period
            return 1.0 + extra * math.exp(-x) if x < 5.0 else 1.0
        return exponential
    raise ValueError(f"unknown decay {decay!r}")

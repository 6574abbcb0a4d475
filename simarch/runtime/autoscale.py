"""Autoscaling: the process that adds and removes a service's instances while the run goes on.

An autoscaled service builds a pool for each instance it may ever run (``autoscale.max``)
and keeps its :class:`~simarch.runtime.rotation.Rotation`; :class:`Autoscaler` moves its
pools through their lives:

* **off**: not running, not billed;
* **provisioning**: launched and billed, not yet taking requests (``provisioning`` delay);
* **in rotation**: taking new requests, warming up first when ``cold_start`` is given;
* **draining**: out of rotation, finishing the work it holds (up to ``drain_timeout``,
  after which what is left fails), then off again.

"In service" below means in rotation or draining: the instances that do work. Instance
hours (billing) count provisioning too.

Policies, decided every ``interval`` on the metric averaged over the last ``window``:

* ``target_tracking``: the capacity that would bring the metric to its target, rounded up
  (``ceil(mean busy workers / (target x workers))`` for ``utilization``,
  ``ceil(mean requests held / target)`` for ``in_flight``, ``ceil(mean backlog / target)``
  for ``queue_length``), within ``min`` and ``max``;
* ``step``: the per-instance metric against the steps' thresholds: the highest ``above``
  threshold it exceeds adds that step's instances, else the lowest ``below`` threshold it
  is under removes that step's;
* ``on_demand`` (a consumer group only): the M/M/k/setup policy of Gandhi et al. (2013),
  decided at each event instead of on a clock: a message that finds no idle consumer
  starts an instance, as long as fewer are starting than messages wait (and at most
  ``max`` run or start); an instance whose consumers are all idle with nothing waiting
  stops at once; a start is cancelled when the waiting messages drop below the instances
  starting.

Scale-out waits ``scale_out_cooldown`` after the last scale-out; scale-in waits
``scale_in_cooldown`` after the last scaling action of either kind (a scale-out ends it).

The metrics are read from what the pools keep anyway (their busy-worker and queue areas,
the running sums of :mod:`simarch.runtime.pools`) and, for a consumer group, from its
backlog's area: one sample per evaluation, nothing per request.
"""

from __future__ import annotations

import bisect
import heapq
import math
from array import array
from collections import deque
from collections.abc import Callable
from typing import Any

from ..model.dists import sampler
from .rotation import warming
from .tasks import spawn

OFF, PROVISIONING, LIVE, DRAINING = 0, 1, 2, 3


class _Start:
    """A provisioning in progress (cancelled: the instance is off again before it is ready)."""

    __slots__ = ("index", "cancelled")

    def __init__(self, index: int):
        self.index = index
        self.cancelled = False


class Autoscaler:
    """The autoscaling of one component (``comp``, a :class:`~simarch.runtime.component.Component`
    with a rotation), by its ``spec`` (an :class:`~simarch.model.components.AutoscaleSpec`)."""

    def __init__(self, comp: Any, spec: Any):
        self.comp = comp
        self.env = comp.env
        self.spec = spec
        self.rot = comp.rotation
        self.pools = comp.pools
        self.workers = float(self.pools[0].workers)
        self.index = {p: i for i, p in enumerate(self.pools)}
        n0 = len(self.rot.live)
        self.state = [LIVE if i < n0 else OFF for i in range(len(self.pools))]
        self.off = list(range(n0, len(self.pools)))  # a heap: the lowest-numbered off pool first
        self.starts: list[_Start] = []  # provisionings in progress, in the order begun
        self.live = n0  # in rotation
        self.serving = n0  # in rotation or draining
        self.billed = n0  # provisioning, in rotation or draining
        self._last = 0.0
        self._s_area = 0.0  # instance-seconds in service up to ``_last``
        self._b_area = 0.0  # instance-seconds billed up to ``_last``
        self._p_since = [0.0 if i < n0 else math.nan for i in range(len(self.pools))]
        self._p_area = [0.0] * len(self.pools)  # seconds each pool spent in service
        self.log_t = array("d", [0.0])
        self.log_serving = array("l", [n0])
        self.log_billed = array("l", [n0])
        self.actions: list[tuple[float, str, int, int]] = []  # (time, what, from, to)
        self.backlogs: list[Any] = []  # consumer groups' backlogs (items, q_in, q_out)
        self.busy = [0] * len(self.pools)  # on_demand: consumers holding a message, per pool
        self._provision = sampler(spec.provisioning, comp.sim.rng(comp.name, "autoscale", "provisioning"))
        self._last_out = -math.inf
        self._last_action = -math.inf
        self._samples: deque[tuple[float, float, float, float, float]] = deque()
        self._changing = False
        self.on_demand = spec.policy == "on_demand"

    # ------------------------------------------------------------------ set-up
    def add_backlog(self, backlog: Any) -> None:
        """A consumer group's backlog this component consumes from (its ``queue_length``,
        and the waiting messages of ``on_demand``)."""
        self.backlogs.append(backlog)
        if self.on_demand:
            backlog.on_queued = self.queued

    def start(self) -> None:
        """Start the evaluation process (``on_demand`` needs none: it acts on events)."""
        if not self.on_demand:
            spawn(self.env, self._evaluations())

    # ------------------------------------------------------------------ bookkeeping
    def _tick(self, now: float) -> None:
        dt = now - self._last
        if dt > 0:
            self._s_area += self.serving * dt
            self._b_area += self.billed * dt
            self._last = now

    def _logged(self, now: float) -> None:
        if self.log_t[-1] == now:  # several changes at one instant: the last counts
            self.log_serving[-1] = self.serving
            self.log_billed[-1] = self.billed
        else:
            self.log_t.append(now)
            self.log_serving.append(self.serving)
            self.log_billed.append(self.billed)

    def serving_area(self, t: float) -> float:
        """Instance-seconds in service (in rotation or draining) up to ``t``."""
        return self._s_area + self.serving * (t - self._last)

    def billed_area(self, t: float) -> float:
        """Instance-seconds billed (provisioning, in service) up to ``t``."""
        return self._b_area + self.billed * (t - self._last)

    def pool_serving_area(self, t: float) -> list[float]:
        """Seconds each pool spent in service up to ``t``."""
        return [a + (t - s if s == s else 0.0) for a, s in zip(self._p_area, self._p_since, strict=True)]

    def peak(self, t0: float, t1: float) -> int:
        """The most instances in service at once during ``[t0, t1)``."""
        i = bisect.bisect_right(self.log_t, t0) - 1
        j = bisect.bisect_left(self.log_t, t1)
        return max(self.log_serving[max(i, 0):max(j, i + 1)])

    @property
    def desired(self) -> int:
        """The capacity the autoscaler is heading for: instances provisioning or in rotation."""
        return len(self.starts) + self.live

    # ------------------------------------------------------------------ life of an instance
    def _launch(self, now: float) -> None:
        i = heapq.heappop(self.off)
        self._tick(now)
        self.state[i] = PROVISIONING
        self.billed += 1
        start = _Start(i)
        self.starts.append(start)
        delay = self._provision()
        self._logged(now)
        if delay > 0.0:
            spawn(self.env, self._provisioning(start, delay))
        else:
            self._ready(start)

    def _provisioning(self, start: _Start, delay: float):
        yield delay
        if not start.cancelled:
            self._ready(start)

    def _ready(self, start: _Start) -> None:
        now = self.env._now
        i = start.index
        self.starts.remove(start)
        self._tick(now)
        self.state[i] = LIVE
        self.live += 1
        self.serving += 1
        self._p_since[i] = now
        self._logged(now)
        pool = self.pools[i]
        cold = self.spec.cold_start
        if cold is not None:
            self.comp.set_cold(pool, warming(now, cold.factor, cold.period, cold.decay))
        self._rotate(self.rot.put_in, pool, now)

    def _cancel(self, now: float) -> None:
        """Stop the provisioning begun last: the instance is off again."""
        start = self.starts.pop()
        start.cancelled = True
        self._tick(now)
        self.state[start.index] = OFF
        self.billed -= 1
        heapq.heappush(self.off, start.index)
        self._logged(now)

    def _retire(self, i: int, now: float) -> None:
        """Take pool ``i`` out of rotation; it goes off once its work is done."""
        pool = self.pools[i]
        self.state[i] = DRAINING
        self.live -= 1
        self._rotate(self.rot.take_out, pool, now)
        if pool.load == 0:
            self._gone(i, now)
        else:
            spawn(self.env, self._drain(i))

    def _drain(self, i: int):
        pool = self.pools[i]
        t = self.spec.drain_timeout
        done = yield self.rot.drain(self.env, pool, math.inf if t is None else t)
        if not done:  # the instance is stopped under the work left: it fails
            now = self.env._now
            pool.crash(now, False)
            pool.recover(now)
            self._gone(i, now, reuse=False)  # billed no more; reused once the failed work ends
            yield self.rot.drain(self.env, pool)
            heapq.heappush(self.off, i)
            return
        self._gone(i, self.env._now)

    def _gone(self, i: int, now: float, reuse: bool = True) -> None:
        self._tick(now)
        if self.state[i] != DRAINING:
            return
        self.state[i] = OFF
        self.serving -= 1
        self.billed -= 1
        self._p_area[i] += now - self._p_since[i]
        self._p_since[i] = math.nan
        pool = self.pools[i]
        if pool.cold is not None:
            self.comp.set_cold(pool, None)
        if reuse and pool.load == 0:
            heapq.heappush(self.off, i)
        self._logged(now)

    def _rotate(self, change: Callable[[Any, float], None], pool: Any, now: float) -> None:
        self._changing = True
        try:
            change(pool, now)
        finally:
            self._changing = False

    # ------------------------------------------------------------------ scaling actions
    def scale_to(self, want: int, now: float, what: str | None = None) -> None:
        """Head for ``want`` instances (within min and max): launch, or cancel launches and
        retire the least loaded instances in rotation."""
        want = max(self.spec.min, min(self.spec.max, want))
        have = self.desired
        if want == have:
            return
        if what is not None:
            self.actions.append((now, what, have, want))
        if want > have:
            self._last_out = now
            for _ in range(want - have):
                self._launch(now)
        else:
            for _ in range(have - want):
                if self.starts:
                    self._cancel(now)
                    continue
                live = [i for i, s in enumerate(self.state) if s == LIVE]
                i = min(live, key=lambda j: (self.pools[j].load, -j))
                self._retire(i, now)
        self._last_action = now

    def _evaluations(self):
        spec = self.spec
        env = self.env
        self._samples.append(self._sample(env._now))
        while True:
            yield spec.interval
            now = env._now
            self._samples.append(self._sample(now))
            want = self._decide(now)
            if want is None:
                continue
            have = self.desired
            if want > have and now - self._last_out >= spec.scale_out_cooldown:
                self.scale_to(want, now, "scale_out")
            elif want < have and now - self._last_action >= spec.scale_in_cooldown:
                self.scale_to(want, now, "scale_in")

    def _sample(self, t: float) -> tuple[float, float, float, float, float]:
        """Running sums at ``t``: (t, busy-worker area, held-request area, instance-seconds in
        service, waiting-work area)."""
        busy = queue = 0.0
        for p in self.pools:
            busy += p.s_end + p.n * t - p.s_start
            queue += p.q_end + len(p.waiters) * t - p.q_start
        if self.backlogs:
            waiting = sum(b.q_out + len(b.items) * t - b.q_in for b in self.backlogs)
        else:
            waiting = queue
        return (t, busy, busy + queue, self.serving_area(t), waiting)

    def metrics(self, now: float) -> tuple[float, float] | None:
        """``(capacity needed at the target / aggregate, per-instance metric)`` over the last
        window, from the samples; ``None`` before any time has passed."""
        samples = self._samples
        while len(samples) > 2 and samples[1][0] <= now - self.spec.window:
            samples.popleft()
        t1, b1, l1, s1, w1 = samples[-1]
        t0, b0, l0, s0, w0 = samples[0]
        dt = t1 - t0
        if not dt > 0:
            return None
        in_service = s1 - s0
        metric = self.spec.metric
        if metric == "utilization":
            total = (b1 - b0) / dt / self.workers  # instances' worth of busy workers
            per = (b1 - b0) / (self.workers * in_service) if in_service > 0 else math.nan
        elif metric == "in_flight":
            total = (l1 - l0) / dt
            per = (l1 - l0) / in_service if in_service > 0 else math.nan
        else:
            total = (w1 - w0) / dt
            per = (w1 - w0) / in_service if in_service > 0 else (math.inf if total > 0 else 0.0)
        return total, per

    def _decide(self, now: float) -> int | None:
        m = self.metrics(now)
        if m is None:
            return None
        total, per = m
        spec = self.spec
        have = self.desired
        if spec.policy == "target_tracking":
            return math.ceil(total / spec.target - 1e-9)
        if per != per:  # nothing in service over the window: no reading
            return None
        up = [s for s in spec.steps if s.above is not None and per > s.above]
        if up:
            return have + max(up, key=lambda s: s.above).add
        down = [s for s in spec.steps if s.below is not None and per < s.below]
        if down:
            return have - min(down, key=lambda s: s.below).remove
        return have

    # ------------------------------------------------------------------ on_demand
    def _waiting(self) -> int:
        return sum(len(b.items) for b in self.backlogs)

    def _starts_wanted(self) -> int:
        w = self._waiting()
        per = int(self.workers)
        return min(-(-w // per), self.spec.max - self.live)

    def queued(self) -> None:
        """A message has been queued, finding no idle consumer: start instances for it."""
        now = self.env._now
        want = self._starts_wanted()
        while len(self.starts) < want and self.off:
            self._launch(now)

    def took(self) -> None:
        """A consumer took a waiting message: cancel the starts no longer needed."""
        now = self.env._now
        want = max(self._starts_wanted(), 0)
        while len(self.starts) > want:
            self._cancel(now)

    def idle(self, pool: Any) -> None:
        """A consumer of ``pool`` found nothing to do: with every consumer of the instance
        idle, it stops (down to ``min`` instances)."""
        i = self.index[pool]
        if self.state[i] != LIVE or self.busy[i] or self.live <= self.spec.min:
            return
        if self._changing:  # inside a rotation change: look again once it is over
            self.env.timeout(0).callbacks.append(lambda _ev: self.idle(pool))
            return
        now = self.env._now
        self._retire(i, now)

"""The queue kind: a broker. ``serve`` enqueues and returns at once; consumer workers pull
and call their service. Every call from the queue is a consumer group with its own backlog:
a message goes to each group that takes its class (pub/sub), and within a group the consumer
workers compete for messages. ``capacity`` bounds each backlog."""

from __future__ import annotations

import itertools
import math
from array import array
from collections import deque
from collections.abc import Callable
from typing import Any

from simpy.events import Event

from ..model.dists import sampler
from ..model.metrics import float32_array, latency_stats_ms
from ..model.status import FAILED, OK, REJECTED
from ..runtime.calls import CALL, Call
from ..runtime.hops import ASYNC
from ..runtime.pools import ANY, INF, Pool
from ..runtime.tasks import spawn
from .base import Kind
from .registry import register


class Backlog:
    """The messages waiting for one consumer group (one call from the queue)."""

    __slots__ = ("items", "getters", "takes", "prob", "q_in", "q_out", "on_queued")

    def __init__(self, takes: list[bool], prob: float):
        self.items: deque[tuple[int, int, float]] = deque()
        self.getters: deque[Event] = deque()
        self.takes = takes  # per request class: does this group take the message?
        self.prob = prob
        # the backlog's area up to t is q_out + len(items) * t - q_in (an autoscaler reads it)
        self.q_in = self.q_out = 0.0
        self.on_queued: Callable[[], None] | None = None  # called when a message has to wait


class ConsumerGroup:
    """The consumers of one backlog on a service whose instances come and go: each instance
    in rotation runs one consumer per worker; one taken out of rotation stops its consumers
    (an idle one at once, a busy one once the message in hand is done)."""

    def __init__(self, queue: Queue, backlog: Backlog, call: Call, target: Kind):
        self.queue = queue
        self.backlog = backlog
        self.call = call
        self.target = target
        self.rot = target.rotation
        self.pools = target.pools
        n = len(self.pools)
        self.gen = [0] * n  # bumped when an instance's consumers stop: older consumers end
        self.running = [False] * n
        self.waiting: list[list[Event]] = [[] for _ in range(n)]  # idle consumers' wake-ups
        self.scaler = target.consumes(backlog)  # the target's autoscaler, or None

    def sync(self) -> None:
        """Start or stop consumers to match the rotation (a watcher of it)."""
        live = self.rot.live_set
        for i, pool in enumerate(self.pools):
            on = pool in live
            if on and not self.running[i]:
                self.running[i] = True
                for _ in range(int(pool.cap)):
                    spawn(self.queue.env, self.queue.gated_consumer(self, i, self.gen[i]))
            elif not on and self.running[i]:
                self.running[i] = False
                self.gen[i] += 1
                getters = self.backlog.getters
                keep = []
                for ev in self.waiting[i]:
                    if ev.triggered:  # a message is on its way to it: it serves that one, then ends
                        keep.append(ev)
                    else:
                        getters.remove(ev)
                        ev.succeed(None)
                self.waiting[i] = keep


@register
class Queue(Kind):
    kind = "queue"
    label = "queue"
    colour = "#f6dede"
    request_waits_for_calls = False
    routes_internally = True

    def __init__(self, sim: Any, name: str, spec: Any):
        super().__init__(sim, name, spec)
        self.backlogs: list[Backlog] = []
        self.limit = INF if spec.capacity is None else spec.capacity
        self.wait = array("f")  # time in queue of messages taken after warm-up
        self.enqueued = 0
        self.rejected = 0
        self.consumed = 0
        self.failed = 0
        self.depth = 0
        self.d_start = self.d_end = 0.0
        self.d_max = 0

    def make_pools(self) -> list[Pool]:
        return [Pool(self.name, INF, INF, self.spec.zone_of(0))]

    def picker(self, policy: str | None = None, tag: str | int = "") -> Callable[[], Pool]:
        return itertools.repeat(ANY).__next__

    # -- wiring: the calls from a queue are its consumer groups, started with the run
    def wire(self, call: Any, target: Kind) -> None:
        pass

    def start_call(self, call: Any, target: Kind) -> None:
        lat = sampler(call.latency, self.sim.rng(self.name, call.to, "latency")) if call.latency else None
        entry = Call(1.0, lat, call.timeout, CALL, target.serve, None, None)
        backlog = self.add_group(call)
        if target.rotation is not None:  # instances come and go: their consumers follow them
            group = ConsumerGroup(self, backlog, entry, target)
            target.rotation.watch(group.sync)
            group.sync()
            return
        for pool in target.pools:
            for _ in range(int(pool.cap)):
                spawn(self.env, self.consumer(backlog, entry, pool))

    def add_group(self, call: Any) -> Backlog:
        takes = [call.requests is None or cls in call.requests for cls in self.sim.classes]
        b = Backlog(takes, call.probability)
        self.backlogs.append(b)
        return b

    # -- the request path
    def serve(self, pool: Pool | None, cls: int, key: int, parent: int):
        env = self.env
        t0 = env._now
        self.arrived += 1
        broker = self.pools[0]
        if broker.down:
            broker.refused += 1
            if broker.hang:
                yield Event(env)
            return self._done(parent, t0, t0, FAILED)
        st = self.st[cls]()
        for factor, add in self.slow:
            st = st * factor + (add() if add is not None else 0.0)
        yield st
        if self.err_p and self._err_u() < self.err_p:
            return self._done(parent, t0, env._now, FAILED)
        targets = [b for b in self.backlogs
                   if b.takes[cls] and (b.prob >= 1.0 or self._u() < b.prob)]
        for b in targets:
            if len(b.items) >= self.limit:
                self.rejected += 1
                return self._done(parent, t0, env._now, REJECTED)
        now = env._now
        self.enqueued += 1
        if now >= self.warm:
            self.lats[cls].append(now - t0)
        vid = self._done(parent, t0, now, OK)
        msg = (cls, key, now, vid * 4 + ASYNC if parent >= 0 else -1)
        for b in targets:
            if b.getters:
                b.getters.popleft().succeed(msg)
            else:
                b.items.append(msg)
                b.q_in += now
                self.depth += 1
                self.d_start += now
                if self.depth > self.d_max:
                    self.d_max = self.depth
                if b.on_queued is not None:
                    b.on_queued()
        return OK

    def _done(self, parent: int, t0: float, now: float, status: int) -> int:
        """Write the visit's hop row (the broker's time is its service), if it is recorded;
        returns the status, or the visit's id for a message enqueued."""
        if parent < 0:
            return status
        vid = self.hops.new_id()
        self._row(vid, parent, self.pools[0], t0, t0, now, now, status)
        return vid if status == OK else status

    def consumer(self, backlog: Backlog, call: Call, pool: Pool):
        """One consumer worker: take a message, make the call to the consumer service, repeat."""
        env = self.env
        lat, timeout, serve = call.latency, call.timeout, call.serve
        items, getters = backlog.items, backlog.getters
        pick = itertools.repeat(pool).__next__
        while True:
            if items:
                msg = items.popleft()
                self.depth -= 1
                now = env._now
                self.d_end += now
                backlog.q_out += now
            else:
                ev = Event(env)
                getters.append(ev)
                msg = yield ev
            cls, key, t, parent = msg
            now = env._now
            if now >= self.warm:
                self.wait.append(now - t)
            status = yield self._one(lat, timeout, serve, pick, cls, key, None, None, parent)
            if status == OK:
                self.consumed += 1
            else:
                self.failed += 1

    def gated_consumer(self, group: ConsumerGroup, i: int, gen: int):
        """:meth:`consumer` for instance ``i`` of a service whose instances come and go: it
        ends when the instance leaves the rotation (``group.gen[i]`` moves on), after the
        message in hand; under ``on_demand`` it tells the autoscaler what it takes and when
        it finds nothing to do."""
        env = self.env
        backlog = group.backlog
        lat, timeout, serve = group.call.latency, group.call.timeout, group.call.serve
        items, getters = backlog.items, backlog.getters
        pool = group.pools[i]
        pick = itertools.repeat(pool).__next__
        gens = group.gen
        scaler = group.scaler if group.scaler is not None and group.scaler.on_demand else None
        while gens[i] == gen:
            if items:
                msg = items.popleft()
                self.depth -= 1
                now = env._now
                self.d_end += now
                backlog.q_out += now
                if scaler is not None:
                    scaler.took()
            else:
                if scaler is not None:
                    scaler.idle(pool)  # may stop the instance
                    if gens[i] != gen:
                        return
                ev = Event(env)
                getters.append(ev)
                waiting = group.waiting[i]
                waiting.append(ev)
                msg = yield ev
                if msg is None:  # stopped while idle
                    return
                if ev in waiting:
                    waiting.remove(ev)
            cls, key, t, parent = msg
            now = env._now
            if now >= self.warm:
                self.wait.append(now - t)
            if scaler is not None:
                scaler.busy[i] += 1
            status = yield self._one(lat, timeout, serve, pick, cls, key, None, None, parent)
            if scaler is not None:
                scaler.busy[i] -= 1
            if status == OK:
                self.consumed += 1
            else:
                self.failed += 1

    # -- statistics
    def depth_area(self, t: float) -> float:
        return self.d_end + self.depth * t - self.d_start

    def counters(self, t: float) -> dict[str, Any]:
        out = super().counters(t)
        out.update(enqueued=self.enqueued, rejected=self.rejected, consumed=self.consumed,
                   failed=self.failed, depth_area=self.depth_area(t))
        return out

    def on_warm(self) -> None:
        self.d_max = self.depth

    def window_stats(self, now, then, T, row, pool_rows):
        row["throughput_rps"] = (now["enqueued"] - then["enqueued"]) / T
        row["rejected"] = now["rejected"] - then["rejected"]
        row["mean_queue"] = (now["depth_area"] - then["depth_area"]) / T
        row["max_queue"] = self.d_max
        wst = latency_stats_ms(float32_array(self.wait))
        row["mean_wait_ms"] = wst["mean"]
        row["p99_wait_ms"] = wst["p99"]
        row["consumed"] = now["consumed"] - then["consumed"]
        row["consumer_failures"] = now["failed"] - then["failed"]
        row["utilization"] = math.nan
        row["mean_busy"] = math.nan
        return {}

    # -- work estimate, static capacity model, queueing model and SPOF analysis
    @classmethod
    def processes(cls, name: str, spec: Any, design: Any) -> int:
        """One consumer process per worker of each consumer service."""
        total = 0
        for c in design.calls:
            if c.source == name:
                target = design.components[c.to]
                boxes = target.autoscale.max if getattr(target, "autoscale", None) else target.instances
                total += boxes * (target.worker_limit or 0)
        return total

    @classmethod
    def utilization(cls, spec, name, flows, busy, classes, workload):
        return None, math.nan, "broker; see its consumers"

    @classmethod
    def consumer_backlog(cls, spec: Any) -> tuple[bool, int | None]:
        return True, spec.capacity

    @classmethod
    def redundancy(cls, spec, name, comp):
        return False, 1, "one broker"

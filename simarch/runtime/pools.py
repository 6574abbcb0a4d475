"""Worker pools: the workers of one instance (or replica), a minimal SimPy resource.

A free worker is taken without scheduling any event; a waiting request waits on one
``simpy.Event`` that the releasing request triggers, handing its worker over (FIFO). Pools
keep their own time-weighted statistics as running sums, so utilisation and queue length
cost two additions per change.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

from simpy.events import Event

INF = math.inf


class Pool:
    """The workers of one instance (or replica): ``cap`` slots and a FIFO wait queue.

    Time-weighted levels are kept as sums of start and end times: the busy-worker area up to
    ``t`` is ``s_end + n*t - s_start`` (the same for the wait queue with ``q_*``).
    """

    __slots__ = ("name", "cap", "workers", "qlimit", "n", "waiters", "s_start", "s_end", "q_start",
                 "q_end", "q_max", "done", "rejected", "down", "hang", "epoch", "x_start",
                 "x_end", "refused", "zone", "load", "index", "slot", "waited", "gid", "cold",
                 "cancelled", "limiter", "region", "rix")

    def __init__(self, name: str, cap: float, qlimit: float, zone: str | None = None):
        self.name = name
        self.cap = cap
        self.workers = cap  # configured workers; ``cap`` drops while workers are lost
        self.qlimit = qlimit
        self.zone = zone
        self.n = 0
        self.waiters: deque[Event] = deque()
        self.load = 0  # requests in service and waiting: n + len(waiters), kept as they change
        self.index: LoadIndex | None = None  # the load index of a large tier, if any
        self.slot = 0  # position in its index's level
        self.s_start = self.s_end = 0.0
        self.q_start = self.q_end = 0.0
        self.q_max = 0
        self.done = 0
        self.rejected = 0
        self.down = 0  # > 0 while crashed (a count: faults may overlap)
        self.hang = False  # calls to a dead instance hang instead of failing fast
        self.epoch = 0  # bumped at each crash: work begun before it fails
        self.x_start = self.x_end = 0.0  # down-time sums, like s_start/s_end
        self.refused = 0
        self.waited = 0  # requests that found every worker busy and queued
        self.gid = -1  # the pool's number among all of the run's (hop records name it so)
        self.cold: Callable[[float], float] | None = None  # warming up: service-time factor at t
        self.cancelled = 0  # visits whose work stopped because their caller cancelled them
        self.limiter = None  # the instance's concurrency limit (simarch.runtime.overload.Limiter)
        self.region: str | None = None  # its region, set at wiring (a design with regions)
        self.rix = 0  # ... and that region's number in the design's matrix

    # -- the request path
    def acquire(self, env, now: float, cls: int = 0) -> Event | bool | None:
        """Take a worker at ``now`` for a request of class ``cls``: ``None`` when one was free
        (taken), ``False`` when the wait queue is full (the request is rejected), else the
        event to wait for; its value is ``True`` when the instance crashed while the request
        waited (a priority pool may also end the wait with a status code, see
        :class:`~simarch.runtime.overload.PriorityPool`). A plain pool ignores ``cls``."""
        if self.n < self.cap:
            self.n += 1
            self.s_start += now
            self.load += 1
            if self.index is not None:
                self.index.up(self)
            return None
        w = self.waiters
        if len(w) >= self.qlimit:
            self.rejected += 1
            return False
        ev = Event(env)
        w.append(ev)
        self.waited += 1
        self.load += 1
        if self.index is not None:
            self.index.up(self)
        self.q_start += now
        if len(w) > self.q_max:
            self.q_max = len(w)
        return ev

    def release(self, now: float) -> None:
        """Give the worker back at ``now``: to the first waiting request, if any."""
        self.s_end += now
        self.done += 1
        self.load -= 1
        if self.index is not None:
            self.index.down(self)
        w = self.waiters
        if w and self.n <= self.cap:
            self.q_end += now
            self.s_start += now
            w.popleft().succeed()
        else:
            self.n -= 1

    def remove(self, ev: Event, now: float) -> bool:
        """Take the waiter ``ev`` off the queue (its request was cancelled); ``False`` when it
        is not waiting."""
        try:
            self.waiters.remove(ev)
        except ValueError:
            return False
        self.q_end += now
        self.load -= 1
        if self.index is not None:
            self.index.down(self)
        return True

    # -- statistics
    def down_area(self, t: float) -> float:
        return self.x_end + (t if self.down else 0.0) - self.x_start

    def busy_area(self, t: float) -> float:
        return self.s_end + self.n * t - self.s_start

    def queue_area(self, t: float) -> float:
        return self.q_end + len(self.waiters) * t - self.q_start

    def counters(self, t: float) -> tuple[float, float, int, int, float]:
        return (self.busy_area(t), self.queue_area(t), self.done, self.rejected, self.down_area(t))

    # -- faults
    def crash(self, now: float, hang: bool) -> None:
        """The instance dies: waiting requests fail now, work in progress fails when it ends."""
        if not self.down:
            self.x_start += now
        self.down += 1
        self.hang = hang
        self.epoch += 1
        w = self.waiters
        if w:
            self.q_end += now * len(w)
            for ev in w:
                ev.succeed(True)
                self.load -= 1
                if self.index is not None:
                    self.index.down(self)
            w.clear()

    def recover(self, now: float) -> None:
        self.down -= 1
        if not self.down:
            self.x_end += now

    def set_workers(self, cap: float, now: float) -> None:
        """Change the usable workers (worker loss); freed slots go to waiting requests."""
        self.cap = cap
        w = self.waiters
        while w and self.n < self.cap:
            self.n += 1
            self.s_start += now
            self.q_end += now
            w.popleft().succeed()


class LoadIndex:
    """The pools of a large tier by load level, kept as loads change by one, so that a
    least-connections pick is O(1) rather than a scan of every instance.

    ``levels[l]`` holds the pools with load ``l`` (in no particular order: a pool leaving
    a level is replaced by the level's last); ``low`` is the lowest non-empty level.
    """

    __slots__ = ("levels", "low")

    def __init__(self, pools: list[Pool]):
        self.levels: list[list[Pool]] = [[] for _ in range(1 + max((p.load for p in pools), default=0))]
        for p in pools:
            if p.index is not None:
                raise ValueError(f"pool {p.name} is in a load index already")
            p.index = self
            level = self.levels[p.load]
            p.slot = len(level)
            level.append(p)
        self.low = min((p.load for p in pools), default=0)

    def _leave(self, p: Pool, level: int) -> list[Pool]:
        members = self.levels[level]
        last = members.pop()
        if last is not p:
            members[p.slot] = last
            last.slot = p.slot
        return members

    def up(self, p: Pool) -> None:
        """``p.load`` has just grown by one."""
        left = self._leave(p, p.load - 1)
        if p.load == len(self.levels):
            self.levels.append([])
        level = self.levels[p.load]
        p.slot = len(level)
        level.append(p)
        if not left and self.low == p.load - 1:
            self.low = p.load

    def down(self, p: Pool) -> None:
        """``p.load`` has just dropped by one."""
        self._leave(p, p.load + 1)
        level = self.levels[p.load]
        p.slot = len(level)
        level.append(p)
        if p.load < self.low:
            self.low = p.load

    def least(self, turn: int) -> Pool:
        """A pool with the lowest load; ``turn`` rotates among the tied ones."""
        members = self.levels[self.low]
        return members[turn % len(members)]

    def least_of(self, turn: int, allowed: set[Pool]) -> Pool | None:
        """Like :meth:`least`, among the pools in ``allowed`` only (the instances in
        rotation); ``None`` when there is none."""
        for level in range(self.low, len(self.levels)):
            members = self.levels[level]
            k = len(members)
            for j in range(k):
                p = members[(turn + j) % k]
                if p in allowed:
                    return p
        return None


ANY = Pool("any", INF, INF)  # "the callee chooses": datastores and queues route internally


class TokenBucket:
    """Admission control: ``rate`` tokens per second, at most ``burst`` banked."""

    __slots__ = ("rate", "burst", "tokens", "last")

    def __init__(self, rate: float, burst: float):
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.last = 0.0

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

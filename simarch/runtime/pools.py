"""Worker pools: the workers of one instance (or replica), a minimal SimPy resource.

A free worker is taken without scheduling any event; a waiting request waits on one
``simpy.Event`` that the releasing request triggers, handing its worker over (FIFO). Pools
keep their own time-weighted statistics as running sums, so utilisation and queue length
cost two additions per change.
"""

from __future__ import annotations

import math
from collections import deque

from simpy.events import Event

INF = math.inf


class Pool:
    """The workers of one instance (or replica): ``cap`` slots and a FIFO wait queue.

    Time-weighted levels are kept as sums of start and end times: the busy-worker area up to
    ``t`` is ``s_end + n*t - s_start`` (the same for the wait queue with ``q_*``).
    """

    __slots__ = ("name", "cap", "workers", "qlimit", "n", "waiters", "s_start", "s_end", "q_start",
                 "q_end", "q_max", "done", "rejected", "down", "hang", "epoch", "x_start",
                 "x_end", "refused", "zone")

    def __init__(self, name: str, cap: float, qlimit: float, zone: str | None = None):
        self.name = name
        self.cap = cap
        self.workers = cap  # configured workers; ``cap`` drops while workers are lost
        self.qlimit = qlimit
        self.zone = zone
        self.n = 0
        self.waiters: deque[Event] = deque()
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

    # -- the request path
    def acquire(self, env, now: float) -> Event | bool | None:
        """Take a worker at ``now``: ``None`` when one was free (taken), ``False`` when the
        wait queue is full (the request is rejected), else the event to wait for; its value
        is ``True`` when the instance crashed while the request waited."""
        if self.n < self.cap:
            self.n += 1
            self.s_start += now
            return None
        w = self.waiters
        if len(w) >= self.qlimit:
            self.rejected += 1
            return False
        ev = Event(env)
        w.append(ev)
        self.q_start += now
        if len(w) > self.q_max:
            self.q_max = len(w)
        return ev

    def release(self, now: float) -> None:
        """Give the worker back at ``now``: to the first waiting request, if any."""
        self.s_end += now
        self.done += 1
        w = self.waiters
        if w and self.n <= self.cap:
            self.q_end += now
            self.s_start += now
            w.popleft().succeed()
        else:
            self.n -= 1

    # -- statistics
    def down_area(self, t: float) -> float:
        return self.x_end + (t if self.down else 0.0) - self.x_start

    def load(self) -> int:
        return self.n + len(self.waiters)

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

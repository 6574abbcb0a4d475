"""Overload control: priorities and disciplines of wait queues, concurrency limits, admission
by priority, and deadlines that travel with a request.

Every piece here is chosen when a run is built, so that a design that uses none of them runs
the plain :class:`~simarch.runtime.pools.Pool` path, untouched:

* :class:`PriorityPool` -- a pool whose wait queue serves by priority (non-preemptive: a
  request in service is never interrupted) and, within a priority, by its discipline
  (``fifo``, ``lifo``, ``adaptive_lifo``, ``codel``); a full queue makes room for a higher
  priority by rejecting the newest waiter of the lowest priority below it; it drops waiters
  whose caller's deadline has passed when they reach the head.
* :class:`Limiter` and its subclasses -- a cap on the requests in flight at one instance:
  fixed, AIMD or gradient (after Netflix's concurrency-limits library).
* :class:`PriorityBucket` -- a token bucket that keeps tokens in reserve for higher
  priorities.
* :class:`DeadlineTask` and :class:`TimedCall` -- a timed call whose deadline the callee
  sees (``deadline: propagate``) or whose callee's work stops when the caller stops waiting
  (``cancel: true``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Generator, Iterator
from typing import Any

from simpy.events import PENDING, Event

from ..model.status import REJECTED, TIMEOUT
from .pools import INF, Pool, TokenBucket
from .tasks import Task

FIFO, LIFO, ADAPTIVE_LIFO, CODEL = 0, 1, 2, 3
MODES = {"fifo": FIFO, "lifo": LIFO, "adaptive_lifo": ADAPTIVE_LIFO, "codel": CODEL}
LEVELS = 3  # critical, default, sheddable


class QueueSetup:
    """What a component's wait queues need to know of the design's overload control: each
    class's priority rank, whether any rank differs from ``default``, the component's
    discipline (``None``: FIFO) and whether deadlines or cancellation are in use.

    Components compute it when they need it (building pools, statistics) and keep no
    attribute for it, nor for any other overload setting (those live on the pools): CPython
    shares the attribute layout of a class's instances, and specialises attribute access on
    it, only up to 30 attributes, and the kinds are close to that limit; past it every
    ``self.x`` on the request path gets slower."""

    __slots__ = ("ranks", "prioritised", "discipline", "deadlines")

    def __init__(self, sim: Any, spec: Any):
        requests = sim.spec.workload.requests
        self.ranks = [requests[c].rank for c in sim.classes]
        self.prioritised = any(r != 1 for r in self.ranks)
        self.discipline = getattr(spec, "discipline", None)
        self.deadlines = any(c.deadline is not None or c.cancel for c in sim.spec.calls)

    @property
    def plain(self) -> bool:
        """Whether plain FIFO pools do."""
        return self.discipline is None and not self.prioritised and not self.deadlines


class _Waiters:
    """The wait queue of a :class:`PriorityPool` as :class:`~simarch.runtime.pools.Pool`'s own
    methods see it (a length, iteration, ``clear`` and ``popleft``)."""

    __slots__ = ("pool",)

    def __init__(self, pool: PriorityPool):
        self.pool = pool

    def __len__(self) -> int:
        return self.pool.size

    def __iter__(self) -> Iterator[Event]:
        for q in self.pool.evs:
            yield from q

    def clear(self) -> None:
        p = self.pool
        for q, t in zip(p.evs, p.ts, strict=True):
            q.clear()
            t.clear()
        p.size = 0

    def popleft(self) -> Event:
        ev = self.pool._pop(None)
        assert ev is not None
        return ev


def deadline_of(ev: Event) -> float:
    """The deadline of the request waiting on ``ev``: its task's, if the task has one."""
    cbs = ev.callbacks
    if cbs:
        task = getattr(cbs[0], "__self__", None)
        return getattr(task, "deadline", INF)
    return INF


class PriorityPool(Pool):
    """A :class:`~simarch.runtime.pools.Pool` whose wait queue has one deque per priority
    (``rank[cls]``: 0 critical, 1 default, 2 sheddable), served highest first, and within a
    priority by ``mode`` (``FIFO``, ``LIFO``, ``ADAPTIVE_LIFO``, ``CODEL``).

    ``target`` and ``interval`` are the discipline's parameters (see
    :class:`~simarch.model.components.DisciplineSpec`); with ``deadlines`` a waiter whose
    task's deadline has passed is dropped (``TIMEOUT``) when it reaches the head.
    """

    __slots__ = ("rank", "evs", "ts", "size", "mode", "target", "interval", "last_empty",
                 "last_drop", "deadlines", "evicted", "dropped", "expired")

    def __init__(self, name: str, cap: float, qlimit: float, zone: str | None, rank: list[int],
                 mode: int = FIFO, target: float = 0.005, interval: float = 0.1,
                 deadlines: bool = False):
        super().__init__(name, cap, qlimit, zone)
        self.rank = rank
        self.evs: list[deque[Event]] = [deque() for _ in range(LEVELS)]
        self.ts: list[deque[float]] = [deque() for _ in range(LEVELS)]  # enqueue times
        self.size = 0
        self.waiters = _Waiters(self)  # type: ignore[assignment]
        self.mode = mode
        self.target = target
        self.interval = interval
        self.last_empty = 0.0  # when the wait queue last went from empty to non-empty
        self.last_drop = -INF  # when CoDel last dropped a waiter
        self.deadlines = deadlines
        self.evicted = 0  # waiters rejected to make room for a higher priority
        self.dropped = 0  # waiters dropped by CoDel
        self.expired = 0  # waiters dropped because their caller's deadline had passed

    def acquire(self, env, now: float, cls: int = 0) -> Event | bool | None:
        if self.n < self.cap:
            self.n += 1
            self.s_start += now
            self.load += 1
            if self.index is not None:
                self.index.up(self)
            return None
        r = self.rank[cls]
        evs = self.evs
        if self.size >= self.qlimit:
            for lv in range(LEVELS - 1, r, -1):  # the lowest priority below the arrival's
                if evs[lv]:
                    self.ts[lv].pop()
                    self.size -= 1
                    self.evicted += 1
                    self.rejected += 1
                    self._drop(evs[lv].pop(), now, REJECTED)
                    break
            else:
                self.rejected += 1
                return False
        if not self.size:
            self.last_empty = now
        ev = Event(env)
        evs[r].append(ev)
        self.ts[r].append(now)
        self.size += 1
        self.waited += 1
        self.load += 1
        if self.index is not None:
            self.index.up(self)
        self.q_start += now
        if self.size > self.q_max:
            self.q_max = self.size
        return ev

    def _drop(self, ev: Event, now: float, status: int) -> None:
        """A waiter leaves the queue without service; its request ends with ``status``."""
        self.q_end += now
        self.load -= 1
        if self.index is not None:
            self.index.down(self)
        ev.succeed(status)

    def _pop(self, now: float | None) -> Event | None:
        """The next waiter to serve, taken off the queue; at ``now`` (not ``None``) the ones
        CoDel or their deadline drop on the way are dropped."""
        evs, ts = self.evs, self.ts
        mode = self.mode
        # CoDel's state: congested once the queue has not been empty for an interval, and
        # until an interval passes without a drop (so that the drops, which empty the queue,
        # do not switch it off while the overload lasts)
        congested = now is not None and (now - self.last_empty > self.interval
                                         or now - self.last_drop < self.interval)
        while self.size:
            lv = 0
            while not evs[lv]:
                lv += 1
            q, t = evs[lv], ts[lv]
            if mode == LIFO or (mode == ADAPTIVE_LIFO and now is not None and now - t[0] > self.target):
                ev, te = q.pop(), t.pop()
            else:
                ev, te = q.popleft(), t.popleft()
            self.size -= 1
            if now is None:
                return ev
            if mode == CODEL and now - te > (self.target if congested else self.interval):
                self.dropped += 1
                self.rejected += 1
                self.last_drop = now
                self._drop(ev, now, REJECTED)
                continue
            if self.deadlines and deadline_of(ev) <= now:
                self.expired += 1
                self._drop(ev, now, TIMEOUT)
                continue
            return ev
        return None

    def release(self, now: float) -> None:
        self.s_end += now
        self.done += 1
        self.load -= 1
        if self.index is not None:
            self.index.down(self)
        ev = self._pop(now) if self.size and self.n <= self.cap else None
        if ev is not None:
            self.q_end += now
            self.s_start += now
            ev.succeed()
        else:
            self.n -= 1

    def remove(self, ev: Event, now: float) -> bool:
        """Take the waiter ``ev`` off the queue (its request was cancelled); ``False`` when it
        is not waiting."""
        for q, t in zip(self.evs, self.ts, strict=True):
            for i, e in enumerate(q):
                if e is ev:
                    del q[i]
                    del t[i]
                    self.size -= 1
                    self.q_end += now
                    self.load -= 1
                    if self.index is not None:
                        self.index.down(self)
                    return True
        return False


# --------------------------------------------------------------------------- admission


class PriorityBucket(TokenBucket):
    """A token bucket that sheds lower priorities first: a request of rank ``r`` is admitted
    when the bucket holds at least ``need[r]`` tokens, and takes one. ``need`` is ``1`` for
    critical requests, ``max(1, burst / 4)`` for default ones and ``max(1, burst / 2)`` for
    sheddable ones, so that under overload the last quarter of the burst is kept for critical
    requests and the last half for critical and default ones."""

    __slots__ = ("rank", "need")

    def __init__(self, rate: float, burst: float, rank: list[int]):
        super().__init__(rate, burst)
        self.rank = rank
        self.need = (1.0, max(1.0, burst / 4), max(1.0, burst / 2))

    def take_cls(self, now: float, cls: int) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= self.need[self.rank[cls]]:
            self.tokens -= 1.0
            return True
        return False


# --------------------------------------------------------------------------- concurrency limits


class Limiter:
    """A fixed cap on the requests in flight at one instance. ``inflight`` counts the
    admitted requests not yet answered; ``history`` holds ``(time, limit)`` each time the
    (whole) limit changed, at most one every ``every`` seconds."""

    __slots__ = ("limit", "lo", "hi", "inflight", "rejected", "history", "every", "last_t", "shown")

    def __init__(self, start: float, lo: float = 1.0, hi: float = INF, every: float = 0.0):
        self.limit = start
        self.lo = lo
        self.hi = hi
        self.inflight = 0
        self.rejected = 0
        self.every = every
        self.history: list[tuple[float, int]] = [(0.0, int(start))]
        self.last_t = 0.0
        self.shown = int(start)

    def sample(self, now: float, rtt: float, ok: bool, inflight: int) -> None:
        """An answer after ``rtt`` seconds (``ok``: it ended OK), with ``inflight`` in flight."""

    def _set(self, now: float, limit: float) -> None:
        limit = min(self.hi, max(self.lo, limit))
        self.limit = limit
        whole = int(limit)
        if whole != self.shown and now - self.last_t >= self.every:
            self.history.append((now, whole))
            self.shown = whole
            self.last_t = now


class AimdLimiter(Limiter):
    """Additive increase, multiplicative decrease: +1 per answer while at least half the limit
    is in flight; ``x backoff`` (and at least -1) on a drop or an answer slower than
    ``timeout``, at most once per round: a drop of a request admitted before the last
    decrease does not decrease the limit again (as TCP cuts its window once per round trip),
    or the backlog admitted under the old limit would take it down to ``min``."""

    __slots__ = ("backoff", "timeout", "cut_at")

    def __init__(self, start: float, lo: float, hi: float, backoff: float, timeout: float,
                 every: float = 0.0):
        super().__init__(start, lo, hi, every)
        self.backoff = backoff
        self.timeout = timeout
        self.cut_at = -INF

    def sample(self, now: float, rtt: float, ok: bool, inflight: int) -> None:
        limit = self.limit
        if not ok or rtt > self.timeout:
            if now - rtt >= self.cut_at:
                self.cut_at = now
                self._set(now, max(1.0, min(limit - 1.0, math.floor(limit * self.backoff))))
        elif inflight * 2 >= limit:
            self._set(now, limit + 1.0)


class GradientLimiter(Limiter):
    """``limit x gradient + queue_size`` per window of ``window`` answers, ``gradient = min(1,
    max(0.5, tolerance x rtt_noload / rtt))`` with ``rtt`` the window's mean residence time
    and ``rtt_noload`` the least seen; a decrease is smoothed (``smoothing``), a drop in the
    window halves the limit, and the limit does not grow while the instance is far below it."""

    __slots__ = ("tolerance", "smoothing", "queue_size", "window", "n", "sum", "drop", "max_in",
                 "noload")

    def __init__(self, start: float, lo: float, hi: float, tolerance: float, smoothing: float,
                 queue_size: float | None, window: int, every: float = 0.0):
        super().__init__(start, lo, hi, every)
        self.tolerance = tolerance
        self.smoothing = smoothing
        self.queue_size = queue_size
        self.window = window
        self.n = 0
        self.sum = 0.0
        self.drop = False
        self.max_in = 0
        self.noload = INF

    def sample(self, now: float, rtt: float, ok: bool, inflight: int) -> None:
        self.n += 1
        self.sum += rtt
        if not ok:
            self.drop = True
        if inflight > self.max_in:
            self.max_in = inflight
        if self.n < self.window:
            return
        mean = self.sum / self.n
        drop, max_in = self.drop, self.max_in
        self.n, self.sum, self.drop, self.max_in = 0, 0.0, False, 0
        if mean > 0 and mean < self.noload:
            self.noload = mean
        limit = self.limit
        qs = self.queue_size if self.queue_size is not None else math.sqrt(limit)
        if drop:
            new = limit / 2
        elif max_in + qs < limit:
            return  # the instance is not using its limit: no evidence to grow on
        else:
            gradient = max(0.5, min(1.0, self.tolerance * self.noload / mean)) if mean > 0 else 1.0
            new = limit * gradient + qs
        if new < limit:
            new = limit * (1 - self.smoothing) + self.smoothing * new
        self._set(now, max(new, qs))


def make_limiter(spec: Any, every: float) -> Limiter:
    """The limiter of one instance for a ``concurrency_limit`` spec."""
    lo, hi = float(spec.min), float(spec.max)
    if spec.adaptive is None:
        return Limiter(float(spec.limit), 1.0, INF, every)
    if spec.adaptive == "aimd":
        return AimdLimiter(spec.start, lo, hi, spec.backoff_ratio, spec.timeout, every)
    return GradientLimiter(spec.start, lo, hi, spec.tolerance, spec.smoothing, spec.queue_size,
                           spec.window, every)


# --------------------------------------------------------------------------- deadlines and cancellation


class DeadlineTask(Task):
    """The task of a timed call whose callee sees its ``deadline`` (an absolute time): pools
    with deadline checks drop the request when it reaches the head of a queue after it."""

    __slots__ = ("deadline",)

    def __init__(self, env: Any, gen: Generator, deadline: float):
        Task.__init__(self, env, gen, None)
        self.deadline = deadline


class TimedCall(float):
    """A call's timeout (seconds) that also says what the callee learns of it: ``propagate``
    (the deadline travels with the request) and ``cancel`` (the callee's work stops once the
    caller stops waiting). A plain ``float`` timeout does neither."""

    propagate: bool
    cancel: bool

    def __new__(cls, seconds: float, propagate: bool, cancel: bool) -> TimedCall:
        t = float.__new__(cls, seconds)
        t.propagate = propagate
        t.cancel = cancel
        return t


def timeout_of(call: Any) -> float | None:
    """A call spec's timeout as the request path takes it: a plain float, or a
    :class:`TimedCall` when the call propagates its deadline or cancels."""
    if call.timeout is None:
        return None
    if call.deadline is None and not call.cancel:
        return call.timeout
    return TimedCall(call.timeout, call.deadline == "propagate", call.cancel)


def _finished():
    """What a cancelled task runs when it is woken: it ends at once (primed, so that it
    takes any value sent)."""
    yield
    return TIMEOUT


#: ``CANCELLING[0] > 0`` while :func:`cancel` closes a task's generators: the request path's
#: clean-up on ``GeneratorExit`` runs only then, not when the garbage collector closes the
#: generators of a request that can never finish (a call to a hung instance holds its worker
#: for good, as it would in a real system).
CANCELLING = [0]


def cancel(task: Task, now: float) -> bool:
    """Stop ``task``'s work now: each generator on its stack is closed (a visit waiting for a
    worker leaves the queue, one in service gives its worker back, see
    :meth:`~simarch.runtime.component.Component._serve`), and whatever the task still waits
    for wakes it into a finished generator. ``False`` when the task had finished."""
    if task.value is not PENDING:
        return False
    stack = task.stack
    CANCELLING[0] += 1
    try:
        while stack:
            stack.pop().close()
    finally:
        CANCELLING[0] -= 1
    end = _finished()
    next(end)
    stack.append(end)
    task.value = TIMEOUT
    return True




def overload_notes(spec: Any) -> list[str]:
    """What the static queueing model leaves out of a design's overload control (its
    warnings): it takes every wait queue as FIFO without priorities, and models neither
    concurrency limits, CoDel's drops, propagated deadlines nor cancellation."""
    out = []
    prios = sorted({rc.priority for rc in spec.workload.requests.values()})
    if prios != ["default"]:
        out.append("request priorities not modelled: queues are taken as FIFO, so the per-class "
                   "waits are the FIFO figures (higher priorities wait less, lower ones more: "
                   "Cobham's formula for one worker)")
    for name, c in spec.components.items():
        d = getattr(c, "discipline", None)
        if d is not None and d.type != "fifo":
            how = ("the mean wait is FIFO's, its spread is not" if d.type in ("lifo", "adaptive_lifo")
                   else "its drops are not modelled")
            out.append(f"{name}: queue discipline {d.type} not modelled ({how})")
        cl = getattr(c, "concurrency_limit", None)
        if cl is not None:
            out.append(f"{name}: concurrency limit not modelled (it rejects what finds the "
                       "instance at its limit)")
    for c in spec.calls:
        if c.deadline is not None or c.cancel:
            what = " and ".join(w for w, x in (("deadline propagation", c.deadline), ("cancel", c.cancel)) if x)
            out.append(f"{c.source} -> {c.to}: {what} not modelled")
    return out

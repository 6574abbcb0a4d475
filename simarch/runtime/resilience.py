"""What a caller does about failures on one call: retries with backoff and a retry budget,
a circuit breaker, hedged requests and a fallback.

A :class:`Resilience` wraps one edge of the graph. Its :meth:`Resilience.call` is a request
generator like a component's ``serve``: the caller's worker is held through every attempt
and every backoff, so a retried request's latency includes all of its attempts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..model.spec import BreakerSpec, CallSpec, RetryBudgetSpec
from ..model.status import FAILED, OK, REJECTED, TIMEOUT
from .hops import ABANDONED, ASYNC, BACKOFF, HEDGE
from .overload import CANCELLING, cancel, timeout_of
from .tasks import Task, first_of, spawn

if TYPE_CHECKING:
    from .component import Component

_CAUSES = {"rejected": REJECTED, "timeout": TIMEOUT, "failed": FAILED}

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class Breaker:
    """A circuit breaker: ``closed`` -> ``open`` after ``failures`` consecutive failures;
    ``open`` fails calls at once for ``open_for``; then ``half_open`` lets ``probes`` calls
    through: a success closes it, a failure opens it again."""

    def __init__(self, spec: BreakerSpec, edge: str):
        self.spec = spec
        self.edge = edge
        self.state = CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.probes = 0
        self.since = 0.0  # when the current state began
        self.rejected = 0
        self.transitions: list[tuple[float, str, str, str]] = []  # (time, edge, from, to)

    def _move(self, now: float, state: str) -> None:
        self.transitions.append((now, self.edge, self.state, state))
        self.state = state
        self.since = now

    def allow(self, now: float) -> bool:
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            if now - self.opened_at < self.spec.open_for:
                self.rejected += 1
                return False
            self._move(now, HALF_OPEN)
            self.probes = 0
        if self.probes < self.spec.probes:
            self.probes += 1
            return True
        self.rejected += 1
        return False

    def record(self, ok: bool, now: float, started: float) -> None:
        """The outcome of a call begun at ``started``; calls begun before the current state
        (e.g. before the breaker opened) do not count as its trial calls."""
        if started < self.since:
            return
        if self.state == HALF_OPEN:
            if ok:
                self._move(now, CLOSED)
                self.failures = 0
            else:
                self._move(now, OPEN)
                self.opened_at = now
        elif self.state == CLOSED:
            if ok:
                self.failures = 0
            else:
                self.failures += 1
                if self.failures >= self.spec.failures:
                    self._move(now, OPEN)
                    self.opened_at = now
        # results of calls begun before the breaker opened do not change an open breaker


class RetryBudget:
    """A token bucket: each first attempt adds ``ratio`` tokens (at most ``burst``); a retry
    needs a whole token."""

    def __init__(self, spec: RetryBudgetSpec):
        self.ratio = spec.ratio
        self.burst = spec.burst
        self.tokens = spec.burst
        self.denied = 0

    def deposit(self) -> None:
        self.tokens = min(self.burst, self.tokens + self.ratio)

    def withdraw(self) -> bool:
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        self.denied += 1
        return False


class Resilience:
    """Retries, breaker, hedging and fallback for one call from ``caller`` to ``target``."""

    def __init__(self, caller: Component, call: CallSpec, target: Component, pick: Callable,
                 lat: Callable[[], float] | None, link: Any,
                 fallback: tuple[Callable, Callable, Any] | None):
        self.caller = caller
        self.env = caller.env
        self.call_spec = call
        self.target = target
        self.pick = pick
        self.lat = lat
        self.link = link
        self.timeout = timeout_of(call)  # (with the deadline and cancel options, if any)
        self.cancels = call.cancel
        self.retries = call.retries
        self.attempts = call.retries.attempts if call.retries else 1
        self.retry_on = {_CAUSES[c] for c in call.retries.on} if call.retries else set()
        self.budget = RetryBudget(call.retries.budget) if call.retries and call.retries.budget else None
        self.breaker = Breaker(call.circuit_breaker, f"{call.source}->{call.to}") \
            if call.circuit_breaker else None
        self.hedge = call.hedge
        self.fallback = fallback
        self._u = caller.sim.uniform(caller.name, call.to, "backoff")
        # statistics
        self.first_attempts = 0
        self.retried = 0
        self.hedged = 0
        self.fallbacks = 0
        self.cancelled = 0  # losing hedged attempts stopped (cancel: true)

    # -- backoff
    def backoff(self, n: int, prev: float) -> float:
        """The pause after attempt ``n`` (1-based); ``prev`` is the previous pause."""
        r = self.retries
        assert r is not None
        kind = r.backoff
        if kind == "none":
            return 0.0
        exp = min(r.cap, r.base * 2.0 ** min(n - 1, 1000))  # (2.0 ** 1024 would overflow)
        if kind == "exponential":
            return exp
        if kind == "full_jitter":
            return self._u() * exp
        if kind == "equal_jitter":
            return exp / 2 + self._u() * exp / 2
        # decorrelated jitter: sleep = min(cap, uniform(base, prev * 3))
        hi = max(r.base, prev * 3.0)
        return min(r.cap, r.base + self._u() * (hi - r.base))

    # -- the call
    def call(self, _pool: Any, cls: int, key: int, parent: int):
        env = self.env
        self.first_attempts += 1
        if self.budget is not None:
            self.budget.deposit()
        n = 0
        prev = self.retries.base if self.retries else 0.0
        status = FAILED
        breaker = self.breaker
        hops = self.caller.hops if parent >= 0 else None
        callee = self.target.index
        while True:
            if breaker is not None and not breaker.allow(env._now):
                status = FAILED  # short-circuited: the breaker is open
                break
            n += 1
            if n > 1:
                self.retried += 1
            started = env._now
            status = yield self._attempt(cls, key, n > 1, parent, n)
            if breaker is not None:
                breaker.record(status == OK, env._now, started)
            if status == OK or n >= self.attempts or status not in self.retry_on:
                break
            if self.budget is not None and not self.budget.withdraw():
                break
            pause = self.backoff(n, prev)
            prev = pause
            if hops is not None and pause > 0:
                hops.call_row(None, parent, callee, env._now, env._now + pause, OK, BACKOFF, n)
            yield pause
        if status != OK and self.fallback is not None:
            self.fallbacks += 1
            serve, pick, link = self.fallback
            return self.caller._one(None, self.timeout, serve, pick, cls, key, link, None, parent)  # hands over
        return status

    def _attempt(self, cls: int, key: int, retry: bool, parent: int, n: int):
        """Attempt ``n`` of the call (1 for the first). A recorded attempt writes a call row
        (the timed call's, when there is a timeout; else its own)."""
        caller = self.caller
        target = self.target
        if self.hedge is not None:
            return self._hedged(cls, key, retry, parent, n)
        if parent < 0 or self.timeout is not None:
            return caller._one(self.lat, self.timeout, target.serve, self.pick,
                               cls, key, self.link, target if retry else None, parent, n)
        return self._recorded(cls, key, retry, parent, n)

    def _recorded(self, cls: int, key: int, retry: bool, parent: int, n: int):
        env = self.env
        hops = self.caller.hops
        cid = hops.new_id()
        begun = env._now
        status = yield self.caller._one(self.lat, None, self.target.serve, self.pick, cls, key,
                                        self.link, self.target if retry else None, cid * 4)
        hops.call_row(cid, parent, self.target.index, begun, env._now, status, attempt=n)
        return status

    def _hedged(self, cls: int, key: int, retry: bool, parent: int, n: int):
        """The first attempt, and one more each ``after`` seconds (at most ``max`` more)
        while none has answered; the first success wins, else the last failure.

        Recorded, the attempts write call rows when the call ends: the one the caller went
        on with in its window, the others (still running, or failed first) as asynchronous
        ones, and a hedge row for the time before the winner was sent."""
        env = self.env
        caller = self.caller
        target = self.target
        hedge = self.hedge
        hops = caller.hops if parent >= 0 else None
        sent_at: list[tuple[Task, int, float]] = []

        def attempt(extra: bool) -> Task:
            if hops is None:
                up = -1
            else:
                cid = hops.new_id()
                up = cid * 4
            t = spawn(env, caller._one(self.lat, self.timeout, target.serve, self.pick,
                                       cls, key, self.link, target if extra else None, up))
            if hops is not None:
                sent_at.append((t, cid, env._now))
            return t
        pending = [attempt(retry)]
        sent = 0
        timer: Any = env.timeout(hedge.after)
        last = FAILED
        winner = None
        ended: dict[Task, float] = {}  # when each attempt that finished did (recorded calls)
        while pending:
            if not any(t.done for t in pending) and not (timer is not None and timer.processed):
                try:
                    yield first_of(env, pending, timer)
                except GeneratorExit:  # the caller was cancelled: with cancel, so are the attempts
                    if self.cancels and CANCELLING[0]:
                        for t in pending:
                            cancel(t, env._now)
                    raise
            for t in list(pending):
                if t.done:
                    pending.remove(t)
                    if hops is not None:
                        ended[t] = env._now  # (the loop wakes as each attempt finishes)
                    winner = t
                    if t.value == OK:
                        break
                    last = t.value
            if winner is not None and winner.value == OK:
                break
            if timer is not None and timer.processed and pending:
                pending.append(attempt(True))
                sent += 1
                self.hedged += 1
                timer = env.timeout(hedge.after) if sent < hedge.max else None
        if hops is not None:
            self._hedge_rows(hops, sent_at, winner, ended, parent, n)
        if self.cancels:  # the losing copies stop (Envoy resets the losing streams)
            for t in pending:
                if cancel(t, env._now):
                    self.cancelled += 1
        return OK if winner is not None and winner.value == OK else last

    def _hedge_rows(self, hops: Any, sent_at: list, winner: Task | None, ended: dict, parent: int,
                    n: int) -> None:
        now = self.env._now
        callee = self.target.index
        off = parent - parent % 4 + ASYNC
        first = sent_at[0][2]
        for t, cid, begun in sent_at:
            on_path = t is winner
            if on_path and begun > first:
                hops.call_row(None, parent, callee, first, begun, OK, HEDGE, n)
            # an attempt still running is abandoned: its row ends now, flagged as such
            status = t.value if t.done else OK + ABANDONED
            hops.call_row(cid, parent if on_path else off, callee, begun, ended.get(t, now), status,
                          attempt=n)

    def stats(self) -> dict[str, Any]:
        return {
            "edge": f"{self.call_spec.source}->{self.call_spec.to}",
            "first_attempts": self.first_attempts,
            "retries": self.retried,
            "hedges": self.hedged,
            "fallbacks": self.fallbacks,
            **({"cancelled": self.cancelled} if self.cancels else {}),
            "budget_denied": self.budget.denied if self.budget else 0,
            "breaker_rejected": self.breaker.rejected if self.breaker else 0,
            "breaker_state": self.breaker.state if self.breaker else None,
        }

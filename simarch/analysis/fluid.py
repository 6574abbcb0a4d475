"""A fluid model of the retry loop: when a retried call to a bottleneck is bistable, and how
large a trigger tips it into its bad state.

The loop: a caller sends first attempts at rate ``lam`` to a bottleneck of ``c`` workers
with mean service time ``s`` (capacity ``mu = c / s`` attempts per second). Each attempt has
a timeout ``T``; a failed attempt (timed out, or rejected by a bounded queue) is retried, up
to ``attempts`` attempts in all, after a backoff. A timed-out attempt is abandoned by its
caller but not by the bottleneck, which still serves it (simarch never cancels a callee's
work). The derivation is in ``docs/background/metastability.md``; in short:

* **The good state** (short queue, no attempt times out) offers ``lam`` and is stable when
  ``lam < mu``.
* **The bad state** (long queue, every attempt times out) offers ``lam * attempts``
  attempts per second, each of which the bottleneck serves in full although nobody waits for
  it: the queue grows at ``lam * attempts - mu``, so the bad state sustains itself when
  ``lam * attempts > mu``. Two things bound that rate: the caller's own workers (each held
  for the whole call: at most ``W / (attempts * T)`` requests per second get through a caller
  of ``W`` workers, so at most ``W / T`` attempts per second), and a retry budget (retries at
  most ``ratio`` per first attempt: ``lam * (1 + ratio)``). A bounded queue (``queue: K``)
  removes the bad state when every accepted attempt is answered in time, ``(c + K) / mu <=
  T``: the excess is rejected at once, costs no work, and what is accepted succeeds.
* **The tipping backlog.** In the fluid (deterministic) limit an attempt that arrives with
  ``N`` attempts in the system is answered after ``N / mu + s`` (the ``N - c`` ahead of it in
  the queue drain at ``mu``, then its own service), so it times out when ``N > mu * (T -
  s) + c = mu * T``: ``B* = mu * T`` attempts in the system tip the loop.
* **A slowdown** by ``F`` for ``d`` seconds lowers the capacity to ``mu / F`` and builds a
  backlog of ``(lam - mu / F) * d`` while nothing times out: a first estimate of the
  boundary is ``d* = mu * T / (lam - mu / F)``. Retries start before the backlog reaches
  ``mu * T`` (during the slowdown an attempt is served slower, so it times out with fewer
  ahead of it), and those already sent when the slowdown ends keep coming for up to
  ``(attempts - 1) * T`` after it. :func:`fluid_run` integrates the fluid queue with both
  effects (FIFO, the retries' delays, the bounded queue, the budget) and
  :func:`fluid_boundary` bisects it.

The stochastic system differs from the fluid one near the boundary: queue lengths fluctuate
by about ``sqrt(B*)``, and with exponential service some attempts time out below ``B*``, so
the simulated boundary lies somewhat below the fluid one, and a design whose good state
holds a queue near ``B*`` can tip with no trigger at all (a noise-driven escape).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from scipy.special import gammaincc

from ..errors import SpecError
from ..model.architecture import Architecture
from ..model.architecture import load as load_arch
from ..model.units import parse_multiplier
from .capacity import capacity_report

__all__ = ["RetryLoop", "FluidRun", "retry_loop", "fluid_run", "fluid_boundary"]


@dataclass(frozen=True)
class RetryLoop:
    """The parameters of one retried call to a bottleneck, and the fluid model's verdicts.

    Rates are per second, times in seconds. ``queue`` is the bottleneck's bound on waiting
    attempts (``None``: unbounded); ``caller_workers`` the workers of the caller, held for the
    whole call (``None``: no bound); ``budget`` the retry budget's ratio (``None``: none);
    ``backoff`` the mean pause before a retry.
    """

    lam: float
    workers: float
    service: float
    timeout: float
    attempts: int
    queue: float | None = None
    caller_workers: float | None = None
    caller_service: float = 0.0
    budget: float | None = None
    burst: float = 10.0
    backoff: float = 0.0
    caller: str = "caller"
    callee: str = "callee"

    @property
    def mu(self) -> float:
        """The bottleneck's capacity, attempts per second: workers / mean service time."""
        return self.workers / self.service

    @property
    def good_stable(self) -> bool:
        """The good state is stable: first attempts alone fit, ``lam < mu``."""
        return self.lam < self.mu

    @property
    def bad_rate(self) -> float:
        """Attempts per second offered to the bottleneck in the bad state (every attempt times
        out): ``lam * attempts``, bounded by the retry budget and by the caller's workers."""
        rate = self.lam * self.attempts
        if self.budget is not None:
            rate = min(rate, self.lam * (1.0 + self.budget))
        if self.caller_workers is not None:
            hold = self.caller_service + self.attempts * self.timeout + (self.attempts - 1) * self.backoff
            rate = min(rate, self.caller_workers / hold * self.attempts)
        return rate

    @property
    def sheds(self) -> bool:
        """A bounded queue answers every attempt it accepts within the timeout, so no accepted
        attempt is wasted: ``(workers + queue) / mu <= timeout``."""
        return self.queue is not None and (self.workers + self.queue) / self.mu <= self.timeout

    @property
    def bad_stable(self) -> bool:
        """The bad state sustains itself: its offered attempts exceed the capacity and the
        queue can hold enough to make them time out."""
        return self.attempts > 1 and self.bad_rate > self.mu and not self.sheds

    @property
    def bistable(self) -> bool:
        """Both states are stable: a large enough trigger leaves the design in the bad one."""
        return self.good_stable and self.bad_stable

    @property
    def tipping_backlog(self) -> float:
        """``B* = mu * T``: attempts in the bottleneck beyond which a new one times out (inf when
        the design is not bistable)."""
        return self.mu * self.timeout if self.bistable else math.inf

    def slowdown_boundary(self, factor: float) -> float:
        """The first estimate of the shortest slowdown by ``factor`` that tips the loop: the
        backlog ``(lam - mu / factor) * d`` reaches ``B*`` (inf if it never does)."""
        grow = self.lam - self.mu / factor
        if not self.bistable or grow <= 0:
            return math.inf
        return self.tipping_backlog / grow

    def spike_boundary(self, factor: float) -> float:
        """The same for a load spike of ``factor`` x the arrival rate: ``B* / (factor * lam -
        mu)``."""
        grow = factor * self.lam - self.mu
        if not self.bistable or grow <= 0:
            return math.inf
        return self.tipping_backlog / grow

    def verdict(self) -> str:
        """One line: bistable or not, and why."""
        if not self.good_stable:
            return f"overloaded: {self.lam:.4g}/s first attempts against a capacity of {self.mu:.4g}/s"
        if self.attempts <= 1:
            return "recovers: no retries, the offered load cannot grow"
        if self.sheds:
            return (f"recovers: the bounded queue answers every attempt it accepts within the "
                    f"timeout ({(self.workers + self.queue) / self.mu:.3g} s <= {self.timeout:.3g} s)")
        if not self.bad_stable:
            return (f"recovers: the bad state offers {self.bad_rate:.4g}/s, below the capacity of "
                    f"{self.mu:.4g}/s")
        return (f"bistable: the bad state offers {self.bad_rate:.4g}/s against a capacity of "
                f"{self.mu:.4g}/s; a backlog of {self.tipping_backlog:.4g} attempts tips it")

    def with_load(self, load: float) -> RetryLoop:
        return replace(self, lam=self.lam * load)


def retry_loop(arch: Architecture | Any, load: float | str = 1.0) -> RetryLoop:
    """The :class:`RetryLoop` of a design with one retried ``call`` (its callee is taken as
    the bottleneck; its capacity is its workers over its mean time per visit, from the static
    capacity analysis). Raises :class:`SpecError` when the design has no retried call, or
    several, or the call has no timeout."""
    arch = load_arch(arch)
    try:
        mult = parse_multiplier(load)
    except ValueError as e:
        raise SpecError(str(e), ("load",)) from None
    retried = [(u, v, c) for u, v, c in arch.call_edges() if c.retries is not None]
    if not retried:  # no retries at all: the one call with a timeout (one attempt)
        retried = [(u, v, c) for u, v, c in arch.call_edges() if c.timeout is not None]
    if len(retried) != 1:
        raise SpecError(f"the fluid model takes a design with exactly one retried call (or, without "
                        f"retries, one call with a timeout); {arch.name} has {len(retried)}", ("calls",))
    u, v, call = retried[0]
    if call.timeout is None:
        raise SpecError(f"the retried call {u}->{v} has no timeout: the fluid model needs one",
                        ("calls",))
    rep = capacity_report(arch, mult).table
    row, caller = rep.loc[v], rep.loc[u]
    workers = float(row["workers"])
    hold = float(row["mean_hold_ms"]) / 1e3
    r = call.retries
    backoff = 0.0
    if r is not None and r.backoff != "none":  # the mean first pause (the retries that matter come first)
        backoff = r.base / 2 if "jitter" in r.backoff else r.base
    comp = arch.spec.components[v]
    queue = getattr(comp, "queue", None)
    caller_hold_own = float(caller["mean_hold_ms"]) / 1e3 - hold * float(row["arrival_rps"]) / max(
        float(caller["arrival_rps"]), 1e-300)
    return RetryLoop(
        lam=float(row["arrival_rps"]), workers=workers, service=hold, timeout=float(call.timeout),
        attempts=int(r.attempts) if r is not None else 1, queue=float(queue) if queue is not None else None,
        caller_workers=float(caller["workers"]) if math.isfinite(float(caller["workers"])) else None,
        caller_service=max(caller_hold_own, 0.0),
        budget=float(r.budget.ratio) if r is not None and r.budget is not None else None,
        burst=float(r.budget.burst) if r is not None and r.budget is not None else 10.0,
        backoff=backoff, caller=u, callee=v)


@dataclass(frozen=True)
class FluidRun:
    """The fluid model's trajectory after a trigger: did it recover, and when."""

    recovered: bool
    recovery_s: float  # after the trigger's end (nan when it did not recover)
    peak_backlog: float  # most attempts in the bottleneck
    backlog_at_end: float  # attempts in the bottleneck when the trigger ended


def fluid_run(loop: RetryLoop, *, kind: str = "slow", factor: float = 2.0, duration: float = 1.0,
              horizon: float = 60.0, dt: float | None = None, noise: bool = True) -> FluidRun:
    """Integrate the fluid retry loop from its good state through a trigger of ``duration``
    seconds: ``kind="slow"`` (service times x ``factor``) or ``"spike"`` (arrival rate x
    ``factor``), and for up to ``horizon`` seconds after it.

    The bottleneck is a FIFO fluid queue: attempts in the system ``N = A - D`` (cumulative
    arrivals less departures), departures at ``min(N, c) / (s * F(t))``. A slice of attempts
    that arrived at ``t`` has timed out when, at ``t + T``, the departures have not reached
    its place ``A(t)``; that share is retried after the backoff (a rejected share at once,
    after the backoff), one generation further, until ``attempts``. The retry budget holds
    tokens: ``ratio`` per first attempt, up to ``burst``, one per retry. It recovers when,
    after the trigger, the backlog is back below one attempt per worker and no retry is on its
    way; it does not when the backlog exceeds ``B*`` while more attempts arrive than depart.
    """
    if kind not in ("slow", "spike"):
        raise SpecError(f"the fluid model takes a 'slow' or a 'spike' trigger, not {kind!r}", ("trigger",))
    T, c, s, a = loop.timeout, loop.workers, loop.service, loop.attempts
    dt = dt or min(T / 40, s / 2)
    m = max(1, int(round(T / dt)))  # steps until a timeout
    b = int(round(loop.backoff / dt))
    cap = math.inf if loop.queue is None else c + loop.queue
    t_on = 0.0
    t_off = duration
    steps = int((duration + horizon) / dt) + 2
    # pending retry inflow: a ring of future steps, per generation
    ring = m + b + 2
    future = [[0.0] * ring for _ in range(a)]
    arr: list[float] = []  # cumulative accepted arrivals at each step's end
    gens: list[list[float]] = []  # accepted inflow per generation at each step
    deps: list[float] = []  # cumulative departures at each step's end
    n0 = loop.lam * s  # the good state's mean number in service (fluid)
    A, N = n0, n0  # cumulative arrivals (the first n0 counted as already in) and in system
    tokens = loop.burst
    peak, at_end = N, math.nan
    for j in range(steps):
        t = j * dt
        on = t_on <= t < t_off
        if t >= t_off and math.isnan(at_end):
            at_end = N
        F = factor if (on and kind == "slow") else 1.0
        lam = loop.lam * (factor if (on and kind == "spike") else 1.0)
        slot = j % ring
        inflow = [lam * dt] + [future[k][slot] for k in range(1, a)]
        for k in range(1, a):
            future[k][slot] = 0.0
        if loop.budget is not None:  # retries spend tokens; first attempts earn them
            tokens = min(loop.burst, tokens + loop.budget * inflow[0])
            want = sum(inflow[1:])
            if want > tokens:
                inflow = [inflow[0]] + [x * tokens / want for x in inflow[1:]]
                want = tokens
            tokens -= want
        total = sum(inflow)
        out = min(N, c) / (s * F) * dt  # departures this step, if nothing new arrived
        accepted = min(total, max(cap - N + out, 0.0))
        share = accepted / total if total > 0 else 1.0
        rejected = [x * (1 - share) for x in inflow]
        acc = [x * share for x in inflow]
        N = N + accepted - min(out, N + accepted)
        A += accepted
        D = A - N
        arr.append(A)
        deps.append(A - N)
        gens.append(acc)
        for k in range(a - 1):  # rejected attempts are retried after the backoff
            if rejected[k] > 0:
                future[k + 1][(j + 1 + b) % ring] += rejected[k]
        i = j - m  # the slice sent a timeout ago: its unanswered share is retried now
        if i >= 0:
            lo = arr[i - 1] if i > 0 else n0
            hi = arr[i]
            if hi > lo:
                if noise:  # K ahead of the slice (itself included), M departures since it came
                    k_ahead = max((lo + hi) / 2 - deps[i], 1e-9)
                    late = float(gammaincc(k_ahead, max(D - deps[i], 0.0)))
                else:
                    late = min(max((hi - D) / (hi - lo), 0.0), 1.0)
                if late > 0:
                    g = gens[i]
                    for k in range(a - 1):
                        if g[k] > 0:
                            future[k + 1][(j + 1 + b) % ring] += g[k] * late
        peak = max(peak, N)
        if t >= t_off:
            pending = sum(sum(f) for f in future[1:])
            if N <= c and pending < 1e-6 * loop.lam:
                return FluidRun(True, max(t - t_off, 0.0), peak, at_end)
            if N > 2 * loop.mu * T + c and total / dt > loop.mu * 1.0001 and t > t_off + a * (T + loop.backoff):
                return FluidRun(False, math.nan, peak, at_end)
    return FluidRun(False, math.nan, peak, at_end)


def fluid_boundary(loop: RetryLoop, *, kind: str = "slow", factor: float = 2.0,
                   most: float = 600.0, resolution: float = 0.01, horizon: float = 60.0,
                   noise: bool = True) -> float:
    """The shortest trigger (seconds) after which the fluid loop does not recover, by bisection
    to ``resolution`` (relative: a share of the boundary); inf when even ``most`` seconds
    recover (or the design is not bistable)."""
    if not loop.bistable:
        return math.inf
    guess = loop.slowdown_boundary(factor) if kind == "slow" else loop.spike_boundary(factor)
    lo, hi = 0.0, min(guess, most) if math.isfinite(guess) else min(1.0, most)
    while fluid_run(loop, kind=kind, factor=factor, duration=hi, horizon=horizon, noise=noise).recovered:
        if hi >= most:
            return math.inf
        lo, hi = hi, min(2 * hi, most)
    while hi - lo > resolution * hi:
        mid = (lo + hi) / 2
        if fluid_run(loop, kind=kind, factor=factor, duration=mid, horizon=horizon, noise=noise).recovered:
            lo = mid
        else:
            hi = mid
    return hi

"""Did the design keep up? Two checks, for open and closed workloads alike.

**Backlog growth.** The window is cut into ``BATCHES`` equal batches. At each batch edge the
number of requests in the system is known exactly (those in it when the window opened, plus
arrivals, minus completions). In a design that keeps up this number is stationary, so its
change over a batch has mean zero; in one that does not, it grows by ``(arrival rate -
completion rate) * batch`` each batch. A one-sided t-test on the batch changes (``BATCHES -
1`` degrees of freedom) calls the growth significant when its p-value is below ``ALPHA``.
Changes of a stationary level telescope (their sum is the change over the whole window), so
for a stable design the test is conservative: it rejects less often than ``ALPHA``.

**Unanswered requests.** A closed loop's backlog cannot grow past its user count, so a
deadlock shows as requests that never finish. A request still in flight at the end of the
window is *unanswered* when it has waited longer than ``unanswered_after``: the largest
latency target of the SLO, or, without one, ``P99_MULTIPLE`` times the window's p99 of
successful requests (any wait, when no request succeeded). Unanswered requests count as
failed requests in the availability, and a design with any is not stable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..model.stats import poisson_sf, t_sf

BATCHES = 10
ALPHA = 1e-3
P99_MULTIPLE = 10.0


@dataclass(frozen=True)
class Growth:
    """The backlog-growth test of one window."""

    start: int  # requests in the system when the window opened
    end: int  # ... and when it closed
    per_s: float  # mean growth of the backlog, requests per second
    t: float  # t statistic of the batch changes
    p: float  # one-sided p-value (small: the backlog grows)

    @property
    def significant(self) -> bool:
        return self.p < ALPHA


def backlog_growth(window: tuple[float, float], in_system_start: int, arrivals: np.ndarray,
                   completions: np.ndarray, batches: int = BATCHES) -> Growth:
    """The growth test from the window's arrival times and the completion times of every
    request that finished in it (whenever it arrived)."""
    w0, w1 = window
    edges = np.linspace(w0, w1, batches + 1)
    a = np.searchsorted(np.sort(arrivals), edges, side="left")
    d = np.searchsorted(np.sort(completions), edges, side="left")
    level = in_system_start + a - d
    level[-1] = in_system_start + len(arrivals) - len(completions)  # the end of the window, inclusive
    g = np.diff(level).astype(float)
    per_s = float(g.sum() / (w1 - w0)) if w1 > w0 else 0.0
    sd = float(g.std(ddof=1)) if len(g) > 1 else 0.0
    if sd > 0:
        t = float(g.mean() / (sd / math.sqrt(len(g))))
        p = t_sf(t, len(g) - 1)
    else:  # no spread: the backlog moved by the same amount every batch
        t = math.inf if g.mean() > 0 else (0.0 if g.mean() == 0 else -math.inf)
        p = 0.0 if g.mean() > 0 else 1.0
    return Growth(int(in_system_start), int(level[-1]), per_s, t, p)


def unanswered_after(slo: dict[str, float] | None, p99_s: float) -> float:
    """How long a request may stay in flight at the end before it counts as unanswered."""
    targets = [v for k, v in (slo or {}).items() if k != "availability"]
    if targets:
        return max(targets)
    return P99_MULTIPLE * p99_s if math.isfinite(p99_s) else 0.0


@dataclass(frozen=True)
class Stuck:
    """Requests in flight at the end for longer than ``after`` seconds."""

    after: float
    in_window: int  # arrived in the window: counted as failures in the availability
    from_warmup: int  # arrived in the warm-up and still in flight
    expected: float  # how many a design that keeps up would have (from the finished requests' tail)
    p: float  # P(at least this many | expected), Poisson

    @property
    def count(self) -> int:
        return self.in_window + self.from_warmup

    @property
    def significant(self) -> bool:
        return self.count > 0 and self.p < ALPHA


def stuck_requests(after: float, window: tuple[float, float], pending_start: np.ndarray,
                   from_warmup: int, latency: np.ndarray, n_arrivals: int) -> Stuck:
    """Count the requests in flight at the end for longer than ``after``, and test whether
    a design that keeps up would have that many: at any instant it has on average
    ``arrival rate * E[(R - after)+]`` requests older than ``after`` in flight, estimated
    from the latencies ``R`` of the finished requests."""
    w0, w1 = window
    in_window = int(np.sum(w1 - pending_start > after))
    stuck_old = int(from_warmup) if w1 - w0 > after else 0
    rate = n_arrivals / (w1 - w0) if w1 > w0 else 0.0
    excess = float(np.mean(np.maximum(latency - after, 0.0))) if len(latency) else 0.0
    expected = rate * excess
    p = poisson_sf(in_window + stuck_old, expected)
    return Stuck(after, in_window, stuck_old, expected, p)

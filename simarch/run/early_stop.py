"""Stopping a run once its SLO is certainly missed, for searches that only need the verdict
(the knee search of :func:`simarch.compare`).

:class:`SloWatch` is a stop hook of :meth:`Simulation.run
<simarch.run.simulation.Simulation.run>`: after each chunk of simulated time it counts, from
the run's request records, what the window already holds for good (failed requests, slow
successes, requests in flight for longer than the largest latency target), bounds the
number of requests the window can still receive, and asks
:func:`~simarch.results.slo.certain_miss` whether the SLO is already missed whatever the rest
of the run does. If it is, it raises :class:`RunStopped`, so that the run never becomes a
:class:`~simarch.results.result.Result`. A run that would meet its SLO is never stopped.

The bound on the arrivals still to come is their expected number plus :data:`Z` standard
deviations plus :data:`Z` (Poisson arrivals at the peak rate of the workload; for closed-loop
users, the think times' renewal count): a window that receives more is rarer than one in
10^14, and only then could a stopped run have met its SLO.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from typing import Any

import numpy as np

from ..errors import SimarchError
from ..model.status import N_STATUS, Status
from ..model.workload import rate_profile
from ..results.slo import OVER, QUANTILES, SoFar, certain_miss
from ..results.stability import unanswered_after

Z = 8.0  # standard deviations (and requests) of margin on the arrivals still to come


class RunStopped(SimarchError):
    """A run ended before its end because it had certainly missed its SLO: not a result,
    only a verdict (``reason``, at simulated time ``at`` of ``end``)."""

    PREFIX = "stopped early"

    def __init__(self, reason: str, at: float, end: float):
        self.reason, self.at, self.end = reason, float(at), float(end)
        super().__init__(f"{self.PREFIX} at {self.at:.4g} s of {self.end:.4g} s, the SLO already "
                         f"missed: {reason}")

    def __reduce__(self):
        return type(self), (self.reason, self.at, self.end)


def slo_of(spec: Any) -> dict[str, float] | None:
    """The SLO targets of a spec that has them (a plain mapping, latency in seconds)."""
    if spec.slo is None:
        return None
    slo = {k: v for k, v in spec.slo.model_dump().items() if v is not None}
    return slo or None


def _arrivals_to_come(sim: Any) -> Any:
    """``f(remaining seconds)``: the mean and the variance of an upper bound of the arrivals
    still to come, or ``None`` when the workload gives no finite bound."""
    wl = sim.spec.workload
    if wl.users is not None:
        think = wl.think_time
        scv = think.scv
        if not (math.isfinite(think.mean) and think.mean > 0 and math.isfinite(scv)):
            return None
        users = max(1, int(round(wl.users * sim.load)))
        # per user: at most one request per think time, plus the one under way
        return lambda r: (users * (r / think.mean + 1.0 + scv), users * (r / think.mean) * max(scv, 1.0))
    if wl.bursty:  # an MMPP or batches: the Poisson bound below does not hold
        return None
    profile = rate_profile(wl, sim.load, sim.arch.base_dir, sim.end)
    peak = wl.base_rate * sim.load if profile is None else profile[1]
    if not math.isfinite(peak):
        return None
    return lambda r: (peak * r, peak * r)  # Poisson candidates at the peak rate


class SloWatch:
    """The stop hook: raises :class:`RunStopped` once the window certainly misses ``slo``."""

    def __init__(self, sim: Any, slo: dict[str, float], to_come: Any):
        self.sim = sim
        self.slo = slo
        self.to_come = to_come
        self.targets = sorted({v for k, v in slo.items() if k in QUANTILES})
        self.after = unanswered_after(slo, math.nan) if "availability" in slo else 0.0
        self.done = 0  # request records read so far
        self.failed = 0
        self.slow = dict.fromkeys(self.targets, 0)
        self.ok_seconds = 0.0
        self.young = np.zeros(0)  # arrival times of finished requests not yet older than `after`
        self.old_done = 0  # finished requests that arrived before the last cut-off

    @classmethod
    def of(cls, sim: Any) -> SloWatch | None:
        """The watch of a run, or ``None`` when there is nothing it could stop on."""
        slo = slo_of(sim.spec)
        to_come = _arrivals_to_come(sim)
        if slo is None or to_come is None:
            return None
        return cls(sim, slo, to_come)

    def _read_new_records(self) -> None:
        sim = self.sim
        n = len(sim.code)
        if n <= self.done:
            return
        i, self.done = self.done, n
        start = np.frombuffer(sim.t_start[i:n], dtype=float)
        lat = np.frombuffer(sim.t_end[i:n], dtype=float) - start
        ok = np.frombuffer(sim.code[i:n], dtype=sim.code.typecode) % N_STATUS == Status.OK
        self.failed += int(n - i - np.count_nonzero(ok))
        lat_ok = lat[ok]
        self.ok_seconds += float(lat_ok.sum())
        for t in self.targets:
            self.slow[t] += int(np.count_nonzero(lat_ok > t * (1 + OVER)))
        if self.after > 0:
            self.young = np.concatenate([self.young, start])

    def _stuck(self, now: float) -> int:
        """Requests of the window in flight for longer than the largest latency target."""
        if self.after <= 0:
            return 0
        cut = now - self.after * (1 + OVER)
        if cut <= self.sim.warmup:
            return 0
        older = self.young < cut
        self.old_done += int(np.count_nonzero(older))
        self.young = self.young[~older]
        return bisect_left(self.sim.a_start, cut) - self.old_done

    def __call__(self) -> None:
        sim = self.sim
        now = sim.env.now
        if now < sim.warmup:
            return
        self._read_new_records()
        mean, var = self.to_come(max(sim.end - now, 0.0))
        most = sum(sim.arrivals) + mean + Z * math.sqrt(var) + Z
        so_far = SoFar(at=now, most=most, failed=self.failed, slow=self.slow,
                       ok_seconds=self.ok_seconds, stuck=self._stuck(now))
        reason = certain_miss(self.slo, so_far)
        if reason is not None:
            raise RunStopped(reason, now, sim.end)

"""How much work a run is, before it starts: an estimate of its events and memory, and the
budget a run must stay within (so that a spec that would run for days is refused at once,
with the estimate and the field to change).

The estimate is deliberately simple and on the high side:

* requests: the peak arrival rate (load and profile included) times warm-up plus duration
  (bursty ``arrivals`` have the same long-run mean rate of requests); for a closed loop, the
  users over the think time plus the entry's own service time, but no more than the busiest
  component can serve (the asymptotic bound of mean-value analysis);
* visits per request: along every call from the entry, the call's probability times its
  attempts (retries and hedges all made) and, for a datastore, its replicas; a cache's
  ``on: miss`` calls as if every lookup missed; fallbacks as if every call failed;
* events: ``EVENTS_PER_REQUEST`` per request plus ``EVENTS_PER_VISIT`` per visit (one more
  where a call has a network latency) -- about what the engine schedules -- and one per state
  switch of an MMPP's modulating chain;
* processes that live all run long (queue consumers, closed-loop users) at
  ``BYTES_PER_PROCESS`` each, records at ``BYTES_PER_REQUEST`` and ``BYTES_PER_VISIT``, and
  hop records at ``HOP_ROW_BYTES`` a visit and ``HOP_BYTES_PER_REQUEST`` for the requests
  recorded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx

from ..errors import SpecError
from ..kinds import kind
from ..model.architecture import Architecture
from ..model.workload import rate_profile

EVENTS_PER_REQUEST = 2.0
EVENTS_PER_VISIT = 2.0
BYTES_PER_REQUEST = 40.0
BYTES_PER_VISIT = 8.0
BYTES_PER_PROCESS = 1000.0
HOP_ROW_BYTES = 64.0  # a hop record row (simarch.runtime.hops)
HOP_BYTES_PER_REQUEST = 16.0  # a recorded request's root id and key
EVENTS_PER_SECOND = 500_000.0  # a conservative engine speed on one core, for the time estimate
MAX_EVENTS = 200_000_000  # default budget: a few minutes of one core
MAX_BYTES = 4 * 2**30


@dataclass(frozen=True)
class Work:
    """The estimated size of one run."""

    requests: float
    visits_per_request: float
    events: float
    processes: int
    memory_bytes: float
    open_loop: bool

    @property
    def seconds(self) -> float:
        """Rough wall time on one core."""
        return self.events / EVENTS_PER_SECOND

    def describe(self) -> str:
        return (f"about {self.events:.3g} events ({self.requests:.3g} requests x "
                f"{self.visits_per_request:.3g} visits), {_duration(self.seconds)} of CPU, "
                f"{self.memory_bytes / 2**20:,.0f} MiB")


def _duration(s: float) -> str:
    if not math.isfinite(s):
        return "forever"
    for unit, size in (("years", 3.15e7), ("days", 86400), ("hours", 3600), ("minutes", 60)):
        if s >= 2 * size:
            return f"{s / size:,.0f} {unit}"
    return f"{max(s, 0.1):.1f} s"


def visits(arch: Architecture) -> dict[str, float]:
    """Expected visits to each component per request, at their most (see the module docstring)."""
    g = arch.graph
    out = dict.fromkeys(g.nodes, 0.0)
    out[arch.entry] = 1.0
    for n in nx.topological_sort(g):
        v = out[n]
        if not v:
            continue
        for _, to, data in g.out_edges(n, data=True):
            for c in data["calls"]:
                attempts = (c.retries.attempts if c.retries else 1) * (1 + (c.hedge.max if c.hedge else 0))
                out[to] += v * c.probability * attempts
            for c in data["fallbacks"]:
                out[to] += v * c.probability
    return out


def visits_per_request(arch: Architecture) -> float:
    """Visits to components' boxes per request, at their most."""
    comps = arch.spec.components
    return sum(v * kind(comps[n].kind).work_per_visit(comps[n]) for n, v in visits(arch).items())


def _closed_loop_rate(arch: Architecture, users: int) -> float:
    """An upper bound on a closed loop's request rate: ``users / (think + own service of the
    entry)``, and no more than the busiest component can serve (``workers / demand``)."""
    spec = arch.spec
    wl = spec.workload
    weights = {c: rc.weight / sum(r.weight for r in wl.requests.values()) for c, rc in wl.requests.items()}

    def mean_service(comp) -> float:
        total = 0.0
        for c, w in weights.items():
            d = comp.service_time.lookup(c, wl.op(c))
            total += w * (d.mean if d is not None else 0.0)
        return total

    rate = users / (wl.think_time.mean + mean_service(spec.components[arch.entry]))
    for n, v in visits(arch).items():
        comp = spec.components[n]
        demand = v * mean_service(comp)
        if demand > 0 and comp.worker_limit is not None:
            rate = min(rate, comp.worker_limit * comp.boxes / demand)
    return rate


def estimate(arch: Architecture, load: float, duration: float, warmup: float,
             hops: bool | int | None = False) -> Work:
    """The estimated work of one run of ``arch`` at ``load`` for ``warmup + duration``, its
    hop records included as ``hops`` decides (see :func:`hop_sampling`)."""
    spec = arch.spec
    wl = spec.workload
    horizon = warmup + duration
    processes = 0
    switches = 0.0
    if wl.users is not None:
        users = max(1, int(round(wl.users * load)))
        requests = horizon * _closed_loop_rate(arch, users)
        processes += users
        open_loop = False
    else:
        prof = rate_profile(wl, load, arch.base_dir, horizon)
        rate = prof[1] if prof is not None else wl.base_rate * load
        requests = rate * horizon
        open_loop = True
        mmpp = wl.arrivals.mmpp if wl.arrivals is not None else None
        if mmpp is not None:  # the modulating chain's state switches, an event's worth each
            switches = horizon * len(mmpp.states) / sum(s.mean_sojourn for s in mmpp.states)
    for name, comp in spec.components.items():
        processes += kind(comp.kind).processes(name, comp, spec)
    v = visits_per_request(arch)
    latency_calls = sum(1 for c in spec.calls if c.latency is not None)
    events = requests * (EVENTS_PER_REQUEST + v * EVENTS_PER_VISIT + latency_calls) + switches
    memory = requests * (BYTES_PER_REQUEST + v * BYTES_PER_VISIT) + processes * BYTES_PER_PROCESS
    every = hop_sampling(arch, load, duration, hops) if hops is not False else 0
    if every:  # the window's requests, one in ``every``
        memory += requests * duration / max(horizon, 1e-300) / every * (
            HOP_BYTES_PER_REQUEST + v * HOP_ROW_BYTES)
    return Work(requests, v, events, processes, memory, open_loop)


HOPS_LIMIT = 2_000_000  # requests a run records hop by hop, at most; above, one in N


def hop_sampling(arch: Architecture, load: float, duration: float, hops: bool | int | None) -> int:
    """One request in how many to record hop by hop (0: none). ``hops`` is ``None`` (the
    default: all when the window is expected to hold ``HOPS_LIMIT`` requests or fewer,
    else one in N, N the smallest keeping the expected count within the limit), ``False``
    (none), ``True`` (all) or N."""
    if hops is None:
        expected = estimate(arch, load, duration, 0.0).requests
        return max(1, math.ceil(expected / HOPS_LIMIT))
    if hops is True:
        return 1
    if hops is False:
        return 0
    return int(hops)



def check_budget(arch: Architecture, load: float, duration: float, warmup: float,
                 max_events: float | None = None, max_bytes: float | None = None,
                 hops: bool | int | None = False) -> Work:
    """Raise :class:`SpecError` when the run would exceed its budget; return the estimate."""
    work = estimate(arch, load, duration, warmup, hops)
    limit = spec_limit = arch.spec.simulation.max_events
    if max_events is not None:
        limit = max_events
    mem_limit = MAX_BYTES if max_bytes is None else max_bytes
    if work.events > limit or not math.isfinite(work.events):
        per_s = work.events / (warmup + duration) if warmup + duration > 0 else math.inf
        # the field to change: the arrival rate when one second of it is already too much
        rate_field = "rate" if arch.spec.workload.daily_active_users is None else "daily_active_users"
        path = (("workload", rate_field) if work.open_loop and per_s > limit / 60
                else ("workload", "users") if not work.open_loop and per_s > limit / 60
                else ("simulation", "duration"))
        raise SpecError(
            f"this run would be {work.describe()}: over the budget of {limit:.3g} events"
            f"{' (simulation.max_events)' if limit == spec_limit else ''}; shorten the run, lower "
            "the load, or raise the budget (simulation.max_events; simarch run --max-events)", path,
            arch.source)
    if work.memory_bytes > mem_limit:
        raise SpecError(
            f"this run would need {work.memory_bytes / 2**30:,.1f} GiB ({work.describe()}; "
            f"{work.processes:,} long-lived processes): over the budget of "
            f"{mem_limit / 2**30:,.0f} GiB", ("components",), arch.source)
    return work

"""An availability model of a design under the faults of its spec, with no simulation.

For every component with faults it estimates the share of the requests reaching it that it
serves, and from the visit shares the end-to-end availability:

* **Independent failures** (``random`` faults: each box up for ``mtbf``, down for ``mttr``
  on average). The boxes that must serve to carry the load (``needed``, from the static
  capacity model: the fewest that keep utilisation below 1) set a k-of-n availability. A
  health-checked load balancer in front detects a dead box after ``unhealthy_after``
  checks (on average ``(unhealthy_after - 1/2) x interval``, the checks running at a random
  phase); until then the box keeps its share of the traffic and those requests fail, and it
  returns to rotation ``(healthy_after - 1/2) x interval`` after its repair. Without health
  checks a dead box keeps its share while it is down. Each kind says how its copies fail
  over (:meth:`simarch.kinds.base.Kind.steady_availability`): a datastore's dead copy fails
  its share of the reads until the failover takes it out of its shard, and writes stall until
  a replica is promoted; a quorum store fails an op with fewer than R (W) copies up.
* **Crashes and zone failures** (``crash`` faults) at fixed times: while one lasts, the
  component loses the boxes it takes down; with fewer left than it needs it serves nothing,
  otherwise it loses the dead boxes' share until the health checks (or the failover) take
  them out.

Faults count for the part of the measured window (after the warm-up) that they cover.
End to end, a request that visits a component with probability ``v`` and availability
``a`` fails there with probability ``v (1 - a)``, independently of the other components.
Retries, fallbacks and timeouts are not modelled (retries raise availability; the
simulation gives the real figure).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..kinds import kind
from ..kinds.base import Detection
from ..model.architecture import Architecture, entry_of
from ..model.architecture import load as load_arch
from .capacity import CapacityReport, capacity_report

__all__ = ["AvailabilityReport", "availability_model", "detection_of", "boxes_needed"]

METHOD = ("k-of-n per component (binomial, with the health checks' detection delay), visit "
          "shares from the static flow model, failures independent across components")


@dataclass
class AvailabilityReport:
    """The modelled availability of one design at one load, per component and end to end."""

    design: str
    load: float
    table: pd.DataFrame
    availability: float
    method: str = METHOD
    notes: list[str] = field(default_factory=list)


def detection_of(spec: Any, name: str) -> Detection | None:
    """How the health checks in front of ``name`` notice its dead boxes; ``None`` when some
    caller (or the clients, for the entry) sends it traffic without checks."""
    comp = spec.components[name]
    if kind(comp.kind).routes_internally:
        return None
    callers = [spec.components[c.source] for c in spec.calls if c.to == name]
    if name == entry_of(spec):
        callers.append(comp)  # clients reach a health-checked entry through a failing-over address
    checks = [getattr(c, "health_check", None) for c in callers]
    if not checks or any(h is None for h in checks):
        return None
    return Detection(down=max((h.unhealthy_after - 0.5) * h.interval for h in checks),
                     up=max((h.healthy_after - 0.5) * h.interval for h in checks))


def boxes_needed(comp: Any, busy_workers: float) -> int:
    """The fewest boxes whose workers keep utilisation below 1 (1 without a worker limit)."""
    per_box = comp.worker_limit
    if per_box is None or not busy_workers > 0 or not math.isfinite(busy_workers):
        return 1
    return min(comp.boxes, int(math.floor(busy_workers / per_box + 1e-12)) + 1)


def _overlap(start: float, end: float, w0: float, w1: float) -> float:
    return max(0.0, min(end, w1) - max(start, w0))


def availability_model(arch: Architecture | Any, load: float | str = 1.0,
                       capacity: CapacityReport | None = None) -> AvailabilityReport:
    """Estimate each component's availability under the spec's faults, and end to end."""
    arch = load_arch(arch)
    spec = arch.spec
    cap = capacity if capacity is not None else capacity_report(arch, load)
    entry = entry_of(spec)
    entry_rate = float(cap.table.loc[entry, "arrival_rps"]) or 1.0
    w0 = spec.simulation.warmup
    w1 = w0 + spec.simulation.duration
    span = w1 - w0
    reach = arch.reach()
    weights = {c: rc.weight for c, rc in spec.workload.requests.items()}
    rows = []
    for name, comp in spec.components.items():
        k = kind(comp.kind)
        busy = float(cap.table.loc[name, "busy_workers"])
        needed = boxes_needed(comp, busy)
        got = [c for c in reach[name]]
        w_all = sum(weights[c] for c in got) or 1.0
        write_share = sum(weights[c] for c in got if spec.workload.op(c) == "write") / w_all
        detect = detection_of(spec, name)
        avail, hows, mtbf, mttr = 1.0, [], math.nan, math.nan
        for f in spec.faults:
            if getattr(f, "target", None) != name and not (
                    f.kind == "crash" and f.zone is not None and f.zone in comp.zones):
                continue
            share = _overlap(f.at, f.end, w0, w1) / span
            if share <= 0:
                continue
            if f.kind == "random":
                mtbf, mttr = f.mtbf.mean, f.mttr.mean
                per_box = comp.worker_limit
                demand = busy / per_box if per_box and busy > 0 and math.isfinite(busy) else None
                a, how = k.steady_availability(comp, mtbf, mttr, detect, needed, write_share, demand)
            elif f.kind == "crash":
                lost = _lost_copies(comp, f)
                a, how = k.crash_availability(comp, lost, f, detect, needed, write_share,
                                              _overlap(f.at, f.end, w0, w1))
            else:
                continue
            avail *= 1.0 - share * (1.0 - a)
            hows.append(how)
        visits = min(1.0, float(cap.table.loc[name, "arrival_rps"]) / entry_rate)
        rows.append({"component": name, "kind": comp.kind, "boxes": comp.boxes, "needed": needed,
                     "visits": visits, "mtbf_s": mtbf, "mttr_s": mttr, "availability": avail,
                     "how": "; ".join(hows)})
    table = pd.DataFrame(rows).set_index("component")
    total = 1.0
    for _, r in table.iterrows():
        total *= 1.0 - r["visits"] * (1.0 - r["availability"])
    return AvailabilityReport(arch.name, cap.load, table, total)


def _lost_copies(comp: Any, fault: Any) -> int:
    """How many copies of each piece of work a crash takes down (of ``comp.copies``)."""
    if fault.zone is not None:
        return sum(1 for i in range(comp.copies) if comp.zone_of(i) == fault.zone)
    if getattr(fault, "replica", None) is not None:
        return 1
    if fault.instances is not None:
        return min(fault.instances, comp.copies)
    return comp.copies

"""Static capacity analysis: offered load against capacity, with no simulation.

For every component it estimates, from the arrival rate, the visit counts along the calls
and the mean service times:

* the arrival rate of visits (requests per second), per request class;
* the mean time a visit holds a worker: its own mean service time plus, for synchronous
  calls, the mean network latency and the downstream response time (without queueing);
* the offered load (busy workers, ``rate * hold``) against the workers it has;
* the load multiplier at which it saturates: ``1 / utilisation``.

Cache hit ratios come from Che's approximation for LRU under the key popularity that reaches
the cache (or the fixed ``hit_ratio``), and the keys that miss are passed on with their own
popularity, so a datastore behind a cache sees the right shard skew. For a datastore the
hottest replica decides. Queueing delays are ignored, so the estimates are optimistic near
saturation; the simulation gives the real numbers.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import pandas as pd

from ..errors import argument
from ..kinds import kind
from ..kinds.base import Flow
from ..kinds.cache import che_hit_ratio
from ..model.architecture import Architecture, call_edges, call_graph, entry_of
from ..model.architecture import load as load_arch
from ..model.keys import key_probabilities
from ..model.regions import call_rtt_moments
from ..model.units import parse_multiplier
from ..model.workload import rate_profile
from ..results.text import fmt, html_table, table

__all__ = ["CapacityReport", "capacity_report", "che_hit_ratio"]

WARN_UTILIZATION = 1.0
TABLE_FORMATS = {"kind": "str", "arrival_rps": "num", "mean_hold_ms": "ms", "busy_workers": "num",
                 "workers": "int", "utilization": "util", "saturates_at": "x", "note": "str"}


@dataclass
class CapacityReport:
    """The static analysis of one design at one load multiplier."""

    design: str
    load: float
    table: pd.DataFrame
    bottleneck: str | None
    saturation_load: float
    warnings: list[str] = field(default_factory=list)
    hit_ratios: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        return format_capacity(self)

    def _repr_html_(self) -> str:
        """The analysis in a notebook: the table per component and the bottleneck."""
        parts = [html_table(self.table, TABLE_FORMATS, "component",
                            caption=f"{self.design}: static capacity at {self.load:g}x load "
                                    "(no queueing; estimates)"),
                 f"<p>{html.escape(_bottleneck_line(self))}</p>"]
        parts += [f"<p>warning: {html.escape(w)}</p>" for w in self.warnings]
        return "<div>\n" + "\n".join(parts) + "\n</div>"


def _class_rates(arch: Architecture, load: float, entry_response: float) -> dict[str, float]:
    """Arrival rate per class: the peak rate of a profile or trace; for closed-loop users the
    interactive response-time law ``N / (Z + R)`` with R the no-queueing response time."""
    spec = arch.spec
    wl = spec.workload
    weights = {c: rc.weight for c, rc in wl.requests.items()}
    total_w = sum(weights.values())
    if wl.users is not None:
        assert wl.think_time is not None
        users = max(1, int(round(wl.users * load)))
        total = users / (wl.think_time.mean + entry_response)
    else:
        prof = rate_profile(wl, load, arch.base_dir, spec.simulation.warmup + spec.simulation.duration)
        total = prof[1] if prof is not None else wl.base_rate * load
    return {c: total * w / total_w for c, w in weights.items()}


def propagate_flows(spec: Any, kinds: dict[str, Any], order: list[str], out_calls: dict[str, list],
                    entry: str, rates: dict[str, float]
                    ) -> tuple[dict[str, dict[str, Flow]], dict[str, float], dict[str, dict[str, float]]]:
    """Visits per component and class, with their key popularity, from ``rates`` (per class)
    at the entry, along the calls in topological ``order``: call probabilities, per-class
    routing, and the caches' hit ratios (each kind's ``split_flows``) for ``on: miss`` calls.
    Returns the flows, each cache's hit ratio and each component's miss share per class."""
    classes = list(rates)
    flows: dict[str, dict[str, Flow]] = {n: {c: Flow() for c in classes} for n in spec.components}
    for cls in classes:
        keys = spec.workload.requests[cls].keys
        flows[entry][cls].add(rates[cls], key_probabilities(keys) if keys is not None else None)
    hit_ratio: dict[str, float] = {}
    miss: dict[str, dict[str, float]] = {}
    for n in order:
        h, miss_frac, miss_keys = kinds[n].split_flows(spec.components[n], flows[n], classes, spec.workload)
        if h is not None:
            hit_ratio[n] = h
        miss[n] = miss_frac
        for c in out_calls[n]:
            for cls in classes:
                if c.requests is not None and cls not in c.requests:
                    continue
                f = flows[n][cls]
                if f.rate <= 0:
                    continue
                rate, keys = f.rate * c.probability, f.keys
                if c.on == "miss":
                    rate *= miss_frac.get(cls, 1.0)
                    keys = miss_keys.get(cls, keys)
                flows[c.to][cls].add(rate, keys)
    return flows, hit_ratio, miss


def capacity_report(arch: Architecture, load: float | str = 1.0) -> CapacityReport:
    """Estimate utilisation per component and the load at which the design saturates."""
    arch = load_arch(arch)
    with argument("load"):
        load = parse_multiplier(load)
    spec = arch.spec
    comps = spec.components
    kinds = {n: kind(c.kind) for n, c in comps.items()}
    classes = list(spec.workload.requests)
    entry = entry_of(spec)
    g = call_graph(arch.graph)
    order = list(nx.topological_sort(g))
    out_calls: dict[str, list] = {n: [] for n in comps}
    for u, _, c in call_edges(g):
        out_calls[u].append(c)

    # ---- response time without queueing, per component and class (reverse topological order)
    hold: dict[str, dict[str, float]] = {n: {} for n in comps}  # worker-holding time per visit
    resp: dict[str, dict[str, float]] = {n: {} for n in comps}  # what the caller waits for
    miss_guess = {n: m for n in comps if (m := kinds[n].initial_miss_ratio(comps[n])) is not None}

    def compute_times(miss: dict[str, float]) -> None:
        for n in reversed(order):
            cs = comps[n]
            waits = kinds[n].request_waits_for_calls
            for cls in classes:
                op = spec.workload.op(cls)
                d = cs.service_time.lookup(cls, op)
                own = d.mean if d is not None else 0.0
                sync = fwd = 0.0
                par = []
                for c in out_calls[n]:
                    if c.requests is not None and cls not in c.requests:
                        continue
                    if not waits:
                        continue
                    p = c.probability * (miss.get(n, 1.0) if c.on == "miss" else 1.0)
                    lat = c.latency.mean if c.latency is not None else 0.0
                    if spec.regions is not None:  # the round trips across regions
                        lat += call_rtt_moments(spec, n, c.to, kinds[c.to].routes_internally,
                                                op=spec.workload.op(cls))[0]
                    r = resp[c.to].get(cls, 0.0)
                    t = lat + r
                    if c.timeout is not None:
                        t = min(t, c.timeout)
                    if c.mode == "call":
                        if cs.fanout == "parallel":
                            par.append(t if p >= 1 else p * t)
                        else:
                            sync += p * t
                    elif c.mode == "forward":
                        fwd += p * t
                if par:
                    sync += max(par)
                sync += kinds[n].extra_hold(cs, op, own)
                hold[n][cls] = own + sync
                resp[n][cls] = own + sync + fwd

    compute_times(miss_guess)
    weights = {c: rc.weight for c, rc in spec.workload.requests.items()}
    entry_resp = sum(resp[entry][c] * w for c, w in weights.items()) / sum(weights.values())
    rates = _class_rates(arch, load, entry_resp)

    # ---- flows in topological order
    flows, hit_ratio, _miss = propagate_flows(spec, kinds, order, out_calls, entry, rates)

    # refine holding times with the estimated miss ratios, then recompute entry rates if closed loop
    compute_times({n: 1.0 - h for n, h in hit_ratio.items() if not math.isnan(h)})

    # ---- utilisation per component
    rows = []
    for n in order:
        cs = comps[n]
        arrival = sum(f.rate for f in flows[n].values())
        busy = sum(flows[n][cls].rate * hold[n].get(cls, 0.0) for cls in classes)
        workers, util, note = kinds[n].utilization(cs, n, flows[n], busy, classes, spec.workload)
        note = kinds[n].capacity_note(cs, hit_ratio.get(n), note)
        hold_ms = 1e3 * busy / arrival if arrival > 0 else math.nan
        rows.append({
            "component": n,
            "kind": cs.kind,
            "arrival_rps": arrival,
            "mean_hold_ms": hold_ms,
            "busy_workers": busy,
            "workers": workers,
            "utilization": util,
            "saturates_at": (load / util) if util and not math.isnan(util) and util > 0 else math.inf,
            "note": note,
        })
    table_ = pd.DataFrame(rows).set_index("component")
    finite = table_["utilization"].dropna()
    bottleneck = str(finite.idxmax()) if len(finite) and finite.max() > 0 else None
    saturation = float(table_.loc[bottleneck, "saturates_at"]) if bottleneck else math.inf
    warnings = [
        f"{n} would be saturated: utilisation {u:.0%} at {load:g}x (saturates at {load / u:.2f}x)"
        for n, u in finite.items() if u >= WARN_UTILIZATION
    ]
    return CapacityReport(arch.name, load, table_, bottleneck, saturation, warnings, hit_ratio)


def format_capacity(rep: CapacityReport) -> str:
    """The static capacity analysis ``simarch validate`` prints."""
    lines = [f"design {rep.design!r}: spec is valid", "",
             f"Static capacity analysis at {rep.load:g}x load (no queueing; estimates)"]
    lines.append(table(rep.table, TABLE_FORMATS, "component"))
    lines.append("")
    lines.append(_bottleneck_line(rep))
    for w in rep.warnings:
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def _bottleneck_line(rep: CapacityReport) -> str:
    if rep.bottleneck is None:
        return "Bottleneck: none (no component has a worker limit)"
    return f"Bottleneck: {rep.bottleneck}, saturates at {fmt(rep.saturation_load, 'x')} load"

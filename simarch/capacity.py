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

import math
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import pandas as pd

from .architecture import Architecture, entry_of
from .keys import key_probabilities, shard_of_keys
from .spec import CacheSpec, DatastoreSpec, QueueSpec, Spec

WARN_UTILIZATION = 1.0


def che_hit_ratio(p: np.ndarray, capacity: int) -> tuple[float, np.ndarray]:
    """LRU hit ratio under the independent reference model (Che's approximation).

    ``p`` is the request probability of each key. Returns the overall hit ratio and the
    per-key hit probability ``1 - exp(-p_i * T_C)``, where the characteristic time ``T_C``
    solves ``sum_i (1 - exp(-p_i * T_C)) = capacity``.
    """
    p = np.asarray(p, dtype=float)
    live = p[p > 0]
    if capacity >= len(live):
        return 1.0, (p > 0).astype(float)
    lo, hi = 0.0, 1.0
    while np.sum(-np.expm1(-live * hi)) < capacity:
        hi *= 2.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if np.sum(-np.expm1(-live * mid)) < capacity:
            lo = mid
        else:
            hi = mid
    per_key = -np.expm1(-p * hi)
    return float(np.sum(p * per_key)), per_key


@dataclass
class _Flow:
    rate: float = 0.0
    keys: np.ndarray | None = None  # rate-weighted key popularity (sums to rate), or None

    def add(self, rate: float, keys: np.ndarray | None) -> None:
        if not rate > 0:
            return
        if keys is not None and not keys.sum() > 0:
            keys = None
        if keys is not None:
            scaled = keys * (rate / keys.sum())
            if self.keys is None:
                self.keys = scaled
            else:
                n = max(len(self.keys), len(scaled))
                a = np.zeros(n)
                a[: len(self.keys)] += self.keys
                a[: len(scaled)] += scaled
                self.keys = a
        self.rate += rate


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
        from .report import format_capacity

        return format_capacity(self)


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
        from .workload import rate_profile

        prof = rate_profile(wl, load, arch.base_dir, spec.simulation.warmup + spec.simulation.duration)
        total = prof[1] if prof is not None else (wl.rate or 0.0) * load
    return {c: total * w / total_w for c, w in weights.items()}


def capacity_report(arch: Architecture, load: float = 1.0) -> CapacityReport:
    """Estimate utilisation per component and the load at which the design saturates."""
    spec = arch.spec
    comps = spec.components
    classes = list(spec.workload.requests)
    entry = entry_of(spec)
    g = nx.DiGraph()
    g.add_nodes_from(comps)
    g.add_edges_from((c.source, c.to) for c in spec.calls)
    order = list(nx.topological_sort(g))
    out_calls = {n: [c for c in spec.calls if c.source == n] for n in comps}

    # ---- response time without queueing, per component and class (reverse topological order)
    hold: dict[str, dict[str, float]] = {n: {} for n in comps}  # worker-holding time per visit
    resp: dict[str, dict[str, float]] = {n: {} for n in comps}  # what the caller waits for
    miss_guess: dict[str, float] = {}
    for n in comps:
        cs = comps[n]
        if isinstance(cs, CacheSpec):
            miss_guess[n] = 1.0 - (cs.hit_ratio if cs.hit_ratio is not None else 0.0)

    def compute_times(miss: dict[str, float]) -> None:
        for n in reversed(order):
            cs = comps[n]
            for cls in classes:
                op = spec.workload.op(cls)
                d = cs.service_time.lookup(cls, op)
                own = d.mean if d is not None else 0.0
                sync = fwd = 0.0
                par = []
                for c in out_calls[n]:
                    if c.requests is not None and cls not in c.requests:
                        continue
                    if isinstance(cs, QueueSpec):
                        continue
                    p = c.probability * (miss.get(n, 1.0) if c.on == "miss" else 1.0)
                    lat = c.latency.mean if c.latency is not None else 0.0
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
                if isinstance(cs, DatastoreSpec) and op == "write" and cs.replication == "sync" and cs.replicas > 1:
                    sync += own
                hold[n][cls] = own + sync
                resp[n][cls] = own + sync + fwd

    compute_times(miss_guess)
    weights = {c: rc.weight for c, rc in spec.workload.requests.items()}
    entry_resp = sum(resp[entry][c] * w for c, w in weights.items()) / sum(weights.values())
    rates = _class_rates(arch, load, entry_resp)

    # ---- flows in topological order
    flows: dict[str, dict[str, _Flow]] = {n: {c: _Flow() for c in classes} for n in comps}
    for cls in classes:
        keys = spec.workload.requests[cls].keys
        flows[entry][cls].add(rates[cls], key_probabilities(keys) if keys is not None else None)
    hit_ratio: dict[str, float] = {}
    for n in order:
        cs = comps[n]
        miss_frac: dict[str, float] = {}
        miss_keys: dict[str, np.ndarray | None] = {}
        if isinstance(cs, CacheSpec):
            if cs.capacity is not None:
                total = _Flow()
                for cls in classes:
                    total.add(flows[n][cls].rate, flows[n][cls].keys)
                if total.keys is not None and total.rate > 0:
                    h, per_key = che_hit_ratio(total.keys / total.keys.sum(), cs.capacity)
                    hit_ratio[n] = h
                    for cls in classes:
                        f = flows[n][cls]
                        if f.keys is None or f.rate <= 0:
                            miss_frac[cls], miss_keys[cls] = 1.0, None
                            continue
                        mk = f.keys * (1.0 - per_key[: len(f.keys)])
                        miss_frac[cls] = float(mk.sum() / f.keys.sum())
                        miss_keys[cls] = mk if mk.sum() > 0 else None
                else:
                    hit_ratio[n] = math.nan
            else:
                hit_ratio[n] = cs.hit_ratio  # type: ignore[assignment]
        for c in out_calls[n]:
            for cls in classes:
                if c.requests is not None and cls not in c.requests:
                    continue
                f = flows[n][cls]
                if f.rate <= 0:
                    continue
                rate, keys = f.rate * c.probability, f.keys
                if c.on == "miss":
                    if cs.hit_ratio is not None:  # type: ignore[union-attr]
                        rate *= 1.0 - cs.hit_ratio  # type: ignore[union-attr]
                    else:
                        rate *= miss_frac.get(cls, 1.0)
                        keys = miss_keys.get(cls, keys)
                flows[c.to][cls].add(rate, keys)

    # refine holding times with the estimated miss ratios, then recompute entry rates if closed loop
    compute_times({n: 1.0 - h for n, h in hit_ratio.items() if not math.isnan(h)})

    # ---- utilisation per component
    rows = []
    for n in order:
        cs = comps[n]
        arrival = sum(f.rate for f in flows[n].values())
        busy = sum(flows[n][cls].rate * hold[n].get(cls, 0.0) for cls in classes)
        note = ""
        if isinstance(cs, DatastoreSpec):
            workers = cs.shards * cs.replicas * cs.workers
            util, note = _datastore_util(spec, n, cs, flows[n], classes)
        elif isinstance(cs, QueueSpec):
            workers = None
            util = math.nan
            note = "broker; see its consumers"
        else:
            w = cs.connections if cs.kind == "load_balancer" else getattr(cs, "workers", None)  # type: ignore[union-attr]
            workers = None if w is None else w * cs.instances
            util = busy / workers if workers else math.nan
            if workers is None:
                note = "no worker limit"
        if isinstance(cs, CacheSpec):
            h = hit_ratio.get(n, math.nan)
            note = (note + "; " if note else "") + f"hit ratio {h:.1%}" + (
                " (Che approximation, ttl ignored)" if cs.capacity is not None and cs.ttl else
                " (Che approximation)" if cs.capacity is not None else " (fixed)")
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
    table = pd.DataFrame(rows).set_index("component")
    finite = table["utilization"].dropna()
    bottleneck = str(finite.idxmax()) if len(finite) and finite.max() > 0 else None
    saturation = float(table.loc[bottleneck, "saturates_at"]) if bottleneck else math.inf
    warnings = [
        f"{n} would be saturated: utilisation {u:.0%} at {load:g}x (saturates at {load / u:.2f}x)"
        for n, u in finite.items() if u >= WARN_UTILIZATION
    ]
    return CapacityReport(arch.name, load, table, bottleneck, saturation, warnings, hit_ratio)


def _datastore_util(spec: Spec, name: str, cs: DatastoreSpec, flows: dict[str, _Flow],
                    classes: list[str]) -> tuple[float, str]:
    """Utilisation of the busiest replica, from per-shard rates and read/write service times."""
    n_keys = max((len(f.keys) for f in flows.values() if f.keys is not None), default=0)
    shard_of = shard_of_keys(n_keys, cs.shards, cs.vnodes) if n_keys else None
    busy = np.zeros((cs.shards, cs.replicas))
    for cls in classes:
        f = flows[cls]
        if f.rate <= 0:
            continue
        if f.keys is not None and shard_of is not None:
            share = np.bincount(shard_of[: len(f.keys)], weights=f.keys, minlength=cs.shards)
            share = share / share.sum()
        else:
            share = np.full(cs.shards, 1.0 / cs.shards)
        op = spec.workload.op(cls)
        d = cs.service_time.lookup(cls, op)
        s = d.mean if d is not None else 0.0
        shard_rate = f.rate * share
        if op == "write":
            busy[:, 0] += shard_rate * s
            if cs.replicas > 1:
                busy[:, 1:] += (shard_rate * s)[:, None]
        elif cs.read_from == "primary":
            busy[:, 0] += shard_rate * s
        else:
            busy += (shard_rate * s / cs.replicas)[:, None]
    util = busy / cs.workers
    hot_shard = int(np.unravel_index(np.argmax(util), util.shape)[0])
    share_total = util.sum(axis=1)
    note = ""
    if cs.shards > 1 and share_total.sum() > 0:
        note = f"hottest shard {hot_shard} carries {share_total[hot_shard] / share_total.sum():.0%} of the work"
    return float(util.max()), note

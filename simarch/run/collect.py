"""Collection: the counters and records a run leaves become a :class:`~simarch.results.result.Result`.

Everything is counted over the measurement window ``[warmup, warmup + duration)``: requests
that *arrived* in the window make up the request records; component statistics are the
differences of running counters taken at the start and the end of the window. Each kind
completes its own row (:meth:`~simarch.kinds.base.Kind.window_stats`); the result receives
plain records only.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from ..model.cost import design_cost
from ..model.metrics import latency_stats_ms, ratio
from ..model.pricing import HOURLY_UNITS, HOURS_PER_MONTH
from ..model.spec import fault_label
from ..model.status import N_STATUS
from ..results.deployments import deployment_warnings
from ..results.hops import STRIDE, Hops
from ..results.result import Result
from ..runtime.hops import INT_COLUMNS


def _component_rows(sim: Any, t_end: float) -> tuple[dict, list, dict[str, list]]:
    T = sim.duration
    comp_stats: dict[str, dict[str, Any]] = {}
    inst_stats: list[dict[str, Any]] = []
    tables: dict[str, list[dict[str, Any]]] = {"shards": []}
    for name, comp in sim.components.items():
        now = comp.counters(t_end)
        then = sim.warm_counters.get(name) or comp.counters(sim.warmup)
        busy = queue = down = 0.0
        done = rejected = 0
        pool_rows = []
        for pool, (b1, q1, d1, r1, x1), (b0, q0, d0, r0, x0) in zip(
                comp.pools, now["pools"], then["pools"], strict=True):
            pb, pq, pd_, pr, px = b1 - b0, q1 - q0, d1 - d0, r1 - r0, x1 - x0
            busy += pb
            queue += pq
            done += pd_
            rejected += pr
            down += px
            pool_rows.append({
                "component": name,
                "instance": pool.name,
                "zone": pool.zone,
                "workers": None if math.isinf(pool.workers) else int(pool.workers),
                "utilization": pb / (T * pool.workers) if not math.isinf(pool.workers) else math.nan,
                "mean_busy": pb / T,
                "throughput_rps": pd_ / T,
                "mean_queue": pq / T,
                "max_queue": pool.q_max,
                "rejected": pr,
                "uptime": 1.0 - px / T,
            })
        cap = comp.capacity
        lstats = latency_stats_ms(_visit_latencies(comp))
        arrived = now["arrived"] - then["arrived"]
        extra = now["extra"] - then["extra"]
        st: dict[str, Any] = {
            "kind": comp.kind,
            "instances": len(comp.pools),
            "workers": None if math.isinf(cap) else int(cap),
            "arrivals": arrived,
            "offered_rps": (arrived - extra) / T,
            "received_rps": arrived / T,
            "amplification": ratio(arrived, arrived - extra),
            "throughput_rps": done / T,
            "utilization": busy / (T * cap) if not math.isinf(cap) else math.nan,
            "mean_busy": busy / T,
            "mean_queue": queue / T,
            "max_queue": max((p.q_max for p in comp.pools), default=0),
            "mean_wait_ms": 1e3 * queue / done if done else math.nan,
            "wait_probability": (now["waited"] - then["waited"]) / done if done else math.nan,
            "mean_latency_ms": lstats["mean"],
            "p50_latency_ms": lstats["p50"],
            "p90_latency_ms": lstats["p90"],
            "p99_latency_ms": lstats["p99"],
            "p999_latency_ms": lstats["p999"],
            "rejected": rejected,
            "hit_ratio": math.nan,
            "uptime": 1.0 - down / (T * len(comp.pools)),
        }
        for table, rows in comp.window_stats(now, then, T, st, pool_rows).items():
            tables.setdefault(table, []).extend(rows)
        comp_stats[name] = st
        inst_stats.extend(pool_rows)
    return comp_stats, inst_stats, tables


def _visit_latencies(comp: Any, cls: int | None = None) -> np.ndarray:
    """The residence times (s) of a component's visits in the window, of one class or all."""
    bufs = comp.lats if cls is None else [comp.lats[cls]]
    parts = [np.frombuffer(b, dtype=np.float32) for b in bufs if len(b)]
    if not parts:
        return np.zeros(0, np.float32)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _latency_by_class(sim: Any) -> list[dict[str, Any]]:
    """Per component and request class: visits and residence-time percentiles (ms)."""
    rows = []
    for name, comp in sim.components.items():
        for c, cls in enumerate(sim.classes):
            lat = _visit_latencies(comp, c)
            if not len(lat):
                continue
            st = latency_stats_ms(lat)
            rows.append({"component": name, "class": cls, "visits": len(lat),
                         **{f"{k}_ms": st[k] for k in ("mean", "p50", "p90", "p99", "p999")}})
    return rows


def _hops(sim: Any) -> Hops | None:
    """The run's hop records as columns (no copy), with what it takes to read them."""
    log = sim.hops
    if log is None:
        return None
    if len(log.rows):
        rows = np.frombuffer(log.rows, dtype=float).reshape(-1, STRIDE)
        ints = np.frombuffer(log.rows, dtype=np.int64).reshape(-1, STRIDE)
        for col in INT_COLUMNS:  # int64 to float64 in place (ids stay far below 2**53)
            rows[:, col] = ints[:, col]
    else:
        rows = np.zeros((0, STRIDE))
    comps = list(sim.components.values())
    return Hops(
        rows=rows,
        components=list(sim.components),
        pool_component=np.array([sim.component_index[p_owner] for p_owner in _pool_owners(sim)], dtype=np.int64),
        pool_names=[p.name for p in sim.pools],
        parallel=np.array([bool(c.parallel) for c in comps]),
        request_root=np.frombuffer(sim.r_id, dtype=np.int64).copy() if len(sim.r_id) else np.zeros(0, np.int64),
        request_key=np.frombuffer(sim.r_key, dtype=np.int64).copy() if len(sim.r_key) else np.zeros(0, np.int64),
        every=log.every,
    )


def _pool_owners(sim: Any) -> list[str]:
    return [name for name, c in sim.components.items() for _ in c.pools]


def _calls_and_events(sim: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    calls = []
    for res, before in zip(sim.resilience, sim.warm_resilience or [None] * len(sim.resilience), strict=True):
        row = res.stats()
        if before is not None:
            for k, v in row.items():
                if isinstance(v, int) and not isinstance(v, bool):
                    row[k] = v - before[k]
        calls.append(row)
    events = []
    for res in sim.resilience:
        if res.breaker is not None:
            events += [{"time_s": t, "what": "breaker", "where": edge, "from": a, "to": b}
                       for t, edge, a, b in res.breaker.transitions]
    for comp in sim.components.values():
        events += comp.events()
    if sim.regions is not None:
        events += [{"time_s": t, "what": what, "where": r, "from": None, "to": None}
                   for t, what, r in sim.regions.geo.events]
    events.sort(key=lambda e: e["time_s"])
    return calls, events


def _warnings(sim: Any, t_end: float) -> list[str]:
    warnings = []
    for f in sim.spec.faults:
        end = f.at if f.kind == "cache_flush" else f.end
        if f.at >= t_end or end < sim.warmup or (f.kind != "cache_flush" and end == sim.warmup):
            warnings.append(f"fault {fault_label(f)} at {f.at:g}s lies outside the measured window "
                            f"[{sim.warmup:g}s, {t_end:g}s): it does not affect these figures "
                            "(fault times count from the start, warm-up included)")
    for comp in sim.components.values():
        warnings += comp.warnings()
    warnings += deployment_warnings(sim.deploy_runs, sim.warmup, t_end)
    return warnings


def _pending(arrived: np.ndarray, arrived_cls: np.ndarray, done: np.ndarray, done_cls: np.ndarray,
             n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Arrival times and classes of the window's requests still in flight at the end: the
    multiset difference of its arrivals (recorded in time order) and its completions."""
    if len(arrived) and not np.any(arrived[1:] == arrived[:-1]):  # distinct arrival times, the usual case
        keep = np.ones(len(arrived), dtype=bool)
        step = 1 << 20  # completions in blocks: a bounded temporary, whatever the run's size
        for i in range(0, len(done), step):
            keep[np.searchsorted(arrived, done[i:i + step])] = False
        return arrived[keep], arrived_cls[keep].astype(np.int16)
    starts, classes = [np.zeros(0)], [np.zeros(0, np.int16)]  # ties: match class by class
    for c in range(n_classes):
        a = np.sort(arrived[arrived_cls == c])
        if not len(a):
            continue
        b = np.sort(done[done_cls == c])
        times, counts = np.unique(a, return_counts=True)
        counts -= np.searchsorted(b, times, side="right") - np.searchsorted(b, times, side="left")
        left = np.repeat(times, counts)
        starts.append(left)
        classes.append(np.full(len(left), c, dtype=np.int16))
    return np.concatenate(starts), np.concatenate(classes)


def _floats(buf) -> np.ndarray:
    """A float64 view of an ``array('d')`` record column (no copy: the run is over)."""
    return np.frombuffer(buf, dtype=float) if len(buf) else np.zeros(0)


def collect(sim: Any) -> Result:
    """The :class:`Result` of a finished run (``sim`` is a :class:`~simarch.run.simulation.Simulation`)."""
    t_end = sim.env.now
    T = sim.duration
    code = np.frombuffer(sim.code, dtype=sim.code.typecode) if len(sim.code) else np.zeros(0, np.uint16)
    comp_stats, inst_stats, tables = _component_rows(sim, t_end)
    calls, events = _calls_and_events(sim)
    start, end = _floats(sim.t_start), _floats(sim.t_end)
    cls = (code // N_STATUS).astype(np.int16)
    if len(sim.a_start) > len(start):  # some requests of the window are still in flight
        pending_start, pending_cls = _pending(
            np.frombuffer(sim.a_start, dtype=float), np.frombuffer(sim.a_cls, dtype=sim.a_cls.typecode),
            start, cls, len(sim.classes))
    else:
        pending_start, pending_cls = np.zeros(0), np.zeros(0, np.int16)
    timelines = _instance_timelines(sim)
    cost = None
    if any(c.priced for c in sim.spec.components.values()):  # queues: the simulated message rate
        cost = design_cost(sim.spec, {n: comp_stats[n]["throughput_rps"] for n, c in sim.spec.components.items()
                                      if c.needs_message_rate}, load=sim.load, rates_from="simulated")
        if timelines:
            cost = _as_run(cost, comp_stats, T)
    slo = None
    if sim.spec.slo is not None:
        slo = {k: v for k, v in sim.spec.slo.model_dump().items() if v is not None}
    return Result(
        design=sim.spec.name,
        load=sim.load,
        duration=sim.duration,
        warmup=sim.warmup,
        seed=sim.seed,
        classes=list(sim.classes),
        start=start,
        end=end,
        cls=cls,
        status=(code % N_STATUS).astype(np.int8),
        arrivals=list(sim.arrivals),
        component_stats=comp_stats,
        instance_stats=inst_stats,
        shard_stats=tables["shards"],
        mean_in_system=(sim.sys_area(t_end) - sim.warm_sys) / T,
        in_system_start=sim.warm_in_system,
        in_system_end=sim.sys_n,
        pending_start=pending_start,
        pending_cls=pending_cls,
        late_end=_floats(sim.late_end),
        slo_spec=slo,
        fault_windows=[{"fault": n, "kind": k, "target": tg, "start_s": a, "end_s": min(b, t_end)}
                       for n, k, tg, a, b in sim.fault_log],
        call_stats=calls,
        event_log=events,
        warnings=_warnings(sim, t_end),
        spec={**sim.arch.resolved(), "simulation": {"duration": sim.duration, "warmup": sim.warmup,
                                                    **({"seed": sim.seed} if isinstance(sim.seed, int) else {})}},
        cost=cost,
        visit_stats=_latency_by_class(sim),
        hops=_hops(sim),
        instance_log=timelines,

        freshness_stats=sim.freshness.rows(sim.classes) if sim.freshness is not None else None,
        stale_by_class=sim.freshness.per_class(sim.classes, _callers_of(sim)) if sim.freshness is not None else None,
        lost_writes=sim.freshness.lost_writes() if sim.freshness is not None else {},
        deployment_runs=[dict(r) for r in sim.deploy_runs],
        **_region_records(sim),
        deploy_log=[{"time_s": t, "deployment": d, "step": s, "instance": w, "detail": x}
                    for t, d, s, w, x in sim.deploy_log],
    )


def _region_records(sim: Any) -> dict[str, Any]:
    """A design with regions: the user region and added round trip of each request record,
    the region names and the calls' crossings per edge (nothing without regions)."""
    reg = sim.regions
    if reg is None:
        return {}
    return {"region_names": list(reg.names),
            "user_region": np.frombuffer(sim.r_ureg, dtype=np.uint8).astype(np.int16) if len(sim.r_ureg)
            else np.zeros(0, np.int16),
            "added_rtt": _floats(sim.r_added).copy(),
            "region_calls": reg.call_rows()}


def _callers_of(sim: Any) -> dict[str, set[str]]:
    """Per component, the components whose calls reach it, directly or through others."""
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(sim.components)
    g.add_edges_from((u, v) for u, v, _ in sim.arch.call_edges())
    return {n: set(nx.ancestors(g, n)) for n in g.nodes}


def _instance_timelines(sim: Any) -> dict[str, dict[str, np.ndarray]]:
    """Per component whose instances come and go: the times of the changes and the
    instances in service and billed from each on."""
    out = {}
    for name, comp in sim.components.items():
        tl = comp.instance_timeline()
        if tl is not None:
            t, serving, billed = tl
            out[name] = {"t": np.array(t, dtype=float), "serving": np.array(serving, dtype=np.int64),
                         "billed": np.array(billed, dtype=np.int64)}
    return out


def _as_run(cost: Any, comp_stats: dict[str, dict[str, Any]], T: float) -> Any:
    """The cost lines of autoscaled components priced by the hour, at the instances they
    were billed for on average over the window (instance-hours / hours), not their initial
    count."""
    lines = []
    for line in cost.lines:
        st = comp_stats.get(line.component, {})
        if "instance_hours" in st and line.unit in HOURLY_UNITS and T > 0:
            mean = st["instance_hours"] * 3600.0 / T
            note = "; ".join(x for x in (line.note, f"autoscaled: {mean:.3g} instances billed on "
                                         "average over the window") if x)
            line = replace(line, quantity=mean, monthly_usd=line.unit_price * mean * HOURS_PER_MONTH,
                           note=note)
        lines.append(line)
    return replace(cost, lines=tuple(lines))

"""Results of one run: columnar request records and per-component statistics, as DataFrames.

Everything is counted over the measurement window ``[warmup, warmup + duration)``:
requests that *arrived* in the window make up the request records; component statistics are
the differences of running counters taken at the start and the end of the window.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .units import parse_duration

if TYPE_CHECKING:
    from .engine import Simulation

STATUS_NAMES = ("ok", "rejected", "timeout", "failed")
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0), ("p999", 99.9))
LATENCY_KEYS = ("mean", "p50", "p90", "p95", "p99", "p999", "max")


def latency_stats_ms(lat_s: np.ndarray) -> dict[str, float]:
    """Mean, percentiles and max of latencies given in seconds, returned in milliseconds."""
    if len(lat_s) == 0:
        return {k: math.nan for k in LATENCY_KEYS}
    ms = np.asarray(lat_s, dtype=float) * 1e3
    qs = np.percentile(ms, [q for _, q in PERCENTILES])
    out = {"mean": float(ms.mean())}
    out.update({name: float(v) for (name, _), v in zip(PERCENTILES, qs, strict=True)})
    out["max"] = float(ms.max())
    return out


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


@dataclass
class Result:
    """The outcome of :func:`simarch.simulate`.

    ``requests`` (DataFrame), ``summary()``, ``components()``, ``instances()``, ``shards()``,
    ``timeseries(window)`` and ``slo()`` give the numbers; ``to_dict()`` the JSON document;
    ``save(dir)`` writes Parquet tables and the resolved spec.
    """

    design: str
    load: float
    duration: float
    warmup: float
    seed: Any
    classes: list[str]
    start: np.ndarray  # arrival time (s) of each recorded request
    end: np.ndarray  # completion time (s)
    cls: np.ndarray  # class index
    status: np.ndarray  # 0 ok, 1 rejected, 2 timeout, 3 failed
    arrivals: list[int]  # arrivals in the window, per class (finished or not)
    component_stats: dict[str, dict[str, Any]]
    instance_stats: list[dict[str, Any]]
    shard_stats: list[dict[str, Any]]
    mean_in_system: float  # time-weighted mean number of requests in the system
    in_system_start: int  # requests in the system when the window opened
    in_system_end: int  # ... and when it closed
    slo_spec: dict[str, float] | None
    fault_windows: list[dict[str, Any]] = field(default_factory=list)
    call_stats: list[dict[str, Any]] = field(default_factory=list)
    event_log: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    spec: dict[str, Any] = field(repr=False, default_factory=dict)
    _requests: pd.DataFrame | None = field(default=None, repr=False)

    # ----------------------------------------------------------------- requests
    @property
    def latency(self) -> np.ndarray:
        """End-to-end latency (s) of every recorded request."""
        return self.end - self.start

    @property
    def requests(self) -> pd.DataFrame:
        """One row per request that arrived in the window and finished: class, start, end,
        latency_ms, status."""
        if self._requests is None:
            self._requests = pd.DataFrame({
                "class": pd.Categorical.from_codes(self.cls, categories=self.classes),
                "start_s": self.start,
                "end_s": self.end,
                "latency_ms": self.latency * 1e3,
                "status": pd.Categorical.from_codes(self.status, categories=list(STATUS_NAMES)),
            })
        return self._requests

    def _summary_row(self, mask: np.ndarray | None, arrivals: int) -> dict[str, Any]:
        status = self.status if mask is None else self.status[mask]
        lat = self.latency if mask is None else self.latency[mask]
        ok = status == 0
        finished = int(len(status))
        n_ok = int(ok.sum())
        row: dict[str, Any] = {
            "requests": int(arrivals),
            "completed": finished,
            "in_flight": int(arrivals - finished),
            "ok": n_ok,
            "throughput_rps": n_ok / self.duration,
            "availability": _ratio(n_ok, finished),
        }
        for i, name in enumerate(STATUS_NAMES[1:], start=1):
            row[name] = int((status == i).sum())
        stats = latency_stats_ms(lat[ok])
        row.update({f"{k}_ms": v for k, v in stats.items()})
        return row

    def summary(self) -> pd.DataFrame:
        """End-to-end figures, one row for all requests (``all``) and one per request class.

        Availability is successful over finished requests; latency is of successful ones (ms);
        throughput is successful requests per second of the window.
        """
        rows = {"all": self._summary_row(None, sum(self.arrivals))}
        if len(self.classes) > 1:
            for i, name in enumerate(self.classes):
                rows[name] = self._summary_row(self.cls == i, self.arrivals[i])
        df = pd.DataFrame.from_dict(rows, orient="index")
        df.index.name = "class"
        return df

    # ----------------------------------------------------------------- components
    def components(self) -> pd.DataFrame:
        """Per component: utilisation, throughput, queue (time-weighted), latency, rejections,
        and for caches the hit ratio."""
        df = pd.DataFrame.from_dict(self.component_stats, orient="index")
        df.index.name = "component"
        return df

    def instances(self) -> pd.DataFrame:
        """Per instance (or datastore replica): utilisation, throughput, queue, rejections."""
        return pd.DataFrame(self.instance_stats)

    def shards(self) -> pd.DataFrame:
        """Per datastore shard: requests routed to it, its share and its replicas' utilisation."""
        return pd.DataFrame(self.shard_stats)

    def faults(self) -> pd.DataFrame:
        """Every fault window of the run: fault, kind, target, start_s, end_s (random
        failures give one row per instance failure)."""
        return pd.DataFrame(self.fault_windows, columns=["fault", "kind", "target", "start_s", "end_s"])

    def calls(self) -> pd.DataFrame:
        """Per call with retries, a breaker, hedging or a fallback: first attempts, retries,
        hedges, fallbacks, retries denied by the budget, calls refused by an open breaker."""
        return pd.DataFrame(self.call_stats)

    def events(self) -> pd.DataFrame:
        """Circuit-breaker transitions and datastore failovers, in time order."""
        return pd.DataFrame(self.event_log, columns=["time_s", "what", "where", "from", "to"])

    # ----------------------------------------------------------------- time series
    def timeseries(self, window: str | float = "10s") -> pd.DataFrame:
        """Per window of completion time: throughput, availability, p50/p99 latency, errors."""
        w = parse_duration(window, allow_zero=False)
        end = self.warmup + self.duration
        edges = np.arange(self.warmup, end, w)
        edges = np.append(edges[edges < end - 1e-9], end)  # the last window may be shorter
        n_bins = len(edges) - 1
        idx = np.searchsorted(edges, self.end, side="right") - 1
        inside = (idx >= 0) & (idx < n_bins)
        rows = []
        lat = self.latency
        for b in range(n_bins):
            m = inside & (idx == b)
            st = self.status[m]
            ok = st == 0
            width = edges[b + 1] - edges[b]
            lok = lat[m][ok] * 1e3
            rows.append({
                "start_s": edges[b],
                "end_s": edges[b + 1],
                "completed": int(m.sum()),
                "throughput_rps": float(ok.sum()) / width,
                "availability": _ratio(float(ok.sum()), float(len(st))),
                "p50_ms": float(np.percentile(lok, 50)) if len(lok) else math.nan,
                "p99_ms": float(np.percentile(lok, 99)) if len(lok) else math.nan,
                **{name: int((st == i).sum()) for i, name in enumerate(STATUS_NAMES) if i},
                "faults": ", ".join(sorted({f["fault"] for f in self.fault_windows
                                            if f["start_s"] < edges[b + 1] and (
                                                f["end_s"] > edges[b] or f["start_s"] >= edges[b])})),
            })
        df = pd.DataFrame(rows)
        df["fault_active"] = df["faults"] != ""
        return df

    # ----------------------------------------------------------------- checks
    def slo(self) -> pd.DataFrame | None:
        """The SLO verdict: one row per target with the measured value and whether it is met."""
        if not self.slo_spec:
            return None
        s = self.summary().loc["all"]
        rows = [{"target": "stability", "objective": "keeps up (no growing backlog)",
                 "actual": self.backlog_share, "met": self.stable, "error_budget_used": math.nan}]
        # (actual: share of the window's arrivals still in flight at its end)
        for name, target in self.slo_spec.items():
            if name == "availability":
                actual = s["availability"]
                met = bool(actual >= target) if not math.isnan(actual) else False
                # error budget: the share of allowed failures this run used (1.0 = all of it)
                used = (1.0 - actual) / (1.0 - target) if target < 1 else (
                    0.0 if actual == 1 else math.inf)
                rows.append({"target": name, "objective": f">= {target:.4%}", "actual": actual,
                             "met": met, "error_budget_used": used})
            else:
                actual = s[f"{name}_ms"]
                met = bool(actual <= target * 1e3) if not math.isnan(actual) else False
                rows.append({"target": name, "objective": f"<= {target * 1e3:g} ms",
                             "actual": actual, "met": met})
        return pd.DataFrame(rows).set_index("target")

    @property
    def backlog_share(self) -> float:
        """Share of the requests that arrived in the window and were still in flight at its end."""
        n = sum(self.arrivals)
        return (n - len(self.status)) / n if n else 0.0

    @property
    def stable(self) -> bool:
        """False when the design did not keep up: the number of requests in the system grew
        over the window by more than 2% of the arrivals (and by more than 10). Arrivals minus
        departures equals that growth exactly; in a stable system it stays of the order of
        the mean number in the system, far below 2% of the arrivals of a meaningful window."""
        growth = self.in_system_end - self.in_system_start
        return growth <= max(0.02 * sum(self.arrivals), 10)

    @property
    def slo_met(self) -> bool | None:
        """True when every SLO target is met, None when the design has no SLO."""
        v = self.slo()
        return None if v is None else bool(v["met"].all())

    def all_warnings(self) -> list[str]:
        """What a reader of these figures should know: an unstable run, faults outside the
        window, caches still cold at the start of the window."""
        out = list(self.warnings)
        if not self.stable:
            growth = self.in_system_end - self.in_system_start
            out.insert(0, f"the backlog grew by {growth:,} requests over the window and "
                          f"{self.backlog_share:.1%} of the arrivals were still in flight at the end: "
                          "the design is not keeping up with this load (latency and availability "
                          "cover finished requests only)")
        return out

    def littles_law(self) -> dict[str, float]:
        """L (time-average requests in the system) against lambda * W over the window."""
        lam = sum(self.arrivals) / self.duration
        w = float(self.latency.mean()) if len(self.latency) else math.nan
        return {"L": self.mean_in_system, "lambda": lam, "W": w, "lambda_W": lam * w}

    # ----------------------------------------------------------------- export
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document of the run (``simarch run --json``)."""
        summ = self.summary()

        def block(row: pd.Series) -> dict[str, Any]:
            return {
                "requests": int(row["requests"]),
                "completed": int(row["completed"]),
                "in_flight": int(row["in_flight"]),
                "throughput_rps": _num(row["throughput_rps"]),
                "availability": _num(row["availability"]),
                "latency_ms": {k: _num(row[f"{k}_ms"]) for k in LATENCY_KEYS},
                "errors": {k: int(row[k]) for k in STATUS_NAMES[1:]},
            }

        slo = self.slo()
        return {
            "design": self.design,
            "load": self.load,
            "duration_s": self.duration,
            "warmup_s": self.warmup,
            "seed": self.seed if isinstance(self.seed, int) else str(self.seed),
            "summary": block(summ.loc["all"]),
            "classes": {c: block(summ.loc[c]) for c in summ.index if c != "all"},
            "components": {name: {k: _num(v) for k, v in st.items()}
                           for name, st in self.component_stats.items()},
            "slo": None if slo is None else {
                "met": bool(slo["met"].all()),
                "targets": {t: {"objective": r["objective"], "actual": _num(r["actual"]),
                                "met": bool(r["met"])} for t, r in slo.iterrows()},
                "error_budget_used": _num(slo["error_budget_used"].get("availability", math.nan))
                if "error_budget_used" in slo else None,
            },
            "stable": self.stable,
            "warnings": self.all_warnings(),
            "faults": self.fault_windows,
            "calls": self.call_stats,
            "events": self.event_log,
            "littles_law": {k: _num(v) for k, v in self.littles_law().items()},
        }

    def save(self, directory: str | Path) -> Path:
        """Write ``requests``, ``summary``, ``components``, ``instances``, ``shards`` and
        ``timeseries`` as Parquet, ``result.json`` and the resolved ``spec.yaml`` (atomically)."""
        import yaml

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        tables = {
            "requests": self.requests,
            "summary": self.summary().reset_index(),
            "components": self.components().reset_index(),
            "instances": self.instances(),
            "shards": self.shards(),
            "timeseries": self.timeseries(),
            "faults": self.faults(),
            "calls": self.calls(),
            "events": self.events(),
        }
        for name, df in tables.items():
            _atomic(out / f"{name}.parquet", lambda p, df=df: df.to_parquet(p, index=False))
        _atomic(out / "result.json",
                lambda p: Path(p).write_text(json.dumps(self.to_dict(), indent=2) + "\n"))
        _atomic(out / "spec.yaml",
                lambda p: Path(p).write_text(yaml.safe_dump(self.spec, sort_keys=False)))
        from . import __version__

        manifest = {"type": "run", "design": self.design, "load": self.load,
                    "duration_s": self.duration, "warmup_s": self.warmup,
                    "seed": self.seed if isinstance(self.seed, int) else str(self.seed),
                    "simarch_version": __version__}
        _atomic(out / "simarch.json", lambda p: Path(p).write_text(json.dumps(manifest, indent=2) + "\n"))
        return out

    def __repr__(self) -> str:
        s = self.summary().loc["all"]
        return (f"Result({self.design!r}, load={self.load:g}x, {int(s['requests'])} requests, "
                f"availability={s['availability']:.4%}, p99={s['p99_ms']:.2f}ms)")

    def report(self) -> str:
        """The readable text report ``simarch run`` prints."""
        from .report import format_result

        return format_result(self)


def _num(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(v, (np.bool_,)):
        return bool(v)
    return v


def _atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # as an ordinary new file, not mkstemp's private 0600
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ---------------------------------------------------------------------- building


def build_result(sim: Simulation) -> Result:
    from .engine import CacheRuntime, DatastoreRuntime, QueueRuntime

    t_end = sim.env.now
    T = sim.duration
    code = np.frombuffer(sim.code, dtype=np.uint16) if len(sim.code) else np.zeros(0, np.uint16)
    comp_stats: dict[str, dict[str, Any]] = {}
    inst_stats: list[dict[str, Any]] = []
    shard_stats: list[dict[str, Any]] = []
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
        lat = np.frombuffer(comp.lat, dtype=np.float32).astype(float) if len(comp.lat) else np.zeros(0)
        lstats = latency_stats_ms(lat)
        arrived = now["arrived"] - then["arrived"]
        extra = now["extra"] - then["extra"]
        shed = now.get("shed", 0) - then.get("shed", 0)
        st: dict[str, Any] = {
            "kind": comp.kind,
            "instances": len(comp.pools),
            "workers": None if math.isinf(cap) else int(cap),
            "arrivals": arrived,
            "offered_rps": (arrived - extra) / T,
            "received_rps": arrived / T,
            "amplification": _ratio(arrived, arrived - extra),
            "throughput_rps": done / T,
            "utilization": busy / (T * cap) if not math.isinf(cap) else math.nan,
            "mean_busy": busy / T,
            "mean_queue": queue / T,
            "max_queue": max((p.q_max for p in comp.pools), default=0),
            "mean_wait_ms": 1e3 * queue / done if done else math.nan,
            "mean_latency_ms": lstats["mean"],
            "p99_latency_ms": lstats["p99"],
            "rejected": rejected + shed,
            "hit_ratio": math.nan,
            "uptime": 1.0 - down / (T * len(comp.pools)),
        }
        if isinstance(comp, CacheRuntime):
            hits = now["hits"] - then["hits"]
            misses = now["misses"] - then["misses"]
            st["hit_ratio"] = _ratio(hits, hits + misses)
        if isinstance(comp, QueueRuntime):
            enq = now["enqueued"] - then["enqueued"]
            st["throughput_rps"] = enq / T
            st["rejected"] = now["rejected"] - then["rejected"]
            st["mean_queue"] = (now["depth_area"] - then["depth_area"]) / T
            st["max_queue"] = comp.d_max
            wait = np.frombuffer(comp.wait, dtype=np.float32).astype(float) if len(comp.wait) else np.zeros(0)
            wst = latency_stats_ms(wait)
            st["mean_wait_ms"] = wst["mean"]
            st["p99_wait_ms"] = wst["p99"]
            st["consumed"] = now["consumed"] - then["consumed"]
            st["consumer_failures"] = now["failed"] - then["failed"]
            st["utilization"] = math.nan
            st["mean_busy"] = math.nan
        if isinstance(comp, DatastoreRuntime):
            loads = [a - b for a, b in zip(now["shard_load"], then["shard_load"], strict=True)]
            total = sum(loads)
            for s, ld in enumerate(loads):
                reps = pool_rows[s * comp.spec.replicas:(s + 1) * comp.spec.replicas]
                shard_stats.append({
                    "component": name,
                    "shard": s,
                    "requests": ld,
                    "rate_rps": ld / T,
                    "share": _ratio(ld, total),
                    "utilization": float(np.mean([r["utilization"] for r in reps])),
                    "max_replica_utilization": float(max(r["utilization"] for r in reps)),
                })
            st["hottest_shard_share"] = max((r["share"] for r in shard_stats if r["component"] == name),
                                            default=math.nan)
        comp_stats[name] = st
        inst_stats.extend(pool_rows)

    mean_in_system = (sim.sys_area(t_end) - sim.warm_sys) / T
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
    for name, comp in sim.components.items():
        for t, shard, old, new in getattr(comp, "failovers", []):
            events.append({"time_s": t, "what": "failover", "where": f"{name}.shard{shard}",
                           "from": old, "to": new})
    events.sort(key=lambda e: e["time_s"])
    slo = None
    if sim.spec.slo is not None:
        slo = {k: v for k, v in sim.spec.slo.model_dump().items() if v is not None}
    warnings = []
    from .faults import fault_label

    for f in sim.spec.faults:
        end = f.at if f.kind == "cache_flush" else f.end
        if f.at >= t_end or end < sim.warmup or (f.kind != "cache_flush" and end == sim.warmup):
            warnings.append(f"fault {fault_label(f)} at {f.at:g}s lies outside the measured window "
                            f"[{sim.warmup:g}s, {t_end:g}s): it does not affect these figures "
                            "(fault times count from the start, warm-up included)")
    for name, comp in sim.components.items():
        fill = getattr(comp, "fill_at_warm", None)
        if fill is not None and comp.cap_keys and fill < 0.95 * comp.cap_keys:
            warnings.append(f"cache {name} held {fill:,} of {comp.cap_keys:,} keys at the end of the "
                            "warm-up: its hit ratio was still climbing; lengthen the warm-up for "
                            "steady-state figures")
    return Result(
        design=sim.spec.name,
        load=sim.load,
        duration=sim.duration,
        warmup=sim.warmup,
        seed=sim.seed,
        classes=list(sim.classes),
        start=np.frombuffer(sim.t_start, dtype=float).copy() if len(sim.t_start) else np.zeros(0),
        end=np.frombuffer(sim.t_end, dtype=float).copy() if len(sim.t_end) else np.zeros(0),
        cls=(code // 4).astype(np.int16),
        status=(code % 4).astype(np.int8),
        arrivals=list(sim.arrivals),
        component_stats=comp_stats,
        instance_stats=inst_stats,
        shard_stats=shard_stats,
        mean_in_system=mean_in_system,
        in_system_start=sim.warm_in_system,
        in_system_end=sim.sys_n,
        slo_spec=slo,
        fault_windows=[{"fault": n, "kind": k, "target": tg, "start_s": a, "end_s": min(b, t_end)}
                       for n, k, tg, a, b in sim.fault_log],
        call_stats=calls,
        event_log=events,
        warnings=warnings,
        spec={**sim.arch.resolved(), "simulation": {"duration": sim.duration, "warmup": sim.warmup,
                                                    **({"seed": sim.seed} if isinstance(sim.seed, int) else {})}},
    )

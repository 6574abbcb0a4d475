"""Results of one run: columnar request records and per-component statistics, as DataFrames.

Everything is counted over the measurement window ``[warmup, warmup + duration)``:
requests that *arrived* in the window make up the request records; component statistics are
the differences of running counters taken at the start and the end of the window.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._version import __version__
from ..model.metrics import LATENCY_KEYS, latency_stats_ms
from ..model.metrics import ratio as _ratio
from ..model.status import ERROR_NAMES, STATUS_NAMES, Status
from ..model.units import parse_duration
from .binning import bin_requests, window_edges
from .io import atomic_write
from .slo import judge
from .text import format_result


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
        ok = status == Status.OK
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
        for i, name in enumerate(ERROR_NAMES, start=1):
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
        """Per window of completion time: throughput, availability, p50/p99 latency, errors,
        and the faults active in the window."""
        w = parse_duration(window, allow_zero=False)
        edges = window_edges(self.warmup, self.warmup + self.duration, w)
        rows = bin_requests(self.end, self.status, self.latency, edges)
        for b, row in enumerate(rows):
            row["faults"] = ", ".join(sorted({
                f["fault"] for f in self.fault_windows
                if f["start_s"] < edges[b + 1] and (f["end_s"] > edges[b] or f["start_s"] >= edges[b])}))
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
        rows += judge(self.slo_spec, s)
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
                "errors": {k: int(row[k]) for k in ERROR_NAMES},
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
            atomic_write(out / f"{name}.parquet", lambda p, df=df: df.to_parquet(p, index=False))
        atomic_write(out / "result.json",
                lambda p: Path(p).write_text(json.dumps(self.to_dict(), indent=2) + "\n"))
        atomic_write(out / "spec.yaml",
                lambda p: Path(p).write_text(yaml.safe_dump(self.spec, sort_keys=False)))
        manifest = {"type": "run", "design": self.design, "load": self.load,
                    "duration_s": self.duration, "warmup_s": self.warmup,
                    "seed": self.seed if isinstance(self.seed, int) else str(self.seed),
                    "simarch_version": __version__}
        atomic_write(out / "simarch.json", lambda p: Path(p).write_text(json.dumps(manifest, indent=2) + "\n"))
        return out

    def __repr__(self) -> str:
        s = self.summary().loc["all"]
        return (f"Result({self.design!r}, load={self.load:g}x, {int(s['requests'])} requests, "
                f"availability={s['availability']:.4%}, p99={s['p99_ms']:.2f}ms)")

    def report(self) -> str:
        """The readable text report ``simarch run`` prints."""
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

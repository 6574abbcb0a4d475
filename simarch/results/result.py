"""Results of one run: columnar request records and per-component statistics, as DataFrames.

Everything is counted over the measurement window ``[warmup, warmup + duration)``:
requests that *arrived* in the window make up the request records; component statistics are
the differences of running counters taken at the start and the end of the window.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._version import __version__
from ..model.metrics import LATENCY_KEYS, latency_stats_ms
from ..model.metrics import ratio as _ratio
from ..model.pricing import HOURLY_UNITS
from ..model.status import ERROR_NAMES, STATUS_NAMES, Status
from ..model.units import parse_duration
from .attribution import COLUMNS as ATTRIBUTION_COLUMNS
from .attribution import DEFAULT_BANDS, attribution_rows, contrast
from .binning import bin_requests, step_areas, step_means, window_edges
from .deployments import COLUMNS as DEPLOYMENT_COLUMNS
from .deployments import LOG_COLUMNS as DEPLOYMENT_LOG_COLUMNS
from .deployments import deployment_rows
from .hops import Hops
from .io import atomic_write
from .slo import judge
from .stability import Growth, Stuck, backlog_growth, stuck_requests, unanswered_after
from .text import format_result, result_html
from .traces import write_traces

if TYPE_CHECKING:
    import pandas as pd

    from ..model.cost import CostBreakdown

TAIL_SAMPLES = 10  # requests beyond a percentile that a window needs for it to be judged fairly


@dataclass
class Result:
    """The outcome of :func:`simarch.simulate`.

    ``requests`` (DataFrame), ``summary()``, ``components()``, ``instances()``, ``shards()``,
    ``timeseries(window)`` and ``slo()`` give the numbers; ``cost`` the design's monthly cost
    (when a component has a price) and ``cost_per_million`` its cost per million successful
    requests at the simulated load; ``to_dict()`` the JSON document;
    ``save(dir)`` writes Parquet tables and the resolved spec; a notebook shows it as tables.
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
    pending_start: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)  # arrival
    # time (s) of each request that arrived in the window and was still in flight at its end
    pending_cls: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16), repr=False)
    late_end: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)  # completion
    # times in the window of requests that arrived in the warm-up
    fault_windows: list[dict[str, Any]] = field(default_factory=list)
    call_stats: list[dict[str, Any]] = field(default_factory=list)
    event_log: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    spec: dict[str, Any] = field(repr=False, default_factory=dict)
    cost: CostBreakdown | None = field(default=None, repr=False)  # None: nothing has a price
    visit_stats: list[dict[str, Any]] = field(default_factory=list, repr=False)  # per
    # component and class: visits and residence-time percentiles
    hops: Hops | None = field(default=None, repr=False)  # hop records (None: not recorded)
    instance_log: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)  # per
    # component whose instances come and go: change times "t", instances in service "serving"
    # and billed "billed" from each on

    deployment_runs: list[dict[str, Any]] = field(default_factory=list, repr=False)  # one per
    # deployment of the spec: start, end, rollback, fewest in rotation (runtime/deploy.py)
    deploy_log: list[dict[str, Any]] = field(default_factory=list, repr=False)  # their steps
    freshness_stats: list[dict[str, Any]] | None = field(default=None, repr=False)  # per
    # component and class: reads from copies, stale ones, their ages (None: no copy can lag)
    stale_by_class: dict[str, float] | None = field(default=None, repr=False)  # the stale share
    # of tracked reads per class and "all"
    lost_writes: dict[str, int] = field(default_factory=dict, repr=False)  # acknowledged writes
    # lost with a copy (a write-back cache's), per component
    region_names: list[str] = field(default_factory=list, repr=False)  # a design with regions: its
    # regions; per request record the user's region (a number) and the round trip to the entry (s)
    user_region: np.ndarray | None = field(default=None, repr=False)
    added_rtt: np.ndarray | None = field(default=None, repr=False)
    region_calls: list[dict[str, Any]] = field(default_factory=list, repr=False)  # per call
    # edge: calls, cross-region calls, their share and added ms per call
    _requests: pd.DataFrame | None = field(default=None, repr=False)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # ----------------------------------------------------------------- requests
    @property
    def latency(self) -> np.ndarray:
        """End-to-end latency (s) of every recorded request."""
        return self.end - self.start

    @property
    def requests(self) -> pd.DataFrame:
        """One row per request that arrived in the window and finished: class, start, end,
        latency_ms, status."""
        import pandas as pd  # on first use: a run itself needs no pandas
        if self._requests is None:
            self._requests = pd.DataFrame({
                "class": pd.Categorical.from_codes(self.cls, categories=self.classes),
                "start_s": self.start,
                "end_s": self.end,
                "latency_ms": self.latency * 1e3,
                "status": pd.Categorical.from_codes(self.status, categories=list(STATUS_NAMES)),
            })
        return self._requests

    def _summary_row(self, cls: int | None, arrivals: int) -> dict[str, Any]:
        mask = None if cls is None else self.cls == cls
        status = self.status if mask is None else self.status[mask]
        lat = self.latency if mask is None else self.latency[mask]
        ok = status == Status.OK
        finished = int(len(status))
        n_ok = int(ok.sum())
        unanswered = self._unanswered(cls)
        row: dict[str, Any] = {
            "requests": int(arrivals),
            "completed": finished,
            "in_flight": int(arrivals - finished),
            "ok": n_ok,
            "throughput_rps": n_ok / self.duration,
            "availability": _ratio(n_ok, finished + unanswered),
        }
        for i, name in enumerate(ERROR_NAMES, start=1):
            row[name] = int((status == i).sum())
        row["unanswered"] = unanswered
        stats = latency_stats_ms(lat[ok])
        row.update({f"{k}_ms": v for k, v in stats.items()})
        if self.stale_by_class is not None:
            row["stale_reads"] = self.stale_by_class.get("all" if cls is None else self.classes[cls], 0.0)
        return row

    def summary(self) -> pd.DataFrame:
        """End-to-end figures, one row for all requests (``all``) and one per request class.

        Availability is successful requests over finished and unanswered ones (requests still
        in flight at the end after longer than :attr:`unanswered_after`, see
        :mod:`simarch.results.stability`); latency is of successful ones (ms); throughput is
        successful requests per second of the window.
        """
        import pandas as pd  # on first use: a run itself needs no pandas
        rows = {"all": self._summary_row(None, sum(self.arrivals))}
        if len(self.classes) > 1:
            for i, name in enumerate(self.classes):
                rows[name] = self._summary_row(i, self.arrivals[i])
        df = pd.DataFrame.from_dict(rows, orient="index")
        df.index.name = "class"
        return df

    # ----------------------------------------------------------------- components
    def components(self) -> pd.DataFrame:
        """Per component: utilisation, throughput, queue (time-weighted), latency, rejections,
        and for caches the hit ratio."""
        import pandas as pd  # on first use: a run itself needs no pandas
        df = pd.DataFrame.from_dict(self.component_stats, orient="index")
        df.index.name = "component"
        return df

    def instances(self) -> pd.DataFrame:
        """Per instance (or datastore replica): utilisation, throughput, queue, rejections."""
        import pandas as pd  # on first use: a run itself needs no pandas
        return pd.DataFrame(self.instance_stats)

    def shards(self) -> pd.DataFrame:
        """Per datastore shard: requests routed to it, its share and its replicas' utilisation."""
        import pandas as pd  # on first use: a run itself needs no pandas
        return pd.DataFrame(self.shard_stats)

    def faults(self) -> pd.DataFrame:
        """Every fault window of the run: fault, kind, target, start_s, end_s (random
        failures give one row per instance failure)."""
        import pandas as pd  # on first use: a run itself needs no pandas
        return pd.DataFrame(self.fault_windows, columns=["fault", "kind", "target", "start_s", "end_s"])

    def deployments(self) -> pd.DataFrame:
        """One row per deployment that started: deployment, target, strategy, start_s,
        end_s, duration_s (NaN when still going on at the end), the availability and p99 of
        the requests that arrived during it against those of the rest of the window
        (``availability_during``, ``availability_outside``, ``p99_during_ms``,
        ``p99_outside_ms``), ``requests_during``, ``failed_during``, ``failed_by_stop``
        (requests still in progress when an instance stopped after its drain timeout),
        ``min_in_rotation`` (fewest instances taking requests) of ``instances``, the
        instance-hours run beyond the tier's own (``extra_instance_hours``: a surge, a second
        set) and their price when the target has an hourly one (``extra_cost_usd``),
        ``rolled_back`` and ``reason``. See :mod:`simarch.results.deployments`."""
        import pandas as pd  # on first use: a run itself needs no pandas
        return pd.DataFrame(deployment_rows(self), columns=DEPLOYMENT_COLUMNS)

    def deployment_log(self) -> pd.DataFrame:
        """Every step of the run's deployments, in time order: time_s, deployment, step
        (begin, batch, canary, provision, out, drained, drain timeout, stopped, start, ready,
        in, switch, rollback, promote, end), instance and detail."""
        import pandas as pd  # on first use: a run itself needs no pandas
        return pd.DataFrame(self.deploy_log, columns=DEPLOYMENT_LOG_COLUMNS)

    def freshness(self) -> pd.DataFrame:
        """Stale reads, one row per component that serves reads from copies and request class
        (and ``all`` per component with several classes): ``reads``, ``stale``,
        ``stale_fraction``, the stale reads' age (``age_mean_ms``, ``age_p50_ms``,
        ``age_p99_ms``, ``age_max_ms``: how long the newer value had existed), and for
        requests with a session the ``read_your_writes_violations`` and
        ``monotonic_read_violations``. Empty when no component's copies can lag. See
        :mod:`simarch.runtime.freshness`."""
        import pandas as pd  # on first use: a run itself needs no pandas
        cols = ["component", "class", "reads", "stale", "stale_fraction", "age_mean_ms", "age_p50_ms",
                "age_p99_ms", "age_max_ms", "session_reads", "read_your_writes_violations",
                "monotonic_read_violations"]
        return pd.DataFrame(self.freshness_stats or [], columns=cols)

    def calls(self) -> pd.DataFrame:
        """Per call with retries, a breaker, hedging or a fallback: first attempts, retries,
        hedges, fallbacks, retries denied by the budget, calls refused by an open breaker.
        In a design with regions, one row per call edge (``edge``) with also ``calls`` (made in
        the window), ``cross_region`` (those whose caller and callee instances are in
        different regions), ``cross_region_share`` and ``added_ms_per_call`` (the round trips
        they added, per call)."""
        import pandas as pd  # on first use: a run itself needs no pandas
        if not self.region_calls:
            return pd.DataFrame(self.call_stats)
        res = pd.DataFrame(self.call_stats)
        reg = pd.DataFrame(self.region_calls).rename(columns={"call": "edge"})
        if not len(res):
            return reg
        res = res.groupby("edge", sort=False).sum(numeric_only=True).reset_index()  # (a caller in several regions)
        return reg.merge(res, on="edge", how="outer")

    @property
    def cross_region_share(self) -> float:
        """The share of all calls in the window whose caller and callee instances were in
        different regions (NaN: no regions, or no call)."""
        n = sum(r["calls"] for r in self.region_calls)
        return sum(r["cross_region"] for r in self.region_calls) / n if n else math.nan

    def regions(self) -> pd.DataFrame:
        """Per user region (a design with regions): requests, availability (the share that
        ended OK), latency percentiles (ms) and the mean round trip added on the way to the
        entry (``added_ms``; the calls' own crossings are in :meth:`calls`). Empty without
        regions."""
        import pandas as pd  # on first use: a run itself needs no pandas
        cols = ["region", "requests", "availability", "p50_ms", "p95_ms", "p99_ms", "mean_ms", "added_ms"]
        if self.user_region is None or not self.region_names:
            return pd.DataFrame(columns=cols)
        rows = []
        lat = self.latency
        for i, name in enumerate(self.region_names):
            m = self.user_region == i
            n = int(m.sum())
            if not n:
                continue
            ok = m & (self.status == Status.OK)
            okl = lat[ok] * 1e3
            pct = np.percentile(okl, [50, 95, 99]) if len(okl) else [math.nan] * 3
            rows.append({"region": name, "requests": n, "availability": float(ok.sum()) / n,
                         "p50_ms": float(pct[0]), "p95_ms": float(pct[1]), "p99_ms": float(pct[2]),
                         "mean_ms": float(okl.mean()) if len(okl) else math.nan,
                         "added_ms": float(self.added_rtt[m].mean()) * 1e3})  # type: ignore[index]
        return pd.DataFrame(rows, columns=cols).set_index("region")

    def events(self) -> pd.DataFrame:
        """Circuit-breaker transitions, datastore failovers and scaling actions
        (``scale_out`` / ``scale_in``, from and to the desired instances), in time order."""
        import pandas as pd  # on first use: a run itself needs no pandas
        return pd.DataFrame(self.event_log, columns=["time_s", "what", "where", "from", "to"])

    # ----------------------------------------------------------------- where the time goes
    def component_latency(self) -> pd.DataFrame:
        """Per component and request class: visits and the residence time of a visit (from
        its arrival to its answer, its calls included), mean, p50, p90, p99 and p99.9 in
        ms."""
        import pandas as pd  # on first use: a run itself needs no pandas
        return pd.DataFrame(self.visit_stats, columns=[
            "component", "class", "visits", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "p999_ms"])

    def attribution(self, band: Any = DEFAULT_BANDS, *, per_class: bool = True,
                    classes: list[str] | None = None) -> pd.DataFrame:
        """Where the time of the requests in a latency band goes: one row per band, class,
        component and phase, with the mean time per request (``mean_ms``) and its ``share``
        of the band's mean latency (the shares of a band and class add up to 1).

        ``band`` is ``"median"`` (p45-p55), ``"p99"`` (p99-p99.9), ``"p99.9"`` (beyond
        p99.9), ``"all"``, a pair of quantiles such as ``(0.9, 0.99)``, or a list of these
        (default: the median, p99 and p99.9 bands). Bands are quantiles of the successful
        requests' latency within each class; the class ``all`` takes every class together.
        Phases: ``network`` (before the visit reached the component), ``wait`` (for a
        worker), ``service``, ``backoff`` (between retries), ``hedge`` (waiting before the
        winning hedge was sent), ``timeout`` (calls that timed out) and ``failed`` (failed
        attempts), each charged to the component visited or called. Only each request's
        critical path counts: in a parallel fan-out, the call that finished last. See
        :mod:`simarch.results.hops`. Needs the hop records (on by default)."""
        import pandas as pd  # on first use: a run itself needs no pandas
        rows = attribution_rows(self, band, per_class=per_class, classes=classes)
        return pd.DataFrame(rows, columns=ATTRIBUTION_COLUMNS)

    def tail_contrast(self, tail: str = "p99", base: str = "median", cls: str = "all") -> dict[str, Any] | None:
        """What sets the ``tail`` band apart from the ``base`` band (as in the report's
        "what makes the p99" section): the top contributors and the one whose share grows
        most. ``None`` without hop records or requests in either band."""
        if self.hops is None:
            return None
        if "attribution" not in self._cache:
            self._cache["attribution"] = attribution_rows(self, DEFAULT_BANDS)
        return contrast(self._cache["attribution"], tail, base, cls)

    def traces(self, path: str | Path, *, format: str | None = None, sample: Any = None) -> Any:
        """Write sampled requests as traces: OpenTelemetry OTLP/JSON, or the Chrome trace-event
        format (Perfetto, ``chrome://tracing``) for a name ending in ``.chrome.json`` or
        ``format="chrome"``. ``sample`` is a :class:`~simarch.results.traces.TraceSample` or
        its text form (``"1/100,failed,>p99,limit=500"``; default: up to 1,000 requests).
        Returns what was written (its ``str`` is one line). See
        :mod:`simarch.results.traces`."""
        return write_traces(self, path, format=format, sample=sample)

    # ----------------------------------------------------------------- time series
    def timeseries(self, window: str | float = "10s") -> pd.DataFrame:
        """Per window of completion time: throughput, availability, p50/p99 latency, errors,
        and the faults active in the window. For each autoscaled component ``x``, the
        column ``instances:x`` is the time-average number of its instances in service in
        the window; with prices, ``cost_usd`` is what the priced components cost in the
        window (instance-hours billed x the hourly price for an autoscaled one)."""
        import pandas as pd  # on first use: a run itself needs no pandas
        w = parse_duration(window, allow_zero=False)
        edges = window_edges(self.warmup, self.warmup + self.duration, w)
        rows = bin_requests(self.end, self.status, self.latency, edges)
        for b, row in enumerate(rows):
            row["faults"] = ", ".join(sorted({
                f["fault"] for f in self.fault_windows
                if f["start_s"] < edges[b + 1] and (f["end_s"] > edges[b] or f["start_s"] >= edges[b])}))
        df = pd.DataFrame(rows)
        df["fault_active"] = df["faults"] != ""
        for name, log in self.instance_log.items():
            df[f"instances:{name}"] = step_means(log["t"], log["serving"], edges)
        if self.instance_log and self.cost is not None:
            df["cost_usd"] = self._window_costs(edges)
        return df

    def _window_costs(self, edges: np.ndarray) -> np.ndarray:
        """USD the priced components cost in each window: an autoscaled component at its
        billed instance-hours, the others at their monthly cost spread evenly."""
        assert self.cost is not None
        widths = np.diff(edges)
        total = np.zeros(len(widths))
        for line in self.cost.lines:
            log = self.instance_log.get(line.component)
            if log is not None and line.unit in HOURLY_UNITS:
                total += line.unit_price * np.diff(step_areas(log["t"], log["billed"], edges)) / 3600.0
            else:
                total += line.monthly_usd * widths / (self.cost.hours_per_month * 3600.0)
        return total

    @property
    def run_cost_usd(self) -> float | None:
        """USD the priced components cost over the measured window: hourly prices x the
        instance-hours as run (an autoscaled component's billed instance-hours), queues at
        the simulated message rate (``None``: nothing has a price)."""
        if self.cost is None:
            return None
        return float(self.cost.monthly_usd * self.duration / (self.cost.hours_per_month * 3600.0))

    # ----------------------------------------------------------------- checks
    def slo(self) -> pd.DataFrame | None:
        """The SLO verdict: one row per target with the measured value and whether it is met."""
        import pandas as pd  # on first use: a run itself needs no pandas
        if not self.slo_spec:
            return None
        s = self.summary().loc["all"]
        rows = [{"target": "stability", "objective": "keeps up (steady backlog, no more stuck than the tail explains)",
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
    def window(self) -> tuple[float, float]:
        """The measurement window ``(start, end)`` in simulated seconds."""
        return self.warmup, self.warmup + self.duration

    @cached_property
    def unanswered_after(self) -> float:
        """Seconds after which a request still in flight at the end counts as unanswered:
        the SLO's largest latency target, else ten times the window's p99."""
        ok = self.latency[self.status == Status.OK]
        p99 = float(np.percentile(ok, 99)) if len(ok) else math.nan
        return unanswered_after(self.slo_spec, p99)

    def _unanswered(self, cls: int | None = None) -> int:
        ages = self.window[1] - self.pending_start
        late = ages > self.unanswered_after
        if cls is not None:
            late &= self.pending_cls == cls
        return int(late.sum())

    def growth(self) -> Growth:
        """The backlog-growth test of the window (see :mod:`simarch.results.stability`)."""
        return self._growth

    @cached_property
    def _growth(self) -> Growth:
        done = np.concatenate([self.end, self.late_end])
        return backlog_growth(self.window, self.in_system_start, self.start_all, done)

    @property
    def start_all(self) -> np.ndarray:
        """Arrival times of every request that arrived in the window, finished or not."""
        return np.concatenate([self.start, self.pending_start])

    def stuck(self) -> Stuck:
        """Requests in flight at the end for longer than :attr:`unanswered_after`."""
        return self._stuck

    @cached_property
    def _stuck(self) -> Stuck:
        from_warmup = self.in_system_end - len(self.pending_start)
        return stuck_requests(self.unanswered_after, self.window, self.pending_start, from_warmup,
                              self.latency, sum(self.arrivals))

    @property
    def stable(self) -> bool:
        """False when the design did not keep up: its backlog grew significantly over the
        window, or more requests were stuck at the end than its latency tail explains (see
        :mod:`simarch.results.stability`; this works for open and closed loops)."""
        return not (self.growth().significant or self.stuck().significant)

    @property
    def slo_met(self) -> bool | None:
        """True when every SLO target is met, None when the design has no SLO."""
        v = self.slo()
        return None if v is None else bool(v["met"].all())

    def all_warnings(self) -> list[str]:
        """What a reader of these figures should know: an unstable run, stuck requests, no
        traffic, faults outside the window, caches still cold at the start of the window."""
        out = []
        n = sum(self.arrivals)
        if n == 0:
            out.append("no request arrived in the measured window: there are no figures to judge "
                       "(check the workload rate, the warm-up and stuck requests)")
        g = self.growth()
        if g.significant:
            out.append(f"the backlog grew by {g.end - g.start:,} requests over the window "
                       f"({g.per_s:,.3g} per second, t = {g.t:.1f}, p = {g.p:.1g}) and "
                       f"{self.backlog_share:.1%} of the arrivals were still in flight at the end: "
                       "the design is not keeping up with this load")
        st = self.stuck()
        if st.count:
            parts = []
            if st.in_window:
                parts.append(f"{st.in_window:,} that arrived in the window (counted as failed)")
            if st.from_warmup:
                parts.append(f"{st.from_warmup:,} that arrived in the warm-up")
            after = (f"after more than {st.after * 1e3:,.4g} ms" if st.after > 0
                     else "(no request succeeded in the window)")
            out.append(f"{st.count:,} request(s) were still unanswered at the end {after}: "
                       f"{' and '.join(parts)}"
                       + (f" - far more than its latency tail explains ({st.expected:.2g} expected): "
                          "the design was not keeping up at the end of the window (a backlog, a "
                          "hang without a timeout, a deadlock)" if st.significant else ""))
        for name in (self.slo_spec or {}):
            q = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99, "p999": 0.999}.get(name)
            n_ok = int(np.sum(self.status == Status.OK))
            need = math.ceil(TAIL_SAMPLES / (1 - q)) if q is not None else 0
            if q is not None and 0 < n_ok < need:
                out.append(f"the window holds {n_ok:,} successful requests: its {name} is judged on "
                           f"fewer than {TAIL_SAMPLES} requests beyond it and is biased low; a window "
                           f"with at least {need:,} is needed (lengthen the duration)")
        return out + list(self.warnings)

    def _stability_dict(self) -> dict[str, Any]:
        g, st = self.growth(), self.stuck()
        return {"backlog_start": g.start, "backlog_end": g.end, "growth_per_s": _num(g.per_s),
                "t": _num(g.t), "p": _num(g.p), "unanswered_after_s": _num(st.after),
                "stuck": st.count, "stuck_expected": _num(st.expected), "stuck_p": _num(st.p)}

    @property
    def cost_per_million(self) -> float | None:
        """USD per million successful requests at the simulated load: the design's monthly
        cost over a month of the window's successful throughput (None: nothing has a price)."""
        if self.cost is None:
            return None
        n_ok = int(np.sum(self.status == Status.OK))
        return self.cost.per_million(n_ok / self.duration)

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
                "errors": {k: int(row[k]) for k in (*ERROR_NAMES, "unanswered")},
            }

        slo = self.slo()
        out = {
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
            "stability": self._stability_dict(),
            "warnings": self.all_warnings(),
            "faults": self.fault_windows,
            "calls": self.call_stats,
            "events": self.event_log,
            "littles_law": {k: _num(v) for k, v in self.littles_law().items()},
        }
        if self.freshness_stats is not None:  # only for a design whose copies can lag
            out["freshness"] = {"stale_reads": _num((self.stale_by_class or {}).get("all", 0.0)),
                                "reads": [{k: _num(v) for k, v in r.items()} for r in self.freshness_stats],
                                "lost_writes": dict(self.lost_writes)}
        if self.deployment_runs:  # only for a design with deployments, likewise
            out["deployments"] = [{k: _num(v) for k, v in row.items()}
                                  for row in deployment_rows(self)]
        if self.cost is not None:  # only for a design with prices: the others' documents stay as they were
            out["cost"] = {**self.cost.to_dict(),
                           "per_million_successful_usd": _num(self.cost_per_million),
                           "successful_rps": _num(float(summ.loc["all", "throughput_rps"]))}
        return out

    def save(self, directory: str | Path) -> Path:
        """Write ``requests``, ``summary``, ``components``, ``instances``, ``shards``,
        ``timeseries``, ``faults``, ``calls``, ``events``, ``component_latency`` and (with hop
        records) ``attribution`` as Parquet, ``result.json`` and the resolved ``spec.yaml``
        (atomically)."""
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
            "component_latency": self.component_latency(),
        }
        if self.hops is not None:
            tables["attribution"] = self.attribution()
        if self.deployment_runs:
            tables["deployments"] = self.deployments()
            tables["deployment_log"] = self.deployment_log()
        if self.freshness_stats is not None:
            tables["freshness"] = self.freshness()
        if self.region_names:
            tables["regions"] = self.regions().reset_index()
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

    def _repr_html_(self) -> str:
        """The run in a notebook: its SLO verdict, end-to-end and component tables."""
        return result_html(self)


def _num(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(v, (np.bool_,)):
        return bool(v)
    return v

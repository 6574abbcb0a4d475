"""A verdict on metastability: does a design recover after a trigger, and how large a
trigger tips it into a lasting bad state?

Each run simulates the design (its own ``faults`` left out) through a warm-up and a
``baseline`` window in its steady state, then applies one trigger, then watches for
``within`` seconds after the trigger ends. Goodput is the rate of successful requests by
completion time. The run **recovers** when, in some ``window`` (5 s) that starts within
``within`` (60 s) of the trigger's end, the goodput is at least ``tolerance`` (95%) of the
baseline's and the p99 of the successful requests at most ``latency_tolerance`` (2x) times
the baseline's, and the rest of the run, from the end of that window to the run's end (one
window after ``within``), taken together, meets the same test (no relapse). Its recovery
time is the start of that first window, counted from the trigger's end. Goodput is a count:
a window of ``n`` successful requests measures it to about ``1 / sqrt(n)``, so a window
should hold 2,500 or more for a 95% tolerance to mean what it says (the report warns when
the margin ``1 - tolerance`` is less than 2.5 / sqrt(n)).

Triggers (strings as on the command line, or mappings):

* ``slow:TARGET,factor=F`` (and ``add=``): the ``slow`` fault for the trigger's duration;
* ``spike:factor=F``: the arrival rate times ``F`` for the duration (the workload's
  ``profile.spike``; a design with a profile of its own is refused);
* ``crash:TARGET[,instances=N][,behaviour=hang]``: a crash for the duration;
* ``flush:TARGET[,every=1s]``: a cache flush is an instant; its duration is how long the
  flush is repeated, every ``every`` seconds, which keeps the cache cold that long (one
  flush when the duration is at most ``every``).

Replications use the seeds of :mod:`simarch.study.experiment` (``SeedSequence(seed,
spawn_key=(r,))``) and run on its executors, serially, in processes or on Dask. The
**boundary** is where the share of replications that recover crosses one half: the largest
trigger that recovers and the smallest that does not, among the values given, then bisected
to ``resolution``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import plots
from .._version import __version__
from ..analysis.fluid import fluid_boundary, retry_loop
from ..errors import SimarchError, SpecError, excerpt
from ..model.architecture import Architecture
from ..model.architecture import load as load_arch
from ..model.spec import yaml_load
from ..model.stats import t_quantile
from ..model.units import parse_duration, parse_multiplier
from ..results.io import atomic_write
from ..run.simulate import simulate
from .experiment import Task, check_runs, mean_ci, positive_int, replication_seed, run_tasks

__all__ = ["Trigger", "parse_trigger", "stability", "Stability", "recovery"]

TRIGGERS = ("slow", "spike", "crash", "flush")
DEFAULT_DURATIONS = (1.0, 2.0, 5.0, 10.0, 20.0)
TOLERANCE = 0.95
LATENCY_TOLERANCE = 2.0
WITHIN = 60.0
WINDOW = 5.0
BASELINE = 30.0
BIN = 1.0  # the timeline's bins (s)
NOISE_SDS = 2.5  # warn when the tolerance's margin is fewer SDs of a window's count noise
Z95 = 1.959963984540054


# ---------------------------------------------------------------------------- triggers


@dataclass(frozen=True)
class Trigger:
    """One trigger: its kind (``slow``, ``spike``, ``crash``, ``flush``), target and settings."""

    kind: str
    target: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def factor(self) -> float | None:
        """The magnitude of a ``slow`` or ``spike`` trigger."""
        f = self.params.get("factor")
        return None if f is None else float(f)

    def with_factor(self, factor: float) -> Trigger:
        return Trigger(self.kind, self.target, {**self.params, "factor": float(factor)})

    @property
    def label(self) -> str:
        parts = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.params.items()]
        head = self.kind + (f":{self.target}" if self.target else "")
        return ",".join([head, *parts])

    def apply(self, spec: dict[str, Any], at: float, duration: float) -> dict[str, Any]:
        """``spec`` (a mapping, its own faults left out) with this trigger from ``at`` for
        ``duration`` seconds."""
        out = {**spec, "faults": []}
        if self.kind == "spike":
            wl = dict(out.get("workload") or {})
            prof = wl.get("profile")
            if prof not in (None, "constant", {}, {"constant": True}):
                raise SpecError("a spike trigger sets the workload's profile, and this design has "
                                "one of its own: remove it, or use a slow, crash or flush trigger",
                                ("trigger",))
            wl["profile"] = {"spike": {"at": at, "to": self.params.get("factor", 2.0), "until": at + duration}}
            out["workload"] = wl
            return out
        if self.kind == "flush":
            every = self.params.get("every", 1.0)
            n = max(1, math.ceil(duration / every - 1e-9))
            out["faults"] = [{"kind": "cache_flush", "target": self.target, "at": at + i * every,
                              "name": f"flush:{self.target}"} for i in range(n)]
            return out
        kind = "slow" if self.kind == "slow" else "crash"
        fault = {"kind": kind, "target": self.target, "at": at, "duration": duration,
                 "name": self.label, **self.params}
        out["faults"] = [fault]
        return out


_KEYS = {"slow": ("factor", "add"), "spike": ("factor",), "crash": ("instances", "behaviour"),
         "flush": ("every",)}


def parse_trigger(trigger: str | Mapping[str, Any] | Trigger) -> Trigger:
    """A :class:`Trigger` from ``KIND[:TARGET][,key=value]...`` (the ``--fault`` syntax of the
    command line), a mapping ``{kind: slow, target: db, factor: 3}`` or a Trigger."""
    if isinstance(trigger, Trigger):
        return trigger
    where = ("trigger",)
    if isinstance(trigger, str):
        text = trigger.strip()
        if text.startswith("{"):
            try:
                data = yaml_load(text)
            except SpecError as e:
                raise SpecError(f"not a YAML mapping: {e.message}", where) from None
        else:
            head, _, rest = text.partition(",")
            kind, _, target = head.partition(":")
            data = {"kind": kind.strip()}
            if "=" in target:  # no target: 'spike:factor=2'
                rest, target = f"{target},{rest}", ""
            if target.strip():
                data["target"] = target.strip()
            for part in filter(None, (p.strip() for p in rest.split(","))):
                key, eq, value = part.partition("=")
                if not eq:
                    raise SpecError(f"expected key=value, got {excerpt(part)} (e.g. 'slow:db,factor=3')", where)
                try:
                    data[key.strip()] = yaml_load(value.strip())
                except SpecError as e:
                    raise SpecError(f"{key.strip()}: {e.message}", where) from None
    else:
        data = trigger
    if not isinstance(data, Mapping):
        raise SpecError(f"a trigger is a string like 'slow:db,factor=3' or a mapping, got {excerpt(data)}", where)
    data = dict(data)
    kind = data.pop("kind", None)
    if kind == "cache_flush":
        kind = "flush"
    if kind not in TRIGGERS:
        raise SpecError(f"unknown trigger {excerpt(kind)} (allowed: slow:TARGET,factor=F; spike:factor=F; "
                        "crash:TARGET[,instances=N]; flush:TARGET[,every=1s])", where)
    target = data.pop("target", None)
    if kind == "spike":
        if target is not None:
            raise SpecError("a spike multiplies the arrival rate: it has no target (e.g. 'spike:factor=3')", where)
    elif not isinstance(target, str) or not target:
        raise SpecError(f"a {kind} trigger needs a component, e.g. '{kind}:db'", where)
    for key in ("at", "duration"):
        if key in data:
            raise SpecError(f"'{key}' is set by the study (the trigger starts after the baseline and "
                            "lasts each of --durations)", where)
    unknown = [k for k in data if k not in _KEYS[kind]]
    if unknown:
        raise SpecError(f"unknown setting '{unknown[0]}' for a {kind} trigger (allowed: "
                        f"{', '.join(_KEYS[kind])})", where)
    if kind in ("slow", "spike"):
        f = data.setdefault("factor", 2.0 if kind == "spike" else 1.0)
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not (f > 0 and math.isfinite(f)):
            raise SpecError(f"factor: a number > 0, got {excerpt(f)}", where)
        data["factor"] = float(f)
        if kind == "spike" and data["factor"] <= 1:
            raise SpecError(f"factor: a spike multiplies the rate by more than 1, got {data['factor']:g}", where)
    if kind == "flush":
        try:
            data["every"] = parse_duration(data.get("every", 1.0), allow_zero=False)
        except ValueError as e:
            raise SpecError(f"every: {e}", where) from None
    return Trigger(kind, target, data)


# ---------------------------------------------------------------------------- one run


@dataclass(frozen=True)
class Recovery:
    """The verdict of one run."""

    recovered: bool
    recovery_s: float  # from the trigger's end (nan if it did not recover)
    good_before: bool  # the baseline was in its good state (goodput near the offered rate)
    baseline_goodput: float
    baseline_p99_ms: float
    final_goodput: float  # in the last window of the run
    relapsed: bool


def recovery(end: np.ndarray, ok: np.ndarray, latency: np.ndarray, arrivals: np.ndarray, *,
             baseline: tuple[float, float], trigger_end: float, within: float = WITHIN,
             window: float = WINDOW, tolerance: float = TOLERANCE,
             latency_tolerance: float | None = LATENCY_TOLERANCE) -> Recovery:
    """The recovery test from the requests' completion times ``end``, success flags ``ok``
    and latencies, and the arrival times of every request (finished or not)."""
    b0, b1 = baseline
    e = end[ok]
    lat = latency[ok]
    order = np.argsort(e, kind="stable")
    e, lat = e[order], lat[order]

    def rate_p99(t0: float, t1: float) -> tuple[float, float]:
        i, j = np.searchsorted(e, [t0, t1], side="left")
        n = j - i
        return n / (t1 - t0), (float(np.percentile(lat[i:j], 99)) if n else math.inf)

    g0, p0 = rate_p99(b0, b1)
    offered = float(np.sum((arrivals >= b0) & (arrivals < b1))) / (b1 - b0)
    good_before = g0 >= tolerance * offered if offered > 0 else True

    def meets(t0: float, t1: float) -> bool:
        g, p = rate_p99(t0, t1)
        if g < tolerance * g0:
            return False
        return latency_tolerance is None or p <= latency_tolerance * p0

    step = window / 5
    starts = trigger_end + np.arange(0.0, within + 1e-9, step)
    first = next((float(t) for t in starts if meets(float(t), float(t) + window)), None)
    end_watch = trigger_end + within + window  # (the run goes on one window after `within`)
    final_g, _ = rate_p99(end_watch - window, end_watch)
    # no relapse: from the end of that first window to the end of the run, taken together
    held = first is not None and (first + window >= end_watch - 1e-9 or meets(first + window, end_watch))
    recovered = first is not None and held
    return Recovery(recovered, first - trigger_end if recovered else math.nan, bool(good_before),
                    g0, p0 * 1e3, final_g, first is not None and not held)


def _run(task: Task) -> dict[str, Any]:
    """One replication of one trigger (a :class:`Task` runner: ships to processes and Dask)."""
    tags = task.tags
    row: dict[str, Any] = {k: v for k, v in tags.items() if k != "verdict"}
    row.update(replication=task.replication, seed=task.seed, error=None)
    v = tags["verdict"]
    try:
        arch = Architecture.from_dict(task.spec, base_dir=Path(task.base_dir) if task.base_dir else None)
        r = simulate(arch, load=task.load, duration=task.duration, warmup=task.warmup,
                     seed=replication_seed(task.seed, task.replication), progress=False, hops=False)
    except SimarchError as e:
        row["error"] = str(e)
        return row
    ok = r.status == 0
    arrivals = np.concatenate([r.start, r.pending_start])
    rec = recovery(r.end, ok, r.latency, arrivals, baseline=(r.warmup, v["at"]),
                   trigger_end=v["at"] + v["length"], within=v["within"], window=v["window"],
                   tolerance=v["tolerance"], latency_tolerance=v["latency_tolerance"])
    row.update(recovered=rec.recovered, recovery_s=rec.recovery_s, good_before=rec.good_before,
               relapsed=rec.relapsed, baseline_goodput=rec.baseline_goodput,
               baseline_p99_ms=rec.baseline_p99_ms, final_goodput=rec.final_goodput)
    edges = np.arange(r.warmup, r.warmup + r.duration + 1e-9, BIN)
    row["t_s"] = (edges[:-1] - v["at"]).tolist()
    row["goodput_rps"] = (np.histogram(r.end[ok], edges)[0] / BIN).tolist()
    row["offered_rps"] = (np.histogram(arrivals, edges)[0] / BIN).tolist()
    return row


# ---------------------------------------------------------------------------- the study


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a share ``k / n``."""
    if n == 0:
        return math.nan, math.nan
    z = Z95 if confidence == 0.95 else float(t_quantile(0.5 + confidence / 2, 10_000))
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def _values(text: Any, what: str, parse) -> list[float]:
    if isinstance(text, str):
        items: list[Any] = [x.strip() for x in text.split(",") if x.strip()]
    elif isinstance(text, (int, float)) and not isinstance(text, bool):
        items = [text]
    else:
        try:
            items = list(text)
        except TypeError:
            raise SpecError(f"a list of values, got {excerpt(text)}", (what,)) from None
    if not items:
        raise SpecError("give at least one value", (what,))
    out = []
    for x in items:
        try:
            out.append(float(parse(x)))
        except (ValueError, TypeError) as e:
            raise SpecError(str(e), (what,)) from None
    return sorted(set(out))


def _duration(x: Any) -> float:
    return parse_duration(x, allow_zero=False)


def _factor(x: Any) -> float:
    f = parse_multiplier(x)
    if not f > 0:
        raise ValueError(f"a factor > 0, got {excerpt(x)}")
    return f


def _number(value: Any, name: str, *, low: float = 0.0, high: float = math.inf, duration: bool = False) -> float:
    try:
        v = parse_duration(value, allow_zero=low == 0.0) if duration else value
    except ValueError as e:
        raise SpecError(str(e), (name,)) from None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (low < v <= high) or not math.isfinite(v):
        raise SpecError(f"a number in ({low:g}, {high:g}], got {excerpt(value)}", (name,))
    return float(v)


@dataclass
class Stability:
    """The outcome of :func:`stability`.

    ``table``: per design and trigger value, the replications, how many recovered, the share
    with its 95% Wilson interval, and the mean recovery time with its 95% t interval (over the
    replications that recovered). ``boundary``: per design, the largest value that recovers
    (``recovers_up_to``), the smallest that does not (``tips_from``), and the fluid model's
    prediction where it applies. ``runs``: one row per replication. ``timelines``: goodput
    and offered rate per second of every run, time counted from the trigger's start.
    """

    trigger: Trigger
    vary: str  # "duration" or "factor"
    table: pd.DataFrame
    boundary: pd.DataFrame
    runs: pd.DataFrame
    timelines: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        s = self.settings
        unit = "s" if self.vary == "duration" else "x"
        lines = [f"Stability after {self.trigger.label}: recovered = goodput >= {s['tolerance']:.0%} of "
                 f"the baseline" + (f" and p99 <= {s['latency_tolerance']:g}x the baseline's"
                                    if s["latency_tolerance"] is not None else "")
                 + f", in a {s['window']:g} s window starting within {s['within']:g} s of the trigger's end"]
        for design, df in self.table.groupby("design", sort=False):
            lines.append(f"\n{design}")
            lines.append(f"  {self.vary:>9}  recovered          share (95% CI)     recovery time (95% CI)")
            for _, r in df.iterrows():
                rec = ("does not recover" if r.recovered == 0 else
                       f"{r.mean_recovery_s:.1f} s" + (f" ({r.recovery_lo:.1f}-{r.recovery_hi:.1f})"
                                                        if math.isfinite(r.recovery_lo) else ""))
                mark = " *" if r.bisection else ""
                bad = f"  [{int(r.bad_before)} not in the good state before]" if r.bad_before else ""
                lines.append(f"  {r.value:>8.4g}{unit}  {int(r.recovered):>3}/{int(r.replications):<3}"
                             f"        {r.share:>4.0%} ({r.share_lo:.0%}-{r.share_hi:.0%})      {rec}{mark}{bad}")
        lines.append("\nBoundary (the smallest trigger that tips the design; * = bisection points):")
        for _, b in self.boundary.iterrows():
            lines.append(f"  {b.design}: {b.summary}")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return f"<pre>{self.__str__()}</pre>"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "stability", "version": __version__, "trigger": self.trigger.label, "vary": self.vary,
                "settings": self.settings, "warnings": self.warnings,
                "table": json.loads(self.table.to_json(orient="records")),
                "boundary": json.loads(self.boundary.to_json(orient="records"))}

    def save(self, directory: str | Path) -> Path:
        """Write ``stability.csv`` (the table), ``boundary.csv``, ``runs.parquet``,
        ``timelines.parquet``, ``timeline.png`` and a manifest, each atomically."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / "stability.csv", lambda p: self.table.to_csv(p, index=False))
        atomic_write(out / "boundary.csv", lambda p: self.boundary.to_csv(p, index=False))
        atomic_write(out / "runs.parquet", lambda p: self.runs.to_parquet(p, index=False))
        atomic_write(out / "timelines.parquet", lambda p: self.timelines.to_parquet(p, index=False))
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        axes = self.plot()
        fig = np.atleast_1d(axes)[0].figure
        atomic_write(out / "timeline.png", lambda p: fig.savefig(p, format="png", dpi=110))
        plt.close(fig)
        atomic_write(out / "simarch.json", lambda p: Path(p).write_text(json.dumps(self.to_dict(), indent=2)))
        return out

    def plot(self, axes: Any = None, **kwargs: Any) -> Any:
        """The timeline per design: :func:`simarch.plots.stability_timeline`."""
        return plots.stability_timeline(self, axes=axes, **kwargs)


def _summarise(runs: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    rows = []
    for (design, value), df in runs.groupby(["design", "value"], sort=False):
        ok = df[df["error"].isna()]
        n = len(ok)
        k = int(ok["recovered"].sum()) if n else 0
        lo, hi = wilson(k, n)
        m, rlo, rhi, _ = mean_ci(ok.loc[ok["recovered"].astype(bool), "recovery_s"]) if k else (math.nan,) * 4
        rows.append({"design": design, "value": float(value), "replications": n, "recovered": k,
                     "share": k / n if n else math.nan, "share_lo": lo, "share_hi": hi,
                     "mean_recovery_s": m, "recovery_lo": max(rlo, 0.0) if math.isfinite(rlo) else rlo,
                     "recovery_hi": rhi,
                     "bad_before": int((~ok["good_before"].astype(bool)).sum()) if n else 0,
                     "errors": int(df["error"].notna().sum()), "bisection": bool(df["bisection"].iloc[0])})
    out = pd.DataFrame(rows)
    order = {n: i for i, n in enumerate(labels)}  # designs in the order given
    return out.sort_values(["design", "value"], key=lambda s: s.map(order) if s.name == "design" else s,
                           kind="stable").reset_index(drop=True)


def _bracket(table: pd.DataFrame, low: float) -> tuple[float, float]:
    """``(largest value that recovers, smallest that does not)`` of one design; ``low`` stands
    for no trigger at all (taken to recover), ``inf`` when every value recovers."""
    tips = table.loc[table["share"] < 0.5, "value"]
    hi = float(tips.min()) if len(tips) else math.inf
    rec = table.loc[(table["share"] >= 0.5) & (table["value"] < hi), "value"]
    lo = float(rec.max()) if len(rec) else low
    return lo, hi


def stability(
    specs: Any,
    trigger: str | Mapping[str, Any] | Trigger,
    *,
    durations: Any = None,
    factors: Any = None,
    replications: int = 5,
    within: float | str = WITHIN,
    tolerance: float = TOLERANCE,
    latency_tolerance: float | None = LATENCY_TOLERANCE,
    window: float | str = WINDOW,
    baseline: float | str = BASELINE,
    warmup: float | str | None = None,
    load: float | str = 1.0,
    bisect: bool = True,
    resolution: float | str | None = None,
    seed: int = 1,
    executor: Any = "processes",
    workers: int | None = None,
    progress: bool = True,
) -> Stability:
    """Apply ``trigger`` to each design of ``specs`` (a design, a path, a mapping, or a list
    of them) and report whether it recovers, and where its boundary lies.

    ``trigger``: ``"slow:db,factor=3"``, ``"spike:factor=2"``, ``"crash:db,instances=1"``,
    ``"flush:cache"`` or the same as a mapping (see the module's docstring). The trigger
    varies over ``durations`` (seconds or ``"5s"``; a list or a comma-separated string;
    default 1, 2, 5, 10 and 20 s) or, with ``factors`` (for ``slow`` and ``spike``), over its
    factor at the one duration given (default 5 s).
    Each value runs ``replications`` independent replications: a warm-up (default: the
    spec's), a ``baseline`` window (30 s) that sets the levels to recover to, the trigger,
    then ``within`` (60 s) plus one ``window`` (5 s). A run recovers when a ``window`` that
    starts within ``within`` of the trigger's end has goodput >= ``tolerance`` x the
    baseline's and p99 <= ``latency_tolerance`` x the baseline's (``None``: goodput only),
    and the rest of the run, taken together, too. With ``bisect`` the boundary between the largest value
    that recovers (in at least half the replications) and the smallest that does not is
    bisected until it is at most ``resolution`` wide (default: a tenth of the smallest value
    that tips). ``executor`` and ``workers`` as in :func:`simarch.compare`.
    """
    trig = parse_trigger(trigger)
    if isinstance(specs, (list, tuple)):
        archs = [load_arch(s) for s in specs]
    else:
        archs = [load_arch(specs)]
    if not archs:
        raise SpecError("give at least one design", ("specs",))
    reps = positive_int(replications, "replications")
    within_s = _number(within, "within", duration=True)
    window_s = _number(window, "window", duration=True)
    base_s = _number(baseline, "baseline", duration=True)
    tol = _number(tolerance, "tolerance", high=1.0)
    lat_tol = None if latency_tolerance is None else _number(latency_tolerance, "latency_tolerance")
    try:
        mult = parse_multiplier(load)
    except ValueError as e:
        raise SpecError(str(e), ("load",)) from None
    if factors is not None:
        if trig.kind not in ("slow", "spike"):
            raise SpecError(f"a {trig.kind} trigger has no factor to vary: give durations only", ("factors",))
        values = _values(factors, "factors", _factor)
        fixed = _values(5.0 if durations is None else durations, "durations", _duration)
        if len(fixed) != 1:
            raise SpecError("with factors, give one duration (the trigger's length at every factor)",
                            ("durations",))
        vary, fixed_d = "factor", fixed[0]
        low = 1.0
    else:
        values = _values(DEFAULT_DURATIONS if durations is None else durations, "durations", _duration)
        vary, fixed_d = "duration", 0.0
        low = 0.0
    try:
        warm_s = None if warmup is None else parse_duration(warmup)
    except ValueError as e:
        raise SpecError(str(e), ("warmup",)) from None
    res = None if resolution is None else _number(resolution, "resolution", duration=vary == "duration")
    labels = _labels(archs)
    settings = {"tolerance": tol, "latency_tolerance": lat_tol, "within": within_s, "window": window_s,
                "baseline": base_s, "load": mult, "replications": reps, "seed": int(seed),
                "durations": values if vary == "duration" else [fixed_d]}

    def tasks_for(points: list[tuple[int, float]], bisection: bool) -> list[Task]:
        out = []
        for i, value in points:
            arch = archs[i]
            warm = arch.spec.simulation.warmup if warmup is None else warm_s
            length = value if vary == "duration" else fixed_d
            t = trig if vary == "duration" else trig.with_factor(value)
            at = warm + base_s
            spec = t.apply(arch.to_dict(), at, length)
            try:
                Architecture.from_dict(spec, base_dir=arch.base_dir)  # a bad trigger: one error now
            except SpecError as e:
                raise SpecError(f"{t.label}: {e.message}", ("trigger",)) from None
            verdict = {"at": at, "length": length, "within": within_s, "window": window_s,
                       "tolerance": tol, "latency_tolerance": lat_tol}
            for r in range(reps):
                out.append(Task(spec, str(arch.base_dir) if arch.base_dir else None, mult,
                                base_s + length + within_s + window_s, warm, int(seed), r,
                                tags={"design": labels[i], "value": value, "bisection": bisection,
                                      "verdict": verdict}, runner=_run))
        return out

    grid = [(i, v) for i in range(len(archs)) for v in values]
    check_runs(len(grid) * reps, "stability study")
    rows = run_tasks(tasks_for(grid, False), executor=executor, workers=workers, progress=progress,
                     desc="stability")
    runs = pd.DataFrame(rows)
    table = _summarise(runs, labels)
    if bisect:
        for _ in range(12):
            points = []
            for i, name in enumerate(labels):
                lo, hi = _bracket(table[table["design"] == name], low)
                if not math.isfinite(hi):
                    continue
                step = res if res is not None else hi / 10
                if hi - lo > step:
                    points.append((i, (lo + hi) / 2))
            if not points:
                break
            more = run_tasks(tasks_for(points, True), executor=executor, workers=workers,
                             progress=progress, desc="stability (bisection)")
            runs = pd.concat([runs, pd.DataFrame(more)], ignore_index=True)
            table = _summarise(runs, labels)
    boundary = _boundaries(archs, labels, table, trig, vary, fixed_d, low, mult)
    series = []
    for _, r in runs.iterrows():
        if r.get("error") is None or (isinstance(r.get("error"), float) and math.isnan(r["error"])):
            if isinstance(r.get("t_s"), list):
                series.append(pd.DataFrame({"design": r["design"], "value": r["value"],
                                            "replication": r["replication"], "t_s": r["t_s"],
                                            "goodput_rps": r["goodput_rps"], "offered_rps": r["offered_rps"]}))
    timelines = pd.concat(series, ignore_index=True) if series else pd.DataFrame(
        columns=["design", "value", "replication", "t_s", "goodput_rps", "offered_rps"])
    runs = runs.drop(columns=[c for c in ("t_s", "goodput_rps", "offered_rps") if c in runs])
    warnings = []
    if "baseline_goodput" in runs and runs["baseline_goodput"].notna().any():
        per_window = float(runs["baseline_goodput"].median()) * window_s
        if (1 - tol) * math.sqrt(max(per_window, 1.0)) < NOISE_SDS:
            warnings.append(f"a {window_s:g} s window holds about {per_window:.0f} successful requests, so "
                            f"goodput is measured to about {1 / math.sqrt(max(per_window, 1)):.0%}: a "
                            f"tolerance of {tol:.0%} may call noise a failure to recover; use a longer "
                            "window or a lower tolerance")
    errors = runs["error"].dropna() if "error" in runs else []
    if len(errors):
        warnings.append(f"{len(errors)} run(s) failed: {errors.iloc[0]}")
    return Stability(trig, vary, table, boundary, runs, timelines, settings, warnings)


def _labels(archs: Sequence[Architecture]) -> list[str]:
    out: list[str] = []
    for a in archs:
        name, k = a.name, 2
        while name in out:
            name, k = f"{a.name}#{k}", k + 1
        out.append(name)
    return out


def _boundaries(archs: Sequence[Architecture], labels: list[str], table: pd.DataFrame, trig: Trigger,
                vary: str, fixed_d: float, low: float, load: float) -> pd.DataFrame:
    rows = []
    unit = "s" if vary == "duration" else "x"
    for arch, name in zip(archs, labels, strict=True):
        t = table[table["design"] == name]
        lo, hi = _bracket(t, low)
        bad_before = int(t["bad_before"].sum())
        if not math.isfinite(hi):
            summary = f"recovers from every {vary} tried (up to {t['value'].max():g}{unit})"
        elif lo <= low and not (t["value"] <= low).any():
            summary = (f"tips already at the smallest {vary} tried, {hi:g}{unit} (boundary "
                       f"below {hi:g}{unit})")
        else:
            summary = f"recovers up to {lo:g}{unit}, tips from {hi:g}{unit}: boundary in ({lo:g}, {hi:g}]{unit}"
        predicted, note = _predicted(arch, trig, vary, load)
        if math.isfinite(predicted):
            summary += f"; the fluid model predicts {predicted:.3g}{unit}"
        elif note:
            summary += f"; fluid model: {note}"
        if bad_before:
            summary += (f"; {bad_before} replication(s) were not in their good state before the "
                        "trigger (the design can fail with no trigger)")
        rows.append({"design": name, "trigger": trig.label, "vary": vary, "recovers_up_to": lo,
                     "tips_from": hi, "predicted": predicted, "fluid": note, "summary": summary})
    return pd.DataFrame(rows)


def _predicted(arch: Architecture, trig: Trigger, vary: str, load: float) -> tuple[float, str]:
    """The fluid model's boundary (duration) for a slow or spike trigger on the retried call's
    callee, and its verdict; ``(nan, "")`` where it does not apply."""
    if vary != "duration" or trig.kind not in ("slow", "spike"):
        return math.nan, ""
    try:
        loop = retry_loop(arch, load)
    except SpecError:
        return math.nan, ""
    if trig.kind == "slow" and trig.target != loop.callee:
        return math.nan, ""
    if not loop.bistable:
        return math.inf, loop.verdict()
    kind = trig.kind
    return fluid_boundary(loop, kind=kind, factor=trig.factor or 1.0), loop.verdict()

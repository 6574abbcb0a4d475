"""Compare designs as load grows: replications, confidence intervals, paired differences
with common random numbers, and the knee (the highest load that still meets the SLO).
"""

from __future__ import annotations

import html
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
from ..analysis.capacity import capacity_report
from ..errors import SimarchError, SpecError, argument, excerpt
from ..model.architecture import Architecture
from ..model.architecture import load as load_arch
from ..model.cost import per_million
from ..model.units import parse_duration
from ..results.io import atomic_write
from ..results.slo import margin, meets
from ..results.text import html_table, missing, styled_html, usd
from ..run.early_stop import RunStopped
from .experiment import METRICS, Task, check_runs, mean_ci, parse_loads, positive_int, run_tasks

TABLE_METRICS = ("p50_ms", "p99_ms", "p999_ms", "throughput_rps", "availability")


def _labels(archs: Sequence[Architecture]) -> list[str]:
    out: list[str] = []
    for a in archs:
        name = a.name
        k = 2
        while name in out:
            name = f"{a.name}#{k}"
            k += 1
        out.append(name)
    return out


def _meets(slo: dict[str, float] | None, row: dict[str, Any] | pd.Series) -> bool | None:
    """Whether a set of metrics meets an SLO (latency targets in seconds): the one judge."""
    return meets(slo, row)


def _slo_of(arch: Architecture) -> dict[str, float] | None:
    slo = arch.spec.slo
    return None if slo is None else {k: v for k, v in slo.model_dump().items() if v is not None}


@dataclass
class Comparison:
    """The outcome of :func:`compare`.

    * ``runs``: one row per design, load and replication (all metrics);
    * ``table``: tidy mean and confidence interval per design, load and metric;
    * ``diff``: paired differences of each design against the first, with their interval;
    * ``knee``: per design, the highest load multiplier that meets its SLO, with its interval;
    * ``slo``: per design and load, the verdict on the means and the share of replications
      that met the SLO;
    * ``cost``: per design and load, the monthly cost in USD (mean over replications; queues at
      their simulated message rate), its difference against the first design's at the same
      load, and the cost per million successful requests; empty when no design has a price.
    * ``attribution`` (with ``compare(..., attribution=True)``): per design, load, band
      (``median``, ``p99``), component and phase, the share of the band's time (mean and
      interval over the replications) and the band's mean latency; see
      :meth:`simarch.Result.attribution`.
    """

    designs: list[str]
    loads: list[float]
    replications: int
    seed: int
    confidence: float
    runs: pd.DataFrame
    table: pd.DataFrame
    diff: pd.DataFrame
    slo: pd.DataFrame
    knee: pd.DataFrame
    slos: dict[str, dict[str, float] | None] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    cost: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COST_COLUMNS))
    attribution: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=ATTRIBUTION_COLUMNS))

    def metric(self, name: str = "p99_ms") -> pd.DataFrame:
        """Wide view of one metric: rows load, columns (design, mean/ci_low/ci_high)."""
        t = self.table[self.table.metric == name]
        return t.pivot(index="load", columns="design", values=["mean", "ci_low", "ci_high"]).swaplevel(
            axis=1).sort_index(axis=1)

    def plot_latency(self, metric: str | Sequence[str] = "p99_ms", ax=None):
        """Latency percentile(s) against load, every design on one set of axes, with the
        SLO target the designs share and each design's knee (when it was searched for)."""
        names = [metric] if isinstance(metric, str) else list(metric)
        # the SLO line of the first metric that has a target (p99 before p50 if both do)
        slo = next((v for v in (self._slo_value(m.removesuffix("_ms")) for m in names) if v is not None),
                   None)
        return plots.percentiles_vs_load(self.table, ax=ax, metric=metric,
                                         slo=None if slo is None else slo * 1e3, knee=self.knee)

    def plot_availability(self, ax=None):
        """Availability against load, every design on one set of axes, with the SLO target
        the designs share and each design's knee."""
        return plots.availability_vs_load(self.table, ax=ax, slo=self._slo_value("availability"),
                                          knee=self.knee)

    def _slo_value(self, key: str) -> float | None:
        vals = {s.get(key) for s in self.slos.values() if s and s.get(key) is not None}
        return vals.pop() if len(vals) == 1 else None

    def __str__(self) -> str:
        return format_comparison(self)

    def _repr_html_(self) -> str:
        """The comparison in a notebook: mean [CI] per design and load, and the knee."""
        pct = int(round(self.confidence * 100))
        parts = [f"<p><strong>Comparison</strong> of {html.escape(', '.join(self.designs))}: "
                 f"{self.replications} replications per point, {pct}% t-intervals</p>",
                 styled_html(summary_table(self), index=False)]
        if len(self.cost):
            parts.append(styled_html(cost_summary_table(self), index=False,
                                     caption="Cost (USD a month, on-demand list prices)"))
        if len(self.knee):
            parts.append(html_table(self.knee.set_index("design"), KNEE_FORMATS, "design",
                                    caption="Knee: the highest load multiplier that still meets the SLO"))
        parts += [f"<p>warning: {html.escape(w)}</p>" for w in self.warnings]
        return "<div>\n" + "\n".join(parts) + "\n</div>"

    def to_dict(self) -> dict[str, Any]:
        out = {
            "type": "comparison",
            "designs": self.designs,
            "loads": self.loads,
            "replications": self.replications,
            "seed": self.seed,
            "confidence": self.confidence,
            "settings": self.settings,
            "slos": self.slos,
            "warnings": self.warnings,
            "simarch_version": __version__,
        }
        if len(self.cost):  # only when a design has prices: other manifests stay as they were
            out["cost"] = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                            for k, v in r.items()} for r in self.cost.to_dict("records")]
        return out

    def save(self, directory: str | Path) -> Path:
        """Write the tables as Parquet and a manifest (atomically); ``simarch compare
        --out`` adds the two plots as PNG images."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        for name in ("runs", "table", "diff", "slo", "knee", *(("cost",) if len(self.cost) else ()),
                     *(("attribution",) if len(self.attribution) else ())):
            df = getattr(self, name)
            atomic_write(out / f"{name}.parquet", lambda p, df=df: df.to_parquet(p, index=False))
        atomic_write(out / "simarch.json",
                lambda p: Path(p).write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n"))
        return out

    @classmethod
    def load(cls, directory: str | Path) -> Comparison:
        d = Path(directory)
        meta = json.loads((d / "simarch.json").read_text())
        tables = {n: pd.read_parquet(d / f"{n}.parquet") for n in ("runs", "table", "diff", "slo", "knee")}
        for extra in ("cost", "attribution"):
            if (d / f"{extra}.parquet").exists():
                tables[extra] = pd.read_parquet(d / f"{extra}.parquet")
        return cls(meta["designs"], meta["loads"], meta["replications"], meta["seed"],
                   meta["confidence"], slos=meta.get("slos", {}), settings=meta.get("settings", {}),
                   warnings=meta.get("warnings", []), **tables)


def compare(
    designs: Sequence[Architecture | str | Path | dict],
    loads: Sequence[float | str] = (1, 2, 5, 10),
    replications: int = 5,
    seed: int = 1,
    *,
    duration: str | float | None = None,
    warmup: str | float | None = None,
    knee: bool = True,
    knee_steps: int = 5,
    confidence: float = 0.95,
    attribution: bool = False,
    executor: str | Any = "processes",
    workers: int | None = None,
    progress: bool = True,
) -> Comparison:
    """Simulate every design at every load multiplier, ``replications`` times each.

    Replication ``r`` uses the seed ``SeedSequence(seed, spawn_key=(r,))`` for every design
    and load (common random numbers): designs that share a workload see the same arrivals,
    and components with the same name draw the same service times, so the paired
    differences are measured on the same traffic. With ``knee``, a bisection per design and replication finds the
    highest load that still meets the design's SLO (``knee_steps`` halvings of the bracket
    found on the ``loads`` grid). With ``attribution``, each run records its hops and
    reports where the time of its median and p99 bands goes (``Comparison.attribution``).
    """
    if isinstance(designs, (str, Path, Mapping, Architecture)) or not designs:
        raise SpecError("compare takes a list of one or more designs", ("designs",))
    archs = [load_arch(d) for d in designs]
    labels = _labels(archs)
    mults = parse_loads(loads)
    replications = positive_int(replications, "replications")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise SpecError(f"a confidence level between 0 and 1 such as 0.95, got {excerpt(confidence)}",
                        ("confidence",))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SpecError(f"a seed is a whole number >= 0, got {excerpt(seed)}", ("seed",))
    check_runs(len(archs) * len(mults) * replications * (1 + (knee_steps + KNEE_EXTRA_RUNS if knee else 0)),
               "comparison")
    with argument("duration"):
        dur = None if duration is None else parse_duration(duration, allow_zero=False)
    with argument("warmup"):
        warm = None if warmup is None else parse_duration(warmup)

    def task(i: int, load: float, rep: int, **tags: Any) -> Task:
        a = archs[i]
        return Task(a.to_dict(), str(a.base_dir) if a.base_dir else None, load, dur, warm, seed, rep,
                    {"design": labels[i], **tags})

    extra = {"attribution": True} if attribution else {}
    tasks = [task(i, x, r, **extra) for i in range(len(archs)) for x in mults for r in range(replications)]
    rows = run_tasks(tasks, executor=executor, workers=workers, progress=progress, desc="compare")
    runs = pd.DataFrame(rows)
    slos = {labels[i]: _slo_of(a) for i, a in enumerate(archs)}
    errors = runs[runs["error"].notna()]
    if len(errors):
        first = errors.iloc[0]
        raise SimarchError(f"{len(errors)} run(s) failed, e.g. {first['design']} at {first['load']}x: "
                           f"{first['error']}")
    runs["slo_met"] = [_meets(slos[d], row) for d, (_, row) in zip(runs["design"], runs.iterrows(), strict=True)]

    # ---- means and intervals
    trows = []
    metrics = [*METRICS, *(["stale_reads"] if "stale_reads" in runs else [])]
    if "stale_reads" in runs:  # a design none of whose copies can lag reads nothing stale
        runs["stale_reads"] = runs["stale_reads"].fillna(0.0)
    for (design, load), g in runs.groupby(["design", "load"], sort=False):
        for m in metrics:
            mean, lo, hi, sd = mean_ci(g[m].to_numpy(), confidence)
            # the interval cannot leave the metric's range (availability in [0, 1], others >= 0)
            lo = max(lo, 0.0)
            if m in ("availability", "stale_reads"):
                hi = min(hi, 1.0)
            trows.append({"design": design, "load": load, "metric": m, "mean": mean, "ci_low": lo,
                          "ci_high": hi, "sd": sd, "replications": int(g[m].notna().sum())})
    table = pd.DataFrame(trows)

    # ---- SLO verdicts
    srows = []
    for (design, load), g in runs.groupby(["design", "load"], sort=False):
        means = table[(table.design == design) & (table.load == load)].set_index("metric")["mean"]
        met = _meets(slos[design], means)
        share = float(np.mean([bool(x) for x in g["slo_met"]])) if slos[design] else math.nan
        srows.append({"design": design, "load": load, "slo_met": met, "met_share": share})
    slo_table = pd.DataFrame(srows)

    # ---- paired differences against the first design
    drows = []
    base = labels[0]
    for other in labels[1:]:
        for load in mults:
            a = runs[(runs.design == base) & (runs.load == load)].set_index("replication")
            b = runs[(runs.design == other) & (runs.load == load)].set_index("replication")
            for m in metrics:
                d = (b[m] - a[m]).to_numpy()
                mean, lo, hi, sd = mean_ci(d, confidence)
                drows.append({"design": other, "baseline": base, "load": load, "metric": m,
                              "mean_diff": mean, "ci_low": lo, "ci_high": hi, "sd": sd})
    diff = pd.DataFrame(drows, columns=["design", "baseline", "load", "metric", "mean_diff", "ci_low",
                                        "ci_high", "sd"])

    # ---- the knee
    krows = []
    if knee:
        krows = _knees(archs, labels, slos, slo_table, runs, mults, replications, task, knee_steps,
                       confidence, executor, workers, progress)
    knee_table = pd.DataFrame(krows, columns=["design", "knee", "ci_low", "ci_high", "resolution",
                                              "bracket_low", "bracket_high", "censored", "note"])
    settings = {"duration": dur, "warmup": warm, "knee_steps": knee_steps}
    warnings = []
    workloads = {labels[i]: a.to_dict().get("workload") for i, a in enumerate(archs)}
    if len({json.dumps(w, sort_keys=True, default=str) for w in workloads.values()}) > 1:
        warnings.append("the designs have different workloads: a load multiplier scales each "
                        "design's own workload, so the same 'load' is different traffic and the "
                        "differences are not on common arrivals; give them the same workload "
                        "(e.g. with_changes({'workload': ...})) to compare like with like")
    if "warnings" in runs:
        for (design, load), g in runs.groupby(["design", "load"], sort=False):
            warned = [w for w in g["warnings"] if isinstance(w, str) and w]
            if warned:
                warnings.append(f"{design} at {load:g}x: {len(warned)} of {len(g)} runs warned, e.g. "
                                f"{warned[0].split(' | ')[0]}")
    costs = cost_table(runs, labels, mults)
    if len(costs):
        unpriced = [d for d in labels if costs[costs["design"] == d]["monthly_usd"].isna().all()]
        if unpriced:
            warnings.append(f"{', '.join(unpriced)} {'has' if len(unpriced) == 1 else 'have'} no component "
                            "with a price (a cost or an instance_type): its cost shows as '-'")
    if len({json.dumps(s_, sort_keys=True) for s_ in slos.values()}) > 1:
        warnings.append("the designs have different SLOs: their verdicts and knees are judged "
                        "against different targets")
    att = attribution_table(runs, confidence) if attribution else pd.DataFrame(columns=ATTRIBUTION_COLUMNS)
    return Comparison(labels, mults, replications, seed, confidence, runs, table, diff, slo_table,
                      knee_table, slos, settings, warnings, costs, att)


ATTRIBUTION_COLUMNS = ["design", "load", "band", "component", "phase", "share", "ci_low", "ci_high",
                       "band_mean_ms"]


def attribution_table(runs: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """Per design, load, band, component and phase: the mean share of the band's time over
    the replications (a replication where it took no time counts as 0), with its interval."""
    cols = [c for c in runs.columns if c.startswith("att.")]
    rows = []
    for (design, load), g in runs.groupby(["design", "load"], sort=False):
        for c in cols:
            x = g[c].fillna(0.0).to_numpy(dtype=float)
            if not x.any():
                continue
            _, band, comp, phase = c.split(".", 3)
            mean, lo, hi, _sd = mean_ci(x, confidence)
            ms = g.get(f"att_ms.{band}")
            rows.append({"design": design, "load": load, "band": band, "component": comp, "phase": phase,
                         "share": mean, "ci_low": max(lo, 0.0), "ci_high": min(hi, 1.0),
                         "band_mean_ms": float(ms.mean()) if ms is not None else math.nan})
    return pd.DataFrame(rows, columns=ATTRIBUTION_COLUMNS)


def format_attribution(cmp, band: str = "p99", top: int = 4) -> list[str]:
    """The comparison's "where the p99 goes" section: per load, the largest shares of the
    band's time, design by design (empty without attribution)."""
    att = getattr(cmp, "attribution", None)
    if att is None or not len(att):
        return []
    pct = int(round(cmp.confidence * 100))
    lines = ["", f"Where the {band} goes: share of the {band} band's time (p99 to p99.9) on the critical "
                 f"path, mean [{pct}% CI] over replications"]
    for load in cmp.loads:
        a = att[(att["band"] == band) & (att["load"] == load)]
        if not len(a):
            continue
        best = a.groupby(["component", "phase"])["share"].max().sort_values(ascending=False)
        keys = list(best.index[:top])
        table = {}
        for design in cmp.designs:
            d = a[a["design"] == design].set_index(["component", "phase"])
            col = {}
            for k in keys:
                if k in d.index:
                    r = d.loc[k]
                    col[f"{k[0]} {k[1]}"] = f"{r['share']:.0%} [{r['ci_low']:.0%}, {r['ci_high']:.0%}]"
                else:
                    col[f"{k[0]} {k[1]}"] = "-"
            ms = a[a["design"] == design]["band_mean_ms"]
            col["band mean (ms)"] = f"{ms.iloc[0]:.3g}" if len(ms) else "-"
            table[design] = col
        lines += [f"  at {load:g}x", pd.DataFrame(table).to_string()]
    return lines


COST_COLUMNS = ["design", "load", "monthly_usd", "baseline", "diff_usd", "diff_pct", "per_million_usd"]


def cost_table(runs: pd.DataFrame, labels: Sequence[str], loads: Sequence[float]) -> pd.DataFrame:
    """Per design and load: the mean monthly cost of its runs (USD; ``cost_usd_month``, which
    a run of a design with prices has), the difference against the first design's at the same
    load (USD and %), and USD per million successful requests at the mean throughput. Empty
    when no design has a price."""
    if "cost_usd_month" not in runs or not runs["cost_usd_month"].notna().any():
        return pd.DataFrame(columns=COST_COLUMNS)
    rows = []
    for design in labels:
        for load in loads:
            g = runs[(runs["design"] == design) & (runs["load"] == load)]
            c = g["cost_usd_month"].dropna()
            monthly = float(c.mean()) if len(c) else math.nan
            rps = float(g["throughput_rps"].mean()) if len(g) else math.nan
            rows.append({"design": design, "load": load, "monthly_usd": monthly, "baseline": labels[0],
                         "per_million_usd": per_million(monthly, rps)})
    df = pd.DataFrame(rows)
    base = df[df["design"] == labels[0]].set_index("load")["monthly_usd"]
    df["diff_usd"] = df["monthly_usd"] - df["load"].map(base)
    df["diff_pct"] = 100 * df["diff_usd"] / df["load"].map(base).where(lambda b: b > 0)
    return df[COST_COLUMNS]


#: runs one replication's knee search may take beyond ``knee_steps``, at most
KNEE_EXTRA_RUNS = 2


@dataclass
class _KneeSearch:
    """The knee search of one design in one replication, on the lattice ``lo + k * res``
    (``k = 0 .. cells``) that a bisection of ``knee_steps`` halvings of ``[lo, hi]`` would
    visit. ``a`` is the highest point known to meet the SLO, ``b`` the lowest known to miss
    it above ``a`` (``lo`` and ``hi`` as the grid found them); the search ends when they are
    neighbours, with the knee at ``a``. Each run goes where the SLO margins of the runs at
    ``a`` and ``b`` (or the static saturation estimate, where the margin of a latency target is
    -1) put the crossing, kept within the range from which the runs left can still finish a
    bisection; so the search takes at most ``runs_left`` runs, usually two or three, and
    when meeting the SLO is monotone in the load it ends at the same point as the bisection."""

    lo: float
    hi: float
    cells: int
    saturation: float  # static estimate of the load multiplier that saturates the design
    runs_left: int
    a: int = 0
    b: int = -1
    margin_a: float | None = None
    margin_b: float | None = None

    def __post_init__(self) -> None:
        if self.b < 0:
            self.b = self.cells
        self.res = (self.hi - self.lo) / self.cells

    def load(self, k: int) -> float:
        """Point ``k``, computed as the bisection computes it (the midpoint of the two points
        it lies between), so that a run here is the bisection's run to the last bit."""
        if k <= 0:
            return self.lo
        if k >= self.cells:
            return self.hi
        half = k & -k
        return (self.load(k - half) + self.load(k + half)) / 2

    @property
    def done(self) -> bool:
        return self.b - self.a <= 1 or self.runs_left <= 0

    def next_point(self) -> int:
        half = 2 ** (self.runs_left - 1)
        low, high = max(self.a + 1, self.b - half), min(self.b - 1, self.a + half)
        k = self._guess()
        return min(max((self.a + self.b) // 2 if k is None else k, low), high)

    def _guess(self) -> int | None:
        """The lattice point nearest where the SLO margin, interpolated, crosses zero."""
        ma = self.margin_a
        if ma is None or not (0 <= ma < math.inf):
            return None
        xa, xb, sat = self.load(self.a), self.load(self.b), self.saturation
        if xa < sat < xb or (sat >= xb and self.margin_b is None):
            xm, mm = sat, -1.0  # the static estimate: inside the bracket, or above an untried top
        elif _finite_miss(self.margin_b):
            xm, mm = xb, float(self.margin_b)  # type: ignore[arg-type]
        else:
            return None
        if not math.isfinite(xm):
            return None
        x = xa + (xm - xa) * ma / (ma - mm)
        return int(round(min((x - self.lo) / self.res, self.cells + 1.0)))

    def record(self, k: int, met: bool, margin: float | None) -> None:
        self.runs_left -= 1
        if met:
            self.a, self.margin_a = k, margin
        else:
            self.b, self.margin_b = k, margin


def _finite_miss(m: float | None) -> bool:
    return m is not None and -math.inf < m < 0


def _saturation(arch: Architecture) -> float:
    """The static capacity estimate of the load multiplier at which the design saturates."""
    try:
        return float(capacity_report(arch, 1.0).saturation_load)
    except SimarchError:
        return math.inf


def _grid_margin(runs: pd.DataFrame, slo: dict[str, float], design: str, load: float,
                 rep: int) -> float | None:
    """The SLO margin of the grid's run of this design, load and replication, if there is one."""
    g = runs[(runs.design == design) & (runs.load == load) & (runs.replication == rep)]
    if not len(g) or isinstance(g["error"].iloc[0], str):
        return None
    m = margin(slo, g.iloc[0])
    return None if math.isnan(m) else m


def _knees(archs, labels, slos, slo_table, runs, mults, replications, task, steps, confidence,
           executor, workers, progress) -> list[dict[str, Any]]:
    brackets: dict[int, tuple[float, float, str]] = {}
    rows: list[dict[str, Any]] = []
    for i, label in enumerate(labels):
        if not slos[label]:
            rows.append({"design": label, "knee": math.nan, "ci_low": math.nan, "ci_high": math.nan,
                         "resolution": math.nan, "bracket_low": math.nan, "bracket_high": math.nan,
                         "censored": False, "note": "no SLO"})
            continue
        verdicts = slo_table[slo_table.design == label].set_index("load")["slo_met"]
        met = [x for x in mults if verdicts.get(x)]
        missed = [x for x in mults if not verdicts.get(x)]
        note = ""
        if not met:
            lo, hi = 0.0, mults[0]
            note = "misses its SLO at every load tried"
        elif max(met) == mults[-1]:
            lo, hi = mults[-1], 2 * mults[-1]
            note = f"above the largest load of the grid ({lo:g}x): searched between {lo:g}x and {hi:g}x"
        else:
            lo = max(met)
            hi = min(x for x in missed if x > lo)
        brackets[i] = (lo, hi, note)
    cells = 2 ** max(int(steps), 0)
    searches: dict[tuple[int, int], _KneeSearch] = {}
    for i, (lo, hi, _) in brackets.items():
        sat = _saturation(archs[i])
        for r in range(replications):
            s = _KneeSearch(lo, hi, cells, sat, runs_left=max(int(steps), 0) + KNEE_EXTRA_RUNS)
            s.margin_a = _grid_margin(runs, slos[labels[i]], labels[i], lo, r)
            s.margin_b = _grid_margin(runs, slos[labels[i]], labels[i], hi, r)
            searches[(i, r)] = s
    while True:
        # one run per unfinished search, all replications of all designs at once; every run
        # of replication r has the seed of replication r (common random numbers across steps)
        todo = [(key, s.next_point()) for key, s in searches.items() if not s.done]
        if not todo:
            break
        tasks = [task(i, searches[(i, r)].load(k), r, knee_step=True, stop_on_miss=True)
                 for (i, r), k in todo]
        results = run_tasks(tasks, executor=executor, workers=workers, progress=progress, desc="knee")
        for ((i, r), k), row in zip(todo, results, strict=True):
            err = row.get("error")
            if isinstance(err, str) and err.startswith(RunStopped.PREFIX):
                # a verdict, not a result: the run missed its SLO, and why
                row.update(error=None, slo_met=False, stopped=err)
                searches[(i, r)].record(k, False, -1.0)  # (for placing runs: a clear miss)
                continue
            ok = err is None and bool(_meets(slos[labels[i]], row))
            m = margin(slos[labels[i]], row) if err is None else math.nan
            searches[(i, r)].record(k, ok, None if math.isnan(m) else m)
    for i, (lo, hi, note) in brackets.items():
        found = [searches[(i, r)] for r in range(replications)]
        per_rep = [s.load(s.a) for s in found]
        res = (hi - lo) / 2 ** steps
        # the SLO held at every point tried up to the top of the search: a lower bound only
        censored = bool(note.startswith("above") and all(s.b == s.cells for s in found))
        mean, clo, chi, _ = mean_ci(per_rep, confidence)
        if censored:  # a lower bound only: the highest load simulated, where the SLO still held
            mean, clo, chi = min(per_rep), math.nan, math.nan
            note = (f"meets its SLO at every load simulated, up to {mean:.4g}x: the knee is at "
                    "least this (add larger loads to find it)")
        rows.append({"design": labels[i], "knee": mean, "ci_low": clo, "ci_high": chi,
                     "resolution": res, "bracket_low": lo, "bracket_high": hi,
                     "censored": censored, "note": note})
    order = {lab: k for k, lab in enumerate(labels)}
    return sorted(rows, key=lambda r: order[r["design"]])


KNEE_FORMATS = {"knee": "x", "ci_low": "x", "ci_high": "x", "resolution": "x", "censored": "str",
                "note": "str"}


def summary_table(cmp) -> pd.DataFrame:
    """Per design and load, mean [CI] of each main metric and the SLO verdict, as text."""
    t = cmp.table

    def cell(row, kind):
        m, lo, hi = row["mean"], row["ci_low"], row["ci_high"]
        if kind == "pct":
            return f"{m:.3%} [{lo:.3%}, {hi:.3%}]" if not math.isnan(lo) else f"{m:.3%}"
        return f"{m:.4g} [{lo:.4g}, {hi:.4g}]" if not math.isnan(lo) else f"{m:.4g}"

    rows = []
    for (design, load), g in t.groupby(["design", "load"], sort=False):
        g = g.set_index("metric")
        verdict = cmp.slo[(cmp.slo.design == design) & (cmp.slo.load == load)]
        met = verdict["slo_met"].iloc[0] if len(verdict) else None
        rows.append({
            "design": design, "load": f"{load:g}x",
            "p50 ms": cell(g.loc["p50_ms"], "num"), "p99 ms": cell(g.loc["p99_ms"], "num"),
            "p99.9 ms": cell(g.loc["p999_ms"], "num"), "throughput rps": cell(g.loc["throughput_rps"], "num"),
            "availability": cell(g.loc["availability"], "pct"),
            "SLO": "-" if met is None else ("met" if met else "MISSED"),
        })
    return pd.DataFrame(rows)


def cost_summary_table(cmp) -> pd.DataFrame:
    """The cost table as text: design, load, monthly, difference against the first design,
    per million successful requests."""
    rows = []
    for _, r in cmp.cost.iterrows():
        first = r["design"] == cmp.designs[0]
        pct = r["diff_pct"]
        diff = "-" if first or missing(r["diff_usd"]) else (
            usd(r["diff_usd"], signed=True) + ("" if missing(pct) else f" ({pct:+.1f}%)"))
        rows.append({"design": r["design"], "load": f"{r['load']:g}x", "monthly": usd(r["monthly_usd"]),
                     f"vs {cmp.designs[0]}": diff, "per million successful": usd(r["per_million_usd"])})
    return pd.DataFrame(rows)


def format_comparison(cmp) -> str:
    """The report ``simarch compare`` prints: per design and load, mean [CI] of each metric,
    the SLO verdict, the paired differences and the knee."""
    pct = int(round(cmp.confidence * 100))
    lines = [f"Comparison of {', '.join(cmp.designs)}: {cmp.replications} replications per point, "
             f"{pct}% t-intervals, common random numbers (seed {cmp.seed})", ""]
    lines.append(summary_table(cmp).to_string(index=False))
    if len(cmp.diff):
        lines += ["", f"Differences against {cmp.designs[0]} (paired by replication), mean [{pct}% CI]"]
        d = cmp.diff[cmp.diff.metric.isin(["p99_ms", "throughput_rps", "availability"])]
        drows = []
        for _, r in d.iterrows():
            fmt = "{:+.3%}" if r["metric"] == "availability" else "{:+.4g}"
            ci = "" if math.isnan(r["ci_low"]) else f" [{fmt.format(r['ci_low'])}, {fmt.format(r['ci_high'])}]"
            drows.append({"design": r["design"], "load": f"{r['load']:g}x", "metric": r["metric"],
                          "difference": fmt.format(r["mean_diff"]) + ci})
        lines.append(pd.DataFrame(drows).to_string(index=False))
    cost = getattr(cmp, "cost", None)
    if cost is not None and len(cost):
        lines += ["", f"Cost (USD a month at on-demand list prices, 730 hours; queues at their "
                      f"simulated message rate), against {cmp.designs[0]}"]
        lines.append(cost_summary_table(cmp).to_string(index=False))
    if len(cmp.knee):
        lines += ["", "Knee: the highest load multiplier that still meets the SLO"]
        for _, k in cmp.knee.iterrows():
            if math.isnan(k["knee"]):
                lines.append(f"  {k['design']}: - ({k['note']})")
                continue
            ci = "" if math.isnan(k["ci_low"]) else f" [{k['ci_low']:.2f}x, {k['ci_high']:.2f}x]"
            if k.get("censored"):
                lines.append(f"  {k['design']}: >= {k['knee']:.2f}x ({k['note']})")
                continue
            lines.append(f"  {k['design']}: {k['knee']:.2f}x{ci} (search resolution "
                         f"{k['resolution']:.2f}x{'; ' + k['note'] if k['note'] else ''})")
    lines += format_attribution(cmp)
    for w in getattr(cmp, "warnings", []):
        lines.append(f"warning: {w}")
    return "\n".join(lines)

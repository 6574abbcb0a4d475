"""Figures for results and designs (matplotlib).

Every function draws into the ``ax`` (or ``axes``) it is given, or into a new figure when
none is given, and returns what it drew into; none of them calls ``plt.show()`` or changes
matplotlib's global settings, so they work in notebooks, scripts and under the Agg backend::

    from simarch import plots
    ax = plots.latency_cdf({"before": r1, "after": r2})
    ax.figure.savefig("cdf.png")

They take live objects (a :class:`~simarch.results.result.Result`) or the DataFrames those
expose and save as Parquet (``requests``, ``timeseries``, ``components``, ``faults``, a
comparison's ``table`` and ``knee``, a sweep dataset), so a saved results folder can be drawn
without simulating again (the HTML report draws with these functions):

* :func:`latency_cdf`: empirical CDF of end-to-end latency, percentiles marked.
* :func:`percentiles_vs_load`, :func:`availability_vs_load`: a metric against the load
  multiplier per design, with its confidence band (the "hockey stick") and the knee.
* :func:`timeline`: throughput, latency and availability over simulated time, faults shaded.
* :func:`utilization`: utilisation per component or per instance.
* :func:`architecture`: the call graph with the copies and zones of each component, coloured
  by utilisation, single points of failure marked.
* :func:`sweep_results`: metrics of a parameter sweep against load or a parameter.
* :func:`attribution`: where the time of each latency band goes, per component and phase.
* :func:`call_graph`: the call graph :func:`simarch.fit` inferred from traces.
* :func:`stability_timeline`: goodput and offered load around a trigger, one line per
  trigger size, the trigger windows shaded (:func:`simarch.stability`).

matplotlib is imported inside the functions, so ``import simarch`` stays light.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .analysis.capacity import CapacityReport, capacity_report
from .analysis.spof import SpofReport, static_spof
from .errors import SimarchError
from .kinds import kind as kind_of
from .model.architecture import Architecture
from .model.architecture import load as load_arch
from .model.status import OK, STATUS_NAMES
from .model.units import parse_duration, parse_multiplier
from .results.binning import bin_requests, nice_width, window_edges
from .results.result import Result

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from .analysis.fit import Fit  # a Fit is recognised by its graph: scipy stays unimported

__all__ = [
    "latency_cdf",
    "percentiles_vs_load",
    "availability_vs_load",
    "timeline",
    "utilization",
    "architecture",
    "architecture_size",
    "sweep_results",
    "attribution",
    "stability_timeline",
]

UTIL_CMAP = "RdYlGn_r"  # green (idle) -> yellow -> red (saturated), shared by bars and nodes
SLO_COLOR = "crimson"
INSTANCE_COLORS = ("tab:green", "tab:cyan", "tab:olive", "tab:gray")  # autoscaled instances on timelines
FAULT_COLORS = ("tab:red", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
                "tab:cyan", "tab:gray")
LINE_STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
KNEE_STYLE = (0, (1, 1.5))
_ECDF_POINTS = 2000  # above about twice this many requests a CDF is drawn from a subsample


# --------------------------------------------------------------------------- helpers


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _percent_formatter(xmax: float = 1.0, decimals: int | None = None):
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=xmax, decimals=decimals)


def _plain_log_ticks(axis: Any) -> None:
    """Label a log axis with plain numbers (``200``, not ``2 x 10^2``); when it spans less
    than a factor of 20, the 2, 3 and 5 minor ticks are labelled too, and every minor tick
    when it spans less than a factor of 4."""
    from matplotlib.ticker import FuncFormatter

    def major(v: float, _: Any) -> str:
        return f"{v:g}"

    def minor(v: float, _: Any) -> str:
        lo, hi = sorted(axis.get_view_interval())
        if not (lo > 0 and hi / lo <= 20 and v > 0):
            return ""
        mantissa = v / 10 ** math.floor(math.log10(v) + 1e-9)
        return f"{v:g}" if hi / lo <= 4 or round(mantissa) in (2, 3, 5) else ""

    axis.set_major_formatter(FuncFormatter(major))
    axis.set_minor_formatter(FuncFormatter(minor))


def _quantile_name(q: float) -> str:
    """``99.9`` -> ``p99.9``."""
    return f"p{q:g}"


def _metric_parts(metric: str) -> tuple[str, str]:
    """(readable name, unit) of a summary or time-series column."""
    m = re.fullmatch(r"p(\d+)_ms", metric)
    if m:
        digits = m.group(1)
        q = digits if len(digits) <= 2 else f"{digits[:2]}.{digits[2:]}"
        return f"p{q} latency", "ms"
    fixed = {
        "mean_ms": ("mean latency", "ms"),
        "max_ms": ("max latency", "ms"),
        "throughput_rps": ("throughput", "successful req/s"),
        "availability": ("availability", "%"),
        "completed": ("completed", "requests per window"),
        "rejected": ("rejected", "requests per window"),
        "timeout": ("timed out", "requests per window"),
        "failed": ("failed", "requests per window"),
    }
    if metric in fixed:
        return fixed[metric]
    if metric.endswith("_ms"):
        return metric[:-3].replace("_", " "), "ms"
    if metric.endswith("_rps"):
        return metric[:-4].replace("_", " "), "req/s"
    return metric.replace("_", " "), ""


def _metric_label(metric: str, sep: str = " ") -> str:
    name, unit = _metric_parts(metric)
    return f"{name}{sep}({unit})" if unit else name


def _is_latency(metric: str) -> bool:
    return metric.endswith("_ms")


def _slo_label(metric: str, value: float) -> str:
    if metric == "availability":
        return f"SLO {value * 100:g}%"
    if _is_latency(metric):
        return f"SLO {_metric_parts(metric)[0].split()[0]} {value:g} ms"
    _, unit = _metric_parts(metric)
    return f"target {value:g} {unit}".rstrip()


def _fmt_load(load: float) -> str:
    return f"{load:g}x"


def _kind_label(name: Any) -> str:
    """How plots name a component kind: its kind module's ``label``."""
    try:
        return kind_of(str(name)).label
    except SimarchError:
        return str(name).replace("_", " ")


# --------------------------------------------------------------------------- request frames


def _status_codes(requests: pd.DataFrame) -> np.ndarray:
    """Status codes (0 ok, 1 rejected, ...) of a requests frame, whose ``status`` column
    holds the names (``Result.requests``, ``requests.parquet``) or the codes; a frame without
    it is all successful requests."""
    if "status" not in requests.columns:
        return np.full(len(requests), int(OK))
    st = requests["status"]
    if pd.api.types.is_numeric_dtype(st):
        return st.to_numpy(dtype=int)
    codes = {name: i for i, name in enumerate(STATUS_NAMES)}
    return st.astype(str).map(codes).fillna(-1).to_numpy(dtype=int)


def _check_requests(requests: pd.DataFrame, *needed: str) -> pd.DataFrame:
    missing = [c for c in ("latency_ms", *needed) if c not in requests.columns]
    if missing:
        raise ValueError(f"the requests frame lacks column(s) {', '.join(missing)} (expected "
                         "the columns of Result.requests: class, start_s, end_s, latency_ms, status)")
    return requests


def _ok_latency_ms(data: Result | pd.DataFrame) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    """Latency (ms) of the successful requests of a Result or a requests frame, and the
    same per request class."""
    if isinstance(data, Result):
        ok = data.status == OK
        return data.latency[ok] * 1e3, [(c, data.latency[ok & (data.cls == i)] * 1e3)
                                        for i, c in enumerate(data.classes)]
    df = _check_requests(data)
    ok = _status_codes(df) == OK
    ms = df["latency_ms"].to_numpy(dtype=float)
    per_class: list[tuple[str, np.ndarray]] = []
    if "class" in df.columns:
        cls = df["class"]
        names = ([str(c) for c in cls.cat.categories] if isinstance(cls.dtype, pd.CategoricalDtype)
                 else sorted({str(c) for c in cls}))
        text = cls.astype(str).to_numpy()
        per_class = [(c, ms[ok & (text == c)]) for c in names]
    return ms[ok], per_class


# --------------------------------------------------------------------------- latency CDF


def _labelled_results(results: Any) -> list[tuple[str, Result | pd.DataFrame]]:
    if isinstance(results, (Result, pd.DataFrame)):
        items: list[tuple[str | None, Any]] = [(None, results)]
    elif isinstance(results, Mapping):
        items = [(str(k), v) for k, v in results.items()]
    elif isinstance(results, Sequence) or hasattr(results, "__iter__"):
        items = [(None, r) for r in results]
    else:
        raise TypeError("expected a Result or a requests DataFrame, a list of them or a dict of "
                        f"them, got {type(results).__name__}")
    if not items:
        raise ValueError("no results to plot")
    for label, r in items:
        if not isinstance(r, (Result, pd.DataFrame)):
            raise TypeError(f"expected Result objects or requests DataFrames, got {type(r).__name__}"
                            + (f" for '{label}'" if label else ""))
    if all(label is not None for label, _ in items):
        return [(str(label), r) for label, r in items]

    def name(r: Any, detail: int) -> str:
        if not isinstance(r, Result):
            return "requests"
        return (r.design, f"{r.design} @ {_fmt_load(r.load)}",
                f"{r.design} @ {_fmt_load(r.load)}, seed {r.seed}")[detail]

    for detail in range(3):
        labels = [name(r, detail) for _, r in items]
        if len(set(labels)) == len(labels):
            break
    if len(set(labels)) < len(labels):
        labels = [f"{lab} #{i + 1}" for i, lab in enumerate(labels)]
    return [(lab if given is None else str(given), r)
            for lab, (given, r) in zip(labels, items, strict=True)]


def _slo_of_results(items: Sequence[tuple[str, Any]]) -> dict[str, float]:
    """The SLO the Results share (latency targets in seconds), or none."""
    slos = [r.slo_spec or {} for _, r in items if isinstance(r, Result)]
    return dict(slos[0]) if slos and all(s == slos[0] for s in slos) else {}


def _ecdf(ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted latencies and their cumulative share; large samples are thinned, keeping the
    tail in full detail."""
    x = np.sort(ms)
    n = len(x)
    y = np.arange(1, n + 1) / n
    if n > 2 * _ECDF_POINTS:
        body = np.linspace(0, n - 1, _ECDF_POINTS).astype(int)
        tail = n - np.unique(np.geomspace(1, n, _ECDF_POINTS).astype(int))
        idx = np.unique(np.concatenate([body, tail, [0, n - 1]]))
        x, y = x[idx], y[idx]
    return np.concatenate([[x[0]], x]), np.concatenate([[0.0], y])


def _latency_targets_ms(slo: Mapping[str, Any]) -> list[tuple[str, float, float]]:
    """(name, percentile, target in ms) of each latency target of an SLO mapping (targets in
    seconds, as in ``Result.slo_spec``); ``mean`` has no percentile (NaN)."""
    out = []
    for key, value in slo.items():
        m = re.fullmatch(r"p(\d+)", str(key))
        if value is None or not (m or key == "mean"):
            continue
        q = math.nan if key == "mean" else float(_metric_parts(f"{key}_ms")[0].split()[0][1:])
        out.append((str(key), q, float(value) * 1e3))
    return out


def latency_cdf(
    results: Result | pd.DataFrame | Sequence[Result | pd.DataFrame] | Mapping[str, Any],
    ax: Axes | None = None,
    *,
    by_class: bool = False,
    log: bool = True,
    marks: Sequence[float] | None = (50, 99, 99.9),
    slo: Mapping[str, float] | bool = False,
) -> Axes:
    """Empirical CDF of the end-to-end latency (ms) of successful requests.

    ``results`` is one :class:`~simarch.results.result.Result` or requests frame
    (``Result.requests``, or ``requests.parquet`` of a saved run: columns ``latency_ms``,
    ``status`` and, for ``by_class``, ``class``), a list of them, or a mapping ``label ->``
    either; without labels each curve is named after its design (and its load, and seed,
    when designs repeat). ``by_class`` draws one curve per request class of a single result,
    plus the overall curve. ``log`` puts the latency axis on a log scale. The percentiles in
    ``marks`` are shown on every curve as small circles, and for the first curve (the overall
    one with ``by_class``) as dotted lines with their values. ``slo`` draws each latency
    target as a dashed vertical line: a mapping like ``Result.slo_spec`` (targets in seconds,
    ``{"p99": 0.05}``), or ``True`` for the SLO the Results share.
    """
    import matplotlib.transforms as mtransforms

    items = _labelled_results(results)
    curves: list[tuple[str, np.ndarray, dict[str, Any]]] = []
    annotate = 0
    if by_class:
        if len(items) != 1:
            raise ValueError(f"by_class=True needs a single Result, got {len(items)}")
        label, r = items[0]
        everything, per_class = _ok_latency_ms(r)
        for cls, ms in per_class:
            curves.append((cls, ms, {}))
        if len(per_class) > 1:
            curves.append(("all classes", everything, {"color": "black", "ls": "--", "lw": 1.2}))
            annotate = len(curves) - 1
        elif not per_class:
            curves.append((label, everything, {}))
        title = f"Latency CDF per request class: {label}"
    else:
        for label, r in items:
            curves.append((label, _ok_latency_ms(r)[0], {}))
        title = "Latency CDF" + (f": {items[0][0]}" if len(items) == 1 else "")
    targets = _latency_targets_ms(_slo_of_results(items) if slo is True else (slo or {}))

    ax = _new_axes(ax, (7.5, 4.5))
    text_tf = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
    marks = tuple(marks or ())
    positive = []
    annotations: tuple[Any, list[tuple[float, float]]] | None = None
    for i, (label, ms, style) in enumerate(curves):
        color = style.pop("color", f"C{i % 10}")
        if len(ms) == 0:
            ax.plot([], [], color=color, label=f"{label} (no successful requests)", **style)
            continue
        x, y = _ecdf(ms)
        ax.plot(x, y, drawstyle="steps-post", color=color, lw=style.pop("lw", 1.6),
                label=f"{label} (n={len(ms):,})", **style)
        if (ms > 0).any():
            positive.append(float(ms[ms > 0].min()))
        if not marks:
            continue
        qv = np.percentile(ms, marks)
        ax.plot(qv, np.asarray(marks) / 100, ls="none", marker="o", ms=4.5, mfc="white",
                mec=color, mew=1.2, zorder=3)
        if i == annotate:
            for q, v in zip(marks, qv, strict=True):
                ax.plot([v, v], [0, q / 100], ls=":", lw=0.9, color=color, alpha=0.8)
            annotations = (color, list(zip(marks, qv, strict=True)))
    for key, q, target in targets:
        # the curve must pass left of the target at its percentile
        ax.axvline(target, color=SLO_COLOR, ls=(0, (4, 3)), lw=1.1, zorder=1.5,
                   label=f"SLO {_quantile_name(q) if q == q else key} {target:g} ms")
        if q == q:
            ax.plot([target], [q / 100], ls="none", marker="x", ms=6, mew=1.5, color=SLO_COLOR,
                    zorder=3.5)
    if log and positive:
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis)
        lo = min(positive)
        ax.set_xlim(left=lo / 1.5)
    elif not log:
        ax.set_xlim(left=0)
    if annotations is not None:
        # the value of each marked percentile, written along its line; a label that would
        # run into the previous one goes on the other side of its line
        color, points = annotations
        fig = ax.figure
        width_pt = ax.get_position().width * fig.get_figwidth() * 72
        x_lo, x_hi = ax.get_xlim()
        scale = (np.log10 if ax.get_xscale() == "log" else (lambda a: a))
        last_pt, last_side = -math.inf, "left"
        for q, v in sorted(points, key=lambda p: p[1]):
            at = (scale(v) - scale(x_lo)) / (scale(x_hi) - scale(x_lo)) * width_pt
            side = "left"
            if at - last_pt < 11 and last_side == "left":
                side = "right"
            ax.text(v, 0.03, f" {_quantile_name(q)} = {v:.3g} ms ", transform=text_tf,
                    rotation=90, ha="right" if side == "left" else "left", va="bottom",
                    fontsize=8, color=color, alpha=0.9)
            last_pt, last_side = at, side
    ax.set_ylim(0, 1.02)
    ax.yaxis.set_major_formatter(_percent_formatter())
    ax.set_xlabel("end-to-end latency (ms)" + (", log scale" if ax.get_xscale() == "log" else ""))
    ax.set_ylabel("successful requests at or below (%)")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    if ax.get_xscale() == "log":
        ax.grid(True, which="minor", axis="x", alpha=0.1)
    # a CDF leaves the top left empty; the percentile labels sit at the bottom
    ax.legend(loc="upper left", fontsize=9)
    return ax


# --------------------------------------------------------------------------- metric vs load


_TABLE_COLUMNS = ("design", "load", "metric", "mean")


def _as_loads(values: pd.Series) -> np.ndarray:

    num = pd.to_numeric(values, errors="coerce")
    if num.isna().any():
        num = values.map(parse_multiplier)
    return num.to_numpy(dtype=float)


def _as_x(values: pd.Series) -> tuple[np.ndarray, list[str] | None]:
    """Positions for an x column that is not a load: its values when they are all numbers,
    else the rank of each value among the distinct ones (sorted as text), with their names."""
    num = pd.to_numeric(values, errors="coerce")
    if num.notna().all():
        return num.to_numpy(dtype=float), None
    names = sorted({str(v) for v in values})
    return values.astype(str).map({c: i for i, c in enumerate(names)}).to_numpy(dtype=float), names


def _number(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


def _draw_knee(ax: Axes, knee: pd.DataFrame, colors: Mapping[str, str]) -> bool:
    """Mark the knee of each drawn design (rows of ``Comparison.knee``) with a dotted
    vertical line in the design's colour and its confidence interval shaded; a censored knee
    (the SLO held up to the search limit) is written as a lower bound. Whether one was drawn."""
    import matplotlib.transforms as mtransforms

    if isinstance(knee, pd.DataFrame) and knee.empty:
        return False  # not searched for
    if not isinstance(knee, pd.DataFrame) or not {"design", "knee"} <= set(knee.columns):
        raise ValueError("knee is a DataFrame with columns design and knee (optionally ci_low, "
                         "ci_high, censored), as Comparison.knee")
    text_tf = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
    drew = False
    for _, row in knee.iterrows():
        design, k = str(row["design"]), _number(row["knee"])
        if design not in colors or not math.isfinite(k):
            continue
        color = colors[design]
        lo, hi = _number(row.get("ci_low")), _number(row.get("ci_high"))
        if math.isfinite(lo) and math.isfinite(hi) and hi > lo:
            ax.axvspan(lo, hi, color=color, alpha=0.1, lw=0, zorder=0.4).set_gid(f"knee-ci:{design}")
        ax.axvline(k, color=color, ls=KNEE_STYLE, lw=1.6, zorder=1.4).set_gid(f"knee:{design}")
        censored = isinstance(row.get("censored"), (bool, np.bool_)) and bool(row["censored"])
        ax.annotate(f"knee {'≥ ' if censored else ''}{k:.3g}x", xy=(k, 0.98), xycoords=text_tf,
                    xytext=(-3, 0), textcoords="offset points", rotation=90, ha="right",
                    va="top", fontsize=8, color=color, zorder=5)
        drew = True
    return drew


def _metric_vs_load(table: pd.DataFrame, ax: Axes | None, metrics: list[str], slo: float | None,
                    percent: bool, title: str | None, *, knee: pd.DataFrame | None = None,
                    x_name: str | None = None, legend: bool = True) -> Axes:
    """The lines of :func:`percentiles_vs_load`. ``x_name`` names what the ``load`` column
    holds when it is not a load multiplier (a sweep parameter); ``legend=False`` leaves the
    legend to the caller (panels of one figure)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"expected a DataFrame with columns {', '.join(_TABLE_COLUMNS)}, "
                        f"got {type(table).__name__}")
    missing = [c for c in _TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"the table lacks column(s) {', '.join(missing)} "
                         f"(needs {', '.join(_TABLE_COLUMNS)}, optionally ci_low, ci_high)")
    known = list(dict.fromkeys(table["metric"].astype(str)))
    unknown = [m for m in metrics if m not in known]
    if unknown:
        raise ValueError(f"metric(s) {', '.join(unknown)} not in the table (metrics: {', '.join(known)})")
    data = table[table["metric"].isin(metrics)].copy()
    ticks = None
    if x_name is None:
        data["_load"] = _as_loads(data["load"])
    else:
        data["_load"], ticks = _as_x(data["load"])
    has_ci = {"ci_low", "ci_high"} <= set(data.columns)
    designs = list(dict.fromkeys(data["design"].astype(str)))
    colors = {design: f"C{i % 10}" for i, design in enumerate(designs)}

    ax = _new_axes(ax, (7.5, 4.5))
    drew_band = False
    for i, design in enumerate(designs):
        color = colors[design]
        for j, metric in enumerate(metrics):
            d = data[(data["design"].astype(str) == design) & (data["metric"] == metric)].sort_values("_load")
            if d.empty:
                continue
            if len(designs) > 1 and len(metrics) > 1:
                # colour tells the design, line style the metric (a legend entry each below)
                label = design if j == 0 else "_nolegend_"
            elif len(metrics) > 1:
                label = _metric_parts(metric)[0]
            else:
                label = design
            x = d["_load"].to_numpy()
            y = d["mean"].to_numpy(dtype=float)
            ax.plot(x, y, ls=LINE_STYLES[j % len(LINE_STYLES)], marker=MARKERS[i % len(MARKERS)],
                    ms=5, lw=1.6, color=color, label=label)
            if has_ci:
                lo = d["ci_low"].to_numpy(dtype=float)
                hi = d["ci_high"].to_numpy(dtype=float)
                if np.isfinite(lo).any() and np.isfinite(hi).any():
                    ax.fill_between(x, lo, hi, color=color, alpha=0.18, lw=0)
                    drew_band = True

    if slo is not None:
        label = _slo_label(metrics[0], slo) if len(metrics) == 1 else (
            f"SLO {slo:g} ms" if all(_is_latency(m) for m in metrics) else f"SLO {slo:g}")
        ax.axhline(slo, color=SLO_COLOR, ls=(0, (4, 3)), lw=1.2, label=label, zorder=1.5)
    drew_knee = knee is not None and _draw_knee(ax, knee, colors)

    latency = all(_is_latency(m) for m in metrics)
    values = data[["mean"] + (["ci_low", "ci_high"] if has_ci else [])].to_numpy(dtype=float)
    if latency and (values[np.isfinite(values)] > 0).any():
        ax.set_yscale("log")
        _plain_log_ticks(ax.yaxis)
    if x_name is None:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.set_xlabel("load (multiple of the design's workload)")
    else:
        values = sorted(set(data["_load"]))
        if ticks is not None:
            ax.set_xticks(range(len(ticks)), ticks)
        elif len(values) <= 12:  # a parameter's values, not a scale
            ax.set_xticks(values, [f"{v:g}" for v in values])
        ax.set_xlabel(x_name)
    if percent:
        ax.yaxis.set_major_formatter(_percent_formatter())
        ax.set_ylabel("availability (%)")
    elif latency and len(metrics) > 1:
        ax.set_ylabel("latency of successful requests (ms)")
    else:
        units = {_metric_parts(m)[1] for m in metrics}
        ax.set_ylabel(_metric_label(metrics[0]) if len(metrics) == 1 else
                      ", ".join(_metric_parts(m)[0] for m in metrics)
                      + (f" ({units.pop()})" if len(units) == 1 and "" not in units else ""))
    if title is None:
        if latency and len(metrics) > 1:
            title = "Latency percentiles vs " + (x_name or "load")
        else:
            title = ", ".join(_metric_parts(m)[0] for m in metrics) + " vs " + (x_name or "load")
            title = title[0].upper() + title[1:] if not re.match(r"p\d", title) else title
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    if ax.get_yscale() == "log":
        ax.grid(True, which="minor", axis="y", alpha=0.1)
    handles, labels = ax.get_legend_handles_labels()
    if drew_band:
        handles.append(Patch(color="0.5", alpha=0.25, lw=0))
        labels.append("confidence interval")
    if len(metrics) > 1 and len(designs) > 1:
        # the line style tells the metric: show it once, in grey
        for j, metric in enumerate(metrics):
            handles.append(Line2D([], [], color="0.35", ls=LINE_STYLES[j % len(LINE_STYLES)]))
            labels.append(_metric_parts(metric)[0])
    if drew_knee:
        handles.append(Line2D([], [], color="0.35", ls=KNEE_STYLE, lw=1.6))
        labels.append("knee (highest load meeting the SLO)")
    if not legend:
        return ax
    if len(handles) > 5:  # a long legend would hide the lines: put it beside the plot
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9,
                  frameon=False, borderaxespad=0.0)
    else:
        ax.legend(handles, labels, loc="best", fontsize=9)
    return ax


def percentiles_vs_load(
    table: pd.DataFrame,
    ax: Axes | None = None,
    *,
    metric: str | Sequence[str] = "p99_ms",
    slo: float | None = None,
    knee: pd.DataFrame | None = None,
) -> Axes:
    """A metric against load, one line per design: the latency "hockey stick".

    ``table`` is tidy, one row per design x load x metric, with columns ``design``, ``load``
    (a multiplier: ``2`` or ``"2x"``), ``metric`` (``p50_ms``, ``p99_ms``, ``p999_ms``,
    ``throughput_rps``, ``availability``...), ``mean`` and optionally ``ci_low`` and
    ``ci_high``, drawn as a shaded band. ``metric`` is one name or a list (one line style per
    metric, one colour per design). Latency metrics get a log y axis. ``slo`` draws a
    horizontal line at that value, in the metric's units (ms for latency). ``knee`` (the
    ``knee`` table of a :class:`~simarch.study.compare.Comparison`: ``design``, ``knee`` and
    optionally ``ci_low``, ``ci_high``, ``censored``) marks each design's knee with a dotted
    vertical line in its colour, its interval shaded.
    """
    metrics = [metric] if isinstance(metric, str) else list(metric)
    if not metrics:
        raise ValueError("give at least one metric")
    percent = metrics == ["availability"]
    return _metric_vs_load(table, ax, metrics, slo, percent, None, knee=knee)


def availability_vs_load(
    table: pd.DataFrame,
    ax: Axes | None = None,
    *,
    slo: float | None = None,
    knee: pd.DataFrame | None = None,
) -> Axes:
    """Availability (successful over finished requests) against load, one line per design.

    ``table`` is the tidy table :func:`percentiles_vs_load` takes; its ``availability`` rows
    are drawn, the y axis in percent. ``slo`` is the target as a fraction (``0.999``); a
    value above 1 is read as a percentage (``99.9``). ``knee`` marks the knees as in
    :func:`percentiles_vs_load`.
    """
    if slo is not None and slo > 1:
        slo = slo / 100.0
    ax = _metric_vs_load(table, ax, ["availability"], slo, True, "Availability vs load", knee=knee)
    _availability_ylim(ax, table[table["metric"] == "availability"], slo)
    return ax


def _availability_ylim(ax: Axes, rows: pd.DataFrame, slo: float | None) -> None:
    """Nothing is above 100%: the axis ends just above it and starts below the lowest value
    (of ``mean`` and ``ci_low``) and the target."""
    cols = [c for c in ("mean", "ci_low") if c in rows.columns]
    values = rows[cols].to_numpy(dtype=float).ravel()
    values = values[np.isfinite(values)]
    lo = min([*values.tolist(), *([slo] if slo is not None else []), 1.0])
    span = max(1.0 - lo, 1e-3)
    ax.set_ylim(1.0 - 1.12 * span, 1.0 + 0.04 * span)


# --------------------------------------------------------------------------- timeline


def _as_axes_array(axes: Any, n: int) -> np.ndarray:
    from matplotlib.axes import Axes as MplAxes

    if isinstance(axes, MplAxes):
        arr = np.empty(1, dtype=object)
        arr[0] = axes
    else:
        arr = np.empty(len(np.ravel(np.asarray(axes, dtype=object))), dtype=object)
        arr[:] = list(np.ravel(np.asarray(axes, dtype=object)))
    if len(arr) != n:
        raise ValueError(f"one panel per metric: {n} metric(s) but {len(arr)} Axes given")
    return arr


def _panels(axes: Any, n: int, figsize: tuple[float, float]) -> np.ndarray:
    """The caller's Axes, one per panel, or ``n`` new ones stacked on a shared x axis."""
    if axes is None:
        import matplotlib.pyplot as plt

        _, axs = plt.subplots(n, 1, sharex=True, squeeze=False, layout="constrained",
                              figsize=figsize)
        axes = axs[:, 0]
    return _as_axes_array(axes, n)


def _with_deployments(faults: pd.DataFrame, result: Result) -> pd.DataFrame:
    """The fault windows and the run's deployments (``result.deployments()``, each a window
    from its start to its end, or to the end of the run), to shade alike."""
    deps = result.deployments()
    if not len(deps):
        return faults
    t_end = result.warmup + result.duration
    rows = pd.DataFrame({"fault": deps["deployment"], "kind": "deployment", "target": deps["target"],
                         "start_s": deps["start_s"], "end_s": deps["end_s"].fillna(t_end)})
    return rows if faults is None or not len(faults) else pd.concat([faults, rows], ignore_index=True)


def _fault_groups(faults: pd.DataFrame) -> list[tuple[str, str, list[tuple[float, float]]]]:
    """(key, legend label, windows) per fault; the per-instance windows of a random-failure
    fault make one group."""
    groups: dict[str, dict[str, Any]] = {}
    for row in faults.itertuples(index=False):
        name, kind, target = str(row.fault), str(row.kind), "" if row.target is None else str(row.target)
        key = name
        if kind == "random" and target and name.endswith(":" + target):
            key = name[: -len(target) - 1]
            target = target.split("[")[0]
        g = groups.setdefault(key, {"kind": kind, "target": target, "windows": []})
        g["windows"].append((float(row.start_s), float(row.end_s)))
    out = []
    for key, g in groups.items():
        details = [d for d in (g["kind"], g["target"]) if d and d not in key]
        label = key + (f" ({' '.join(details)})" if details else "")
        if g["kind"] == "random":
            n = len(g["windows"])
            label += f", {n} instance failure{'s' if n != 1 else ''}"
        out.append((key, label, g["windows"]))
    return out


def _timeline_data(data: Result | pd.DataFrame, window: str | float | None,
                   span: tuple[float, float] | None
                   ) -> tuple[pd.DataFrame, float, float, str | None]:
    """(time series, start, end, what it is of) for :func:`timeline`: a Result's
    ``timeseries(window)``; a requests frame binned by completion time over ``span``; a
    time-series frame as it is."""
    if isinstance(data, Result):
        x0, x1 = float(data.warmup), float(data.warmup + data.duration)
        w = nice_width(x1 - x0) if window is None else window
        return data.timeseries(w), x0, x1, f"{data.design} at {_fmt_load(data.load)}"
    if not isinstance(data, pd.DataFrame):
        raise TypeError("expected a Result, a requests frame or a time-series frame, got "
                        f"{type(data).__name__}")
    if "latency_ms" in data.columns:
        req = _check_requests(data, "end_s")
        if span is None:
            start = req["start_s"] if "start_s" in req.columns else req["end_s"]
            span = (float(start.min()), float(req["end_s"].max())) if len(req) else (0.0, 1.0)
        x0, x1 = float(span[0]), float(span[1])
        if not x1 > x0:
            raise ValueError(f"span must end after it starts, got {span}")
        w = nice_width(x1 - x0) if window is None else parse_duration(window, allow_zero=False)
        edges = window_edges(x0, x1, w)
        rows = bin_requests(req["end_s"].to_numpy(dtype=float), _status_codes(req),
                            req["latency_ms"].to_numpy(dtype=float) / 1e3, edges)
        return pd.DataFrame(rows), x0, x1, None
    if not {"start_s", "end_s"} <= set(data.columns) or not len(data):
        raise ValueError("a time-series frame needs rows with start_s and end_s (as "
                         "Result.timeseries); a requests frame needs latency_ms")
    x0, x1 = span if span is not None else (float(data["start_s"].iloc[0]),
                                            float(data["end_s"].iloc[-1]))
    return data, float(x0), float(x1), None


def timeline(
    result: Result | pd.DataFrame,
    window: str | float | None = "5s",
    axes: Any = None,
    *,
    metrics: Sequence[str] = ("throughput_rps", "p99_ms", "availability"),
    faults: pd.DataFrame | None = None,
    slo: Mapping[str, float] | None = None,
    span: tuple[float, float] | None = None,
) -> np.ndarray:
    """One panel per metric of ``result.timeseries(window)`` against simulated time.

    ``result`` is a :class:`~simarch.results.result.Result`, or a frame of a saved run: its
    requests (``requests.parquet``, binned by completion time into windows of ``window``
    over ``span``, by default from the first arrival to the last completion) or its time
    series (``timeseries.parquet``, drawn as it is). ``window=None`` picks a round width
    giving at most 60 windows. Every fault window (``result.faults()``, or the ``faults``
    frame with columns fault, kind, target, start_s, end_s) and every deployment of a
    result (``result.deployments()``, start to end) is shaded on every panel, an
    instant fault (a cache flush) drawn as a vertical line; each fault is named once in the
    legend. The instances in service of each autoscaled component (the time series'
    ``instances:<name>`` columns) are drawn as step lines on a second axis of the top panel.
    SLO targets of the design (``result.slo_spec``, or ``slo`` in the same form:
    latency in seconds, availability a fraction) are drawn on the matching panels. ``axes``
    (optional) holds one Axes per metric. Returns the array of Axes.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    if not metrics:
        raise ValueError("give at least one metric")
    ts, x0, x1, subject = _timeline_data(result, window, span)
    if isinstance(result, Result):
        faults = _with_deployments(result.faults() if faults is None else faults, result)
        slo = result.slo_spec if slo is None else slo
    unknown = [m for m in metrics if m not in ts.columns]
    if unknown:
        cols = [c for c in ts.columns if c not in ("start_s", "end_s", "faults", "fault_active")]
        raise ValueError(f"unknown time-series column(s) {', '.join(unknown)} (columns: {', '.join(cols)})")
    own = axes is None
    axes = _panels(axes, len(metrics), (9, 1.1 + 1.9 * len(metrics)))

    x = np.append(ts["start_s"].to_numpy(dtype=float), ts["end_s"].to_numpy(dtype=float)[-1:])
    slo = slo or {}
    slo_handle = None
    for ax, metric in zip(axes, metrics, strict=True):
        y = ts[metric].to_numpy(dtype=float)
        ax.plot(x, np.append(y, y[-1:]), drawstyle="steps-post", color="C0", lw=1.5)
        finite = y[np.isfinite(y)]
        target = None
        if metric == "availability":
            target = slo.get("availability")
        else:
            m = re.fullmatch(r"(p\d+|mean)_ms", metric)
            if m and m.group(1) in slo:
                target = slo[m.group(1)] * 1e3
        if target is not None:
            ax.axhline(target, color=SLO_COLOR, ls=(0, (4, 3)), lw=1.0, zorder=1.5)
            slo_handle = Line2D([], [], color=SLO_COLOR, ls=(0, (4, 3)), lw=1.0)
        if metric == "availability":
            ax.yaxis.set_major_formatter(_percent_formatter())
            lo = min([float(finite.min())] if len(finite) else [1.0]
                     + ([target] if target is not None else []))
            span = max(1.0 - lo, 0.01)
            ax.set_ylim(1.0 - 1.1 * span, 1.0 + 0.1 * span)
        elif _is_latency(metric):
            pos = finite[finite > 0]
            if len(pos) and pos.max() / pos.min() > 30:
                ax.set_yscale("log")
                _plain_log_ticks(ax.yaxis)
        else:
            ax.set_ylim(bottom=0)
        ax.set_ylabel(_metric_label(metric, sep="\n"))
        ax.grid(True, alpha=0.3)
        ax.set_xlim(x0, x1)

    # faults: one colour and one legend entry per fault name
    handles: list[Any] = []
    labels: list[str] = []
    no_faults = faults is None or not len(faults)
    for k, (_, label, windows) in enumerate([] if no_faults else _fault_groups(faults)):
        color = FAULT_COLORS[k % len(FAULT_COLORS)]
        shown = [(a, b) for a, b in windows if a <= x1 and max(a, b) >= x0]
        if not shown:
            continue
        instant = all(not b > a for a, b in shown)
        handles.append(Line2D([], [], color=color, ls="--", lw=1.5) if instant
                       else Patch(color=color, alpha=0.2, lw=0))
        labels.append(label + (f" at {shown[0][0]:g} s" if instant and len(shown) == 1 else ""))
        for ax in axes:
            for a, b in shown:
                if b > a:
                    ax.axvspan(max(a, x0), min(b, x1), color=color, alpha=0.2, lw=0, zorder=0.5)
                else:
                    ax.axvline(a, color=color, ls="--", lw=1.5, alpha=0.9, zorder=1.6)
    if slo_handle is not None:
        handles.append(slo_handle)
        labels.append("SLO")
    # instances of autoscaled components: step lines on a second axis of the top panel
    counts = [c for c in ts.columns if str(c).startswith("instances:")]
    if counts:
        twin = axes[0].twinx()
        for k, col in enumerate(counts):
            y = ts[col].to_numpy(dtype=float)
            color = INSTANCE_COLORS[k % len(INSTANCE_COLORS)]
            twin.plot(x, np.append(y, y[-1:]), drawstyle="steps-post", color=color, lw=1.3, ls="-.")
            handles.append(Line2D([], [], color=color, lw=1.3, ls="-."))
            labels.append(f"instances of {col.split(':', 1)[1]} (right axis)")
        twin.set_ylim(bottom=0)
        twin.set_ylabel("instances")
        twin.yaxis.get_major_locator().set_params(integer=True)
    for ax in axes:
        # panels stacked on a shared time axis need the label once, at the bottom
        if ax is axes[-1] or not ax.get_shared_x_axes().joined(ax, axes[-1]):
            ax.set_xlabel("simulated time (s)")
    w = ts["end_s"].iloc[0] - ts["start_s"].iloc[0]
    axes[0].set_title(f"{subject}, per {w:g} s window" if subject else
                      f"Per {w:g} s window of completion time")
    alone = set(axes[0].figure.axes) == set(axes)  # the panels are the whole figure
    if handles and (own or alone):  # beside the top panel, where it hides no data
        axes[0].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                       frameon=False, borderaxespad=0.0)
    elif handles:  # the caller's layout: stay inside the Axes
        axes[0].legend(handles, labels, loc="best", fontsize=8, framealpha=0.85)
    return axes


# --------------------------------------------------------------------------- utilisation


def _components_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A components table indexed by component: ``Result.components()`` as it is, or
    ``components.parquet`` (with a ``component`` column)."""
    if "component" in frame.columns:
        frame = frame.set_index("component")
    if "utilization" not in frame.columns:
        raise ValueError("the components frame lacks a 'utilization' column (expected "
                         "Result.components() or components.parquet)")
    return frame


def utilization(result: Result | pd.DataFrame, ax: Axes | None = None, *,
                by_instance: bool = False) -> Axes:
    """Horizontal bars of utilisation (% of workers busy) per component, or per instance.

    ``result`` is a :class:`~simarch.results.result.Result`, or a frame of a saved run: its
    components (``components.parquet``) or, with ``by_instance``, its instances
    (``instances.parquet``). A dashed line marks 100% (saturated); bars are coloured green
    to red as in :func:`architecture`. Components with no worker limit (load balancers
    without connections, caches, queues) have no utilisation: they are shown as "no limit".
    """
    import matplotlib as mpl
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    live = isinstance(result, Result)
    if not live and not isinstance(result, pd.DataFrame):
        raise TypeError(f"expected a Result or a components frame, got {type(result).__name__}")
    if by_instance:
        df = result.instances() if live else result
        names = df["instance"].astype(str).tolist() if len(df) else []
        what = "instance"
    else:
        df = result.components() if live else _components_frame(result)
        kinds = df["kind"] if "kind" in df.columns else [None] * len(df)
        names = [f"{n} ({_kind_label(k)})" if k is not None else str(n)
                 for n, k in zip(df.index, kinds, strict=True)]
        what = "component"
    util = pd.to_numeric(df["utilization"], errors="coerce").to_numpy(dtype=float) if len(df) else np.zeros(0)
    n = len(names)
    ax = _new_axes(ax, (7.5, max(2.4, 0.28 * n + 1.3)))
    cmap = mpl.colormaps[UTIL_CMAP]
    ypos = np.arange(n)
    pct = 100 * util
    known = np.isfinite(pct)
    ax.barh(ypos[known], pct[known], height=0.65, color=[cmap(min(u, 1.0)) for u in util[known]],
            edgecolor="0.35", lw=0.6)
    top = max(100.0, float(np.nanmax(pct)) if known.any() else 0.0)
    for y, p, ok in zip(ypos, pct, known, strict=True):
        if ok:
            ax.text(p + top * 0.01, y, f"{p:.1f}%" if p < 10 else f"{p:.0f}%", va="center",
                    ha="left", fontsize=8, color="0.15")
        else:
            ax.text(top * 0.01, y, "no limit", va="center", ha="left", fontsize=8,
                    style="italic", color="0.45")
    ax.axvline(100, color=SLO_COLOR, ls="--", lw=1.2)
    ax.set_yticks(ypos, names, fontsize=9 if n <= 30 else 7)
    ax.set_ylim(n - 0.5, -0.5)  # first component on top
    ax.set_xlim(0, top * 1.12)
    # the 100% tick says what the dashed line means (no legend to hide a bar)
    ax.xaxis.set_major_locator(MultipleLocator(20 if top <= 150 else 50 if top <= 400 else 100))
    ax.xaxis.set_major_formatter(FuncFormatter(
        lambda v, _: f"{v:.0f}%" + ("\nsaturated" if abs(v - 100) < 1e-9 else "")))
    ax.set_xlabel("utilisation (% of workers busy)")
    ax.set_ylabel(what)
    ax.set_title(f"Utilisation per {what}" + (f": {result.design} at {_fmt_load(result.load)}"
                                              if live else ""))
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    return ax


# --------------------------------------------------------------------------- attribution

PHASE_HATCH = {"network": "..", "wait": "//", "service": "", "backoff": "xx", "hedge": "++",
               "timeout": "\\\\", "failed": "oo"}


def _attribution_frame(data: Any, cls: str, load: float | None) -> tuple[pd.DataFrame, str]:
    """The attribution rows to draw, with a ``bar`` label per band (and design), and a title."""
    if isinstance(data, Result):
        df = data.attribution()
        title = f"Where the time goes: {data.design} at {_fmt_load(data.load)}"
    elif hasattr(data, "attribution") and isinstance(data.attribution, pd.DataFrame):
        df = data.attribution  # a Comparison
        title = "Where the time goes"
    elif isinstance(data, pd.DataFrame):
        df = data
        title = "Where the time goes"
    else:
        raise TypeError(f"expected a Result, a Comparison or an attribution frame, got {type(data).__name__}")
    if not len(df):
        raise SimarchError("nothing to draw: the attribution is empty (a comparison needs "
                           "compare(..., attribution=True))")
    df = df.copy()
    if "class" in df.columns:
        if cls not in set(df["class"]):
            raise SimarchError(f"no class {cls!r} in the attribution; it has {', '.join(map(str, sorted(set(df['class']))))}")
        df = df[df["class"] == cls]
        if cls != "all":
            title += f", class {cls}"
    if "design" in df.columns:
        loads = sorted(set(df["load"]))
        at = loads[-1] if load is None else load
        if at not in loads:
            raise SimarchError(f"no load {at:g}x in the comparison's attribution; it has "
                               f"{', '.join(f'{x:g}x' for x in loads)}")
        df = df[df["load"] == at]
        df["bar"] = df["design"].astype(str) + "\n" + df["band"].astype(str)
        title += f" at {_fmt_load(at)}"
    else:
        df["bar"] = df["band"].astype(str)
    return df, title


def attribution(data: Any, ax: Axes | None = None, *, cls: str = "all", top: int = 7,
                load: float | None = None) -> Axes:
    """Stacked bars of where the time of each latency band goes: one bar per band (the
    median band, the p99 band, beyond p99.9), its segments the shares of the band's time
    per component and phase (wait hatched, network dotted), the band's mean latency at the
    bar's end.

    ``data`` is a :class:`~simarch.results.result.Result` (its :meth:`attribution`), the
    frame that returns, or a :class:`~simarch.study.compare.Comparison` made with
    ``attribution=True`` (one bar per design and band, at ``load``, by default the highest).
    The ``top`` largest (component, phase) pairs get their own colour, the rest are grouped
    as "other"; ``cls`` picks a request class (default ``all``).
    """
    import matplotlib as mpl

    df, title = _attribution_frame(data, cls, load)
    bars = list(dict.fromkeys(df["bar"]))
    weight = df.groupby(["component", "phase"])["share"].max().sort_values(ascending=False)
    keys = list(weight.index[:top])
    comps = list(dict.fromkeys(k[0] for k in keys))
    cmap = mpl.colormaps["tab10"]
    colour = {c: cmap(i % 10) for i, c in enumerate(comps)}
    ax = _new_axes(ax, (8.5, max(2.6, 0.55 * len(bars) + 1.9)))
    ypos = np.arange(len(bars))
    left = np.zeros(len(bars))
    means = {}
    for k in [*keys, ("other", "")]:
        vals = np.zeros(len(bars))
        for i, b in enumerate(bars):
            rows = df[df["bar"] == b]
            if k[0] == "other":
                picked = ~rows.set_index(["component", "phase"]).index.isin(keys)
                vals[i] = rows["share"][picked].sum()
            else:
                vals[i] = rows[(rows["component"] == k[0]) & (rows["phase"] == k[1])]["share"].sum()
            if "band_mean_ms" in rows.columns and len(rows):
                means[b] = float(rows["band_mean_ms"].iloc[0])
        if not vals.any():
            continue
        label = "other" if k[0] == "other" else f"{k[0]} {k[1]}"
        ax.barh(ypos, 100 * vals, left=100 * left, height=0.62,
                color="0.85" if k[0] == "other" else colour[k[0]],
                hatch=None if k[0] == "other" else PHASE_HATCH.get(k[1], ""),
                edgecolor="white", lw=0.8, label=label)
        for y, v, x0 in zip(ypos, vals, left, strict=True):
            if v >= 0.07:
                ax.text(100 * (x0 + v / 2), y, f"{v:.0%}", ha="center", va="center", fontsize=8,
                        color="black", bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                                             "alpha": 0.7})
        left += vals
    for y, b in zip(ypos, bars, strict=True):
        if b in means:
            ax.text(101.5, y, f"mean {means[b]:.3g} ms", va="center", ha="left", fontsize=8, color="0.2")
    ax.set_yticks(ypos, bars, fontsize=9)
    ax.set_ylim(len(bars) - 0.5, -0.5)
    ax.set_xlim(0, 122)
    ax.set_xticks([0, 20, 40, 60, 80, 100], ["0%", "20%", "40%", "60%", "80%", "100%"])
    ax.set_xlabel("share of the band's time on the critical path")
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=4, fontsize=8, frameon=False)
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    return ax


# --------------------------------------------------------------------------- architecture

_LAYOUTS = ("layered", "spring", "circular", "shell", "kamada_kawai", "planar")


def _layered(g: Any, entry: str) -> dict[str, tuple[float, float]]:
    """Left to right by topological generation; within a generation ordered by the mean
    position of the callers (the barycentre heuristic), which keeps crossings few."""
    import networkx as nx

    order = {n: i for i, n in enumerate(g.nodes)}
    pos: dict[str, tuple[float, float]] = {}
    for layer, gen in enumerate(nx.topological_generations(g)):
        if layer == 0:
            nodes = sorted(gen, key=lambda n: (n != entry, order[n]))
        else:
            def key(n: str) -> tuple[float, int]:
                ys = [pos[p][1] for p in g.predecessors(n) if p in pos]
                return (-float(np.mean(ys)) if ys else 0.0, order[n])

            nodes = sorted(gen, key=key)
        m = len(nodes)
        for k, n in enumerate(nodes):
            pos[n] = (float(layer), (m - 1) / 2 - k)
    return pos


def _positions(g: Any, entry: str, layout: str | Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    import networkx as nx

    if isinstance(layout, Mapping):
        missing = [n for n in g.nodes if n not in layout]
        if missing:
            raise ValueError(f"the layout has no position for {', '.join(missing)}")
        return {n: (float(layout[n][0]), float(layout[n][1])) for n in g.nodes}
    if layout == "layered":
        return _layered(g, entry)
    if layout not in _LAYOUTS:
        raise ValueError(f"unknown layout '{layout}' (layouts: {', '.join(_LAYOUTS)}, or a mapping "
                         "name -> (x, y))")
    scale = max(1.5, math.sqrt(g.number_of_nodes()))
    fn = {"spring": lambda: nx.spring_layout(g, seed=1, scale=scale),
          "circular": lambda: nx.circular_layout(g, scale=scale),
          "shell": lambda: nx.shell_layout(g, scale=scale),
          "kamada_kawai": lambda: nx.kamada_kawai_layout(g, scale=scale),
          "planar": lambda: nx.planar_layout(g, scale=scale)}[layout]
    return {n: (float(p[0]), float(p[1])) for n, p in fn().items()}


def _blocked(pos: Mapping[str, tuple[float, float]], u: str, v: str, clearance: float = 0.3) -> bool:
    """Whether the straight segment u -> v passes close to a third node."""
    p, q = np.asarray(pos[u]), np.asarray(pos[v])
    d = q - p
    length2 = float(d @ d)
    if length2 == 0:
        return False
    for n, w in pos.items():
        if n in (u, v):
            continue
        t = float((np.asarray(w) - p) @ d) / length2
        if 0.05 < t < 0.95 and np.linalg.norm(p + t * d - np.asarray(w)) < clearance:
            return True
    return False


def _edge_text(calls: Sequence[Any], from_queue: bool = False) -> str:
    if from_queue:
        return "consumers"
    parts = []
    for c in calls:
        bits = []
        if c.on == "miss":
            bits.append("miss")
        if c.requests is not None:
            bits.append(", ".join(c.requests))
        if c.probability < 1:
            bits.append(f"{c.probability:.0%}")
        if c.mode != "call":
            bits.append(c.mode)
        if bits:
            parts.append(" ".join(bits))
    return "; ".join(parts)


def _node_utilization(arch: Architecture, result: Result | pd.DataFrame | None,
                      capacity: Any) -> tuple[dict[str, float] | None, dict[str, float], str]:
    """(utilisation per component or None, cache hit ratios, where the numbers come from)."""
    hits: dict[str, float] = {}
    if result is not None:
        live = isinstance(result, Result)
        comps = result.components() if live else _components_frame(result)
        util = pd.to_numeric(comps["utilization"], errors="coerce").to_dict()
        if "hit_ratio" in comps:
            hits = {n: float(h) for n, h in comps["hit_ratio"].items() if pd.notna(h)}
        return util, hits, "simulated" + (f" at {_fmt_load(result.load)}" if live else "")
    if capacity is None or capacity is False:
        return None, hits, ""

    load = None
    if capacity is True:
        capacity = capacity_report(arch)
    if isinstance(capacity, CapacityReport):
        load = capacity.load
        hits = {k: float(v) for k, v in capacity.hit_ratios.items()}
        capacity = capacity.table
    if not isinstance(capacity, pd.DataFrame) or "utilization" not in capacity.columns:
        raise TypeError("capacity is a CapacityReport, its table (a DataFrame with a "
                        "'utilization' column) or True")
    util = pd.to_numeric(capacity["utilization"], errors="coerce").to_dict()
    return util, hits, "estimated" + (f" at {_fmt_load(load)}" if load is not None else "")


def _spof_names(arch: Architecture, spof: Any) -> tuple[set[str], list[str]]:
    if spof is None or spof is False:
        return set(), []

    if spof is True:
        static, zones = static_spof(arch)
        return ({str(n) for n in static.index[static["spof"]]},
                [str(z) for z in zones.index[zones["spof"]]] if len(zones) else [])
    if isinstance(spof, SpofReport):
        return set(spof.spofs), list(spof.zone_spofs)
    if isinstance(spof, str):
        spof = [spof]
    names = {str(n) for n in spof}
    unknown = names - set(arch.graph.nodes)
    if unknown:
        raise ValueError(f"unknown component(s) {', '.join(sorted(unknown))} in spof")
    return names, []


def _fit_fontsize(ax: Axes, pos: Mapping[str, tuple[float, float]], labels: Mapping[str, list[str]],
                  xlim: tuple[float, float], ylim: tuple[float, float], *, colorbar: bool,
                  largest: float = 9.0, smallest: float = 4.5) -> float:
    """The largest font size (points, at most ``largest``) at which the node boxes neither
    overlap each other nor leave the Axes, judged from the Axes' current size."""
    fig = ax.figure
    box = ax.get_position()
    w_pt = box.width * fig.get_figwidth() * 72 * (0.88 if colorbar else 1.0)
    h_pt = box.height * fig.get_figheight() * 72
    sx = w_pt / (xlim[1] - xlim[0])  # points per data unit
    sy = h_pt / (ylim[1] - ylim[0])
    # a box in units of the font size: about 0.62 em per character, 1.2 em per line, 1 em of pad
    size = {n: (0.62 * max(len(s) for s in lines) + 1.0, 1.2 * len(lines) + 1.0)
            for n, lines in labels.items()}
    best = largest
    names = list(pos)
    for i, a in enumerate(names):
        wa, ha = size[a]
        # inside the Axes (with room above for a SPOF badge)
        room_x = min(pos[a][0] - xlim[0], xlim[1] - pos[a][0]) * sx
        room_y = min(pos[a][1] - ylim[0], ylim[1] - pos[a][1]) * sy
        best = min(best, room_x / (0.55 * wa), room_y / (0.55 * ha + 1.2))
        for b in names[i + 1:]:
            wb, hb = size[b]
            dx = abs(pos[a][0] - pos[b][0]) * sx
            dy = abs(pos[a][1] - pos[b][1]) * sy
            best = min(best, max(dx / (0.6 * (wa + wb)), dy / (0.6 * (ha + hb) + 1.5)))
    return max(smallest, best)


def _node_text(name: str, comp: Any) -> list[str]:
    """The lines of a node: its name; its kind's label with ``xN`` for N instances; the
    other counts of its copies (``4 shards, 2 replicas``), from the kind's ``count_fields``;
    its zone(s)."""
    k = kind_of(comp.kind)
    counts = {f: int(getattr(comp, f)) for f in k.count_fields}
    head = k.label + (f" x{counts['instances']}" if counts.get("instances", 1) > 1 else "")
    lines = [str(name), head]
    more = [f"{n} {f}" for f, n in counts.items() if f != "instances" and n > 1]
    if more:
        lines.append(", ".join(more))
    if comp.zones:
        lines.append(("zones " if len(comp.zones) > 1 else "zone ") + ", ".join(comp.zones))
    return lines


def _luminance(rgba: Sequence[float]) -> float:
    r, g, b = rgba[:3]
    return 0.299 * r + 0.587 * g + 0.114 * b


def _fallback_edges(arch: Architecture) -> list[tuple[str, str]]:
    return [(c.source, c.fallback) for c in arch.spec.calls if c.fallback is not None]


def _arch_positions(arch: Architecture, layout: str | Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """Node positions of the call graph with its fallback edges."""
    import networkx as nx

    lg = nx.DiGraph()
    lg.add_nodes_from(arch.graph.nodes)
    lg.add_edges_from(arch.graph.edges)
    lg.add_edges_from(_fallback_edges(arch))
    return _positions(lg, arch.entry, layout)


def _figsize(pos: Mapping[str, tuple[float, float]], layout: Any, *, colorbar: bool) -> tuple[float, float]:
    if layout != "layered":
        return (8.0, 6.0)
    xs = np.array([p[0] for p in pos.values()])
    ys = np.array([p[1] for p in pos.values()])
    return (max(6.0, 2.1 * (np.ptp(xs) + 1) + (1.6 if colorbar else 0.6)),
            max(3.2, 1.25 * (np.ptp(ys) + 1) + 1.6))


def architecture_size(arch: Architecture | Any, *, layout: str | Mapping[str, Any] = "layered",
                      colorbar: bool = False) -> tuple[float, float]:
    """The size (inches) of the figure :func:`architecture` makes for ``arch`` when it is
    given no Axes (``colorbar``: with a utilisation colour bar), for a caller that makes
    the figure itself."""
    if not isinstance(arch, Architecture):
        arch = load_arch(arch)
    return _figsize(_arch_positions(arch, layout), layout, colorbar=colorbar)


def architecture(
    arch: Architecture | Any,
    ax: Axes | None = None,
    *,
    result: Result | pd.DataFrame | None = None,
    capacity: CapacityReport | pd.DataFrame | bool | None = None,
    spof: SpofReport | Sequence[str] | bool | None = None,
    layout: str | Mapping[str, Any] = "layered",
) -> Axes:
    """Draw the call graph of a design.

    Each node shows the component's name, its kind (the kind's ``label``) with ``xN`` for N
    instances, the shards and replicas of a datastore, and its zone(s). Nodes are coloured
    by utilisation, 0-100% on a colour bar: measured, from ``result.components()`` (or a
    saved run's components frame), or else estimated, from ``capacity`` (a
    :class:`~simarch.analysis.capacity.CapacityReport`, its table, or ``True`` to compute
    it). A node without a utilisation (no worker limit, or neither source given) is filled
    with its kind's ``colour``; with a utilisation source it says "no limit" (caches their
    hit ratio when known). ``spof`` (a :class:`~simarch.analysis.spof.SpofReport`, a list of
    component names, or ``True`` for the static analysis) marks single points of failure
    with a thick red outline and the word SPOF. Edges name the request classes a filtered
    call carries, "miss" for a cache's on-miss calls and the share of probabilistic calls;
    ``async`` and ``forward`` calls are dashed, fallbacks dotted. ``layout`` is ``"layered"``
    (left to right from the entry by topological generation), a networkx layout name
    (``spring``, ``circular``, ``shell``, ``kamada_kawai``, ``planar``) or a mapping
    ``name -> (x, y)``.
    """
    import matplotlib as mpl
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch, Patch
    from matplotlib.transforms import Bbox


    if not isinstance(arch, Architecture):
        arch = load_arch(arch)
    g = arch.graph
    spec = arch.spec
    fallbacks = _fallback_edges(arch)
    pos = _arch_positions(arch, layout)
    util, hits, source = _node_utilization(arch, result, capacity)
    spofs, zone_spofs = _spof_names(arch, spof)

    xs = np.array([p[0] for p in pos.values()])
    ys = np.array([p[1] for p in pos.values()])
    if ax is None:
        ax = _new_axes(None, _figsize(pos, layout, colorbar=util is not None))

    pad_x, pad_y = 0.6, 0.75
    xlim = (xs.min() - pad_x, xs.max() + pad_x)
    ylim = (ys.min() - pad_y, ys.max() + pad_y)
    cmap = mpl.colormaps[UTIL_CMAP]
    node_lines: dict[str, list[str]] = {}
    node_fc: dict[str, Any] = {}
    for n in g.nodes:
        comp = spec.components[n]
        lines = _node_text(n, comp)
        fc: Any = kind_of(comp.kind).colour
        if util is not None:
            u = util.get(n, math.nan)
            if u is not None and not (isinstance(u, float) and math.isnan(u)):
                fc = cmap(min(max(float(u), 0.0), 1.0))
                lines.append(f"{100 * float(u):.0f}% busy")
            else:
                lines.append(f"hit {hits[n]:.0%}" if n in hits else "no limit")
        node_lines[n] = lines
        node_fc[n] = mpl.colors.to_rgba(fc)
    fontsize = _fit_fontsize(ax, pos, node_lines, xlim, ylim, colorbar=util is not None)

    texts = {}
    for n, lines in node_lines.items():
        rgba = node_fc[n]
        is_spof = n in spofs
        texts[n] = ax.text(
            *pos[n], "\n".join(lines), ha="center", va="center", fontsize=fontsize,
            color="white" if _luminance(rgba) < 0.45 else "black", zorder=3,
            bbox={"boxstyle": "round,pad=0.5", "fc": rgba,
                  "ec": SLO_COLOR if is_spof else "0.3", "lw": 3.0 if is_spof else 1.0})
        texts[n].set_gid(f"node:{n}")
        if is_spof:
            half_h = len(lines) * fontsize * 1.2 / 2 + 0.5 * fontsize + 2.5
            ax.annotate("SPOF", xy=pos[n], xytext=(0, half_h), textcoords="offset points",
                        ha="center", va="bottom", fontsize=min(7.5, 0.85 * fontsize),
                        fontweight="bold", color="white", zorder=6,
                        bbox={"boxstyle": "round,pad=0.2", "fc": SLO_COLOR, "ec": "none"})

    def midpoint(p: tuple[float, float], q: tuple[float, float], rad: float):
        # the middle of matplotlib's arc3 connection (a quadratic Bezier), in display space
        def at(renderer: Any) -> Any:
            (x1, y1), (x2, y2) = ax.transData.transform([p, q])
            dx, dy = x2 - x1, y2 - y1
            mx, my = (x1 + x2) / 2 + rad / 2 * dy, (y1 + y2) / 2 - rad / 2 * dx
            return Bbox.from_bounds(mx, my, 0, 0)

        return at

    styles_used: dict[str, Any] = {}

    def edge(u: str, v: str, ls: Any, rad: float, label: str, color: str = "0.25") -> None:
        arrow = FancyArrowPatch(
            pos[u], pos[v], patchA=texts[u].get_bbox_patch(), patchB=texts[v].get_bbox_patch(),
            arrowstyle="-|>", mutation_scale=min(15.0, 1.7 * fontsize), lw=1.4, color=color, linestyle=ls,
            connectionstyle=f"arc3,rad={rad}", shrinkA=2, shrinkB=2, zorder=4)
        ax.add_patch(arrow)
        if label:
            ax.annotate(label, xy=(0.5, 0.5), xycoords=midpoint(pos[u], pos[v], rad),
                        ha="center", va="center", fontsize=min(8.0, 0.9 * fontsize), color="0.2", zorder=6,
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85})

    for u, v, data in g.edges(data=True):
        calls = data.get("calls", [])
        if not calls:
            continue  # a fallback-only edge, drawn below
        dashed = bool(calls) and all(c.mode in ("async", "forward") for c in calls)
        ls = (0, (5, 3)) if dashed else "-"
        styles_used["async / forward" if dashed else "call"] = ls
        rad = -0.3 if _blocked(pos, u, v) else 0.0
        edge(u, v, ls, rad, _edge_text(calls, from_queue=not kind_of(g.nodes[u]["kind"]).request_waits_for_calls))
    for u, v in dict.fromkeys(fallbacks):
        styles_used["fallback"] = ":"
        rad = 0.3 if g.edges[u, v]["calls"] or _blocked(pos, u, v) else 0.0
        edge(u, v, ":", rad, "fallback", color="0.45")

    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_axis_off()
    title = arch.name + (f": utilisation {source}" if source else "")
    ax.set_title(title)

    handles: list[Any] = []
    labels: list[str] = []
    if len(styles_used) > 1 or "call" not in styles_used:
        for name, ls in styles_used.items():
            handles.append(Line2D([], [], color="0.25", ls=ls, lw=1.4))
            labels.append(name)
    if spofs or zone_spofs:
        handles.append(Patch(fc="white", ec=SLO_COLOR, lw=2.5))
        labels.append("single point of failure" + (
            f" (zone SPOF: {', '.join(zone_spofs)})" if zone_spofs else ""))
    if handles:
        ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(handles),
                  fontsize=8, frameon=False)
    if util is not None:
        sm = mpl.cm.ScalarMappable(norm=Normalize(0, 100), cmap=cmap)
        cb = ax.figure.colorbar(sm, ax=ax, fraction=0.035, pad=0.02, shrink=0.9)
        cb.set_label("utilisation (% of workers busy)")
        cb.ax.yaxis.set_major_formatter(_percent_formatter(100))
    return ax


# --------------------------------------------------------------------------- sweeps


def _sort_key(s: pd.Series) -> pd.Series:
    num = pd.to_numeric(s, errors="coerce")
    return num if num.notna().all() else s.astype(str)


def _point_label(columns: Sequence[str], values: Sequence[Any]) -> str:
    return ", ".join(f"load={_fmt_load(float(v))}" if c == "load" else f"{c.removeprefix('param.')}={v}"
                     for c, v in zip(columns, values, strict=True)) or "all points"


def sweep_results(
    dataset: pd.DataFrame,
    axes: Any = None,
    *,
    metrics: Sequence[str] = ("p99_ms", "availability"),
    x: str | None = None,
) -> np.ndarray:
    """The points of a parameter sweep: one panel per metric, one line per combination of
    the other parameters, the mean over replications.

    ``dataset`` is what :func:`simarch.sweep` returns (or ``read_dataset`` of its folder):
    one row per point with ``param.*`` columns, ``load``, the metric columns and ``error``;
    failed points are left out. ``x`` is the column along the x axis: ``"load"`` (the
    default when the sweep has several loads, or no parameters) or a parameter
    (``"api.instances"`` or ``"param.api.instances"``; by default the first one). Panels are
    drawn as by :func:`percentiles_vs_load` (latency on a log axis, availability in percent).
    ``axes`` (optional) holds one Axes per metric. Returns the array of Axes.
    """

    if not isinstance(dataset, pd.DataFrame):
        raise TypeError(f"expected a sweep dataset (a DataFrame), got {type(dataset).__name__}")
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    unknown = [m for m in metrics if m not in dataset.columns]
    if not metrics or unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown) or '(none given)'} (the dataset "
                         f"has {', '.join(c for c in dataset.columns if c.endswith(('_ms', '_rps')) or c == 'availability')})")
    pcols = [c for c in dataset.columns if c.startswith("param.")]
    ok = dataset[dataset["error"].isna()] if "error" in dataset.columns else dataset
    ok = ok[ok[metrics].notna().any(axis=1)]
    if not len(ok):
        raise ValueError("the sweep has no successful point to plot")
    loads = ok["load"].nunique() if "load" in ok.columns else 0
    if x is None:
        x = "load" if loads > 1 or not pcols else pcols[0]
    elif x != "load" and not x.startswith("param."):
        x = f"param.{x}"
    if x not in ok.columns:
        raise ValueError(f"no column {x!r} in the dataset (parameters: "
                         f"{', '.join(c.removeprefix('param.') for c in pcols) or 'none'})")
    lines = [c for c in pcols if c != x] + (["load"] if x != "load" and loads > 1 else [])
    if lines:
        ok = ok.sort_values(lines, key=_sort_key, kind="mergesort")
    keys = ok[lines].itertuples(index=False, name=None) if lines else [()] * len(ok)
    ok = ok.assign(_line=[_point_label(lines, k) for k in keys], _x=ok[x])
    means = ok.groupby(["_line", "_x"], sort=False, dropna=False)[metrics].mean().reset_index()
    tidy = means.melt(id_vars=["_line", "_x"], value_vars=metrics, var_name="metric",
                      value_name="mean").rename(columns={"_line": "design", "_x": "load"})

    own = axes is None
    axes = _panels(axes, len(metrics), (8, 1.2 + 2.6 * len(metrics)))
    x_name = None if x == "load" else x.removeprefix("param.")
    for ax, metric in zip(axes, metrics, strict=True):
        percent = metric == "availability"
        _metric_vs_load(tidy, ax, [metric], None, percent, "", x_name=x_name, legend=False)
        if percent:
            _availability_ylim(ax, tidy[tidy["metric"] == metric], None)
        if ax is not axes[-1] and ax.get_shared_x_axes().joined(ax, axes[-1]):
            ax.set_xlabel("")
    names = [_metric_parts(m)[0] for m in metrics]
    where = f" at {_fmt_load(float(ok['load'].iloc[0]))}" if x != "load" and loads == 1 else ""
    axes[0].set_title(f"{', '.join(names[:-1]) + ' and ' if len(names) > 1 else ''}{names[-1]} "
                      f"vs {x_name or 'load'}{where}")
    handles, labels = axes[0].get_legend_handles_labels()
    if lines:
        alone = set(axes[0].figure.axes) == set(axes)
        if own or alone or len(handles) > 5:
            axes[0].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                           fontsize=8, frameon=False, borderaxespad=0.0)
        else:
            axes[0].legend(handles, labels, loc="best", fontsize=8)
    return axes


def plan_frontier(plan: Any, ax: Axes | None = None) -> Axes:
    """A capacity plan's cost against its p99: every design screened (small dots: the
    models' figures), the cost-versus-p99 frontier, the simulated designs with the upper
    bounds of their p99 intervals (open circles: missed the SLO, filled: met), the chosen
    design (star) and the input design (square), and the p99 target."""
    ax = _new_axes(ax, (7.5, 4.5))
    t = plan.table[plan.table["error"].isna()] if "error" in plan.table else plan.table
    stable = t[t["model_stable"].astype(bool)]
    ax.scatter(stable["cost_month"], stable["model_p99_ms"], s=10, color="0.7",
               label="screened (queueing model)", zorder=1)
    f = plan.frontier
    if len(f):
        ax.step(f["cost_month"], f["p99_ms"], where="post", color="C0", lw=1.2,
                label="frontier", zorder=2)
    sim = t[t["simulated"]]
    if len(sim):
        hi = sim["sim_p99_ms_ci_high"].to_numpy(dtype=float)
        mid = sim["sim_p99_ms"].to_numpy(dtype=float)
        met = sim["sim_meets"].astype(bool).to_numpy()
        ax.errorbar(sim["cost_month"], mid, yerr=[np.zeros_like(mid), np.nan_to_num(hi - mid)],
                    fmt="none", ecolor="C1", elinewidth=1, capsize=3, zorder=3)
        ax.scatter(sim["cost_month"][met], mid[met], s=40, color="C1", zorder=4,
                   label="simulated: meets the SLO")
        ax.scatter(sim["cost_month"][~met], mid[~met], s=40, facecolors="none", edgecolors="C1",
                   zorder=4, label="simulated: misses")
    if plan.chosen is not None:
        c = plan.table.loc[plan.chosen]
        ax.scatter([c["cost_month"]], [c["p99_ms"]], marker="*", s=220, color="C2", zorder=5,
                   label=f"chosen (${c['cost_month']:,.0f}/month)")
    i = plan.table.loc[plan.input_design]
    ax.scatter([i["cost_month"]], [i["p99_ms"]], marker="s", s=60, facecolors="none",
               edgecolors="k", zorder=5, label=f"input design (${i['cost_month']:,.0f}/month)")
    if "p99" in plan.targets:
        target = plan.targets["p99"] * 1e3
        ax.axhline(target, color="C3", ls="--", lw=1, label=f"p99 target {target:g} ms")
        top = np.nanmax(np.r_[stable["model_p99_ms"].to_numpy(dtype=float), target])
        ax.set_ylim(0, min(top, 6 * target) * 1.05)
    ax.set_xlabel("cost per month (USD)")
    ax.set_ylabel("p99 latency (ms)")
    ax.set_title(f"{plan.design}: cost vs p99 at {plan.load:g}x")
    ax.xaxis.set_major_formatter(lambda v, _p: f"${v:,.0f}")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3)
    return ax


# --------------------------------------------------------------------------- inferred call graphs

__all__ += ["call_graph"]


def _call_label(d: Mapping[str, Any]) -> str:
    bits = []
    if d.get("requests"):
        bits.append("only " + ", ".join(d["requests"]))
    p = d.get("probability", 1.0)
    if math.isfinite(p) and p < 0.995:
        bits.append(f"p {p:.2f}")
    calls, eligible = d.get("calls", 0), d.get("eligible", 0)
    per = calls / (p * eligible) if calls and p > 0 and eligible else 0.0
    if per > 1.05:
        bits.append(f"x{per:.2f}")
    if d.get("parallel", 0.0) > 0.5:
        bits.append("parallel")
    if d.get("mode", "call") != "call":
        bits.append(d["mode"])
    return " ".join(bits)


def call_graph(fit: Fit | Any, ax: Axes | None = None, *,
               layout: str | Mapping[str, Any] = "layered") -> Axes:
    """Draw the call graph :func:`simarch.fit` inferred from traces (a :class:`Fit`, or its
    ``graph``, a networkx ``DiGraph``).

    Each node shows the service, its visits and, for a :class:`Fit`, the proposed service
    time; a service seen only from its callers' client spans has a dashed outline. An edge
    is labelled with the operations that make the call (when not all do), the share of the
    caller's visits that make it (``p 0.50``, when below 1), the calls a calling visit makes
    when more than one (``x2.00``) and ``parallel`` when the call overlaps the caller's calls
    to other services; calls that end after their caller (``async``, ``forward``) are
    dashed. ``layout`` as in :func:`architecture`; a graph with a cycle is laid out with
    ``spring``.
    """
    import matplotlib as mpl
    import networkx as nx
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch

    g = fit if isinstance(fit, nx.DiGraph) else getattr(fit, "graph", None)
    if not isinstance(g, nx.DiGraph):
        raise SimarchError(f"call_graph draws a Fit or a networkx DiGraph, got {type(fit).__name__}")
    if g.number_of_nodes() == 0:
        raise SimarchError("the call graph is empty: no services were found in the data")
    roots = [n for n in g.nodes if g.in_degree(n) == 0] or list(g.nodes)
    if layout == "layered" and not nx.is_directed_acyclic_graph(g):
        layout = "spring"
    pos = _positions(g, roots[0], layout)
    xs = np.array([p[0] for p in pos.values()])
    ys = np.array([p[1] for p in pos.values()])
    if ax is None:
        if layout == "layered":  # the node boxes hold a distribution: wider layers
            w, h = _figsize(pos, layout, colorbar=False)
            size = (max(w, 2.8 * (np.ptp(xs) + 1) + 0.6), h)
        else:
            size = (8.0, 6.0)
        ax = _new_axes(None, size)
    pad_x, pad_y = 0.6, 0.75
    xlim = (xs.min() - pad_x, xs.max() + pad_x)
    ylim = (ys.min() - pad_y, ys.max() + pad_y)
    lines: dict[str, list[str]] = {}
    for n, d in g.nodes(data=True):
        text = [str(n), f"{d.get('visits', 0):,} visits"]
        if d.get("service_time"):
            family, _, params = str(d["service_time"]).partition(" ")
            text += [family] + [part for part in params.replace(" + ", "\n+ ").split("\n") if part]
        if d.get("fanout") == "parallel":
            text.append("calls in parallel")
        lines[n] = text
    fontsize = _fit_fontsize(ax, pos, lines, xlim, ylim, colorbar=False)
    texts = {}
    face = mpl.colors.to_rgba("#dbe9f6")
    for n, text in lines.items():
        client = g.nodes[n].get("observed") == "client"
        texts[n] = ax.text(*pos[n], "\n".join(text), ha="center", va="center", fontsize=fontsize,
                           zorder=3, bbox={"boxstyle": "round,pad=0.5",
                                           "fc": "0.93" if client else face, "ec": "0.3",
                                           "lw": 1.0, "ls": "--" if client else "-"})
    dashed_used = False
    for u, v, d in g.edges(data=True):
        dashed = d.get("mode", "call") != "call"
        dashed_used |= dashed
        rad = -0.3 if _blocked(pos, u, v) else 0.0
        arrow = FancyArrowPatch(
            pos[u], pos[v], patchA=texts[u].get_bbox_patch(), patchB=texts[v].get_bbox_patch(),
            arrowstyle="-|>", mutation_scale=min(15.0, 1.7 * fontsize), lw=1.4, color="0.25",
            linestyle=(0, (5, 3)) if dashed else "-", connectionstyle=f"arc3,rad={rad}",
            shrinkA=2, shrinkB=2, zorder=4)
        ax.add_patch(arrow)
        label = _call_label(d)
        if label:
            (x1, y1), (x2, y2) = pos[u], pos[v]
            mx, my = (x1 + x2) / 2 + rad / 2 * (y2 - y1), (y1 + y2) / 2 - rad / 2 * (x2 - x1)
            ax.text(mx, my, label, ha="center", va="center", fontsize=min(8.5, fontsize),
                    color="0.15", zorder=6, bbox={"boxstyle": "round,pad=0.15", "fc": "white",
                                                 "ec": "none", "alpha": 0.9})
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_axis_off()
    source = getattr(fit, "source", None) if g is not fit else None
    ax.set_title("Call graph inferred" + (f" from {source}" if source else ""))
    if dashed_used:
        ax.legend([Line2D([], [], color="0.25", lw=1.4), Line2D([], [], color="0.25", lw=1.4,
                                                                 ls=(0, (5, 3)))],
                  ["call (the caller waits)", "async / forward (ends after the caller)"],
                  loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, fontsize=8, frameon=False)
    return ax


# --------------------------------------------------------------------------- stability


def stability_timeline(study: Any, axes: Any = None, *, designs: Sequence[str] | None = None,
                       smooth: float = 2.0) -> np.ndarray:
    """Goodput (solid) and offered load (dashed) over time around the trigger of a
    :func:`simarch.stability` study, one panel per design and one colour per trigger value
    (the mean over its replications, smoothed over ``smooth`` seconds), time counted from the
    trigger's start; the trigger's windows are shaded. ``study`` is a
    :class:`~simarch.study.metastability.Stability` (or anything with its ``timelines``,
    ``table``, ``vary`` and ``settings``). Returns the array of Axes drawn into."""
    tl = study.timelines
    names = list(dict.fromkeys(study.table["design"])) if designs is None else list(designs)
    if not names:
        raise SimarchError("the study has no designs to draw")
    axs = _panels(axes, len(names), (8.5, 3.0 * len(names) + 0.4))
    vary = study.vary
    fixed = study.settings.get("durations", [0.0])[0]
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("viridis")
    for ax, name in zip(axs, names, strict=True):
        d = tl[tl["design"] == name]
        values = sorted(d["value"].unique())
        shown = values if len(values) <= 8 else [values[i] for i in
                                                 np.linspace(0, len(values) - 1, 8).round().astype(int)]
        table = study.table[study.table["design"] == name].set_index("value")
        for k, v in enumerate(shown):
            color = cmap(k / max(len(shown) - 1, 1) * 0.9)
            g = d[d["value"] == v].groupby("t_s")[["goodput_rps", "offered_rps"]].mean()
            n = max(1, int(round(smooth / max(np.diff(g.index.to_numpy()).min(initial=1.0), 1e-9))))
            good = g["goodput_rps"].rolling(n, min_periods=1, center=True).mean()
            offered = g["offered_rps"].rolling(n, min_periods=1, center=True).mean()
            share = table["share"].get(v, math.nan)
            label = (f"{v:g} s" if vary == "duration" else f"{v:g}x") + (
                f" ({share:.0%} recover)" if math.isfinite(share) else "")
            ax.plot(g.index, good, color=color, lw=1.6, label=label)
            ax.plot(g.index, offered, color=color, lw=0.9, ls="--", alpha=0.7)
            length = v if vary == "duration" else fixed
            ax.axvspan(0.0, max(length, 0.05), color="crimson", alpha=0.06, lw=0)
        ax.set_title(name, fontsize=10)
        ax.set_ylabel("requests/s")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7, loc="lower right", title=("trigger length" if vary == "duration"
                                                         else "trigger factor"), title_fontsize=7)
    axs[-1].set_xlabel("time from the trigger's start (s); solid: goodput, dashed: offered")
    return axs

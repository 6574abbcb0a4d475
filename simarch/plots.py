"""Figures for results and designs (matplotlib).

Every function draws into the ``ax`` (or ``axes``) it is given, or into a new figure when
none is given, and returns what it drew into; none of them calls ``plt.show()`` or changes
matplotlib's global settings, so they work in notebooks, scripts and under the Agg backend::

    from simarch import plots
    ax = plots.latency_cdf({"before": r1, "after": r2})
    ax.figure.savefig("cdf.png")

* :func:`latency_cdf`: empirical CDF of end-to-end latency, percentiles marked.
* :func:`percentiles_vs_load`, :func:`availability_vs_load`: a metric against the load
  multiplier per design, with its confidence band (the "hockey stick").
* :func:`timeline`: throughput, latency and availability over simulated time, faults shaded.
* :func:`utilization`: utilisation per component or per instance.
* :func:`architecture`: the call graph, coloured by utilisation, single points of failure
  marked.

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
from .kinds import kind as kind_of
from .model.architecture import Architecture
from .model.architecture import load as load_arch
from .model.units import parse_multiplier
from .results.result import Result

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "latency_cdf",
    "percentiles_vs_load",
    "availability_vs_load",
    "timeline",
    "utilization",
    "architecture",
]

UTIL_CMAP = "RdYlGn_r"  # green (idle) -> yellow -> red (saturated), shared by bars and nodes
SLO_COLOR = "crimson"
FAULT_COLORS = ("tab:red", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
                "tab:cyan", "tab:gray")
NEUTRAL_NODE = "#e6edf5"
NO_LIMIT_NODE = "#d9d9d9"
LINE_STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
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
    than a factor of 20, the 2, 3 and 5 minor ticks are labelled too."""
    from matplotlib.ticker import FuncFormatter

    def major(v: float, _: Any) -> str:
        return f"{v:g}"

    def minor(v: float, _: Any) -> str:
        lo, hi = sorted(axis.get_view_interval())
        if not (lo > 0 and hi / lo <= 20 and v > 0):
            return ""
        mantissa = v / 10 ** math.floor(math.log10(v) + 1e-9)
        return f"{v:g}" if round(mantissa) in (2, 3, 5) else ""

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


# --------------------------------------------------------------------------- latency CDF


def _labelled_results(results: Any) -> list[tuple[str, Result]]:

    if isinstance(results, Result):
        items: list[tuple[str | None, Any]] = [(None, results)]
    elif isinstance(results, Mapping):
        items = [(str(k), v) for k, v in results.items()]
    elif isinstance(results, Sequence) or hasattr(results, "__iter__"):
        items = [(None, r) for r in results]
    else:
        raise TypeError(f"expected a Result, a list of Results or a dict of them, got {type(results).__name__}")
    if not items:
        raise ValueError("no results to plot")
    for label, r in items:
        if not isinstance(r, Result):
            raise TypeError(f"expected Result objects, got {type(r).__name__}"
                            + (f" for '{label}'" if label else ""))
    if all(label is not None for label, _ in items):
        return [(str(label), r) for label, r in items]
    rs = [r for _, r in items]
    labels = [r.design for r in rs]
    if len(set(labels)) < len(labels):
        labels = [f"{r.design} @ {_fmt_load(r.load)}" for r in rs]
    if len(set(labels)) < len(labels):
        labels = [f"{lab}, seed {r.seed}" for lab, r in zip(labels, rs, strict=True)]
    return [(lab if given is None else str(given), r)
            for lab, (given, r) in zip(labels, items, strict=True)]


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


def latency_cdf(
    results: Result | Sequence[Result] | Mapping[str, Result],
    ax: Axes | None = None,
    *,
    by_class: bool = False,
    log: bool = True,
    marks: Sequence[float] | None = (50, 99, 99.9),
) -> Axes:
    """Empirical CDF of the end-to-end latency (ms) of successful requests.

    ``results`` is one :class:`~simarch.result.Result`, a list of them, or a mapping
    ``label -> Result``; without labels each curve is named after its design (and its load,
    and seed, when designs repeat). ``by_class`` draws one curve per request class of a single
    result, plus the overall curve. ``log`` puts the latency axis on a log scale. The
    percentiles in ``marks`` are shown on every curve as small circles, and for the first
    curve (the overall one with ``by_class``) as dotted lines with their values.
    """
    import matplotlib.transforms as mtransforms

    items = _labelled_results(results)
    curves: list[tuple[str, np.ndarray, dict[str, Any]]] = []
    annotate = 0
    if by_class:
        if len(items) != 1:
            raise ValueError(f"by_class=True needs a single Result, got {len(items)}")
        label, r = items[0]
        ok = r.status == 0
        for i, cls in enumerate(r.classes):
            curves.append((cls, r.latency[ok & (r.cls == i)] * 1e3, {}))
        if len(r.classes) > 1:
            curves.append(("all classes", r.latency[ok] * 1e3, {"color": "black", "ls": "--", "lw": 1.2}))
            annotate = len(curves) - 1
        title = f"Latency CDF per request class: {label}"
    else:
        for label, r in items:
            curves.append((label, r.latency[r.status == 0] * 1e3, {}))
        title = "Latency CDF" + (f": {items[0][0]}" if len(items) == 1 else "")

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


def _metric_vs_load(table: pd.DataFrame, ax: Axes | None, metrics: list[str], slo: float | None,
                    percent: bool, title: str | None) -> Axes:
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
    data["_load"] = _as_loads(data["load"])
    has_ci = {"ci_low", "ci_high"} <= set(data.columns)
    designs = list(dict.fromkeys(data["design"].astype(str)))

    ax = _new_axes(ax, (7.5, 4.5))
    drew_band = False
    for i, design in enumerate(designs):
        color = f"C{i % 10}"
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

    latency = all(_is_latency(m) for m in metrics)
    values = data[["mean"] + (["ci_low", "ci_high"] if has_ci else [])].to_numpy(dtype=float)
    if latency and (values[np.isfinite(values)] > 0).any():
        ax.set_yscale("log")
        _plain_log_ticks(ax.yaxis)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.set_xlabel("load (multiple of the design's workload)")
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
            title = "Latency percentiles vs load"
        else:
            title = ", ".join(_metric_parts(m)[0] for m in metrics) + " vs load"
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
) -> Axes:
    """A metric against load, one line per design: the latency "hockey stick".

    ``table`` is tidy, one row per design x load x metric, with columns ``design``, ``load``
    (a multiplier: ``2`` or ``"2x"``), ``metric`` (``p50_ms``, ``p99_ms``, ``p999_ms``,
    ``throughput_rps``, ``availability``...), ``mean`` and optionally ``ci_low`` and
    ``ci_high``, drawn as a shaded band. ``metric`` is one name or a list (one line style per
    metric, one colour per design). Latency metrics get a log y axis. ``slo`` draws a
    horizontal line at that value, in the metric's units (ms for latency).
    """
    metrics = [metric] if isinstance(metric, str) else list(metric)
    if not metrics:
        raise ValueError("give at least one metric")
    percent = metrics == ["availability"]
    return _metric_vs_load(table, ax, metrics, slo, percent, None)


def availability_vs_load(
    table: pd.DataFrame,
    ax: Axes | None = None,
    *,
    slo: float | None = None,
) -> Axes:
    """Availability (successful over finished requests) against load, one line per design.

    ``table`` is the tidy table :func:`percentiles_vs_load` takes; its ``availability`` rows
    are drawn, the y axis in percent. ``slo`` is the target as a fraction (``0.999``); a
    value above 1 is read as a percentage (``99.9``).
    """
    if slo is not None and slo > 1:
        slo = slo / 100.0
    ax = _metric_vs_load(table, ax, ["availability"], slo, True, "Availability vs load")
    # nothing is above 100%: the axis ends just above it and starts below the lowest value
    rows = table[table["metric"] == "availability"]
    cols = [c for c in ("mean", "ci_low") if c in rows.columns]
    values = rows[cols].to_numpy(dtype=float).ravel()
    values = values[np.isfinite(values)]
    lo = min([*values.tolist(), *([slo] if slo is not None else []), 1.0])
    span = max(1.0 - lo, 1e-3)
    ax.set_ylim(1.0 - 1.12 * span, 1.0 + 0.04 * span)
    return ax


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
        raise ValueError(f"timeline draws one panel per metric: {n} metric(s) but {len(arr)} Axes given")
    return arr


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


def timeline(
    result: Result,
    window: str | float = "5s",
    axes: Any = None,
    *,
    metrics: Sequence[str] = ("throughput_rps", "p99_ms", "availability"),
) -> np.ndarray:
    """One panel per metric of ``result.timeseries(window)`` against simulated time.

    Every fault window of ``result.faults()`` is shaded on every panel, an instant fault (a
    cache flush) drawn as a vertical line; each fault is named once in the legend. SLO targets
    of the design are drawn on the matching panels. ``axes`` (optional) holds one Axes per
    metric. Returns the array of Axes.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    if not metrics:
        raise ValueError("give at least one metric")
    ts = result.timeseries(window)
    unknown = [m for m in metrics if m not in ts.columns]
    if unknown:
        cols = [c for c in ts.columns if c not in ("start_s", "end_s", "faults", "fault_active")]
        raise ValueError(f"unknown time-series column(s) {', '.join(unknown)} (columns: {', '.join(cols)})")
    own = axes is None
    if own:
        _, axs = plt.subplots(len(metrics), 1, sharex=True, squeeze=False, layout="constrained",
                              figsize=(9, 1.1 + 1.9 * len(metrics)))
        axes = axs[:, 0]
    axes = _as_axes_array(axes, len(metrics))

    x0 = float(result.warmup)
    x1 = float(result.warmup + result.duration)
    x = np.append(ts["start_s"].to_numpy(dtype=float), ts["end_s"].to_numpy(dtype=float)[-1:])
    slo = result.slo_spec or {}
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
    faults = result.faults()
    for k, (_, label, windows) in enumerate(_fault_groups(faults)):
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
    for ax in axes:
        # panels stacked on a shared time axis need the label once, at the bottom
        if ax is axes[-1] or not ax.get_shared_x_axes().joined(ax, axes[-1]):
            ax.set_xlabel("simulated time (s)")
    w = ts["end_s"].iloc[0] - ts["start_s"].iloc[0]
    axes[0].set_title(f"{result.design} at {_fmt_load(result.load)}, per {w:g} s window")
    if handles and own:  # beside the top panel, where it hides no data
        axes[0].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                       frameon=False, borderaxespad=0.0)
    elif handles:  # the caller's layout: stay inside the Axes
        axes[0].legend(handles, labels, loc="best", fontsize=8, framealpha=0.85)
    return axes


# --------------------------------------------------------------------------- utilisation


def utilization(result: Result, ax: Axes | None = None, *, by_instance: bool = False) -> Axes:
    """Horizontal bars of utilisation (% of workers busy) per component, or per instance.

    A dashed line marks 100% (saturated); bars are coloured green to red as in
    :func:`architecture`. Components with no worker limit (load balancers
    without connections, caches, queues) have no utilisation: they are shown as "no limit".
    """
    import matplotlib as mpl
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    if by_instance:
        df = result.instances()
        names = df["instance"].astype(str).tolist() if len(df) else []
        what = "instance"
    else:
        df = result.components()
        names = [f"{n} ({k.replace('_', ' ')})" for n, k in zip(df.index, df["kind"], strict=True)]
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
    ax.set_title(f"Utilisation per {what}: {result.design} at {_fmt_load(result.load)}")
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


def _node_utilization(arch: Architecture, result: Result | None,
                      capacity: Any) -> tuple[dict[str, float] | None, dict[str, float], str]:
    """(utilisation per component or None, cache hit ratios, where the numbers come from)."""
    hits: dict[str, float] = {}
    if result is not None:
        comps = result.components()
        util = pd.to_numeric(comps["utilization"], errors="coerce").to_dict()
        if "hit_ratio" in comps:
            hits = {n: float(h) for n, h in comps["hit_ratio"].items() if pd.notna(h)}
        return util, hits, f"simulated at {_fmt_load(result.load)}"
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


def _luminance(rgba: Sequence[float]) -> float:
    r, g, b = rgba[:3]
    return 0.299 * r + 0.587 * g + 0.114 * b


def architecture(
    arch: Architecture | Any,
    ax: Axes | None = None,
    *,
    result: Result | None = None,
    capacity: CapacityReport | pd.DataFrame | bool | None = None,
    spof: SpofReport | Sequence[str] | bool | None = None,
    layout: str | Mapping[str, Any] = "layered",
) -> Axes:
    """Draw the call graph of a design.

    Nodes are labelled ``name / kind`` and coloured by utilisation, 0-100% on a colour bar:
    measured, from ``result.components()``, or else estimated, from ``capacity`` (a
    :class:`~simarch.capacity.CapacityReport`, its table, or ``True`` to compute it); with
    neither the nodes are neutral. Components without a worker limit say "no limit" (caches
    their hit ratio when known). ``spof`` (a :class:`~simarch.spof.SpofReport`, a list of
    component names, or ``True`` for the static analysis) marks single points of failure
    with a thick red outline and the word SPOF. Edges name the request classes a filtered
    call carries, "miss" for a cache's on-miss calls and the share of probabilistic calls;
    ``async`` and ``forward`` calls are dashed, fallbacks dotted. ``layout`` is ``"layered"``
    (left to right from the entry by topological generation), a networkx layout name
    (``spring``, ``circular``, ``shell``, ``kamada_kawai``, ``planar``) or a mapping
    ``name -> (x, y)``.
    """
    import matplotlib as mpl
    import networkx as nx
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch, Patch
    from matplotlib.transforms import Bbox


    if not isinstance(arch, Architecture):
        arch = load_arch(arch)
    g = arch.graph
    spec = arch.spec
    fallbacks = [(c.source, c.fallback) for c in spec.calls if c.fallback is not None]
    lg = nx.DiGraph()
    lg.add_nodes_from(g.nodes)
    lg.add_edges_from(g.edges)
    lg.add_edges_from(fallbacks)
    pos = _positions(lg, arch.entry, layout)
    util, hits, source = _node_utilization(arch, result, capacity)
    spofs, zone_spofs = _spof_names(arch, spof)

    xs = np.array([p[0] for p in pos.values()])
    ys = np.array([p[1] for p in pos.values()])
    if ax is None:
        if layout == "layered":
            width = max(6.0, 2.1 * (np.ptp(xs) + 1) + (1.6 if util is not None else 0.6))
            height = max(3.2, 1.25 * (np.ptp(ys) + 1) + 1.6)
        else:
            width, height = (8.0, 6.0)
        ax = _new_axes(None, (width, height))

    pad_x, pad_y = 0.6, 0.75
    xlim = (xs.min() - pad_x, xs.max() + pad_x)
    ylim = (ys.min() - pad_y, ys.max() + pad_y)
    cmap = mpl.colormaps[UTIL_CMAP]
    node_lines: dict[str, list[str]] = {}
    node_fc: dict[str, Any] = {}
    for n in g.nodes:
        kind = g.nodes[n]["kind"]
        lines = [str(n), kind.replace("_", " ")]
        fc: Any = NEUTRAL_NODE
        if util is not None:
            u = util.get(n, math.nan)
            if u is not None and not (isinstance(u, float) and math.isnan(u)):
                fc = cmap(min(max(float(u), 0.0), 1.0))
                lines.append(f"{100 * float(u):.0f}% busy")
            else:
                fc = NO_LIMIT_NODE
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

"""Readable text reports of a run and of a capacity analysis (what the CLI prints)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from .capacity import CapacityReport
    from .result import Result


def _fmt(v: Any, kind: str = "num") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if kind == "pct":
        return f"{v:.2%}" if v < 0.9999 or v == 1.0 else f"{v:.4%}"
    if kind == "util":
        return f"{v:.1%}"
    if kind == "ms":
        return f"{v:.3g}" if v < 100 else f"{v:,.0f}"
    if kind == "int":
        return f"{int(v):,}"
    if kind == "x":
        return "never" if math.isinf(v) else f"{v:.2f}x"
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def _table(df: pd.DataFrame, formats: dict[str, str], index_name: str) -> str:
    cols = [c for c in formats if c in df.columns]
    body = pd.DataFrame({c: [_fmt(v, formats[c]) for v in df[c]] for c in cols}, index=df.index)
    body.index.name = index_name
    return body.to_string()


def format_result(r: Result) -> str:
    """The report of one run: end-to-end and per class, per component, and the SLO verdict."""
    lines = [
        f"design {r.design!r}  load {r.load:g}x  window {r.duration:g}s after {r.warmup:g}s warm-up  seed {r.seed}",
        "",
        "End to end (latency of successful requests, ms)",
    ]
    summ = r.summary()
    lines.append(_table(summ, {
        "requests": "int", "in_flight": "int", "throughput_rps": "num", "availability": "pct",
        "rejected": "int",
        "timeout": "int", "failed": "int", "mean_ms": "ms", "p50_ms": "ms", "p95_ms": "ms",
        "p99_ms": "ms", "p999_ms": "ms", "max_ms": "ms"}, "class"))
    lines += ["", "Components (time-weighted queue; latency = time in the component, ms)"]
    comps = r.components()
    lines.append(_table(comps, {
        "kind": "str", "workers": "int", "throughput_rps": "num", "utilization": "util",
        "mean_queue": "num", "max_queue": "int", "mean_wait_ms": "ms", "mean_latency_ms": "ms",
        "p99_latency_ms": "ms", "rejected": "int", "hit_ratio": "pct"}, "component"))
    shards = r.shards()
    if len(shards):
        lines += ["", "Datastore shards"]
        lines.append(_table(shards.set_index(["component", "shard"]), {
            "rate_rps": "num", "share": "pct", "utilization": "util",
            "max_replica_utilization": "util"}, "shard"))
    faults = r.faults()
    if len(faults):
        lines += ["", "Faults"]
        for _, f in faults.iterrows():
            lines.append(f"  {f['fault']:<28} {f['start_s']:>8.1f}s to {f['end_s']:.1f}s")
        uptime = comps["uptime"]
        down = uptime[uptime < 1]
        if len(down):
            lines.append("  uptime in the window: " + ", ".join(f"{n} {u:.2%}" for n, u in down.items()))
    finite = comps["utilization"].dropna()
    if len(finite):
        top = finite.idxmax()
        lines += ["", f"Busiest component: {top} at {finite.max():.1%} utilisation"]
    slo = r.slo()
    if slo is not None:
        lines += ["", "SLO"]
        for target, row in slo.iterrows():
            if target == "stability":
                actual = f"{row['actual']:.1%} in flight at the end"
            elif target == "availability":
                actual = _fmt(row["actual"], "pct")
            else:
                actual = f"{_fmt(row['actual'], 'ms')} ms"
            lines.append(f"  {target:<13} {row['objective']:<30} actual {actual:<32} "
                         f"{'met' if row['met'] else 'MISSED'}")
        lines.append(f"  verdict: {'SLO met' if slo['met'].all() else 'SLO missed'}")
    for w in r.all_warnings():
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def format_capacity(rep: CapacityReport) -> str:
    """The static capacity analysis ``simarch validate`` prints."""
    lines = [f"design {rep.design!r}: spec is valid", "",
             f"Static capacity analysis at {rep.load:g}x load (no queueing; estimates)"]
    lines.append(_table(rep.table, {
        "kind": "str", "arrival_rps": "num", "mean_hold_ms": "ms", "busy_workers": "num",
        "workers": "int", "utilization": "util", "saturates_at": "x", "note": "str"}, "component"))
    lines.append("")
    if rep.bottleneck is None:
        lines.append("Bottleneck: none (no component has a worker limit)")
    else:
        lines.append(f"Bottleneck: {rep.bottleneck}, saturates at {_fmt(rep.saturation_load, 'x')} load")
    for w in rep.warnings:
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def format_spof(rep) -> str:
    """The single-point-of-failure report ``simarch spof`` prints."""
    lines = [f"design {rep.design!r}: single points of failure", ""]
    lines.append("Static analysis (cut vertices of each request class's dependency graph, "
                 "with redundancy)")
    lines.append(_table(rep.static, {"kind": "str", "copies": "int", "critical_for": "str",
                                     "spof": "str", "reason": "str"}, "component"))
    if len(rep.zones):
        lines += ["", "Zones"]
        lines.append(_table(rep.zones, {"critical_for": "str", "spof": "str", "reason": "str"}, "zone"))
    if rep.dynamic is not None:
        b = rep.baseline
        lines += ["", "Dynamic analysis: each component / zone down for the window "
                  f"(baseline availability {_fmt(b.get('availability'), 'pct')}, "
                  f"p99 {_fmt(b.get('p99_ms'), 'ms')} ms)"]
        df = rep.dynamic.copy()
        flags = set(rep.spofs) | set(rep.zone_spofs)
        df["spof"] = ["SPOF" if n in flags else "" for n in df.index]
        lines.append(_table(df, {"killed": "str", "availability_during": "pct", "p99_during_ms": "ms",
                                 "availability_after": "pct", "spof": "str"}, "down"))
    spofs = rep.spofs + [f"zone {z}" for z in rep.zone_spofs]
    lines += ["", f"Single points of failure: {', '.join(spofs) if spofs else 'none'}"]
    return "\n".join(lines)


def format_comparison(cmp) -> str:
    """The report ``simarch compare`` prints: per design and load, mean [CI] of each metric,
    the SLO verdict, the paired differences and the knee."""
    pct = int(round(cmp.confidence * 100))
    lines = [f"Comparison of {', '.join(cmp.designs)}: {cmp.replications} replications per point, "
             f"{pct}% t-intervals, common random numbers (seed {cmp.seed})", ""]
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
    lines.append(pd.DataFrame(rows).to_string(index=False))
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
    for w in getattr(cmp, "warnings", []):
        lines.append(f"warning: {w}")
    return "\n".join(lines)

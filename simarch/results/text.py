"""Readable text: number formatting shared by every text report, and the report of one run
(what ``simarch run`` prints). The analyses and studies format their own reports with
:func:`fmt` and :func:`table`."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from .result import Result


def fmt(v: Any, kind: str = "num") -> str:
    """One value for a text table: ``pct``, ``util``, ``ms``, ``int``, ``x`` (a load
    multiplier) or ``num``; ``-`` when missing."""
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


def table(df: pd.DataFrame, formats: dict[str, str], index_name: str) -> str:
    """The columns of ``df`` named in ``formats``, formatted, as aligned text."""
    cols = [c for c in formats if c in df.columns]
    body = pd.DataFrame({c: [fmt(v, formats[c]) for v in df[c]] for c in cols}, index=df.index)
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
    lines.append(table(summ, {
        "requests": "int", "in_flight": "int", "throughput_rps": "num", "availability": "pct",
        "rejected": "int",
        "timeout": "int", "failed": "int", "mean_ms": "ms", "p50_ms": "ms", "p95_ms": "ms",
        "p99_ms": "ms", "p999_ms": "ms", "max_ms": "ms"}, "class"))
    lines += ["", "Components (time-weighted queue; latency = time in the component, ms)"]
    comps = r.components()
    lines.append(table(comps, {
        "kind": "str", "workers": "int", "throughput_rps": "num", "utilization": "util",
        "mean_queue": "num", "max_queue": "int", "mean_wait_ms": "ms", "mean_latency_ms": "ms",
        "p99_latency_ms": "ms", "rejected": "int", "hit_ratio": "pct"}, "component"))
    shards = r.shards()
    if len(shards):
        lines += ["", "Datastore shards"]
        lines.append(table(shards.set_index(["component", "shard"]), {
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
                actual = fmt(row["actual"], "pct")
            else:
                actual = f"{fmt(row['actual'], 'ms')} ms"
            lines.append(f"  {target:<13} {row['objective']:<30} actual {actual:<32} "
                         f"{'met' if row['met'] else 'MISSED'}")
        lines.append(f"  verdict: {'SLO met' if slo['met'].all() else 'SLO missed'}")
    for w in r.all_warnings():
        lines.append(f"warning: {w}")
    return "\n".join(lines)

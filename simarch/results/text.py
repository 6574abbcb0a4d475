"""Readable text: number formatting shared by every text and HTML report, and the report of
one run (what ``simarch run`` prints). The analyses and studies format their own reports with
:func:`fmt` and :func:`table`, and their notebook tables (``_repr_html_``) with
:func:`html_table`; the HTML report formats its cells with :func:`fmt` too."""

from __future__ import annotations

import html
import math
import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from ..model.pricing import UNITS
from .attribution import verdict

if TYPE_CHECKING:
    import pandas as pd

    from ..model.cost import CostBreakdown
    from .result import Result


def missing(v: Any) -> bool:
    """Whether ``v`` is a missing value (None, NaN, ``pd.NA``, ``pd.NaT``)."""
    pd = sys.modules.get("pandas")  # no pandas loaded: no pandas missing values either
    if v is None or (pd is not None and (v is pd.NA or v is pd.NaT)):
        return True
    return isinstance(v, (float, np.floating)) and math.isnan(v)


def fmt(v: Any, kind: str = "num") -> str:
    """One value for a table: ``pct``, ``util``, ``ms``, ``int``, ``x`` (a computed load
    multiplier, 2 decimals), ``load`` (a load multiplier as given: ``2x``), ``s`` (seconds),
    ``usd`` (dollars: ``$1,234.50``, ``$0.0816``), ``met`` (an SLO verdict: ``met`` or
    ``MISSED``), ``str`` (as is) or ``num``; ``-`` when missing."""
    if missing(v):
        return "-"
    if kind == "str":
        return str(v)
    if kind == "met":
        return "met" if bool(v) else "MISSED"
    if kind == "pct":
        if v < 0.9999 or v == 1.0:
            return f"{v:.2%}"
        return f"{v:.4%}" if v < 0.999999995 else ">99.9999%"  # never "100.0000%" for less than all
    if kind == "util":
        return f"{v:.1%}"
    if kind == "ms":
        return f"{v:.3g}" if abs(v) < 100 else f"{v:,.0f}"
    if kind == "int":
        return f"{int(v):,}"
    if kind == "x":
        return "never" if math.isinf(v) else f"{v:.2f}x" if v >= 0.01 else f"{v:.2g}x"
    if kind == "load":
        return f"{float(v):g}x"
    if kind == "s":
        return f"{float(v):g} s"
    if kind == "usd":
        return usd(v)
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def formatted(df: pd.DataFrame, formats: dict[str, str], index_name: str | None = None) -> pd.DataFrame:
    """The columns of ``df`` named in ``formats`` (those it has), each value as text."""
    import pandas as pd  # on first use: a run itself needs no pandas
    cols = [c for c in formats if c in df.columns]
    body = pd.DataFrame({c: [fmt(v, formats[c]) for v in df[c]] for c in cols}, index=df.index)
    if index_name is not None:
        body.index.name = index_name
    return body


def table(df: pd.DataFrame, formats: dict[str, str], index_name: str) -> str:
    """The columns of ``df`` named in ``formats``, formatted, as aligned text."""
    return formatted(df, formats, index_name).to_string()


def html_table(df: pd.DataFrame, formats: dict[str, str], index_name: str | None = None,
               caption: str | None = None) -> str:
    """The same table as :func:`table`, as escaped HTML, for the ``_repr_html_`` of results
    in a notebook; without ``index_name`` the index is left out."""
    return styled_html(formatted(df, formats, index_name), index=index_name is not None,
                       caption=caption)


def styled_html(body: pd.DataFrame, *, index: bool = True, caption: str | None = None) -> str:
    """A table of text (already formatted) as HTML through a pandas ``Styler``, every cell,
    header and the caption escaped."""
    styler = (body.style.format(escape="html").format_index(escape="html", axis="index")
              .format_index(escape="html", axis="columns"))
    if not index:
        styler = styler.hide(axis="index")
    if caption:
        styler = styler.set_caption(html.escape(caption))
    return styler.to_html()


SUMMARY_FORMATS = {
    "requests": "int", "in_flight": "int", "throughput_rps": "num", "availability": "pct",
    "rejected": "int",
    "timeout": "int", "failed": "int", "unanswered": "int", "mean_ms": "ms", "p50_ms": "ms", "p95_ms": "ms",
    "p99_ms": "ms", "p999_ms": "ms", "max_ms": "ms", "stale_reads": "pct"}
COMPONENT_FORMATS = {
    "kind": "str", "workers": "int", "throughput_rps": "num", "utilization": "util",
    "mean_queue": "num", "max_queue": "int", "mean_wait_ms": "ms", "mean_latency_ms": "ms",
    "p99_latency_ms": "ms", "rejected": "int", "hit_ratio": "pct"}
VISIT_FORMATS = {"visits": "int", "mean_ms": "ms", "p50_ms": "ms", "p90_ms": "ms", "p99_ms": "ms",
                 "p999_ms": "ms"}


def usd(v: Any, signed: bool = False) -> str:
    """An amount of US dollars: cents from one dollar up (``$1,234.50``), four significant
    digits below (``$0.0816``); ``-`` when missing."""
    if missing(v):
        return "-"
    v = float(v)
    if math.isinf(v):
        return "unbounded"
    sign = "-" if v < 0 else ("+" if signed and v > 0 else "")
    a = abs(v)
    if a >= 1 or a == 0:
        return f"{sign}${a:,.2f}"
    text = f"{a:.4g}"
    if "e" not in text and len(text.partition(".")[2]) < 2:
        text = f"{a:.2f}"  # $0.40, not $0.4
    return f"{sign}${text}"


COST_CAPTION = "Cost (USD, on-demand list prices; a month is 730 hours)"


def cost_frame(b: CostBreakdown) -> pd.DataFrame:
    """The lines of a cost breakdown as a DataFrame indexed by component: kind, unit,
    unit_price_usd, quantity, quantity_unit, monthly_usd, source, instance_type, note."""
    import pandas as pd  # on first use: a run itself needs no pandas
    cols = ["kind", "unit", "unit_price_usd", "quantity", "quantity_unit", "monthly_usd", "source",
            "instance_type", "note"]
    df = pd.DataFrame([{"component": ln.component, **ln.to_dict()} for ln in b.lines],
                      columns=["component", *cols])
    return df.set_index("component")


def cost_text_frame(b: CostBreakdown) -> pd.DataFrame:
    """The lines of a cost breakdown as text cells: price, quantity, monthly, source, note."""
    import pandas as pd  # on first use: a run itself needs no pandas
    rows = []
    for ln in b.lines:
        q = ln.quantity
        amount = "-" if missing(q) else (f"{q:,.0f}" if float(q).is_integer() else f"{q:,.4g}")
        rows.append({"component": ln.component, "kind": ln.kind,
                     "price": f"{usd(ln.unit_price)}/{UNITS.get(ln.unit, ln.unit)}",
                     "quantity": f"{amount} {ln.quantity_unit.removesuffix('s') if q == 1 else ln.quantity_unit}",
                     "monthly": usd(ln.monthly_usd),
                     "source": ln.source, "note": ln.note or ""})
    df = pd.DataFrame(rows, columns=["component", "kind", "price", "quantity", "monthly", "source", "note"])
    if not (df["note"] != "").any():
        df = df.drop(columns=["note"])
    return df.set_index("component")


def cost_summary(monthly_usd: float, per_million_usd: float | None, where: str) -> str:
    """The one line of a design's cost: per month, and per million successful requests
    ``where`` (e.g. "at the simulated load")."""
    line = f"Cost: {usd(monthly_usd)}/month"
    if per_million_usd is not None:
        line += f"; {usd(per_million_usd)} per million successful requests {where}"
    return line


def format_cost(b: CostBreakdown, per_million_usd: float | None, where: str) -> list[str]:
    """The cost section of a text report: its table, the components without a price, and
    the one line."""
    lines = [COST_CAPTION, cost_text_frame(b).to_string()]
    if b.unpriced:
        lines.append(f"  not priced (no cost or instance_type): {', '.join(b.unpriced)}")
    lines.append(cost_summary(b.monthly_usd, per_million_usd, where))
    return lines


def format_result(r: Result) -> str:
    """The report of one run: end-to-end and per class, per component, and the SLO verdict."""
    lines = [
        f"design {r.design!r}  load {r.load:g}x  window {r.duration:g}s after {r.warmup:g}s warm-up  seed {r.seed}",
        "",
        "End to end (latency of successful requests, ms)",
    ]
    summ = r.summary()
    lines.append(table(summ, SUMMARY_FORMATS, "class"))
    lines += ["", "Components (time-weighted queue; latency = time in the component and its calls, ms)"]
    comps = r.components()
    lines.append(table(comps, COMPONENT_FORMATS, "component"))
    lines += format_regions(r)
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
    lines += format_deployments(r)
    lines += format_freshness(r)
    visits = r.component_latency()
    if len(visits):
        lines += ["", "Time per visit by component and class (ms; a visit includes its calls)"]
        lines.append(table(visits.set_index(["component", "class"]), VISIT_FORMATS, "class"))
    finite = comps["utilization"].dropna()
    if len(finite):
        top = finite.idxmax()
        lines += ["", f"Busiest component: {top} at {finite.max():.1%} utilisation"]
    lines += format_tail(r)
    if r.cost is not None:
        lines += ["", *format_cost(r.cost, r.cost_per_million, "at the simulated load")]
    slo = r.slo()
    if slo is not None:
        lines += ["", "SLO"]
        for target, row in slo.iterrows():
            if target == "stability":
                actual = f"{row['actual']:.1%} in flight at the end"
            elif target in ("availability", "stale_reads"):
                actual = fmt(row["actual"], "pct")
            else:
                actual = f"{fmt(row['actual'], 'ms')} ms"
            lines.append(f"  {target:<13} {row['objective']:<30} actual {actual:<32} "
                         f"{'met' if row['met'] else 'MISSED'}")
        lines.append(f"  verdict: {'SLO met' if slo['met'].all() else 'SLO missed'}")
    for w in r.all_warnings():
        lines.append(f"warning: {w}")
    return "\n".join(lines)


FRESHNESS_FORMATS = {
    "reads": "int", "stale": "int", "stale_fraction": "pct", "age_p50_ms": "ms", "age_p99_ms": "ms",
    "read_your_writes_violations": "int", "monotonic_read_violations": "int"}


def format_freshness(r: Result) -> list[str]:
    """The report's "Freshness" section: per component that serves reads from copies, the
    share of stale reads and how far behind they were; session-guarantee violations when
    requests carry sessions; writes lost with a copy (none when no copy can lag)."""
    fr = r.freshness()
    if not len(fr):
        return [f"  {comp}: {n:,} acknowledged write(s) lost with the copy" for comp, n in r.lost_writes.items()]
    shown = fr.set_index(["component", "class"])
    cols = ["reads", "stale", "stale_fraction", "age_p50_ms", "age_p99_ms"]
    if (fr["session_reads"] > 0).any():
        cols += ["read_your_writes_violations", "monotonic_read_violations"]
    shown = shown[cols].rename(columns={"stale_fraction": "stale share", "age_p50_ms": "age p50",
                                        "age_p99_ms": "age p99", "read_your_writes_violations": "RYW viol",
                                        "monotonic_read_violations": "monotonic viol"})
    formats = {{"stale_fraction": "stale share", "age_p50_ms": "age p50", "age_p99_ms": "age p99",
                "read_your_writes_violations": "RYW viol",
                "monotonic_read_violations": "monotonic viol"}.get(k, k): v for k, v in FRESHNESS_FORMATS.items()}
    lines = ["", "Freshness (reads served from copies; a stale read returned a value older than the last "
                 "write; age = how long the newer value had existed, ms)", table(shown, formats, "class")]
    for comp, n in r.lost_writes.items():
        lines.append(f"  {comp}: {n:,} acknowledged write(s) lost with the copy")
    return lines


REGION_FORMATS = {"requests": "int", "availability": "pct", "p50_ms": "ms", "p95_ms": "ms",
                  "p99_ms": "ms", "mean_ms": "ms", "added_ms": "ms"}


def format_regions(r: Result) -> list[str]:
    """The per-region lines of a run of a design with regions: latency per user region and
    the calls that cross regions (none without regions)."""
    if not r.region_names:
        return []
    lines = ["", "Users by region (latency of successful requests, ms; added = round trip to the entry)"]
    lines.append(table(r.regions(), REGION_FORMATS, "region"))
    crossing = [c for c in r.region_calls if c["cross_region"]]
    share = r.cross_region_share
    lines.append(f"  calls across regions: {fmt(share, 'pct') if share == share else 'none'}"
                 + (" (" + ", ".join(f"{c['call']} {c['cross_region_share']:.0%}, +{c['added_ms_per_call']:.3g} ms"
                                     for c in crossing) + ")" if crossing else ""))
    return lines


DEPLOYMENT_FORMATS = {
    "strategy": "str", "target": "str", "start_s": "num", "duration_s": "num",
    "availability_during": "pct", "availability_outside": "pct", "p99_during_ms": "ms",
    "p99_outside_ms": "ms", "failed_during": "int", "min_in_rotation": "int"}


def format_deployments(r: Result) -> list[str]:
    """The report's "Deployments" section: per deployment its duration, the availability
    and p99 of the requests that arrived during it against the rest of the window, the
    fewest instances in rotation, and a rollback and its reason (none without deployments)."""
    deps = r.deployments()
    if not len(deps):
        return []
    lines = ["", "Deployments (requests that arrived during each, against the rest of the window; "
                 "times in s, p99 in ms)"]
    shown = deps.set_index("deployment").rename(columns={
        "start_s": "start", "duration_s": "duration", "availability_during": "avail during",
        "availability_outside": "outside", "p99_during_ms": "p99 during",
        "p99_outside_ms": "p99 outside", "failed_during": "failed", "min_in_rotation": "fewest in"})
    formats = {{"start_s": "start", "duration_s": "duration", "availability_during": "avail during",
                "availability_outside": "outside", "p99_during_ms": "p99 during",
                "p99_outside_ms": "p99 outside", "failed_during": "failed",
                "min_in_rotation": "fewest in"}.get(k, k): v for k, v in DEPLOYMENT_FORMATS.items()}
    lines.append(table(shown, formats, "deployment"))
    for _, d in deps.iterrows():
        notes = []
        if missing(d["end_s"]):
            notes.append("still going on at the end of the run")
        if d["rolled_back"]:
            notes.append(f"rolled back: {d['reason']}")
        if d["failed_by_stop"]:
            notes.append(f"{int(d['failed_by_stop']):,} request(s) in progress failed when their "
                         "instance stopped after its drain timeout")
        if d["extra_instance_hours"] > 0:
            cost = "" if missing(d["extra_cost_usd"]) else f", {usd(d['extra_cost_usd'])}"
            notes.append(f"{d['extra_instance_hours']:.3g} extra instance-hours{cost}")
        if notes:
            lines.append(f"  {d['deployment']}: " + "; ".join(notes))
    return lines


def format_tail(r: Result, tail: str = "p99") -> list[str]:
    """The report's "what makes the p99" section: the top contributors to the time of the
    requests in the ``tail`` band, against the median band, and what differs (none without
    hop records, or with too few requests for the band)."""
    c = r.tail_contrast(tail, "median")
    if c is None:
        return []
    band = {"p99": "between p99 and p99.9", "p99.9": "slower than p99.9"}.get(tail, tail)
    lines = ["", f"What makes the {tail} (the {c['requests']:,} successful requests {band}, mean "
                 f"{fmt(c['tail_ms'], 'ms')} ms, against the {c['base_requests']:,} of the median band "
                 f"p45-p55, mean {fmt(c['base_ms'], 'ms')} ms; critical path only)"]
    width = max(len(f"{e['component']} {e['phase']}") for e in c["top"])
    for e in c["top"]:
        what = f"{e['component']} {e['phase']}"
        lines.append(f"  {what:<{width}}  {e['share']:>4.0%}  {fmt(e['mean_ms'], 'ms'):>6} ms   "
                     f"(median band {e['base_share']:>3.0%}, {fmt(e['base_ms'], 'ms')} ms)")
    lines.append(f"  So {verdict(c)}.")
    if r.hops is not None and r.hops.every > 1:
        lines.append(f"  (hop records of one request in {r.hops.every:,})")
    return lines


def result_html(r: Result) -> str:
    """The run as a notebook shows it (``Result._repr_html_``): one line on the run and its
    SLO verdict, the end-to-end and the components tables, the warnings."""
    met = r.slo_met
    verdict = "no SLO" if met is None else ("SLO met" if met else "SLO missed")
    parts = [f"<p><strong>{html.escape(r.design)}</strong> at {r.load:g}x, window {r.duration:g} s "
             f"after {r.warmup:g} s warm-up, seed {html.escape(str(r.seed))}: "
             f"<strong>{verdict}</strong></p>",
             html_table(r.summary(), SUMMARY_FORMATS, "class",
                        caption="End to end (latency of successful requests, ms)"),
             html_table(r.components(), COMPONENT_FORMATS, "component",
                        caption="Components (time-weighted queue; latency = time in the component and its calls, ms)")]
    if r.cost is not None:
        parts += [styled_html(cost_text_frame(r.cost), caption=COST_CAPTION),
                  f"<p>{html.escape(cost_summary(r.cost.monthly_usd, r.cost_per_million, 'at the simulated load'))}</p>"]
    parts += [f"<p>warning: {html.escape(w)}</p>" for w in r.all_warnings()]
    return "<div>\n" + "\n".join(parts) + "\n</div>"

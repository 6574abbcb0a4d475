"""One self-contained HTML page of a results folder: a run, a comparison or a sweep.

:func:`write_report` reads what ``simarch run/compare/sweep --out`` saved (``simarch.json``,
Parquet tables, ``result.json``, ``spec.yaml``) and writes a single HTML file. The page is
a jinja2 template (``simarch/present/templates``: one per kind of folder, on a common
page with inline CSS); its tables are pandas Stylers whose cells are formatted with
:func:`simarch.results.text.fmt`; its figures are drawn by :mod:`simarch.plots` from the
saved tables and embedded as base64 PNG images. Nothing is fetched from the network and no
other file is needed to view it. Every text from the folder is escaped. The page holds no
timestamp, so the same folder gives the same page.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup
from pandas.io.formats.style import Styler

from .. import plots
from .._version import __version__
from ..errors import SpecError, excerpt
from ..model.architecture import Architecture
from ..model.architecture import load as load_arch
from ..model.pricing import UNITS
from ..model.status import OK, STATUS_NAMES
from ..results.attribution import contrast, verdict
from ..results.text import cost_summary, fmt, missing, usd
from ..study.compare import Comparison
from ..study.plan import Plan, changes_table, simulated_table, verdict_text
from ..study.sweep import read_dataset

__all__ = ["KINDS", "render_report", "results_kind", "write_report"]

#: The kinds of results folder a report can be written for (``type`` in ``simarch.json``).
KINDS = ("run", "comparison", "sweep", "plan")

TEMPLATES = Path(__file__).resolve().parent / "templates"
_PAGES = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                            trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined,
                            keep_trailing_newline=True)
#: A Styler that renders with the report's table template (no ids, the report's classes).
_TableStyler = Styler.from_custom_template(str(TEMPLATES), html_table="table.html.j2")

_LATENCY_METRICS = ("mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms")
_MAIN_METRICS = ("p50_ms", "p99_ms", "p999_ms", "throughput_rps", "availability")
_METRIC_LABELS = {
    "mean_ms": "mean latency (ms)", "p50_ms": "p50 latency (ms)", "p90_ms": "p90 latency (ms)",
    "p95_ms": "p95 latency (ms)", "p99_ms": "p99 latency (ms)", "p999_ms": "p99.9 latency (ms)",
    "max_ms": "max latency (ms)", "throughput_rps": "throughput (rps)",
    "availability": "availability",
}
_PCT_WORDS = ("availability", "utilization", "utilisation", "share", "ratio", "uptime")

# --------------------------------------------------------------------------- tables


def _kind_of(name: str, series: pd.Series | None = None) -> str:
    """The :func:`~simarch.results.text.fmt` kind of a column, guessed from its name (and
    dtype)."""
    n = name.lower()
    if n.endswith("_ms"):
        return "ms"
    if n.startswith("util.") or any(w in n for w in _PCT_WORDS):
        return "pct"
    if n.endswith("_s"):
        return "num"
    if n == "load":
        return "load"
    if n == "knee":
        return "x"
    if n in ("met", "slo_met"):
        return "met"
    if series is not None:
        if pd.api.types.is_bool_dtype(series):
            return "str"
        if pd.api.types.is_integer_dtype(series):
            return "int"
        if pd.api.types.is_float_dtype(series):
            return "num"
    return "str"


def _label(name: str) -> str:
    """A column header: ``p99_ms`` -> ``p99 ms``, ``p999_ms`` -> ``p99.9 ms``."""
    n = name.replace("p999", "p99.9")
    for suffix, unit in (("_ms", " ms"), ("_rps", " rps"), ("_s", " s")):
        if n.endswith(suffix):
            n = n[: -len(suffix)] + unit
            break
    return n.replace("_", " ").replace("utilization", "utilisation")


_NUMBER = re.compile(r"-|[+-]?\$?(?:[\d.,]+|inf).*")
_VERDICTS = {"met": "c-ok", "MISSED": "c-bad"}


def _table(
    df: pd.DataFrame,
    columns: Sequence[tuple[str, str, str]] | None = None,
    *,
    row_classes: Sequence[str | None] | None = None,
    drop_empty: Sequence[str] = (),
) -> Markup:
    """``df`` as an HTML table (a Styler with the report's table template).

    ``columns`` lists ``(column, header, fmt kind)``; columns missing from ``df`` are
    skipped, as are those in ``drop_empty`` that hold no value. Without it every column is
    shown with a kind guessed from its name. Text columns are left-aligned (class ``t``),
    verdicts coloured (``c-ok``, ``c-bad``), long texts wrapped (``long``); ``row_classes``
    gives a CSS class per body row.
    """
    if columns is None:
        columns = [(c, _label(str(c)), _kind_of(str(c), df[c])) for c in df.columns]
    cols = [(c, h, k) for c, h, k in columns if c in df.columns
            and not (c in drop_empty and all(missing(v) for v in df[c]))]
    body = pd.DataFrame({h: [fmt(v, k) for v in df[c]] for c, h, k in cols})
    text = {h for h in body.columns if not all(_NUMBER.fullmatch(v) for v in body[h])}
    classes = pd.DataFrame({h: [" ".join(filter(None, (
        "t" if h in text else "", _VERDICTS.get(v.split(" ", 1)[0], ""),
        "long" if len(v) > 40 else ""))) for v in body[h]] for h in body.columns},
        index=body.index)
    styler = (_TableStyler(body).format(escape="html").format_index(escape="html", axis="columns")
              .hide(axis="index").set_td_classes(classes))
    return Markup(styler.to_html(exclude_styles=True,
                                 header_classes=["t" if h in text else "" for h in body.columns],
                                 row_classes=list(row_classes or [])))


def _text_table(df: pd.DataFrame) -> Markup:
    """A table of text cells, shown as they are."""
    return _table(df, [(c, c, "str") for c in df.columns])


def _ci_cell(mean: Any, lo: Any, hi: Any, kind: str, signed: bool = False) -> str:
    if missing(mean):
        return "-"

    def f(v: Any) -> str:
        s = fmt(v, kind)
        return f"+{s}" if signed and not missing(v) and float(v) >= 0 else s

    if missing(lo) or missing(hi):
        return f(mean)
    return f"{f(mean)} [{f(lo)}, {f(hi)}]"


def _true(v: Any) -> bool:
    return not missing(v) and bool(v)


def _metric_kind(metric: str) -> str:
    return "ms" if metric.endswith("_ms") else "pct" if metric == "availability" else "num"


def _ordered_metrics(present: Sequence[str]) -> list[str]:
    order = list(_MAIN_METRICS) + [m for m in _LATENCY_METRICS if m not in _MAIN_METRICS]
    return [m for m in order if m in present] + sorted(m for m in present if m not in order)


def _window_text(duration: Any, warmup: Any) -> str | None:
    if duration is None:
        return None
    return f"window {fmt(duration, 's')}" + (f" after {fmt(warmup, 's')} warm-up"
                                            if warmup is not None else "")


# --------------------------------------------------------------------------- figures


def _figure(caption: str, size: tuple[float, float], draw: Callable[[Any], Any], *,
            panels: int = 1) -> dict[str, str]:
    """A figure drawn by ``draw(ax)`` (``draw(axes)`` with several panels on a shared x axis)
    into a figure of its own, as base64 PNG for the page."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
    draw(axes[0] if panels == 1 else axes)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return {"png": base64.b64encode(buf.getvalue()).decode("ascii"), "caption": caption}


# --------------------------------------------------------------------------- reading


def _fail(message: str, where: Path | str) -> SpecError:
    return SpecError(message, (), str(where))


def _read_json(path: Path, folder: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise _fail(f"cannot read {path.name}: {excerpt(str(e), 120, quote=False)}", folder) from None
    except json.JSONDecodeError as e:
        raise _fail(f"{path.name} is not valid JSON ({e.msg}, line {e.lineno})", folder) from None
    if not isinstance(data, dict):
        raise _fail(f"{path.name} is not a JSON object", folder)
    return data


def _parquet(folder: Path, name: str, required: bool = False) -> pd.DataFrame | None:
    path = folder / f"{name}.parquet"
    if not path.exists():
        if required:
            raise _fail(f"incomplete results folder: {path.name} is missing", folder)
        return None
    try:
        return pd.read_parquet(path)
    except Exception as e:  # noqa: BLE001 - a damaged file is the user's input
        raise _fail(f"cannot read {path.name}: {excerpt(str(e), 120, quote=False)}", folder) from None


def _architecture(folder: Path) -> tuple[str | None, Architecture | None]:
    """The text of the run's resolved ``spec.yaml`` and the design it describes (None when
    it is missing or no longer valid)."""
    path = folder / "spec.yaml"
    if not path.is_file():
        return None, None
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        return text, load_arch(path)
    except (SpecError, ValueError, OSError):
        return text, None


def results_kind(results_dir: str | Path) -> str:
    """``"run"``, ``"comparison"`` or ``"sweep"``: the kind of results folder, from its
    ``simarch.json`` (a folder of sweep parts without it is an unfinished sweep).

    Raises :class:`~simarch.errors.SpecError` if it is not a simarch results folder.
    """
    return _manifest(Path(results_dir))[0]


def _manifest(folder: Path) -> tuple[str, dict[str, Any]]:
    if not folder.exists():
        raise _fail("no such folder", folder)
    if not folder.is_dir():
        raise _fail("not a folder (expected a results folder written by simarch run, compare "
                    "or sweep with --out)", folder)
    path = folder / "simarch.json"
    if not path.exists() and (folder / "_simarch.json").exists():
        path = folder / "_simarch.json"  # a sweep's manifest (kept out of its Parquet dataset)
    if not path.exists():
        if any(folder.glob("part-*.parquet")):
            return "sweep", {"type": "sweep", "unfinished": True}
        raise _fail("not a simarch results folder (no simarch.json; expected a folder written "
                    "by simarch run, compare or sweep with --out)", folder)
    meta = _read_json(path, folder)
    kind = meta.get("type")
    if kind not in KINDS:
        raise _fail(f"simarch.json: unknown results type {kind!r} (expected one of "
                    f"{', '.join(KINDS)})", folder)
    return kind, meta


# --------------------------------------------------------------------------- page


def _page(kind: str, title: str, meta: dict[str, Any], folder: Path, **context: Any) -> str:
    context.setdefault("meta_lines", [])
    context.setdefault("warnings", [])
    return _PAGES.get_template(f"{kind}.html.j2").render(
        kind=kind, title=title, version=__version__, made_by=meta.get("simarch_version"),
        folder=folder.name, **context)


# --------------------------------------------------------------------------- run

_SUMMARY_COLUMNS = [
    ("class", "class", "str"), ("requests", "requests", "int"),
    ("completed", "completed", "int"), ("in_flight", "in flight", "int"),
    ("throughput_rps", "throughput rps", "num"), ("availability", "availability", "pct"),
    ("rejected", "rejected", "int"), ("timeout", "timeout", "int"), ("failed", "failed", "int"),
    *[(m, _label(m), "ms") for m in _LATENCY_METRICS], ("stale_reads", "stale reads", "pct")]
_FRESHNESS_COLUMNS = [
    ("component", "component", "str"), ("class", "class", "str"), ("reads", "reads", "int"),
    ("stale", "stale", "int"), ("stale_fraction", "stale share", "pct"),
    ("age_p50_ms", "age p50 ms", "ms"), ("age_p99_ms", "age p99 ms", "ms"),
    ("read_your_writes_violations", "read-your-writes violations", "int"),
    ("monotonic_read_violations", "monotonic-read violations", "int")]
_REGION_COLUMNS = [
    ("region", "user region", "str"), ("requests", "requests", "int"),
    ("availability", "availability", "pct"), ("p50_ms", "p50 ms", "ms"), ("p95_ms", "p95 ms", "ms"),
    ("p99_ms", "p99 ms", "ms"), ("mean_ms", "mean ms", "ms"), ("added_ms", "added round trip ms", "ms")]
_COMPONENT_COLUMNS = [
    ("component", "component", "str"), ("kind", "kind", "str"),
    ("instances", "instances", "int"), ("workers", "workers", "int"),
    ("offered_rps", "offered rps", "num"), ("received_rps", "received rps", "num"),
    ("amplification", "amplification", "num"), ("throughput_rps", "throughput rps", "num"),
    ("utilization", "utilisation", "pct"), ("uptime", "uptime", "pct"),
    ("mean_queue", "mean queue", "num"), ("max_queue", "max queue", "int"),
    ("mean_wait_ms", "mean wait ms", "ms"), ("p99_wait_ms", "p99 wait ms", "ms"),
    ("mean_latency_ms", "mean latency ms", "ms"), ("p99_latency_ms", "p99 latency ms", "ms"),
    ("rejected", "rejected", "int"), ("hit_ratio", "hit ratio", "pct"),
    ("consumed", "consumed", "int"), ("consumer_failures", "consumer failures", "int"),
    ("hottest_shard_share", "hottest shard share", "pct")]
_COMPONENT_OPTIONAL = ["hit_ratio", "p99_wait_ms", "consumed", "consumer_failures",
                       "hottest_shard_share", "received_rps"]
_INSTANCE_COLUMNS = [
    ("component", "component", "str"), ("instance", "instance", "str"), ("zone", "zone", "str"),
    ("workers", "workers", "int"), ("utilization", "utilisation", "pct"),
    ("throughput_rps", "throughput rps", "num"), ("mean_queue", "mean queue", "num"),
    ("max_queue", "max queue", "int"), ("rejected", "rejected", "int"),
    ("uptime", "uptime", "pct")]
_SHARD_COLUMNS = [
    ("component", "component", "str"), ("shard", "shard", "int"),
    ("requests", "requests", "int"), ("rate_rps", "rate rps", "num"), ("share", "share", "pct"),
    ("utilization", "utilisation", "pct"),
    ("max_replica_utilization", "max replica utilisation", "pct")]
_FAULT_COLUMNS = [("fault", "fault", "str"), ("kind", "kind", "str"), ("target", "target", "str"),
                  ("start_s", "start s", "num"), ("end_s", "end s", "num")]
_EVENT_COLUMNS = [("time_s", "time s", "num"), ("what", "what", "str"), ("where", "where", "str"),
                  ("from", "from", "str"), ("to", "to", "str")]


def _slo_context(slo: dict[str, Any] | None) -> dict[str, Any] | None:
    if not slo:
        return None
    def actual(target: str, v: Any) -> str:
        if target == "stability":  # the share of the window's arrivals still in flight
            return f"{fmt(v, 'pct')} in flight at the end"
        return fmt(v, "pct") if target == "availability" else f"{fmt(v, 'ms')} ms"

    rows = [{"target": target, "objective": t.get("objective"),
             "actual": actual(target, t.get("actual")), "verdict": fmt(t.get("met"), "met")}
            for target, t in (slo.get("targets") or {}).items()]
    used = slo.get("error_budget_used")
    return {"met": bool(slo.get("met")), "table": _text_table(pd.DataFrame(rows)) if rows else "",
            "budget": None if used is None else (
                f"{used:,.3g} times the whole budget" if used > 1 else fmt(used, "pct"))}


def _drop_uninformative(components: pd.DataFrame) -> pd.DataFrame:
    """Without the columns that repeat another: received = offered, amplification 1."""
    if {"received_rps", "offered_rps"} <= set(components.columns) and np.allclose(
            components["received_rps"].astype(float), components["offered_rps"].astype(float),
            equal_nan=True):
        components = components.drop(columns=["received_rps"])
    if "amplification" in components and \
            (components["amplification"].astype(float).fillna(1.0) == 1.0).all():
        components = components.drop(columns=["amplification"])
    return components


def _littles_law_line(ll: dict[str, Any] | None) -> str | None:
    big_l, lam, w, lw = (((ll or {}).get(k)) for k in ("L", "lambda", "W", "lambda_W"))
    if big_l is None or lam is None or w is None or lw is None:
        return None
    text = (f"L = {fmt(big_l)} requests in the system on average; λ·W = {fmt(lam)} rps × "
            f"{fmt(w * 1e3, 'ms')} ms = {fmt(lw)}")
    if big_l:
        text += f" ({(lw - big_l) / big_l:+.1%} from L)"
    return text + "."


def _cost_context(cost: dict[str, Any] | None) -> dict[str, Any] | None:
    """The cost section of a run's page, from ``result.json``'s ``cost`` (None: no price)."""
    if not cost:
        return None
    rows = []
    for name, ln in (cost.get("components") or {}).items():
        q = ln.get("quantity")
        amount = "-" if missing(q) else (f"{q:,.0f}" if float(q).is_integer() else f"{q:,.4g}")
        rows.append({"component": name, "kind": ln.get("kind") or "",
                     "price": f"{usd(ln.get('unit_price_usd'))}/{UNITS.get(ln.get('unit'), ln.get('unit'))}",
                     "quantity": f"{amount} {ln.get('quantity_unit') or ''}".strip(),
                     "monthly": usd(ln.get("monthly_usd")), "source": ln.get("source") or "",
                     "note": ln.get("note") or ""})
    df = pd.DataFrame(rows)
    if len(df) and not (df["note"] != "").any():
        df = df.drop(columns=["note"])
    return {"table": _text_table(df) if len(df) else "",
            "line": cost_summary(cost.get("monthly_usd"), cost.get("per_million_successful_usd"),
                                 "at the simulated load") + ".",
            "unpriced": ", ".join(cost.get("unpriced") or [])}


def _run_plots(design: str, arch: Architecture | None, components: pd.DataFrame,
               requests: pd.DataFrame | None, timeseries: pd.DataFrame | None,
               faults: pd.DataFrame | None, span: tuple[float, float] | None) -> list[dict[str, str]]:
    slo = {} if arch is None or arch.spec.slo is None else {
        k: v for k, v in arch.spec.slo.model_dump().items() if v is not None}
    out = []
    if requests is not None and "latency_ms" in requests and (
            "status" not in requests or (requests["status"].astype(str) == STATUS_NAMES[OK]).any()):
        by_class = "class" in requests and requests["class"].astype(str).nunique() > 1
        out.append(_figure("Latency CDF of successful requests", (7.5, 4.5), lambda ax: plots.latency_cdf(
            {design: requests}, ax, by_class=by_class, slo=slo)))
    if requests is not None and span is not None and span[1] > span[0] and len(requests) and \
            {"end_s", "latency_ms"} <= set(requests.columns):
        series = requests
    elif timeseries is not None and len(timeseries):
        series, span = timeseries, None
    else:
        series = None
    if series is not None:
        out.append(_figure("Throughput, p99 latency and availability over the window "
                           "(fault windows shaded)", (9.0, 6.8), lambda axes: plots.timeline(
                               series, None, axes, faults=faults, slo=slo, span=span), panels=3))
    util = components.get("utilization")
    if util is not None and pd.to_numeric(util, errors="coerce").notna().any():
        out.append(_figure("Utilisation per component", (7.5, max(2.4, 0.28 * len(components) + 1.3)),
                           lambda ax: plots.utilization(components, ax)))
    if arch is not None and set(components.get("component", ())) == set(arch.graph.nodes):
        out.append(_figure("The design, coloured by simulated utilisation, single points of "
                           "failure marked", plots.architecture_size(arch, colorbar=True),
                           lambda ax: plots.architecture(arch, ax, result=components, spof=True)))
    return out


_VISIT_COLUMNS = [("component", "component", "str"), ("class", "class", "str"), ("visits", "visits", "int"),
                  ("mean_ms", "mean ms", "ms"), ("p50_ms", "p50 ms", "ms"), ("p90_ms", "p90 ms", "ms"),
                  ("p99_ms", "p99 ms", "ms"), ("p999_ms", "p99.9 ms", "ms")]


def _tail_context(att: pd.DataFrame | None) -> dict[str, Any] | None:
    """The run page's "what makes the p99" section: the p99 band's largest shares against the
    median band's, the sentence on what differs, and the attribution plot."""
    if att is None or not len(att):
        return None
    c = contrast(att.to_dict("records"), "p99", "median")
    if c is None:
        return None
    rows = pd.DataFrame([{"component": e["component"], "phase": e["phase"], "p99_share": e["share"],
                          "p99_ms": e["mean_ms"], "median_share": e["base_share"], "median_ms": e["base_ms"]}
                         for e in c["top"]])
    table = _table(rows, [("component", "component", "str"), ("phase", "phase", "str"),
                          ("p99_share", "share of the p99 band", "pct"), ("p99_ms", "ms per request", "ms"),
                          ("median_share", "share of the median band", "pct"),
                          ("median_ms", "ms per request (median)", "ms")])
    note_text = (f"The {c['requests']:,} successful requests between p99 and p99.9 (mean "
                 f"{fmt(c['tail_ms'], 'ms')} ms) against the {c['base_requests']:,} of the median band "
                 f"p45-p55 (mean {fmt(c['base_ms'], 'ms')} ms), on each request's critical path.")
    figure = _figure("Where the time of each latency band goes", (8.5, 3.6),
                     lambda ax: plots.attribution(att, ax))
    return {"table": table, "note": note_text, "verdict": "So " + verdict(c) + ".", "figure": figure}


def _run_page(folder: Path, meta: dict[str, Any]) -> str:
    doc = _read_json(folder / "result.json", folder) if (folder / "result.json").exists() else {}
    summary = _parquet(folder, "summary", required=True)
    components = _parquet(folder, "components", required=True)
    tables = {n: _parquet(folder, n) for n in
              ("requests", "instances", "shards", "faults", "events", "calls", "timeseries",
               "component_latency", "attribution", "freshness", "regions", "deployments")}
    spec_text, arch = _architecture(folder)
    design = meta.get("design") or doc.get("design") or folder.name
    load = meta.get("load", doc.get("load"))
    duration = meta.get("duration_s", doc.get("duration_s"))
    warmup = meta.get("warmup_s", doc.get("warmup_s"))
    seed = meta.get("seed", doc.get("seed"))

    bits = [f"load {fmt(load, 'load')}", _window_text(duration, warmup),
            f"seed {seed if seed is not None else '-'}"]
    meta_lines = [" · ".join(b for b in bits if b)]
    if arch is not None and arch.spec.description:
        meta_lines.append(arch.spec.description.strip())

    util = components.set_index("component")["utilization"].astype(float).dropna() \
        if {"component", "utilization"} <= set(components.columns) else pd.Series(dtype=float)
    instances = tables["instances"]
    extra = [(title, tables[name], cols) for title, name, cols in (
        ("Users by region", "regions", _REGION_COLUMNS),
        ("Freshness: reads served from copies (a stale read returned a value older than the "
         "last write; age: how long the newer value had existed)", "freshness", _FRESHNESS_COLUMNS),
        ("Deployments", "deployments", None),
        ("Datastore shards", "shards", _SHARD_COLUMNS),
        ("Calls with resilience policies", "calls", None),
        ("Faults", "faults", _FAULT_COLUMNS),
        ("Events", "events", _EVENT_COLUMNS))]
    span = None
    if warmup is not None and duration is not None:
        span = (float(warmup), float(warmup) + float(duration))
    return _page(
        "run", str(design), meta, folder, meta_lines=meta_lines,
        warnings=[str(w) for w in doc.get("warnings") or []],
        slo=_slo_context(doc.get("slo")),
        summary=_table(summary, _SUMMARY_COLUMNS),
        components=_table(_drop_uninformative(components), _COMPONENT_COLUMNS,
                          drop_empty=_COMPONENT_OPTIONAL),
        busiest=f"Busiest component: {util.idxmax()} at {util.max():.1%} utilisation."
        if len(util) else None,
        instances={"count": len(instances), "table": _table(instances, _INSTANCE_COLUMNS,
                                                            drop_empty=["zone"])}
        if instances is not None and len(instances) else None,
        extra_sections=[{"title": title, "table": _table(df, cols)} for title, df, cols in extra
                        if df is not None and len(df)],
        littles_law=_littles_law_line(doc.get("littles_law")),
        cost=_cost_context(doc.get("cost")),
        plots=_run_plots(str(design), arch, components, tables["requests"], tables["timeseries"],
                         tables["faults"], span),
        tail=_tail_context(tables["attribution"]),
        visits=_table(tables["component_latency"], _VISIT_COLUMNS)
        if tables["component_latency"] is not None and len(tables["component_latency"]) else None,
        spec_text=spec_text)


# --------------------------------------------------------------------------- comparison


def _wide(table: pd.DataFrame, loads: Sequence[float], designs: Sequence[str],
          cell: Callable[[pd.DataFrame, str], str]) -> Markup:
    """A table whose rows are loads and columns designs: ``cell(rows, design)`` of the rows
    of ``table`` at each point."""
    grid: dict[str, list[str]] = {"load": [fmt(x, "load") for x in loads]}
    for d in designs:
        at = table[table["design"].astype(str) == d]
        grid[d] = [cell(at[np.isclose(at["load"].astype(float), x)], d) for x in loads]
    return _text_table(pd.DataFrame(grid))


def _comparison_page(folder: Path, meta: dict[str, Any]) -> str:
    tables = {n: _parquet(folder, n, required=(n == "table")) for n in
              ("runs", "table", "diff", "slo", "knee", "cost")}
    table = tables["table"]
    designs = [str(d) for d in meta.get("designs") or pd.unique(table["design"])]
    loads = sorted(float(x) for x in (meta.get("loads") or pd.unique(table["load"])))
    confidence = float(meta.get("confidence", 0.95))
    pct = f"{confidence:.0%}"
    slos = meta.get("slos") or {}
    settings = meta.get("settings") or {}

    bits = [f"loads {', '.join(fmt(x, 'load') for x in loads)}",
            f"{meta.get('replications', '-')} replications per point",
            f"{pct} t-intervals", f"common random numbers (seed {meta.get('seed', '-')})",
            _window_text(settings.get("duration"), settings.get("warmup"))]
    context: dict[str, Any] = {"pct": pct, "meta_lines": [
        f"Designs: {', '.join(designs)}", " · ".join(b for b in bits if b)],
        "warnings": [str(w) for w in meta.get("warnings") or []]}

    slo_rows = [{"design": d, **{("p99.9" if k == "p999" else k): (
        fmt(v, "pct") if k == "availability" else f"{fmt(float(v) * 1e3, 'ms')} ms")
        for k, v in (slos.get(d) or {}).items() if v is not None}} for d in designs]
    context["slo_targets"] = _text_table(pd.DataFrame(slo_rows).fillna("-")) \
        if any(len(r) > 1 for r in slo_rows) else None

    slo = tables["slo"]
    context["verdicts"] = None
    if slo is not None and len(slo):
        def verdict(r: pd.DataFrame, d: str) -> str:
            if not len(r) or missing(r["slo_met"].iloc[0]):
                return "no SLO" if not slos.get(d) else "-"
            share = r["met_share"].iloc[0] if "met_share" in r else math.nan
            return fmt(r["slo_met"].iloc[0], "met") + (
                "" if missing(share) else f" ({float(share):.0%} of replications)")

        context["verdicts"] = _wide(slo, loads, designs, verdict)

    knee = tables["knee"]
    context["knee"] = None
    if knee is not None and len(knee):
        context["knee"] = _text_table(pd.DataFrame([{
            "design": k["design"],
            "knee": ("≥ " if _true(k.get("censored")) else "") + fmt(k["knee"], "x"),
            f"{pct} CI": "-" if missing(k.get("ci_low")) else
            f"[{fmt(k['ci_low'], 'x')}, {fmt(k['ci_high'], 'x')}]",
            "resolution": fmt(k.get("resolution"), "x"),
            "bracket": "-" if missing(k.get("bracket_low")) else
            f"{fmt(k['bracket_low'], 'load')} – {fmt(k['bracket_high'], 'load')}",
            "note": k.get("note") or "",
        } for _, k in knee.iterrows()]))

    cost = tables["cost"]
    context["cost"] = None
    if cost is not None and len(cost):
        context["cost"] = _text_table(pd.DataFrame([{
            "design": str(r["design"]), "load": fmt(r["load"], "load"), "monthly": usd(r["monthly_usd"]),
            f"vs {designs[0]}": "-" if str(r["design"]) == designs[0] or missing(r["diff_usd"]) else (
                usd(r["diff_usd"], signed=True)
                + ("" if missing(r.get("diff_pct")) else f" ({float(r['diff_pct']):+.1f}%)")),
            "per million successful": usd(r["per_million_usd"]),
        } for _, r in cost.iterrows()]))

    metrics = _ordered_metrics([str(m) for m in pd.unique(table["metric"])])
    blocks = {True: [], False: []}
    for m in metrics:
        kind = _metric_kind(m)
        wide = _wide(table[table["metric"].astype(str) == m], loads, designs,
                     lambda r, _, kind=kind: "-" if not len(r) else _ci_cell(
                         r["mean"].iloc[0], r["ci_low"].iloc[0], r["ci_high"].iloc[0], kind))
        blocks[m in _MAIN_METRICS].append({"title": _METRIC_LABELS.get(m, _label(m)),
                                           "table": wide})
    context["main_metrics"], context["extra_metrics"] = blocks[True], blocks[False]

    diff = tables["diff"]
    context["differences"] = None
    if diff is not None and len(diff):
        dmetrics = _ordered_metrics([str(m) for m in pd.unique(diff["metric"])])
        dmetrics = [m for m in dmetrics if m in _MAIN_METRICS] or dmetrics
        rows = []
        for (design, load), g in diff.groupby(["design", "load"], sort=False):
            g = g.set_index(g["metric"].astype(str))
            row = {"design": str(design), "against": str(g["baseline"].iloc[0])
                   if "baseline" in g else designs[0], "load": fmt(load, "load")}
            for m in dmetrics:
                row[_label(m)] = "-" if m not in g.index else _ci_cell(
                    g.loc[m, "mean_diff"], g.loc[m, "ci_low"], g.loc[m, "ci_high"],
                    _metric_kind(m), signed=True)
            rows.append(row)
        context["differences"] = _text_table(pd.DataFrame(rows))

    empty = pd.DataFrame()
    cmp = Comparison(designs, loads, int(meta.get("replications") or 0), meta.get("seed"),
                     confidence, *[empty if tables[n] is None else tables[n] for n in
                                   ("runs", "table", "diff", "slo", "knee")],
                     slos=slos, settings=settings)
    context["plots"] = [
        _figure("p99 latency against load" + (", knees marked" if len(cmp.knee) else ""),
                (7.0, 4.0), lambda ax: cmp.plot_latency(ax=ax)),
        _figure("Availability against load", (7.0, 4.0), lambda ax: cmp.plot_availability(ax=ax))]

    runs = tables["runs"]
    context["runs"] = None
    if runs is not None and len(runs):
        errors = runs["error"] if "error" in runs else pd.Series([None] * len(runs))
        context["runs"] = {"count": len(runs), "table": _table(
            runs, [(c, _label(c), _kind_of(c, runs[c])) for c in runs.columns if c != "seed"],
            row_classes=[None if missing(e) else "err" for e in errors])}
    return _page("comparison", " vs ".join(designs), meta, folder, **context)


# --------------------------------------------------------------------------- sweep


def _sort_key(s: pd.Series) -> pd.Series:
    num = pd.to_numeric(s, errors="coerce")
    if num.notna().all():
        return num
    return s.astype(str)


def _sweep_page(folder: Path, meta: dict[str, Any]) -> str:
    try:
        df = read_dataset(folder)
    except Exception as e:  # noqa: BLE001 - a damaged part file is the user's input
        raise _fail(f"cannot read the sweep dataset: {e}", folder) from None
    params = meta.get("params") or {}
    pcols = [f"param.{p}" for p in params] if params else []
    pcols += sorted(c for c in df.columns if c.startswith("param.") and c not in pcols)
    pcols = [c for c in pcols if c in df.columns]
    design = meta.get("design") or (str(df["design"].iloc[0]) if "design" in df and len(df)
                                    else folder.name)
    failed = int(df["error"].notna().sum()) if "error" in df else 0

    bits = [f"{len(df)} points"]
    loads = meta.get("loads") or (sorted(pd.unique(df["load"])) if "load" in df else [])
    if loads:
        bits.append(f"loads {', '.join(fmt(float(x), 'load') for x in loads)}")
    if meta.get("replications") is not None:
        bits.append(f"{meta['replications']} replication(s) per point")
    if meta.get("seed") is not None:
        bits.append(f"seed {meta['seed']}")
    bits.append(_window_text(meta.get("duration"), meta.get("warmup")))
    context: dict[str, Any] = {"meta_lines": [" · ".join(b for b in bits if b)],
                               "unfinished": bool(meta.get("unfinished")), "failed": failed,
                               "results": None, "plots": []}

    prow = []
    for c in pcols:
        p = c.removeprefix("param.")
        values = params.get(p) if params else None
        if values is None:
            values = sorted(pd.unique(df[c]), key=lambda v: (str(type(v)), str(v)))
        prow.append({"parameter": p, "values": ", ".join(str(v) for v in values)})
    context["parameters"] = _text_table(pd.DataFrame(prow)) if prow else None
    if not len(df):
        return _page("sweep", str(design), meta, folder, **context)

    order = pcols + [c for c in ("load", "replication", "point_id") if c in df.columns]
    df = df.sort_values(order, key=_sort_key, kind="mergesort").reset_index(drop=True)
    multi_rep = "replication" in df and df["replication"].nunique() > 1
    cols = [(c, c.removeprefix("param."), "str") for c in pcols]
    cols += [("load", "load", "load")]
    if multi_rep:
        cols += [("replication", "replication", "int")]
    cols += [(m, _label(m), _metric_kind(m)) for m in _MAIN_METRICS if m in df]
    if "slo_met" in df:
        cols.append(("slo_met", "SLO", "met"))
    utils = [c for c in df.columns if c.startswith("util.")]
    cols += [(c, c.replace("util.", "util ").replace("utilization", "utilisation"), "pct")
             for c in utils]
    cols += [("cost_usd_month", "cost USD a month", "usd"), ("requests", "requests", "int"),
             ("error", "error", "str")]
    errors = df["error"] if "error" in df else pd.Series([None] * len(df))
    context["results"] = _table(df, cols, row_classes=[None if missing(e) else "err" for e in errors],
                                drop_empty=["error", "slo_met", "cost_usd_month", *utils])

    shown = [m for m in ("p99_ms", "availability") if m in df]
    ok = df[errors.isna().to_numpy()] if "error" in df else df
    if "load" in df and shown and ok[shown].notna().any(axis=None):
        context["plots"] = [_figure(
            f"{' and '.join(_METRIC_LABELS[m].split(' (')[0] for m in shown)} of each point "
            "(mean over replications)", (8.0, 1.2 + 2.6 * len(shown)),
            lambda axes: plots.sweep_results(df, axes, metrics=shown), panels=len(shown))]
    return _page("sweep", str(design), meta, folder, **context)


# --------------------------------------------------------------------------- plan

#: designs listed in a plan report's table of every design screened (cheapest first)
PLAN_ROWS = 200


def _plan_page(folder: Path, meta: dict[str, Any]) -> str:
    p = Plan.read(folder)
    s = p.settings
    targets = ", ".join(f"{k} >= {v:.4%}" if k == "availability" else f"{k} <= {v * 1e3:g} ms"
                        for k, v in p.targets.items())
    bits = [f"load {fmt(p.load, 'load')}", f"objective {s.get('objective', 'cost')}",
            f"SLO {targets}" if targets else None,
            f"{s.get('replications')} replications per simulated design, seed {s.get('seed')}",
            _window_text(s.get("duration"), s.get("warmup"))]
    params = [f"param.{x}" for x in p.params]
    pcols = [(c, c.removeprefix("param."), "str") for c in params]
    front = p.frontier.copy()
    front.insert(0, "design", [("* " if i == p.chosen else "") + str(i) for i in front.index])
    fcols = [("design", "design", "str"), *pcols, ("cost_month", "cost per month", "usd"),
             ("p99_ms", "p99 ms", "ms"), ("p99_source", "p99 from", "str"),
             ("availability", "availability", "pct"), ("availability_source", "availability from", "str"),
             ("margin", "margin", "pct"), ("verdict", "verdict", "str")]
    t = p.table.sort_values(["cost_month", "resources"]).head(PLAN_ROWS).reset_index()
    scols = [("design", "design", "str"), *pcols, ("cost_month", "cost per month", "usd"),
             ("model_mean_ms", "model mean ms", "ms"), ("model_p99_ms", "model p99 ms", "ms"),
             ("model_availability", "model availability", "pct"), ("max_utilization", "max utilisation", "pct"),
             ("bottleneck", "bottleneck", "str"), ("model_saturation_load", "saturates at", "x"),
             ("verdict", "verdict", "str"), ("error", "error", "str")]
    sim = simulated_table(p)
    context = {
        "meta_lines": [" · ".join(b for b in bits if b)],
        "verdict": verdict_text(p), "warnings": p.warnings,
        "changes": _text_table(changes_table(p)),
        "frontier": _table(front, fcols),
        "simulated": _text_table(sim) if len(sim) else None,
        "simulated_note": (f"{s.get('replications')} replications each on common random numbers; "
                           f"{s.get('confidence', 0.95):.0%} confidence bounds: a design meets when the "
                           "upper bound of each latency target and the lower bound of availability "
                           "are within the SLO"),
        "screened": _table(t, scols, drop_empty=["error"]),
        "screened_note": (f"{len(p.table)} designs screened with the models in "
                          f"{s.get('screen_seconds', math.nan):.1f} s"
                          + (f"; the {PLAN_ROWS} cheapest shown" if len(p.table) > PLAN_ROWS else "")),
        "plots": [_figure("Cost against p99: every design screened (models), the frontier, the "
                          "simulated designs with their p99 upper bounds", (7.5, 4.5),
                          lambda ax: p.plot_frontier(ax=ax))],
    }
    return _page("plan", f"{p.design}: plan for {p.load:g}x", meta, folder, **context)


# --------------------------------------------------------------------------- entry points

_RENDER = {"run": _run_page, "comparison": _comparison_page, "sweep": _sweep_page, "plan": _plan_page}


def render_report(results_dir: str | Path) -> str:
    """The HTML page of a results folder (run, comparison or sweep), as a string.

    Raises :class:`~simarch.errors.SpecError` if the folder is missing, is not a simarch
    results folder, or a file in it cannot be read.
    """
    folder = Path(results_dir)
    kind, meta = _manifest(folder)
    try:
        return _RENDER[kind](folder, meta)
    except SpecError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        # tables or a manifest that simarch did not write (tampered, or of another version)
        raise _fail(f"the {kind} results in this folder are not as simarch writes them "
                    f"({type(e).__name__}: {excerpt(str(e), 120, quote=False)})", folder) from None


def write_report(results_dir: str | Path, html_path: str | Path) -> Path:
    """Write one self-contained HTML page of ``results_dir`` to ``html_path`` (atomically:
    a temporary file in the same folder, then renamed) and return its path."""
    page = render_report(results_dir)
    out = Path(html_path)
    if out.is_dir():
        raise _fail("is a folder; give the path of the HTML file to write", out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    except OSError as e:
        raise _fail(f"cannot write: {e.strerror or e}", out) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(page)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise _fail(f"cannot write: {e.strerror or e}", out) from None
        raise
    return out

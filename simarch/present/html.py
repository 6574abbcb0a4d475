"""One self-contained HTML page of a results folder: a run, a comparison or a sweep.

:func:`write_report` reads what ``simarch run/compare/sweep --out`` saved (``simarch.json``,
Parquet tables, ``result.json``) and writes a single HTML file with inline CSS, tables and
plots embedded as base64 PNG images: nothing is fetched from the network and no other file
is needed to view it. The page holds no timestamp, so the same folder gives the same page.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import plots as _plots  # noqa: F401 - the report draws with it
from .._version import __version__
from ..errors import SpecError
from ..model.units import parse_duration
from ..study.compare import Comparison
from ..study.sweep import read_dataset

__all__ = ["KINDS", "render_report", "results_kind", "write_report"]

#: The kinds of results folder a report can be written for (``type`` in ``simarch.json``).
KINDS = ("run", "comparison", "sweep")

_LATENCY_METRICS = ("mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms")
_MAIN_METRICS = ("p50_ms", "p99_ms", "p999_ms", "throughput_rps", "availability")
_METRIC_LABELS = {
    "mean_ms": "mean latency (ms)", "p50_ms": "p50 latency (ms)", "p90_ms": "p90 latency (ms)",
    "p95_ms": "p95 latency (ms)", "p99_ms": "p99 latency (ms)", "p999_ms": "p99.9 latency (ms)",
    "max_ms": "max latency (ms)", "throughput_rps": "throughput (rps)",
    "availability": "availability",
}
_PCT_WORDS = ("availability", "utilization", "utilisation", "share", "ratio", "uptime")

# --------------------------------------------------------------------------- formatting


def _missing(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    try:
        return bool(isinstance(v, (float, np.floating)) and math.isnan(v))
    except TypeError:
        return False


def _fmt(v: Any, kind: str = "num") -> str:
    """A value as text: ``ms`` 3 significant digits, ``pct`` a percentage, ``x`` a load
    multiplier, ``int`` with thousands separators, ``num`` 3 significant digits, ``met`` a
    verdict word, ``str`` as is."""
    if _missing(v):
        return "-"
    if kind == "str":
        return str(v)
    if kind == "met":
        return "met" if bool(v) else "MISSED"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if not isinstance(v, (int, float, np.integer, np.floating)):
        return str(v)
    f = float(v)
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    if kind == "pct":
        if abs(f) >= 10:
            return f"{f:,.0%}"
        return f"{f:.4%}" if 0.9999 <= f < 1.0 else f"{f:.2%}"
    if kind == "ms":
        return f"{f:.3g}" if abs(f) < 100 else f"{f:,.0f}"
    if kind == "x":
        return f"{f:g}x"
    if kind == "int":
        return f"{int(round(f)):,}"
    if kind == "s":
        return f"{f:g} s"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    return f"{f:,.3g}" if abs(f) < 1000 else f"{f:,.0f}"


def _kind_of(name: str, series: pd.Series | None = None) -> str:
    """The display kind of a column, guessed from its name (and dtype)."""
    n = name.lower()
    if n.endswith("_ms"):
        return "ms"
    if n.startswith("util.") or any(w in n for w in _PCT_WORDS):
        return "pct"
    if n.endswith("_s"):
        return "num"
    if n in ("load", "knee"):
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


def _esc(v: Any) -> str:
    return html.escape(str(v), quote=True)


# --------------------------------------------------------------------------- tables

_CELL = re.compile(r"<(td|th)>([^<]*)</(?:td|th)>")
_NUMBER = re.compile(r"-|[+-]?(?:[\d.,]+|inf).*")


def _verdict_class(text: str) -> str | None:
    word = text.split(" ", 1)[0]
    if word == "met":
        return "c-ok"
    if word == "MISSED":
        return "c-bad"
    return None


def _table(
    df: pd.DataFrame,
    columns: Sequence[tuple[str, str, str]] | None = None,
    *,
    index: bool = False,
    row_classes: Sequence[str | None] | None = None,
    cell_class: Callable[[str], str | None] | None = _verdict_class,
    drop_empty: Sequence[str] = (),
) -> str:
    """Render ``df`` as an escaped HTML table.

    ``columns`` lists ``(column, header, kind)``; columns missing from ``df`` are skipped, as
    are those in ``drop_empty`` that hold no value. Without it every column is shown with a
    kind guessed from its name. ``row_classes`` gives a CSS class per body row; ``cell_class``
    one per cell, from its text.
    """
    if index:
        df = df.reset_index()
    if columns is None:
        columns = [(c, _label(str(c)), _kind_of(str(c), df[c])) for c in df.columns]
    cols = [(c, h, k) for c, h, k in columns if c in df.columns
            and not (c in drop_empty and all(_missing(v) for v in df[c]))]
    body = pd.DataFrame({h: [_fmt(v, k) for v in df[c]] for c, h, k in cols})
    out = body.to_html(index=False, escape=True, border=0, classes="data", na_rep="-")
    out = out.replace('<tr style="text-align: right;">', "<tr>")
    text_cols = {i for i, h in enumerate(body.columns)
                 if not all(_NUMBER.fullmatch(v) for v in body[h])}
    # cell text is escaped, so every "<tr" starts a row and every "<td>" a cell, in order
    rows = out.split("<tr")
    for r in range(1, len(rows)):
        position = iter(range(len(cols)))

        def mark(m: re.Match, position=position) -> str:
            tag, text = m.group(1), m.group(2)
            classes = ["t"] if next(position, -1) in text_cols else []
            if tag == "td":
                plain = html.unescape(text)
                extra = cell_class(plain) if cell_class is not None else None
                classes += [extra] if extra else []
                classes += ["long"] if len(plain) > 40 else []
            return f'<{tag} class="{" ".join(classes)}">{text}</{tag}>' if classes else m.group(0)

        rows[r] = _CELL.sub(mark, rows[r])
    out = "<tr".join(rows)
    if row_classes is not None:
        head, sep, rest = out.partition("<tbody>")
        parts = rest.split("<tr>")
        rest = parts[0]
        for i, part in enumerate(parts[1:]):
            cls = row_classes[i] if i < len(row_classes) else None
            rest += (f'<tr class="{_esc(cls)}">' if cls else "<tr>") + part
        out = head + sep + rest
    return f'<div class="scroll">{out}</div>'


# --------------------------------------------------------------------------- figures


def _figure(width: float = 8.0, height: float = 4.0, nrows: int = 1, sharex: bool = False):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, 1, sharex=sharex, squeeze=False)[:, 0]
    return fig, list(axes)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


def _img(png: bytes, alt: str, caption: str | None = None) -> str:
    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{_esc(caption)}</figcaption>" if caption else ""
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_esc(alt)}">'
            f"{cap}</figure>")


def _pct_axis(ax) -> None:
    from matplotlib.ticker import PercentFormatter

    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=None))


def _availability_limits(ax, values: Sequence[float] | np.ndarray) -> None:
    """A percent axis that ends just above 100% and starts a little below the lowest value."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    lo = min(float(v.min()) if len(v) else 0.99, 0.99)
    span = 1.0 - lo
    ax.set_ylim(lo - 0.05 * span, 1.0 + 0.05 * span)
    _pct_axis(ax)


def _zero_based(ax, values: Sequence[float] | np.ndarray) -> None:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    top = float(v.max()) if len(v) else 0.0
    ax.set_ylim(0, top * 1.1 if top > 0 else 1.0)


_COLORS = ("#0969da", "#cf222e", "#1a7f37", "#8250df", "#bf8700", "#1b7c83", "#e16f24", "#6e7781")


# --------------------------------------------------------------------------- reading


def _fail(message: str, where: Path | str) -> SpecError:
    return SpecError(message, (), str(where))


def _read_json(path: Path, folder: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise _fail(f"cannot read {path.name}: {e}", folder) from None
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
        raise _fail(f"cannot read {path.name}: {e}", folder) from None


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


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 margin:2rem auto;max-width:1400px;padding:0 1rem;color:#1f2328;line-height:1.45}
h1{font-size:1.6rem;margin:0 0 .3rem}
h1 .kind{font-size:.9rem;font-weight:600;color:#57606a;text-transform:uppercase;
 letter-spacing:.05em;margin-right:.5rem}
h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem}
h3{font-size:1rem;margin:1.2rem 0 .2rem}
.meta{color:#57606a;margin:.2rem 0}
.note{color:#57606a;font-size:.9rem}
.scroll{overflow-x:auto}
table.data{border-collapse:collapse;font-size:.85rem;margin:.4rem 0 1rem;
 font-variant-numeric:tabular-nums}
table.data th,table.data td{border:1px solid #d0d7de;padding:.2rem .55rem;text-align:right;
 white-space:nowrap}
table.data th{background:#f6f8fa;font-weight:600}
table.data td:first-child,table.data th:first-child,table.data .t{text-align:left}
table.data td.long{white-space:normal;min-width:18rem}
table.data tbody tr:nth-child(even) td{background:#fafbfc}
td.c-ok{color:#1a7f37;font-weight:600}
td.c-bad{color:#cf222e;font-weight:600}
table.data tbody tr.err td{background:#ffebe9;color:#82071e}
.verdict{display:inline-block;font-size:1.9rem;font-weight:700;padding:.35rem 1.1rem;
 border-radius:8px;color:#fff;margin:.6rem 0}
.verdict.met{background:#1a7f37}.verdict.missed{background:#cf222e}
.verdict.none{background:#6e7781}
.plots{display:flex;flex-wrap:wrap;gap:1rem}
figure{margin:.5rem 0}
figure img{max-width:100%;height:auto;border:1px solid #d0d7de}
figcaption{color:#57606a;font-size:.85rem}
pre{background:#f6f8fa;padding:.75rem;overflow-x:auto;font-size:.8rem}
details{margin:.5rem 0}
summary{cursor:pointer;color:#0969da}
footer{margin-top:3rem;color:#57606a;font-size:.8rem;border-top:1px solid #d0d7de;
 padding-top:.5rem}
"""


def _page(kind: str, title: str, body: list[str], meta: dict[str, Any], folder: Path) -> str:
    made_by = meta.get("simarch_version")
    footer = f"Report written by simarch {_esc(__version__)}"
    if made_by:
        footer += f" from results written by simarch {_esc(made_by)}"
    footer += f" (folder {_esc(folder.name)})."
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="simarch">',
        f"<title>simarch {_esc(kind)}: {_esc(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f'<h1><span class="kind">{_esc(kind)}</span>{_esc(title)}</h1>',
        *body,
        f"<footer>{footer}</footer>",
        "</body>",
        "</html>",
        "",
    ])


def _section(title: str, *parts: str) -> str:
    return "\n".join([f"<h2>{_esc(title)}</h2>", *[p for p in parts if p]])


def _details(summary: str, content: str) -> str:
    return f"<details><summary>{_esc(summary)}</summary>\n{content}\n</details>"


def _p(text: str, cls: str | None = None) -> str:
    return f'<p class="{cls}">{_esc(text)}</p>' if cls else f"<p>{_esc(text)}</p>"


# --------------------------------------------------------------------------- run


def _slo_targets_s(spec: dict[str, Any] | None) -> dict[str, float]:
    """Latency SLO targets of a spec, in milliseconds, keyed like ``p99_ms``."""

    slo = (spec or {}).get("slo") or {}
    out: dict[str, float] = {}
    if not isinstance(slo, dict):
        return out
    for name, value in slo.items():
        if name == "availability" or value is None:
            continue
        try:
            out[f"{name}_ms"] = parse_duration(value) * 1e3
        except (ValueError, TypeError):
            continue
    return out


def _run_page(folder: Path, meta: dict[str, Any]) -> str:
    import yaml

    doc = _read_json(folder / "result.json", folder) if (folder / "result.json").exists() else None
    summary = _parquet(folder, "summary", required=True)
    components = _parquet(folder, "components", required=True)
    requests = _parquet(folder, "requests")
    instances = _parquet(folder, "instances")
    shards = _parquet(folder, "shards")
    faults = _parquet(folder, "faults")
    events = _parquet(folder, "events")
    calls = _parquet(folder, "calls")
    timeseries = _parquet(folder, "timeseries")
    doc = doc or {}
    spec_text = None
    spec = None
    if (folder / "spec.yaml").exists():
        spec_text = (folder / "spec.yaml").read_text(encoding="utf-8", errors="replace")
        try:
            spec = yaml.safe_load(spec_text)
        except yaml.YAMLError:
            spec = None
    design = meta.get("design") or doc.get("design") or folder.name
    load = meta.get("load", doc.get("load"))
    duration = meta.get("duration_s", doc.get("duration_s"))
    warmup = meta.get("warmup_s", doc.get("warmup_s"))
    seed = meta.get("seed", doc.get("seed"))

    body: list[str] = []
    bits = [f"load {_fmt(load, 'x')}"]
    if duration is not None:
        bits.append(f"window {_fmt(duration, 's')}"
                    + (f" after {_fmt(warmup, 's')} warm-up" if warmup is not None else ""))
    bits.append(f"seed {seed if seed is not None else '-'}")
    body.append(_p(" · ".join(bits), "meta"))
    if isinstance(spec, dict) and spec.get("description"):
        body.append(_p(str(spec["description"]).strip(), "meta"))

    # ---- SLO verdict
    slo = doc.get("slo")
    if slo:
        met = bool(slo.get("met"))
        verdict = (f'<div class="verdict {"met" if met else "missed"}">'
                   f'{"SLO met" if met else "SLO missed"}</div>')
        rows = []
        for target, t in (slo.get("targets") or {}).items():
            actual = t.get("actual")
            rows.append({"target": target, "objective": t.get("objective"),
                         "actual": _fmt(actual, "pct") if target == "availability"
                         else f"{_fmt(actual, 'ms')} ms",
                         "verdict": _fmt(t.get("met"), "met")})
        parts = [verdict]
        if rows:
            parts.append(_table(pd.DataFrame(rows), [("target", "target", "str"),
                                                     ("objective", "objective", "str"),
                                                     ("actual", "actual", "str"),
                                                     ("verdict", "verdict", "str")]))
        used = slo.get("error_budget_used")
        if used is not None:
            parts.append(_p("Availability error budget used: " + (
                f"{used:,.3g} times the whole budget" if used > 1 else _fmt(used, "pct")),
                "note"))
        body.append(_section("SLO", *parts))
    else:
        body.append(_section("SLO", '<div class="verdict none">No SLO declared</div>'))

    # ---- end to end
    summ_cols = [("class", "class", "str"), ("requests", "requests", "int"),
                 ("completed", "completed", "int"), ("in_flight", "in flight", "int"),
                 ("throughput_rps", "throughput rps", "num"),
                 ("availability", "availability", "pct"), ("rejected", "rejected", "int"),
                 ("timeout", "timeout", "int"), ("failed", "failed", "int")]
    summ_cols += [(m, _label(m), "ms") for m in _LATENCY_METRICS]
    body.append(_section(
        "End to end",
        _p("Latency of successful requests (ms); availability is successful over finished "
           "requests; throughput is successful requests per second of the window.", "note"),
        _table(summary, summ_cols)))

    # ---- components
    comp_cols = [("component", "component", "str"), ("kind", "kind", "str"),
                 ("instances", "instances", "int"), ("workers", "workers", "int"),
                 ("offered_rps", "offered rps", "num"), ("received_rps", "received rps", "num"),
                 ("amplification", "amplification", "num"),
                 ("throughput_rps", "throughput rps", "num"),
                 ("utilization", "utilisation", "pct"), ("uptime", "uptime", "pct"),
                 ("mean_queue", "mean queue", "num"), ("max_queue", "max queue", "int"),
                 ("mean_wait_ms", "mean wait ms", "ms"), ("p99_wait_ms", "p99 wait ms", "ms"),
                 ("mean_latency_ms", "mean latency ms", "ms"),
                 ("p99_latency_ms", "p99 latency ms", "ms"), ("rejected", "rejected", "int"),
                 ("hit_ratio", "hit ratio", "pct"), ("consumed", "consumed", "int"),
                 ("consumer_failures", "consumer failures", "int"),
                 ("hottest_shard_share", "hottest shard share", "pct")]
    optional = ["hit_ratio", "p99_wait_ms", "consumed", "consumer_failures",
                "hottest_shard_share", "received_rps"]
    if "received_rps" in components and "offered_rps" in components and \
            np.allclose(components["received_rps"].astype(float),
                        components["offered_rps"].astype(float), equal_nan=True):
        components = components.drop(columns=["received_rps"])
    if "amplification" in components and \
            (components["amplification"].astype(float).fillna(1.0) == 1.0).all():
        components = components.drop(columns=["amplification"])
    comp_parts = [_p("Queue is time-weighted; latency is the time spent in the component (ms).",
                     "note"),
                  _table(components, comp_cols, drop_empty=optional)]
    if "utilization" in components:
        util = components.set_index("component")["utilization"].astype(float).dropna() \
            if "component" in components else pd.Series(dtype=float)
        if len(util):
            comp_parts.append(_p(f"Busiest component: {util.idxmax()} at "
                                 f"{util.max():.1%} utilisation."))
    if instances is not None and len(instances):
        comp_parts.append(_details(f"Instances ({len(instances)})", _table(instances, [
            ("component", "component", "str"), ("instance", "instance", "str"),
            ("zone", "zone", "str"), ("workers", "workers", "int"),
            ("utilization", "utilisation", "pct"), ("throughput_rps", "throughput rps", "num"),
            ("mean_queue", "mean queue", "num"), ("max_queue", "max queue", "int"),
            ("rejected", "rejected", "int"), ("uptime", "uptime", "pct")],
            drop_empty=["zone"])))
    body.append(_section("Components", *comp_parts))

    if shards is not None and len(shards):
        body.append(_section("Datastore shards", _table(shards, [
            ("component", "component", "str"), ("shard", "shard", "int"),
            ("requests", "requests", "int"), ("rate_rps", "rate rps", "num"),
            ("share", "share", "pct"), ("utilization", "utilisation", "pct"),
            ("max_replica_utilization", "max replica utilisation", "pct")])))
    if calls is not None and len(calls):
        body.append(_section("Calls with resilience policies", _table(calls)))
    if faults is not None and len(faults):
        body.append(_section("Faults", _table(faults, [
            ("fault", "fault", "str"), ("kind", "kind", "str"), ("target", "target", "str"),
            ("start_s", "start s", "num"), ("end_s", "end s", "num")])))
    if events is not None and len(events):
        body.append(_section("Events", _table(events, [
            ("time_s", "time s", "num"), ("what", "what", "str"), ("where", "where", "str"),
            ("from", "from", "str"), ("to", "to", "str")])))

    ll = doc.get("littles_law")
    if ll:
        line = _littles_law_line(ll)
        if line:
            body.append(_section("Little's law", _p(line)))

    # ---- plots
    plots: list[str] = []
    start = float(warmup) if warmup is not None else None
    end = start + float(duration) if start is not None and duration is not None else None
    slo_ms = _slo_targets_s(spec)
    ok = None if requests is None or "latency_ms" not in requests else (
        requests if "status" not in requests else requests[requests["status"].astype(str) == "ok"])
    if ok is not None and len(ok):
        plots.append(_img(_png(_latency_cdf(requests, slo_ms)), "latency CDF",
                          "Latency CDF of successful requests"))
    tl = _timeline(requests, timeseries, faults, start, end)
    if tl is not None:
        plots.append(_img(_png(tl), "timeline",
                          "Throughput, p99 latency and availability over the window "
                          "(fault windows shaded)"))
    ut = _utilisation(components)
    if ut is not None:
        plots.append(_img(_png(ut), "utilisation", "Utilisation per component"))
    if plots:
        body.append(_section("Plots", '<div class="plots">', *plots, "</div>"))

    if spec_text:
        body.append(_details("Resolved spec (spec.yaml)", f"<pre>{_esc(spec_text)}</pre>"))
    return _page("run", str(design), body, meta, folder)


def _littles_law_line(ll: dict[str, Any]) -> str | None:
    big_l, lam, w, lw = (ll.get(k) for k in ("L", "lambda", "W", "lambda_W"))
    if big_l is None or lam is None or w is None or lw is None:
        return None
    text = (f"L = {_fmt(big_l)} requests in the system on average; λ·W = {_fmt(lam)} rps × "
            f"{_fmt(w * 1e3, 'ms')} ms = {_fmt(lw)}")
    if big_l:
        text += f" ({(lw - big_l) / big_l:+.1%} from L)"
    return text + "."


def _latency_cdf(requests: pd.DataFrame, slo_ms: dict[str, float]):
    fig, (ax,) = _figure(7.5, 4.2)
    ok = requests
    if "status" in requests:
        ok = requests[requests["status"].astype(str) == "ok"]
    groups: list[tuple[str, np.ndarray]] = [("all", ok["latency_ms"].to_numpy(dtype=float))]
    if "class" in ok:
        classes = [str(c) for c in pd.unique(requests["class"].astype(str))]
        if len(classes) > 1:
            cls = ok["class"].astype(str)
            groups += [(c, ok.loc[cls == c, "latency_ms"].to_numpy(dtype=float))
                       for c in sorted(classes)]
    lo, hi = math.inf, 0.0
    for i, (name, lat) in enumerate(groups):
        lat = np.sort(lat[np.isfinite(lat)])
        if not len(lat):
            continue
        n = len(lat)
        idx = np.arange(n) if n <= 4000 else np.unique(np.concatenate([
            np.linspace(0, n - 1, 3000).astype(int),
            (n - np.unique(np.geomspace(1, n, 1000).astype(int))).clip(0, n - 1)]))
        y = (idx + 1) / n
        ax.step(lat[idx], y, where="post", color=_COLORS[i % len(_COLORS)],
                lw=2.0 if name == "all" else 1.2, label=f"{name} (n={n:,})")
        lo, hi = min(lo, float(lat[lat > 0].min()) if (lat > 0).any() else lo), max(hi, lat[-1])
    for q in (0.5, 0.99):
        ax.axhline(q, color="#8c959f", lw=0.8, ls=":")
    for name, v in sorted(slo_ms.items()):
        ax.axvline(v, color="#cf222e", lw=1.2, ls="--",
                   label=f"SLO {_label(name).replace(' ms', '')} {_fmt(v, 'ms')} ms")
    if math.isfinite(lo) and hi > 0 and hi / lo > 20:
        ax.set_xscale("log")
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("fraction of successful requests")
    ax.set_title("Latency CDF")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def _nice_width(span: float, max_bins: int = 60) -> float:
    for w in (0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800,
              3600):
        if span / w <= max_bins:
            return float(w)
    return span / max_bins


def _binned(requests: pd.DataFrame, start: float, end: float) -> pd.DataFrame:
    """Throughput, availability and p99 per time bin, by completion time."""
    width = _nice_width(end - start)
    n = max(1, math.ceil((end - start) / width - 1e-9))
    edges = np.minimum(start + width * np.arange(n + 1), end)
    edges[-1] = end
    t = requests["end_s"].to_numpy(dtype=float)
    ok = (requests["status"].astype(str) == "ok").to_numpy() if "status" in requests \
        else np.ones(len(t), bool)
    lat = requests["latency_ms"].to_numpy(dtype=float)
    idx = np.searchsorted(edges, t, side="right") - 1
    rows = []
    for b in range(len(edges) - 1):
        m = idx == b
        n, k = int(m.sum()), int((m & ok).sum())
        lk = lat[m & ok]
        rows.append({"start_s": edges[b], "end_s": edges[b + 1],
                     "throughput_rps": k / (edges[b + 1] - edges[b]),
                     "availability": k / n if n else math.nan,
                     "p99_ms": float(np.percentile(lk, 99)) if len(lk) else math.nan})
    return pd.DataFrame(rows)


def _timeline(requests, timeseries, faults, start, end):
    if requests is not None and len(requests) and start is not None and end is not None \
            and end > start and {"end_s", "latency_ms"} <= set(requests.columns):
        ts = _binned(requests, start, end)
    elif timeseries is not None and len(timeseries):
        ts = timeseries
    else:
        return None
    fig, axes = _figure(8.0, 6.0, nrows=3, sharex=True)
    mid = (ts["start_s"].to_numpy(float) + ts["end_s"].to_numpy(float)) / 2
    edges = np.append(ts["start_s"].to_numpy(float), ts["end_s"].to_numpy(float)[-1])
    specs = [("throughput_rps", "throughput (rps)", _COLORS[0]),
             ("p99_ms", "p99 latency (ms)", _COLORS[4]),
             ("availability", "availability", _COLORS[2])]
    for ax, (col, label, color) in zip(axes, specs, strict=True):
        if col in ts:
            y = ts[col].to_numpy(dtype=float)
            if len(ts) > 1:
                ax.plot(mid, y, color=color, lw=1.5, marker="." if len(ts) <= 30 else None)
            else:
                ax.hlines(y, edges[:-1], edges[1:], color=color, lw=2)
        ax.set_ylabel(label, fontsize=9)
        ax.grid(True, alpha=0.3)
    for ax, (col, _, _) in zip(axes, specs, strict=True):
        if col in ts:
            y = ts[col].to_numpy(dtype=float)
            if col == "availability":
                _availability_limits(ax, y)
            else:
                _zero_based(ax, y)
    lo_x, hi_x = edges[0], edges[-1]
    shaded = False
    if faults is not None and len(faults) and {"start_s", "end_s"} <= set(faults.columns):
        for _, f in faults.iterrows():
            a, b = max(float(f["start_s"]), lo_x), min(float(f["end_s"]), hi_x)
            if b <= a:
                continue
            for ax in axes:
                ax.axvspan(a, b, color="#cf222e", alpha=0.15, lw=0,
                           label=None if shaded else "fault window")
            shaded = True
    if shaded:
        axes[0].legend(loc="upper right", fontsize=8)
    axes[0].set_xlim(lo_x, hi_x)
    axes[-1].set_xlabel("simulated time (s)")
    width = float(ts["end_s"].iloc[0] - ts["start_s"].iloc[0])
    axes[0].set_title(f"Timeline ({width:g} s bins, by completion time)")
    return fig


def _utilisation(components: pd.DataFrame):
    if "utilization" not in components or "component" not in components:
        return None
    u = components[["component", "utilization"]].copy()
    u["utilization"] = u["utilization"].astype(float)
    u = u.dropna()
    if not len(u):
        return None
    fig, (ax,) = _figure(7.0, 1.0 + 0.45 * len(u))
    names = [str(c) for c in u["component"]][::-1]
    vals = u["utilization"].to_numpy()[::-1]
    colors = ["#cf222e" if v >= 0.8 else "#bf8700" if v >= 0.6 else "#0969da" for v in vals]
    ax.barh(names, vals, color=colors)
    for y, v in enumerate(vals):
        ax.text(v, y, f" {v:.1%}", va="center", fontsize=8)
    ax.axvline(1.0, color="#57606a", lw=0.8, ls="--")
    ax.set_xlim(0, max(1.05, float(vals.max()) * 1.15))
    from matplotlib.ticker import PercentFormatter

    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_xlabel("utilisation (busy workers / workers)")
    ax.set_title("Utilisation per component")
    ax.grid(True, axis="x", alpha=0.3)
    return fig


# --------------------------------------------------------------------------- comparison


def _ci_cell(mean: Any, lo: Any, hi: Any, kind: str, signed: bool = False) -> str:
    if _missing(mean):
        return "-"

    def f(v: Any) -> str:
        s = _fmt(v, kind)
        return f"+{s}" if signed and not _missing(v) and float(v) >= 0 else s

    if _missing(lo) or _missing(hi):
        return f(mean)
    return f"{f(mean)} [{f(lo)}, {f(hi)}]"


def _metric_kind(metric: str) -> str:
    return "ms" if metric.endswith("_ms") else "pct" if metric == "availability" else "num"


def _ordered_metrics(present: Sequence[str]) -> list[str]:
    order = list(_MAIN_METRICS) + [m for m in _LATENCY_METRICS if m not in _MAIN_METRICS]
    return [m for m in order if m in present] + sorted(m for m in present if m not in order)


def _comparison_page(folder: Path, meta: dict[str, Any]) -> str:
    tables = {n: _parquet(folder, n, required=(n == "table")) for n in
              ("runs", "table", "diff", "slo", "knee")}
    table = tables["table"]
    designs = [str(d) for d in meta.get("designs") or pd.unique(table["design"])]
    loads = sorted(float(x) for x in (meta.get("loads") or pd.unique(table["load"])))
    confidence = float(meta.get("confidence", 0.95))
    pct = f"{confidence:.0%}"
    slos = meta.get("slos") or {}
    settings = meta.get("settings") or {}

    body: list[str] = []
    body.append(_p(f"Designs: {', '.join(designs)}", "meta"))
    bits = [f"loads {', '.join(_fmt(x, 'x') for x in loads)}",
            f"{meta.get('replications', '-')} replications per point",
            f"{pct} t-intervals", f"common random numbers (seed {meta.get('seed', '-')})"]
    if settings.get("duration") is not None:
        bits.append(f"window {_fmt(settings['duration'], 's')}"
                    + (f" after {_fmt(settings['warmup'], 's')} warm-up"
                       if settings.get("warmup") is not None else ""))
    body.append(_p(" · ".join(bits), "meta"))
    slo_rows = [{"design": d, **{k: (_fmt(v, "pct") if k == "availability" else
                                     f"{_fmt(float(v) * 1e3, 'ms')} ms")
                                 for k, v in (slos.get(d) or {}).items() if v is not None}}
                for d in designs]
    if any(len(r) > 1 for r in slo_rows):
        body.append(_section("SLO targets", _table(pd.DataFrame(slo_rows).fillna("-"), [
            (c, "p99.9" if c == "p999" else c, "str") for c in pd.DataFrame(slo_rows).columns])))

    # ---- SLO verdicts
    slo = tables["slo"]
    if slo is not None and len(slo):
        grid = {}
        for d in designs:
            col = []
            for x in loads:
                r = slo[(slo["design"].astype(str) == d) & np.isclose(slo["load"].astype(float), x)]
                if not len(r) or _missing(r["slo_met"].iloc[0]):
                    col.append("no SLO" if not slos.get(d) else "-")
                    continue
                share = r["met_share"].iloc[0] if "met_share" in r else math.nan
                word = _fmt(r["slo_met"].iloc[0], "met")
                col.append(word + ("" if _missing(share) else
                                   f" ({float(share):.0%} of replications)"))
            grid[d] = col
        verdicts = pd.DataFrame({"load": [_fmt(x, "x") for x in loads], **grid})
        body.append(_section(
            "SLO verdict",
            _p("Verdict on the mean of each metric; in brackets, the share of replications that "
               "met the SLO on their own.", "note"),
            _table(verdicts, [(c, c, "str") for c in verdicts.columns])))

    # ---- knee
    knee = tables["knee"]
    if knee is not None and len(knee):
        rows = []
        for _, k in knee.iterrows():
            rows.append({
                "design": k["design"], "knee": _fmt(k["knee"], "x"),
                f"{pct} CI": "-" if _missing(k.get("ci_low")) else
                f"[{float(k['ci_low']):.2f}x, {float(k['ci_high']):.2f}x]",
                "resolution": _fmt(k.get("resolution"), "x"),
                "bracket": "-" if _missing(k.get("bracket_low")) else
                f"{_fmt(k['bracket_low'], 'x')} – {_fmt(k['bracket_high'], 'x')}",
                "note": k.get("note") or "",
            })
        kt = pd.DataFrame(rows)
        body.append(_section("Knee", _p("The highest load multiplier that still meets the SLO.",
                                         "note"),
                             _table(kt, [(c, c, "str") for c in kt.columns])))
    else:
        body.append(_section("Knee", _p("The knee was not searched for (run with knee=True, "
                                         "the default of simarch compare, to find it).",
                                         "note")))

    # ---- metrics
    parts = [_p(f"Mean [{pct} confidence interval] over replications; rows are load "
                "multipliers, columns designs.", "note")]
    present = [str(m) for m in pd.unique(table["metric"])]
    metrics = _ordered_metrics(present)
    main = [m for m in metrics if m in _MAIN_METRICS]
    extra = [m for m in metrics if m not in _MAIN_METRICS]
    for group, wrap in ((main, False), (extra, True)):
        html_parts = []
        for m in group:
            t = table[table["metric"].astype(str) == m]
            kind = _metric_kind(m)
            grid = {"load": [_fmt(x, "x") for x in loads]}
            for d in designs:
                col = []
                for x in loads:
                    r = t[(t["design"].astype(str) == d) & np.isclose(t["load"].astype(float), x)]
                    col.append("-" if not len(r) else
                               _ci_cell(r["mean"].iloc[0], r["ci_low"].iloc[0],
                                        r["ci_high"].iloc[0], kind))
                grid[d] = col
            wide = pd.DataFrame(grid)
            html_parts.append(f"<h3>{_esc(_METRIC_LABELS.get(m, _label(m)))}</h3>")
            html_parts.append(_table(wide, [(c, c, "str") for c in wide.columns]))
        if html_parts:
            parts.append(_details("More metrics", "\n".join(html_parts)) if wrap
                         else "\n".join(html_parts))
    body.append(_section("Metrics by load", *parts))

    # ---- differences
    diff = tables["diff"]
    if diff is not None and len(diff):
        dmetrics = _ordered_metrics([str(m) for m in pd.unique(diff["metric"])])
        dmetrics = [m for m in dmetrics if m in _MAIN_METRICS] or dmetrics
        rows = []
        for (design, load), g in diff.groupby(["design", "load"], sort=False):
            g = g.set_index(g["metric"].astype(str))
            row = {"design": str(design), "against": str(g["baseline"].iloc[0])
                   if "baseline" in g else designs[0], "load": _fmt(load, "x")}
            for m in dmetrics:
                row[_label(m)] = "-" if m not in g.index else _ci_cell(
                    g.loc[m, "mean_diff"], g.loc[m, "ci_low"], g.loc[m, "ci_high"],
                    _metric_kind(m), signed=True)
            rows.append(row)
        dt = pd.DataFrame(rows)
        body.append(_section(
            "Differences",
            _p(f"Design minus baseline, paired by replication (common random numbers): mean "
               f"[{pct} CI]. An interval that excludes 0 is a real difference.", "note"),
            _table(dt, [(c, c, "str") for c in dt.columns])))

    # ---- plots
    plots = _comparison_plots(folder, meta, table, designs, slos)
    if plots:
        body.append(_section("Plots", '<div class="plots">', *plots, "</div>"))

    runs = tables["runs"]
    if runs is not None and len(runs):
        cols = [c for c in runs.columns if c not in ("seed",)]
        body.append(_details(f"All runs ({len(runs)})", _table(
            runs, [(c, _label(c), _kind_of(c, runs[c])) for c in cols],
            row_classes=["err" if not _missing(e) else None for e in runs["error"]]
            if "error" in runs else None)))
    return _page("comparison", " vs ".join(designs), body, meta, folder)


def _common_slo(slos: dict[str, Any], key: str) -> float | None:
    vals = {float(s[key]) for s in slos.values() if isinstance(s, dict) and s.get(key) is not None}
    return vals.pop() if len(vals) == 1 else None


def _comparison_plots(folder, meta, table, designs, slos) -> list[str]:
    """Latency and availability against load: drawn with :mod:`simarch.plots` when it is
    available, else the PNGs saved with the comparison, else simple lines drawn here."""
    specs = (("latency_vs_load.png", "p99 latency against load", "plot_latency", _latency_lines),
             ("availability_vs_load.png", "Availability against load", "plot_availability",
              _availability_lines))
    out = []
    cmp = None
    try:
        cmp = Comparison.load(folder)
    except Exception:  # noqa: BLE001 - fall back to the saved images or simple lines
        cmp = None
    for png_name, caption, method, fallback in specs:
        png = None
        if cmp is not None:
            try:
                fig, (ax,) = _figure(7.0, 4.0)
                getattr(cmp, method)(ax=ax)
                png = _png(fig)
            except Exception:  # noqa: BLE001
                png = None
        if png is None and (folder / png_name).is_file():
            data = (folder / png_name).read_bytes()
            if data.startswith(b"\x89PNG\r\n\x1a\n"):
                png = data
        if png is None:
            fig = fallback(table, designs, slos)
            png = _png(fig) if fig is not None else None
        if png is not None:
            out.append(_img(png, caption, caption))
    return out


def _band_lines(ax, table: pd.DataFrame, designs: Sequence[str], metric: str,
                ls: str = "-", label_suffix: str = "", band: bool = True) -> bool:
    drew = False
    t = table[table["metric"].astype(str) == metric]
    for i, d in enumerate(designs):
        g = t[t["design"].astype(str) == d].sort_values("load")
        if not len(g):
            continue
        x = g["load"].to_numpy(float)
        color = _COLORS[i % len(_COLORS)]
        ax.plot(x, g["mean"].to_numpy(float), ls=ls, marker="o", ms=4, color=color,
                label=f"{d}{label_suffix}")
        if band and {"ci_low", "ci_high"} <= set(g.columns):
            ax.fill_between(x, g["ci_low"].to_numpy(float), g["ci_high"].to_numpy(float),
                            color=color, alpha=0.15, lw=0)
        drew = True
    return drew


def _load_axis(ax, table: pd.DataFrame) -> None:
    loads = sorted({float(x) for x in table["load"]})
    ax.set_xticks(loads)
    ax.set_xticklabels([_fmt(x, "x") for x in loads])
    ax.set_xlabel("load multiplier")
    ax.grid(True, alpha=0.3)


def _latency_lines(table, designs, slos):
    fig, (ax,) = _figure(7.0, 4.0)
    drew = _band_lines(ax, table, designs, "p99_ms", label_suffix=" p99")
    drew |= _band_lines(ax, table, designs, "p50_ms", ls=":", label_suffix=" p50", band=False)
    if not drew:
        return None
    slo = _common_slo(slos, "p99")
    if slo is not None:
        ax.axhline(slo * 1e3, color="#cf222e", ls="--", lw=1, label=f"SLO p99 {slo * 1e3:g} ms")
    ax.set_ylim(bottom=0)
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"Latency against load (mean, {len(designs)} designs)")
    _load_axis(ax, table)
    ax.legend(fontsize=8)
    return fig


def _availability_lines(table, designs, slos):
    fig, (ax,) = _figure(7.0, 4.0)
    if not _band_lines(ax, table, designs, "availability"):
        return None
    slo = _common_slo(slos, "availability")
    if slo is not None:
        ax.axhline(slo, color="#cf222e", ls="--", lw=1, label=f"SLO {_fmt(slo, 'pct')}")
    t = table[table["metric"].astype(str) == "availability"]
    _availability_limits(ax, np.concatenate([t["mean"].to_numpy(float), [slo or 1.0]]))
    ax.set_ylabel("availability")
    ax.set_title("Availability against load (mean)")
    _load_axis(ax, table)
    ax.legend(fontsize=8)
    return fig


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
    n_err = int(df["error"].notna().sum()) if "error" in df else 0

    body: list[str] = []
    bits = [f"{len(df)} points"]
    loads = meta.get("loads") or (sorted(pd.unique(df["load"])) if "load" in df else [])
    if loads:
        bits.append(f"loads {', '.join(_fmt(float(x), 'x') for x in loads)}")
    if meta.get("replications") is not None:
        bits.append(f"{meta['replications']} replication(s) per point")
    if meta.get("seed") is not None:
        bits.append(f"seed {meta['seed']}")
    if meta.get("duration") is not None:
        bits.append(f"window {_fmt(meta['duration'], 's')}"
                    + (f" after {_fmt(meta['warmup'], 's')} warm-up"
                       if meta.get("warmup") is not None else ""))
    body.append(_p(" · ".join(bits), "meta"))
    if meta.get("unfinished"):
        body.append(_p("No simarch.json: this sweep did not finish (run it again to resume); "
                       "the points found so far are shown.", "note"))
    if n_err:
        body.append(f'<p class="note"><strong>{n_err} point(s) failed</strong>; they are '
                    "highlighted in the table.</p>")

    prow = []
    for c in pcols:
        p = c.removeprefix("param.")
        values = params.get(p) if params else None
        if values is None:
            values = sorted(pd.unique(df[c]), key=lambda v: (str(type(v)), str(v)))
        prow.append({"parameter": p, "values": ", ".join(str(v) for v in values)})
    if prow:
        body.append(_section("Parameters", _table(pd.DataFrame(prow),
                                                  [("parameter", "parameter", "str"),
                                                   ("values", "values", "str")])))

    if not len(df):
        body.append(_section("Results", _p("The dataset holds no points yet.", "note")))
        return _page("sweep", str(design), body, meta, folder)

    order = pcols + [c for c in ("load", "replication", "point_id") if c in df.columns]
    df = df.sort_values(order, key=_sort_key, kind="mergesort").reset_index(drop=True)
    multi_rep = "replication" in df and df["replication"].nunique() > 1
    cols = [(c, c.removeprefix("param."), "str") for c in pcols]
    cols += [("load", "load", "x")]
    if multi_rep:
        cols += [("replication", "replication", "int")]
    cols += [(m, _label(m), _metric_kind(m)) for m in
             ("p50_ms", "p99_ms", "p999_ms", "throughput_rps", "availability") if m in df]
    if "slo_met" in df:
        cols.append(("slo_met", "SLO", "met"))
    cols += [(c, c.replace("util.", "util ").replace("utilization", "utilisation"), "pct")
             for c in df.columns if c.startswith("util.")]
    cols += [("requests", "requests", "int"), ("error", "error", "str")]
    rows = ["err" if "error" in df and not _missing(e) else None for e in
            (df["error"] if "error" in df else [None] * len(df))]
    body.append(_section(
        "Results",
        _p("Sorted by parameters and load; latency of successful requests in ms.", "note"),
        _table(df, cols, row_classes=rows,
               drop_empty=["error", "slo_met"] + [c for c in df.columns
                                                  if c.startswith("util.")])))

    fig = _sweep_plot(df, pcols)
    if fig is not None:
        body.append(_section("Plots", _img(_png(fig), "sweep plot",
                                           "p99 latency and availability of each point "
                                           "(mean over replications)")))
    return _page("sweep", str(design), body, meta, folder)


def _sweep_plot(df: pd.DataFrame, pcols: list[str]):
    need = {"p99_ms", "availability", "load"}
    if not need <= set(df.columns):
        return None
    ok = df[df["error"].isna()] if "error" in df else df
    ok = ok[ok["p99_ms"].notna() | ok["availability"].notna()]
    if not len(ok):
        return None
    n_loads = ok["load"].nunique()
    if n_loads > 1 or not pcols:
        x_col, line_cols = "load", pcols
    else:
        x_col, line_cols = pcols[0], pcols[1:]
    fig, axes = _figure(8.0, 6.0, nrows=2, sharex=True)
    groups = ok.groupby(line_cols, sort=False, dropna=False) if line_cols else [((), ok)]
    keys = []
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        keys.append((key, g))
    keys.sort(key=lambda kg: tuple(_sort_key(pd.Series([v])).iloc[0] if not isinstance(v, str)
                                   else v for v in kg[0]) if kg[0] else ())
    x_numeric = pd.to_numeric(ok[x_col], errors="coerce").notna().all()
    cats = sorted({str(v) for v in ok[x_col]}) if not x_numeric else None
    for i, (key, g) in enumerate(keys):
        means = g.groupby(x_col, sort=False)[["p99_ms", "availability"]].mean()
        if x_numeric:
            means.index = pd.to_numeric(means.index)
            means = means.sort_index()
            xs = means.index.to_numpy(float)
        else:
            means = means.loc[sorted(means.index, key=str)]
            xs = np.array([cats.index(str(v)) for v in means.index], float)
        label = ", ".join(f"{c.removeprefix('param.')}={v}" for c, v in
                          zip(line_cols, key, strict=True)) or "all points"
        color = _COLORS[i % len(_COLORS)]
        ls = ("-", "--", ":", "-.")[(i // len(_COLORS)) % 4]
        axes[0].plot(xs, means["p99_ms"].to_numpy(float), marker="o", ms=4, color=color, ls=ls,
                     label=label)
        axes[1].plot(xs, means["availability"].to_numpy(float), marker="o", ms=4, color=color,
                     ls=ls, label=label)
    axes[0].set_ylabel("p99 latency (ms)")
    _zero_based(axes[0], ok["p99_ms"].to_numpy(float))
    axes[1].set_ylabel("availability")
    _availability_limits(axes[1], ok["availability"].to_numpy(float))
    for ax in axes:
        ax.grid(True, alpha=0.3)
    if x_col == "load":
        xs = sorted({float(v) for v in ok["load"]})
        axes[1].set_xticks(xs)
        axes[1].set_xticklabels([_fmt(v, "x") for v in xs])
        axes[1].set_xlabel("load multiplier")
    else:
        if cats is not None:
            axes[1].set_xticks(range(len(cats)))
            axes[1].set_xticklabels(cats)
        else:
            xs = sorted({float(v) for v in pd.to_numeric(ok[x_col])})
            if len(xs) <= 12:
                axes[1].set_xticks(xs)
                axes[1].set_xticklabels([f"{v:g}" for v in xs])
        axes[1].set_xlabel(x_col.removeprefix("param."))
    if len(keys) > 1 or line_cols:
        axes[0].legend(fontsize=8, ncols=1 if len(keys) <= 8 else 2)
    axes[0].set_title("p99 latency and availability" + (" against load" if x_col == "load"
                                                        else f" at {_fmt(float(ok['load'].iloc[0]), 'x')} load"))
    return fig


# --------------------------------------------------------------------------- entry points

_RENDER = {"run": _run_page, "comparison": _comparison_page, "sweep": _sweep_page}


def render_report(results_dir: str | Path) -> str:
    """The HTML page of a results folder (run, comparison or sweep), as a string.

    Raises :class:`~simarch.errors.SpecError` if the folder is missing, is not a simarch
    results folder, or a file in it cannot be read.
    """
    folder = Path(results_dir)
    kind, meta = _manifest(folder)
    return _RENDER[kind](folder, meta)


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

"""The figures of a run's deployments: how long each took, and the availability and p99 of
the requests that arrived while it went on, against those of the rest of the window.

A deployment's record (from :mod:`simarch.runtime.deploy`) gives its start and end, the
fewest instances in rotation while it went on, the instance-seconds it ran beyond the tier's
own (a surge, a second set), the requests its stops failed and whether it was rolled back
(and why). Requests are counted by arrival time, in the measured window only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..model.status import Status

COLUMNS = ["deployment", "target", "strategy", "start_s", "end_s", "duration_s",
           "availability_during", "availability_outside", "p99_during_ms", "p99_outside_ms",
           "requests_during", "failed_during", "failed_by_stop", "min_in_rotation", "instances",
           "extra_instance_hours", "extra_cost_usd", "rolled_back", "reason"]
LOG_COLUMNS = ["time_s", "deployment", "step", "instance", "detail"]


def _figures(start: np.ndarray, status: np.ndarray, latency: np.ndarray, mask: np.ndarray
             ) -> tuple[float, float, int, int]:
    st = status[mask]
    ok = st == Status.OK
    lat = latency[mask][ok]
    avail = float(ok.mean()) if len(st) else math.nan
    p99 = float(np.percentile(lat, 99) * 1e3) if len(lat) else math.nan
    return avail, p99, int(len(st)), int(len(st) - ok.sum())


def deployment_rows(result: Any) -> list[dict[str, Any]]:
    """One row per deployment that started (see :data:`COLUMNS`)."""
    runs = [r for r in result.deployment_runs if r.get("start") is not None]
    if not runs:
        return []
    t_end = result.warmup + result.duration
    start, status, latency = result.start, result.status, result.latency
    outside = np.ones(len(start), dtype=bool)
    spans = []
    for r in runs:
        a = r["start"]
        b = r["end"] if r["end"] is not None else t_end
        spans.append((a, b))
        outside &= ~((start >= a) & (start < b))
    o_avail, o_p99, _, _ = _figures(start, status, latency, outside)
    prices = {}
    if result.cost is not None:
        prices = {ln.component: ln.unit_price for ln in result.cost.lines
                  if ln.unit in ("per_instance_hour",)}
    rows = []
    for r, (a, b) in zip(runs, spans, strict=True):
        during = (start >= a) & (start < b)
        avail, p99, n, failed = _figures(start, status, latency, during)
        hours = r["extra_instance_s"] / 3600.0
        price = prices.get(r["target"])
        rows.append({
            "deployment": r["deployment"], "target": r["target"], "strategy": r["strategy"],
            "start_s": a, "end_s": r["end"] if r["end"] is not None else math.nan,
            "duration_s": (r["end"] - a) if r["end"] is not None else math.nan,
            "availability_during": avail, "availability_outside": o_avail,
            "p99_during_ms": p99, "p99_outside_ms": o_p99,
            "requests_during": n, "failed_during": failed, "failed_by_stop": r["failed_by_stop"],
            "min_in_rotation": r["min_in_rotation"], "instances": r["instances"],
            "extra_instance_hours": hours,
            "extra_cost_usd": hours * price if price is not None else math.nan,
            "rolled_back": r["rolled_back"], "reason": r["reason"]})
    return rows


def deployment_warnings(runs: list[dict[str, Any]], warmup: float, t_end: float) -> list[str]:
    """Deployments whose time lies outside the measured window, or that did not finish."""
    out = []
    for r in runs:
        if r.get("start") is None:
            out.append(f"deployment {r['deployment']} at {r['at']:g}s did not start before the end "
                       f"of the run ({t_end:g}s): it does not affect these figures")
        elif r["end"] is None:
            out.append(f"deployment {r['deployment']} was still going on at the end of the run "
                       f"({t_end:g}s): lengthen the duration to see it whole")
        elif r["end"] <= warmup:
            out.append(f"deployment {r['deployment']} ended at {r['end']:g}s, in the warm-up: it "
                       "does not affect these figures (deployment times count from the start, "
                       "warm-up included)")
    return out

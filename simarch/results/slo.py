"""The SLO judge: one definition of "meets its SLO", used by run results, comparisons,
sweeps and reports.

An SLO is a mapping of targets: ``availability`` (a fraction, at least), latency
percentiles such as ``p99`` (seconds, at most) and ``stale_reads`` (the share of reads that
returned a value older than the last write, at most). A measured value that is missing (NaN: no
successful request) never meets a target.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def judge(slo: Mapping[str, float], metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per target: ``target``, ``objective`` (text), ``actual``, ``met`` and, for
    availability, ``error_budget_used`` (the share of allowed failures used; 1.0 = all).
    ``metrics`` holds ``availability`` and ``<target>_ms`` values (``p99_ms``...)."""
    rows = []
    for name, target in slo.items():
        if name == "availability":
            actual = metrics["availability"]
            met = bool(actual >= target) if not math.isnan(actual) else False
            used = (1.0 - actual) / (1.0 - target) if target < 1 else (
                0.0 if actual == 1 else math.inf)
            rows.append({"target": name, "objective": f">= {target:.4%}", "actual": actual,
                         "met": met, "error_budget_used": used})
        elif name == "stale_reads":
            actual = metrics.get("stale_reads", 0.0)  # (no copy that can lag: no stale read)
            met = bool(actual <= target) if not math.isnan(actual) else False
            rows.append({"target": name, "objective": f"<= {target:.4%} of reads stale",
                         "actual": actual, "met": met})
        else:
            actual = metrics[f"{name}_ms"]
            met = bool(actual <= target * 1e3) if not math.isnan(actual) else False
            rows.append({"target": name, "objective": f"<= {target * 1e3:g} ms",
                         "actual": actual, "met": met})
    return rows


def meets(slo: Mapping[str, float] | None, metrics: Mapping[str, Any]) -> bool | None:
    """Whether ``metrics`` meet every target of ``slo``; ``None`` when there is no SLO."""
    if not slo:
        return None
    return all(r["met"] for r in judge(slo, metrics))


# ---------------------------------------------------------------------------- part-way verdicts

QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99, "p999": 0.999}
#: a latency counts as over a target only when it is over by more than this share of it, so
#: that rounding (seconds to milliseconds, percentile interpolation) can never undo it
OVER = 1e-9


@dataclass(frozen=True)
class SoFar:
    """What part of a run already fixes about its window, at simulated time ``at``.

    Every count is of requests that arrived in the window. ``most`` bounds the number of the
    window's arrivals (those so far and an upper bound of those to come); ``failed`` finished
    with an error; ``slow[target]`` finished successfully in more than ``target`` seconds (by
    more than :data:`OVER` of it) and ``ok_seconds`` is the sum of the successful ones'
    latencies; ``stuck`` are still in flight after more than the largest latency target.
    """

    at: float
    most: float
    failed: int
    slow: Mapping[float, int]
    ok_seconds: float
    stuck: int


def _pct(x: float) -> str:
    return f"{x * 100:.4f}".rstrip("0").rstrip(".") + "%"


def certain_miss(slo: Mapping[str, float], w: SoFar) -> str | None:
    """Why the window already misses ``slo`` whatever the rest of the run does, or ``None``.

    Failures, slow successes and the latencies already spent stay in the window's figures,
    and its finished and unanswered requests are at most ``w.most``, so:

    * ``availability`` A is missed once ``failed >= (1 - A) * most + 1``;
    * a percentile ``pNN`` with target T once ``slow[T] >= (1 - NN%) * most + 2`` (``np.percentile``
      interpolates between neighbours: two more than the share guarantees the value above T);
    * ``mean`` T once the successful latencies already sum to more than ``T * most``;
    * with both availability and a percentile: a request in flight for longer than the
      largest latency target ends slower than every target, failed, or unanswered, so once
      ``failed + slow[T] + stuck`` reaches both allowances together one of the two is missed.

    A run that would meet its SLO is never called missed (as long as the window's arrivals
    stay within ``most``, which the caller chooses so that they do).
    """
    n = w.most
    avail = slo.get("availability")
    if avail is not None:
        allowed = (1.0 - avail) * n
        if w.failed >= allowed + 1:
            return (f"{w.failed:,} requests failed, more than the {_pct(1 - avail)} of the at most "
                    f"{n:,.0f} requests of the window that availability {_pct(avail)} allows")
    for name, target in slo.items():
        if name == "availability":
            continue
        if name == "mean":
            if w.ok_seconds > target * (1 + OVER) * n:
                return (f"the successful requests already took {w.ok_seconds:,.4g} s in all, a mean "
                        f"over {target * 1e3:g} ms even over the at most {n:,.0f} requests of the window")
            continue
        q = QUANTILES.get(name)
        if q is None:
            continue
        slow = w.slow.get(target, 0)
        tail = (1.0 - q) * n
        if slow >= tail + 2:
            return (f"{slow:,} requests took longer than {target * 1e3:g} ms, more than the "
                    f"{_pct(1 - q)} of the at most {n:,.0f} requests of the window that {name} allows")
        if avail is not None and w.failed + slow + w.stuck >= (1.0 - avail) * n + 1 + tail + 2:
            return (f"{w.failed:,} requests failed, {slow:,} took longer than {target * 1e3:g} ms and "
                    f"{w.stuck:,} are still in flight after longer than that: more than availability "
                    f"{_pct(avail)} and {name} allow together of the at most {n:,.0f} requests of "
                    "the window")
    return None


def margin(slo: Mapping[str, float] | None, metrics: Mapping[str, Any]) -> float:
    """How far inside its SLO a run is, for placing the next run of a search: the smallest
    over the targets of ``target / actual - 1`` for latency and ``allowed failures / actual
    failures - 1`` for availability. Positive when the run meets its SLO (up to rounding), -1
    at an unbounded latency or total failure, ``inf`` when no target is touched at all, NaN when
    a figure is missing (no successful request). The verdict itself is :func:`meets`'."""
    if not slo:
        return math.nan
    out = math.inf
    for name, target in slo.items():
        if name == "availability":
            actual = metrics["availability"]
            lost = 1.0 - actual
            m = math.inf if lost <= 0 else (1.0 - target) / lost - 1.0
        elif name == "stale_reads":
            actual = metrics.get("stale_reads", 0.0)
            m = math.inf if actual <= 0 else target / actual - 1.0
        else:
            actual = metrics[f"{name}_ms"]
            m = math.inf if actual <= 0 else target * 1e3 / actual - 1.0
        if math.isnan(actual):
            return math.nan
        out = min(out, m)
    return out

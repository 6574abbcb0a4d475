"""The SLO judge: one definition of "meets its SLO", used by run results, comparisons,
sweeps and reports.

An SLO is a mapping of targets: ``availability`` (a fraction, at least) and latency
percentiles such as ``p99`` (seconds, at most). A measured value that is missing (NaN: no
successful request) never meets a target.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
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
